//! Tunnel protocol v2: the byte stream of a tunnel outlives the WebSocket under it.
//!
//! v2 is negotiated with the subprotocol [`SUBPROTOCOL`]; a server that does not name it in its
//! `101` speaks v1 (the original server), and so does a client that does not offer it. On the
//! wire v2 is v1 plus three rules (ARCHITECTURE.md, "Tunnel protocol v2", is the full contract):
//!
//! - **Binary** messages carry the stream's bytes, exactly as in v1.
//! - **Text** messages carry control, one ASCII command each: `ack N` (I have written the first
//!   N bytes of your stream to my side) and `eof N` (my stream ends after N bytes).
//! - **Close 1000** ends the tunnel for good; a sender closes only once its own stream is
//!   acknowledged to its end and the peer's stream is written out to its `eof`. A connection
//!   that ends any other way (reset, hang-up without a Close, silence) is a lost *leg*: the
//!   client opens a new one with the same resume token and both ends continue from the other's
//!   count, replaying what they kept.
//!
//! [`Stream`] is that state for one end: the bytes sent but not yet acknowledged (the replay
//! buffer, bounded by the stream's window — [`crate::pace`], at most [`REPLAY_LIMIT`]; reading
//! the local side waits while it is full), and the counts both ways. The pump
//! ([`crate::tunnel::splice_v2`]) runs one leg over it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::frame::{self, ProtocolError};
use crate::pace::{self, Pace};
use crate::tunnel::MAX_MESSAGE;

/// The subprotocol a v2 client offers and a v2 server accepts.
pub const SUBPROTOCOL: &str = "sandbox-forward.v2";

/// Request: the resume token of the tunnel to continue. Response (new tunnel): its token.
pub const RESUME_HEADER: &str = "sandbox-forward-resume";
/// Request and response: how many bytes of the other end's stream this end has written out.
pub const RECEIVED_HEADER: &str = "sandbox-forward-received";
/// Response: how many seconds the server keeps a tunnel whose connection dropped.
pub const WINDOW_HEADER: &str = "sandbox-forward-resume-window";

/// Most bytes one end keeps for replay (sent, not yet acknowledged): the largest window. Large
/// enough for a path of 4 MiB per round trip, small enough that the agent can keep many
/// suspended tunnels.
pub const REPLAY_LIMIT: usize = pace::MAX_WINDOW;

/// A receiver acknowledges at least every this many bytes written out (a quarter of the
/// smallest window, so that a sender at the floor never waits a whole window for one)...
pub const ACK_EVERY: u64 = (pace::MIN_WINDOW / 4) as u64;
/// ...and at most this long after writing anything (interactive traffic: the sender's replay
/// buffer empties within a moment, so an idle tunnel keeps nothing).
pub const ACK_DELAY: Duration = Duration::from_millis(200);

/// Keepalive of a v2 leg: a silent leg is given up after three intervals (15 s), and since
/// giving up a leg loses nothing, detection can be much quicker than v1's 60 s.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Send buffers a stream keeps for reuse ([`Stream::spare_buffer`]): as many as a full replay
/// buffer spans (1 MiB batches, the partly acknowledged oldest one and the one being filled),
/// so that a sender that falls behind and catches up again finds them all. They cost no more
/// than the busiest moment did: spares only come from batches kept then.
const SPARE_BUFFERS: usize = REPLAY_LIMIT / (1024 * 1024) + 2;

/// Longest control message (`eof 18446744073709551615` is 24 bytes).
pub const MAX_CONTROL: usize = 64;

/// How long the agent keeps a tunnel whose connection dropped, unless told otherwise.
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(120);

/// One control message of v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The peer has written out this many bytes of our stream.
    Ack(u64),
    /// The peer's stream ends after this many bytes.
    Eof(u64),
}

impl Control {
    /// Reads one text message.
    pub fn parse(text: &[u8]) -> Result<Control, ProtocolError> {
        let text = std::str::from_utf8(text).map_err(|_| ProtocolError("v2 control message is not UTF-8"))?;
        let (verb, n) = text.split_once(' ').ok_or(ProtocolError("v2 control message without a count"))?;
        // Digits only: `u64::from_str` would take a leading '+'.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProtocolError("v2 control message with an invalid count"));
        }
        let n = n.parse().map_err(|_| ProtocolError("v2 control message with an invalid count"))?;
        match verb {
            "ack" => Ok(Control::Ack(n)),
            "eof" => Ok(Control::Eof(n)),
            _ => Err(ProtocolError("unknown v2 control message")),
        }
    }

    /// The message's text.
    pub fn encode(self) -> String {
        match self {
            Control::Ack(n) => format!("ack {n}"),
            Control::Eof(n) => format!("eof {n}"),
        }
    }
}

