//! What a request does: one handler per action, each a core function the CLI also reaches, with
//! the activity line and the sentence the face shows.

use std::time::Duration;

use sandbox_core::forward::ForwardError;
use sandbox_core::forwards::PortForward;
use sandbox_core::ide::{self, Os};
use sandbox_core::name::SandboxName;

use super::dispatch::parse_name;
use super::Service;
use crate::protocol::{
    ActionError, ErrorCode, ForwardSpec, Health, IdeChoice, LogLevel, Preferences, SandboxSettings,
};
use crate::views;

/// How long a browser sign-in may take.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

impl Service {
    pub(super) async fn save_sandbox(
        &self,
        original: Option<String>,
        settings: SandboxSettings,
    ) -> Result<String, ActionError> {
        let store = self.inner.install.profiles();
        let original = original.map(|o| parse_name(&o)).transpose()?;
        let stored = match &original {
            Some(old) => Some(store.load(old)?),
            None => None,
        };
        let (name, profile) = views::apply_settings(&settings, stored).map_err(ActionError::from)?;
        let renamed = original.as_ref().is_some_and(|old| *old != name);
        if (original.is_none() || renamed) && store.load(&name).is_ok() {
            return Err(ActionError::new(
                ErrorCode::AlreadyExists,
                format!("a sandbox named {name} exists already; choose another name"),
            ));
        }
        if renamed {
            let old = original.as_ref().expect("renamed implies original");
            self.inner.forwards.stop_all(Some(old)).await;
            self.inner.install.forget(old).await?;
            let mut state = self.lock();
            super::ports::rename(&mut state.detected, old, &name);
            let auto = state.settings.auto_forward.remove(old.as_str());
            if auto {
                state.settings.auto_forward.insert(name.to_string());
            }
            if state.settings.demo.as_ref() == Some(&old.to_string()) {
                state.settings.demo = Some(name.to_string());
            }
            if auto || state.settings.demo.as_deref() == Some(name.as_str()) {
                let _ = self.inner.settings_file.save(&state.settings);
            }
        }
        if !renamed && self.inner.install.drop_sign_in_if_moved(&name, &profile).await? {
            self.log(
                LogLevel::Info,
                Some(&name),
                "The server or sign-in provider changed: signed out".into(),
            );
        }
        store.save(&name, &profile)?;
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

    pub(super) async fn remove_sandbox(&self, name: &SandboxName) -> Result<String, ActionError> {
        self.inner.forwards.stop_all(Some(name)).await;
        self.inner.install.forget(name).await?;
        let is_demo = {
            let mut state = self.lock();
            state.statuses.remove(name);
            state.detected.remove(name);
            state.stopped_by.retain(|(s, _), _| s != name);
            if state.settings.auto_forward.remove(name.as_str()) {
                let _ = self.inner.settings_file.save(&state.settings);
            }
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
    pub(super) async fn open_in(&self, name: &SandboxName, choice: IdeChoice) -> Result<String, ActionError> {
        self.connect(name).await?;
        let install = &self.inner.install;
        let profile = install.profiles().load(name)?;
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
            ActionError::new(ErrorCode::Desktop, message)
        })?;
        self.log(
            LogLevel::Info,
            Some(name),
            format!("Opened in {ide}: {}", plan.command_line(Os::current())),
        );
        Ok(format!("Opening {} in {ide}…", profile.remote_folder()))
    }

    /// Signs in when needed, registers the key and writes the Host block.
    pub(super) async fn connect(&self, name: &SandboxName) -> Result<(), ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name)?;
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
                let error = ActionError::from(e);
                self.log(LogLevel::Error, Some(name), format!("Connect failed: {}", error.message));
                self.probe(name).await;
                Err(error)
            }
        }
    }

    pub(super) async fn sign_in(&self, name: &SandboxName) -> Result<String, ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name)?;
        let session = install.session(name, &profile).await.ok_or_else(|| {
            ActionError::new(
                ErrorCode::NotSupported,
                format!("{name} does not use browser sign-in; edit it to choose OpenID Connect"),
            )
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
                Err(e.into())
            }
        }
    }

    pub(super) async fn sign_out(&self, name: &SandboxName) -> Result<String, ActionError> {
        let install = &self.inner.install;
        let profile = install.profiles().load(name)?;
        let session = install.session(name, &profile).await.ok_or_else(|| {
            ActionError::new(ErrorCode::NotSupported, format!("{name} does not use browser sign-in"))
        })?;
        self.inner.forwards.stop_all(Some(name)).await;
        let done = session.logout().await?;
        self.log(LogLevel::Info, Some(name), "Signed out; its forwards were stopped".into());
        self.probe(name).await;
        Ok(if done.revoked {
            format!("Signed out of {name}; the sign-in was revoked.")
        } else {
            format!("Signed out of {name}.")
        })
    }

    pub(super) async fn save_forward(
        &self,
        name: &SandboxName,
        spec: ForwardSpec,
    ) -> Result<String, ActionError> {
        let spec = views::spec_from(&spec);
        let install = &self.inner.install;
        let before = install.profiles().load(name)?;
        let clash = before.forwards.iter().any(|f| {
            f.remote_port != spec.remote_port && spec.local_port != 0 && f.local_port == spec.local_port
        });
        if clash {
            return Err(ActionError::new(
                ErrorCode::InvalidInput,
                format!(
                    "another forward of {name} already uses local port {}; choose another local port",
                    spec.local_port
                ),
            ));
        }
        let was = before.forwards.iter().find(|f| f.remote_port == spec.remote_port).cloned();
        install.save_forward(name, spec.clone())?;
        self.bump();
        let running = self.inner.forwards.is_running(name, spec.remote_port);
        // A running forward whose ports changed restarts on the new ones.
        if running && was.as_ref().is_some_and(|w| w.local_port != spec.local_port) {
            self.start_forward(name, &spec).await?;
        }
        Ok(format!("Saved {}.", describe(&spec)))
    }

    pub(super) async fn remove_forward(
        &self,
        name: &SandboxName,
        remote_port: u16,
    ) -> Result<String, ActionError> {
        self.inner.forwards.stop(name, remote_port).await;
        self.lock().stopped_by.remove(&(name.clone(), remote_port));
        if !self.inner.install.remove_forward(name, remote_port)? {
            return Err(ActionError::new(
                ErrorCode::NotFound,
                format!("{name} has no forward to port {remote_port}"),
            ));
        }
        self.bump();
        Ok(format!("Removed the forward to :{remote_port}."))
    }

    pub(super) async fn set_forward(
        &self,
        name: &SandboxName,
        remote_port: u16,
        on: bool,
    ) -> Result<String, ActionError> {
        let profile = self.inner.install.profiles().load(name)?;
        let spec =
            profile.forwards.iter().find(|f| f.remote_port == remote_port).cloned().ok_or_else(|| {
                ActionError::new(
                    ErrorCode::NotFound,
                    format!("{name} has no forward to port {remote_port}; add it first"),
                )
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

    pub(super) fn set_preferences(&self, preferences: Preferences) -> Result<String, ActionError> {
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

    pub(super) async fn start_forward(
        &self,
        name: &SandboxName,
        spec: &PortForward,
    ) -> Result<u16, ActionError> {
        let key = (name.clone(), spec.remote_port);
        let result = match self.inner.install.client(name).await {
            Ok(api) => self.inner.forwards.start(name, api, spec).await.map_err(stopped),
            Err(e) => {
                let e = ActionError::from(e);
                Err((views::Stopped { message: e.message, suggested_port: None }, e.code))
            }
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
            Err((stop, code)) => {
                let message = stop.message.clone();
                self.lock().stopped_by.insert(key, stop);
                self.log(LogLevel::Error, Some(name), format!("{}: {message}", describe(spec)));
                Err(ActionError::new(code, message))
            }
        }
    }

    /// Opens a running forward's local address in the browser: only `http://localhost:PORT` of
    /// a forward this service runs, never a URL a face sends.
    pub(super) fn open_forward(&self, name: &SandboxName, remote_port: u16) -> Result<String, ActionError> {
        let local = self
            .inner
            .forwards
            .status()
            .into_iter()
            .find(|f| f.sandbox == name.as_str() && f.remote_port == remote_port)
            .map(|f| f.local_port)
            .ok_or_else(|| {
                ActionError::new(
                    ErrorCode::ForwardOff,
                    format!("the forward to :{remote_port} is off; turn it on first"),
                )
            })?;
        let url = format!("http://localhost:{local}/");
        self.inner.desktop.open_url(&url).map_err(|e| {
            ActionError::new(
                ErrorCode::Desktop,
                format!("cannot open {url}: {e}; open it in your browser yourself"),
            )
        })?;
        Ok(format!("Opened {url}"))
    }

    pub(super) async fn stop_all_forwards(&self) -> String {
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
}

/// A forward that could not start, in the window's words: a taken local port comes with a free
/// one to use instead (the core's message names the CLI's flag).
fn stopped(e: ForwardError) -> (views::Stopped, ErrorCode) {
    let code = crate::error::forward_code(&e);
    let stop = match e {
        ForwardError::PortInUse { port } => {
            let suggested_port = sandbox_core::forward::free_local_port();
            let message = match suggested_port {
                Some(free) => format!("local port {port} is already in use by another program; use {free} instead, or stop that program"),
                None => format!("local port {port} is already in use by another program; choose another local port, or stop that program"),
            };
            views::Stopped { message, suggested_port }
        }
        e => views::Stopped { message: e.to_string(), suggested_port: None },
    };
    (stop, code)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ForwardSpec, Request};
    use crate::service::testing::{closed_port, service, service_with, settings, Recorder};

    fn server() -> String {
        format!("http://127.0.0.1:{}", closed_port())
    }

    async fn add(app: &Service, name: &str) {
        app.handle(Request::SaveSandbox { original: None, settings: settings(name, &server()) })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn adding_a_sandbox_saves_it_and_a_second_of_that_name_is_refused() {
        let (_home, app) = service(Recorder::default());
        let reply = app
            .handle(Request::SaveSandbox { original: None, settings: settings("dev", &server()) })
            .await
            .unwrap();
        assert!(reply.notice.unwrap().starts_with("Added dev, but: "), "an unreachable server is said");
        assert_eq!(reply.snapshot.sandboxes.len(), 1);
        let again =
            app.handle(Request::SaveSandbox { original: None, settings: settings("dev", &server()) }).await;
        assert_eq!(again.unwrap_err().message, "a sandbox named dev exists already; choose another name");
        let bad =
            app.handle(Request::SaveSandbox { original: None, settings: settings("dev", "ftp://x") }).await;
        assert!(bad.is_err());
    }

    #[tokio::test]
    async fn renaming_keeps_one_sandbox_and_removing_forgets_it() {
        let (_home, app) = service(Recorder::default());
        add(&app, "dev").await;
        let reply = app
            .handle(Request::SaveSandbox {
                original: Some("dev".into()),
                settings: settings("work", &server()),
            })
            .await
            .unwrap();
        let names: Vec<_> = reply.snapshot.sandboxes.iter().map(|s| s.settings.name.clone()).collect();
        assert_eq!(names, ["work"]);
        let reply = app.handle(Request::RemoveSandbox { name: "work".into() }).await.unwrap();
        assert_eq!(reply.notice.as_deref(), Some("Removed work."));
        assert!(reply.snapshot.sandboxes.is_empty());
    }

    #[tokio::test]
    async fn forwards_are_saved_and_a_local_port_is_not_used_twice() {
        let (_home, app) = service(Recorder::default());
        add(&app, "dev").await;
        let spec = |remote_port, local_port| ForwardSpec {
            remote_port,
            local_port,
            label: "vite".into(),
            auto_start: false,
        };
        let reply = app
            .handle(Request::SaveForward { name: "dev".into(), forward: spec(5173, 15173) })
            .await
            .unwrap();
        assert_eq!(reply.notice.as_deref(), Some("Saved localhost:15173 → :5173 (vite)."));
        let clash = app.handle(Request::SaveForward { name: "dev".into(), forward: spec(8000, 15173) }).await;
        assert_eq!(
            clash.unwrap_err().message,
            "another forward of dev already uses local port 15173; choose another local port"
        );
        let off = app.handle(Request::OpenForward { name: "dev".into(), remote_port: 5173 }).await;
        assert_eq!(off.unwrap_err().message, "the forward to :5173 is off; turn it on first");
        let missing = app.handle(Request::SetForward { name: "dev".into(), remote_port: 9, on: true }).await;
        assert_eq!(missing.unwrap_err().message, "dev has no forward to port 9; add it first");
        app.handle(Request::RemoveForward { name: "dev".into(), remote_port: 5173 }).await.unwrap();
        let gone = app.handle(Request::RemoveForward { name: "dev".into(), remote_port: 5173 }).await;
        assert_eq!(gone.unwrap_err().message, "dev has no forward to port 5173");
    }

    /// A forward to an unreachable server stays off, saying why; the Activity log has it.
    #[tokio::test]
    async fn a_forward_that_cannot_start_says_why() {
        let (_home, app) = service(Recorder::default());
        add(&app, "dev").await;
        let spec = ForwardSpec { remote_port: 5173, local_port: 0, label: String::new(), auto_start: false };
        app.handle(Request::SaveForward { name: "dev".into(), forward: spec }).await.unwrap();
        let err = app
            .handle(Request::SetForward { name: "dev".into(), remote_port: 5173, on: true })
            .await
            .unwrap_err();
        let snap = app.snapshot();
        let view = &snap.sandboxes[0].forwards[0];
        assert!(!view.on);
        assert_eq!(view.last_error.as_deref(), Some(err.message.as_str()));
        assert!(snap.log.last().unwrap().message.starts_with("any free port → :5173: "));
        let reply = app.handle(Request::StopAllForwards).await.unwrap();
        assert_eq!(reply.notice.as_deref(), Some("No forward was on."));
        assert_eq!(app.snapshot().sandboxes[0].forwards[0].last_error, None, "stopping all clears why");
    }

    #[tokio::test]
    async fn start_at_login_goes_to_the_desktop_and_its_refusal_keeps_the_old_preferences() {
        let (_home, app, desktop) = service_with(Recorder::default(), None);
        let mut prefs = app.snapshot().preferences;
        prefs.start_at_login = true;
        app.handle(Request::SetPreferences { preferences: prefs.clone() }).await.unwrap();
        assert_eq!(*desktop.start_at_login.lock().unwrap(), [true]);
        prefs.notifications = false;
        app.handle(Request::SetPreferences { preferences: prefs.clone() }).await.unwrap();
        assert_eq!(desktop.start_at_login.lock().unwrap().len(), 1, "unchanged: not asked again");
        assert!(!app.snapshot().preferences.notifications);

        let (_home, app, _) = service_with(
            Recorder { login_error: Some("no autostart dir".into()), ..Recorder::default() },
            None,
        );
        let mut prefs = app.snapshot().preferences;
        prefs.start_at_login = true;
        let err = app.handle(Request::SetPreferences { preferences: prefs }).await.unwrap_err();
        assert_eq!(err.message, "no autostart dir");
        assert!(!app.snapshot().preferences.start_at_login);
    }

    #[test]
    fn a_taken_local_port_comes_with_a_free_one() {
        let (stop, code) = stopped(ForwardError::PortInUse { port: 8000 });
        assert_eq!(code, ErrorCode::PortInUse);
        let free = stop.suggested_port.expect("a free port");
        assert_eq!(
            stop.message,
            format!("local port 8000 is already in use by another program; use {free} instead, or stop that program")
        );
        let spec = PortForward { remote_port: 80, local_port: 0, label: String::new(), auto_start: false };
        assert_eq!(describe(&spec), "any free port → :80");
    }

    /// Each refusal's code, which faces and tests branch on (never the sentence).
    #[tokio::test]
    async fn every_refusal_carries_its_code() {
        let desktop = Recorder { login_error: Some("no autostart here".into()), ..Recorder::default() };
        let (_home, app, _) = service_with(desktop, None);
        add(&app, "dev").await;
        let code = |outcome: crate::protocol::Outcome| outcome.unwrap_err().code;
        let save = |name: &str, server: &str| Request::SaveSandbox {
            original: None,
            settings: settings(name, server),
        };
        assert_eq!(code(app.handle(save("dev", &server())).await), ErrorCode::AlreadyExists);
        assert_eq!(code(app.handle(save("box", "ftp://x")).await), ErrorCode::InvalidInput);
        assert_eq!(code(app.handle(Request::Connect { name: "-x".into() }).await), ErrorCode::InvalidInput);
        assert_eq!(code(app.handle(Request::Connect { name: "nothere".into() }).await), ErrorCode::NotFound);
        let remove = Request::RemoveForward { name: "dev".into(), remote_port: 9 };
        assert_eq!(code(app.handle(remove).await), ErrorCode::NotFound);
        let spec = ForwardSpec { remote_port: 5173, local_port: 0, label: String::new(), auto_start: false };
        app.handle(Request::SaveForward { name: "dev".into(), forward: spec }).await.unwrap();
        let open = Request::OpenForward { name: "dev".into(), remote_port: 5173 };
        assert_eq!(code(app.handle(open).await), ErrorCode::ForwardOff);
        let on = Request::SetForward { name: "dev".into(), remote_port: 5173, on: true };
        assert_eq!(code(app.handle(on).await), ErrorCode::Unreachable, "nothing listens at its server");
        assert_eq!(code(app.handle(Request::SignIn { name: "dev".into() }).await), ErrorCode::NotSupported);
        let mut preferences = app.snapshot().preferences;
        preferences.start_at_login = true;
        assert_eq!(code(app.handle(Request::SetPreferences { preferences }).await), ErrorCode::Desktop);
        let low = Request::ForwardPort { name: "dev".into(), remote_port: 22 };
        assert_eq!(code(app.handle(low).await), ErrorCode::InvalidInput);
        assert_eq!(code(app.handle(Request::AddDemo).await), ErrorCode::Failed, "no agent to run it");
    }
}
