//! The control socket between the app's processes: the tray process serves its [`Service`] on a
//! local socket (a Unix socket in the private config dir; a named pipe on Windows) and the window
//! process calls it, one JSON line per request and per answer. The socket doubles as the tray
//! process's single-instance lock.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Name};
use sandbox_core::paths::Paths;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::protocol::{ActionError, Outcome, Request};
use crate::service::Service;

/// A request line longer than this is refused (a snapshot request is a few bytes; a form a few KiB).
const MAX_LINE: u64 = 1 << 20;
/// How long a client waits to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the control socket is for an installation.
pub fn socket_path(paths: &Paths) -> PathBuf {
    if cfg!(windows) {
        // Named pipes live in one machine-wide namespace: make the name per user (per config dir).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in paths.config_dir.to_string_lossy().bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        PathBuf::from(format!(r"\\.\pipe\sandbox-forward-{hash:016x}"))
    } else {
        paths.config_dir.join("run").join("control.sock")
    }
}

fn name(path: &Path) -> io::Result<Name<'_>> {
    path.as_os_str().to_fs_name::<GenericFilePath>()
}

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another tray process answers on the socket.
    #[error("Sandbox Forward is already running")]
    AlreadyRunning,
    /// The socket could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A bound control socket.
pub struct ControlServer {
    listener: interprocess::local_socket::tokio::Listener,
}

impl ControlServer {
    /// Binds the socket, unless another process serves it already. A socket file left by a
    /// crashed process is replaced.
    pub async fn bind(path: &Path) -> Result<ControlServer, ServeError> {
        let io_err = |source| ServeError::Io { path: path.to_owned(), source };
        if ControlClient::new(path.to_owned()).is_served().await {
            return Err(ServeError::AlreadyRunning);
        }
        if let Some(dir) = path.parent().filter(|_| !cfg!(windows)) {
            sandbox_core::fsutil::create_private_dir(dir).map_err(io_err)?;
        }
        let listener = ListenerOptions::new()
            .name(name(path).map_err(io_err)?)
            .try_overwrite(true)
            .create_tokio()
            .map_err(io_err)?;
        Ok(ControlServer { listener })
    }

    /// Answers requests until the task is dropped.
    pub async fn run(self, service: Service) {
        loop {
            match self.listener.accept().await {
                Ok(stream) => {
                    tokio::spawn(serve_connection(stream, service.clone()));
                }
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn serve_connection(stream: Stream, service: Service) {
    // `&Stream` reads and writes: one half each.
    let mut write = &stream;
    let mut lines = BufReader::new((&stream).take(u64::MAX));
    let mut line = String::new();
    loop {
        line.clear();
        lines.get_mut().set_limit(MAX_LINE);
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let outcome: Outcome = match serde_json::from_str::<Request>(&line) {
            Ok(request) => service.handle(request).await,
            Err(e) => {
                Err(ActionError { message: format!("malformed request ({e}); is the app up to date?") })
            }
        };
        let mut answer = serde_json::to_vec(&outcome).expect("outcomes serialise");
        answer.push(b'\n');
        if write.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// A client of the control socket; connects per call, so it survives a tray restart.
#[derive(Debug, Clone)]
pub struct ControlClient {
    path: PathBuf,
}

impl ControlClient {
    /// A client of the socket at `path` (see [`socket_path`]).
    pub fn new(path: PathBuf) -> Self {
        ControlClient { path }
    }

    /// Whether a tray process answers.
    pub async fn is_served(&self) -> bool {
        self.connect().await.is_ok()
    }

    async fn connect(&self) -> io::Result<Stream> {
        let name = name(&self.path)?;
        tokio::time::timeout(CONNECT_TIMEOUT, Stream::connect(name))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the tray process did not answer"))?
    }

    /// Sends one request and waits for its outcome.
    pub async fn call(&self, request: &Request) -> Outcome {
        let unreachable = |e: io::Error| ActionError {
            message: format!(
                "the Sandbox Forward tray process is not running ({e}); start Sandbox Forward again"
            ),
        };
        let stream = self.connect().await.map_err(unreachable)?;
        let mut line = serde_json::to_vec(request).expect("requests serialise");
        line.push(b'\n');
        (&stream).write_all(&line).await.map_err(unreachable)?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).await.map_err(unreachable)?;
        serde_json::from_str::<Outcome>(&answer).map_err(|e| ActionError {
            message: format!("the tray process answered something unexpected ({e}); restart Sandbox Forward"),
        })?
    }
}