/// Why a leg cannot continue a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The peer claims to have written out bytes we never sent, or fewer than it acknowledged.
    #[error("the other end resumed at byte {claimed}, but only bytes {acked}..{sent} can be replayed")]
    OutOfRange { claimed: u64, acked: u64, sent: u64 },
}

/// A batch of our stream as it went on the wire, kept until acknowledged.
#[derive(Debug)]
struct Kept {
    /// The batch's payload: one message per [`MAX_MESSAGE`] bytes, masked as sent (a client's).
    bytes: Bytes,
    /// Each message's mask (a client's); empty for a server's, which sends unmasked.
    masks: Vec<[u8; 4]>,
    /// Leading bytes the peer has acknowledged.
    start: usize,
}

impl Kept {
    fn left(&self) -> usize {
        self.bytes.len() - self.start
    }
}

/// One end's state of a v2 byte stream, kept across legs.
#[derive(Debug, Default)]
pub struct Stream {
    /// Batches read from the local side and not yet acknowledged: stream offsets `acked..sent`.
    /// They are the frozen send buffers themselves — keeping them costs no copy.
    replay: VecDeque<Kept>,
    /// Bytes in `replay`.
    kept: usize,
    /// Send buffers given back once acknowledged, for the next batches. v1 reads every batch
    /// into the one buffer it keeps; v2 keeps batches for replay, so without these it would
    /// take fresh memory from the allocator for each, which hands it back to the OS and
    /// faults it in again (measured: 12,000–38,000 page faults per GiB sent, against ~40).
    /// Kept while the stream is busy, even when the replay buffer empties for a moment between
    /// acknowledgements (freeing them there measured most of the faults left); released when
    /// the tunnel goes quiet or its leg is lost ([`Stream::release_spares`]).
    spare: Vec<BytesMut>,
    /// Bytes of our stream the peer has acknowledged.
    pub(crate) acked: u64,
    /// Bytes of our stream read from the local side.
    pub(crate) sent: u64,
    /// Next byte of our stream to send on the current leg.
    pub(crate) cursor: u64,
    /// Bytes of the peer's stream written to the local side.
    pub(crate) delivered: u64,
    /// Highest `delivered` the peer has been told about.
    pub(crate) ack_sent: u64,
    /// The local side has ended: our stream is `sent` bytes long.
    pub(crate) local_eof: bool,
    /// The peer's stream ends after this many bytes.
    pub(crate) peer_eof: Option<u64>,
    /// The peer's stream is written out and the local writer shut down.
    pub(crate) local_w_shut: bool,
    /// The local side hung up: nothing more can be written to it.
    pub(crate) local_gone: bool,
    /// How much may be in flight.
    pace: Pace,
    /// The local socket keeps the unacknowledged bytes ([`crate::local`]): `replay` stays empty,
    /// a new leg peeks them again, and the socket's receive buffer is the window (`pace` and
    /// `room` are not used).
    in_kernel: bool,
    /// In the kernel: how many acknowledged bytes have been dropped from the socket's queue.
    dropped: u64,
}

impl Stream {
    /// A stream at its start.
    pub fn new() -> Self {
        Stream::default()
    }

    /// Bytes of the peer's stream written out so far: what a new leg tells the peer.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes of our stream read from the local side so far: its length once it has ended.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes kept for replay right now (in the local socket's queue, when it keeps them).
    pub fn buffered(&self) -> usize {
        if self.in_kernel {
            (self.sent - self.acked) as usize
        } else {
            self.kept
        }
    }

    /// The local socket keeps the unacknowledged bytes from now on; only before the first byte.
    pub(crate) fn keep_in_kernel(&mut self) {
        debug_assert_eq!(self.sent, 0);
        self.in_kernel = true;
    }

    /// Whether the local socket keeps the unacknowledged bytes ([`crate::local`]).
    pub fn in_kernel(&self) -> bool {
        self.in_kernel
    }

