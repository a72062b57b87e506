//! What a hostile or broken client can cost a real `sandbox-agent` process: slow headers and
//! stalled bodies are cut off, connections beyond the cap wait their turn, running out of file
//! descriptors neither spams the log nor stops the agent for good, and the tunnel's WebSocket
//! is strict about close codes, text messages and methods.
//!
//! Every agent is a child process killed by PID when its guard drops, also on failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sandbox_test_support::aio::echo_server;
use sandbox_test_support::AgentProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A `sandbox-agent --dev-mode` child; killed by PID and reaped on drop.
struct Agent {
    _process: AgentProcess,
    port: u16,
    /// Everything it logged (stderr), line by line.
    log: Arc<Mutex<Vec<String>>>,
    _workspace: tempfile::TempDir,
}

/// `sandbox-agent --dev-mode` logging at `info` without colour, on a port the system picks.
fn agent_command(workspace: &Path) -> Command {
    let mut cmd =
        sandbox_test_support::agent_command(Path::new(env!("CARGO_BIN_EXE_sandbox-agent")), workspace, 0);
    cmd.arg("--dev-mode").env("SANDBOX_AGENT_LOG", "info").stderr(Stdio::piped());
    cmd
}

impl Agent {
    /// Starts an agent with `flags`; with `nofile`, under that RLIMIT_NOFILE (soft and hard).
    fn start(flags: &[&str], nofile: Option<u64>) -> Agent {
        let workspace = tempfile::tempdir().unwrap();
        let mut cmd = agent_command(workspace.path());
        cmd.args(flags).env("NO_COLOR", "1");
        if let Some(limit) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).map_err(Into::into)
                });
            }
        }
        let mut process = AgentProcess::start(cmd);
        let stderr = process.guard.child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Agent { port: process.port, _process: process, log, _workspace: workspace }
    }

    fn log_lines_containing(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }
}

