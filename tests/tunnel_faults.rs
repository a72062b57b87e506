//! The tunnel under faults (issue 13): in protocol v1 a tunnel that breaks reaches the local
//! application as a broken connection (RST, non-zero exit), never as a clean end; in v2 the
//! same faults pass unnoticed (the tunnel resumes); and in both a local side that finishes
//! sending still gets the whole reply (half-close). Faults come from
//! `support::fault::FaultProxy` between the CLI and the agent.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design).
#![cfg(unix)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use sandbox_tests::fault::FaultProxy;
use sandbox_tests::{
    api_client, echo_server, eventually, free_port, stderr, stdout, wait, Agent, Guard, Home,
};

const T: Duration = Duration::from_secs(15);
/// What the download server sends: far more than the socket buffers on the way hold.
const DOWNLOAD: usize = 256 << 20;

/// A server "in the pod" that sends [`DOWNLOAD`] bytes to each connection, then closes.
fn download_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let chunk = vec![7u8; 64 * 1024];
                let mut sent = 0;
                while sent < DOWNLOAD && c.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
            });
        }
    });
    port
}

/// A server "in the pod" that reads its request to EOF, waits `delay`, then answers with a
/// line naming the request's size followed by `extra` bytes, and closes (as `nc -q`, an HTTP/1.0
/// server reading a body to EOF, or a `wc`-like service do).
fn reply_after_eof_server(delay: Duration, extra: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut request = Vec::new();
                if c.read_to_end(&mut request).is_err() {
                    return;
                }
                std::thread::sleep(delay);
                let _ = c.write_all(format!("got {} bytes\n", request.len()).as_bytes());
                let _ = c.write_all(&vec![b'x'; extra]);
            });
        }
    });
    port
}

/// Tunnel protocol versions the client can be held to.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    V1,
    V2,
}

/// `sandbox-forward proxy --server URL --port PORT` plus `args`, its pipes as given, in
/// protocol v1 (these are v1's fault semantics; see [`proxy_in`]).
fn proxy(home: &Home, server: &str, port: u16, args: &[&str]) -> std::process::Command {
    proxy_in(Protocol::V1, home, server, port, args)
}

fn proxy_in(p: Protocol, home: &Home, server: &str, port: u16, args: &[&str]) -> std::process::Command {
    let mut c = home.cli(&["proxy", "--server", server, "--port", &port.to_string()]);
    c.args(args);
    if let Protocol::V1 = p {
        c.env("SANDBOX_FORWARD_TUNNEL_PROTOCOL", "v1");
    }
    c
}

/// Starts `proxy --port` listening on a free local port and waits until it accepts.
fn forward(home: &Home, server: &str, port: u16) -> (Guard, u16) {
    forward_in(Protocol::V1, home, server, port)
}

fn forward_in(p: Protocol, home: &Home, server: &str, port: u16) -> (Guard, u16) {
    let local = free_port();
    let child = proxy_in(p, home, server, port, &["--local-port", &local.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Guard { child, name: "proxy --port" };
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", local)).is_ok()), "forward never listened");
    (guard, local)
}

/// Reads `n` bytes, then hands the connection back.
fn read_some(c: &mut TcpStream, n: usize) {
    let mut buf = vec![0u8; n];
    c.read_exact(&mut buf).expect("the first bytes of the download");
}

/// Reads to the end; returns how many bytes came and how the stream ended.
fn drain(c: &mut TcpStream) -> (usize, std::io::Result<()>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got += n,
            Err(e) => return (got, Err(e)),
        }
    }
}

#[test]
fn a_reset_mid_download_reaches_the_local_app_as_a_reset_not_an_end() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let home = Home::new();
    let (_proxy, local) = forward(&home, &fault.url(), download_server());

    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    read_some(&mut c, 4 << 20);
    let before = fault.accepted();
    fault.reset_all();
    let (got, end) = drain(&mut c);
    assert!(got + (4 << 20) < DOWNLOAD, "the whole download arrived despite the reset");
    let err = end.expect_err("a download cut by a reset ended like a complete one");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");

    // The forward itself carries on: the next connection gets a fresh tunnel.
    let mut again = TcpStream::connect(("127.0.0.1", local)).unwrap();
    again.set_read_timeout(Some(T)).unwrap();
    read_some(&mut again, 1 << 20);
    assert!(fault.accepted() > before, "the second connection did not go through the proxy");
}

