//! The desktop app's model (`sandbox-desk`) against real processes: its demo sandbox is a real
//! `sandbox-agent`, Connect writes a config the real `ssh` uses, toggles carry real bytes, and
//! the window's control socket answers across processes' boundary (here, tasks).
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and Unix peers.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_test_support::aio::eventually;

use sandbox_core::paths::Paths;
use sandbox_core::setup::Installation;
use sandbox_core::ssh_config::Platform;
use sandbox_desk::control::{ControlClient, ControlServer, ServeError};
use sandbox_desk::protocol::{
    AuthSettings, ForwardSpec, Health, IdeChoice, Reply, Request, SandboxSettings, SandboxView,
};
use sandbox_desk::{Desktop, Service, ServiceConfig};
use sandbox_tests::{bin, echo_server, ok, run, Home};

/// A desktop that records what the app asked of it.
#[derive(Default)]
struct Recorder {
    urls: Mutex<Vec<String>>,
    notes: Mutex<Vec<String>>,
    /// Notifications panic after recording (as zbus did at the descriptor limit).
    notify_panics: bool,
    /// Links go to this opener (a stand-in for xdg-open) instead of being recorded.
    opener: Option<PathBuf>,
}

impl Desktop for Recorder {
    fn open_url(&self, url: &str) -> std::io::Result<()> {
        self.urls.lock().unwrap().push(url.to_owned());
        match &self.opener {
            Some(opener) => sandbox_core::browser::open_with(opener.to_str().unwrap(), url),
            None => Ok(()),
        }
    }
    fn open_browser(&self, url: &str) {
        self.urls.lock().unwrap().push(url.to_owned());
    }
    fn find_executable(&self, _: &str) -> Option<PathBuf> {
        None // no IDE installed: VS Code falls back to its URL
    }
    fn notify(&self, title: &str, body: &str) {
        self.notes.lock().unwrap().push(format!("{title}: {body}"));
        if self.notify_panics {
            panic!("notification failed: Too many open files");
        }
    }
    fn set_start_at_login(&self, _: bool) -> Result<(), sandbox_desk::desktop::AutostartError> {
        Ok(())
    }
    fn key_comment(&self) -> String {
        "test@laptop".into()
    }
}

fn service(home: &Home, desktop: Arc<Recorder>) -> Service {
    Service::new(ServiceConfig {
        install: Installation {
            paths: Paths::from_home(home.path()),
            binary: bin("sandbox-forward"),
            platform: Platform::current(),
            prefer_keychain: false,
        },
        desktop,
        agent_binary: Some(bin("sandbox-agent")),
    })
}

async fn call(service: &Service, request: Request) -> Reply {
    service.handle(request.clone()).await.unwrap_or_else(|e| panic!("{request:?}: {}", e.message))
}

fn sandbox<'a>(reply: &'a Reply, name: &str) -> &'a SandboxView {
    reply.snapshot.sandboxes.iter().find(|s| s.settings.name == name).unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sandbox_connects_opens_vs_code_and_ssh_works() {
    let home = Home::new();
    let desktop = Arc::new(Recorder::default());
    let app = service(&home, desktop.clone());
    app.run().await;

    let reply = call(&app, Request::Snapshot).await;
    let demo = sandbox(&reply, "demo");
    assert!(demo.demo);
    assert_eq!(demo.status.health, Health::NotConnected, "{}", demo.status.detail);
    assert!(matches!(demo.settings.auth, AuthSettings::BearerFile { .. }), "the demo requires its token");
    let folder = demo.settings.remote_folder.clone();

    let reply = call(&app, Request::Connect { name: "demo".into() }).await;
    assert_eq!(sandbox(&reply, "demo").status.health, Health::Ready);
    assert_eq!(*desktop.urls.lock().unwrap(), [format!("vscode://vscode-remote/ssh-remote+demo{folder}")]);
    let config = std::fs::read_to_string(home.path().join(".config/sandbox/ssh_config")).unwrap();
    assert!(config.contains("Host demo") && config.contains("proxy --ssh --sandbox demo"), "{config}");

    // The real OpenSSH client, through the block Connect wrote, lands in the demo workspace.
    let out = ok(&run(home.ssh("ssh", &["demo", "pwd"]), Duration::from_secs(20)));
    assert_eq!(
        PathBuf::from(out.trim()).canonicalize().unwrap(),
        PathBuf::from(&folder).canonicalize().unwrap()
    );

    // Without its token the demo agent refuses everyone else on this machine.
    let url = format!("{}/api/ssh-port", demo.settings.server);
    let status = match ureq::get(&url).call() {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(code)) => code,
        Err(e) => panic!("{url}: {e}"),
    };
    assert_eq!(status, 401);

    let pid = app.demo_pid().await.expect("demo agent runs");
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists() || is_zombie(pid),
        "demo agent survived shutdown"
    );
}

