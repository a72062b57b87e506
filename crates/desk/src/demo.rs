//! The local demo sandbox: a real `sandbox-agent` on loopback that the app runs for a new user,
//! so Connect and port forwards work before any server is configured. It requires a random bearer
//! token (kept 0600 beside its workspace), so no other local user can reach a shell through it.
//! Every start takes a free port the system picks and a fresh token: a fixed port could be
//! taken first by another local user's listener (which then receives our token), and a token
//! that never changed would stay good for whoever once saw it.
//!
//! The demo "pod" is this machine, so its ready-made forward needs something real to reach:
//! [`DemoSite`], a small page server on a free loopback port, serving `site/index.html` from the
//! demo's workspace (edit it over `ssh demo` and reload). It stops with the demo.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use rand_core::RngCore;
use sandbox_core::fsutil;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The label of the demo's ready-made forward, which follows [`DemoSite`]'s port.
pub const SITE_LABEL: &str = "demo page (site/index.html)";
/// The page served until the user edits it.
const SITE_PAGE: &str = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Sandbox Forward demo</title>\n<h1>Sandbox Forward demo</h1>\n<p>This page is served inside the demo sandbox and reached through a port forward.</p>\n<p>Edit <code>site/index.html</code> in the demo's workspace (<code>ssh demo</code>, or Open in VS Code) and reload.</p>\n";

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

    /// The page [`DemoSite`] serves.
    pub fn page(&self) -> PathBuf {
        self.workspace().join("site").join("index.html")
    }

    /// Creates the directory and workspace, and writes a fresh token (every start: the
    /// previous one dies with the previous agent).
    pub fn prepare(&self) -> std::io::Result<()> {
        fsutil::create_private_dir(&self.dir)?;
        std::fs::create_dir_all(self.workspace().join("site"))?;
        if !self.page().exists() {
            std::fs::write(self.page(), SITE_PAGE)?;
        }
        let mut bytes = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        fsutil::write_private(&self.token(), format!("{token}\n").as_bytes())
    }
}

/// Why the demo sandbox could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo needs sandbox-agent installed beside the app; reinstall Sandbox Forward")]
    NoAgent,
    #[error("cannot prepare the demo sandbox in {}: {source}", dir.display())]
    Prepare { dir: PathBuf, source: std::io::Error },
    #[error("cannot start the demo sandbox's page server on 127.0.0.1: {0}")]
    Site(std::io::Error),
    #[error("cannot open the demo agent's log: {0}")]
    Log(std::io::Error),
    #[error("cannot start the demo sandbox ({}: {source}); reinstall Sandbox Forward", agent.display())]
    Spawn { agent: PathBuf, source: std::io::Error },
    #[error("the demo sandbox did not start; see {}", log.display())]
    NotStarted { log: PathBuf },
    #[error("the demo sandbox said {0:?} instead of its address")]
    Answer(String),
    #[error(transparent)]
    Profile(#[from] sandbox_core::profile::ProfileError),
}

/// A running demo agent and its page server; dropping it stops both.
#[derive(Debug)]
pub struct DemoAgent {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The page server "in the pod" that the demo's forward reaches.
    pub site: DemoSite,
}

impl DemoAgent {
    /// Starts `agent` for the demo with a fresh token on a port the system picks (its URL is
    /// [`DemoAgent::url`]; the caller writes it into the demo's profile).
    pub async fn start(agent: &Path, files: &DemoFiles) -> Result<DemoAgent, DemoError> {
        files.prepare().map_err(|source| DemoError::Prepare { dir: files.dir.clone(), source })?;
        let site = DemoSite::start(files.page()).await.map_err(DemoError::Site)?;
        Self::spawn(agent, files, site).await
    }

    async fn spawn(agent: &Path, files: &DemoFiles, site: DemoSite) -> Result<DemoAgent, DemoError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(files.dir.join("agent.log"))
            .map_err(DemoError::Log)?;
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
            .map_err(|source| DemoError::Spawn { agent: agent.to_owned(), source })?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        match tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => {
                let _ = child.start_kill();
                return Err(DemoError::NotStarted { log: files.dir.join("agent.log") });
            }
        }
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| DemoError::Answer(line.trim().to_owned()))?
            .to_owned();
        Ok(DemoAgent { child, url, site })
    }

    /// The agent's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The demo's page server: `GET /` answers the page file as it is now (read per request, so an
/// edit shows on reload); anything else is 404. On `127.0.0.1`, a port the system picks; at most
/// 64 connections at once; each request head has 10 s to arrive. Dropping it stops it.
#[derive(Debug)]
pub struct DemoSite {
    /// The port it listens on (loopback).
    pub port: u16,
    task: JoinHandle<()>,
}

impl DemoSite {
    /// Binds `127.0.0.1:0` and serves `page`.
    pub async fn start(page: PathBuf) -> std::io::Result<DemoSite> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(serve_site(listener, Arc::new(page)));
        Ok(DemoSite { port, task })
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_site(listener: TcpListener, page: Arc<PathBuf>) {
    let slots = Arc::new(Semaphore::new(64));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::debug!("demo page server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let page = page.clone();
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = answer(socket, &page).await {
                tracing::debug!("demo page server: {e}");
            }
        });
    }
}

async fn answer(mut socket: TcpStream, page: &Path) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read_head = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow"))??;
    let line = head.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let (status, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/" | b"/index.html") => match tokio::fs::read(page).await {
            Ok(body) => ("200 OK", body),
            Err(e) => ("404 Not Found", format!("{}: {e}\n", page.display()).into_bytes()),
        },
        (b"GET" | b"HEAD", _) => ("404 Not Found", b"not found\n".to_vec()),
        _ => ("405 Method Not Allowed", Vec::new()),
    };
    let kind = if status.starts_with("200") { "text/html" } else { "text/plain" };
    let mut reply = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        reply.extend_from_slice(&body);
    }
    socket.write_all(&reply).await?;
    socket.shutdown().await
}
