//! The control socket between the app's processes: the tray process serves its [`Service`] on a
//! local socket (a Unix socket in the private config dir; a named pipe on Windows) and the window
//! process calls it, one JSON line per request and per answer. The socket doubles as the tray
//! process's single-instance lock.
//!
//! Only the user's own processes may take part. On Unix the socket sits in a 0700 directory. On
//! Windows, where pipe names are one machine-wide namespace that anyone can try to claim, the pipe
//! is created as a first instance (so a squatter's pipe makes binding fail instead of being
//! joined) with a protected DACL that admits only the current user, and a client talks only to a
//! server whose process runs as the same user.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Name};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::protocol::{ActionError, ErrorCode, Outcome, Request};
use crate::service::Service;

/// A request line longer than this is refused (a snapshot request is a few bytes; a form a few KiB).
const MAX_LINE: u64 = 1 << 20;
/// How long a client waits to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn name(path: &Path) -> io::Result<Name<'_>> {
    path.as_os_str().to_fs_name::<GenericFilePath>()
}

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another tray process answers on the socket.
    #[error("Sandbox Forward is already running")]
    AlreadyRunning,
    /// Another user's process holds the pipe name (Windows).
    #[error(
        "another user's process holds the control pipe {path}; sign out other sessions or restart Windows, then start Sandbox Forward again"
    )]
    Squatted { path: PathBuf },
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
        let options = ListenerOptions::new().name(name(path).map_err(io_err)?).try_overwrite(true);
        #[cfg(windows)]
        let options = {
            use interprocess::os::windows::local_socket::ListenerOptionsExt;
            options.security_descriptor(windows::owner_only().map_err(io_err)?)
        };
        let listener = options.create_tokio().map_err(|source| {
            // A pipe that exists but is not ours answers "access denied" to our first instance.
            if cfg!(windows) && source.kind() == io::ErrorKind::PermissionDenied {
                ServeError::Squatted { path: path.to_owned() }
            } else {
                io_err(source)
            }
        })?;
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
        let read = match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        // Cut off at the limit: the rest of that line must never be read as a request of its own.
        let too_long = read as u64 >= MAX_LINE && !line.ends_with('\n');
        let outcome: Outcome = if too_long {
            Err(ActionError::new(
                ErrorCode::Protocol,
                "request too long (over 1 MiB); is the app up to date?",
            ))
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(request) => service.handle(request).await,
                Err(e) => Err(ActionError::new(
                    ErrorCode::Protocol,
                    format!("malformed request ({e}); is the app up to date?"),
                )),
            }
        };
        let mut answer = serde_json::to_vec(&outcome).expect("outcomes serialise");
        answer.push(b'\n');
        if write.write_all(&answer).await.is_err() || too_long {
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
    /// A client of the socket at `path` (see [`Paths::control_socket`]).
    pub fn new(path: PathBuf) -> Self {
        ControlClient { path }
    }

    /// Whether a tray process answers.
    pub async fn is_served(&self) -> bool {
        self.connect().await.is_ok()
    }

    async fn connect(&self) -> io::Result<Stream> {
        let name = name(&self.path)?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, Stream::connect(name))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the tray process did not answer"))??;
        #[cfg(windows)]
        windows::check_server(&stream)?;
        Ok(stream)
    }

    /// Sends one request and waits for its outcome.
    pub async fn call(&self, request: &Request) -> Outcome {
        let unreachable = |e: io::Error| {
            ActionError::new(
                ErrorCode::TrayNotRunning,
                format!("the Sandbox Forward tray process is not running ({e}); start Sandbox Forward again"),
            )
        };
        let stream = self.connect().await.map_err(unreachable)?;
        let mut line = serde_json::to_vec(request).expect("requests serialise");
        line.push(b'\n');
        (&stream).write_all(&line).await.map_err(unreachable)?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).await.map_err(unreachable)?;
        serde_json::from_str::<Outcome>(&answer).map_err(|e| {
            ActionError::new(
                ErrorCode::Protocol,
                format!("the tray process answered something unexpected ({e}); restart Sandbox Forward"),
            )
        })?
    }
}

/// The pipe's security on Windows.
#[cfg(windows)]
mod windows {
    use std::io;

    use interprocess::local_socket::tokio::Stream;
    use interprocess::local_socket::traits::StreamCommon as _;
    use interprocess::os::windows::security_descriptor::SecurityDescriptor;
    use sandbox_core::fsutil::acl::Sid;

    /// Owner: the current user; DACL: protected, one entry, full control for that user.
    pub fn owner_only() -> io::Result<SecurityDescriptor> {
        let me = Sid::current_user()?.to_sddl()?;
        let sddl = widestring::U16CString::from_str(owner_only_sddl(&me))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        SecurityDescriptor::deserialize(&sddl)
    }

    /// Refuses a pipe served by another user's process (one that claimed our pipe's name).
    pub fn check_server(stream: &Stream) -> io::Result<()> {
        let pid = stream.peer_creds()?.pid().ok_or_else(|| io::Error::other("no server process id"))?;
        if Sid::of_process(pid)? != Sid::current_user()? {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the control pipe is served by another user's process (pid {pid}); not talking to it"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn owner_only_sddl(user: &str) -> String {
        format!("O:{user}D:P(A;;GA;;;{user})")
    }
}

#[cfg(test)]
mod tests {
    #[cfg(windows)]
    #[test]
    fn the_pipe_admits_only_its_owner() {
        assert_eq!(
            super::windows::owner_only_sddl("S-1-5-21-1-2-3-1001"),
            "O:S-1-5-21-1-2-3-1001D:P(A;;GA;;;S-1-5-21-1-2-3-1001)"
        );
        super::windows::owner_only().expect("the SDDL parses into a security descriptor");
    }
}
