//! The app's model: sandboxes (the core's profiles), their live status, the running forwards,
//! the activity log and preferences. Every face (tray menu, window, tests) drives it through
//! [`Service::handle`] with a [`Request`]; each action is a core function the CLI also reaches.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sandbox_core::forward::ForwardError;
use sandbox_core::forwards::{ForwardStatus, Forwards, PortForward};
use sandbox_core::ide::{self, Os};
use sandbox_core::name::SandboxName;
use sandbox_core::oidc::token_store::now_secs;
use sandbox_core::profile::Profile;
use sandbox_core::setup::Installation;
use tokio::sync::watch;

use crate::demo::{self, DemoAgent, DemoFiles};
use crate::desktop::Desktop;
use crate::protocol::{
    ActionError, ForwardSpec, Health, IdeChoice, LogEntry, LogLevel, Outcome, Preferences, Reply, Request,
    SandboxSettings, SandboxStatus, SandboxView, Snapshot,
};
use crate::settings::{AppSettings, SettingsFile};
use crate::{status, views};

/// How long a browser sign-in may take.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of activity kept.
const LOG_LINES: usize = 200;
/// How often every sandbox is probed.
const PROBE_EVERY: Duration = Duration::from_secs(15);
/// How often live forward numbers are compared, to bump the generation and notice failures.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a background task that panicked waits before it starts again.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// The demo sandbox's name.
pub const DEMO_NAME: &str = "demo";

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
    log: VecDeque<LogEntry>,
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
            Err(e) => service.log(LogLevel::Error, None, e),
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
        supervise(
            move || monitor(task.clone()),
            move |why| {
                let Some(inner) = weak.upgrade() else { return false };
                let message = format!("Internal error in the live status ({why}); restarted it");
                Service { inner }.log(LogLevel::Error, None, message);
                true
            },
        );
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

    /// Carries out one request.
    pub async fn handle(&self, request: Request) -> Outcome {
        let mut listening_ports = None;
        let notice = match request {
            Request::Snapshot => None,
            Request::Refresh => {
                self.probe_all().await;
                None
            }
            Request::SaveSandbox { original, settings } => Some(self.save_sandbox(original, settings).await?),
            Request::RemoveSandbox { name } => Some(self.remove_sandbox(&parse_name(&name)?).await?),
            Request::Connect { name } => {
                let ide = self.lock().settings.preferences.default_ide;
                Some(self.open_in(&parse_name(&name)?, ide).await?)
            }
            Request::OpenIn { name, ide } => Some(self.open_in(&parse_name(&name)?, ide).await?),
            Request::SignIn { name } => Some(self.sign_in(&parse_name(&name)?).await?),
            Request::SignOut { name } => Some(self.sign_out(&parse_name(&name)?).await?),
            Request::SaveForward { name, forward } => {
                Some(self.save_forward(&parse_name(&name)?, forward).await?)
            }
            Request::RemoveForward { name, remote_port } => {
                Some(self.remove_forward(&parse_name(&name)?, remote_port).await?)
            }
            Request::SetForward { name, remote_port, on } => {
                Some(self.set_forward(&parse_name(&name)?, remote_port, on).await?)
            }
            Request::SetPreferences { preferences } => Some(self.set_preferences(preferences)?),
            Request::AddDemo => Some(self.add_demo().await?),
            Request::StopAllForwards => Some(self.stop_all_forwards().await),
            Request::OpenForward { name, remote_port } => {
                Some(self.open_forward(&parse_name(&name)?, remote_port)?)
            }
            Request::ListeningPorts { name } => {
                let inner = &self.inner;
                let (ports, notice) =
                    crate::listening::listening_ports(&inner.install, &*inner.desktop, &parse_name(&name)?)
                        .await?;
                listening_ports = Some(ports);
                Some(notice)
            }
        };
        Ok(Reply { snapshot: self.snapshot(), notice, listening_ports })
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
                })
            })
            .collect();
        Snapshot {
            sandboxes,
            preferences: state.settings.preferences.clone(),
            log: state.log.iter().cloned().collect(),
            generation: state.generation,
            demo_available: self.inner.agent_binary.is_some() && state.settings.demo.is_none(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    // ---- actions ----

    async fn save_sandbox(
        &self,
        original: Option<String>,
        settings: SandboxSettings,
    ) -> Result<String, ActionError> {
        let store = self.inner.install.profiles();
        let original = original.map(|o| parse_name(&o)).transpose()?;
        let stored = match &original {
            Some(old) => Some(store.load(old).map_err(fail)?),
            None => None,
        };
        let (name, profile) = views::apply_settings(&settings, stored).map_err(ActionError::from)?;
        let renamed = original.as_ref().is_some_and(|old| *old != name);
        if (original.is_none() || renamed) && store.load(&name).is_ok() {
            return Err(format!("a sandbox named {name} exists already; choose another name").into());
        }
        if renamed {
            let old = original.as_ref().expect("renamed implies original");
            self.inner.forwards.stop_all(Some(old)).await;
            self.inner.install.forget(old).await.map_err(fail)?;
            let mut state = self.lock();
            if state.settings.demo.as_ref() == Some(&old.to_string()) {
                state.settings.demo = Some(name.to_string());
                let _ = self.inner.settings_file.save(&state.settings);
            }
        }
        if !renamed && self.inner.install.drop_sign_in_if_moved(&name, &profile).await.map_err(fail)? {
            self.log(
                LogLevel::Info,
                Some(&name),
                "The server or sign-in provider changed: signed out".into(),
            );
        }
        store.save(&name, &profile).map_err(fail)?;
        for host in profile.cleartext_hosts() {
            let warning = format!(
                "Credentials for {host} travel unencrypted over http:// (Allow insecure HTTP): anyone on the network path can read and reuse them"
            );
            self.log(LogLevel::Warn, Some(&name), warning);
        }
        let verb = if original.is_none() { "Added" } else { "Saved" };
        self.log(LogLevel::Info, Some(&name), format!("{verb} ({})", profile.server));
        self.probe(&name).await;
        let status = self.lock().statuses.get(&name).cloned();
        Ok(match status {
            Some(s) if s.health == Health::Unreachable => format!("{verb} {name}, but: {}", s.detail),
            _ => format!("{verb} {name}."),
        })
    }

    async fn remove_sandbox(&self, name: &SandboxName) -> Result<String, ActionError> {
        self.inner.forwards.stop_all(Some(name)).await;
        self.inner.install.forget(name).await.map_err(fail)?;
        let is_demo = {
            let mut state = self.lock();
            state.statuses.remove(name);
            state.stopped_by.retain(|(s, _), _| s != name);
            let is_demo = state.settings.demo.as_deref() == Some(name.as_str());
            if is_demo {
                state.settings.demo = None;
                state.settings.demo_dismissed = true;
                let _ = self.inner.settings_file.save(&state.settings);
            }
            is_demo
        };
        if is_demo {
            self.inner.demo.lock().await.take();
        }
        self.log(LogLevel::Info, Some(name), "Removed: key, sign-in, settings and Host block".into());
        Ok(format!("Removed {name}."))
    }

    /// Connect, then open: what both "Connect" (default IDE) and "Open in…" do.
    async fn open_in(&self, name: &SandboxName, choice: IdeChoice) -> Result<String, ActionError> {
        self.connect(name).await?;
        let install = &self.inner.install;
        let profile = install.profiles().load(name).map_err(fail)?;
        let ide = views::ide(choice);
        let desktop = self.inner.desktop.clone();
        let found = move |program: &str| desktop.find_executable(program);
        let launched = match ide::launch_plan(ide, Os::current(), name, profile.remote_folder(), &found) {
            Ok(plan) => {
                // Off the runtime: a link's opener is given up to 2 s to say whether it took it.
                let desktop = self.inner.desktop.clone();
                tokio::task::spawn_blocking(move || {
                    ide::launch(ide, &plan, &move |url| desktop.open_url(url)).map(|()| plan)
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            }
            Err(e) => Err(e),
        };
        let plan = launched.map_err(|e| {
            let message = format!("Connected (`ssh {name}` works), but {e}");
            self.log(LogLevel::Error, Some(name), message.clone());
            ActionError::from(message)
        })?;
        self.log(
            LogLevel::Info,
            Some(name),
            format!("Opened in {ide}: {}", plan.command_line(Os::current())),
        );
        Ok(format!("Opening {} in {ide}…", profile.remote_folder()))
    }

    /// Signs in when needed, registers the key and writes the Host block.
    async fn connect(&self, name: &SandboxName) -> Result<(), ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name).map_err(fail)?;
        if let Some(session) = install.session(name, &profile).await {
            if !session.signed_in() {
                self.sign_in(name).await?;
            }
        }
        let comment = self.inner.desktop.key_comment();
        match install.connect(name, &comment).await {
            Ok(report) => {
                let pin = if report.host_key_pinned { "host key pinned" } else { "host key not published" };
                self.log(
                    LogLevel::Info,
                    Some(name),
                    format!("Connected: key registered, Host block written ({pin})"),
                );
                self.probe(name).await;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.log(LogLevel::Error, Some(name), format!("Connect failed: {message}"));
                self.probe(name).await;
                Err(message.into())
            }
        }
    }

    async fn sign_in(&self, name: &SandboxName) -> Result<String, ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name).map_err(fail)?;
        let session = install.session(name, &profile).await.ok_or_else(|| {
            ActionError::from(format!(
                "{name} does not use browser sign-in; edit it to choose OpenID Connect"
            ))
        })?;
        let desktop = self.inner.desktop.clone();
        let open = move |url: &str| desktop.open_browser(url);
        self.log(LogLevel::Info, Some(name), "Signing in: continue in your browser".into());
        match session.login(&open, SIGN_IN_TIMEOUT).await {
            Ok(tokens) => {
                self.log(LogLevel::Info, Some(name), format!("Signed in as {}", tokens.subject));
                self.probe(name).await;
                Ok(format!("Signed in to {name} as {}.", tokens.subject))
            }
            Err(e) => {
                self.log(LogLevel::Error, Some(name), format!("Sign-in failed: {e}"));
                Err(e.to_string().into())
            }
        }
    }

    async fn sign_out(&self, name: &SandboxName) -> Result<String, ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name).map_err(fail)?;
        let session = install
            .session(name, &profile)
            .await
            .ok_or_else(|| ActionError::from(format!("{name} does not use browser sign-in")))?;
        self.inner.forwards.stop_all(Some(name)).await;
        let done = session.logout().await.map_err(fail)?;
        self.log(LogLevel::Info, Some(name), "Signed out; its forwards were stopped".into());
        self.probe(name).await;
        Ok(if done.revoked {
            format!("Signed out of {name}; the sign-in was revoked.")
        } else {
            format!("Signed out of {name}.")
        })
    }

    async fn save_forward(&self, name: &SandboxName, spec: ForwardSpec) -> Result<String, ActionError> {
        let spec = views::spec_from(&spec);
        let install = &self.inner.install;
        let before = install.profiles().load(name).map_err(fail)?;
        let clash = before.forwards.iter().any(|f| {
            f.remote_port != spec.remote_port && spec.local_port != 0 && f.local_port == spec.local_port
        });
        if clash {
            return Err(format!(
                "another forward of {name} already uses local port {}; choose another local port",
                spec.local_port
            )
            .into());
        }
        let was = before.forwards.iter().find(|f| f.remote_port == spec.remote_port).cloned();
        install.save_forward(name, spec.clone()).map_err(fail)?;
        self.bump();
        let running = self.inner.forwards.is_running(name, spec.remote_port);
        // A running forward whose ports changed restarts on the new ones.
        if running && was.as_ref().is_some_and(|w| w.local_port != spec.local_port) {
            self.start_forward(name, &spec).await?;
        }
        Ok(format!("Saved {}.", describe(&spec)))
    }

    async fn remove_forward(&self, name: &SandboxName, remote_port: u16) -> Result<String, ActionError> {
        self.inner.forwards.stop(name, remote_port).await;
        self.lock().stopped_by.remove(&(name.clone(), remote_port));
        if !self.inner.install.remove_forward(name, remote_port).map_err(fail)? {
            return Err(format!("{name} has no forward to port {remote_port}").into());
        }
        self.bump();
        Ok(format!("Removed the forward to :{remote_port}."))
    }

    async fn set_forward(
        &self,
        name: &SandboxName,
        remote_port: u16,
        on: bool,
    ) -> Result<String, ActionError> {
        let profile = self.inner.install.profiles().load(name).map_err(fail)?;
        let spec =
            profile.forwards.iter().find(|f| f.remote_port == remote_port).cloned().ok_or_else(|| {
                ActionError::from(format!("{name} has no forward to port {remote_port}; add it first"))
            })?;
        if on {
            let local = self.start_forward(name, &spec).await?;
            Ok(format!("Forwarding localhost:{local} → :{remote_port}"))
        } else {
            self.inner.forwards.stop(name, remote_port).await;
            self.lock().stopped_by.remove(&(name.clone(), remote_port));
            self.log(LogLevel::Info, Some(name), format!("Stopped {}", describe(&spec)));
            Ok(format!("Stopped the forward to :{remote_port}."))
        }
    }

    fn set_preferences(&self, preferences: Preferences) -> Result<String, ActionError> {
        let was = self.lock().settings.preferences.start_at_login;
        if preferences.start_at_login != was {
            self.inner.desktop.set_start_at_login(preferences.start_at_login).map_err(ActionError::from)?;
        }
        let mut state = self.lock();
        state.settings.preferences = preferences;
        self.inner.settings_file.save(&state.settings).map_err(ActionError::from)?;
        drop(state);
        self.bump();
        Ok("Preferences saved.".into())
    }

    // ---- helpers ----

    async fn start_forward(&self, name: &SandboxName, spec: &PortForward) -> Result<u16, ActionError> {
        let key = (name.clone(), spec.remote_port);
        let result = match self.inner.install.client(name).await {
            Ok(api) => self.inner.forwards.start(name, api, spec).await.map_err(stopped),
            Err(e) => Err(views::Stopped { message: e.to_string(), suggested_port: None }),
        };
        match result {
            Ok(local) => {
                self.lock().stopped_by.remove(&key);
                self.log(
                    LogLevel::Info,
                    Some(name),
                    format!("Forwarding localhost:{local} → :{}", spec.remote_port),
                );
                Ok(local)
            }
            Err(stop) => {
                let message = stop.message.clone();
                self.lock().stopped_by.insert(key, stop);
                self.log(LogLevel::Error, Some(name), format!("{}: {message}", describe(spec)));
                Err(message.into())
            }
        }
    }

    /// Opens a running forward's local address in the browser: only `http://localhost:PORT` of
    /// a forward this service runs, never a URL a face sends.
    fn open_forward(&self, name: &SandboxName, remote_port: u16) -> Result<String, ActionError> {
        let local = self
            .inner
            .forwards
            .status()
            .into_iter()
            .find(|f| f.sandbox == name.as_str() && f.remote_port == remote_port)
            .map(|f| f.local_port)
            .ok_or_else(|| {
                ActionError::from(format!("the forward to :{remote_port} is off; turn it on first"))
            })?;
        let url = format!("http://localhost:{local}/");
        self.inner.desktop.open_url(&url).map_err(|e| {
            ActionError::from(format!("cannot open {url}: {e}; open it in your browser yourself"))
        })?;
        Ok(format!("Opened {url}"))
    }

    async fn stop_all_forwards(&self) -> String {
        let running = self.inner.forwards.status().len();
        self.inner.forwards.stop_all(None).await;
        self.lock().stopped_by.clear();
        self.bump();
        self.log(LogLevel::Info, None, format!("Stopped all forwards ({running})"));
        match running {
            0 => "No forward was on.".into(),
            1 => "Stopped 1 forward.".into(),
            n => format!("Stopped {n} forwards."),
        }
    }

    /// At start: runs the demo that exists, or offers one when nothing is configured and the
    /// user never removed it.
    async fn start_demo(&self) {
        let install = &self.inner.install;
        let (demo, dismissed) = {
            let state = self.lock();
            (state.settings.demo.clone(), state.settings.demo_dismissed)
        };
        let name = match demo {
            Some(name) => name,
            None if !dismissed && install.profiles().names().is_empty() => DEMO_NAME.to_owned(),
            None => return,
        };
        let Ok(name) = SandboxName::new(&name) else { return };
        if let Err(e) = self.run_demo(&name).await {
            self.log(LogLevel::Error, Some(&name), e);
        }
    }

    /// `Request::AddDemo`: brings back the demo the user removed, or adds it beside their own
    /// sandboxes; never over a sandbox of theirs that is called `demo`.
    async fn add_demo(&self) -> Result<String, ActionError> {
        let name = SandboxName::new(DEMO_NAME).expect("a valid name");
        if self.lock().settings.demo.is_some() {
            return Err(ActionError { message: "The demo sandbox is already here.".into() });
        }
        if self.inner.install.profiles().names().iter().any(|n| n.as_str() == DEMO_NAME) {
            return Err(ActionError {
                message: format!(
                    "A sandbox of yours is called {DEMO_NAME}; rename or remove it to add the demo."
                ),
            });
        }
        self.run_demo(&name).await.map_err(|message| ActionError { message })?;
        {
            let mut state = self.lock();
            state.settings.demo_dismissed = false;
            let _ = self.inner.settings_file.save(&state.settings);
        }
        self.probe(&name).await;
        Ok(format!("Added the demo sandbox {name}."))
    }

    /// Starts the demo's agent and page server and writes its profile.
    async fn run_demo(&self, name: &SandboxName) -> Result<(), String> {
        let Some(agent) = self.inner.agent_binary.clone() else {
            return Err(
                "the demo needs sandbox-agent installed beside the app; reinstall Sandbox Forward".into()
            );
        };
        let install = &self.inner.install;
        let files = DemoFiles { dir: install.paths.demo_dir() };
        let agent = DemoAgent::start(&agent, &files).await?;
        let store = install.profiles();
        let page = PortForward {
            remote_port: agent.site.port,
            local_port: 8000,
            label: demo::SITE_LABEL.into(),
            auto_start: false,
        };
        let mut profile = store.load(name).unwrap_or_else(|_| Profile {
            remote_folder: Some(files.workspace().display().to_string()),
            forwards: vec![page.clone()],
            ..Profile::default()
        });
        follow_demo_site(&mut profile.forwards, page);
        profile.server = agent.url.clone();
        profile.credentials.bearer_file = Some(files.token());
        store.save(name, &profile).map_err(|e| e.to_string())?;
        {
            let mut state = self.lock();
            state.settings.demo = Some(name.to_string());
            if let Err(e) = self.inner.settings_file.save(&state.settings) {
                drop(state);
                self.log(LogLevel::Warn, None, e);
            }
        }
        self.log(
            LogLevel::Info,
            Some(name),
            format!("Demo sandbox running at {} (a local sandbox-agent)", agent.url),
        );
        *self.inner.demo.lock().await = Some(agent);
        Ok(())
    }

    async fn probe_all(&self) {
        for name in self.inner.install.profiles().names() {
            self.probe(&name).await;
        }
    }

    async fn probe(&self, name: &SandboxName) {
        let new = status::probe(&self.inner.install, name).await;
        let mut state = self.lock();
        let old = state.statuses.insert(name.clone(), new.clone());
        let changed = old.as_ref().is_none_or(|o| {
            (o.health, &o.detail, o.key_registered) != (new.health, &new.detail, new.key_registered)
        });
        if !changed {
            return;
        }
        let expired =
            new.health == Health::NeedsSignIn && old.is_some_and(|o| o.health != Health::NeedsSignIn);
        let notify = state.settings.preferences.notifications;
        drop(state);
        if expired && notify {
            self.notify(&format!("Sign in to {name}"), &new.detail);
        }
        if matches!(new.health, Health::Unreachable | Health::NeedsSignIn | Health::PodRestarted) {
            self.log(LogLevel::Warn, Some(name), new.detail);
        } else {
            self.bump();
        }
    }

    /// Bumps the generation when live numbers moved, and reports new forward failures.
    fn watch_forwards(&self) {
        let live = self.inner.forwards.status();
        let mut state = self.lock();
        if live == state.last_live {
            return;
        }
        let failures: Vec<(String, u16, String)> = live
            .iter()
            .filter_map(|l| {
                let err = l.last_error.as_ref()?;
                let before =
                    state.last_live.iter().find(|p| p.sandbox == l.sandbox && p.remote_port == l.remote_port);
                (before.and_then(|p| p.last_error.as_ref()) != Some(err))
                    .then(|| (l.sandbox.clone(), l.remote_port, err.clone()))
            })
            .collect();
        state.last_live = live;
        let notify = state.settings.preferences.notifications;
        drop(state);
        for (sandbox, port, err) in failures {
            let name = SandboxName::new(&sandbox).ok();
            self.log(LogLevel::Error, name.as_ref(), format!("forward to :{port}: {err}"));
            if notify {
                self.notify(&format!("{sandbox}: forward to :{port} failed"), &err);
            }
        }
        self.bump();
    }

    /// A desktop notification that can neither fail nor panic its caller (a background loop):
    /// the desktop's notifier runs out of descriptors or loses its D-Bus, the app goes on.
    fn notify(&self, title: &str, body: &str) {
        let desktop = &self.inner.desktop;
        let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| desktop.notify(title, body)));
        if let Err(panic) = shown {
            tracing::warn!("notification {title:?} not shown: {}", panic_message(&*panic));
        }
    }

    fn log(&self, level: LogLevel, sandbox: Option<&SandboxName>, message: String) {
        match level {
            LogLevel::Info => tracing::info!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
            LogLevel::Warn => tracing::warn!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
            LogLevel::Error => tracing::error!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
        }
        let mut state = self.lock();
        if state.log.len() == LOG_LINES {
            state.log.pop_front();
        }
        state.log.push_back(LogEntry {
            at: now_secs(),
            level,
            sandbox: sandbox.map(|s| s.to_string()),
            message,
        });
        drop(state);
        self.bump();
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

/// Points the demo's page forward at the page server's port of this start (a new one every
/// start), keeping the user's local port and auto-start. A forward saved before the page server
/// existed (`localhost:8000 → :8000`, which on this machine reached its own listener and opened
/// connections without end) becomes the page forward. A forward the user removed stays removed.
fn follow_demo_site(forwards: &mut [PortForward], page: PortForward) {
    const LEGACY_LABEL: &str = "python3 -m http.server";
    let old = forwards
        .iter_mut()
        .find(|f| f.label == demo::SITE_LABEL || (f.label == LEGACY_LABEL && f.remote_port == f.local_port));
    if let Some(old) = old {
        *old = PortForward { local_port: old.local_port, auto_start: old.auto_start, ..page };
    }
}

/// The probe and watch loop: probes every sandbox every [`PROBE_EVERY`], compares live forward
/// numbers every [`WATCH_EVERY`]; returns when the service is gone.
async fn monitor(weak: Weak<Inner>) {
    let mut probe = tokio::time::interval(PROBE_EVERY);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    probe.tick().await;
    loop {
        tokio::select! {
            _ = probe.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                Service { inner }.probe_all().await;
            }
            _ = watch.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                Service { inner }.watch_forwards();
            }
        }
    }
}