/// `GET /api/ssh-port` with a bearer token: the status.
fn ssh_port_status(server: &str, token: &str) -> u16 {
    let url = format!("{server}/api/ssh-port");
    match ureq::get(&url).header("Authorization", &format!("Bearer {token}")).call() {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(code)) => code,
        Err(e) => panic!("{url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_start_takes_a_fresh_port_and_token() {
    use sandbox_desk::demo::{DemoAgent, DemoFiles};
    let dir = tempfile::tempdir().unwrap();
    let files = DemoFiles { dir: dir.path().join("demo") };
    let agent = bin("sandbox-agent");
    let token = || std::fs::read_to_string(files.token()).unwrap().trim().to_owned();

    let first = DemoAgent::start(&agent, &files).await.unwrap();
    let (first_url, first_token) = (first.url.clone(), token());
    assert_eq!(ssh_port_status(&first_url, &first_token), 200);
    drop(first); // kills the agent (kill_on_drop)

    let second = DemoAgent::start(&agent, &files).await.unwrap();
    let second_token = token();
    assert_ne!(second_token, first_token, "the token was not rotated");
    for url in [&first_url, &second.url] {
        assert!(!url.ends_with(":19877"), "the demo took the old fixed port: {url}");
    }
    // Whoever saw the first token gets nothing from the running demo.
    assert_eq!(ssh_port_status(&second.url, &first_token), 401);
    assert_eq!(ssh_port_status(&second.url, &second_token), 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(files.token()).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_toggle_carries_bytes_and_errors_land_on_the_row() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    let pod_port = echo_server();

    let spec = ForwardSpec { remote_port: pod_port, local_port: 0, label: "echo".into(), auto_start: false };
    call(&app, Request::SaveForward { name: "demo".into(), forward: spec }).await;
    let reply =
        call(&app, Request::SetForward { name: "demo".into(), remote_port: pod_port, on: true }).await;
    let row =
        sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == pod_port).unwrap().clone();
    assert!(row.on);
    let local = row.bound_port.unwrap();
    assert_eq!(reply.notice.as_deref(), Some(format!("Forwarding localhost:{local} → :{pod_port}").as_str()));

    let conn = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
        c.write_all(b"hello through the tray").unwrap();
        let mut back = [0u8; 22];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello through the tray");
        c
    })
    .await
    .unwrap();
    let reply = call(&app, Request::Snapshot).await;
    let row =
        sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == pod_port).unwrap().clone();
    assert_eq!((row.active, row.total, row.bytes_sent, row.bytes_received), (1, 1, 22, 22));

    let reply =
        call(&app, Request::SetForward { name: "demo".into(), remote_port: pod_port, on: false }).await;
    assert!(!sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == pod_port).unwrap().on);
    assert!(TcpStream::connect(("127.0.0.1", local)).is_err());
    drop(conn);

    // A local port in use: the error names it and stays on that row.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let spec =
        ForwardSpec { remote_port: 5173, local_port: busy_port, label: "vite".into(), auto_start: false };
    call(&app, Request::SaveForward { name: "demo".into(), forward: spec }).await;
    let err = app
        .handle(Request::SetForward { name: "demo".into(), remote_port: 5173, on: true })
        .await
        .unwrap_err();
    assert!(err.message.contains("already in use"), "{}", err.message);
    let reply = call(&app, Request::Snapshot).await;
    let rows = &sandbox(&reply, "demo").forwards;
    let vite = rows.iter().find(|f| f.spec.remote_port == 5173).unwrap();
    assert!(!vite.on && vite.last_error.as_deref() == Some(err.message.as_str()));
    assert!(rows.iter().filter(|f| f.spec.remote_port != 5173).all(|f| f.last_error.is_none()));
    // The window's words, not the CLI's flag, and a free port to take instead, which works.
    assert!(!err.message.contains("--local-port"), "{}", err.message);
    let free = vite.suggested_port.expect("a free port is offered");
    assert!(free != busy_port && err.message.contains(&format!("use {free} instead")), "{}", err.message);
    let spec = ForwardSpec { local_port: free, ..vite.spec.clone() };
    call(&app, Request::SaveForward { name: "demo".into(), forward: spec }).await;
    let reply = call(&app, Request::SetForward { name: "demo".into(), remote_port: 5173, on: true }).await;
    let vite = sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == 5173).unwrap().clone();
    assert!(vite.on && vite.bound_port == Some(free) && vite.suggested_port.is_none(), "{vite:?}");
    call(&app, Request::SetForward { name: "demo".into(), remote_port: 5173, on: false }).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_and_a_wrong_url_shows_in_the_status() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    let settings = |name: &str, server: &str| SandboxSettings {
        name: name.into(),
        server: server.into(),
        auth: AuthSettings::None,
        remote_folder: "/workspace".into(),
        allow_insecure_http: false,
    };
    for (name, server, expect) in [
        ("bad name", "https://x.example", "name"),
        ("-x", "https://x.example", "name"),
        ("ok", "ftp://x.example", "ftp"),
        ("ok", "https://x.example\nProxyCommand evil", "URL"),
        ("ok", "http://0.0.0.0:1", "Allow insecure HTTP"),
    ] {
        let err = app
            .handle(Request::SaveSandbox { original: None, settings: settings(name, server) })
            .await
            .unwrap_err();
        assert!(err.message.contains(expect), "{name:?} {server:?}: {}", err.message);
    }
    assert!(call(&app, Request::Snapshot).await.snapshot.sandboxes.is_empty(), "nothing saved");

    // Nothing listens on this port: saved, with the reason in its status.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reply = call(
        &app,
        Request::SaveSandbox {
            original: None,
            settings: settings("dev", &format!("http://127.0.0.1:{dead}")),
        },
    )
    .await;
    let dev = sandbox(&reply, "dev");
    assert_eq!(dev.status.health, Health::Unreachable);
    assert!(reply.notice.as_deref().unwrap().contains("but"), "{:?}", reply.notice);
    let err = app.handle(Request::OpenIn { name: "dev".into(), ide: IdeChoice::Zed }).await.unwrap_err();
    assert!(err.message.contains(&format!("127.0.0.1:{dead}")), "{}", err.message);

    // Allowed explicitly: saved, with a warning in the activity log. (0.0.0.0 is off loopback
    // by our rule, yet a connection to it stays on this machine.)
    let lan =
        SandboxSettings { allow_insecure_http: true, ..settings("lan", &format!("http://0.0.0.0:{dead}")) };
    let reply = call(&app, Request::SaveSandbox { original: None, settings: lan }).await;
    assert!(sandbox(&reply, "lan").settings.allow_insecure_http);
    let warned = reply.snapshot.log.iter().any(|e| {
        e.sandbox.as_deref() == Some("lan") && e.message.contains("travel unencrypted over http://")
    });
    assert!(warned, "{:?}", reply.snapshot.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_serves_one_process_and_answers_requests() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    let path = Paths::from_home(home.path()).control_socket();
    let server = ControlServer::bind(&path).await.unwrap();
    let serving = tokio::spawn(server.run(app.clone()));
    assert!(matches!(ControlServer::bind(&path).await, Err(ServeError::AlreadyRunning)));

    let client = ControlClient::new(path.clone());
    let reply = client.call(&Request::Snapshot).await.unwrap();
    assert!(reply.snapshot.sandboxes.is_empty());
    let err = client.call(&Request::RemoveForward { name: "nope".into(), remote_port: 1 }).await.unwrap_err();
    assert!(err.message.contains("nope"), "{}", err.message);

    // The tray process gone: a clear sentence, and a new one can take over the socket.
    serving.abort();
    let _ = serving.await;
    let err = client.call(&Request::Snapshot).await.unwrap_err();
    assert!(err.message.contains("not running"), "{}", err.message);
    let again = ControlServer::bind(&path).await.unwrap();
    drop(again);
}

