//! The demo sandbox's place in the service: started at launch (offered when nothing is
//! configured), brought back by `Request::AddDemo`, its profile pointed at this start's agent
//! and page server. The processes themselves are [`crate::demo`].

use sandbox_core::forwards::PortForward;
use sandbox_core::name::SandboxName;
use sandbox_core::profile::Profile;

use super::Service;
use crate::demo::{self, DemoAgent, DemoError, DemoFiles};
use crate::protocol::{ActionError, ErrorCode, LogLevel};

/// The demo sandbox's name.
pub const DEMO_NAME: &str = "demo";

impl Service {
    /// At start: runs the demo that exists, or offers one when nothing is configured and the
    /// user never removed it.
    pub(super) async fn start_demo(&self) {
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
            self.log(LogLevel::Error, Some(&name), e.to_string());
        }
    }

    /// `Request::AddDemo`: brings back the demo the user removed, or adds it beside their own
    /// sandboxes; never over a sandbox of theirs that is called `demo`.
    pub(super) async fn add_demo(&self) -> Result<String, ActionError> {
        let name = SandboxName::new(DEMO_NAME).expect("a valid name");
        if self.lock().settings.demo.is_some() {
            return Err(ActionError::new(ErrorCode::AlreadyExists, "The demo sandbox is already here."));
        }
        if self.inner.install.profiles().names().iter().any(|n| n.as_str() == DEMO_NAME) {
            return Err(ActionError::new(
                ErrorCode::AlreadyExists,
                format!("A sandbox of yours is called {DEMO_NAME}; rename or remove it to add the demo."),
            ));
        }
        self.run_demo(&name).await?;
        {
            let mut state = self.lock();
            state.settings.demo_dismissed = false;
            let _ = self.inner.settings_file.save(&state.settings);
        }
        self.probe(&name).await;
        Ok(format!("Added the demo sandbox {name}."))
    }

    /// Starts the demo's agent and page server and writes its profile.
    pub(super) async fn run_demo(&self, name: &SandboxName) -> Result<(), DemoError> {
        let Some(agent) = self.inner.agent_binary.clone() else {
            return Err(DemoError::NoAgent);
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
        store.save(name, &profile)?;
        {
            let mut state = self.lock();
            state.settings.demo = Some(name.to_string());
            if let Err(e) = self.inner.settings_file.save(&state.settings) {
                drop(state);
                self.log(LogLevel::Warn, None, e.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;
    use crate::service::testing::{service, settings, Recorder};

    fn forward(remote_port: u16, local_port: u16, label: &str) -> PortForward {
        PortForward { remote_port, local_port, label: label.into(), auto_start: false }
    }

    #[test]
    fn the_page_forward_follows_the_site_and_keeps_the_users_choices() {
        let page = forward(41234, 8000, demo::SITE_LABEL);
        let mut forwards = vec![
            PortForward { auto_start: true, ..forward(39999, 18000, demo::SITE_LABEL) },
            forward(5173, 5173, "vite"),
        ];
        follow_demo_site(&mut forwards, page.clone());
        assert_eq!(forwards[0], PortForward { local_port: 18000, auto_start: true, ..page.clone() });
        assert_eq!(forwards[1], forward(5173, 5173, "vite"));

        // The looping forward of old demos becomes the page forward.
        let mut legacy = vec![forward(8000, 8000, "python3 -m http.server")];
        follow_demo_site(&mut legacy, page.clone());
        assert_eq!(legacy, std::slice::from_ref(&page));

        // A removed page forward stays removed.
        let mut none = vec![forward(5173, 5173, "vite")];
        follow_demo_site(&mut none, page);
        assert_eq!(none, [forward(5173, 5173, "vite")]);
    }

    #[tokio::test]
    async fn without_an_agent_the_demo_is_neither_offered_nor_added() {
        let (_home, app) = service(Recorder::default());
        assert!(!app.snapshot().demo_available);
        app.start_demo().await;
        let log = app.snapshot().log;
        assert!(log.last().unwrap().message.contains("the demo needs sandbox-agent"), "{log:?}");
        let err = app.handle(Request::AddDemo).await.unwrap_err();
        assert_eq!(
            err.message,
            "the demo needs sandbox-agent installed beside the app; reinstall Sandbox Forward"
        );
    }

    #[tokio::test]
    async fn the_demo_never_replaces_a_sandbox_of_the_users_called_demo() {
        let (_home, app, _) = crate::service::testing::service_with(
            Recorder::default(),
            Some("/nonexistent/sandbox-agent".into()),
        );
        app.handle(Request::SaveSandbox {
            original: None,
            settings: settings(DEMO_NAME, "http://127.0.0.1:1"),
        })
        .await
        .unwrap();
        let err = app.handle(Request::AddDemo).await.unwrap_err();
        assert_eq!(err.message, "A sandbox of yours is called demo; rename or remove it to add the demo.");
        // With a sandbox configured, nothing is offered at start either.
        app.start_demo().await;
        assert_eq!(app.snapshot().sandboxes[0].settings.server, "http://127.0.0.1:1");
    }
}
