//! A fault-injecting TCP proxy for tests: sits on loopback between a client (our CLI) and a
//! server (the agent, or the nginx gateway) and, on command:
//!
//! - **black hole** ([`FaultProxy::black_hole`], also [`FaultProxy::stall`]): a dead network.
//!   Nothing is carried either way and nothing is closed; new connections get no answer (the
//!   kernel completes their handshake, the proxy neither reads them nor dials the server). On
//!   [`FaultProxy::heal`] the bytes held meanwhile flow again; a connection that arrived during
//!   the outage reaches the server only if its client is still there (one that gave up and
//!   closed is dropped, as its SYN would have been lost);
//! - **resets** one connection ([`FaultProxy::reset_one`]) or all ([`FaultProxy::reset_all`]):
//!   both ends get an RST (`SO_LINGER 0`);
//! - **resets after N bytes** ([`FaultProxy::reset_after`], [`FaultProxy::reset_every`]): every
//!   connection is reset once N more bytes have been carried one way, to cut a transfer half-way;
//! - **restarts** ([`FaultProxy::restart`]): every connection reset and the listener closed,
//!   then bound again on the same port (a gateway pod rolling);
//! - **refuses** new connections ([`FaultProxy::refuse`]) while open ones keep flowing;
//! - adds **latency** ([`FaultProxy::set_latency`]) one way, to every chunk in both directions.
//!
//! It counts connections and bytes, so a test can wait for a transfer to be under way.
//!
//! Everything runs on a runtime of its own, so the proxy works the same from a plain `#[test]`
//! and from inside `#[tokio::test]`; dropping the [`FaultProxy`] stops that runtime, which ends
//! every task and closes every socket it holds.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A direction through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → server (an upload).
    Up,
    /// Server → client (a download).
    Down,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
        }
    }
}

/// What the proxy does with traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Carry bytes both ways.
    Forward,
    /// A dead network: carry nothing, close nothing, answer no new connection.
    BlackHole,
    /// Not listening: new connections are refused (existing ones keep flowing).
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by every reset of all connections: connections from an older epoch abort.
    epoch: u64,
    /// Bumped by every restart: the listener is closed and bound again.
    listener: u64,
    /// Added to every chunk, each way.
    latency: Duration,
}

/// A reset armed to fire once `at` bytes in all have been carried in `dir`.
#[derive(Debug, Clone, Copy)]
struct Trigger {
    dir: Dir,
    at: u64,
    /// Re-armed `every` bytes later while `left` > 0.
    every: u64,
    left: u32,
}

struct Shared {
    state: watch::Sender<State>,
    /// Open connections: id → its own reset switch.
    conns: Mutex<BTreeMap<u64, watch::Sender<bool>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    /// Bytes carried so far, per [`Dir::index`].
    bytes: [AtomicU64; 2],
    triggers: Mutex<Vec<Trigger>>,
    fired: AtomicU64,
}

