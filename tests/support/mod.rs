//! Test harness: real processes on loopback, each stopped by PID when its guard drops — also
//! when a test fails half-way. What other crates' tests use too (guards, deadlines, ports, echo
//! and python listeners, the OpenID peers) comes from `sandbox-test-support`, re-exported here.

pub mod fault;
pub mod gateway;
pub mod keychain;
#[cfg(unix)]
pub mod sign_in;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use sandbox_test_support::oidc;
pub use sandbox_test_support::{
    bin, echo_server, eventually, free_port, ok, python_listener, run, stderr, stdout, wait, Guard,
};

/// A running `sandbox-agent`.
pub struct Agent {
    pub guard: Guard,
    pub port: u16,
    pub workspace: PathBuf,
}

impl Agent {
    /// Starts an agent on `port` (0 = any) serving `workspace`, with extra flags.
    pub fn start(workspace: &Path, port: u16, extra: &[&str]) -> Agent {
        let mut cmd = sandbox_test_support::agent_command(&bin("sandbox-agent"), workspace, port);
        cmd.args(extra).stderr(Stdio::inherit());
        let agent = sandbox_test_support::AgentProcess::start(cmd);
        Agent { guard: agent.guard, port: agent.port, workspace: workspace.to_owned() }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An API client without credentials (a `--dev-mode` agent takes it) for the server at `url`.
pub fn api_client(url: &str) -> sandbox_core::api::ApiClient {
    sandbox_core::api::ApiClient::new(sandbox_core::api::Endpoint {
        server: sandbox_core::server::ServerUrl::parse(url).unwrap(),
        credentials: Default::default(),
        tls: Default::default(),
        bearer: None,
    })
    .unwrap()
}

/// A fake home directory: `HOME` for every client process a test runs.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The written `~/.ssh/config`.
    pub fn ssh_config(&self) -> PathBuf {
        self.path().join(".ssh/config")
    }

    /// `sandbox-forward ARGS` with this home.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("sandbox-forward"));
        c.args(args).env("HOME", self.path()).env_remove("SANDBOX_FORWARD_LOG");
        c
    }

    /// The real OpenSSH client through the written config. OpenSSH reads `~` from the password
    /// database, not `$HOME`, hence `-F`; `HOME` still reaches our ProxyCommand.
    pub fn ssh(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.arg("-F").arg(self.ssh_config()).args(["-o", "BatchMode=yes"]).args(args).env("HOME", self.path());
        c
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}
