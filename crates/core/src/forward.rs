//! Local port forwards: `127.0.0.1:LOCAL` → WebSocket → `127.0.0.1:PORT` in the pod, one
//! WebSocket per accepted connection. Shared by `proxy --port` and the app's toggles.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sandbox_wire::tunnel::{splice, SpliceError, SpliceOptions, Traffic};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::api::{ApiClient, ApiError};

/// Why a forward could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The local port is taken.
    #[error("local port {port} is already in use by another program; pick another with --local-port (or stop that program)")]
    PortInUse { port: u16 },
    /// Binding failed otherwise.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    /// The first tunnel could not be opened.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Why one tunnelled connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The tunnel could not be opened.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The tunnel broke while in use. Not a `source`: the message already holds the cause,
    /// and a chain printer (`{:#}`) would repeat it.
    #[error("{err}{advice}", err = .0, advice = advice(.0))]
    Splice(SpliceError),
    /// The local socket failed.
    #[error("local socket failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<SpliceError> for TunnelError {
    fn from(e: SpliceError) -> Self {
        TunnelError::Splice(e)
    }
}

/// What to do about a broken tunnel, for the one line the user sees.
fn advice(e: &SpliceError) -> &'static str {
    match e {
        // Protocol v1 cannot resume: the connection through the tunnel is gone for good.
        e if e.is_network() => {
            "; what was in flight is lost (the tunnel cannot resume): reconnect once the network is back (`sandbox-forward status` checks the server)"
        }
        SpliceError::Closed { reason, .. } if reason == sandbox_wire::tunnel::DIAL_FAILED => {
            ": start the service in the sandbox, or check the port"
        }
        SpliceError::Closed { .. } => "; reconnect, and if it happens again see the sandbox agent's log",
        SpliceError::Protocol(_) | SpliceError::Unsupported(_) => {
            "; check that --server is the sandbox's server and not another WebSocket service"
        }
        _ => "",
    }
}

/// Live numbers of one forward, read by `status` and the app.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Connections open right now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Bytes both ways.
    pub traffic: Traffic,
    /// The most recent failure, one line.
    pub last_error: Mutex<Option<String>>,
}

impl ForwardStats {
    fn failed(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
}

/// Binds `127.0.0.1:port` — never a wider address: a forward exposes the pod to whoever can
/// reach the socket. Port 0 picks a free port.
pub async fn bind_local(port: u16) -> Result<TcpListener, ForwardError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ForwardError::PortInUse { port }
        } else {
            ForwardError::Bind { port, source }
        }
    })
}

/// Accepts connections until the future is dropped; each connection gets its own task and
/// WebSocket, so one slow or failing connection never blocks the others. The tasks belong to
/// this future: dropping or aborting it closes every connection it carries.
pub async fn serve(listener: TcpListener, api: ApiClient, remote_port: u16, stats: Arc<ForwardStats>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: report, back off a little, keep serving.
                    stats.failed(format!("accept failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (api, stats) = (api.clone(), stats.clone());
        connections.spawn(async move {
            stats.total.fetch_add(1, Ordering::Relaxed);
            stats.active.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = forward_one(socket, &api, remote_port, &stats).await {
                tracing::warn!(%peer, remote_port, "forwarded connection failed: {e}");
                stats.failed(e.to_string());
            }
            stats.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn forward_one(
    mut socket: TcpStream,
    api: &ApiClient,
    remote_port: u16,
    stats: &ForwardStats,
) -> Result<(), TunnelError> {
    let result = carry(&mut socket, api, remote_port, stats).await;
    if result.is_err() {
        // A tunnel that could not open or broke ends the local connection with a reset, not a
        // FIN: an application must not take a cut download for a complete one.
        abort(&socket);
    }
    result
}

async fn carry(
    socket: &mut TcpStream,
    api: &ApiClient,
    remote_port: u16,
    stats: &ForwardStats,
) -> Result<(), TunnelError> {
    socket.set_nodelay(true)?;
    let ws = api.open_tunnel(remote_port).await?;
    // Borrowed halves: the socket stays ours, to be reset on a failure (an owned write half
    // would send a FIN as it drops).
    let (r, w) = socket.split();
    splice(ws, r, w, SpliceOptions { traffic: Some(&stats.traffic), ..Default::default() }).await?;
    Ok(())
}

/// Makes the coming close of `socket` a reset (`SO_LINGER 0`: RST, unsent bytes discarded).
pub fn abort(socket: &TcpStream) {
    if let Err(e) = socket.set_zero_linger() {
        tracing::debug!("cannot set SO_LINGER 0 to reset the local connection: {e}");
    }
}

/// Carries one tunnel over a pair of local byte streams (`--stdio`, and `--ssh` for ssh).
pub async fn stdio<R, W>(api: &ApiClient, remote_port: u16, input: R, output: W) -> Result<(), TunnelError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ws = api.open_tunnel(remote_port).await?;
    splice(ws, input, output, SpliceOptions::default()).await?;
    Ok(())
}