/// An HTTP/1.0 GET of `/` on `127.0.0.1:port`: the whole answer.
fn http_get(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer
}

/// The demo's ready-made forward reaches a page the demo serves, one connection per request.
/// It used to be `localhost:8000 → :8000` on a "pod" that is this machine: the agent dialled the
/// forward's own listener, and one request became thousands of connections. A profile saved by
/// that version is repaired on start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_forward_serves_its_page_with_one_connection_per_request() {
    let home = Home::new();
    let config = home.path().join(".config/sandbox");
    std::fs::create_dir_all(config.join("sandboxes")).unwrap();
    std::fs::write(config.join("app.toml"), "demo = \"demo\"\n").unwrap();
    std::fs::write(
        config.join("sandboxes/demo.toml"),
        "server = \"http://127.0.0.1:1\"\n\n[[forwards]]\nremote_port = 8000\nlocal_port = 8000\nlabel = \"python3 -m http.server\"\n",
    )
    .unwrap();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;

    let reply = call(&app, Request::Snapshot).await;
    let forwards = &sandbox(&reply, "demo").forwards;
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    let spec = forwards[0].spec.clone();
    assert_ne!(spec.remote_port, spec.local_port, "the demo forward targets its own listener: {spec:?}");
    // Any free local port: 8000 may be taken on the machine running the tests.
    let spec = ForwardSpec { local_port: 0, ..spec };
    call(&app, Request::SaveForward { name: "demo".into(), forward: spec.clone() }).await;
    let reply =
        call(&app, Request::SetForward { name: "demo".into(), remote_port: spec.remote_port, on: true })
            .await;
    let row = sandbox(&reply, "demo").forwards[0].clone();
    let local = row.bound_port.expect("forward on");

    let page = tokio::task::spawn_blocking(move || http_get(local)).await.unwrap();
    assert!(page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Sandbox Forward"), "{page}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reply = call(&app, Request::Snapshot).await;
    let row = sandbox(&reply, "demo").forwards[0].clone();
    assert_eq!((row.total, row.active), (1, 0), "{row:?}");

    // A forward onto its own listener is refused with the reason, before it starts.
    let own = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let looped = ForwardSpec { remote_port: own, local_port: own, label: String::new(), auto_start: false };
    call(&app, Request::SaveForward { name: "demo".into(), forward: looped }).await;
    let err = app
        .handle(Request::SetForward { name: "demo".into(), remote_port: own, on: true })
        .await
        .unwrap_err();
    assert!(err.message.contains("would forward to itself"), "{}", err.message);

    // The page server stops with the demo.
    app.shutdown().await;
    let port = spec.remote_port;
    let gone = eventually(Duration::from_secs(5), || TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(gone.await, "the demo's page server outlived the demo");
}

/// A notification that panics (zbus at the descriptor limit) neither stops live status nor
/// later notifications: the watch loop keeps bumping the generation as numbers move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_notification_does_not_stop_live_status() {
    let home = Home::new();
    let desktop = Arc::new(Recorder { notify_panics: true, ..Recorder::default() });
    let app = service(&home, desktop.clone());
    app.run().await;
    let mut changed = app.subscribe();

    // Two forwards to ports where nothing listens (a connection through either fails, which
    // notifies) and one to an echo server.
    let dead = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut locals = Vec::new();
    for remote_port in [dead(), dead(), echo_server()] {
        let spec = ForwardSpec { remote_port, local_port: 0, label: String::new(), auto_start: false };
        call(&app, Request::SaveForward { name: "demo".into(), forward: spec }).await;
        let reply = call(&app, Request::SetForward { name: "demo".into(), remote_port, on: true }).await;
        let row =
            sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == remote_port).cloned();
        locals.push(row.unwrap().bound_port.unwrap());
    }
    let fail_once = |local: u16| async move {
        tokio::task::spawn_blocking(move || {
            let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = c.write_all(b"x");
            let _ = c.read(&mut [0u8; 1]);
        })
        .await
        .unwrap()
    };
    // Polled without blocking a runtime worker: a task parked in a blocked worker's LIFO slot
    // cannot be stolen by the other one, so a blocking wait can starve the very task it awaits.
    let notified = |n: usize| {
        let desktop = desktop.clone();
        eventually(Duration::from_secs(5), move || desktop.notes.lock().unwrap().len() >= n)
    };
    fail_once(locals[0]).await;
    assert!(notified(1).await, "the failure was not notified");

    // Numbers keep refreshing: traffic through the echo forward changes the generation.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    changed.borrow_and_update();
    let echo_local = locals[2];
    let conn = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(("127.0.0.1", echo_local)).unwrap();
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut [0u8; 4]).unwrap();
        c
    })
    .await
    .unwrap();
    let moved = tokio::time::timeout(Duration::from_secs(5), changed.changed()).await;
    assert!(moved.is_ok(), "live status stopped refreshing after a notification panicked");

    // A later failure is still noticed and notified.
    fail_once(locals[1]).await;
    assert!(notified(2).await, "no notification after the first one panicked");
    drop(conn);
    app.shutdown().await;
}

