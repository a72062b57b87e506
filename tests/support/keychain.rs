//! A real Secret Service for the keychain tests: a private D-Bus session bus (`dbus-daemon`)
//! and `gnome-keyring-daemon` on it, its login keyring created and unlocked with a throwaway
//! password, all under a temporary directory. Both processes are children stopped by PID when
//! the value drops; nothing touches the user's own bus or keyrings.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, Guard};

/// A private session bus, optionally with an unlocked gnome-keyring serving Secret Service.
pub struct SecretService {
    // Dropped in this order: the keyring daemon before its bus.
    _keyring: Option<Guard>,
    _bus: Guard,
    /// `DBUS_SESSION_BUS_ADDRESS` of the private bus.
    pub address: String,
    dir: tempfile::TempDir,
}

impl SecretService {
    /// A bus with an unlocked keyring answering as `org.freedesktop.secrets`.
    pub fn start() -> SecretService {
        let mut s = SecretService::bus_only();
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(s.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gnome-keyring-daemon (scripts/setup-deps.sh installs gnome-keyring)");
        // --unlock reads the password from stdin up to EOF.
        child.stdin.take().unwrap().write_all(b"throwaway-test-password").unwrap();
        let guard = Guard { child, name: "gnome-keyring-daemon" };
        let up = eventually(Duration::from_secs(10), || s.name_has_owner("org.freedesktop.secrets"));
        assert!(up, "gnome-keyring-daemon did not take org.freedesktop.secrets on the private bus");
        s._keyring = Some(guard);
        s
    }

    /// A private bus on which no Secret Service answers.
    pub fn bus_only() -> SecretService {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["run", "data", "config"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path().join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", dir.path().join("bus").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dbus-daemon");
        let stdout = child.stdout.take().unwrap();
        let bus = Guard { child, name: "dbus-daemon" };
        let mut address = String::new();
        BufReader::new(stdout).read_line(&mut address).expect("dbus-daemon prints its address");
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
        SecretService { _keyring: None, _bus: bus, address, dir }
    }

    /// The environment that points a process at this bus (and keeps it off the user's files).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let d = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("XDG_RUNTIME_DIR", d("run")),
            ("XDG_DATA_HOME", d("data")),
            ("XDG_CONFIG_HOME", d("config")),
            ("HOME", self.dir.path().display().to_string()),
        ]
    }

    /// Whether `name` is owned on the bus.
    fn name_has_owner(&self, name: &str) -> bool {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus", "/"])
            .arg("org.freedesktop.DBus.NameHasOwner")
            .arg(format!("string:{name}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("run dbus-send");
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The accounts (`username` attribute) of the items stored under `service` — never the
    /// secrets, which are tokens.
    pub fn accounts(&self, service: &str) -> Vec<String> {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "service", service])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool (scripts/setup-deps.sh installs libsecret-tools)");
        // secret-tool prints each item's path, label and secret on stdout (never read here) and
        // its attributes on stderr.
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("attribute.username = "))
            .map(str::to_owned)
            .collect()
    }

    /// The temporary directory (the keyring files live under `data/keyrings`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
