//! The raw-TCP WebSocket tunnel: its rules and the byte pump both ends run.
//!
//! Rules (from the original server): raw bytes travel in **binary** messages of at most
//! [`MAX_MESSAGE`] bytes; EOF on either side closes with 1000; a failed dial on the pod closes
//! with 1011 "dial failed". A client's text message closes the tunnel with 1003 (a client
//! ignores a server's, as the original contract says); a Close with a code no endpoint may
//! send, like any other protocol error, with 1002.
//!
//! Why a pump of our own instead of a WebSocket library's message API: a tunnel is a byte
//! stream, not a sequence of messages. Message APIs read each message into a fresh buffer and
//! copy each outgoing frame into a write buffer; this pump streams frames instead. Received
//! payload is unmasked in place in the read buffer and written straight to the local side;
//! local bytes are masked in place and go out with their frame headers in one `writev`; both
//! directions run in one task with no lock or channel between them; buffers start small (idle
//! tunnels stay small) and grow only under bulk load. Measured in BENCHMARKS.md.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Interval, Sleep};
use tokio_util::io::poll_read_buf;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::frame::{self, Header, OpCode, ProtocolError, MAX_HEADER};
use crate::local::{KernelQueue, LocalRead, Plain};
use crate::resume::{Control, Stream, ACK_DELAY, ACK_EVERY, MAX_CONTROL};

/// Largest binary message either end sends: the original server reads with a 32 KiB limit.
pub const MAX_MESSAGE: usize = 32 * 1024;

/// Close reason the pod sends when it cannot reach the target port.
pub const DIAL_FAILED: &str = "dial failed";

/// Close codes this crate sends.
pub const CLOSE_NORMAL: u16 = 1000;

/// Close code of an end that is going away: a stopped forward, whose tunnel must not resume.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Reason of the Close 1001 that ends a stopped tunnel.
const STOPPED: &str = "stopped";
/// Close code for a peer that broke the protocol.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code for a message kind a tunnel does not carry (a client's text message).
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// Close code for "the server could not do it" (a failed dial).
pub const CLOSE_ERROR: u16 = 1011;
/// The code a Close frame without a payload stands for.
const CLOSE_NO_STATUS: u16 = 1005;

/// How often an idle tunnel end pings its peer. Idle proxies and load balancers commonly drop
/// sockets that were silent for 60 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

/// Buffer size of an idle or interactive tunnel (keystrokes, ssh packets never need more).
const SMALL_BUFFER: usize = 4 * 1024;

/// Buffer size once a read has filled the small one (bulk transfer): one read and one
/// `writev` move up to this much, so wake-ups per byte — the cost that dominates on loopback,
/// more than copying — stay low. Measured on 2 cores, one stream through proxy and agent:
/// 256 KiB 9.2 Gbit/s, 1 MiB 11.5, 4 MiB 11.5.
const LARGE_BUFFER: usize = 32 * MAX_MESSAGE;

/// v2: the least room a send buffer shared with kept batches must have left to take the next
/// read; below it a spare (or fresh) buffer takes over.
const PACK_MIN: usize = LARGE_BUFFER / 16;

/// Most frames one uplink batch holds.
const BATCH: usize = LARGE_BUFFER / MAX_MESSAGE;

/// Most slices handed to one `writev` downlink (one per received frame).
const MAX_IOV: usize = 64;

/// Unsent control frames (pongs owed to the peer) above which we stop reading from the peer.
const CONTROL_BACKLOG: usize = 4 * 1024;

/// How long a tunnel waits for a peer that stopped reading to take our last frames once both
/// Closes are known, and — without keepalive — how long a tunnel whose local side ended waits
/// in silence for the peer's Close (with keepalive, the silence rule of three intervals applies).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How long a stopped tunnel waits for its Close 1001 to be written.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// Which end of the WebSocket we are: clients mask what they send, servers do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    /// A fresh mask for one outgoing frame (RFC 6455 §5.3: unpredictable, from a strong source).
    fn mask(self) -> Option<[u8; 4]> {
        match self {
            Role::Client => Some(rand::random()),
            Role::Server => None,
        }
    }
}

