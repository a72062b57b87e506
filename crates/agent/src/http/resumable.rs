//! Tunnel protocol v2 on the agent: tunnels that outlive their WebSocket.
//!
//! A v2 tunnel is a task that owns the pod-side connection (the target socket, or the embedded
//! SSH server's end) and its [`Stream`]; WebSockets come and go as *legs*. When a leg is lost
//! the task keeps the target open and waits up to the resume window for the next leg, which
//! reaches it through [`Tunnels`] by the tunnel's resume token. The token is 256 random bits,
//! known only to the client that opened the tunnel, and bound to its subject: every reconnect
//! is authenticated as any request is, and a token presented by another subject is refused.
//!
//! Suspended tunnels are capped ([`TunnelLimits`]): beyond the caps the longest-suspended is
//! closed, so lost clients cannot pile up targets and replay buffers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sandbox_wire::local::LocalRead;
use sandbox_wire::resume::{self, Stream};
use sandbox_wire::tunnel::{splice_v2, Role, SpliceOptions, Traffic, TunnelSocket};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::connections::ConnectionSlot;
use crate::access::Untrusted;

/// The connection under one leg, and its place under the connection cap.
pub(crate) type LegIo = (TokioIo<Upgraded>, Option<ConnectionSlot>);

/// How long v2 tunnels are kept and how many may wait.
#[derive(Debug, Clone, Copy)]
pub struct TunnelLimits {
    /// How long a tunnel whose leg was lost waits for the next (`--resume-window`); zero turns
    /// protocol v2 off (the agent then answers every client in v1).
    pub resume_window: Duration,
    /// Suspended tunnels at once, all subjects.
    pub max_suspended: usize,
    /// Suspended tunnels of one subject.
    pub max_suspended_per_subject: usize,
    /// Replay bytes all suspended tunnels may hold.
    pub max_suspended_bytes: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        TunnelLimits {
            resume_window: resume::DEFAULT_RESUME_WINDOW,
            max_suspended: 256,
            max_suspended_per_subject: 64,
            max_suspended_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A client's request for the next leg of its tunnel.
pub(crate) struct Takeover {
    /// Bytes of our stream the client has written out.
    pub client_received: u64,
    /// Answered with the bytes of the client's stream we have written out, once the old leg
    /// (if still running) has stopped; the `101` carries it.
    pub answer: oneshot::Sender<u64>,
    /// The upgraded connection, once hyper hands it over.
    pub io: oneshot::Receiver<LegIo>,
}

/// Why a resume was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such tunnel (never, or no longer): 410.
    Gone,
    /// The tunnel belongs to another subject: 403.
    NotYours,
    /// The tunnel ended cleanly here while its client's last leg was dying: the client is told
    /// the end (`101` with our count, our `eof`, Close 1000), not a 410 that would make a
    /// complete transfer look broken.
    Ended { received: u64, sent: u64 },
}

/// A tunnel that ended cleanly, remembered for one resume window.
struct Ended {
    token: String,
    sub: String,
    at: Instant,
    /// Bytes of the client's stream written out, and our stream's length.
    received: u64,
    sent: u64,
}

/// Ended tunnels remembered at once (a few hundred bytes each); the oldest go first.
const MAX_ENDED: usize = 4096;

struct Entry {
    sub: String,
    legs: mpsc::Sender<Takeover>,
    /// While no leg runs: since when, and how many replay bytes it holds.
    suspended: Option<(Instant, usize)>,
    /// Cancelled to close the tunnel (a cap was reached).
    evict: CancellationToken,
}

/// The agent's v2 tunnels, by resume token.
#[derive(Clone)]
pub(crate) struct Tunnels {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Tunnels that ended cleanly, oldest first.
    ended: Arc<Mutex<VecDeque<Ended>>>,
    limits: TunnelLimits,
}

impl Tunnels {
    pub fn new(limits: TunnelLimits) -> Self {
        Tunnels { entries: Arc::default(), ended: Arc::default(), limits }
    }

    /// Whether protocol v2 is offered at all.
    pub fn enabled(&self) -> bool {
        !self.limits.resume_window.is_zero()
    }

    pub fn window(&self) -> Duration {
        self.limits.resume_window
    }

    /// A fresh resume token: 256 bits from the OS's generator, URL-safe base64.
    pub fn new_token() -> String {
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Hands a new leg to the tunnel `token`, if `sub` owns it.
    pub fn takeover(&self, token: &str, sub: &str, takeover: Takeover) -> Result<(), Refusal> {
        let entries = self.lock();
        let Some(entry) = entries.get(token) else {
            drop(entries);
            return Err(self.ended_refusal(token, sub));
        };
        if entry.sub != sub {
            return Err(Refusal::NotYours);
        }
        entry.legs.try_send(takeover).map_err(|_| Refusal::Gone)
    }

    /// Remembers a tunnel that ended cleanly, for one resume window.
    fn remember_end(&self, token: String, sub: &str, received: u64, sent: u64) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut ended);
        if ended.len() == MAX_ENDED {
            ended.pop_front();
        }
        ended.push_back(Ended { token, sub: sub.to_owned(), at: Instant::now(), received, sent });
    }

