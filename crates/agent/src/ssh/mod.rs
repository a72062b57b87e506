//! The embedded SSH server: public-key auth against [`AuthorizedKeys`], shell and
//! exec sessions (with or without a PTY), `direct-tcpip` / `tcpip-forward`
//! port forwarding and an SFTP subsystem rooted at the workspace.
//!
//! It listens on loopback only; clients reach it through the agent's
//! WebSocket port-forward, so TLS at the routing service is the integrity
//! boundary and the host key is ephemeral.

mod connection;
mod env;
mod forward;
mod inbox;
mod pty;
mod session;
mod sftp;
mod signal;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::authorized_keys::AuthorizedKeys;

use self::connection::Connection;
use self::env::BaseEnv;

/// How long a client may take to authenticate before it is disconnected.
const LOGIN_GRACE: Duration = Duration::from_secs(60);
/// Interval of server keepalives; a client missing `KEEPALIVE_MAX` of them in a
/// row is dropped, which reaps sessions whose tunnel died silently.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_MAX: usize = 4;

/// Unanswered keepalives after which a client is dropped: enough to outlast a tunnel's resume
/// window (a suspended tunnel answers nothing until it resumes), and at least [`KEEPALIVE_MAX`].
fn keepalive_max(resume_window: Duration) -> usize {
    let waits = resume_window.as_secs().div_ceil(KEEPALIVE_INTERVAL.as_secs()) as usize;
    KEEPALIVE_MAX.max(waits + 2)
}
/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's host key: a fresh ed25519 key per process start.
///
/// Nothing pins it (clients use `StrictHostKeyChecking no`); the TLS of the
/// outer WebSocket tunnel authenticates the sandbox instead.
pub struct HostKey {
    key: PrivateKey,
}

impl HostKey {
    /// Generates a fresh ed25519 host key.
    pub fn generate() -> Self {
        let keypair = Ed25519Keypair::random(&mut rand::rng());
        Self { key: PrivateKey::from(keypair) }
    }

    /// The public half in OpenSSH format, `"ssh-ed25519 AAAA…"`, without comment.
    pub fn openssh_public(&self) -> String {
        let public = self.key.public_key();
        // Encoding a freshly generated ed25519 key cannot fail; fall back to an
        // empty string rather than panic should that ever change.
        let mut line = public.to_openssh().unwrap_or_default();
        // The key has no comment, but be explicit about the promised format.
        if let Some((algo, rest)) = line.split_once(' ') {
            let base64 = rest.split(' ').next().unwrap_or_default();
            line = format!("{algo} {base64}");
        }
        line
    }

    /// The SHA-256 fingerprint (`SHA256:…`), safe to log.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("HostKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

/// State shared by every connection of one server.
pub(crate) struct ServerContext {
    pub(crate) keys: AuthorizedKeys,
    pub(crate) workspace: PathBuf,
    pub(crate) base_env: BaseEnv,
}

/// The embedded SSH server. Build with [`SshServer::new`], run with [`SshServer::serve`].
pub struct SshServer {
    config: Arc<Config>,
    ctx: Arc<ServerContext>,
}

impl SshServer {
    /// A server presenting `host_key`, authenticating against `keys`, and
    /// starting sessions (and resolving relative SFTP paths) in `workspace`.
    /// `resume_window` is the tunnels' ([`crate::http::TunnelLimits`]): keepalives outlast it.
    pub fn new(host_key: HostKey, keys: AuthorizedKeys, workspace: PathBuf, resume_window: Duration) -> Self {
        tracing::info!(host_key = %host_key.fingerprint(), "SSH host key generated");
        let config = Config {
            server_id: russh::SshId::Standard("SSH-2.0-sandbox-agent".into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            // OpenSSH probes with "none" first; answering it instantly keeps
            // logins snappy while real rejections stay rate-limited.
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key.key],
            // Idle interactive shells and IDE connections are legitimate;
            // dead peers are detected by keepalives instead.
            inactivity_timeout: None,
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: keepalive_max(resume_window),
            nodelay: true,
            // Backpressure: a channel's window reopens only as our side consumes its data
            // (`inbox::Window`), so a client cannot park more than one window per channel here.
            manual_window_adjust: true,
            window_size: inbox::WINDOW,
            ..Default::default()
        };
        let base_env = BaseEnv::from_agent_env(&workspace);
        Self { config: Arc::new(config), ctx: Arc::new(ServerContext { keys, workspace, base_env }) }
    }

    /// A handle that starts SSH connections over in-memory streams, for tunnels to this
    /// server's own port (`local` is that port's address, reported to sessions).
    pub fn injector(&self, local: SocketAddr, shutdown: CancellationToken) -> SshInjector {
        SshInjector { config: Arc::clone(&self.config), ctx: Arc::clone(&self.ctx), local, shutdown }
    }

