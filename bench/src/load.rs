//! The load generator and the target server: every contender is measured by this one tool.
//!
//! Wire protocol (client → target): a 9-byte header `[mode, len: u64 LE]`, then
//! - `U` (upload): the client sends `len` pattern bytes; the target verifies them and answers one
//!   byte, 1 = all bytes correct. No half-close is needed (WebSocket tunnels do not carry one).
//! - `D` (download): the target sends `len` pattern bytes; the client verifies them.
//! - `E` (echo): the target echoes everything until EOF.
//!
//! The pattern is pseudo-random with a period that is not a power of two, so a dropped,
//! duplicated or reordered block shows up as a mismatch.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const PERIOD: usize = (1 << 20) + 13;
/// Largest write/read the generator issues.
pub const CHUNK: usize = 256 * 1024;

const UPLOAD: u8 = b'U';
const DOWNLOAD: u8 = b'D';
const ECHO: u8 = b'E';

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(PERIOD + CHUNK);
        while v.len() < PERIOD {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(PERIOD);
        let head = v[..CHUNK].to_vec();
        v.extend_from_slice(&head);
        v
    })
}

/// `len` (≤ [`CHUNK`]) pattern bytes starting at stream offset `off`.
pub fn pattern_at(off: u64, len: usize) -> &'static [u8] {
    let start = (off % PERIOD as u64) as usize;
    &pattern()[start..start + len]
}

fn header(mode: u8, len: u64) -> [u8; 9] {
    let mut h = [0u8; 9];
    h[0] = mode;
    h[1..].copy_from_slice(&len.to_le_bytes());
    h
}

/// Serves the target protocol until the future is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let _ = handle(socket).await;
        });
    }
}

async fn handle(mut s: TcpStream) -> io::Result<()> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).await?;
    let len = u64::from_le_bytes(h[1..].try_into().expect("8 bytes"));
    match h[0] {
        UPLOAD => {
            let ok = receive_verify(&mut s, len).await?;
            s.write_all(&[ok as u8]).await?;
            // Let the client close first.
            let _ = s.read(&mut [0u8; 1]).await;
        }
        DOWNLOAD => {
            send_pattern(&mut s, len).await?;
            let _ = s.read(&mut [0u8; 1]).await;
        }
        ECHO => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn receive_verify(s: &mut TcpStream, len: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; CHUNK];
    let (mut off, mut ok) = (0u64, true);
    while off < len {
        let want = (len - off).min(CHUNK as u64) as usize;
        let n = s.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        ok &= buf[..n] == *pattern_at(off, n);
        off += n as u64;
    }
    Ok(ok)
}

async fn send_pattern(s: &mut TcpStream, len: u64) -> io::Result<()> {
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        s.write_all(pattern_at(off, n)).await?;
        off += n as u64;
    }
    Ok(())
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Direction of a bulk transfer, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → target.
    Up,
    /// Target → client.
    Down,
}

/// A bulk transfer that has not finished after this long counts as stalled (a contender lost or
/// held back bytes) rather than hanging the run.
const BULK_DEADLINE: Duration = Duration::from_secs(120);

/// One bulk transfer of `len` bytes; the time from the first header byte to the last byte (or
/// the verdict) received.
pub async fn bulk(addr: SocketAddr, dir: Direction, len: u64) -> anyhow::Result<Duration> {
    match tokio::time::timeout(BULK_DEADLINE, bulk_inner(addr, dir, len)).await {
        Ok(r) => r,
        Err(_) => bail!("{dir:?} of {len} bytes stalled: not finished after {BULK_DEADLINE:?}"),
    }
}

async fn bulk_inner(addr: SocketAddr, dir: Direction, len: u64) -> anyhow::Result<Duration> {
    let mut s = connect(addr).await?;
    let t0 = Instant::now();
    match dir {
        Direction::Up => {
            s.write_all(&header(UPLOAD, len)).await?;
            send_pattern(&mut s, len).await.context("sending")?;
            let mut verdict = [0u8; 1];
            s.read_exact(&mut verdict).await.context("reading the verdict")?;
            let took = t0.elapsed();
            if verdict[0] != 1 {
                bail!("upload of {len} bytes arrived corrupted");
            }
            Ok(took)
        }
        Direction::Down => {
            s.write_all(&header(DOWNLOAD, len)).await?;
            let ok = receive_verify(&mut s, len).await.context("receiving")?;
            let took = t0.elapsed();
            if !ok {
                bail!("download of {len} bytes arrived corrupted");
            }
            Ok(took)
        }
    }
}

/// `streams` concurrent bulk transfers of `len_each` bytes; the wall time of all of them.
pub async fn parallel(
    addr: SocketAddr,
    dir: Direction,
    streams: usize,
    len_each: u64,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..streams).map(|_| tokio::spawn(bulk(addr, dir, len_each))).collect();
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}

