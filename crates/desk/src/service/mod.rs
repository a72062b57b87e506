//! The app's model: sandboxes (the core's profiles), their live status, the running forwards,
//! the activity log and preferences. Every face (tray menu, window, tests) drives it through
//! [`Service::handle`] with a [`Request`]; each action is a core function the CLI also reaches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sandbox_core::forwards::{ForwardStatus, Forwards};
use sandbox_core::name::SandboxName;
use sandbox_core::setup::Installation;
use tokio::sync::watch;

use crate::demo::DemoAgent;
use crate::desktop::Desktop;
use crate::protocol::{Health, LogLevel, SandboxStatus, SandboxView, Snapshot};
use crate::settings::{AppSettings, SettingsFile};
use crate::views;

mod actions;
mod activity;
mod demo_sandbox;
mod dispatch;
mod monitor;
mod ports;
#[cfg(test)]
mod testing;

pub use demo_sandbox::DEMO_NAME;
pub use monitor::supervise;

/// What the service is built from.
pub struct ServiceConfig {
    /// Files and the ProxyCommand binary.
    pub install: Installation,
    /// The desktop around it.
    pub desktop: Arc<dyn Desktop>,
    /// `sandbox-agent`, for the demo sandbox (none: no demo).
    pub agent_binary: Option<PathBuf>,
}

/// The app model; cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    install: Installation,
    desktop: Arc<dyn Desktop>,
    settings_file: SettingsFile,
    agent_binary: Option<PathBuf>,
    forwards: Forwards,
    state: Mutex<State>,
    demo: tokio::sync::Mutex<Option<DemoAgent>>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    settings: AppSettings,
    statuses: BTreeMap<SandboxName, SandboxStatus>,
    /// Why a forward is off although the user wanted it on.
    stopped_by: BTreeMap<(SandboxName, u16), views::Stopped>,
    /// Live numbers seen at the last watch tick.
    last_live: Vec<ForwardStatus>,
    log: activity::Activity,
    /// What the port scans found, per sandbox.
    detected: BTreeMap<SandboxName, ports::Detected>,
    generation: u64,
}

impl Service {
    /// Loads the settings; call [`Service::run`] to start the demo, auto-start forwards and
    /// the background probes.
    pub fn new(config: ServiceConfig) -> Service {
        let settings_file = SettingsFile::new(config.install.paths.app_settings());
        let (changed, _) = watch::channel(0);
        let service = Service {
            inner: Arc::new(Inner {
                install: config.install,
                desktop: config.desktop,
                settings_file,
                agent_binary: config.agent_binary,
                forwards: Forwards::new(),
                state: Mutex::new(State::default()),
                demo: tokio::sync::Mutex::new(None),
                changed,
            }),
        };
        match service.inner.settings_file.load() {
            Ok(settings) => service.lock().settings = settings,
            Err(e) => service.log(LogLevel::Error, None, e.to_string()),
        }
        service
    }

    /// Starts what runs by itself: the demo sandbox (offered when nothing is configured),
    /// auto-start forwards, and the probe and watch loops (until the service is dropped).
    pub async fn run(&self) {
        self.start_demo().await;
        for name in self.inner.install.profiles().names() {
            let Ok(profile) = self.inner.install.profiles().load(&name) else { continue };
            for spec in profile.forwards.iter().filter(|f| f.auto_start) {
                if let Err(e) = self.start_forward(&name, spec).await {
                    self.notify("Port forward failed", &e.message);
                }
            }
        }
        self.probe_all().await;
        let weak = Arc::downgrade(&self.inner);
        let task = weak.clone();
        let reporter = |what: &'static str| {
            let weak = weak.clone();
            move |why: String| {
                let Some(inner) = weak.upgrade() else { return false };
                let message = format!("Internal error in the {what} ({why}); restarted it");
                Service { inner }.log(LogLevel::Error, None, message);
                true
            }
        };
        supervise(move || monitor::monitor(task.clone()), reporter("live status"));
        let task = weak.clone();
        supervise(move || ports::scanner(task.clone()), reporter("port scan"));
    }

    /// A receiver that changes whenever the snapshot does (the tray rebuilds its menu on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Stops every forward and the demo sandbox.
    pub async fn shutdown(&self) {
        self.inner.forwards.stop_all(None).await;
        self.inner.demo.lock().await.take();
    }

    /// The process id of the demo agent, while it runs.
    pub async fn demo_pid(&self) -> Option<u32> {
        self.inner.demo.lock().await.as_ref().and_then(DemoAgent::pid)
    }

    /// Everything a face shows.
    pub fn snapshot(&self) -> Snapshot {
        let install = &self.inner.install;
        let live = self.inner.forwards.status();
        let state = self.lock();
        let sandboxes = install
            .profiles()
            .names()
            .into_iter()
            .filter_map(|name| {
                let profile = install.profiles().load(&name).ok()?;
                let forwards = profile
                    .forwards
                    .iter()
                    .map(|spec| {
                        let running = live
                            .iter()
                            .find(|l| l.sandbox == name.as_str() && l.remote_port == spec.remote_port);
                        views::forward_view(
                            spec,
                            running,
                            state.stopped_by.get(&(name.clone(), spec.remote_port)),
                        )
                    })
                    .collect::<Vec<_>>();
                let probed = state.statuses.get(&name).cloned().unwrap_or_else(unknown_status);
                Some(SandboxView {
                    settings: views::settings_view(&name, &profile),
                    demo: state.settings.demo.as_deref() == Some(name.as_str()),
                    status: views::status_view(probed, &forwards, &name),
                    forwards,
                    auto_forward: state.settings.auto_forward.contains(name.as_str()),
                    detected_ports: state
                        .detected
                        .get(&name)
                        .map(|d| d.view(&profile.forwards))
                        .unwrap_or_default(),
                })
            })
            .collect();
        Snapshot {
            sandboxes,
            preferences: state.settings.preferences.clone(),
            log: state.log.entries(),
            generation: state.generation,
            demo_available: self.inner.agent_binary.is_some() && state.settings.demo.is_none(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn bump(&self) {
        let generation = {
            let mut state = self.lock();
            state.generation += 1;
            state.generation
        };
        self.inner.changed.send_replace(generation);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown_status() -> SandboxStatus {
    SandboxStatus {
        health: Health::Unknown,
        detail: "Checking…".into(),
        key_registered: false,
        signed_in: None,
        checked_at: None,
    }
}
