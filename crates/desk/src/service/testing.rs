//! The recording [`Desktop`] and a service on a fresh home, for the service's unit tests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sandbox_core::paths::Paths;
use sandbox_core::setup::Installation;
use sandbox_core::ssh_config::Platform;

use super::{Service, ServiceConfig};
use crate::desktop::Desktop;

/// A desktop that records what the app asked of it.
#[derive(Default)]
pub(crate) struct Recorder {
    pub urls: Mutex<Vec<String>>,
    pub notes: Mutex<Vec<String>>,
    pub start_at_login: Mutex<Vec<bool>>,
    /// Notifications panic after recording (as zbus did at the descriptor limit).
    pub notify_panics: bool,
    /// `set_start_at_login` answers this error.
    pub login_error: Option<String>,
}

impl Desktop for Recorder {
    fn open_url(&self, url: &str) -> std::io::Result<()> {
        self.urls.lock().unwrap().push(url.to_owned());
        Ok(())
    }
    fn open_browser(&self, url: &str) {
        self.urls.lock().unwrap().push(url.to_owned());
    }
    fn find_executable(&self, _: &str) -> Option<PathBuf> {
        None
    }
    fn notify(&self, title: &str, body: &str) {
        self.notes.lock().unwrap().push(format!("{title}: {body}"));
        if self.notify_panics {
            panic!("notification failed: Too many open files");
        }
    }
    fn set_start_at_login(&self, on: bool) -> Result<(), crate::desktop::AutostartError> {
        self.start_at_login.lock().unwrap().push(on);
        self.login_error.clone().map_or(Ok(()), |e| Err(crate::desktop::AutostartError(e)))
    }
    fn key_comment(&self) -> String {
        "test@laptop".into()
    }
}

/// A service on an empty home (no demo agent), and the home that must outlive it.
pub(crate) fn service(desktop: Recorder) -> (tempfile::TempDir, Service) {
    let (home, app, _) = service_with(desktop, None);
    (home, app)
}

/// A service on an empty home with `agent` as its demo agent; also the recorder.
pub(crate) fn service_with(
    desktop: Recorder,
    agent: Option<PathBuf>,
) -> (tempfile::TempDir, Service, Arc<Recorder>) {
    let home = tempfile::tempdir().unwrap();
    let desktop = Arc::new(desktop);
    let app = Service::new(ServiceConfig {
        install: Installation {
            paths: Paths::from_home(home.path()),
            binary: PathBuf::from("/nonexistent/sandbox-forward"),
            platform: Platform::current(),
            prefer_keychain: false,
        },
        desktop: desktop.clone(),
        agent_binary: agent,
    });
    (home, app, desktop)
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Settings of a sandbox without credentials.
pub(crate) fn settings(name: &str, server: &str) -> crate::protocol::SandboxSettings {
    crate::protocol::SandboxSettings {
        name: name.into(),
        server: server.into(),
        auth: crate::protocol::AuthSettings::None,
        remote_folder: String::new(),
        allow_insecure_http: false,
    }
}

/// A stand-in sandbox server on loopback that answers every request with `GET
/// /api/listening-ports`'s body for the ports in `ports` at that moment (`node` on each).
pub(crate) async fn ports_server(ports: Arc<Mutex<Vec<u16>>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let ports = ports.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let list: Vec<String> = ports
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|p| format!("{{\"port\":{p},\"process\":\"node\"}}"))
                    .collect();
                let body = format!("{{\"ports\":[{}]}}", list.join(","));
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}