impl Shared {
    fn reset_all(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Counts `n` bytes carried in `dir`; fires a trigger whose mark they reach (then true).
    fn carried(&self, dir: Dir, n: usize) -> bool {
        let total = self.bytes[dir.index()].fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let fire = {
            let mut triggers = self.triggers.lock().unwrap();
            match triggers.iter().position(|t| t.dir == dir && total >= t.at) {
                Some(i) => {
                    let t = triggers.remove(i);
                    if t.left > 0 {
                        triggers.push(Trigger { at: total + t.every, left: t.left - 1, ..t });
                    }
                    true
                }
                None => false,
            }
        };
        if fire {
            self.fired.fetch_add(1, Ordering::SeqCst);
            self.reset_all();
        }
        fire
    }
}

/// A running fault proxy; stopped (all its sockets closed) on drop.
pub struct FaultProxy {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    port: u16,
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
        let (state, _) =
            watch::channel(State { mode: Mode::Forward, epoch: 0, listener: 0, latency: Duration::ZERO });
        let shared = Arc::new(Shared {
            state,
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            triggers: Mutex::new(Vec::new()),
            fired: AtomicU64::new(0),
        });
        let s = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("register the fault proxy's listener");
            listen(Some(listener), port, upstream, s).await
        });
        FaultProxy { runtime: Some(runtime), shared, port }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (held ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now (held ones included).
    pub fn live(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Bytes carried in `dir` so far, over every connection.
    pub fn bytes(&self, dir: Dir) -> u64 {
        self.shared.bytes[dir.index()].load(Ordering::SeqCst)
    }

    /// Resets every open connection, both ways (`SO_LINGER 0`: the client and the server each
    /// get an RST). New connections are still accepted.
    pub fn reset_all(&self) {
        self.shared.reset_all();
    }

    /// Resets the newest open connection, both ways; false when none is open.
    pub fn reset_one(&self) -> bool {
        match self.shared.conns.lock().unwrap().last_key_value() {
            Some((_, kill)) => {
                kill.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// Resets every connection open then once `n` more bytes have been carried in `dir`.
    pub fn reset_after(&self, dir: Dir, n: u64) {
        self.reset_every(dir, n, 1);
    }

    /// `times` resets, each once `n` more bytes have been carried in `dir` since the one
    /// before (since now, for the first).
    pub fn reset_every(&self, dir: Dir, n: u64, times: u32) {
        if times == 0 {
            return;
        }
        let at = self.bytes(dir) + n;
        self.shared.triggers.lock().unwrap().push(Trigger { dir, at, every: n, left: times - 1 });
    }

    /// Resets fired by [`FaultProxy::reset_after`] and [`FaultProxy::reset_every`] so far.
    pub fn triggered(&self) -> u64 {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Resets armed and not fired yet.
    pub fn triggers_pending(&self) -> u64 {
        self.shared.triggers.lock().unwrap().iter().map(|t| 1 + t.left as u64).sum()
    }

    /// A dead network: stops carrying bytes both ways without closing anything, and answers no
    /// new connection, until [`FaultProxy::heal`].
    pub fn black_hole(&self) {
        self.shared.state.send_modify(|s| s.mode = Mode::BlackHole);
    }

    /// The same as [`FaultProxy::black_hole`].
    pub fn stall(&self) {
        self.black_hole();
    }

    /// Stops listening: new connections are refused; open ones keep flowing.
    pub fn refuse(&self) {
        self.shared.state.send_modify(|s| s.mode = Mode::Refuse);
    }

    /// Back to carrying bytes and accepting connections.
    pub fn heal(&self) {
        self.shared.state.send_modify(|s| s.mode = Mode::Forward);
    }

    /// The same as [`FaultProxy::heal`].
    pub fn resume(&self) {
        self.heal();
    }

    /// A restart: every connection reset, the listener closed (new connections refused) and,
    /// `down` later, bound again on the same port. Returns at once; a mode set meanwhile wins.
    pub fn restart(&self, down: Duration) {
        let mut restart = 0;
        self.shared.state.send_modify(|s| {
            s.epoch += 1;
            s.listener += 1;
            s.mode = Mode::Refuse;
            restart = s.listener;
        });
        let shared = self.shared.clone();
        self.runtime.as_ref().expect("running").spawn(async move {
            tokio::time::sleep(down).await;
            shared.state.send_if_modified(|s| {
                let still = s.listener == restart && s.mode == Mode::Refuse;
                if still {
                    s.mode = Mode::Forward;
                }
                still
            });
        });
    }

    /// Adds `latency` to every chunk carried, each way (so a round trip takes twice as long).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state.send_modify(|s| s.latency = latency);
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

/// Accepts while the mode allows it; closes the listener while refusing or restarting and
/// binds the same port again.
async fn listen(mut listener: Option<TcpListener>, port: u16, upstream: u16, shared: Arc<Shared>) {
    let mut state = shared.state.subscribe();
    let mut bound = state.borrow().listener;
    loop {
        let now = *state.borrow_and_update();
        if now.listener != bound {
            // Dropping it refuses (resets) what waits in its backlog.
            listener = None;
            bound = now.listener;
        }
        if now.mode == Mode::Refuse {
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
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            conn = l.accept() => {
                let Ok((client, _)) = conn else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let (kill, killed) = watch::channel(false);
                shared.conns.lock().unwrap().insert(id, kill);
                let shared = shared.clone();
                tokio::spawn(async move {
                    carry(client, upstream, &shared, killed).await;
                    shared.conns.lock().unwrap().remove(&id);
                });
            }
        }
    }
}

/// Why a connection ended badly.
struct Abort;

impl From<io::Error> for Abort {
    fn from(_: io::Error) -> Abort {
        Abort
    }
}

/// One proxied connection, until it ends (both directions at EOF) or is aborted (an error, a
/// reset ordered, a client that left while held): then both sockets get an RST.
async fn carry(mut client: TcpStream, upstream: u16, shared: &Shared, mut killed: watch::Receiver<bool>) {
    let mut state = shared.state.subscribe();
    let epoch = state.borrow().epoch;
    let mut server = None;
    let aborted = {
        let doomed = async {
            tokio::select! {
                _ = state.wait_for(|s| s.epoch != epoch) => {}
                _ = killed.wait_for(|k| *k) => {}
            }
        };
        tokio::select! {
            _ = doomed => true,
            r = run(&mut client, &mut server, upstream, shared, epoch) => r.is_err(),
        }
    };
    if aborted {
        let _ = client.set_zero_linger();
        if let Some(s) = &server {
            let _ = s.set_zero_linger();
        }
    }
}

async fn run(
    client: &mut TcpStream,
    server: &mut Option<TcpStream>,
    upstream: u16,
    shared: &Shared,
    epoch: u64,
) -> Result<(), Abort> {
    let mut state = shared.state.subscribe();
    let mut held = Vec::new();
    if state.borrow().mode == Mode::BlackHole {
        // Arrived during an outage: answered only once the network is back, and only if its
        // client is still there.
        flowing(&mut state).await?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match client.try_read(&mut buf) {
                Ok(0) => return Err(Abort),
                Ok(n) => held.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(Abort),
            }
        }
    }
    let s = server.insert(TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await?);
    let _ = (client.set_nodelay(true), s.set_nodelay(true));
    let (cr, cw) = client.split();
    let (sr, sw) = s.split();
    tokio::try_join!(
        pump(cr, sw, Dir::Up, held, shared, epoch),
        pump(sr, cw, Dir::Down, Vec::new(), shared, epoch)
    )?;
    Ok(())
}

/// Waits while the network is a black hole.
async fn flowing(state: &mut watch::Receiver<State>) -> Result<(), Abort> {
    state.wait_for(|s| s.mode != Mode::BlackHole).await.map(|_| ()).map_err(|_| Abort)
}

/// One direction: `first`, then what `r` reads, written to `w` after the latency, never while
/// black-holed; EOF is passed on as a half-close.
async fn pump(
    mut r: ReadHalf<'_>,
    mut w: WriteHalf<'_>,
    dir: Dir,
    first: Vec<u8>,
    shared: &Shared,
    epoch: u64,
) -> Result<(), Abort> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(16);
    let mut read_state = shared.state.subscribe();
    let reader = async move {
        if !first.is_empty() && tx.send((Instant::now(), first)).await.is_err() {
            return Ok(());
        }
        loop {
            // Not read while black-holed: the kernel's buffers fill, as on a dead network.
            flowing(&mut read_state).await?;
            let mut buf = vec![0u8; 64 * 1024];
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, Abort>(());
            }
            buf.truncate(n);
            if tx.send((Instant::now(), buf)).await.is_err() {
                return Ok(());
            }
        }
    };
    let mut state = shared.state.subscribe();
    let writer = async move {
        while let Some((read_at, buf)) = rx.recv().await {
            let latency = state.borrow().latency;
            tokio::time::sleep_until(read_at + latency).await;
            let mut buf = &buf[..];
            while !buf.is_empty() {
                flowing(&mut state).await?;
                // Several writes may complete in one poll: a reset ordered meanwhile stops the
                // next one, not only the next poll.
                if state.borrow().epoch != epoch {
                    return Err(Abort);
                }
                tokio::select! {
                    changed = state.changed() => changed.map_err(|_| Abort)?,
                    n = w.write(buf) => match n? {
                        0 => return Err(Abort),
                        n => {
                            buf = &buf[n..];
                            if shared.carried(dir, n) {
                                return Err(Abort);
                            }
                        }
                    },
                }
            }
        }
        w.shutdown().await?;
        Ok(())
    };
    tokio::try_join!(reader, writer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The proxy itself, against echo and download servers on loopback.

    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Dir, FaultProxy};
    use crate::{echo_server, eventually};

    const T: Duration = Duration::from_secs(10);
    const SHORT: Duration = Duration::from_millis(300);

    /// An echo server that also counts the connections it accepted.
    fn counting_echo() -> (u16, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, count)
    }

    /// A server that sends an endless stream of bytes to every connection.
    fn firehose() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let chunk = vec![5u8; 64 * 1024];
                    while s.write_all(&chunk).is_ok() {}
                });
            }
        });
        port
    }

    fn connect(fault: &FaultProxy) -> TcpStream {
        let c = TcpStream::connect(("127.0.0.1", fault.port())).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c
    }

    fn echo(c: &mut TcpStream, what: &[u8]) {
        c.write_all(what).unwrap();
        let mut buf = vec![0u8; what.len()];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, what);
    }

    fn nothing_arrives(c: &mut TcpStream) {
        c.set_read_timeout(Some(SHORT)).unwrap();
        let mut buf = [0u8; 16];
        let err = c.read(&mut buf).expect_err("bytes crossed a black hole");
        assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
        c.set_read_timeout(Some(T)).unwrap();
    }

    fn is_reset(c: &mut TcpStream) {
        let mut buf = vec![0u8; 1 << 20];
        let err = loop {
            match c.read(&mut buf) {
                Ok(0) => panic!("a clean end, not a reset"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }

    #[test]
    fn forwards_both_ways_and_counts_bytes_and_connections() {
        let fault = FaultProxy::start(echo_server());
        let mut c = connect(&fault);
        echo(&mut c, b"hello");
        assert_eq!(fault.accepted(), 1);
        assert_eq!(fault.live(), 1);
        // Counted just after the write: the reader may be quicker.
        assert!(eventually(T, || (fault.bytes(Dir::Up), fault.bytes(Dir::Down)) == (5, 5)));
        // A half-close is passed on: the echo server ends, so does the connection, cleanly.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert!(eventually(T, || fault.live() == 0));
    }

    #[test]
    fn a_black_hole_holds_open_and_new_connections_until_healed() {
        let (port, dialed) = counting_echo();
        let fault = FaultProxy::start(port);
        let mut open = connect(&fault);
        echo(&mut open, b"before");

        fault.black_hole();
        open.write_all(b"held").unwrap();
        nothing_arrives(&mut open);
        // A new connection: the handshake completes (the kernel's), nothing answers it and
        // the server is never dialed.
        let mut fresh = connect(&fault);
        fresh.write_all(b"fresh").unwrap();
        nothing_arrives(&mut fresh);
        // One whose client gives up during the outage never reaches the server.
        let mut quitter = connect(&fault);
        quitter.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        drop(quitter);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(dialed.load(Ordering::SeqCst), 1);

        fault.heal();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"held");
        let mut buf = [0u8; 5];
        fresh.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"fresh");
        echo(&mut fresh, b"after");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(dialed.load(Ordering::SeqCst), 2, "the abandoned connection reached the server");
    }

    #[test]
    fn a_black_hole_stops_a_stream_and_lets_it_go_on() {
        let fault = FaultProxy::start(firehose());
        let mut c = connect(&fault);
        let mut buf = vec![0u8; 1 << 20];
        c.read_exact(&mut buf).unwrap();
        fault.black_hole();
        // What was on the way (the kernel's buffers) drains, then nothing.
        c.set_read_timeout(Some(SHORT)).unwrap();
        while c.read(&mut buf).is_ok() {}
        let stopped = fault.bytes(Dir::Down);
        std::thread::sleep(SHORT);
        assert_eq!(fault.bytes(Dir::Down), stopped);
        fault.heal();
        c.set_read_timeout(Some(T)).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert!(fault.bytes(Dir::Down) > stopped);
    }

    #[test]
    fn reset_one_resets_the_newest_only_and_reset_all_every_one() {
        let fault = FaultProxy::start(echo_server());
        let (mut a, mut b) = (connect(&fault), connect(&fault));
        echo(&mut a, b"a");
        echo(&mut b, b"b");
        assert!(fault.reset_one());
        is_reset(&mut b);
        echo(&mut a, b"a still works");
        let mut c = connect(&fault);
        echo(&mut c, b"c");
        fault.reset_all();
        is_reset(&mut a);
        is_reset(&mut c);
        assert!(eventually(T, || fault.live() == 0));
        assert!(!fault.reset_one());
        // New connections still go through.
        echo(&mut connect(&fault), b"new");
    }

    #[test]
    fn reset_after_cuts_a_download_once_that_many_bytes_passed() {
        let fault = FaultProxy::start(firehose());
        let mut c = connect(&fault);
        let mut first = vec![0u8; 1 << 20];
        c.read_exact(&mut first).unwrap();
        let armed = fault.bytes(Dir::Down);
        fault.reset_after(Dir::Down, 8 << 20);
        assert_eq!(fault.triggers_pending(), 1);
        is_reset(&mut c);
        // At least the 8 MiB asked for, at most a chunk more.
        let carried = fault.bytes(Dir::Down) - armed;
        assert!(
            ((8 << 20)..=(8 << 20) + (64 << 10) + 4096).contains(&carried),
            "reset after {carried} bytes"
        );
        assert_eq!((fault.triggered(), fault.triggers_pending()), (1, 0));

        // reset_every: as many resets, each that many bytes after the last.
        fault.reset_every(Dir::Down, 2 << 20, 3);
        for n in 1..=3 {
            let mut c = connect(&fault);
            is_reset(&mut c);
            assert_eq!(fault.triggered(), 1 + n);
        }
        let mut c = connect(&fault);
        c.read_exact(&mut vec![0u8; 8 << 20]).expect("no reset armed any more");
    }

    #[test]
    fn reset_after_counts_uploads_too() {
        let fault = FaultProxy::start(echo_server());
        let mut c = connect(&fault);
        fault.reset_after(Dir::Up, 100);
        echo(&mut c, &[1u8; 50]);
        c.write_all(&[2u8; 60]).unwrap();
        is_reset(&mut c);
    }

    #[test]
    fn restart_resets_every_connection_and_listens_again_on_the_same_port() {
        let fault = FaultProxy::start(echo_server());
        let mut c = connect(&fault);
        echo(&mut c, b"before");
        fault.restart(Duration::from_millis(500));
        is_reset(&mut c);
        // Down for a while: refused.
        assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_err()));
        // Then back on the same port.
        assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_ok()));
        echo(&mut connect(&fault), b"after");
        // With no down time: the same, at once.
        let mut c = connect(&fault);
        echo(&mut c, b"x");
        fault.restart(Duration::ZERO);
        is_reset(&mut c);
        assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_ok()));
    }

    #[test]
    fn refuse_keeps_open_connections_and_resume_accepts_again() {
        let fault = FaultProxy::start(echo_server());
        let mut c = connect(&fault);
        // Accepted (not only in the backlog, which closing the listener resets).
        echo(&mut c, b"accepted");
        fault.refuse();
        assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_err()));
        echo(&mut c, b"open");
        fault.resume();
        assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_ok()));
    }

    #[test]
    fn latency_delays_every_chunk_each_way() {
        let fault = FaultProxy::start(echo_server());
        let mut c = connect(&fault);
        echo(&mut c, b"warm");
        fault.set_latency(Duration::from_millis(100));
        let t0 = Instant::now();
        echo(&mut c, b"slow");
        let rtt = t0.elapsed();
        assert!(rtt >= Duration::from_millis(200) && rtt < Duration::from_secs(2), "{rtt:?}");
        fault.set_latency(Duration::ZERO);
        let t0 = Instant::now();
        echo(&mut c, b"fast");
        assert!(t0.elapsed() < Duration::from_millis(150), "{:?}", t0.elapsed());
    }
}
