//! Ports found listening in a sandbox: every [`SCAN_EVERY`] the sandboxes that are ready are
//! scanned (`sandbox_core::ports::detect`, as `Request::ListeningPorts` does on request); the
//! ports each faces offers as "5173 node — Forward" (`Request::ForwardPort`). A port that starts
//! listening after a sandbox's first scan is new: it is announced once (Activity, and a
//! notification where they are on) or, with the sandbox's auto-forward on, forwarded at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;
use std::time::Duration;

use sandbox_core::forwards::PortForward;
use sandbox_core::name::SandboxName;
use sandbox_core::ports::ListeningPort;
use sandbox_core::profile::Profile;
use sandbox_core::server::ServerUrl;

use super::{Inner, Service};
use crate::listening;
use crate::protocol::{ActionError, DetectedPort, ErrorCode, Health, LogLevel};

/// How often ready sandboxes are scanned for listening ports.
pub(super) const SCAN_EVERY: Duration = Duration::from_secs(30);

/// What the scans found in one sandbox.
#[derive(Debug, Default)]
pub(super) struct Detected {
    /// The last scan's ports.
    ports: Vec<ListeningPort>,
    /// Every port seen listening since the app started (or the sandbox's first scan): a port
    /// is new, and announced, only once.
    seen: BTreeSet<u16>,
}

impl Detected {
    /// Takes a scan's ports; answers the new ones (none at the first scan, which only sets what
    /// is already there).
    pub(super) fn update(&mut self, ports: Vec<ListeningPort>, first: bool) -> Vec<ListeningPort> {
        let new = ports.iter().filter(|p| !first && !self.seen.contains(&p.port)).cloned().collect();
        self.seen.extend(ports.iter().map(|p| p.port));
        self.ports = ports;
        new
    }

    /// The last scan's ports as the faces show them.
    pub(super) fn view(&self, saved: &[PortForward]) -> Vec<DetectedPort> {
        listening::view(&self.ports, sandbox_core::ports::PortsSource::Agent, saved).ports
    }

    fn process(&self, port: u16) -> Option<&str> {
        self.ports.iter().find(|p| p.port == port).and_then(|p| p.process.as_deref())
    }
}

