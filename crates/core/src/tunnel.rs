//! One tunnel between a pair of local byte streams and a port in the pod: protocol v2 with
//! resumption when the server speaks it ([`sandbox_wire::resume`]), v1 otherwise.
//!
//! A v2 tunnel whose connection is lost (reset, hang-up without a Close, a stall caught by the
//! ping timeout) reconnects with backoff and its resume token, and both ends replay what the
//! other missed: the local application sees one unbroken byte stream. Resuming is logged at
//! `info` only — the ProxyCommand's terminal is ssh's, and stays quiet until it gives up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sandbox_wire::local::LocalRead;
use sandbox_wire::resume::{self, Stream};
use sandbox_wire::tunnel::{splice, splice_v2, SpliceError, SpliceOptions, TunnelSocket};
use tokio::io::AsyncWrite;

use crate::api::{ApiClient, ApiError, Offer};
use crate::net::{NetError, Transport};

/// The variable with which a user forces tunnel protocol v1 (`v1`): benchmarks, tests, a
/// gateway that mangles subprotocols. Read by the front ends, which call [`offer_v1_only`].
pub const PROTOCOL_ENV: &str = "SANDBOX_FORWARD_TUNNEL_PROTOCOL";

/// First pause between resume attempts; it doubles up to [`MAX_RETRY`]. Short: the point is to
/// be back within a second of the network.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_millis(500);
/// Longest one resume attempt may take (connect, TLS, upgrade): a black-holed network hangs
/// an attempt instead of refusing it, and the next attempt must not wait behind it for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why one tunnelled connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The tunnel could not be opened (or resumed: the server refused or forgot it).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The tunnel broke while in use. Not a `source`: the message already holds the cause,
    /// and a chain printer (`{:#}`) would repeat it.
    #[error("{err}{advice}", err = .0, advice = advice(.0))]
    Splice(SpliceError),
    /// A v2 tunnel could not get a new connection within the server's resume window.
    #[error("the tunnel was lost ({cause}) and could not resume within the sandbox's {} s resume window ({last}); what was in flight is lost: reconnect once the network is back", .window.as_secs())]
    ResumeExpired { window: Duration, cause: String, last: String },
    /// The two ends disagree about the stream (a bug, or another server at the same address).
    #[error("the tunnel cannot resume: {0}; reconnect")]
    Resync(#[from] resume::ResumeError),
    /// The local socket failed.
    #[error("local socket failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<SpliceError> for TunnelError {
    fn from(e: SpliceError) -> Self {
        TunnelError::Splice(e)
    }
}

/// What to do about a broken tunnel, for the one line the user sees.
fn advice(e: &SpliceError) -> &'static str {
    match e {
        // Only v1 ends here on a network error: v2 resumes instead. v1 because the user asked
        // for it, or because the server speaks nothing else.
        e if e.is_network() && !offer_v2() => {
            "; what was in flight is lost (tunnel protocol v1, which SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1 asks for, cannot resume): reconnect once the network is back, or unset the variable to let tunnels resume"
        }
        e if e.is_network() => {
            "; what was in flight is lost (tunnel protocol v1, which this server speaks, cannot resume): reconnect once the network is back (`sandbox-forward status` checks the server)"
        }
        SpliceError::Closed { reason, .. } if reason == sandbox_wire::tunnel::DIAL_FAILED => {
            ": start the service in the sandbox, or check the port"
        }
        SpliceError::Closed { .. } => "; reconnect, and if it happens again see the sandbox agent's log",
        SpliceError::Protocol(_) | SpliceError::Unsupported(_) => {
            "; check that --server is the sandbox's server and not another WebSocket service"
        }
        _ => "",
    }
}

/// Connections of a forward that are resuming right now, for "reconnecting (12 s)…".
#[derive(Debug, Default)]
pub struct Resuming {
    count: AtomicU64,
    since: Mutex<Option<Instant>>,
}

impl Resuming {
    /// When the oldest connection now resuming lost its leg; `None` when none is resuming.
    pub fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self) -> ResumingGuard<'_> {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            *since = Some(Instant::now());
        }
        ResumingGuard(self)
    }
}

struct ResumingGuard<'a>(&'a Resuming);

impl Drop for ResumingGuard<'_> {
    fn drop(&mut self) {
        let mut since = self.0.since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.count.fetch_sub(1, Ordering::Relaxed) == 1 {
            *since = None;
        }
    }
}

static V1_ONLY: AtomicBool = AtomicBool::new(false);

/// From now on this process's tunnels offer protocol v1 only ([`PROTOCOL_ENV`]).
pub fn offer_v1_only() {
    V1_ONLY.store(true, Ordering::Relaxed);
}