/// Protocol v2: the same resets pass unnoticed — the download arrives whole, byte for byte.
#[test]
fn in_v2_resets_mid_download_resume_and_every_byte_arrives() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let home = Home::new();
    let (_proxy, local) = forward_in(Protocol::V2, &home, &fault.url(), download_server());

    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 20];
    let mut resets = 0;
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                assert!(buf[..n].iter().all(|&b| b == 7), "a byte changed on the way");
                got += n;
            }
            Err(e) => panic!("the download broke after {got} bytes and {resets} resets: {e}"),
        }
        // Five resets spread over the download.
        if resets < 5 && got > (resets + 1) * (DOWNLOAD / 7) {
            fault.reset_all();
            resets += 1;
        }
    }
    assert_eq!(resets, 5);
    assert_eq!(got, DOWNLOAD, "the download ended early");
    assert!(fault.accepted() >= 6, "the resets did not cut the tunnel: {} connections", fault.accepted());
}

#[test]
fn an_agent_killed_mid_download_reaches_the_local_app_as_a_reset() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let home = Home::new();
    let (_proxy, local) = forward(&home, &agent.url(), download_server());

    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    read_some(&mut c, 4 << 20);
    drop(agent);
    let (got, end) = drain(&mut c);
    assert!(got + (4 << 20) < DOWNLOAD, "the whole download arrived despite the kill");
    let err = end.expect_err("a download cut by the agent's death ended like a complete one");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

/// Waits for a `proxy --stdio` whose stdout we drain meanwhile (it would block on a full pipe).
fn finish(mut child: Child) -> (usize, std::process::Output) {
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got
    });
    let o = wait(child, T);
    (reader.join().unwrap(), o)
}

/// `proxy --stdio` carrying a download through `fault`, reset after the first 4 MiB: the
/// download is cut and the proxy fails. Returns what it printed.
fn stdio_download_cut_by_a_reset(home: &Home, fault: &FaultProxy, extra: &[&str]) -> std::process::Output {
    let args: Vec<&str> = ["--stdio"].into_iter().chain(extra.iter().copied()).collect();
    let mut child = proxy(home, &fault.url(), download_server(), &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take().unwrap();
    let mut first = vec![0u8; 4 << 20];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    fault.reset_all();
    let (rest, o) = finish(child);
    assert!(first.len() + rest < DOWNLOAD, "the whole download arrived despite the reset");
    assert!(!o.status.success(), "a reset tunnel exited 0; stderr: {}", stderr(&o));
    o
}

#[test]
fn proxy_stdio_exits_non_zero_naming_the_cause_when_the_tunnel_is_reset() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let home = Home::new();
    let o = stdio_download_cut_by_a_reset(&home, &fault, &[]);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("reset"), "the cause is not named: {err}");
    assert!(err.contains("reconnect"), "nothing says what to do: {err}");
    eprintln!("{err}");
}

#[test]
fn half_close_a_local_eof_still_gets_the_whole_reply() {
    half_close(Protocol::V1);
}

#[test]
fn half_close_in_v2_a_local_eof_still_gets_the_whole_reply() {
    half_close(Protocol::V2);
}