    /// In the kernel: acknowledged bytes still queued, to drop.
    pub(crate) fn to_drop(&self) -> usize {
        (self.acked - self.dropped) as usize
    }

    /// In the kernel: `n` acknowledged bytes were dropped from the queue.
    pub(crate) fn note_dropped(&mut self, n: usize) {
        self.dropped += n as u64;
    }

    /// In the kernel: where the next peek starts, counted from the front of the queue.
    pub(crate) fn peek_offset(&self) -> usize {
        (self.cursor - self.dropped) as usize
    }

    /// In the kernel: `n` bytes were peeked at the cursor and sent. Returns how many of them
    /// are new (not a replay).
    pub(crate) fn peeked(&mut self, n: usize) -> usize {
        self.cursor += n as u64;
        let new = self.cursor.saturating_sub(self.sent);
        self.sent += new;
        new as usize
    }

    /// Starts a new leg: the peer has written out `peer_received` bytes of our stream, so
    /// everything before is acknowledged and everything after is sent again.
    pub fn resync(&mut self, peer_received: u64) -> Result<(), ResumeError> {
        if peer_received < self.acked || peer_received > self.sent {
            return Err(ResumeError::OutOfRange {
                claimed: peer_received,
                acked: self.acked,
                sent: self.sent,
            });
        }
        self.acknowledge(peer_received);
        self.cursor = peer_received;
        self.pace.new_leg();
        // The peer learnt our count from the new leg's headers.
        self.ack_sent = self.delivered;
        Ok(())
    }

    /// The peer acknowledged `n` bytes: they need no replay. `Err` for a count outside what
    /// was sent on this leg.
    pub(crate) fn on_ack(&mut self, n: u64) -> Result<(), ProtocolError> {
        if n < self.acked || n > self.cursor {
            return Err(ProtocolError("v2 acknowledgement outside the bytes sent"));
        }
        self.acknowledge(n);
        if !self.in_kernel {
            // Bytes in the kernel need no window of ours (the socket's buffer is theirs).
            self.pace.acked(n, Instant::now());
        }
        Ok(())
    }

    pub(crate) fn on_eof(&mut self, n: u64) -> Result<(), ProtocolError> {
        if n < self.delivered || self.peer_eof.is_some_and(|e| e != n) {
            return Err(ProtocolError("v2 end of stream before bytes already received"));
        }
        self.peer_eof = Some(n);
        Ok(())
    }

    fn acknowledge(&mut self, n: u64) {
        if self.in_kernel {
            self.acked = n;
            return;
        }
        let mut drop = (n - self.acked) as usize;
        self.kept -= drop;
        while drop > 0 {
            let front = self.replay.front_mut().expect("acknowledged bytes are kept");
            if front.left() <= drop {
                drop -= front.left();
                let done = self.replay.pop_front().expect("the front exists").bytes;
                // Unique once no later batch and no read buffer share its allocation.
                if self.spare.len() < SPARE_BUFFERS {
                    if let Ok(buffer) = done.try_into_mut() {
                        self.spare.push(buffer);
                    }
                }
            } else {
                front.start += drop;
                drop = 0;
            }
        }
        self.acked = n;
    }

    /// Gives the spare send buffers back to the allocator: the tunnel went quiet (nothing kept
    /// for replay at a keepalive tick) or its leg is gone (a suspended tunnel keeps none).
    pub(crate) fn release_spares(&mut self) {
        self.spare = Vec::new();
    }

    /// A send buffer given back ([`Stream::spare`]), emptied and with room for `capacity`
    /// bytes — its allocation reused from its start when it is large enough.
    pub(crate) fn spare_buffer(&mut self, capacity: usize) -> Option<BytesMut> {
        while let Some(mut buffer) = self.spare.pop() {
            buffer.clear();
            // Only one that holds `capacity` as it is (a small one from an interactive spell
            // is dropped).
            if buffer.try_reclaim(capacity) {
                return Some(buffer);
            }
        }
        None
    }

    /// Room left in the window: how much may be read from the local side now. A full window
    /// tells the pace that the path, not the application, holds the sender back.
    pub(crate) fn room(&mut self) -> usize {
        let room = self.pace.window().saturating_sub(self.kept);
        if room == 0 {
            self.pace.window_full();
        }
        room
    }