fn offer_v2() -> bool {
    !V1_ONLY.load(Ordering::Relaxed)
}

/// Carries one tunnel to `remote_port` over `input`/`output` until it ends.
///
/// `Ok` for a clean end. On an error the local side is left as it is (neither flushed to EOF
/// nor shut down): the caller makes the break visible to the local application.
pub async fn carry<R, W>(
    api: &ApiClient,
    remote_port: u16,
    mut input: R,
    mut output: W,
    opts: SpliceOptions<'_>,
    resuming: Option<&Resuming>,
) -> Result<(), TunnelError>
where
    R: LocalRead,
    W: AsyncWrite + Unpin,
{
    let leg = api.open_leg(remote_port, if offer_v2() { Offer::V2 } else { Offer::V1 }).await?;
    let Some(v2) = leg.v2 else {
        splice(leg.socket, input, output, opts).await?;
        return Ok(());
    };
    let opts = SpliceOptions { ping_interval: Some(resume::PING_INTERVAL), ..opts };
    let mut stream = Stream::new();
    stream.resync(v2.received)?;
    let mut socket = leg.socket;
    loop {
        let lost = match splice_v2(socket, &mut input, &mut output, &mut stream, opts.clone()).await {
            Ok(()) => return Ok(()),
            // Lost after both directions were over: nothing is missing.
            Err(e) if e.is_network() && stream.complete() => return Ok(()),
            Err(e) if e.is_network() => e,
            Err(e) => return Err(e.into()),
        };
        let _resuming = resuming.map(Resuming::begin);
        let started = Instant::now();
        tracing::info!(remote_port, "tunnel lost ({lost}); resuming");
        let resumed = resume_leg(api, remote_port, &v2.token, &mut stream, v2.window, &lost);
        socket = match opts.stop {
            // Stopped while the network is down: the agent cannot be told, and closes the
            // pod's side once its resume window has passed.
            Some(stop) => tokio::select! {
                leg = resumed => leg?,
                _ = stop.cancelled() => return Err(SpliceError::Stopped.into()),
            },
            None => resumed.await?,
        };
        tracing::info!(remote_port, after_ms = started.elapsed().as_millis() as u64, "tunnel resumed");
    }
}

/// Gets the next leg of a v2 tunnel, retrying with backoff within the resume window.
async fn resume_leg(
    api: &ApiClient,
    remote_port: u16,
    token: &str,
    stream: &mut Stream,
    window: Duration,
    lost: &SpliceError,
) -> Result<TunnelSocket<Transport>, TunnelError> {
    let deadline = Instant::now() + window;
    let mut pause = FIRST_RETRY;
    let mut last = String::from("no attempt finished");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TunnelError::ResumeExpired { window, cause: lost.to_string(), last });
        }
        let offer = Offer::Resume { token, received: stream.delivered() };
        match tokio::time::timeout(ATTEMPT_TIMEOUT.min(left), api.open_leg(remote_port, offer)).await {
            Ok(Ok(leg)) => {
                let v2 = leg.v2.expect("a resume is answered in v2 or refused");
                stream.resync(v2.received)?;
                return Ok(leg.socket);
            }
            Ok(Err(e)) if retryable(&e) => {
                tracing::debug!(remote_port, "resume attempt failed: {e}");
                last = format!("last attempt: {e}");
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => last = format!("last attempt: no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(MAX_RETRY);
    }
}

/// Failures the network or a restarting gateway cause, which the next attempt may not meet.
/// A refusal (401, 403, 410) is final.
fn retryable(e: &ApiError) -> bool {
    match e {
        ApiError::Net(NetError::Cleartext { .. }) => false,
        ApiError::Net(_) | ApiError::Handshake { .. } => true,
        ApiError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_reports_the_oldest_lost_connection_until_all_are_back() {
        let r = Resuming::default();
        assert_eq!(r.since(), None);
        let a = r.begin();
        let first = r.since().expect("resuming");
        std::thread::sleep(Duration::from_millis(5));
        let b = r.begin();
        assert_eq!(r.since(), Some(first), "the oldest start is kept");
        drop(a);
        assert_eq!(r.since(), Some(first));
        drop(b);
        assert_eq!(r.since(), None);
    }

    #[test]
    fn only_network_and_gateway_failures_are_retried() {
        let status = |status| ApiError::Status { url: "u".into(), status, detail: String::new() };
        assert!(retryable(&status(502)) && retryable(&status(503)) && retryable(&status(504)));
        assert!(!retryable(&status(500)));
        assert!(!retryable(&ApiError::TunnelGone { server: "s".into() }));
        assert!(!retryable(&ApiError::Forbidden { server: "s".into() }));
        assert!(retryable(&ApiError::Handshake { url: "u".into(), detail: "closed".into() }));
    }
}