fn half_close(p: Protocol) {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let home = Home::new();
    // `printf 'GET / HTTP/1.0\r\n\r\n' | sandbox-forward proxy --port N --stdio`, against a
    // server that answers only once the request has ended, and only after 6 s (longer than the
    // 5 s the client used to wait after its EOF).
    let slow = reply_after_eof_server(Duration::from_secs(6), 0);
    let mut child = proxy_in(p, &home, &agent.url(), slow, &["--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let o = wait(child, T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "got 18 bytes\n");

    // The same through `proxy --port`, with a reply larger than every buffer on the way.
    let big = 8 << 20;
    let (_proxy, local) = forward_in(p, &home, &agent.url(), reply_after_eof_server(Duration::ZERO, big));
    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(&[1u8; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).expect("a clean end after the whole reply");
    assert_eq!(reply.len(), "got 100000 bytes\n".len() + big);
    assert!(reply.starts_with(b"got 100000 bytes\n"));
}

#[test]
fn the_fault_proxy_stalls_refuses_resets_and_resumes() {
    let fault = FaultProxy::start(echo_server());
    let mut c = TcpStream::connect(("127.0.0.1", fault.port())).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 4];
    c.write_all(b"ping").unwrap();
    c.read_exact(&mut buf).unwrap();

    // A black hole: nothing arrives, nothing closes; then the held bytes flow again.
    fault.stall();
    c.write_all(b"held").unwrap();
    let err = c.read(&mut buf).expect_err("bytes crossed a stalled proxy");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    fault.resume();
    c.set_read_timeout(Some(T)).unwrap();
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held");

    // Refusing: new connections fail, the open one still works; then new ones are accepted.
    fault.refuse();
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_err()));
    c.write_all(b"open").unwrap();
    c.read_exact(&mut buf).unwrap();
    fault.resume();
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", fault.port())).is_ok()));

    // A reset reaches the client as a reset.
    fault.reset_all();
    let err = c.read(&mut buf).expect_err("the connection survived a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

/// The proxy also serves tests that run on a tokio runtime (it keeps a runtime of its own).
#[tokio::test]
async fn the_fault_proxy_starts_and_stops_inside_a_runtime() {
    let fault = FaultProxy::start(echo_server());
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", fault.port())).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.unwrap();
    drop(fault);
    // Dropped: its sockets are closed.
    assert!(matches!(c.read(&mut buf).await, Ok(0) | Err(_)));
}

/// The production path, nginx in front of the agent, with the faults between the CLI and nginx:
/// half-close passes through nginx (it only relays the frames), and a reset still reaches the
/// local application as a reset.
#[test]
fn through_the_nginx_gateway_half_close_and_resets_behave_the_same() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let gateway = sandbox_tests::gateway::Gateway::start(agent.port, "good-token-1d2c", "alice");
    let fault = FaultProxy::start(gateway.port);
    let home = Home::new();
    let token = home.path().join("token");
    std::fs::write(&token, "good-token-1d2c\n").unwrap();
    let token = token.display().to_string();

    let mut child =
        proxy(&home, &fault.url(), reply_after_eof_server(Duration::from_millis(200), 1 << 20), &[])
            .args(["--stdio", "--bearer-file", &token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    child.stdin.take().unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let o = wait(child, T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.starts_with(b"got 18 bytes\n"), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), "got 18 bytes\n".len() + (1 << 20));

    let o = stdio_download_cut_by_a_reset(&home, &fault, &["--bearer-file", &token]);
    assert!(stderr(&o).contains("reset"), "{}", stderr(&o));
}

/// `proxy --ssh` (the ProxyCommand) likewise: ssh hears the pod's banner, the tunnel is reset,
/// and the ProxyCommand exits non-zero with one line naming the cause, which ssh shows.
#[test]
fn proxy_ssh_exits_non_zero_naming_the_cause_when_the_tunnel_is_reset() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let home = Home::new();
    let mut child = home
        .cli(&["proxy", "--ssh", "--server", &fault.url()])
        .env("SANDBOX_FORWARD_TUNNEL_PROTOCOL", "v1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take().unwrap();
    let mut banner = [0u8; 8];
    child.stdout.as_mut().unwrap().read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    fault.reset_all();
    let (_, o) = finish(child);
    assert!(!o.status.success(), "a reset tunnel exited 0; stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("reset") && err.contains("reconnect"), "{err}");
}

/// The other way round: an upload cut by a broken tunnel reaches the server in the pod as a
/// reset too (the agent resets its connection to the target), not as a complete request.
#[test]
fn a_reset_mid_upload_reaches_the_pod_server_as_a_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let pod_port = listener.local_addr().unwrap().port();
    let (ended, how) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let ended = ended.clone();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(T)).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0;
                let end = loop {
                    match c.read(&mut buf) {
                        Ok(0) => break Ok(got),
                        Ok(n) => got += n,
                        Err(e) => break Err(e.kind()),
                    }
                };
                // The forward's readiness probe also comes through, empty: only the upload counts.
                if end != Ok(0) {
                    let _ = ended.send(end);
                }
            });
        }
    });
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let home = Home::new();
    let (_proxy, local) = forward(&home, &fault.url(), pod_port);
    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.write_all(&vec![3u8; 4 << 20]).unwrap();
    fault.reset_all();
    let end = how.recv_timeout(T).expect("the pod server saw an end");
    assert_eq!(end, Err(ErrorKind::ConnectionReset), "a cut upload ended like a complete one");
}