/// The WebSocket under one tunnel, after its HTTP upgrade.
#[derive(Debug)]
pub struct TunnelSocket<S> {
    io: S,
    role: Role,
    /// Bytes the handshake read past its end: the start of the first frames.
    read_ahead: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TunnelSocket<S> {
    /// Wraps an upgraded connection; `read_ahead` is what the handshake read beyond the 101.
    pub fn new(io: S, role: Role, read_ahead: &[u8]) -> Self {
        TunnelSocket { io, role, read_ahead: BytesMut::from(read_ahead) }
    }

    /// Closes the WebSocket with `code` and `reason` without carrying anything (a failed dial).
    pub async fn close(mut self, code: u16, reason: &str) -> io::Result<()> {
        let close =
            frame::control_frame(OpCode::Close, &frame::close_payload(code, reason), self.role.mask());
        self.io.write_all(&close).await?;
        self.io.flush().await?;
        // Read until the peer answers and hangs up: closing with its bytes unread would reset the
        // connection, and a reset can discard our Close before the peer has read it.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut sink = [0u8; 512];
            while matches!(self.io.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        self.io.shutdown().await
    }

    /// v2: answers a resume of a tunnel that already ended cleanly, whose client lost the leg
    /// before the end reached it — our stream's length (`eof N`), then Close 1000.
    pub async fn end_resumed(mut self, stream_len: u64) -> io::Result<()> {
        let eof = frame::text_frame(Control::Eof(stream_len).encode().as_bytes(), self.role.mask());
        self.io.write_all(&eof).await?;
        self.close(CLOSE_NORMAL, "").await
    }
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
    /// Half-close (our agent): the peer's Close 1000 ends only the peer's direction. The local
    /// writer is shut down (the target reads EOF) and what the local side still sends goes on
    /// to the peer until the local EOF; only then do we answer with our Close. RFC 6455 allows
    /// it (an endpoint may send data until it sends its own Close); a peer that wants no more
    /// simply hangs up. Off, the peer's Close is answered at once (the original server).
    pub half_close: bool,
    /// Cancelled when the user stops the forward: the tunnel ends with a Close 1001 ("going
    /// away") rather than a dropped connection, which a v2 peer would hold open for a resume.
    pub stop: Option<&'a CancellationToken>,
}

impl Default for SpliceOptions<'_> {
    fn default() -> Self {
        SpliceOptions {
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            traffic: None,
            half_close: false,
            stop: None,
        }
    }
}

/// Why a tunnel ended, when it did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The local side failed.
    #[error("the local connection failed: {0}")]
    Local(io::Error),
    /// The connection under the WebSocket failed (a reset: the network, a proxy or a gateway).
    #[error("{}", describe_io(.0))]
    WebSocket(io::Error),
    /// The peer broke RFC 6455.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The client sent a message kind a tunnel does not carry (text).
    #[error("the other end sent a {0}, which a tunnel does not carry")]
    Unsupported(&'static str),
    /// The peer closed with a code other than 1000.
    #[error("{}", describe_close(*.code, .reason))]
    Closed { code: u16, reason: String },
    /// The connection ended without a Close frame.
    #[error("the other end hung up without closing the tunnel: it stopped or restarted, or the network dropped the connection")]
    Dropped,
    /// No message at all (not even a pong) for three ping intervals.
    #[error("no reply from the other end for {}s: the network or a proxy stalled the tunnel", .0.as_secs())]
    PeerSilent(Duration),
    /// Stopped on this side ([`SpliceOptions::stop`]); the peer was told.
    #[error("stopped")]
    Stopped,
}

impl SpliceError {
    /// The network under the tunnel failed (reset, hang-up without a Close, stall), as opposed
    /// to an end the peer chose, a protocol error or a local failure.
    pub fn is_network(&self) -> bool {
        matches!(self, SpliceError::WebSocket(_) | SpliceError::Dropped | SpliceError::PeerSilent(_))
    }
}

fn describe_io(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => {
            format!("the connection to the other end was reset by the network, a proxy or the other end: {e}")
        }
        _ => format!("the connection to the other end failed: {e}"),
    }
}

fn describe_close(code: u16, reason: &str) -> String {
    if reason == DIAL_FAILED {
        "nothing is listening on that port inside the sandbox (the pod could not dial it)".into()
    } else if code == CLOSE_GOING_AWAY && reason == STOPPED {
        "the other end stopped the tunnel (its forward was stopped)".into()
    } else if code == CLOSE_GOING_AWAY {
        "the other end is going away (1001: shutting down or restarting)".into()
    } else {
        format!("the other end closed the tunnel with an error: {code} {reason}")
    }
}

/// Pumps bytes between a WebSocket and a local byte stream until either side ends.
///
/// Local EOF sends Close 1000 and then keeps delivering what arrives until the peer's Close (a
/// peer with half-close, our agent, sends the target's whole reply first); it gives up only when
/// the peer falls silent (three ping intervals; without keepalive, 5 s). The peer's Close is
/// answered and shuts the local writer down — with [`SpliceOptions::half_close`], a Close 1000
/// only shuts the local writer down, and our Close follows the local EOF.
///
/// Returns `Ok` for a clean close from either side. On an error the local writer is left as it
/// is, neither flushed to EOF nor shut down: the caller makes the break visible to the local
/// application (a TCP reset, an exit status) instead of a normal end that would pass a cut
/// stream off as a complete one.
pub async fn splice<S, R, W>(
    socket: TunnelSocket<S>,
    local_read: R,
    local_write: W,
    opts: SpliceOptions<'_>,
) -> Result<(), SpliceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    Pump::new(socket, Plain(local_read), local_write, opts, None).run().await
}

/// Runs one leg of a protocol v2 tunnel ([`crate::resume`]) over `stream`, whose counts the
/// caller has synchronised with the peer's ([`Stream::resync`]). A local side with a kernel
/// queue ([`crate::local::TcpSource`]) keeps the unacknowledged bytes there, if it does from
/// the stream's first leg on.
///
/// `Ok` when the tunnel is over for good (a Close 1000 either way). On an error the local
/// halves are left as they are: after a network error ([`SpliceError::is_network`]) the caller
/// opens a new leg and calls this again with the same stream and local halves — nothing sent
/// either way is lost, the replay buffer holds what the peer may not have.
pub async fn splice_v2<S, R, W>(
    socket: TunnelSocket<S>,
    local_read: R,
    local_write: W,
    stream: &mut Stream,
    opts: SpliceOptions<'_>,
) -> Result<(), SpliceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: LocalRead,
    W: AsyncWrite + Unpin,
{
    let opts = SpliceOptions { half_close: false, ..opts };
    Pump::new(socket, local_read, local_write, opts, Some(stream)).run().await
}

/// Where the payload of a data frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Binary: to the local side.
    Local,
    /// v1 text: dropped, by contract.
    Drop,
    /// v2 text: a control message, collected whole.
    Control,
}

