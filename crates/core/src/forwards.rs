//! The set of port forwards a long-running process (the tray app, `sandbox-forward up`) keeps:
//! start, stop, and live status per forward. Each running forward is one listener task from
//! [`crate::forward`]; stopping it closes the listener and ends its connections with a Close
//! the pod hears.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::ApiClient;
use crate::forward::{self, ForwardError, ForwardStats};
use crate::name::SandboxName;

/// A forward as the user configured it (stored in the sandbox's profile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    /// Port inside the pod.
    pub remote_port: u16,
    /// Port on 127.0.0.1 (0 = any free port).
    pub local_port: u16,
    /// What runs there ("vite", "debugpy"…), for display.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Start with the app / `sandbox-forward up`.
    #[serde(default)]
    pub auto_start: bool,
}

/// Why a forward cannot be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The sandbox only forwards non-privileged ports.
    #[error("remote port {0} cannot be forwarded: the sandbox allows ports 1024-65535")]
    RemotePort(u16),
}

impl PortForward {
    /// Checks the spec against what the sandbox API accepts.
    pub fn validate(&self) -> Result<(), SpecError> {
        if sandbox_wire::api::FORWARDABLE_PORTS.contains(&self.remote_port) {
            Ok(())
        } else {
            Err(SpecError::RemotePort(self.remote_port))
        }
    }
}

/// Live state of one running forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardStatus {
    /// Sandbox.
    pub sandbox: String,
    /// Port inside the pod.
    pub remote_port: u16,
    /// Bound local port.
    pub local_port: u16,
    /// Connections open now.
    pub active: u64,
    /// Connections since start.
    pub total: u64,
    /// Bytes sent to the pod.
    pub bytes_sent: u64,
    /// Bytes received from the pod.
    pub bytes_received: u64,
    /// Most recent connection failure.
    pub last_error: Option<String>,
    /// Some connection's tunnel is resuming (protocol v2): for how long, the oldest.
    pub reconnecting_for: Option<std::time::Duration>,
}

struct Running {
    local_port: u16,
    stats: Arc<ForwardStats>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops the listener and its connections — each tunnel told the pod it is over, so the
    /// pod's side closes now rather than after a resume window — and waits until they are gone.
    async fn finish(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(FINISH_WAIT, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}

/// Longer than `forward`'s own grace for its connections' Close, so that it decides.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// Running forwards, keyed by sandbox and remote port.
#[derive(Default)]
pub struct Forwards {
    running: Mutex<BTreeMap<(SandboxName, u16), Running>>,
}

impl Forwards {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a forward (checking access first, so a 401 or a disabled feature is reported here
    /// rather than on the first connection); returns the bound local port. Starting a forward
    /// that runs already restarts it.
    pub async fn start(
        &self,
        sandbox: &SandboxName,
        api: ApiClient,
        spec: &PortForward,
    ) -> Result<u16, ForwardError> {
        self.stop(sandbox, spec.remote_port).await;
        forward::check_target(&api, spec.local_port, spec.remote_port)?;
        api.preflight_port_forward(spec.remote_port).await?;
        let listener = forward::bind_local(spec.local_port).await?;
        let local_port = listener
            .local_addr()
            .map_err(|source| ForwardError::Bind { port: spec.local_port, source })?
            .port();
        // Any free port (0) may happen to be the remote one.
        forward::check_target(&api, local_port, spec.remote_port)?;
        let stats = Arc::new(ForwardStats::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(forward::serve(listener, api, spec.remote_port, stats.clone(), stop.clone()));
        self.lock().insert((sandbox.clone(), spec.remote_port), Running { local_port, stats, stop, task });
        Ok(local_port)
    }

    /// Stops a forward; true if it was running. When this returns, the local port is closed and
    /// so is every connection through it.
    pub async fn stop(&self, sandbox: &SandboxName, remote_port: u16) -> bool {
        let running = self.lock().remove(&(sandbox.clone(), remote_port));
        match running {
            Some(running) => {
                running.finish().await;
                true
            }
            None => false,
        }
    }

    /// Stops every forward of a sandbox (sign-out, removal), or of every sandbox.
    pub async fn stop_all(&self, sandbox: Option<&SandboxName>) {
        let stopped: Vec<Running> = {
            let mut map = self.lock();
            let keys: Vec<_> = map.keys().filter(|(s, _)| sandbox.is_none_or(|n| n == s)).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        // All told at once: each then waits out its grace alongside the others, not after.
        for running in &stopped {
            running.stop.cancel();
        }
        for running in stopped {
            running.finish().await;
        }
    }

    /// Whether a forward is running.
    pub fn is_running(&self, sandbox: &SandboxName, remote_port: u16) -> bool {
        self.lock().contains_key(&(sandbox.clone(), remote_port))
    }

    /// Live numbers of every running forward.
    pub fn status(&self) -> Vec<ForwardStatus> {
        self.lock()
            .iter()
            .map(|((sandbox, remote_port), r)| {
                let (bytes_sent, bytes_received) = r.stats.traffic.snapshot();
                ForwardStatus {
                    sandbox: sandbox.to_string(),
                    remote_port: *remote_port,
                    local_port: r.local_port,
                    active: r.stats.active.load(Ordering::Relaxed),
                    total: r.stats.total.load(Ordering::Relaxed),
                    bytes_sent,
                    bytes_received,
                    last_error: r.stats.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    reconnecting_for: r.stats.resuming.since().map(|since| since.elapsed()),
                }
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(SandboxName, u16), Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::test_client as client;

    /// On a sandbox served from this machine, the pod's 127.0.0.1:N is ours: a forward from
    /// local port N to remote port N would dial itself, connection after connection.
    #[tokio::test]
    async fn a_forward_onto_its_own_listener_on_a_loopback_sandbox_is_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let name = SandboxName::new("demo").unwrap();
        let spec =
            PortForward { remote_port: port, local_port: port, label: String::new(), auto_start: false };
        for server in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
            let forwards = Forwards::new();
            let err = forwards.start(&name, client(server), &spec).await.unwrap_err();
            assert!(matches!(err, ForwardError::OwnListener { .. }), "{server}: {err}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("local port {port}")) && message.contains("choose"),
                "{message}"
            );
            assert!(!forwards.is_running(&name, port));
        }
    }
}