/// "Open in VS Code" when nothing handles vscode:// links (xdg-open exits 3): the action fails
/// with what to install, and Activity says so, instead of "Opening…" and "Opened".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_in_reports_a_link_nothing_handles() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let opener = home.path().join("xdg-open");
    std::fs::write(&opener, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let desktop = Arc::new(Recorder { opener: Some(opener), ..Recorder::default() });
    let app = service(&home, desktop.clone());
    app.run().await;

    for (ide, what) in [
        (IdeChoice::VsCode, "Remote - SSH extension"),
        (IdeChoice::Cursor, "install Cursor"),
        (IdeChoice::Gateway, "install JetBrains Gateway"),
    ] {
        let err = match app.handle(Request::OpenIn { name: "demo".into(), ide }).await {
            Ok(reply) => panic!("{ide:?}: reported {:?} although nothing opened", reply.notice),
            Err(e) => e.message,
        };
        assert!(err.contains("exited with status 3") && err.contains(what), "{ide:?}: {err}");
    }
    assert_eq!(desktop.urls.lock().unwrap().len(), 3);
    let log = call(&app, Request::Snapshot).await.snapshot.log;
    assert!(!log.iter().any(|e| e.message.starts_with("Opened in")), "{log:?}");
    assert!(log.iter().any(|e| e.message.contains("exited with status 3")), "{log:?}");
    app.shutdown().await;
}

