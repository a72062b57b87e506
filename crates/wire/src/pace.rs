//! How much of a v2 stream may be in flight (sent, not yet acknowledged): the replay window.
//!
//! Every byte in flight is also kept for replay, so the window is memory that cycles through the
//! caches, and on a fast path a large one only queues bytes in socket buffers: on loopback with
//! 8 long-lived iperf3 streams a fixed 4 MiB window cost v2 5–7 % of v1's throughput, a fixed
//! 512 KiB one made it 10 % faster than v1. On a long path the window caps throughput at
//! window ÷ round trip (512 KiB over 50 ms is 10 MB/s). So the window follows the path, as BBR sizes its flight:
//! twice the bandwidth-delay product — the best delivery rate of the last round trips times the
//! least round trip seen — between [`MIN_WINDOW`] and [`MAX_WINDOW`].
//!
//! A round trip is timed by one probe at a time: the end of a batch sent, until the ack that
//! covers it. While bytes queue (a receiver slower than the sender) the round trip grows and
//! the estimate falls to the floor; while the window itself is the limit the round trip stays
//! near the least one, the estimate is the window itself, and twice that grows it. A probe
//! during which the window never filled (an application sending less than the path carries)
//! may grow the window but never shrinks it.

use std::time::{Duration, Instant};

/// The largest window (and the start of each stream's): what the replay buffer may hold.
pub const MAX_WINDOW: usize = 4 * 1024 * 1024;

/// The smallest window: four acknowledgements' worth ([`crate::resume::ACK_EVERY`]), so that
/// acknowledgements keep the sender going even where round trips are too short to time.
pub const MIN_WINDOW: usize = 512 * 1024;

/// How long the least round trip stands before a newer sample replaces it (the path may have
/// changed: a route, a roaming laptop).
const MIN_RTT_LIFETIME: Duration = Duration::from_secs(10);

/// Round trips whose delivery rate counts: the best of them is the path's. A round trip that
/// started with less than the window in flight under-measures the rate; the best of several
/// does not.
const RATE_SAMPLES: usize = 8;

/// The window of one stream and the measurements that size it.
#[derive(Debug, Clone)]
pub struct Pace {
    window: usize,
    /// The least round trip seen, and when.
    min_rtt: Option<(Duration, Instant)>,
    /// Delivery rates (bytes a second) of the last round trips, oldest overwritten first.
    rates: [f64; RATE_SAMPLES],
    next_rate: usize,
    probe: Option<Probe>,
}

/// One round trip being timed.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// Stream offset whose acknowledgement ends it.
    until: u64,
    /// Acknowledged bytes when it started.
    acked: u64,
    start: Instant,
    /// The window filled while it ran: the sample reflects the path, not the application.
    full: bool,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { window: MAX_WINDOW, min_rtt: None, rates: [0.0; RATE_SAMPLES], next_rate: 0, probe: None }
    }
}

impl Pace {
    /// Bytes that may be in flight now.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Bytes up to stream offset `sent` have gone out, `acked` of them acknowledged.
    pub fn sent(&mut self, sent: u64, acked: u64, now: Instant) {
        if self.probe.is_none() {
            self.probe = Some(Probe { until: sent, acked, start: now, full: false });
        }
    }

    /// The sender waited for room: the window is what limits it now.
    pub fn window_full(&mut self) {
        if let Some(p) = &mut self.probe {
            p.full = true;
        }
    }

    /// The peer acknowledged `acked` bytes.
    pub fn acked(&mut self, acked: u64, now: Instant) {
        let Some(probe) = self.probe else { return };
        if acked < probe.until {
            return;
        }
        self.probe = None;
        let rtt = now.duration_since(probe.start).max(Duration::from_micros(1));
        let min_rtt = match self.min_rtt {
            Some((least, at)) if least <= rtt && now.duration_since(at) < MIN_RTT_LIFETIME => least,
            _ => {
                self.min_rtt = Some((rtt, now));
                rtt
            }
        };
        self.rates[self.next_rate] = (acked - probe.acked) as f64 / rtt.as_secs_f64();
        self.next_rate = (self.next_rate + 1) % RATE_SAMPLES;
        let rate = self.rates.iter().copied().fold(0.0, f64::max);
        let bdp = rate * min_rtt.as_secs_f64();
        let target = ((2.0 * bdp) as usize).clamp(MIN_WINDOW, MAX_WINDOW);
        if probe.full || target > self.window {
            self.window = target;
        }
    }