impl Service {
    /// Scans every sandbox that is ready (or forwarding) for listening ports.
    pub(super) async fn scan_all(&self) {
        let ready: Vec<SandboxName> = {
            let state = self.lock();
            state
                .statuses
                .iter()
                .filter(|(_, s)| matches!(s.health, Health::Ready | Health::Forwarding))
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in ready {
            self.scan(&name).await;
        }
    }

    /// One sandbox's scan: records its ports, then announces or forwards the new ones. A failed
    /// scan is left for the next (the probe reports why a sandbox is unreachable).
    pub(super) async fn scan(&self, name: &SandboxName) {
        let found = listening::detect(&self.inner.install, &*self.inner.desktop, name).await;
        let ports = match found {
            Ok((ports, _)) => ports,
            Err(e) => {
                tracing::debug!(sandbox = name.as_str(), "port scan failed: {}", e.message);
                return;
            }
        };
        let Ok(profile) = self.inner.install.profiles().load(name) else { return };
        let ports = self.pod_ports(&profile, ports);
        let new = self.record_ports(name, ports, false);
        let new: Vec<_> =
            new.into_iter().filter(|p| !profile.forwards.iter().any(|f| f.remote_port == p.port)).collect();
        if new.is_empty() {
            return;
        }
        let (auto, notify) = {
            let state = self.lock();
            (state.settings.auto_forward.contains(name.as_str()), state.settings.preferences.notifications)
        };
        for port in new {
            let what = describe_port(&port);
            if auto {
                match self.forward_port(name, port.port).await {
                    Ok(notice) => {
                        if notify {
                            self.notify(&format!("{name}: {what} forwarded"), &notice);
                        }
                    }
                    Err(e) => {
                        self.log(LogLevel::Warn, Some(name), format!("Cannot forward {what}: {}", e.message))
                    }
                }
            } else {
                self.log(
                    LogLevel::Info,
                    Some(name),
                    format!("{what} started listening; Forward it from the tray or the Ports card"),
                );
                if notify {
                    self.notify(
                        &format!("{name}: {what} is listening"),
                        "Forward it from the tray menu or the window's Ports card.",
                    );
                }
            }
        }
    }

    /// The ports of a scan that are the pod's own. A sandbox served from this computer (the
    /// demo) lists this app's forward listeners too: offering one would forward a forward, and
    /// auto-forward would then add a forward to each forward it made, without end.
    pub(crate) fn pod_ports(&self, profile: &Profile, mut ports: Vec<ListeningPort>) -> Vec<ListeningPort> {
        if served_here(profile) {
            let ours: BTreeSet<u16> = self.inner.forwards.status().iter().map(|f| f.local_port).collect();
            ports.retain(|p| !ours.contains(&p.port));
        }
        ports
    }

    /// Stores a scan's ports (`seen_all`: a scan the user asked for, whose ports are then not
    /// announced as new later) and answers the new ones.
    pub(super) fn record_ports(
        &self,
        name: &SandboxName,
        ports: Vec<ListeningPort>,
        seen_all: bool,
    ) -> Vec<ListeningPort> {
        let mut state = self.lock();
        let first = !state.detected.contains_key(name) || seen_all;
        let detected = state.detected.entry(name.clone()).or_default();
        let before: Vec<u16> = detected.ports.iter().map(|p| p.port).collect();
        let new = detected.update(ports, first);
        let changed = before != detected.ports.iter().map(|p| p.port).collect::<Vec<_>>();
        drop(state);
        if changed {
            self.bump();
        }
        new
    }

    /// `Request::ForwardPort`: saves a forward to a port listening in the sandbox (labelled with
    /// its process) and starts it; one already saved is only started.
    pub(super) async fn forward_port(
        &self,
        name: &SandboxName,
        remote_port: u16,
    ) -> Result<String, ActionError> {
        let profile = self.inner.install.profiles().load(name)?;
        if !(1024..=65535).contains(&remote_port) {
            return Err(ActionError::new(
                ErrorCode::InvalidInput,
                format!("port {remote_port} cannot be forwarded; pick a port from 1024 up"),
            ));
        }
        let spec = match profile.forwards.iter().find(|f| f.remote_port == remote_port) {
            Some(saved) => saved.clone(),
            None => {
                let label = self
                    .lock()
                    .detected
                    .get(name)
                    .and_then(|d| d.process(remote_port))
                    .unwrap_or_default()
                    .to_owned();
                let local_port = choose_local_port(&profile, remote_port, port_is_free);
                let spec = PortForward { remote_port, local_port, label, auto_start: false };
                self.inner.install.save_forward(name, spec.clone())?;
                self.bump();
                spec
            }
        };
        let local = self.start_forward(name, &spec).await?;
        Ok(format!("Forwarding localhost:{local} → :{remote_port}"))
    }

    /// `Request::SetAutoForward`.
    pub(super) fn set_auto_forward(&self, name: &SandboxName, on: bool) -> Result<String, ActionError> {
        self.inner.install.profiles().load(name)?;
        let mut state = self.lock();
        let changed = if on {
            state.settings.auto_forward.insert(name.to_string())
        } else {
            state.settings.auto_forward.remove(name.as_str())
        };
        if changed {
            self.inner.settings_file.save(&state.settings).map_err(ActionError::from)?;
        }
        drop(state);
        self.bump();
        Ok(if on {
            format!("Ports that start listening in {name} are forwarded as they are found.")
        } else {
            format!("Ports that start listening in {name} are offered, not forwarded.")
        })
    }
}

/// The local port for a detected port: the same one where it is free and no other forward of
/// the sandbox uses it, else a free one the system picks. A sandbox served from this computer
/// (the demo) always gets a free one: there the same port is the pod's listener itself.
fn choose_local_port(profile: &Profile, remote_port: u16, free: impl Fn(u16) -> bool) -> u16 {
    let here = served_here(profile);
    let used = profile.forwards.iter().any(|f| f.local_port == remote_port);
    if !here && !used && free(remote_port) {
        remote_port
    } else {
        sandbox_core::forward::free_local_port().unwrap_or(0)
    }
}

/// The sandbox's server is on this computer (loopback): its "pod" is this machine.
fn served_here(profile: &Profile) -> bool {
    ServerUrl::parse(&profile.server).is_ok_and(|s| sandbox_core::net::is_loopback(&s.endpoint("/")))
}

/// Whether 127.0.0.1:port can be bound now.
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// "port 5173 (node)".
fn describe_port(p: &ListeningPort) -> String {
    match &p.process {
        Some(process) => format!("port {} ({})", p.port, sandbox_core::untrusted::printable(process)),
        None => format!("port {}", p.port),
    }
}

/// The scan loop: every [`SCAN_EVERY`] (the first a period after start, once the probes have
/// said which sandboxes are ready); returns when the service is gone.
pub(super) async fn scanner(weak: Weak<Inner>) {
    let mut every = tokio::time::interval(SCAN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        Service { inner }.scan_all().await;
    }
}

/// Keeps what the scans found keyed by the sandbox's current name.
pub(super) fn rename(detected: &mut BTreeMap<SandboxName, Detected>, old: &SandboxName, new: &SandboxName) {
    if let Some(d) = detected.remove(old) {
        detected.insert(new.clone(), d);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::protocol::Request;
    use crate::service::testing::{ports_server, service_with, settings, Recorder};

    fn port(port: u16) -> ListeningPort {
        ListeningPort { port, process: Some("node".into()) }
    }

    #[test]
    fn a_port_is_new_once_and_never_at_the_first_scan() {
        let mut d = Detected::default();
        assert!(d.update(vec![port(3000)], true).is_empty(), "the first scan only sets what is there");
        assert_eq!(d.update(vec![port(3000), port(5173)], false), [port(5173)]);
        assert!(d.update(vec![port(3000)], false).is_empty(), "gone");
        assert!(d.update(vec![port(3000), port(5173)], false).is_empty(), "back, but not new again");
        let saved =
            [PortForward { remote_port: 3000, local_port: 3000, label: String::new(), auto_start: false }];
        let view = d.view(&saved);
        assert_eq!(
            view.iter().map(|p| (p.port, p.forwarded)).collect::<Vec<_>>(),
            [(3000, true), (5173, false)]
        );
    }

    #[test]
    fn the_same_local_port_when_free_else_any_free_one() {
        let profile = |server: &str, local: u16| Profile {
            server: server.into(),
            forwards: vec![PortForward {
                remote_port: 9000,
                local_port: local,
                label: String::new(),
                auto_start: false,
            }],
            ..Profile::default()
        };
        let remote = profile("https://sandboxes.example.com", 9000);
        assert_eq!(choose_local_port(&remote, 5173, |_| true), 5173);
        assert_ne!(choose_local_port(&remote, 5173, |_| false), 5173, "taken by another program");
        let other = profile("https://sandboxes.example.com", 5173);
        assert_ne!(choose_local_port(&other, 5173, |_| true), 5173, "used by another forward of it");
        let here = profile("http://127.0.0.1:4000", 9000);
        assert_ne!(
            choose_local_port(&here, 5173, |_| true),
            5173,
            "on this computer it would be the pod's own"
        );
    }

    /// Against a server whose listening ports change: the first scan sets what is there, a port
    /// that starts listening later is announced once (Activity and a notification) and offered
    /// in the snapshot; with auto-forward on, the next new one gets a saved forward instead.
    #[tokio::test]
    async fn new_ports_are_announced_once_or_forwarded_with_auto_forward() {
        let ports = Arc::new(Mutex::new(vec![3000]));
        let server = format!("http://127.0.0.1:{}", ports_server(ports.clone()).await);
        let (_home, app, desktop) = service_with(Recorder::default(), None);
        app.handle(Request::SaveSandbox { original: None, settings: settings("dev", &server) })
            .await
            .unwrap();
        let name = SandboxName::new("dev").unwrap();

        app.scan(&name).await;
        let snap = app.snapshot();
        assert_eq!(snap.sandboxes[0].detected_ports.iter().map(|p| p.port).collect::<Vec<_>>(), [3000]);
        assert!(desktop.notes.lock().unwrap().is_empty(), "the first scan announces nothing");

        ports.lock().unwrap().push(5173);
        app.scan(&name).await;
        app.scan(&name).await;
        assert_eq!(
            *desktop.notes.lock().unwrap(),
            ["dev: port 5173 (node) is listening: Forward it from the tray menu or the window's Ports card."]
        );
        let log = app.snapshot().log;
        assert_eq!(
            log.iter().filter(|l| l.message.starts_with("port 5173 (node) started listening")).count(),
            1
        );

        let reply = app.handle(Request::SetAutoForward { name: "dev".into(), on: true }).await.unwrap();
        assert!(reply.snapshot.sandboxes[0].auto_forward);
        ports.lock().unwrap().push(8080);
        app.scan(&name).await;
        let snap = app.snapshot();
        let saved: Vec<_> =
            snap.sandboxes[0].forwards.iter().map(|f| (f.spec.remote_port, f.spec.label.as_str())).collect();
        assert_eq!(saved, [(8080, "node")], "auto-forward saved it");
        let notes = desktop.notes.lock().unwrap().clone();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].starts_with("dev: port 8080 (node) forwarded: Forwarding localhost:"), "{notes:?}");
        assert!(snap.sandboxes[0].detected_ports.iter().any(|p| p.port == 8080 && p.forwarded));

        // This "pod" is this computer (its server is on loopback), so it lists the forward's own
        // listener too: that is never offered, announced or forwarded (each forward would get
        // a forward of its own, scan after scan).
        let local = snap.sandboxes[0].forwards[0].bound_port.expect("the forward listens");
        ports.lock().unwrap().push(local);
        app.scan(&name).await;
        app.scan(&name).await;
        let snap = app.snapshot();
        assert_eq!(snap.sandboxes[0].forwards.len(), 1, "no forward of the forward");
        assert!(!snap.sandboxes[0].detected_ports.iter().any(|p| p.port == local));
    }