/// After an app restart the demo agent is new (new host key, keys forgotten); the next `ssh
/// demo` heals that by itself (key re-registered, host key re-pinned), so the status is Ready,
/// not the amber "Pod restarted" that asks the user to act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_restart_that_heals_itself_shows_as_ready() {
    let home = Home::new();
    let first = service(&home, Arc::new(Recorder::default()));
    first.run().await;
    let reply = call(&first, Request::Connect { name: "demo".into() }).await;
    assert_eq!(sandbox(&reply, "demo").status.health, Health::Ready);
    first.shutdown().await;
    drop(first);

    let again = service(&home, Arc::new(Recorder::default()));
    again.run().await;
    let demo = sandbox(&call(&again, Request::Snapshot).await, "demo").status.clone();
    assert_eq!(demo.health, Health::Ready, "{}", demo.detail);
    assert!(demo.key_registered);
    // And it is: the real ssh gets in through the new agent.
    let out = ok(&run(home.ssh("ssh", &["demo", "true"]), Duration::from_secs(20)));
    assert_eq!(out, "");
    let demo = sandbox(&call(&again, Request::Refresh).await, "demo").status.clone();
    assert_eq!(demo.health, Health::Ready, "{}", demo.detail);
    again.shutdown().await;
}

/// `Request::ListeningPorts`: the demo agent lists what listens on this machine (its "pod"):
/// the demo's page server (a task of this process) marked as reached by the saved forward,
/// never the demo agent's own ports; only that answer carries ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sandboxs_listening_ports_mark_its_saved_forward() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    let reply = call(&app, Request::Snapshot).await;
    assert!(reply.listening_ports.is_none());
    let demo = sandbox(&reply, "demo");
    let site = demo.forwards[0].spec.remote_port;
    let agent_port: u16 = demo.settings.server.rsplit(':').next().unwrap().parse().unwrap();

    let reply = call(&app, Request::ListeningPorts { name: "demo".into() }).await;
    let view = reply.listening_ports.as_ref().expect("the answer carries the ports");
    assert!(!view.over_ssh, "our agent answers itself");
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let page = view.ports.iter().find(|p| p.port == site).unwrap_or_else(|| panic!("{site}: {view:?}"));
    assert!(page.forwarded, "{page:?}");
    assert_eq!(page.process.as_deref(), Some(comm.trim_end()));
    assert!(!view.ports.iter().any(|p| p.port == agent_port), "the demo agent's API port: {view:?}");
    assert!(view.ports.iter().filter(|p| p.port != site).all(|p| !p.forwarded), "{view:?}");
    let notice = reply.notice.clone().unwrap_or_default();
    assert!(notice.ends_with("listen in demo.") || notice == "1 port listens in demo.", "{notice}");

    let err = app.handle(Request::ListeningPorts { name: "nope".into() }).await.unwrap_err();
    assert!(err.message.contains("nope") && !err.message.contains('\n'), "{}", err.message);
    app.shutdown().await;
}