/// What the app shows: while a forwarded connection's tunnel resumes, its forward reports
/// since when ("reconnecting (N s)…"); once the network is back, that clears and the same
/// connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_reports_reconnecting_while_its_tunnel_resumes() {
    use sandbox_core::forward::{bind_local, serve, ForwardStats};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let fault = FaultProxy::start(agent.port);
    let api = api_client(&fault.url());
    let listener = bind_local(0).await.unwrap();
    let local = listener.local_addr().unwrap();
    let stats = std::sync::Arc::new(ForwardStats::default());
    let serving = tokio::spawn(serve(listener, api, echo_server(), stats.clone(), Default::default()));

    let mut c = tokio::net::TcpStream::connect(local).await.unwrap();
    let mut buf = [0u8; 4];
    c.write_all(b"one!").await.unwrap();
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(stats.resuming.since(), None, "reconnecting before anything broke");

    // The network drops and stays down: every new connection is refused.
    fault.refuse();
    fault.reset_all();
    let deadline = std::time::Instant::now() + T;
    while stats.resuming.since().is_none() {
        assert!(std::time::Instant::now() < deadline, "the forward never said it was reconnecting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let waited = stats.resuming.since().expect("still reconnecting while the network is down").elapsed();
    assert!(waited >= Duration::from_secs(1), "{waited:?}");

    // Back: the same connection carries on, and the forward is no longer reconnecting.
    fault.heal();
    c.write_all(b"two!").await.unwrap();
    tokio::time::timeout(T, c.read_exact(&mut buf))
        .await
        .expect("echoed after the network came back")
        .unwrap();
    assert_eq!(&buf, b"two!");
    assert_eq!(stats.resuming.since(), None);
    assert_eq!(stats.active.load(std::sync::atomic::Ordering::Relaxed), 1, "the connection was not replaced");
    serving.abort();
}

/// The connection "in the pod" that carries `hello` (the forward's readiness probe opened
/// another before it), with a read timeout.
fn accept_hello(pod: &TcpListener) -> TcpStream {
    loop {
        let (mut s, _) = pod.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = [0u8; 5];
        if s.read_exact(&mut hello).is_ok() && &hello == b"hello" {
            return s;
        }
    }
}

/// How the pod's side of a connection ended within `within`: `Some` EOF or reset, `None` if it
/// is still open.
fn pods_side_ended(inside: &mut TcpStream, within: Duration) -> Option<std::io::Result<usize>> {
    inside.set_read_timeout(Some(within)).unwrap();
    match inside.read(&mut [0u8; 64]) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        other => Some(other),
    }
}

/// Ctrl-C on `proxy --port` ends the pod's side of each open connection at once. A v2 tunnel
/// that is merely dropped is held open by the agent for its resume window (120 s) — a debugger
/// that takes one client, or a server counting sessions, would see a ghost for two minutes.
#[test]
fn stopping_proxy_port_ends_the_pods_side_at_once_in_v2() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let home = Home::new();
    let pod = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut proxy, local) = forward_in(Protocol::V2, &home, &agent.url(), pod.local_addr().unwrap().port());
    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut inside = accept_hello(&pod);

    let stopped = std::time::Instant::now();
    let sigint =
        std::process::Command::new("kill").args(["-INT", &proxy.pid().to_string()]).status().unwrap();
    assert!(sigint.success());
    let ended = pods_side_ended(&mut inside, Duration::from_secs(5));
    assert!(ended.is_some(), "the pod's side was still open 5 s after Ctrl-C (held for a resume)");
    assert!(stopped.elapsed() < Duration::from_secs(3), "took {:?}", stopped.elapsed());
    assert!(eventually(T, || proxy.exited().is_some()), "proxy --port did not exit after Ctrl-C");
    assert!(proxy.exited().unwrap().success());
}

/// The app and `sandbox-forward up` stop a forward through `Forwards::stop`: the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_forward_ends_the_pods_side_at_once_in_v2() {
    use sandbox_core::forwards::Forwards;
    use sandbox_core::forwards::PortForward;

    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let api = api_client(&agent.url());
    let pod = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = pod.local_addr().unwrap().port();
    let forwards = Forwards::new();
    let name = sandbox_core::name::SandboxName::new("pod").unwrap();
    let spec = PortForward { remote_port, local_port: 0, label: String::new(), auto_start: false };
    let local = forwards.start(&name, api, &spec).await.unwrap();

    let inside = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
        c.write_all(b"hello").unwrap();
        (c, accept_hello(&pod))
    });
    let (_c, mut inside) = inside.await.unwrap();
    assert!(forwards.stop(&name, remote_port).await);
    let ended = tokio::task::spawn_blocking(move || pods_side_ended(&mut inside, Duration::from_secs(3)));
    assert!(ended.await.unwrap().is_some(), "the pod's side was still open 3 s after the forward stopped");
}
