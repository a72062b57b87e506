//! The control channel between the app's processes, end to end on this OS's local socket: a
//! Unix socket here, a named pipe on Windows (`scripts/wine-test.sh` runs these under Wine).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::GenericFilePath;
use sandbox_core::paths::Paths;
use sandbox_core::setup::Installation;
use sandbox_core::ssh_config::Platform;
use sandbox_desk::control::{ControlClient, ControlServer, ServeError};
use sandbox_desk::protocol::{AuthSettings, Outcome, Request, SandboxSettings};
use sandbox_desk::{Desktop, Service, ServiceConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A desktop that does nothing.
struct NoDesktop;

impl Desktop for NoDesktop {
    fn open_url(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn open_browser(&self, _: &str) {}
    fn find_executable(&self, _: &str) -> Option<PathBuf> {
        None
    }
    fn notify(&self, _: &str, _: &str) {}
    fn set_start_at_login(&self, _: bool) -> Result<(), sandbox_desk::desktop::AutostartError> {
        Ok(())
    }
    fn key_comment(&self) -> String {
        "test@laptop".into()
    }
}

fn service(home: &Path) -> Service {
    Service::new(ServiceConfig {
        install: Installation {
            paths: Paths::from_home(home),
            binary: PathBuf::from("sandbox-forward"),
            platform: Platform::current(),
            prefer_keychain: false,
        },
        desktop: Arc::new(NoDesktop),
        agent_binary: None,
    })
}

/// Binds the control socket of `home` and serves a fresh service on it until the task ends.
async fn serve(home: &Path) -> (PathBuf, tokio::task::JoinHandle<()>) {
    let socket = Paths::from_home(home).control_socket();
    let server = ControlServer::bind(&socket).await.expect("bind the control socket");
    (socket, tokio::spawn(server.run(service(home))))
}

/// A raw connection, for what `ControlClient` never sends.
async fn raw(socket: &Path) -> Stream {
    Stream::connect(socket.as_os_str().to_fs_name::<GenericFilePath>().unwrap()).await.unwrap()
}

/// A loopback port nothing listens on: probes of a sandbox there fail at once, offline.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn each_home_has_its_own_socket() {
    let a = Paths::from_home(Path::new("/home/a")).control_socket();
    let b = Paths::from_home(Path::new("/home/b")).control_socket();
    assert_ne!(a, b);
    if cfg!(windows) {
        // One machine-wide namespace: the name is derived from the config dir.
        assert!(a.to_string_lossy().starts_with(r"\\.\pipe\sandbox-forward-"), "{a:?}");
    } else {
        assert_eq!(a, Path::new("/home/a/.config/sandbox/run/control.sock"));
    }
}

#[tokio::test]
async fn requests_and_answers_cross_the_socket() {
    let home = tempfile::tempdir().unwrap();
    let (socket, task) = serve(home.path()).await;
    let client = ControlClient::new(socket);
    assert!(client.is_served().await);

    let reply = client.call(&Request::Snapshot).await.expect("a snapshot");
    assert!(reply.snapshot.sandboxes.is_empty());

    let settings = |name: &str| SandboxSettings {
        name: name.into(),
        server: format!("http://127.0.0.1:{}", closed_port()),
        auth: AuthSettings::None,
        remote_folder: String::new(),
        allow_insecure_http: false,
    };
    let save = |name: &str| Request::SaveSandbox { original: None, settings: settings(name) };
    let reply = client.call(&save("staging")).await.expect("saved");
    let names: Vec<_> = reply.snapshot.sandboxes.iter().map(|s| s.settings.name.as_str()).collect();
    assert_eq!(names, ["staging"]);
    assert!(reply.notice.as_deref().is_some_and(|n| n.contains("staging")), "{:?}", reply.notice);

    // A refusal comes back as the action's error, one sentence.
    let error = client.call(&save("not a name!")).await.expect_err("a bad name is refused");
    assert!(error.message.contains("invalid sandbox name"), "{}", error.message);

    // A later connection sees the same state: the tray process owns it.
    let reply = ControlClient::new(Paths::from_home(home.path()).control_socket())
        .call(&Request::Snapshot)
        .await
        .unwrap();
    assert_eq!(reply.snapshot.sandboxes.len(), 1);
    task.abort();
}

#[tokio::test]
async fn one_connection_carries_many_requests_and_malformed_ones_get_an_error() {
    let home = tempfile::tempdir().unwrap();
    let (socket, task) = serve(home.path()).await;
    let stream = raw(&socket).await;
    let mut lines = BufReader::new(&stream);
    let mut answer = String::new();
    for line in ["{\"kind\":\"snapshot\"}\n", "{\"kind\":\"selfDestruct\"}\n", "{\"kind\":\"refresh\"}\n"] {
        (&stream).write_all(line.as_bytes()).await.unwrap();
        answer.clear();
        lines.read_line(&mut answer).await.unwrap();
        let outcome: Outcome = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
        match outcome {
            Err(e) if line.contains("selfDestruct") => {
                assert!(e.message.contains("malformed request"), "{}", e.message)
            }
            Ok(_) if !line.contains("selfDestruct") => {}
            other => panic!("{line:?} answered {other:?}"),
        }
    }
    task.abort();
}

#[tokio::test]
async fn a_second_server_finds_the_first_running() {
    let home = tempfile::tempdir().unwrap();
    let (socket, task) = serve(home.path()).await;
    match ControlServer::bind(&socket).await {
        Err(ServeError::AlreadyRunning) => {}
        Err(e) => panic!("not AlreadyRunning: {e}"),
        Ok(_) => panic!("a second server bound the socket of a running one"),
    }
    // The first one still answers.
    assert!(ControlClient::new(socket.clone()).call(&Request::Snapshot).await.is_ok());

    // Once it is gone, a new one takes over (on Unix, over the socket file it left).
    task.abort();
    let _ = task.await;
    let (socket, task) = serve(home.path()).await;
    assert!(ControlClient::new(socket).call(&Request::Snapshot).await.is_ok());
    task.abort();
}

#[tokio::test]
async fn without_a_server_the_client_says_the_tray_process_is_not_running() {
    let home = tempfile::tempdir().unwrap();
    let client = ControlClient::new(Paths::from_home(home.path()).control_socket());
    assert!(!client.is_served().await);
    let error = client.call(&Request::Snapshot).await.expect_err("nobody serves");
    assert!(error.message.contains("tray process is not running"), "{}", error.message);
}

#[tokio::test]
async fn a_request_over_one_mib_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let (socket, task) = serve(home.path()).await;
    let stream = raw(&socket).await;
    // Valid JSON, but its first MiB is blanks: read whole, it would be a snapshot request.
    let mut line = vec![b' '; (1 << 20) + 16];
    line.extend_from_slice(b"{\"kind\":\"snapshot\"}\n");
    let (read, mut write) = (&stream, &stream);
    let writer = async move { write.write_all(&line).await };
    let reader = async {
        let mut reader = BufReader::new(read);
        let (mut answer, mut after) = (String::new(), String::new());
        reader.read_line(&mut answer).await?;
        // The rest of the line is never carried out as a request of its own: the server hangs up
        // (an end of stream, or a reset or broken pipe since our bytes were left unread).
        let hung_up = match reader.read_line(&mut after).await {
            Ok(read) => read == 0,
            Err(e) => {
                use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
                matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
            }
        };
        Ok::<_, std::io::Error>((answer, after, hung_up))
    };
    let (written, answers) = tokio::join!(writer, reader);
    let (answer, after, hung_up) = answers.unwrap();
    let outcome: Outcome = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    let error = outcome.expect_err("an over-long request is not carried out");
    assert!(error.message.contains("request too long"), "{}", error.message);
    assert!(hung_up && after.is_empty(), "nothing more is answered on that connection: {after}");
    // The server may answer before it has read everything; a short write is fine then.
    let _ = written;
    task.abort();
}

#[cfg(unix)]
#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let home = tempfile::tempdir().unwrap();
    let socket = Paths::from_home(home.path()).control_socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    // What a crashed tray process leaves: a socket nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let (socket, task) = serve(home.path()).await;
    assert!(ControlClient::new(socket).call(&Request::Snapshot).await.is_ok());
    task.abort();
}