    /// Serves SSH on an already-bound listener until `shutdown` is cancelled.
    ///
    /// Each connection runs in its own task; cancelling `shutdown` stops
    /// accepting and disconnects the connections still open.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "SSH server listening");
        }
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // `run_stream` ignores `Config::nodelay`. Without it, Nagle holds russh's
                    // second small write until the first is ACKed, and the peer's delayed ACK
                    // adds 40 ms to several round trips of every login (measured: `ssh true`
                    // 112 ms instead of 56 ms through the tunnel).
                    let _ = stream.set_nodelay(true);
                    let config = Arc::clone(&self.config);
                    let ctx = Arc::clone(&self.ctx);
                    let shutdown = shutdown.clone();
                    let local = stream.local_addr().ok();
                    tokio::spawn(run_connection(config, ctx, stream, peer, local, shutdown));
                }
                Err(e) if is_fatal_accept_error(&e) => return Err(e),
                Err(e) => {
                    // Per-connection or resource errors (ECONNABORTED, EMFILE…)
                    // must not take the server down.
                    tracing::warn!(error = %e, "SSH accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
        tracing::info!("SSH server stopped accepting connections");
        Ok(())
    }
}

/// Errors meaning the listener itself is unusable, as opposed to one failed accept.
pub(crate) fn is_fatal_accept_error(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    const EBADF: i32 = Errno::BADF.raw_os_error();
    const EINVAL: i32 = Errno::INVAL.raw_os_error();
    const ENOTSOCK: i32 = Errno::NOTSOCK.raw_os_error();
    matches!(e.raw_os_error(), Some(EBADF | EINVAL | ENOTSOCK))
}

/// Starts SSH connections without a socket. The port-forward endpoint uses it for tunnels to
/// the embedded server's own port: every ssh byte then skips a loopback TCP hop (a read, a
/// write and a wake-up on each side) inside the agent.
#[derive(Clone)]
pub struct SshInjector {
    config: Arc<Config>,
    ctx: Arc<ServerContext>,
    local: SocketAddr,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for SshInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshInjector").field("local", &self.local).finish_non_exhaustive()
    }
}

/// Room in each direction of an injected connection's in-memory pipe: as much as one tunnel
/// read moves under bulk load, so a transfer wakes each side once per chunk.
const INJECTED_PIPE: usize = 1 << 20;

impl SshInjector {
    /// A new SSH connection from `peer`, served on its own task; returns the client's end.
    pub fn connect(&self, peer: SocketAddr) -> tokio::io::DuplexStream {
        let (client, server) = tokio::io::duplex(INJECTED_PIPE);
        let (config, ctx) = (Arc::clone(&self.config), Arc::clone(&self.ctx));
        tokio::spawn(run_connection(config, ctx, server, peer, Some(self.local), self.shutdown.clone()));
        client
    }
}

/// Drives one client connection to completion.
async fn run_connection<S>(
    config: Arc<Config>,
    ctx: Arc<ServerContext>,
    stream: S,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let authenticated = Arc::new(AtomicBool::new(false));
    let handler = Connection::new(ctx, peer, local, Arc::clone(&authenticated));
    // The version exchange happens inside run_stream; bound it so a silent
    // peer cannot hold the task forever.
    let session =
        match tokio::time::timeout(LOGIN_GRACE, russh::server::run_stream(config, stream, handler)).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "SSH handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "SSH handshake timed out");
                return;
            }
        };
    let handle = session.handle();
    let login_deadline = async {
        tokio::time::sleep(LOGIN_GRACE).await;
        if authenticated.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    };
    let reason = tokio::select! {
        result = session => {
            match result {
                Ok(()) => tracing::debug!(%peer, "SSH connection closed"),
                Err(e) => tracing::debug!(%peer, error = %e, "SSH connection ended"),
            }
            return;
        }
        () = shutdown.cancelled() => "server shutting down",
        () = login_deadline => "authentication timeout",
    };
    tracing::debug!(%peer, reason, "disconnecting SSH client");
    let _ = handle.disconnect(russh::Disconnect::ByApplication, reason.to_owned(), String::new()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_outlast_the_resume_window() {
        assert_eq!(keepalive_max(Duration::ZERO), KEEPALIVE_MAX);
        for secs in [1, 30, 120, 121, 600] {
            let window = Duration::from_secs(secs);
            assert!(
                KEEPALIVE_INTERVAL * keepalive_max(window) as u32 > window + KEEPALIVE_INTERVAL,
                "{secs}"
            );
        }
    }

    #[test]
    fn host_key_public_line_has_no_comment() {
        let key = HostKey::generate();
        let line = key.openssh_public();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 2, "{line}");
        assert_eq!(fields[0], "ssh-ed25519");
        assert!(fields[1].starts_with("AAAA"));
        assert!(russh::keys::PublicKey::from_openssh(&line).is_ok());
        assert!(key.fingerprint().starts_with("SHA256:"));
        assert_ne!(line, HostKey::generate().openssh_public());
        assert!(!format!("{key:?}").contains(fields[1]));
    }
}