/// A data frame whose payload is streaming through the read buffer.
struct Incoming {
    remaining: u64,
    mask: Option<[u8; 4]>,
    offset: u64,
    sink: Sink,
    fin: bool,
}

/// Both directions of one tunnel, driven by [`Pump::poll`] in one task.
struct Pump<'a, S, R, W> {
    ws: S,
    role: Role,
    local_r: R,
    local_w: W,
    traffic: Option<&'a Traffic>,
    half_close: bool,

    // Local → WebSocket: `up` holds one batch of payload, masked in place once framed.
    up: BytesMut,
    up_size: usize,
    heads: [[u8; MAX_HEADER]; BATCH],
    head_lens: [usize; BATCH],
    /// Bytes of the batch (headers and payload) on the wire / in all.
    up_written: usize,
    up_total: usize,
    /// The batch on its way: `up`'s bytes, framed and masked, frozen — so that v2 keeps them
    /// for replay without a copy.
    batch: Bytes,
    /// The batch copied whole, for a connection that cannot `writev`.
    staged: Vec<u8>,
    local_eof: bool,
    /// Whole control frames to send, and how much of them is sent.
    control: Vec<u8>,
    control_written: usize,
    ws_dirty: bool,

    // WebSocket → local: `down[pos..]` is not parsed yet; `out` are payload ranges of `down`
    // waiting to be written locally.
    down: BytesMut,
    down_size: usize,
    pos: usize,
    incoming: Option<Incoming>,
    /// Inside a fragmented message; `message_sink` says where its continuations go.
    in_message: bool,
    message_sink: Sink,
    out: Vec<Range<usize>>,
    out_written: usize,
    out_total: usize,
    local_dirty: bool,
    /// The local side hung up after sending EOF: nothing more can be delivered.
    local_gone: bool,
    ws_eof: bool,
    /// Half-close: the peer's Close 1000 came and the local writer is shut down.
    local_w_shut: bool,
    /// A data frame came from the peer after our Close: it is sending a reply (half-close).
    heard_after_close: bool,

    close_sent: bool,
    close_received: Option<(u16, String)>,
    ping: Option<(Interval, Duration)>,
    last_heard: Instant,
    close_wait: Option<Pin<Box<Sleep>>>,

    /// Protocol v2: the stream this leg carries (`None`: v1).
    v2: Option<&'a mut Stream>,
    /// v2: when written-out bytes not yet acknowledged must be.
    ack_due: Option<Pin<Box<Sleep>>>,
    /// v2: the control message being received.
    text: Vec<u8>,
    /// Fires when the user stops the tunnel; `stopped` once it has.
    stop: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
    stopped: bool,
    /// v2, bytes kept in the local socket: the next peek must start at the cursor (a new leg).
    rewind: bool,
}