    /// Keeps a batch just read from the local side and sent (as `bytes`, masked with `masks`
    /// per message, or unmasked when `masks` is empty); the cursor moves past it.
    pub(crate) fn push(&mut self, bytes: Bytes, masks: Vec<[u8; 4]>) {
        debug_assert!(masks.is_empty() || masks.len() == bytes.len().div_ceil(MAX_MESSAGE));
        self.sent += bytes.len() as u64;
        self.cursor = self.sent;
        self.kept += bytes.len();
        self.pace.sent(self.sent, self.acked, Instant::now());
        if !bytes.is_empty() {
            self.replay.push_back(Kept { bytes, masks, start: 0 });
        }
    }

    /// Bytes to send again (a new leg) before reading the local side, unmasked: up to `max`
    /// from the cursor, which advances past them.
    pub(crate) fn take_replay(&mut self, out: &mut bytes::BytesMut, max: usize) -> usize {
        let mut skip = (self.cursor - self.acked) as usize;
        let mut copied = 0;
        for kept in &self.replay {
            if copied == max {
                break;
            }
            if skip >= kept.left() {
                skip -= kept.left();
                continue;
            }
            let from = kept.start + skip;
            let take = (kept.bytes.len() - from).min(max - copied);
            let at = out.len();
            out.extend_from_slice(&kept.bytes[from..from + take]);
            if !kept.masks.is_empty() {
                // Unmask message by message, each from its own phase.
                let mut p = from;
                while p < from + take {
                    let message = p / MAX_MESSAGE;
                    let end = ((message + 1) * MAX_MESSAGE).min(from + take);
                    let phase = (p % MAX_MESSAGE) as u64;
                    frame::apply_mask(&mut out[at + p - from..at + end - from], kept.masks[message], phase);
                    p = end;
                }
            }
            copied += take;
            skip = 0;
        }
        self.cursor += copied as u64;
        copied
    }

    /// Whether bytes read earlier still wait to be sent on this leg.
    pub(crate) fn replay_pending(&self) -> bool {
        self.cursor < self.sent
    }