/// A removed demo stays removed across restarts, but the user can bring it back (the window's
/// Preferences or the tray's "Add the demo sandbox"), and it runs again: ssh reaches it. A
/// sandbox of the user's called `demo` is never overwritten by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_demo_can_be_brought_back() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    assert!(!call(&app, Request::Snapshot).await.snapshot.demo_available, "the demo is here");

    let reply = call(&app, Request::RemoveSandbox { name: "demo".into() }).await;
    assert!(reply.snapshot.sandboxes.is_empty());
    assert!(reply.snapshot.demo_available);
    assert_eq!(app.demo_pid().await, None);
    app.shutdown().await;

    // Removed is remembered: a restarted app does not offer it by itself…
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    assert!(call(&app, Request::Snapshot).await.snapshot.sandboxes.is_empty());
    // …until asked.
    let reply = call(&app, Request::AddDemo).await;
    assert!(sandbox(&reply, "demo").demo);
    assert!(!reply.snapshot.demo_available);
    assert!(app.demo_pid().await.is_some());
    call(&app, Request::Connect { name: "demo".into() }).await;
    ok(&run(home.ssh("ssh", &["demo", "true"]), Duration::from_secs(20)));
    let again = app.handle(Request::AddDemo).await.expect_err("already here");
    assert!(again.message.contains("already"), "{}", again.message);
    app.shutdown().await;

    // A sandbox of the user's named demo is left alone.
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    call(&app, Request::RemoveSandbox { name: "demo".into() }).await;
    let mine = SandboxSettings {
        name: "demo".into(),
        server: "https://sandboxes.example.com".into(),
        auth: AuthSettings::None,
        remote_folder: "/workspace".into(),
        allow_insecure_http: false,
    };
    let reply = call(&app, Request::SaveSandbox { original: None, settings: mine }).await;
    assert!(!sandbox(&reply, "demo").demo);
    let refused = app.handle(Request::AddDemo).await.expect_err("a sandbox of the user's is called demo");
    assert!(refused.message.contains("rename or remove it"), "{}", refused.message);
    assert_eq!(
        sandbox(&call(&app, Request::Snapshot).await, "demo").settings.server,
        "https://sandboxes.example.com"
    );
    app.shutdown().await;
}

/// While a forward of a sandbox that is not set up for ssh is on, the sandbox shows
/// "Forwarding", not "Not connected" (which read as "nothing works" while traffic flowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_with_a_live_forward_is_not_shown_as_not_connected() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    let reply = call(&app, Request::Snapshot).await;
    let demo = sandbox(&reply, "demo");
    assert_eq!(demo.status.health, Health::NotConnected, "{}", demo.status.detail);
    let remote_port = demo.forwards[0].spec.remote_port;

    let reply = call(&app, Request::SetForward { name: "demo".into(), remote_port, on: true }).await;
    let demo = sandbox(&reply, "demo");
    assert_eq!(demo.status.health, Health::Forwarding, "{}", demo.status.detail);
    assert!(demo.status.detail.contains("Connect to set up `ssh demo`"), "{}", demo.status.detail);

    let reply = call(&app, Request::SetForward { name: "demo".into(), remote_port, on: false }).await;
    assert_eq!(sandbox(&reply, "demo").status.health, Health::NotConnected);
    app.shutdown().await;
}