    /// A new leg: its path may differ, and what was in flight is sent again.
    pub fn new_leg(&mut self) {
        *self = Pace { window: self.window, ..Pace::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A sender that always has data on a path of least round trip `base` carrying `rate`
    /// bytes a second: a window beyond `rate × base` queues, and the round trip grows with it.
    /// The stream's first batch finds the path empty.
    fn run(pace: &mut Pace, rounds: u32, base: Duration, rate: f64) {
        let (mut now, mut sent) = (Instant::now(), 1000);
        pace.sent(sent, 0, now);
        now += base;
        pace.acked(sent, now);
        for _ in 0..rounds {
            let acked = sent;
            sent += pace.window() as u64;
            pace.sent(sent, acked, now);
            pace.window_full();
            now += base.max(Duration::from_secs_f64(pace.window() as f64 / rate));
            pace.acked(sent, now);
        }
    }

    #[test]
    fn a_queue_shrinks_the_window_to_the_floor() {
        // Loopback with a slower receiver: 100 µs empty, 2 GB/s.
        let mut pace = Pace::default();
        run(&mut pace, 5, Duration::from_micros(100), 2e9);
        assert_eq!(pace.window(), MIN_WINDOW);
    }

    #[test]
    fn a_long_path_gets_twice_what_it_carries_in_a_round_trip() {
        let cases = [
            // 50 ms, 1 Gbit/s: 6.25 MB a round trip — more than the most we keep.
            (50, 125e6, MAX_WINDOW..=MAX_WINDOW),
            // 50 ms, 40 Mbit/s: 250 KB; twice that is below the floor.
            (50, 5e6, MIN_WINDOW..=MIN_WINDOW),
            // 20 ms, 400 Mbit/s: 1 MB; about 2 MB.
            (20, 50e6, 1_900_000..=2_100_000),
        ];
        for (ms, rate, expected) in cases {
            for start in [MIN_WINDOW, MAX_WINDOW] {
                let mut pace = Pace { window: start, ..Pace::default() };
                run(&mut pace, 10, ms * MS, rate);
                assert!(
                    expected.contains(&pace.window()),
                    "{ms} ms, {rate} B/s from {start}: {}",
                    pace.window()
                );
            }
        }
    }

    #[test]
    fn a_round_trip_started_half_empty_does_not_shrink_the_window() {
        // 50 ms, 1 Gbit/s: a full window per round trip, then one that began with a quarter of
        // it in flight (a read smaller than the room) before the window filled.
        let mut pace = Pace::default();
        run(&mut pace, 3, 50 * MS, 125e6);
        let (t, sent) = (Instant::now(), 1 << 30);
        pace.sent(sent, sent - MAX_WINDOW as u64 / 4, t);
        pace.window_full();
        pace.acked(sent, t + 50 * MS);
        assert_eq!(pace.window(), MAX_WINDOW);
    }

    #[test]
    fn an_application_sending_little_never_shrinks_the_window() {
        // Keystrokes on a fast path: a few bytes per round trip, the window never full.
        let mut pace = Pace::default();
        let (mut now, mut sent) = (Instant::now(), 0);
        for _ in 0..10 {
            sent += 100;
            pace.sent(sent, sent - 100, now);
            now += MS;
            pace.acked(sent, now);
        }
        assert_eq!(pace.window(), MAX_WINDOW);
    }

    #[test]
    fn the_least_round_trip_expires_and_a_new_leg_forgets_it() {
        let mut pace = Pace::default();
        let t = Instant::now();
        pace.sent(1, 0, t);
        pace.acked(1, t + MS);
        assert_eq!(pace.min_rtt.map(|m| m.0), Some(MS));
        pace.sent(2, 1, t + 2 * MS);
        pace.acked(2, t + 7 * MS);
        assert_eq!(pace.min_rtt.map(|m| m.0), Some(MS), "a longer sample keeps the least");
        let later = t + MIN_RTT_LIFETIME + 10 * MS;
        pace.sent(3, 2, later);
        pace.acked(3, later + 5 * MS);
        assert_eq!(pace.min_rtt.map(|m| m.0), Some(5 * MS), "an old least gives way");
        pace.new_leg();
        assert!(pace.min_rtt.is_none() && pace.probe.is_none());
    }

    #[test]
    fn an_acknowledgement_short_of_the_probe_does_not_end_it() {
        let mut pace = Pace::default();
        let t = Instant::now();
        pace.sent(1000, 0, t);
        pace.sent(2000, 0, t + MS); // a probe runs: not restarted
        pace.acked(999, t + 2 * MS);
        assert!(pace.probe.is_some_and(|p| p.until == 1000));
        pace.acked(1000, t + 3 * MS);
        assert!(pace.probe.is_none());
        assert_eq!(pace.min_rtt.map(|m| m.0), Some(3 * MS));
    }
}