/// Ping-pong of `size`-byte messages on one connection; one round-trip time per iteration
/// after `warmup` unrecorded ones.
pub async fn pingpong(
    addr: SocketAddr,
    size: usize,
    iters: usize,
    warmup: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut s = connect(addr).await?;
    s.write_all(&header(ECHO, 0)).await?;
    let mut out = Vec::with_capacity(iters);
    let mut buf = vec![0u8; size];
    for i in 0..warmup + iters {
        let msg = pattern_at(i as u64 * 7919, size);
        let t0 = Instant::now();
        s.write_all(msg).await?;
        s.read_exact(&mut buf).await.context("reading the echo")?;
        let rtt = t0.elapsed();
        if buf != msg {
            bail!("echo of {size} bytes came back corrupted");
        }
        if i >= warmup {
            out.push(rtt);
        }
    }
    Ok(out)
}

/// Opens a connection, sends one byte and waits for its echo.
async fn open_echo(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = connect(addr).await?;
    let mut first = header(ECHO, 0).to_vec();
    first.push(0x5a);
    s.write_all(&first).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.context("waiting for the first echoed byte")?;
    if b[0] != 0x5a {
        bail!("echoed byte corrupted");
    }
    Ok(s)
}

/// Connection setup: from `connect()` to the first byte echoed, `iters` times in a row.
pub async fn setup(addr: SocketAddr, iters: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        let s =
            tokio::time::timeout(Duration::from_secs(10), open_echo(addr)).await.context("timed out")??;
        out.push(t0.elapsed());
        drop(s);
    }
    Ok(out)
}

/// Connections held open at once, and the ones that failed to open.
pub struct Held {
    pub conns: Vec<TcpStream>,
    pub errors: Vec<String>,
}

/// Opens `n` echo connections (at most `concurrency` being set up at a time) and keeps them.
pub async fn open_many(addr: SocketAddr, n: usize, concurrency: usize) -> Held {
    let sem = Arc::new(Semaphore::new(concurrency));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                tokio::time::timeout(Duration::from_secs(30), open_echo(addr)).await.context("timed out")?
            })
        })
        .collect();
    let mut held = Held { conns: Vec::with_capacity(n), errors: Vec::new() };
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => held.conns.push(s),
            Ok(Err(e)) => held.errors.push(format!("{e:#}")),
            Err(e) => held.errors.push(e.to_string()),
        }
    }
    held
}

/// Sends one byte on every held connection and checks its echo; returns the failures.
pub async fn ping_all(conns: Vec<TcpStream>) -> Vec<String> {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let round = async {
                    s.write_all(&[0xa5]).await?;
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).await?;
                    anyhow::ensure!(b[0] == 0xa5, "echoed byte corrupted");
                    anyhow::Ok(())
                };
                tokio::time::timeout(Duration::from_secs(30), round).await.context("timed out")?
            })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}

/// How long a tunnel may take to carry bytes again after a fault before it counts as broken.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);

/// Times to recover on one echo connection through a tunnel whose network fails.
#[derive(Debug, Default)]
pub struct Recovery {
    /// From a reset (the network usable again at once) to the first byte echoed.
    pub after_reset: Vec<Duration>,
    /// From the network coming back after an outage (every connection reset, new ones refused)
    /// to the byte written during the outage echoed.
    pub after_outage: Vec<Duration>,
}

/// One byte out and its echo back, within [`RECOVERY_DEADLINE`].
async fn echo_byte(s: &mut TcpStream, b: u8) -> anyhow::Result<()> {
    let round = async {
        s.write_all(&[b]).await?;
        let mut back = [0u8; 1];
        s.read_exact(&mut back).await?;
        anyhow::ensure!(back[0] == b, "echoed byte corrupted");
        anyhow::Ok(())
    };
    tokio::time::timeout(RECOVERY_DEADLINE, round).await.context("no echo within 10 s")?
}

/// On one echo connection through `addr` (a tunnel whose network is `relay`): `iters` resets,
/// then `iters` outages of `outage`, each timed to the first byte echoed after the network is
/// back. Fails at the first fault the connection does not survive.
pub async fn recovery(
    addr: SocketAddr,
    relay: &crate::fault::Resettable,
    iters: usize,
    outage: Duration,
) -> anyhow::Result<Recovery> {
    let mut s = connect(addr).await?;
    s.write_all(&header(ECHO, 0)).await?;
    echo_byte(&mut s, 1).await.context("before any fault")?;
    let mut r = Recovery::default();
    for i in 0..iters {
        // A quiet moment first: the tunnel idle, as between keystrokes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        relay.reset_all();
        let t0 = Instant::now();
        echo_byte(&mut s, i as u8)
            .await
            .with_context(|| format!("the connection did not survive reset {}", i + 1))?;
        r.after_reset.push(t0.elapsed());
    }
    for i in 0..iters {
        echo_byte(&mut s, 2).await?;
        relay.down();
        s.write_all(&[i as u8]).await?;
        tokio::time::sleep(outage).await;
        relay.up();
        let t0 = Instant::now();
        let mut back = [0u8; 1];
        tokio::time::timeout(RECOVERY_DEADLINE, s.read_exact(&mut back))
            .await
            .context("no echo within 10 s")?
            .with_context(|| format!("the connection did not survive outage {}", i + 1))?;
        anyhow::ensure!(back[0] == i as u8, "echoed byte corrupted");
        r.after_outage.push(t0.elapsed());
    }
    Ok(r)
}
