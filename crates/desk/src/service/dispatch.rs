//! [`Service::handle`]: a request from any face → its handler in [`super::actions`] (or
//! [`crate::listening`]), answered with the snapshot after it.

use sandbox_core::name::SandboxName;

use super::Service;
use crate::listening;
use crate::protocol::{ActionError, ErrorCode, Outcome, Reply, Request};

impl Service {
    /// Carries out one request.
    pub async fn handle(&self, request: Request) -> Outcome {
        let mut listening_ports = None;
        let notice = match request {
            Request::Snapshot => None,
            Request::Refresh => {
                self.probe_all().await;
                self.scan_all().await;
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
                let name = parse_name(&name)?;
                let (ports, source) =
                    listening::detect(&self.inner.install, &*self.inner.desktop, &name).await?;
                let profile = self.inner.install.profiles().load(&name)?;
                let ports = self.pod_ports(&profile, ports);
                // The user has seen these: none is announced as new later.
                self.record_ports(&name, ports.clone(), true);
                let (view, notice) = listening::answer(&name, &ports, source, &profile.forwards);
                listening_ports = Some(view);
                Some(notice)
            }
            Request::ForwardPort { name, remote_port } => {
                Some(self.forward_port(&parse_name(&name)?, remote_port).await?)
            }
            Request::SetAutoForward { name, on } => Some(self.set_auto_forward(&parse_name(&name)?, on)?),
        };
        Ok(Reply { snapshot: self.snapshot(), notice, listening_ports })
    }
}

/// A sandbox name from a face, checked as the core checks it.
pub(super) fn parse_name(name: &str) -> Result<SandboxName, ActionError> {
    SandboxName::new(name).map_err(|e| ActionError::new(ErrorCode::InvalidInput, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{service, Recorder};

    #[tokio::test]
    async fn a_bad_name_is_refused_before_any_handler_runs() {
        let (_home, app) = service(Recorder::default());
        for request in [
            Request::Connect { name: "-x".into() },
            Request::RemoveSandbox { name: "a b".into() },
            Request::ListeningPorts { name: String::new() },
        ] {
            let err = app.handle(request.clone()).await.unwrap_err();
            assert_eq!(err.message, parse_name(&request_name(&request)).unwrap_err().message);
        }
    }

    fn request_name(request: &Request) -> String {
        match request {
            Request::Connect { name }
            | Request::RemoveSandbox { name }
            | Request::ListeningPorts { name } => name.clone(),
            _ => unreachable!(),
        }
    }

    #[tokio::test]
    async fn a_snapshot_says_nothing_and_carries_no_ports() {
        let (_home, app) = service(Recorder::default());
        let reply = app.handle(Request::Snapshot).await.unwrap();
        assert_eq!((reply.notice, reply.listening_ports), (None, None));
        assert_eq!(reply.snapshot.version, env!("CARGO_PKG_VERSION"));
        let unknown = app.handle(Request::ListeningPorts { name: "nothere".into() }).await;
        assert!(unknown.is_err());
    }
}