impl<'a, S, R, W> Pump<'a, S, R, W>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: LocalRead,
    W: AsyncWrite + Unpin,
{
    fn new(
        socket: TunnelSocket<S>,
        mut local_r: R,
        local_w: W,
        opts: SpliceOptions<'a>,
        mut v2: Option<&'a mut Stream>,
    ) -> Self {
        let ping = opts.ping_interval.map(|period| {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (ticker, period)
        });
        let mut rewind = false;
        if let Some(s) = v2.as_deref_mut() {
            // From the first leg on, or never: the stream's bytes are in one place.
            if s.sent() == 0
                && !s.in_kernel()
                && local_r.kernel_queue().is_some_and(|q| q.start_keeping().is_ok())
            {
                s.keep_in_kernel();
            }
            // A new leg replays from the peer's count; a stream that sent nothing yet peeks
            // from the front, where `start_keeping` left the offset.
            rewind = s.in_kernel() && s.sent() > 0;
        }
        let mut down = socket.read_ahead;
        down.reserve(SMALL_BUFFER);
        let mut control = Vec::new();
        let mut local_eof = false;
        if let Some(s) = v2.as_deref() {
            if s.local_eof {
                // The local side ended on an earlier leg: the peer may not have heard.
                local_eof = true;
                control = frame::text_frame(Control::Eof(s.sent).encode().as_bytes(), socket.role.mask());
            }
        }
        Pump {
            ws: socket.io,
            role: socket.role,
            local_r,
            local_w,
            traffic: opts.traffic,
            half_close: opts.half_close,
            up: BytesMut::with_capacity(SMALL_BUFFER),
            up_size: SMALL_BUFFER,
            heads: [[0; MAX_HEADER]; BATCH],
            head_lens: [0; BATCH],
            up_written: 0,
            up_total: 0,
            batch: Bytes::new(),
            staged: Vec::new(),
            local_eof,
            control,
            control_written: 0,
            ws_dirty: false,
            down,
            down_size: SMALL_BUFFER,
            pos: 0,
            incoming: None,
            in_message: false,
            message_sink: Sink::Drop,
            out: Vec::new(),
            out_written: 0,
            out_total: 0,
            local_dirty: false,
            local_gone: false,
            ws_eof: false,
            local_w_shut: false,
            heard_after_close: false,
            close_sent: false,
            close_received: None,
            ping,
            last_heard: Instant::now(),
            close_wait: None,
            v2,
            ack_due: None,
            text: Vec::new(),
            stop: opts.stop.map(|t| Box::pin(t.cancelled())),
            stopped: false,
            rewind,
        }
    }

    /// Runs the tunnel to its end. After a clean end the local app sees EOF and the peer our FIN
    /// (and TLS close_notify). A v2 leg lost to the network is dropped as it is: its connection
    /// is dead or stalled, and waiting on it would only delay the next leg.
    async fn run(mut self) -> Result<(), SpliceError> {
        let result = poll_fn(|cx| self.poll(cx)).await;
        if result.is_ok() {
            // Closing a socket with bytes still queued would reset it: drop the last ones (a
            // socket that fails here has ended already).
            let _ = self.drop_acknowledged();
        }
        if let Some(s) = self.v2.as_deref_mut() {
            s.release_spares();
        }
        let grace = Duration::from_secs(1);
        if result.is_ok() {
            let _ = tokio::time::timeout(grace, self.local_w.shutdown()).await;
        }
        let lost_leg = self.v2.is_some() && result.as_ref().is_err_and(SpliceError::is_network);
        if !lost_leg {
            let _ = tokio::time::timeout(grace, self.ws.shutdown()).await;
        }
        result
    }

    /// Moves bytes both ways until neither direction can go on, then waits for whichever
    /// socket or timer unblocks first. Every step that returns "no progress" has registered
    /// the waker with what it waits on.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SpliceError>> {
        loop {
            let progress = match self.step(cx) {
                Ok(p) => p,
                Err(e @ (SpliceError::Protocol(_) | SpliceError::Unsupported(_))) => {
                    // Tell the peer why, if the socket takes it right away; then give up.
                    let (code, reason) = match &e {
                        SpliceError::Unsupported(what) => (CLOSE_UNSUPPORTED, *what),
                        SpliceError::Protocol(p) => (CLOSE_PROTOCOL, p.0),
                        _ => unreachable!("matched above"),
                    };
                    let close = frame::control_frame(
                        OpCode::Close,
                        &frame::close_payload(code, reason),
                        self.role.mask(),
                    );
                    if self.up_written == 0 && self.control_written == 0 {
                        let _ = Pin::new(&mut self.ws).poll_write(cx, &close);
                    }
                    return Poll::Ready(Err(e));
                }
                Err(e) => return Poll::Ready(Err(e)),
            };
            if let Some(done) = self.finished(cx) {
                return Poll::Ready(done);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// One pass over both directions and the timers; whether anything moved.
    fn step(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let mut progress = self.send(cx)?;
        self.drop_acknowledged()?;
        progress |= self.read_local(cx)?;
        progress |= self.deliver(cx)?;
        progress |= self.receive(cx)?;
        progress |= self.shut_local(cx)?;
        progress |= self.timers(cx)?;
        progress |= self.watch_stop(cx);
        if self.v2.is_some() {
            progress |= self.acknowledge(cx);
            progress |= self.close_when_complete();
        }
        Ok(progress)
    }

    /// Stopped by the user: the peer gets a Close 1001, and nothing more is read or sent.
    fn watch_stop(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(stop) = &mut self.stop else { return false };
        if stop.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.stop = None;
        self.stopped = true;
        self.queue_close(CLOSE_GOING_AWAY, STOPPED);
        // A peer that stopped reading must not hold the stop up.
        self.close_wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(STOP_WAIT)));
        true
    }

    /// Whether the tunnel is over, and how it ended.
    fn finished(&mut self, cx: &mut Context<'_>) -> Option<Result<(), SpliceError>> {
        let delivered = self.out.is_empty() && !self.local_dirty;
        let sent =
            self.control_written == self.control.len() && self.up_written == self.up_total && !self.ws_dirty;
        if self.stopped {
            let waited = self.close_wait.as_mut().is_some_and(|w| w.as_mut().poll(cx).is_ready());
            return (sent || waited).then_some(Err(SpliceError::Stopped));
        }
        if let Some((code, reason)) = &self.close_received {
            if !delivered {
                return None;
            }
            if !self.close_sent {
                // Half-closed: the local side still sends, unless the peer has hung up already
                // (it wanted no more: its normal end).
                return (self.ws_eof && self.control_written == 0 && self.up_written == 0).then_some(Ok(()));
            }
            let result = match *code {
                CLOSE_NORMAL | CLOSE_NO_STATUS => Ok(()),
                code => Err(SpliceError::Closed { code, reason: reason.clone() }),
            };
            if sent {
                return Some(result);
            }
            // Our reply (or the end of a batch) is stuck behind a peer that stopped reading.
            let wait = self.close_wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_WAIT)));
            return wait.as_mut().poll(cx).is_ready().then_some(result);
        }
        if self.local_gone && sent {
            return Some(Ok(()));
        }
        if self.ws_eof && delivered {
            // After our Close a peer may hang up without answering (some libraries do): a clean
            // end — unless it was still sending then (a half-closing peer, our agent, carrying a
            // reply), when the lost connection may have cut what it sent.
            let clean = self.close_sent && !self.heard_after_close;
            return Some(if clean { Ok(()) } else { Err(SpliceError::Dropped) });
        }
        if let Some(wait) = &mut self.close_wait {
            if wait.as_mut().poll(cx).is_ready() {
                return Some(Err(SpliceError::PeerSilent(CLOSE_WAIT)));
            }
        }
        None
    }

    /// Writes to the WebSocket: a batch already on its way finishes first (frames must not
    /// interleave), then control frames, then the next batch.
    fn send(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let mut progress = false;
        loop {
            let batch_started = self.up_written > 0 && self.up_written < self.up_total;
            let control_left = self.control_written < self.control.len();
            let poll = if !batch_started && control_left {
                Pin::new(&mut self.ws).poll_write(cx, &self.control[self.control_written..])
            } else if self.up_written < self.up_total {
                self.write_batch(cx)
            } else {
                break;
            };
            let n = match poll {
                Poll::Pending => return Ok(progress),
                Poll::Ready(Ok(0)) => return Err(SpliceError::WebSocket(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(SpliceError::WebSocket(e)),
            };
            progress = true;
            self.ws_dirty = true;
            if !batch_started && control_left {
                self.control_written += n;
                if self.control_written == self.control.len() {
                    self.control.clear();
                    self.control_written = 0;
                }
            } else {
                self.up_written += n;
                if self.up_written == self.up_total {
                    self.batch = Bytes::new();
                    self.staged.clear();
                    (self.up_written, self.up_total) = (0, 0);
                }
            }
        }
        flush_dirty(&mut self.ws, &mut self.ws_dirty, cx).map_err(SpliceError::WebSocket)?;
        Ok(progress)
    }

    fn write_batch(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.staged.is_empty() {
            return Pin::new(&mut self.ws).poll_write(cx, &self.staged[self.up_written..]);
        }
        let mut iov = [IoSlice::new(&[]); 2 * BATCH];
        let n = gather(batch_parts(&self.batch, &self.heads, &self.head_lens), self.up_written, &mut iov);
        Pin::new(&mut self.ws).poll_write_vectored(cx, &iov[..n])
    }

    /// v2, bytes kept in the local socket: drops what the peer acknowledged from its queue;
    /// at the start of a leg, points the next peek at the cursor (what the peer lacks).
    fn drop_acknowledged(&mut self) -> Result<(), SpliceError> {
        let Some(s) = self.v2.as_deref_mut().filter(|s| s.in_kernel()) else { return Ok(()) };
        let Some(queue) = self.local_r.kernel_queue() else { return Ok(()) };
        let n = s.to_drop();
        if n > 0 {
            queue.drop_front(n).map_err(SpliceError::Local)?;
            s.note_dropped(n);
        }
        if self.rewind {
            queue.rewind(s.peek_offset()).map_err(SpliceError::Local)?;
            self.rewind = false;
        }
        Ok(())
    }

    /// v2, bytes kept in the local socket: peeks the next batch (a replay first, then new
    /// bytes) into the send buffer, which is reused from its front as v1's is.
    fn peek_local(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let s = self.v2.as_deref_mut().expect("peeking is v2's");
        if s.local_eof && !s.replay_pending() {
            return Ok(false);
        }
        let Some(queue) = self.local_r.kernel_queue() else { return Ok(false) };
        // Nothing else holds the buffer once its batch is sent: `reserve` starts it over from
        // its front, as v1's.
        let Poll::Ready(n) = fill(Peek(queue), &mut self.up, self.up_size, cx) else { return Ok(false) };
        let n = n?;
        if n == 0 {
            if s.replay_pending() {
                return Err(SpliceError::Local(io::ErrorKind::UnexpectedEof.into()));
            }
            self.end_our_stream();
            return Ok(true);
        }
        let new = s.peeked(n);
        if n == self.up_size {
            self.up_size = LARGE_BUFFER;
        }
        if let Some(t) = self.traffic {
            t.sent.fetch_add(new as u64, Ordering::Relaxed);
        }
        self.frame_batch(false);
        Ok(true)
    }

    /// Reads the local side into a fresh batch, when the last one is sent.
    fn read_local(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        // After the peer's Close we read on only when half-closed (`close_sent` still false).
        if self.close_sent || self.up_total > 0 || self.control.len() > CONTROL_BACKLOG {
            return Ok(false);
        }
        if self.v2.as_deref().is_some_and(Stream::in_kernel) {
            return self.peek_local(cx);
        }
        let mut limit = self.up_size;
        if let Some(s) = self.v2.as_deref_mut() {
            if s.replay_pending() {
                // A new leg sends what the peer missed before anything new.
                self.up.reserve(LARGE_BUFFER);
                s.take_replay(&mut self.up, LARGE_BUFFER);
                // Already kept: only framed (and masked afresh) for this leg.
                self.frame_batch(false);
                return Ok(true);
            }
            // A full window waits for an acknowledgement (reading the peer wakes us).
            limit = limit.min(s.room());
            if s.buffered() == 0 {
                // Every batch read into `up` is acknowledged (a sender the peer keeps up with):
                // start it over from its front, as v1 reuses its one buffer — the memory just
                // written is the memory still in cache. (Fails only for a buffer too small.)
                let _ = self.up.try_reclaim(self.up_size);
            }
            // Reads fill one buffer batch after batch, as v1's one buffer is reused: the batches
            // kept for replay share its allocation. A buffer with less room left than a good
            // read stays with them, and the next comes from the spares.
            if self.up.capacity() < limit.min(PACK_MIN) {
                // A whole buffer, never grown: growing one copies it (realloc) into fresh pages.
                self.up =
                    s.spare_buffer(self.up_size).unwrap_or_else(|| BytesMut::with_capacity(self.up_size));
            }
            limit = limit.min(self.up.capacity());
        }
        if self.local_eof || limit == 0 {
            return Ok(false);
        }
        let Poll::Ready(n) = fill(&mut self.local_r, &mut self.up, limit, cx) else { return Ok(false) };
        let n = n?;
        if self.v2.is_some() && n == 0 {
            // v2 ends one direction only; the Close waits until both are over.
            self.end_our_stream();
            return Ok(true);
        }
        if n == 0 {
            self.local_eof = true;
            self.queue_close(CLOSE_NORMAL, "");
            if self.ping.is_none() && self.close_received.is_none() {
                // No keepalive to notice a dead peer: wait for its Close while it keeps talking.
                self.close_wait = Some(Box::pin(tokio::time::sleep(CLOSE_WAIT)));
            }
            return Ok(true);
        }
        if n == self.up_size {
            self.up_size = LARGE_BUFFER;
        }
        if let Some(t) = self.traffic {
            t.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.frame_batch(true);
        Ok(true)
    }

    /// Cuts `up` into messages of at most [`MAX_MESSAGE`], masking each in place, and freezes it
    /// into `batch`. In v2 a batch to `keep` (new bytes the stream keeps itself: not a replay,
    /// not bytes the kernel keeps) is kept for replay as it is — masked, with its masks: no copy
    /// on the hot path; only a replay unmasks.
    fn frame_batch(&mut self, keep: bool) {
        let mut heads = 0;
        let mut masks = [[0; 4]; BATCH];
        for (i, payload) in self.up.chunks_mut(MAX_MESSAGE).enumerate() {
            let mask = self.role.mask();
            if let Some(m) = mask {
                frame::apply_mask(payload, m, 0);
                masks[i] = m;
            }
            let header = Header { fin: true, opcode: OpCode::Binary, mask, len: payload.len() as u64 };
            self.head_lens[i] = frame::encode_header(&header, &mut self.heads[i]);
            heads += self.head_lens[i];
        }
        self.batch = self.up.split().freeze();
        (self.up_written, self.up_total) = (0, heads + self.batch.len());
        if let Some(s) = self.v2.as_deref_mut() {
            if keep {
                let frames = self.batch.len().div_ceil(MAX_MESSAGE);
                let masks = if self.role == Role::Client { masks[..frames].to_vec() } else { Vec::new() };
                s.push(self.batch.clone(), masks);
            }
        }
        if !self.ws.is_write_vectored() {
            for part in batch_parts(&self.batch, &self.heads, &self.head_lens) {
                self.staged.extend_from_slice(part);
            }
        }
    }

    /// v2: our stream is over — nothing more is read locally, and the peer is told its length.
    fn end_our_stream(&mut self) {
        let Some(s) = self.v2.as_deref_mut() else { return };
        s.local_eof = true;
        let eof = Control::Eof(s.sent);
        self.local_eof = true;
        self.send_control(eof);
    }

    /// Queues a v2 control message.
    fn send_control(&mut self, message: Control) {
        self.control.extend(frame::text_frame(message.encode().as_bytes(), self.role.mask()));
    }

    /// v2: acknowledges what was written out, once enough or for long enough — at once when
    /// the peer's stream is complete (it waits for that to close).
    fn acknowledge(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(s) = self.v2.as_deref_mut() else { return false };
        let unacked = s.delivered - s.ack_sent;
        if unacked == 0 || self.close_sent {
            self.ack_due = None;
            return false;
        }
        let due = unacked >= ACK_EVERY
            || s.peer_eof == Some(s.delivered)
            || self
                .ack_due
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(ACK_DELAY)))
                .as_mut()
                .poll(cx)
                .is_ready();
        if !due {
            return false;
        }
        s.ack_sent = s.delivered;
        let ack = Control::Ack(s.delivered);
        self.ack_due = None;
        self.send_control(ack);
        true
    }

    /// v2: both directions over — ours acknowledged, the peer's written out — so a Close
    /// loses nothing.
    fn close_when_complete(&mut self) -> bool {
        let complete = self.v2.as_deref().is_some_and(Stream::complete);
        if complete && !self.close_sent && self.out.is_empty() && !self.local_dirty {
            self.queue_close(CLOSE_NORMAL, "");
            return true;
        }
        false
    }

    /// Queues our Close, once. A batch not yet started is dropped: no data may follow a Close.
    fn queue_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        if self.up_written == 0 && self.up_total > 0 {
            self.batch = Bytes::new();
            self.staged.clear();
            self.up_total = 0;
        }
        let payload = if code == CLOSE_NO_STATUS { Vec::new() } else { frame::close_payload(code, reason) };
        self.control.extend(frame::control_frame(OpCode::Close, &payload, self.role.mask()));
    }

    /// Writes received payload to the local side.
    fn deliver(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let mut progress = false;
        while !self.out.is_empty() {
            let parts = self.out.iter().map(|r| &self.down[r.clone()]);
            let poll = if self.local_w.is_write_vectored() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = gather(parts, self.out_written, &mut iov);
                Pin::new(&mut self.local_w).poll_write_vectored(cx, &iov[..n])
            } else {
                let mut first = [IoSlice::new(&[])];
                gather(parts, self.out_written, &mut first);
                Pin::new(&mut self.local_w).poll_write(cx, &first[0])
            };
            match poll {
                Poll::Pending => return Ok(progress),
                Poll::Ready(Ok(0)) => return Err(SpliceError::Local(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    self.local_dirty = true;
                    self.out_written += n;
                    if let Some(s) = self.v2.as_deref_mut() {
                        s.delivered += n as u64;
                    }
                    if self.out_written == self.out_total {
                        self.out.clear();
                        (self.out_written, self.out_total) = (0, 0);
                    }
                }
                // The local app has closed both ways (ssh exiting): what the peer still sends
                // has no reader, and that is a normal end.
                Poll::Ready(Err(e)) if self.local_eof && is_hang_up(&e) => {
                    self.out.clear();
                    (self.out_written, self.out_total, self.local_gone) = (0, 0, true);
                    if let Some(s) = self.v2.as_deref_mut() {
                        s.local_gone = true;
                    }
                    return Ok(true);
                }
                Poll::Ready(Err(e)) => return Err(SpliceError::Local(e)),
            }
        }
        flush_dirty(&mut self.local_w, &mut self.local_dirty, cx).map_err(SpliceError::Local)?;
        Ok(progress)
    }

    /// Parses what has arrived and, once all of it is handed on, reads more from the peer.
    fn receive(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        if self.close_received.is_some() && !self.close_sent && !self.ws_eof {
            return self.watch_hang_up(cx);
        }
        if !self.out.is_empty()
            || self.close_received.is_some()
            || self.ws_eof
            || self.local_gone
            || self.control.len() > CONTROL_BACKLOG
        {
            return Ok(false);
        }
        if self.parse()? {
            return Ok(true);
        }
        // Everything parsed has been delivered: reuse the buffer, keeping an unfinished header
        // or control frame at its front.
        if self.pos == self.down.len() {
            self.down.clear();
        } else {
            self.down.advance(self.pos);
        }
        self.pos = 0;
        self.down.reserve(self.down_size);
        let n = match poll_read_buf(Pin::new(&mut self.ws), cx, &mut (&mut self.down).limit(self.down_size)) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Err(e)) => return Err(SpliceError::WebSocket(e)),
            Poll::Ready(Ok(n)) => n,
        };
        if n == 0 {
            self.ws_eof = true;
        } else {
            self.last_heard = Instant::now();
            if let Some(wait) = &mut self.close_wait {
                // Waiting for the peer's Close: a peer still sending is a peer still there.
                wait.as_mut().reset(Instant::now() + CLOSE_WAIT);
            }
            if n == self.down_size {
                self.down_size = LARGE_BUFFER;
            }
        }
        Ok(true)
    }

    /// Half-closed: the peer sends nothing after its Close, but reading tells us when it hangs
    /// up. Whatever it still sends breaks the rule and is dropped.
    fn watch_hang_up(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let mut sink = [0u8; 256];
        let mut buf = tokio::io::ReadBuf::new(&mut sink);
        match Pin::new(&mut self.ws).poll_read(cx, &mut buf) {
            Poll::Pending => Ok(false),
            Poll::Ready(Ok(())) => {
                self.ws_eof = buf.filled().is_empty();
                Ok(true)
            }
            // A reset after the peer's Close: it wanted no more, as with a plain hang-up.
            Poll::Ready(Err(e)) if is_hang_up(&e) => {
                self.ws_eof = true;
                Ok(true)
            }
            Poll::Ready(Err(e)) => Err(SpliceError::WebSocket(e)),
        }
    }

    /// Half-close: once what the peer sent is delivered, the local writer is shut down so the
    /// target reads EOF (and can answer).
    fn shut_local(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        if let Some(s) = self.v2.as_deref_mut() {
            // v2: the peer's `eof` reached, and everything before it written out.
            if s.local_w_shut || s.peer_eof != Some(s.delivered) || !self.out.is_empty() || self.local_dirty {
                return Ok(false);
            }
            return match Pin::new(&mut self.local_w).poll_shutdown(cx) {
                Poll::Pending => Ok(false),
                Poll::Ready(_) => {
                    s.local_w_shut = true;
                    // The client follows the pod's end, as in v1 (where the pod's Close ends
                    // both ways): a server that closed its connection reads nothing more, and
                    // `proxy --stdio` on a terminal must not wait for an EOF the user never
                    // types. The pod side keeps half-close for the client's EOF.
                    if self.role == Role::Client && !s.local_eof {
                        self.end_our_stream();
                    }
                    Ok(true)
                }
            };
        }
        if self.local_w_shut
            || self.close_sent
            || self.close_received.is_none()
            || !self.out.is_empty()
            || self.local_dirty
        {
            return Ok(false);
        }
        match Pin::new(&mut self.local_w).poll_shutdown(cx) {
            Poll::Pending => Ok(false),
            // A target that is gone already (NotConnected) will show in its read half.
            Poll::Ready(_) => {
                self.local_w_shut = true;
                Ok(true)
            }
        }
    }

    /// Walks the frames in `down[pos..]`: unmasks data in place and queues it for the local
    /// side, answers pings, notes a Close. Returns whether anything was consumed.
    fn parse(&mut self) -> Result<bool, SpliceError> {
        let mut progress = false;
        loop {
            if let Some(f) = &mut self.incoming {
                let avail = (self.down.len() - self.pos) as u64;
                let take = f.remaining.min(avail) as usize;
                if take == 0 && f.remaining > 0 {
                    break;
                }
                let range = self.pos..self.pos + take;
                if let Some(m) = f.mask {
                    frame::apply_mask(&mut self.down[range.clone()], m, f.offset);
                }
                // Payload after our Close: the peer is sending a reply (half-close). Control frames
                // (a pong to a ping still in flight) do not count.
                self.heard_after_close |= self.close_sent && take > 0;
                match f.sink {
                    Sink::Local if take > 0 => {
                        if let Some(t) = self.traffic {
                            // Counted before the write, so a reader that has the bytes sees them counted.
                            t.received.fetch_add(take as u64, Ordering::Relaxed);
                        }
                        self.out_total += take;
                        self.out.push(range);
                    }
                    Sink::Control => self.text.extend_from_slice(&self.down[range]),
                    _ => {}
                }
                f.remaining -= take as u64;
                f.offset += take as u64;
                self.pos += take;
                progress = true;
                if f.remaining > 0 {
                    break;
                }
                let (sink, fin) = (f.sink, f.fin);
                self.incoming = None;
                if sink == Sink::Control && fin {
                    self.on_control()?;
                }
                if self.out.len() == MAX_IOV {
                    break;
                }
                continue;
            }
            let Some((h, head_len)) = frame::parse_header(&self.down[self.pos..])? else { break };
            match (self.role, h.mask) {
                (Role::Server, None) => return Err(ProtocolError("unmasked frame from a client").into()),
                (Role::Client, Some(_)) => return Err(ProtocolError("masked frame from a server").into()),
                _ => {}
            }
            if h.opcode.is_control() {
                let end = self.pos + head_len + h.len as usize;
                if self.down.len() < end {
                    break;
                }
                let payload = &mut self.down[self.pos + head_len..end];
                if let Some(m) = h.mask {
                    frame::apply_mask(payload, m, 0);
                }
                let payload = payload.to_vec();
                self.pos = end;
                progress = true;
                match h.opcode {
                    OpCode::Ping if !self.close_sent => {
                        let pong = frame::control_frame(OpCode::Pong, &payload, self.role.mask());
                        self.control.extend(pong);
                    }
                    OpCode::Close => {
                        let (code, reason) = frame::parse_close(&payload)?;
                        if !(self.half_close && code == CLOSE_NORMAL && !self.close_sent) {
                            self.queue_close(code, "");
                        }
                        self.close_received = Some((code, reason));
                        break;
                    }
                    _ => {}
                }
                continue;
            }
            let sink = match h.opcode {
                OpCode::Continuation if !self.in_message => {
                    return Err(ProtocolError("continuation frame outside a message").into())
                }
                OpCode::Continuation => self.message_sink,
                _ if self.in_message => {
                    return Err(ProtocolError("new message inside a fragmented one").into())
                }
                OpCode::Text if self.v2.is_some() => {
                    self.text.clear();
                    Sink::Control
                }
                OpCode::Text if self.role == Role::Server => {
                    return Err(SpliceError::Unsupported("text message"))
                }
                OpCode::Text => Sink::Drop,
                _ => Sink::Local,
            };
            if sink == Sink::Control && self.text.len() as u64 + h.len > MAX_CONTROL as u64 {
                return Err(ProtocolError("v2 control message too long").into());
            }
            self.message_sink = sink;
            self.in_message = !h.fin;
            self.heard_after_close |= self.close_sent;
            self.pos += head_len;
            self.incoming = Some(Incoming { remaining: h.len, mask: h.mask, offset: 0, sink, fin: h.fin });
            progress = true;
        }
        Ok(progress)
    }

    /// v2: acts on a whole control message.
    fn on_control(&mut self) -> Result<(), SpliceError> {
        let message = Control::parse(&self.text)?;
        let s = self.v2.as_deref_mut().expect("control messages are collected in v2 only");
        match message {
            Control::Ack(n) => s.on_ack(n)?,
            Control::Eof(n) => s.on_eof(n)?,
        }
        Ok(())
    }

    /// Keepalive: pings the peer, and gives up on one silent for three intervals.
    fn timers(&mut self, cx: &mut Context<'_>) -> Result<bool, SpliceError> {
        let Some((ticker, period)) = &mut self.ping else { return Ok(false) };
        if ticker.poll_tick(cx).is_pending() {
            return Ok(false);
        }
        let silent_for = *period * 3;
        // A peer that sent its Close speaks no more; a hang-up or reset is what ends it then.
        if self.last_heard.elapsed() > silent_for && self.close_received.is_none() {
            return Err(SpliceError::PeerSilent(silent_for));
        }
        if !self.close_sent {
            self.control.extend(frame::control_frame(OpCode::Ping, &[], self.role.mask()));
        }
        if let Some(s) = self.v2.as_deref_mut() {
            if s.buffered() == 0 {
                s.release_spares();
            }
        }
        Ok(true)
    }
}

