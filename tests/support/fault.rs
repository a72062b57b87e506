//! A fault-injecting TCP proxy for tests: sits on loopback between a client (our CLI) and a
//! server (the agent, or the nginx gateway) and, on command, resets every connection, black-holes
//! them (stops forwarding without closing, as a dead NAT mapping or a sleeping laptop does),
//! refuses new connections, and resumes.
//!
//! Everything runs on a runtime of its own, so the proxy works the same from a plain `#[test]`
//! and from inside `#[tokio::test]`; dropping the [`FaultProxy`] stops that runtime, which ends
//! every task and closes every socket it holds.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Carry bytes both ways.
    Forward,
    /// Carry nothing, close nothing; new connections are accepted and held too.
    Stall,
    /// Not listening: new connections are refused (existing ones keep flowing).
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by every reset: connections from an older epoch abort.
    epoch: u64,
}

/// A running fault proxy; stopped (all its sockets closed) on drop.
pub struct FaultProxy {
    runtime: Option<tokio::runtime::Runtime>,
    state: watch::Sender<State>,
    port: u16,
    accepted: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fault proxy runtime");
        // Bound here, registered with the proxy's runtime inside it (no `block_on`: that would
        // panic when the caller is itself on a runtime).
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fault proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (state, watcher) = watch::channel(State { mode: Mode::Forward, epoch: 0 });
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("register the fault proxy's listener");
            listen(Some(listener), port, upstream, watcher, counter).await
        });
        FaultProxy { runtime: Some(runtime), state, port, accepted }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Resets every open connection, both ways (`SO_LINGER 0`: the client and the server each
    /// get an RST). New connections are still accepted.
    pub fn reset_all(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Stops carrying bytes without closing anything (a black hole).
    pub fn stall(&self) {
        self.state.send_modify(|s| s.mode = Mode::Stall);
    }

    /// Stops listening: new connections are refused.
    pub fn refuse(&self) {
        self.state.send_modify(|s| s.mode = Mode::Refuse);
    }

    /// Back to carrying bytes and accepting connections.
    pub fn resume(&self) {
        self.state.send_modify(|s| s.mode = Mode::Forward);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Allowed inside an async context too, unlike dropping the runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Accepts while the mode allows it; closes the listener while refusing and binds the same
/// port again on resume.
async fn listen(
    mut listener: Option<TcpListener>,
    port: u16,
    upstream: u16,
    mut state: watch::Receiver<State>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let mode = state.borrow_and_update().mode;
        if mode == Mode::Refuse {
            listener = None;
            if state.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            conn = l.accept() => {
                let Ok((client, _)) = conn else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(carry(client, upstream, state.clone()));
            }
        }
    }
}

/// One proxied connection: both directions in one loop, so a reset or a stall takes effect
/// between any two reads or writes.
async fn carry(client: TcpStream, upstream: u16, mut state: watch::Receiver<State>) {
    let epoch = state.borrow().epoch;
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut up_open, mut down_open) = (true, true);
    let aborted = loop {
        let now = *state.borrow_and_update();
        if now.epoch != epoch {
            break true;
        }
        if !up_open && !down_open {
            break false;
        }
        if now.mode == Mode::Stall {
            if state.changed().await.is_err() {
                break true;
            }
            continue;
        }
        let step = tokio::select! {
            changed = state.changed() => changed.map_err(|_| io::ErrorKind::Other.into()).map(|_| Step::Moved),
            n = cr.read(&mut up), if up_open => match n {
                Ok(0) => sw.shutdown().await.map(|_| Step::UpEof),
                Ok(n) => write(&mut sw, &up[..n], &mut state, epoch).await.map(|_| Step::Moved),
                Err(e) => Err(e),
            },
            n = sr.read(&mut down), if down_open => match n {
                Ok(0) => cw.shutdown().await.map(|_| Step::DownEof),
                Ok(n) => write(&mut cw, &down[..n], &mut state, epoch).await.map(|_| Step::Moved),
                Err(e) => Err(e),
            },
        };
        match step {
            Ok(Step::UpEof) => up_open = false,
            Ok(Step::DownEof) => down_open = false,
            Ok(Step::Moved) => {}
            Err(_) => break true,
        }
    };
    if aborted {
        let (client, server) = (cr.reunite(cw), sr.reunite(sw));
        if let Ok(c) = client {
            let _ = c.set_zero_linger();
        }
        if let Ok(s) = server {
            let _ = s.set_zero_linger();
        }
    }
}

enum Step {
    Moved,
    UpEof,
    DownEof,
}

/// Writes all of `buf`, giving up (as an error) when a reset is ordered meanwhile and waiting
/// while stalled.
async fn write(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    mut buf: &[u8],
    state: &mut watch::Receiver<State>,
    epoch: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        let now = *state.borrow_and_update();
        if now.epoch != epoch {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        if now.mode == Mode::Stall {
            state.changed().await.map_err(|_| io::Error::from(io::ErrorKind::Other))?;
            continue;
        }
        tokio::select! {
            changed = state.changed() => changed.map_err(|_| io::Error::from(io::ErrorKind::Other))?,
            n = w.write(buf) => match n? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            },
        }
    }
    Ok(())
}
