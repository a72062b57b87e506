//! Local port forwards: `127.0.0.1:LOCAL` → WebSocket → `127.0.0.1:PORT` in the pod, one
//! WebSocket per accepted connection. Shared by `proxy --port` and the app's toggles.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_wire::local::{Plain, TcpSource};
use sandbox_wire::tunnel::{SpliceError, SpliceOptions, Traffic};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
pub use tokio_util::sync::CancellationToken;

use crate::api::{ApiClient, ApiError};
use crate::tunnel::{self, Resuming};

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
    /// The target is this forward's own listener (a sandbox served from this machine).
    #[error("local port {port} would forward to itself: the sandbox runs on this machine, so its port {port} is this forward's own listener; choose another local port")]
    OwnListener { port: u16 },
}

pub use crate::tunnel::TunnelError;

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
    /// Connections whose tunnel is resuming right now.
    pub resuming: Resuming,
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
/// Connections one forward carries at once. Each costs two descriptors (the local socket and
/// the tunnel's); at the cap the loop stops accepting and new connections wait in the kernel's
/// backlog, so a runaway client (or a forward that reaches itself) cannot exhaust the process.
pub const MAX_CONNECTIONS: usize = 256;

/// A port on 127.0.0.1 that is free right now (the system's pick), to offer when the one a
/// forward asked for is taken. Only a suggestion: another program may take it before we do.
pub fn free_local_port() -> Option<u16> {
    std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// Refuses a forward whose target is its own listener: a sandbox served from this machine (its
/// server on loopback, like the app's demo) dials `127.0.0.1:remote_port` here, so a local port
/// equal to the remote one would accept its own tunnels, one connection opening the next.
pub fn check_target(api: &ApiClient, local_port: u16, remote_port: u16) -> Result<(), ForwardError> {
    let on_this_machine = crate::net::is_loopback(&api.endpoint().server.endpoint("/"));
    if on_this_machine && local_port == remote_port {
        return Err(ForwardError::OwnListener { port: local_port });
    }
    Ok(())
}

/// [`serve_limited`] with [`MAX_CONNECTIONS`].
pub async fn serve(
    listener: TcpListener,
    api: ApiClient,
    remote_port: u16,
    stats: Arc<ForwardStats>,
    stop: CancellationToken,
) {
    serve_limited(listener, api, remote_port, stats, MAX_CONNECTIONS, stop).await
}

/// How long a stopped forward waits for its connections to tell the pod they are over.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Accepts connections until `stop` is cancelled (or the future dropped), at most
/// `max_connections` at once; each connection gets its own task and WebSocket, so one slow or
/// failing connection never blocks the others. The tasks belong to this future: dropping or
/// aborting it closes every connection it carries. A stop closes the listener and ends each
/// tunnel with a Close the pod hears (within [`STOP_GRACE`]): a tunnel merely dropped would be
/// held open there for a resume (v2), its pod-side connection with it. A failing `accept`
/// (EMFILE…) backs off 50 ms → 1 s and is reported once per episode.
pub async fn serve_limited(
    listener: TcpListener,
    api: ApiClient,
    remote_port: u16,
    stats: Arc<ForwardStats>,
    max_connections: usize,
    stop: CancellationToken,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // A slot first: at the cap nothing more is accepted until a connection ends.
        let slot = tokio::select! {
            _ = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (socket, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => {
                    backoff = FIRST_BACKOFF;
                    c
                }
                Err(e) => {
                    // EMFILE and friends: report once per episode, back off, keep serving.
                    if backoff == FIRST_BACKOFF {
                        tracing::warn!(remote_port, "accept failed: {e}; retrying");
                        stats.failed(format!("accept failed: {e}; close some connections or raise the open-file limit"));
                    }
                    drop(slot);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (api, stats, stop) = (api.clone(), stats.clone(), stop.clone());
        connections.spawn(async move {
            let _slot = slot;
            stats.total.fetch_add(1, Ordering::Relaxed);
            stats.active.fetch_add(1, Ordering::Relaxed);
            match forward_one(socket, &api, remote_port, &stats, &stop).await {
                Ok(()) | Err(TunnelError::Splice(SpliceError::Stopped)) => {}
                Err(e) => {
                    tracing::warn!(%peer, remote_port, "forwarded connection failed: {e}");
                    stats.failed(e.to_string());
                }
            }
            stats.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    let ended = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(STOP_GRACE, ended).await;
}

async fn forward_one(
    mut socket: TcpStream,
    api: &ApiClient,
    remote_port: u16,
    stats: &ForwardStats,
    stop: &CancellationToken,
) -> Result<(), TunnelError> {
    let result = carry(&mut socket, api, remote_port, stats, stop).await;
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
    stop: &CancellationToken,
) -> Result<(), TunnelError> {
    socket.set_nodelay(true)?;
    // Borrowed halves: the socket stays ours, to be reset on a failure (an owned write half
    // would send a FIN as it drops).
    let (r, w) = socket.split();
    let opts = SpliceOptions { traffic: Some(&stats.traffic), stop: Some(stop), ..Default::default() };
    tunnel::carry(api, remote_port, TcpSource::new(r), w, opts, Some(&stats.resuming)).await
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
    tunnel::carry(api, remote_port, Plain(input), output, SpliceOptions::default(), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::test_client as client;

    /// A forward holds at most its cap of connections: beyond it the loop stops accepting
    /// (they wait in the kernel's backlog), so a loop or a flood cannot exhaust descriptors.
    #[tokio::test]
    async fn connections_beyond_the_cap_wait_unaccepted() {
        // A server that takes TCP connections and never answers: every tunnel stays opening.
        let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = client(&format!("http://{}", black_hole.local_addr().unwrap()));
        let listener = bind_local(0).await.unwrap();
        let local = listener.local_addr().unwrap();
        let stats = Arc::new(ForwardStats::default());
        let serving = tokio::spawn(serve_limited(listener, api, 8000, stats.clone(), 4, Default::default()));
        let mut clients = Vec::new();
        for _ in 0..10 {
            clients.push(TcpStream::connect(local).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(stats.total.load(Ordering::Relaxed), 4, "accepted beyond the cap");
        assert_eq!(stats.active.load(Ordering::Relaxed), 4);
        serving.abort();
        let _ = serving.await;
        drop(black_hole);
    }
}