/// The tray's "Stop all forwards": every running forward goes off and its port closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_all_forwards_turns_every_forward_off() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    let remote_port = sandbox(&call(&app, Request::Snapshot).await, "demo").forwards[0].spec.remote_port;
    let spec = ForwardSpec { remote_port: 40_999, local_port: 0, label: String::new(), auto_start: false };
    call(&app, Request::SaveForward { name: "demo".into(), forward: spec }).await;
    let mut bound = Vec::new();
    for port in [remote_port, 40_999] {
        let reply =
            call(&app, Request::SetForward { name: "demo".into(), remote_port: port, on: true }).await;
        let f = sandbox(&reply, "demo").forwards.iter().find(|f| f.spec.remote_port == port).unwrap().clone();
        bound.push(f.bound_port.expect("bound"));
    }
    let reply = app.handle(Request::StopAllForwards).await.unwrap();
    assert_eq!(reply.notice.as_deref(), Some("Stopped 2 forwards."));
    assert!(sandbox(&reply, "demo").forwards.iter().all(|f| !f.on));
    for port in bound {
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still open");
    }
    app.shutdown().await;
}

/// A running forward opens in the browser at its local address (and only a running one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_forward_opens_in_the_browser() {
    let home = Home::new();
    let desktop = Arc::new(Recorder::default());
    let app = service(&home, desktop.clone());
    app.run().await;
    let remote_port = sandbox(&call(&app, Request::Snapshot).await, "demo").forwards[0].spec.remote_port;
    let off = app.handle(Request::OpenForward { name: "demo".into(), remote_port }).await.unwrap_err();
    assert!(off.message.contains("turn it on first"), "{}", off.message);
    assert!(desktop.urls.lock().unwrap().is_empty());

    let reply = call(&app, Request::SetForward { name: "demo".into(), remote_port, on: true }).await;
    let bound = sandbox(&reply, "demo").forwards[0].bound_port.unwrap();
    call(&app, Request::OpenForward { name: "demo".into(), remote_port }).await;
    assert_eq!(*desktop.urls.lock().unwrap(), [format!("http://localhost:{bound}/")]);
    app.shutdown().await;
}

/// The demo's pod is this computer: a server that starts listening after the demo's first port
/// scan is new. With the demo's auto-forward on, the next scan (Refresh scans the sandboxes
/// that are ready) saves and starts a forward to it on a free local port (the same port would be
/// the pod's listener itself), and bytes go through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_starts_listening_is_forwarded_with_auto_forward() {
    let home = Home::new();
    let app = service(&home, Arc::new(Recorder::default()));
    app.run().await;
    call(&app, Request::Connect { name: "demo".into() }).await;
    let reply = call(&app, Request::SetAutoForward { name: "demo".into(), on: true }).await;
    assert!(sandbox(&reply, "demo").auto_forward);
    // The first scan: what listens already is offered, not forwarded.
    let reply = call(&app, Request::Refresh).await;
    let demo = sandbox(&reply, "demo");
    assert!(!demo.detected_ports.is_empty(), "at least the demo's page server listens");
    let saved = demo.forwards.len();

    let echo = echo_server();
    let reply = call(&app, Request::Refresh).await;
    let demo = sandbox(&reply, "demo");
    assert!(demo.forwards.len() > saved);
    let forward = demo.forwards.iter().find(|f| f.spec.remote_port == echo).expect("forwarded as found");
    assert!(forward.on, "{forward:?}");
    let local = forward.bound_port.expect("listening");
    assert_ne!(local, echo);
    assert!(demo.detected_ports.iter().any(|p| p.port == echo && p.forwarded));

    let mut through = TcpStream::connect(("127.0.0.1", local)).unwrap();
    through.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    through.write_all(b"ping").unwrap();
    let mut answer = [0u8; 4];
    through.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ping");
    app.shutdown().await;
}
