//! What one HTTP connection may cost the agent: how many are open at once, how long a client
//! may take to send a request, and what a failing `accept` does.
//!
//! - Every connection holds a slot of [`Limits::max_connections`] from `accept` until it closes —
//!   through its tunnel's life when it became one ([`ConnectionSlot`] rides in the request's
//!   extensions to `port_forward`). At the cap the loop stops accepting: new connections wait in
//!   the kernel's listen backlog, costing no descriptor, and are served in turn as slots free.
//!   The default keeps the cap well below the file descriptor limit, so `accept` does not run
//!   out of descriptors in the first place.
//! - hyper's header timer ([`Limits::header_timeout`]) runs from the moment a connection waits
//!   for a request (a new one, or the next on a kept-alive one) until the headers are complete:
//!   it closes slowloris clients and idle keep-alive connections alike.
//! - [`Limits::request_timeout`] bounds the handler, body included: a body that stops arriving
//!   (`Content-Length: 10^12` and one byte) gets 408 and the connection is closed.
//! - A failing `accept` (EMFILE, ENFILE, ENOBUFS…) pauses accepting with a growing back-off and
//!   is logged once per episode, not once per attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, Resource};
use tokio::sync::OwnedSemaphorePermit;

/// Descriptors kept out of the connection budget: the listeners, logs, the SSH server's own.
const RESERVED_FDS: u64 = 32;
/// Descriptors one connection may cost: its socket, a tunnel's target socket, and for an SSH
/// session through it a pty or three pipes shared with others.
const FDS_PER_CONNECTION: u64 = 4;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections (and the tunnels they became) open at once.
    pub max_connections: usize,
    /// From waiting for a request until its headers are complete; also how long a kept-alive
    /// connection may sit idle.
    pub header_timeout: Duration,
    /// From complete headers until the response, the request body included.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A quarter of the soft `RLIMIT_NOFILE` left after a reserve (at least 8, at most 65,536).
pub fn default_max_connections() -> usize {
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let budget = soft.saturating_sub(RESERVED_FDS) / FDS_PER_CONNECTION;
    usize::try_from(budget.clamp(8, 65_536)).unwrap_or(65_536)
}

/// A connection's place under [`Limits::max_connections`], freed when the last clone drops.
#[derive(Clone)]
pub(crate) struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl ConnectionSlot {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        ConnectionSlot(Arc::new(permit))
    }
}

/// First pause after a failed `accept`; doubled per failure in a row, up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// While `accept` keeps failing, one reminder per this long.
const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Failed `accept`s in a row: the back-off, and logging once per episode.
#[derive(Default)]
pub(crate) struct AcceptFailures {
    count: u64,
    since: Option<Instant>,
    last_log: Option<Instant>,
}

impl AcceptFailures {
    /// Records a failure; returns how long to pause before accepting again.
    pub(crate) fn failed(&mut self, error: &std::io::Error, open: usize) -> Duration {
        let now = Instant::now();
        self.count += 1;
        let since = *self.since.get_or_insert(now);
        let remind = self.last_log.is_none_or(|last| now.duration_since(last) >= REMIND_EVERY);
        if remind {
            self.last_log = Some(now);
            tracing::warn!(
                open_connections = open,
                failures = self.count,
                for_s = now.duration_since(since).as_secs(),
                "accepting connections failed: {error}; pausing and retrying (new connections \
                 wait in the listen backlog)"
            );
        }
        let doublings = u32::try_from(self.count.saturating_sub(1).min(10)).unwrap_or(10);
        (FIRST_PAUSE * 2u32.pow(doublings)).min(MAX_PAUSE)
    }

    /// A connection was accepted: ends an episode of failures (logged if there was one).
    pub(crate) fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                failures = self.count,
                after_ms = since.elapsed().as_millis() as u64,
                "accepting connections again"
            );
        }
        self.count = 0;
        self.last_log = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_to_a_second_and_resets() {
        let mut f = AcceptFailures::default();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..8).map(|_| f.failed(&e, 3)).collect();
        assert_eq!(pauses[0], Duration::from_millis(50));
        assert_eq!(pauses[1], Duration::from_millis(100));
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
        f.recovered();
        assert_eq!(f.failed(&e, 0), FIRST_PAUSE);
    }

    #[test]
    fn the_default_cap_stays_below_the_descriptor_limit() {
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let cap = default_max_connections() as u64;
        assert!(cap >= 8);
        if soft < 1 << 20 {
            assert!(cap * FDS_PER_CONNECTION + RESERVED_FDS <= soft.max(64), "{cap} for {soft}");
        }
    }
}
