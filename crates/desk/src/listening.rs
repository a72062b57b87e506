//! `Request::ListeningPorts`: the TCP ports listening in a sandbox (`sandbox_core::ports`: the
//! agent's `/api/listening-ports`, or `/proc/net/tcp` over `ssh NAME` from the original server),
//! each marked when a saved forward already reaches it — what a face offers as "Forward".

use sandbox_core::name::SandboxName;
use sandbox_core::ports::{self, ListeningPort, PortsSource};
use sandbox_core::setup::Installation;
use sandbox_core::untrusted::printable;

use crate::desktop::Desktop;
use crate::protocol::{ActionError, DetectedPort, ErrorCode, ListeningPortsView};

/// The answer to `Request::ListeningPorts`: the view and a sentence about it.
pub(crate) fn answer(
    name: &SandboxName,
    ports: &[ListeningPort],
    source: PortsSource,
    saved: &[sandbox_core::forwards::PortForward],
) -> (ListeningPortsView, String) {
    let view = view(ports, source, saved);
    let notice = match view.ports.len() {
        0 => format!("No TCP port from 1024 up listens in {name}."),
        1 => format!("1 port listens in {name}."),
        n => format!("{n} ports listen in {name}."),
    };
    (view, notice)
}

/// The ports listening in the sandbox now, and where that was read.
pub(crate) async fn detect(
    install: &Installation,
    desktop: &dyn Desktop,
    name: &SandboxName,
) -> Result<(Vec<ListeningPort>, PortsSource), ActionError> {
    let api = install.client(name).await?;
    let ssh = desktop.find_executable("ssh").unwrap_or_else(|| "ssh".into());
    let found = ports::detect(&api, &ssh, &install.paths.ssh_config, name).await.map_err(|e| {
        let code = match &e {
            ports::PortsError::Api(api) => crate::error::api_code(api),
            _ => ErrorCode::Failed,
        };
        ActionError::new(code, e.to_string())
    })?;
    Ok((found.ports, found.source))
}

/// The protocol's view: process names made printable (a process names itself), saved forwards
/// marked.
pub(crate) fn view(
    ports: &[ListeningPort],
    source: PortsSource,
    saved: &[sandbox_core::forwards::PortForward],
) -> ListeningPortsView {
    ListeningPortsView {
        ports: ports
            .iter()
            .map(|p| DetectedPort {
                port: p.port,
                process: p.process.as_deref().map(printable),
                forwarded: saved.iter().any(|f| f.remote_port == p.port),
            })
            .collect(),
        over_ssh: source == PortsSource::Ssh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::forwards::PortForward;

    #[test]
    fn saved_forwards_are_marked_and_names_made_printable() {
        let ports = [
            ListeningPort { port: 5173, process: Some("node".into()) },
            ListeningPort { port: 8000, process: Some("evil\u{1b}[2J\u{202e}".into()) },
            ListeningPort { port: 9229, process: None },
        ];
        let saved =
            [PortForward { remote_port: 5173, local_port: 5173, label: "vite".into(), auto_start: true }];
        let v = view(&ports, PortsSource::Agent, &saved);
        assert!(!v.over_ssh);
        let got: Vec<_> = v.ports.iter().map(|p| (p.port, p.process.as_deref(), p.forwarded)).collect();
        assert_eq!(got, [(5173, Some("node"), true), (8000, Some("evil[2J"), false), (9229, None, false)]);
        assert!(view(&ports, PortsSource::Ssh, &[]).over_ssh);
    }
}