/// Reads until the peer closes (EOF or reset), or `limit` passes; returns what arrived and
/// whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const SSH_PORT_REQUEST: &[u8] = b"GET /api/ssh-port HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends one keep-alive request and reads its response head and body (a 200 JSON answer).
async fn ssh_port_answered(s: &mut TcpStream, limit: Duration) -> bool {
    if s.write_all(SSH_PORT_REQUEST).await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !String::from_utf8_lossy(&got).contains("host_key") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn a_slowloris_client_and_an_idle_keep_alive_connection_are_closed() {
    let agent = Agent::start(&["--header-timeout", "2"], None);

    // One byte of header every 300 ms: never complete, never silent.
    let mut slow = agent.connect().await;
    slow.write_all(b"GET /api/ssh-port HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let dripping = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(8), dripping).await;
    let (_, closed) = read_until_closed(&mut slow, Duration::from_millis(500)).await;
    assert!(closed, "a client dripping its headers was still connected after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());

    // Served once, then idle: closed after the same timeout.
    let mut idle = agent.connect().await;
    assert!(ssh_port_answered(&mut idle, Duration::from_secs(5)).await);
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(6)).await;
    assert!(closed, "an idle keep-alive connection was still open after 6 s");
    assert!(started.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_its_connection_closed() {
    let agent = Agent::start(&["--request-timeout", "2"], None);
    for length in ["100", "1000000000000"] {
        let mut s = agent.connect().await;
        let head = format!(
            "POST /api/ssh-authorized-keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(8)).await;
        assert!(closed, "Content-Length {length} and one byte: still open after 8 s ({answer:?})");
        assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
        // Refused outright (a length over the key cap) or timed out: never served, never left hanging.
        let status: u16 = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(matches!(status, 408 | 413 | 400 | 0), "{answer}");
    }
}

#[tokio::test]
async fn beyond_the_connection_cap_a_request_waits_until_a_connection_closes() {
    let echo_port = echo_server().await;
    let agent = Agent::start(&["--max-connections", "2", "--header-timeout", "30"], None);

    // Two places taken: a silent connection and a running tunnel.
    let silent = agent.connect().await;
    let url = format!("ws://127.0.0.1:{}/api/port-forward?port={echo_port}", agent.port);
    let (mut tunnel, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    tunnel.send(Message::binary(b"ping".to_vec())).await.unwrap();
    assert!(matches!(tunnel.next().await, Some(Ok(Message::Binary(b))) if &b[..] == b"ping"));

    // A third waits in the backlog, unanswered…
    let mut third = agent.connect().await;
    assert!(!ssh_port_answered(&mut third, Duration::from_secs(1)).await, "served beyond the cap");
    // …until the tunnel (not just its HTTP exchange) ends.
    drop(silent);
    let mut fourth = agent.connect().await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&buf).contains("host_key") {
        match tokio::time::timeout_at(deadline, third.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            other => panic!("the waiting request was not served once a slot freed: {other:?}"),
        }
    }
    assert!(
        !ssh_port_answered(&mut fourth, Duration::from_secs(1)).await,
        "the tunnel's slot was freed early"
    );
    tunnel.close(None).await.unwrap();
    drop(tunnel);
    assert!(
        ssh_port_answered(&mut fourth, Duration::from_secs(5)).await,
        "not served after the tunnel ended"
    );
}

/// Opens `n` connections that send nothing.
async fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    held
}

#[tokio::test]
async fn out_of_file_descriptors_the_agent_backs_off_quietly_and_serves_again() {
    // A cap above what 64 descriptors allow, so `accept` itself fails with EMFILE.
    let agent = Agent::start(&["--max-connections", "1000", "--header-timeout", "30"], Some(64));
    let held = flood(agent.port, 120).await;
    let mut legit = agent.connect().await;
    legit.write_all(SSH_PORT_REQUEST).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let complaints = agent.log_lines_containing("Too many open files");
    assert!(complaints >= 1, "EMFILE was never hit or never logged: {:?}", agent.log.lock().unwrap());
    assert!(complaints <= 2, "{complaints} log lines about EMFILE in 2 s");
    drop(held);
    let (answer, _) = tokio::time::timeout(Duration::from_secs(6), async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("host_key") {
            let n = legit.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            got.extend_from_slice(&buf[..n]);
        }
        (String::from_utf8_lossy(&got).into_owned(), ())
    })
    .await
    .expect("the queued request was not served after the flood ended");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut again = agent.connect().await;
    assert!(ssh_port_answered(&mut again, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_default_cap_keeps_clear_of_the_descriptor_limit() {
    let agent = Agent::start(&["--header-timeout", "30"], Some(64));
    let held = flood(agent.port, 120).await;
    let mut legit = agent.connect().await;
    legit.write_all(SSH_PORT_REQUEST).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent.log_lines_containing("Too many open files"), 0, "{:?}", agent.log.lock().unwrap());
    drop(held);
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), legit.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// A raw tungstenite client with an open tunnel to an echo server in the "pod".
async fn open_tunnel(
    agent: &Agent,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let echo_port = echo_server().await;
    let url = format!("ws://127.0.0.1:{}/api/port-forward?port={echo_port}", agent.port);
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// The agent's Close code, after whatever else it sent.
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<CloseCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_text_message_closes_the_tunnel_with_1003() {
    let agent = Agent::start(&[], None);
    let mut ws = open_tunnel(&agent).await;
    ws.send(Message::text("not bytes")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));
}

#[tokio::test]
async fn a_close_code_no_endpoint_may_send_closes_with_1002() {
    let agent = Agent::start(&[], None);
    for code in [999u16, 5000, 1005, 1006, 2000] {
        let mut ws = open_tunnel(&agent).await;
        // By hand: tungstenite would not send these. FIN + Close, masked, 2-byte payload.
        let mask = [0x11, 0x22, 0x33, 0x44];
        let [hi, lo] = code.to_be_bytes();
        let frame = [0x88, 0x82, mask[0], mask[1], mask[2], mask[3], hi ^ mask[0], lo ^ mask[1]];
        let raw = match ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(s) => s,
            _ => unreachable!("plain ws://"),
        };
        raw.write_all(&frame).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Protocol), "close code {code}");
    }
    // A valid code is answered in kind.
    let mut ws = open_tunnel(&agent).await;
    ws.send(Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Library(4000),
        reason: "".into(),
    })))
    .await
    .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Library(4000)));
}

#[tokio::test]
async fn only_a_get_opens_a_tunnel() {
    let agent = Agent::start(&[], None);
    for method in ["POST", "PUT", "DELETE"] {
        let mut s = agent.connect().await;
        let req = format!(
            "{method} /api/port-forward?port=2222 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Content-Length: 0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 405"), "{method}: {answer}");
    }
}

/// A pod's log collector reads the agent's stderr through a pipe: no colour escapes there, even
/// without `NO_COLOR` (they were stored raw).
#[test]
fn logs_through_a_pipe_carry_no_colour_codes() {
    let workspace = tempfile::tempdir().unwrap();
    let mut cmd = agent_command(workspace.path());
    cmd.env_remove("NO_COLOR");
    // Killed by PID on drop, also if an assertion fails. The first stdout line comes after the
    // start-up log (the dev-mode warning among it).
    let mut agent = AgentProcess::start(cmd);
    let _ = agent.guard.child.kill();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut agent.guard.child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("dev mode"), "no start-up log to check: {log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a piped log: {log:?}");
}