    /// What a resume of a tunnel that is not running is told.
    fn ended_refusal(&self, token: &str, sub: &str) -> Refusal {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut ended);
        match ended.iter().find(|e| e.token == token) {
            Some(e) if e.sub != sub => Refusal::NotYours,
            Some(e) => Refusal::Ended { received: e.received, sent: e.sent },
            None => Refusal::Gone,
        }
    }

    fn expire(&self, ended: &mut VecDeque<Ended>) {
        while ended.front().is_some_and(|e| e.at.elapsed() > self.limits.resume_window) {
            ended.pop_front();
        }
    }

    fn register(&self, token: String, sub: &str) -> (mpsc::Receiver<Takeover>, CancellationToken) {
        // One waiting leg at most: a client sends the next only after the last was answered.
        let (legs, rx) = mpsc::channel(1);
        let evict = CancellationToken::new();
        let entry = Entry { sub: sub.to_owned(), legs, suspended: None, evict: evict.clone() };
        self.lock().insert(token, entry);
        (rx, evict)
    }

    fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Marks `token` suspended, holding `bytes`, and closes the longest-suspended tunnels
    /// beyond the caps: first of the same subject (one client cannot crowd out the others),
    /// then of all.
    fn suspend(&self, token: &str, bytes: usize) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(token) else { return };
        entry.suspended = Some((Instant::now(), bytes));
        let sub = entry.sub.clone();
        let limits = self.limits;
        loop {
            let suspended: Vec<(&String, &Entry, Instant, usize)> = entries
                .iter()
                .filter(|(_, e)| !e.evict.is_cancelled())
                .filter_map(|(t, e)| e.suspended.map(|(at, b)| (t, e, at, b)))
                .collect();
            let total_bytes: usize = suspended.iter().map(|s| s.3).sum();
            let of_sub = suspended.iter().filter(|s| s.1.sub == sub).count();
            let victim = if of_sub > limits.max_suspended_per_subject {
                suspended.iter().filter(|s| s.1.sub == sub).min_by_key(|s| s.2)
            } else if suspended.len() > limits.max_suspended || total_bytes > limits.max_suspended_bytes {
                suspended.iter().min_by_key(|s| s.2)
            } else {
                None
            };
            let Some(victim) = victim else { break };
            tracing::info!(sub = %Untrusted(&victim.1.sub), "closing the longest-suspended tunnel: too many suspended tunnels");
            victim.1.evict.cancel();
            let token = victim.0.clone();
            entries.remove(&token);
        }
    }

    fn resumed(&self, token: &str) {
        if let Some(entry) = self.lock().get_mut(token) {
            entry.suspended = None;
        }
    }

    /// Suspended tunnels right now.
    #[cfg(test)]
    fn suspended(&self) -> usize {
        self.lock().values().filter(|e| e.suspended.is_some()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs a v2 tunnel from its first leg to its end, over the target's halves.
///
/// Returns how it ended, for the caller's log line: `Ok` for a Close 1000, else the error of
/// the last leg (or the window passing).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<R, W>(
    tunnels: &Tunnels,
    token: String,
    sub: &str,
    port: u16,
    first: LegIo,
    mut target_r: R,
    mut target_w: W,
    traffic: &Traffic,
) -> Result<(), String>
where
    R: LocalRead,
    W: AsyncWrite + Unpin,
{
    let (mut legs, evict) = tunnels.register(token.clone(), sub);
    let opts = SpliceOptions {
        traffic: Some(traffic),
        ping_interval: Some(resume::PING_INTERVAL),
        half_close: false,
        stop: None,
    };
    let mut stream = Stream::new();
    let mut leg = Some(first);
    let result = loop {
        // One leg, until it ends or a newer one replaces it (the client saw this one die first).
        let mut next = None;
        if let Some((io, slot)) = leg.take() {
            let socket = TunnelSocket::new(io, Role::Server, &[]);
            let ended = tokio::select! {
                r = splice_v2(socket, &mut target_r, &mut target_w, &mut stream, opts.clone()) => Some(r),
                t = legs.recv() => {
                    next = t;
                    None
                }
            };
            drop(slot);
            match ended {
                Some(Ok(())) => break Ok(()),
                Some(Err(e)) if e.is_network() && stream.complete() => break Ok(()),
                Some(Err(e)) if e.is_network() => {
                    tracing::info!(sub = %Untrusted(sub), port, "tunnel leg lost ({e}); keeping the tunnel for {} s", tunnels.window().as_secs());
                }
                Some(Err(e)) => break Err(e.to_string()),
                None => {
                    tracing::info!(sub = %Untrusted(sub), port, "tunnel leg replaced by a new connection")
                }
            }
        }
        let takeover = match next {
            Some(t) => t,
            None => {
                tunnels.suspend(&token, stream.buffered());
                tokio::select! {
                    t = legs.recv() => match t {
                        Some(t) => t,
                        None => break Err("the tunnel registry dropped it".into()),
                    },
                    _ = tokio::time::sleep(tunnels.window()) => {
                        break Err(format!("no new connection within the {} s resume window", tunnels.window().as_secs()))
                    }
                    _ = evict.cancelled() => break Err("closed to make room: too many suspended tunnels".into()),
                }
            }
        };
        tunnels.resumed(&token);
        if let Err(e) = stream.resync(takeover.client_received) {
            // The client claims bytes we never sent: not a client of this tunnel's stream.
            tracing::warn!(sub = %Untrusted(sub), port, "refused a resume: {e}");
            drop(takeover);
            continue;
        }
        if takeover.answer.send(stream.delivered()).is_err() {
            continue; // The request went away before its 101.
        }
        match tokio::time::timeout(Duration::from_secs(10), takeover.io).await {
            Ok(Ok(io)) => {
                tracing::info!(sub = %Untrusted(sub), port, "tunnel resumed");
                leg = Some(io);
            }
            _ => tracing::info!(sub = %Untrusted(sub), port, "a resume's upgrade did not complete"),
        }
    };
    tunnels.forget(&token);
    if result.is_ok() {
        tunnels.remember_end(token, sub, stream.delivered(), stream.sent());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_suspended: usize, per_subject: usize, bytes: usize) -> TunnelLimits {
        TunnelLimits {
            resume_window: Duration::from_secs(120),
            max_suspended,
            max_suspended_per_subject: per_subject,
            max_suspended_bytes: bytes,
        }
    }

    #[test]
    fn a_clean_end_is_remembered_for_its_owner_for_one_window() {
        let takeover = || {
            let (answer, _) = oneshot::channel();
            let (_, io) = oneshot::channel();
            Takeover { client_received: 0, answer, io }
        };
        let tunnels =
            Tunnels::new(TunnelLimits { resume_window: Duration::from_millis(50), ..limits(1, 1, 1) });
        tunnels.remember_end("done".into(), "alice", 5, 3);
        assert_eq!(
            tunnels.takeover("done", "alice", takeover()),
            Err(Refusal::Ended { received: 5, sent: 3 })
        );
        assert_eq!(tunnels.takeover("done", "mallory", takeover()), Err(Refusal::NotYours));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(tunnels.takeover("done", "alice", takeover()), Err(Refusal::Gone), "the window passed");
    }

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let (a, b) = (Tunnels::new_token(), Tunnels::new_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[tokio::test]
    async fn a_token_is_its_subjects_alone() {
        let tunnels = Tunnels::new(TunnelLimits::default());
        let (_legs, _evict) = tunnels.register("tok".into(), "alice");
        let takeover = || {
            let (answer, _) = oneshot::channel();
            let (_, io) = oneshot::channel();
            Takeover { client_received: 0, answer, io }
        };
        assert_eq!(tunnels.takeover("tok", "mallory", takeover()), Err(Refusal::NotYours));
        assert_eq!(tunnels.takeover("other", "alice", takeover()), Err(Refusal::Gone));
        assert_eq!(tunnels.takeover("tok", "alice", takeover()), Ok(()));
        tunnels.forget("tok");
        assert_eq!(tunnels.takeover("tok", "alice", takeover()), Err(Refusal::Gone));
    }

    #[tokio::test]
    async fn beyond_the_caps_the_longest_suspended_tunnel_is_closed() {
        let tunnels = Tunnels::new(limits(3, 2, 1000));
        let mut held = Vec::new();
        for (token, sub) in [("a1", "alice"), ("a2", "alice"), ("b1", "bob")] {
            held.push(tunnels.register(token.into(), sub));
            tunnels.suspend(token, 10);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(tunnels.suspended(), 3);
        // A third of alice's: her oldest goes, bob's stays.
        held.push(tunnels.register("a3".into(), "alice"));
        tunnels.suspend("a3", 10);
        assert!(held[0].1.is_cancelled() && !held[2].1.is_cancelled());
        assert_eq!(tunnels.suspended(), 3);
        // Over the byte cap: the oldest of all goes (alice's a2).
        held.push(tunnels.register("b2".into(), "bob"));
        tunnels.suspend("b2", 990);
        assert!(held[1].1.is_cancelled(), "a2 closed");
        assert!(!held[2].1.is_cancelled() || tunnels.suspended() <= 3);
        let total: usize = tunnels.lock().values().filter_map(|e| e.suspended.map(|s| s.1)).sum();
        assert!(total <= 1000, "{total}");
    }
}
