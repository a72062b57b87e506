//! The local demo sandbox: a real `sandbox-agent` on loopback that the app runs for a new user,
//! so Connect and port forwards work before any server is configured. It requires a random bearer
//! token (kept 0600 beside its workspace), so no other local user can reach a shell through it.
//! Every start takes a free port the system picks and a fresh token: a fixed port could be
//! taken first by another local user's listener (which then receives our token), and a token
//! that never changed would stay good for whoever once saw it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use rand_core::RngCore;
use sandbox_core::fsutil;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Files of the demo sandbox.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// Holds the token, the workspace and the agent's log.
    pub dir: PathBuf,
}

impl DemoFiles {
    /// The bearer token file.
    pub fn token(&self) -> PathBuf {
        self.dir.join("token")
    }

    /// The demo's workspace (its sessions' HOME).
    pub fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    /// Creates the directory and workspace, and writes a fresh token (every start: the
    /// previous one dies with the previous agent).
    pub fn prepare(&self) -> std::io::Result<()> {
        fsutil::create_private_dir(&self.dir)?;
        std::fs::create_dir_all(self.workspace())?;
        let mut bytes = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        fsutil::write_private(&self.token(), format!("{token}\n").as_bytes())
    }
}

/// A running demo agent; dropping it stops the process.
#[derive(Debug)]
pub struct DemoAgent {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl DemoAgent {
    /// Starts `agent` for the demo with a fresh token on a port the system picks (its URL is
    /// [`DemoAgent::url`]; the caller writes it into the demo's profile).
    pub async fn start(agent: &Path, files: &DemoFiles) -> Result<DemoAgent, String> {
        files
            .prepare()
            .map_err(|e| format!("cannot prepare the demo sandbox in {}: {e}", files.dir.display()))?;
        Self::spawn(agent, files).await
    }

    async fn spawn(agent: &Path, files: &DemoFiles) -> Result<DemoAgent, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(files.dir.join("agent.log"))
            .map_err(|e| format!("cannot open the demo agent's log: {e}"))?;
        let mut child = Command::new(agent)
            .arg("--api-addr")
            .arg("127.0.0.1:0")
            .arg("--workspace")
            .arg(files.workspace())
            .arg("--token-file")
            .arg(files.token())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start the demo sandbox ({}: {e}); reinstall Sandbox Forward", agent.display())
            })?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        match tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => {
                let _ = child.start_kill();
                return Err(format!(
                    "the demo sandbox did not start; see {}",
                    files.dir.join("agent.log").display()
                ));
            }
        }
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("the demo sandbox said {:?} instead of its address", line.trim()))?
            .to_owned();
        Ok(DemoAgent { child, url })
    }

    /// The agent's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