/// Flushes `w` if it was written to since its last flush (a TLS stream may hold back the
/// records of a write until flushed); on `Pending` the waker is registered and `dirty` stays.
fn flush_dirty<W: AsyncWrite + Unpin>(w: &mut W, dirty: &mut bool, cx: &mut Context<'_>) -> io::Result<()> {
    if *dirty {
        if let Poll::Ready(r) = Pin::new(w).poll_flush(cx) {
            r?;
            *dirty = false;
        }
    }
    Ok(())
}

/// A framed batch as it goes on the wire: each message's header, then its payload.
fn batch_parts<'b>(
    up: &'b [u8],
    heads: &'b [[u8; MAX_HEADER]; BATCH],
    head_lens: &'b [usize; BATCH],
) -> impl Iterator<Item = &'b [u8]> {
    up.chunks(MAX_MESSAGE).enumerate().flat_map(move |(i, payload)| [&heads[i][..head_lens[i]], payload])
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

/// Fills `iov` with `parts` minus their first `skip` bytes; returns how many slices it used.
fn gather<'b>(parts: impl IntoIterator<Item = &'b [u8]>, mut skip: usize, iov: &mut [IoSlice<'b>]) -> usize {
    let mut n = 0;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        if n == iov.len() {
            break;
        }
        iov[n] = IoSlice::new(&p[skip..]);
        skip = 0;
        n += 1;
    }
    n
}

/// Reads (or peeks) up to `limit` bytes from `r` onto the end of `up`.
fn fill<R: AsyncRead + Unpin>(
    mut r: R,
    up: &mut BytesMut,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<usize, SpliceError>> {
    up.reserve(limit);
    poll_read_buf(Pin::new(&mut r), cx, &mut up.limit(limit)).map_err(SpliceError::Local)
}

/// A kernel queue read by peeking, as an `AsyncRead` (for [`fill`]).
struct Peek<'q>(&'q mut dyn KernelQueue);

impl AsyncRead for Peek<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_peek(cx, buf).map_ok(|_| ())
    }
}