    /// Both directions are over: ours acknowledged to its end, the peer's written out to its
    /// end, and the peer told so. Then (and only then) a Close 1000 loses nothing — and a leg
    /// lost after that needs no successor.
    pub fn complete(&self) -> bool {
        (self.local_eof && self.acked == self.sent)
            && (self.local_gone || (self.peer_eof == Some(self.delivered) && self.local_w_shut))
            && self.ack_sent == self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_and_reject_anything_else() {
        for c in [Control::Ack(0), Control::Ack(u64::MAX), Control::Eof(42)] {
            assert_eq!(Control::parse(c.encode().as_bytes()), Ok(c));
        }
        for bad in [
            "ack",
            "ack ",
            "ack +1",
            "ack -1",
            "ack 1 ",
            "eof 0x10",
            "nak 1",
            "ack 18446744073709551616",
            "\u{ff}",
        ] {
            assert!(Control::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    fn plain(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }

    #[test]
    fn replay_keeps_unacknowledged_bytes_and_resumes_at_the_peers_count() {
        let mut s = Stream::new();
        s.push(plain(b"hello "), Vec::new());
        s.push(plain(b"world"), Vec::new());
        let mut out = bytes::BytesMut::new();
        s.resync(0).unwrap();
        assert_eq!(s.take_replay(&mut out, 100), 11);
        assert_eq!(&out[..], b"hello world");
        s.on_ack(6).unwrap();
        assert_eq!(s.buffered(), 5);
        // The leg drops; the peer had written out 8 bytes: replay from there.
        s.resync(8).unwrap();
        assert!(s.replay_pending());
        out.clear();
        assert_eq!(s.take_replay(&mut out, 2), 2);
        assert_eq!(&out[..], b"rl");
        assert_eq!(s.take_replay(&mut out, 10), 1);
        assert_eq!(&out[..], b"rld");
        assert!(!s.replay_pending());
        // A peer claiming bytes it never got, or un-acknowledging bytes, is refused.
        assert_eq!(s.resync(12), Err(ResumeError::OutOfRange { claimed: 12, acked: 8, sent: 11 }));
        assert!(s.resync(7).is_err());
        assert!(s.on_ack(12).is_err());
        assert!(s.on_ack(5).is_err());
    }

    #[test]
    fn acknowledgements_trim_batches_partly_and_whole() {
        let mut s = Stream::new();
        let mut out = bytes::BytesMut::new();
        for round in 0..50u8 {
            s.push(Bytes::from(vec![round; 1000]), Vec::new());
            s.on_ack(s.sent - 500).unwrap();
            assert_eq!(s.buffered(), 500);
        }
        s.resync(s.acked).unwrap();
        s.take_replay(&mut out, usize::MAX);
        assert_eq!(&out[..], &[49u8; 500][..]);
        s.on_ack(s.sent).unwrap();
        assert_eq!((s.buffered(), s.replay.len()), (0, 0));
    }

    #[test]
    fn an_acknowledged_send_buffer_is_reused_not_freed() {
        let mut s = Stream::new();
        let mut up = BytesMut::with_capacity(64 * 1024);
        up.extend_from_slice(&[1; 64 * 1024]);
        s.push(up.split().freeze(), Vec::new());
        drop(up); // the pump moved on to another buffer
        assert!(s.spare_buffer(1).is_none(), "nothing acknowledged yet");
        s.on_ack(s.sent).unwrap();
        // Kept while busy, even with the replay buffer empty for a moment; given back once quiet.
        assert_eq!(s.spare.len(), 1, "an empty replay buffer between acknowledgements keeps its spares");
        s.release_spares();
        assert!(s.spare_buffer(1).is_none(), "a quiet tunnel keeps no spare");
        let mut up = BytesMut::with_capacity(64 * 1024);
        up.extend_from_slice(&[2; 64 * 1024]);
        let at2 = up.as_ptr();
        s.push(up.split().freeze(), Vec::new());
        drop(up);
        s.push(Bytes::from(vec![3; 10]), Vec::new());
        s.on_ack(s.sent - 10).unwrap();
        let reused = s.spare_buffer(64 * 1024).expect("the first batch's buffer came back");
        assert!(reused.is_empty() && reused.capacity() >= 64 * 1024);
        assert_eq!(reused.as_ptr(), at2, "the same allocation, from its start");
    }

    #[test]
    fn a_spare_too_small_for_a_bulk_read_is_dropped_not_grown() {
        let mut s = Stream::new();
        for size in [4096, 1 << 20] {
            let mut up = BytesMut::with_capacity(size);
            up.extend_from_slice(&vec![7; size]);
            s.push(up.split().freeze(), Vec::new());
        }
        s.on_ack(s.sent).unwrap();
        assert_eq!(s.spare.len(), 2);
        // LIFO: the 1 MiB one first; the 4 KiB one would have to be reallocated (a copy into
        // fresh pages), so it is not handed out.
        assert!(s.spare_buffer(1 << 20).is_some_and(|b| b.capacity() >= 1 << 20));
        assert!(s.spare_buffer(1 << 20).is_none());
        assert!(s.spare.is_empty());
    }

    #[test]
    fn a_clients_masked_batches_are_replayed_unmasked_from_any_byte() {
        // Three messages' worth, masked message by message as a client sends them.
        let text: Vec<u8> = (0..2 * MAX_MESSAGE + 100).map(|i| (i % 251) as u8).collect();
        let masks = vec![[1, 2, 3, 4], [9, 8, 7, 6], [0xaa, 0x55, 0xff, 0x0f]];
        let mut masked = text.clone();
        for (i, m) in masked.chunks_mut(MAX_MESSAGE).enumerate() {
            frame::apply_mask(m, masks[i], 0);
        }
        let mut s = Stream::new();
        s.push(Bytes::from(masked), masks);
        // The peer got 5 bytes short of the first message's end, then the leg dropped.
        let at = MAX_MESSAGE as u64 - 5;
        s.resync(at).unwrap();
        let mut out = bytes::BytesMut::new();
        assert_eq!(s.take_replay(&mut out, 7), 7, "up to max");
        s.take_replay(&mut out, usize::MAX);
        assert_eq!(&out[..], &text[at as usize..]);
    }

    #[test]
    fn an_eof_cannot_move_or_precede_delivered_bytes() {
        let mut s = Stream::new();
        s.delivered = 10;
        assert!(s.on_eof(9).is_err());
        s.on_eof(12).unwrap();
        s.on_eof(12).unwrap();
        assert!(s.on_eof(13).is_err());
    }
}
