//! The raw-TCP WebSocket tunnel: its rules and the byte pump both ends run.
//!
//! Rules (from the original server): raw bytes travel in **binary** messages of at most
//! [`MAX_MESSAGE`] bytes; text messages are ignored; EOF on either side closes with 1000; a
//! failed dial on the pod closes with 1011 "dial failed".

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Largest binary message either end sends: the original server reads with a 32 KiB limit.
pub const MAX_MESSAGE: usize = 32 * 1024;

/// Close reason the pod sends when it cannot reach the target port.
pub const DIAL_FAILED: &str = "dial failed";

/// How often an idle tunnel end pings its peer. Idle proxies and load balancers commonly drop
/// sockets that were silent for 60 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

/// Largest WebSocket frame header (2 + 8 length + 4 mask bytes).
const MAX_FRAME_HEADER: usize = 14;

/// Smallest uplink read: interactive traffic (keystrokes, ssh packets) never needs more, and an
/// idle connection then holds no more than this. A read that fills it grows the next one to
/// [`MAX_MESSAGE`].
const SMALL_READ: usize = 4 * 1024;

/// WebSocket settings for a tunnel end: bounded frames and messages, so a peer cannot make us
/// buffer without limit, and no write buffering beyond one message (latency matters more).
///
/// The read buffer holds exactly one of our largest messages with its header: tungstenite
/// zero-fills the whole buffer's spare room before a read, so its default (128 KiB) makes every
/// connection that has received anything hold 128 KiB resident (measured: 138 KiB RSS per held
/// connection, now 40 KiB). The price is fewer bytes per read syscall under bulk load (measured
/// about 20% less single-stream throughput on loopback; see BENCHMARKS.md).
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
        .read_buffer_size(MAX_MESSAGE + MAX_FRAME_HEADER)
        .write_buffer_size(0)
}

/// Live byte counters of one or many tunnels (shown by the app and `status`).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read locally and sent into the WebSocket.
    pub sent: AtomicU64,
    /// Bytes received from the WebSocket and written locally.
    pub received: AtomicU64,
}

impl Traffic {
    /// `(sent, received)` right now.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// Knobs of [`splice`].
#[derive(Debug, Clone)]
pub struct SpliceOptions<'a> {
    /// Ping the peer this often; `None` disables keepalive.
    pub ping_interval: Option<Duration>,
    /// Counters to add this tunnel's bytes to.
    pub traffic: Option<&'a Traffic>,
}

impl Default for SpliceOptions<'_> {
    fn default() -> Self {
        SpliceOptions { ping_interval: Some(DEFAULT_PING_INTERVAL), traffic: None }
    }
}

/// Why a tunnel ended, when it did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The local side failed.
    #[error("local connection failed: {0}")]
    Local(io::Error),
    /// The WebSocket failed.
    #[error("WebSocket failed: {0}")]
    WebSocket(WsError),
    /// The peer closed with a code other than 1000.
    #[error("{}", describe_close(.0))]
    Closed(CloseFrame),
    /// No message at all (not even a pong) for three ping intervals.
    #[error("no reply from the other end for {}s; the network or a proxy dropped the tunnel", .0.as_secs())]
    PeerSilent(Duration),
}

fn describe_close(c: &CloseFrame) -> String {
    if c.reason == DIAL_FAILED {
        "nothing is listening on that port inside the sandbox (the pod could not dial it)".into()
    } else {
        format!("the other end closed the tunnel: {} {}", u16::from(c.code), c.reason)
    }
}

/// Pumps bytes between a WebSocket and a local byte stream until either side ends.
///
/// One task, no spawned helpers: the two directions are polled together, so a byte goes from
/// one socket to the other without a hop through a channel. Local EOF sends Close 1000 and then
/// waits (briefly) for the peer's Close; the peer's Close shuts the local writer down. Returns
/// `Ok` for a clean 1000 close from either side.
pub async fn splice<S, R, W>(
    ws: WebSocketStream<S>,
    mut local_read: R,
    mut local_write: W,
    opts: SpliceOptions<'_>,
) -> Result<(), SpliceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    // Milliseconds since `start` when the peer was last heard from. An atomic rather than a
    // `Cell` only so the future stays `Send`; both halves run on the same task.
    let start = Instant::now();
    let last_heard = AtomicU64::new(0);
    let traffic = opts.traffic;

    // Local → WebSocket, with keepalive pings interleaved.
    let uplink = async {
        let period = opts.ping_interval.unwrap_or(Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        // One buffer for the tunnel's life: once a sent message's bytes are dropped, `reserve`
        // reclaims the same allocation, so the steady state allocates nothing per message. It
        // starts small (idle and interactive tunnels stay small) and grows to a full message
        // as soon as a read fills it (bulk transfer).
        let mut want = SMALL_READ;
        let mut buf = BytesMut::with_capacity(want);
        loop {
            buf.reserve(want);
            tokio::select! {
                biased;
                // `read_buf` is cancel-safe, so losing the race to a ping tick loses no bytes.
                n = local_read.read_buf(&mut buf) => {
                    let n = n.map_err(SpliceError::Local)?;
                    if n == 0 {
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        // The peer may already be gone; the downlink reports that.
                        let _ = sink.send(Message::Close(Some(close))).await;
                        return Ok(());
                    }
                    if n >= want {
                        want = MAX_MESSAGE;
                    }
                    if let Some(t) = traffic {
                        t.sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    // `reserve` may have handed us more than one message's room.
                    while !buf.is_empty() {
                        let part = buf.split_to(buf.len().min(MAX_MESSAGE)).freeze();
                        sink.send(Message::Binary(part)).await.map_err(SpliceError::WebSocket)?;
                    }
                }
                _ = ticker.tick(), if opts.ping_interval.is_some() => {
                    let heard = start + Duration::from_millis(last_heard.load(Ordering::Relaxed));
                    if heard.elapsed() > period * 3 {
                        return Err(SpliceError::PeerSilent(period * 3));
                    }
                    sink.send(Message::Ping(Default::default()))
                        .await
                        .map_err(SpliceError::WebSocket)?;
                }
            }
        }
    };

    // WebSocket → local.
    let downlink = async {
        loop {
            let msg = match stream.next().await {
                Some(Ok(m)) => m,
                Some(Err(WsError::ConnectionClosed)) | None => {
                    let _ = local_write.shutdown().await;
                    return Ok(());
                }
                Some(Err(e)) => return Err(SpliceError::WebSocket(e)),
            };
            last_heard.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            match msg {
                Message::Binary(data) => {
                    // Counted before the write, so a reader that has the bytes sees them counted.
                    if let Some(t) = traffic {
                        t.received.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    local_write.write_all(&data).await.map_err(SpliceError::Local)?;
                    local_write.flush().await.map_err(SpliceError::Local)?;
                }
                Message::Close(frame) => {
                    let _ = local_write.shutdown().await;
                    return match frame {
                        Some(f) if f.code != CloseCode::Normal => Err(SpliceError::Closed(f)),
                        _ => Ok(()),
                    };
                }
                // Pings are answered by tungstenite itself; text is ignored by contract.
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    };

    let result = {
        tokio::pin!(uplink, downlink);
        tokio::select! {
            r = &mut downlink => r,
            r = &mut uplink => match r {
                // Local EOF: give the peer a moment to answer our Close and flush what it had.
                Ok(()) => tokio::time::timeout(Duration::from_secs(5), downlink).await.unwrap_or(Ok(())),
                Err(e) => Err(e),
            },
        }
    };
    // tungstenite queues its reply to the peer's Close; flush it so the peer sees a clean close
    // handshake rather than a reset.
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    result
}