/// Runs a background task for as long as it wants to run: a panic is handed to `panicked`
/// (which logs it, or answers false when nobody is left to serve) and the task starts again a
/// second later, so a bug or a failing desktop service cannot silently stop live status for the
/// rest of the session.
pub fn supervise<F, Fut, P>(task: F, panicked: P) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
    P: Fn(String) -> bool + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(task()).await {
                Err(e) if e.is_panic() => {
                    if !panicked(panic_message(&*e.into_panic())) {
                        return;
                    }
                    tokio::time::sleep(RESTART_AFTER).await;
                }
                // Ended (the service is gone) or cancelled (the runtime is shutting down).
                _ => return,
            }
        }
    })
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
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

fn parse_name(name: &str) -> Result<SandboxName, ActionError> {
    SandboxName::new(name).map_err(|e| ActionError::from(e.to_string()))
}

fn fail(e: impl std::fmt::Display) -> ActionError {
    ActionError::from(e.to_string())
}

/// A forward that could not start, in the window's words: a taken local port comes with a free
/// one to use instead (the core's message names the CLI's flag).
fn stopped(e: ForwardError) -> views::Stopped {
    match e {
        ForwardError::PortInUse { port } => {
            let suggested_port = sandbox_core::forward::free_local_port();
            let message = match suggested_port {
                Some(free) => format!("local port {port} is already in use by another program; use {free} instead, or stop that program"),
                None => format!("local port {port} is already in use by another program; choose another local port, or stop that program"),
            };
            views::Stopped { message, suggested_port }
        }
        e => views::Stopped { message: e.to_string(), suggested_port: None },
    }
}

fn describe(spec: &PortForward) -> String {
    let local = if spec.local_port == 0 {
        "any free port".to_owned()
    } else {
        format!("localhost:{}", spec.local_port)
    };
    let label = if spec.label.is_empty() { String::new() } else { format!(" ({})", spec.label) };
    format!("{local} → :{}{label}", spec.remote_port)
}

impl From<String> for ActionError {
    fn from(message: String) -> Self {
        ActionError { message }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A task that panics is started again (after the panic is reported); one that ends is not.
    #[tokio::test]
    async fn a_background_task_that_panics_is_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (r, p) = (runs.clone(), reports.clone());
        let supervisor = supervise(
            move || {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("zbus: Too many open files");
                    }
                }
            },
            move |why| {
                p.lock().unwrap().push(why);
                true
            },
        );
        supervisor.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(*reports.lock().unwrap(), ["zbus: Too many open files"; 2]);
    }
}
