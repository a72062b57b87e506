//! Where Sandbox Forward keeps its files. Computed once from the home directory the caller
//! passes in; nothing else in the core decides a path.

use std::path::{Path, PathBuf};

use crate::name::SandboxName;

/// Every file location the core reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `~/.config/sandbox`: the seed's location, kept on every platform for compatibility.
    pub config_dir: PathBuf,
    /// The user's `~/.ssh/config`, edited only between our markers.
    pub ssh_config: PathBuf,
}

impl Paths {
    /// Paths under the given home directory.
    pub fn from_home(home: &Path) -> Self {
        Paths {
            config_dir: home.join(".config").join("sandbox"),
            ssh_config: home.join(".ssh").join("config"),
        }
    }

    /// Directory of the per-sandbox keypairs (mode 0700).
    pub fn keys_dir(&self) -> PathBuf {
        self.config_dir.join("keys")
    }

    /// Private key of a sandbox (mode 0600).
    pub fn private_key(&self, name: &SandboxName) -> PathBuf {
        self.keys_dir().join(name.as_str())
    }

    /// Public key of a sandbox, beside the private key.
    pub fn public_key(&self, name: &SandboxName) -> PathBuf {
        self.keys_dir().join(format!("{name}.pub"))
    }

    /// Pinned host key of a sandbox, in `known_hosts` format.
    pub fn known_hosts(&self, name: &SandboxName) -> PathBuf {
        self.config_dir.join("known_hosts").join(name.as_str())
    }

    /// The SSH port the pod reported when our key was last registered (a decimal number). For a
    /// server that publishes no host key (the original), a different port means the pod
    /// restarted and lost the key.
    pub fn registered_ssh_port(&self, name: &SandboxName) -> PathBuf {
        self.config_dir.join("known_hosts").join(format!("{name}.port"))
    }

    /// Held (`File::lock`) while a sandbox's key is replaced or re-registered: two setups of one
    /// name at once would otherwise mix the halves of two key pairs.
    pub fn setup_lock(&self, name: &SandboxName) -> PathBuf {
        self.config_dir.join("locks").join(format!("{name}.lock"))
    }

    /// Directory of the sandbox profiles (server URL and auth settings).
    pub fn profiles_dir(&self) -> PathBuf {
        self.config_dir.join("sandboxes")
    }

    /// Token files (when no OS keychain is reachable) and refresh lock files.
    pub fn tokens_dir(&self) -> PathBuf {
        self.config_dir.join("tokens")
    }

    /// The ssh config file we own; the user's config `Include`s it.
    pub fn ssh_include(&self) -> PathBuf {
        self.config_dir.join("ssh_config")
    }

    /// The desktop app's settings (preferences, the demo's state; mode 0600).
    pub fn app_settings(&self) -> PathBuf {
        self.config_dir.join("app.toml")
    }

    /// The demo sandbox's files (its agent's workspace and token).
    pub fn demo_dir(&self) -> PathBuf {
        self.config_dir.join("demo")
    }

    /// Logs of background work: the ProxyCommand's tunnels (what ssh's terminal must not show).
    pub fn logs_dir(&self) -> PathBuf {
        self.config_dir.join("logs")
    }

    /// The log of `proxy --ssh` / `--stdio`: lost and resumed tunnels.
    pub fn proxy_log(&self) -> PathBuf {
        self.logs_dir().join("proxy.log")
    }

    /// Runtime files of the app's processes (mode 0700).
    pub fn run_dir(&self) -> PathBuf {
        self.config_dir.join("run")
    }

    /// The resident tray process's PID, while it runs.
    pub fn tray_pid(&self) -> PathBuf {
        self.run_dir().join("tray.pid")
    }

    /// The control socket between the app's processes: a Unix socket in [`Paths::run_dir`]; on
    /// Windows a named pipe, whose one machine-wide namespace needs a per-user (per config
    /// directory) name.
    pub fn control_socket(&self) -> PathBuf {
        if cfg!(windows) {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: stable across builds
            for b in self.config_dir.to_string_lossy().bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            PathBuf::from(format!(r"\\.\pipe\sandbox-forward-{hash:016x}"))
        } else {
            self.run_dir().join("control.sock")
        }
    }
}