    #[tokio::test]
    async fn auto_forward_is_kept_per_sandbox_through_a_rename_and_dropped_with_it() {
        let (home, app, _) = service_with(Recorder::default(), None);
        let refused = app.handle(Request::SetAutoForward { name: "nope".into(), on: true }).await;
        assert!(refused.is_err());
        app.handle(Request::SaveSandbox { original: None, settings: settings("dev", "http://127.0.0.1:1") })
            .await
            .unwrap();
        assert!(!app.snapshot().sandboxes[0].auto_forward, "off by default");
        app.handle(Request::SetAutoForward { name: "dev".into(), on: true }).await.unwrap();
        let file = std::fs::read_to_string(home.path().join(".config/sandbox/app.toml")).unwrap();
        assert!(file.contains("auto_forward = [\"dev\"]"), "{file}");
        app.handle(Request::SaveSandbox {
            original: Some("dev".into()),
            settings: settings("box", "http://127.0.0.1:1"),
        })
        .await
        .unwrap();
        assert!(app.snapshot().sandboxes[0].auto_forward, "kept through the rename");
        app.handle(Request::RemoveSandbox { name: "box".into() }).await.unwrap();
        app.handle(Request::SaveSandbox { original: None, settings: settings("box", "http://127.0.0.1:1") })
            .await
            .unwrap();
        assert!(!app.snapshot().sandboxes[0].auto_forward, "a new sandbox of the old name starts without it");
    }

    #[tokio::test]
    async fn forward_port_refuses_what_it_cannot_forward() {
        let (_home, app, _) = service_with(Recorder::default(), None);
        app.handle(Request::SaveSandbox { original: None, settings: settings("dev", "http://127.0.0.1:1") })
            .await
            .unwrap();
        let low = app.handle(Request::ForwardPort { name: "dev".into(), remote_port: 22 }).await.unwrap_err();
        assert_eq!(low.message, "port 22 cannot be forwarded; pick a port from 1024 up");
        assert!(app.handle(Request::ForwardPort { name: "nope".into(), remote_port: 5173 }).await.is_err());
    }
}
