//! Tunnels that survive the network (issue 13, protocol v2): a real `sandbox-agent`, the real
//! CLI as ProxyCommand and the real OpenSSH client through the written `~/.ssh/config`, with
//! `support::fault::FaultProxy` between the CLI and the agent playing the network: black holes,
//! resets, a proxy restart, resets mid-transfer; plus the ProxyCommand stopped as a sleeping
//! laptop's is, the fallbacks to v1 either way, and a resume window that passes.
//!
//! The long scenarios mostly sleep; `cargo test` runs them side by side. Every process is
//! stopped by PID when its guard drops, also when a test fails half-way.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and signals.
#![cfg(unix)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox_tests::fault::{Dir, FaultProxy};
use sandbox_tests::{echo_server, eventually, free_port, ok, run, stderr, stdout, wait, Agent, Guard, Home};

/// The sandbox's name in the ssh config.
const NAME: &str = "box";
/// Deadline of the quick commands.
const T: Duration = Duration::from_secs(30);
/// How long the first bytes after a fault may take to come through once the network is back
/// (the target is under a second; this leaves room for a loaded CI machine).
const RECOVERY: Duration = Duration::from_secs(5);
/// The env var that makes the CLI speak protocol v1 only.
const PROTOCOL_ENV: &str = "SANDBOX_FORWARD_TUNNEL_PROTOCOL";

/// An agent (`--dev-mode`, plus `agent_args`) behind a fault proxy, and a home whose ssh config
/// reaches it as `box` through the proxy.
struct Pod {
    home: Home,
    agent: Agent,
    fault: FaultProxy,
    _workspace: tempfile::TempDir,
}

impl Pod {
    fn start(agent_args: &[&str]) -> Pod {
        let workspace = tempfile::tempdir().unwrap();
        let mut args = vec!["--dev-mode"];
        args.extend_from_slice(agent_args);
        let agent = Agent::start(workspace.path(), 0, &args);
        let fault = FaultProxy::start(agent.port);
        let home = Home::new();
        ok(&run(home.cli(&["ssh-setup", NAME, "--server", &fault.url()]), T));
        Pod { home, agent, fault, _workspace: workspace }
    }

    /// `ssh` through the written config; ssh's own notices off, so what stderr holds is ours.
    fn ssh(&self, args: &[&str]) -> Command {
        let mut c = self.home.ssh("ssh", &["-o", "LogLevel=ERROR"]);
        c.args(args);
        c
    }

    /// How many times the ProxyCommand logged a resumed tunnel (`proxy --ssh` logs to a file
    /// under the state directory, never to ssh's terminal).
    fn resumed_in_log(&self) -> usize {
        let log = self.home.path().join(".config/sandbox/logs/proxy.log");
        std::fs::read_to_string(log).unwrap_or_default().matches("tunnel resumed").count()
    }

    /// `ssh box CMD`, its stdout read line by line as it comes.
    fn ssh_streaming(&self, cmd: &str, env: &[(&str, &str)]) -> Session {
        let mut c = self.ssh(&[NAME, cmd]);
        c.envs(env.iter().copied());
        Session::spawn(c, None)
    }

    /// A forward (`proxy --port`, through the fault proxy) to an echo server in the pod, its
    /// stderr to `stderr`; its guard and local port, once it listens.
    fn forward_to_echo(&self, stderr: Stdio) -> (Guard, u16) {
        let local = free_port();
        let child = self
            .home
            .cli(&["proxy", "--server", &self.fault.url(), "--port", &echo_server().to_string()])
            .args(["--local-port", &local.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let guard = Guard { child, name: "proxy --port" };
        assert!(
            eventually(T, || TcpStream::connect(("127.0.0.1", local)).is_ok()),
            "the forward never listened"
        );
        (guard, local)
    }
}

/// A running ssh whose stdout lines are collected as they arrive (with their arrival time).
struct Session {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    errors: Option<std::thread::JoinHandle<String>>,
    stdin: Option<std::process::ChildStdin>,
}

impl Session {
    fn spawn(mut c: Command, input: Option<&str>) -> Session {
        let mut child = c
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        let mut stdin = child.stdin.take();
        if let (Some(s), Some(text)) = (stdin.as_mut(), input) {
            s.write_all(text.as_bytes()).unwrap();
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        let mut err = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Session { child: Some(child), lines, reader: Some(reader), errors: Some(errors), stdin }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The numbers of the `line N` lines so far, in arrival order. On a terminal a line may
    /// start with what the shell wrote before it and a carriage return (bash ends bracketed
    /// paste with `ESC[?2004l` `CR` before the command's output): only what follows the last
    /// `CR` counts.
    fn numbered(&self) -> Vec<u32> {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter_map(|(_, l)| l.rsplit('\r').next()?.strip_prefix("line ")?.parse().ok()).collect()
    }

    /// Waits until `n` numbered lines have come.
    #[track_caller]
    fn wait_lines(&self, n: usize, timeout: Duration) {
        assert!(
            eventually(timeout, || self.numbered().len() >= n),
            "waited {timeout:?} for {n} lines, got {:?}",
            self.numbered()
        );
    }

    /// How long after `since` the next numbered line (beyond those seen at `since`) came.
    #[track_caller]
    fn next_line_after(&self, seen: usize, since: Instant, timeout: Duration) -> Duration {
        assert!(
            eventually(timeout, || self.numbered().len() > seen),
            "no line came within {timeout:?} of the network being back (had {seen})"
        );
        let lines = self.lines.lock().unwrap();
        let numbered = |l: &str| l.rsplit('\r').next().is_some_and(|l| l.starts_with("line "));
        let at = lines.iter().filter(|(_, l)| numbered(l)).nth(seen).unwrap().0;
        at.saturating_duration_since(since)
    }

    /// Waits for ssh to exit; its status, and what it wrote to stderr.
    fn finish(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut child = child;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(timeout) {
            Ok(s) => s.expect("wait for ssh"),
            Err(_) => {
                kill(pid, "KILL");
                panic!("ssh did not finish within {timeout:?}; lines so far: {:?}", self.numbered());
            }
        };
        let _ = self.reader.take().unwrap().join();
        let err = self.errors.take().unwrap().join().unwrap();
        (status, err)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// The direct children of `pid` (from `/proc/*/stat`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // `PID (comm) STATE PPID …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// The ProxyCommand ssh started (`sandbox-forward proxy --ssh …`).
fn proxy_command_of(ssh: u32) -> u32 {
    let mut found = None;
    assert!(
        eventually(T, || {
            found = children(ssh).into_iter().find(|c| {
                std::fs::read(format!("/proc/{c}/cmdline"))
                    .map(|cmd| String::from_utf8_lossy(&cmd).contains("proxy"))
                    .unwrap_or(false)
            });
            found.is_some()
        }),
        "no ProxyCommand under ssh {ssh}"
    );
    found.unwrap()
}

fn expect_all_lines(got: &[u32], n: u32, context: &str) {
    let want: Vec<u32> = (1..=n).collect();
    assert_eq!(got, want.as_slice(), "{context}: every line once and in order");
}

/// The user's terminal: `ssh -tt box`, a loop printing one line a second for 60 s, typed at
/// the prompt. Meanwhile the network black-holes for 30 s, then resets, then the gateway
/// restarts: every line arrives once and in order, ssh exits 0, and nothing was written to the
/// terminal by the ProxyCommand.
#[test]
fn an_interactive_ssh_session_survives_a_black_hole_a_reset_and_a_proxy_restart() {
    let pod = Pod::start(&[]);
    let mut s = Session::spawn(
        pod.ssh(&["-tt", NAME]),
        Some("for i in $(seq 60); do echo line $i; sleep 1; done; exit\n"),
    );
    s.wait_lines(3, T);
    let f = &pod.fault;

    let accepted = f.accepted();
    f.black_hole();
    std::thread::sleep(Duration::from_secs(30));
    let seen = s.numbered().len();
    let healed = Instant::now();
    f.heal();
    let after_black_hole = s.next_line_after(seen, healed, Duration::from_secs(10));
    eprintln!("black hole 30 s: first line {after_black_hole:?} after the network came back");
    assert!(f.accepted() > accepted, "a 30 s black hole went by without a new WebSocket: nothing noticed it");

    std::thread::sleep(Duration::from_secs(2));
    let seen = s.numbered().len();
    let accepted = f.accepted();
    let reset = Instant::now();
    f.reset_all();
    let after_reset = s.next_line_after(seen, reset, Duration::from_secs(10));
    eprintln!("reset: first line {after_reset:?} later");
    assert!(f.accepted() > accepted, "no new WebSocket after a reset");

    std::thread::sleep(Duration::from_secs(2));
    let seen = s.numbered().len();
    let restarted = Instant::now();
    f.restart(Duration::from_millis(500));
    let after_restart = s.next_line_after(seen, restarted, Duration::from_secs(10));
    eprintln!("proxy restart (down 500 ms): first line {after_restart:?} after it went down");

    let (status, err) = s.finish(Duration::from_secs(90));
    let got = s.numbered();
    expect_all_lines(&got, 60, &format!("ssh said on stderr: {err}"));
    assert!(status.success(), "ssh exited {status}; stderr: {err}");
    assert_eq!(err, "", "the terminal got text while the tunnel resumed");
    let resumed = pod.resumed_in_log();
    assert!(resumed >= 3, "proxy.log tells of {resumed} resumed tunnels, not one per fault");
    for (what, took) in [("black hole", after_black_hole), ("reset", after_reset)] {
        assert!(took < RECOVERY, "after the {what} the session took {took:?} to move again");
    }
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

/// A large `scp` from the pod with five resets injected mid-transfer (every sixth of the size
/// has crossed the proxy): it completes, exit 0, and the file's SHA-256 is the pod's; then the
/// same back up to the pod. `TUNNEL_RESUME_SCP_MIB` sets the size (default 1024).
#[test]
fn scp_of_a_large_file_survives_five_resets_mid_transfer() {
    let mib: u64 = std::env::var("TUNNEL_RESUME_SCP_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let pod = Pod::start(&[]);
    let remote = pod.agent.workspace.join("big.bin");
    let made = Command::new("head")
        .arg("-c")
        .arg((mib << 20).to_string())
        .arg("/dev/urandom")
        .stdout(std::fs::File::create(&remote).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    let want = sha256(&remote);
    let local = tempfile::tempdir().unwrap();
    let dest = local.path().join("big.bin");

    pod.fault.reset_every(Dir::Down, (mib << 20) / 6, 5);
    let t0 = Instant::now();
    let mut scp =
        pod.home.ssh("scp", &["-o", "LogLevel=ERROR", &format!("{NAME}:big.bin"), dest.to_str().unwrap()]);
    scp.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = wait(scp.spawn().unwrap(), Duration::from_secs(600));
    eprintln!("scp {mib} MiB with {} resets: {:?}", pod.fault.triggered(), t0.elapsed());
    assert!(o.status.success(), "scp exited {}; stderr: {}", o.status, stderr(&o));
    assert_eq!(pod.fault.triggered(), 5, "not every reset fired (the transfer was shorter than planned?)");
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), mib << 20);
    assert_eq!(sha256(&dest), want, "the copy differs from the pod's file");
    assert_eq!(stderr(&o), "", "scp's terminal got text while the tunnel resumed");

    // And back up, five resets again (the client's replay buffer this time).
    pod.fault.reset_every(Dir::Up, (mib << 20) / 6, 5);
    let t0 = Instant::now();
    let mut scp =
        pod.home.ssh("scp", &["-o", "LogLevel=ERROR", dest.to_str().unwrap(), &format!("{NAME}:back.bin")]);
    scp.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = wait(scp.spawn().unwrap(), Duration::from_secs(600));
    eprintln!("scp {mib} MiB up with {} resets in all: {:?}", pod.fault.triggered(), t0.elapsed());
    assert!(o.status.success(), "scp up exited {}; stderr: {}", o.status, stderr(&o));
    assert_eq!(pod.fault.triggered(), 10, "not every reset of the upload fired");
    assert_eq!(sha256(&pod.agent.workspace.join("back.bin")), want, "the upload differs from the file sent");
    assert_eq!(stderr(&o), "", "scp's terminal got text while the tunnel resumed");
}

/// A forward (`proxy --port`) carrying one long-lived connection to an echo server in the pod:
/// messages go back and forth before, across and after a reset and a 20 s black hole (longer
/// than v2's 15 s silence limit, so the WebSocket is replaced); the local connection never
/// notices and every byte comes back once, in order.
#[test]
fn a_forwarded_long_lived_connection_survives_a_reset_and_a_black_hole() {
    let pod = Pod::start(&[]);
    let log = pod.home.path().join("forward.stderr");
    let (_forward, local) = pod.forward_to_echo(std::fs::File::create(&log).unwrap().into());

    let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut sent = 0u32;
    let mut echoed = Vec::new();
    let mut exchange = |c: &mut TcpStream, n: u32, pause: Duration| {
        for _ in 0..n {
            sent += 1;
            let msg = format!("message {sent:05}\n");
            c.write_all(msg.as_bytes()).expect("write to the forward");
            let mut back = vec![0u8; msg.len()];
            match c.read_exact(&mut back) {
                Ok(()) => echoed.extend_from_slice(&back),
                Err(e) => panic!("message {sent}: the forwarded connection broke: {e}"),
            }
            std::thread::sleep(pause);
        }
    };
    exchange(&mut c, 20, Duration::from_millis(20));

    let f = &pod.fault;
    let accepted = f.accepted();
    f.reset_all();
    let t = Instant::now();
    exchange(&mut c, 1, Duration::ZERO);
    eprintln!("forward: reset, next echo after {:?}", t.elapsed());
    exchange(&mut c, 20, Duration::from_millis(20));
    assert!(f.accepted() > accepted, "no new WebSocket after a reset");

    // Bytes written into the black hole come back once it is gone.
    let accepted = f.accepted();
    f.black_hole();
    c.write_all(b"written into the black hole\n").unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let healed = Instant::now();
    f.heal();
    let mut back = vec![0u8; "written into the black hole\n".len()];
    c.read_exact(&mut back).expect("the bytes written during the black hole");
    eprintln!("forward: 20 s black hole, echo {:?} after the network came back", healed.elapsed());
    assert_eq!(back, b"written into the black hole\n");
    assert!(f.accepted() > accepted, "a 20 s black hole went by without a new WebSocket");
    exchange(&mut c, 20, Duration::from_millis(20));

    let want: String = (1..=sent).map(|i| format!("message {i:05}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&echoed), want);
    // Still one healthy connection: no reset, no end.
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let err =
        c.read(&mut [0u8; 1]).expect_err("the echo server sent something unasked, or the connection ended");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    eprintln!("proxy --port said: {}", std::fs::read_to_string(&log).unwrap_or_default().trim());
}

/// A laptop that sleeps: the ProxyCommand stopped (SIGSTOP) for 60 s — ssh itself keeps
/// running, the agent hears nothing — then continued: the session goes on, every line once
/// and in order, exit 0.
#[test]
fn an_ssh_session_survives_the_proxy_command_stopped_for_a_minute() {
    let pod = Pod::start(&[]);
    let mut s = pod.ssh_streaming("for i in $(seq 75); do echo line $i; sleep 1; done", &[]);
    s.wait_lines(3, T);
    let proxy = proxy_command_of(s.pid());
    let accepted = pod.fault.accepted();
    kill(proxy, "STOP");
    std::thread::sleep(Duration::from_secs(60));
    let seen = s.numbered().len();
    let continued = Instant::now();
    kill(proxy, "CONT");
    let took = s.next_line_after(seen, continued, Duration::from_secs(15));
    eprintln!("SIGSTOP 60 s: first line {took:?} after SIGCONT");
    let (status, err) = s.finish(Duration::from_secs(60));
    expect_all_lines(&s.numbered(), 75, &format!("ssh said on stderr: {err}"));
    assert!(status.success(), "ssh exited {status}; stderr: {err}");
    assert_eq!(err, "", "the terminal got text while the tunnel resumed");
    assert!(pod.fault.accepted() > accepted, "the stopped minute went by without a new WebSocket");
    assert!(pod.resumed_in_log() >= 1, "proxy.log does not tell of the resumed tunnel");
}

/// Runs `ssh box` printing lines, resets the network after the second, and returns how ssh
/// ended (it cannot resume: v1 on one side).
fn ssh_cut_by_a_reset(pod: &Pod, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut s = pod.ssh_streaming("for i in $(seq 30); do echo line $i; sleep 1; done", env);
    s.wait_lines(2, T);
    pod.fault.reset_all();
    s.finish(T)
}

/// Asserts ssh failed with one line from the ProxyCommand naming the reset, that the tunnel
/// could not resume, and `why` (what made it v1).
fn assert_v1_reset_error(status: std::process::ExitStatus, err: &str, who: &str, why: &str) {
    eprintln!("{who}, reset: ssh exited {status}, stderr: {err}");
    assert!(!status.success(), "{who}: a reset v1 tunnel ended ssh with success");
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("sandbox-forward")).collect();
    assert_eq!(ours.len(), 1, "{who}: one line from the ProxyCommand, got: {err}");
    let line = ours[0].to_lowercase();
    assert!(line.contains("reset"), "{who}: the cause (a reset) is not named: {err}");
    assert!(line.contains("resum"), "{who}: nothing says the tunnel could not resume: {err}");
    assert!(ours[0].contains(why), "{who}: the line does not say why the tunnel was v1 ({why:?}): {err}");
}

/// Mixed versions: our client (v2 by default) against an agent offering only v1
/// (`--resume-window 0`, as the original server), and a v1 client against our agent. Both
/// work; a reset then ends the session with one line naming the cause.
#[test]
fn v2_client_with_a_v1_server_and_v1_client_with_our_agent_work_and_fail_plainly() {
    // v2 client → v1-only agent.
    let pod = Pod::start(&["--resume-window", "0"]);
    let o = run(pod.ssh(&[NAME, "echo ok"]), T);
    assert_eq!(ok(&o), "ok\n");
    let (status, err) = ssh_cut_by_a_reset(&pod, &[]);
    assert_v1_reset_error(status, &err, "v2 client, v1-only agent", "which this server speaks");

    // v1 client → our agent.
    let pod = Pod::start(&[]);
    let mut c = pod.ssh(&[NAME, "echo ok"]);
    c.env(PROTOCOL_ENV, "v1");
    assert_eq!(ok(&run(c, T)), "ok\n");
    let (status, err) = ssh_cut_by_a_reset(&pod, &[(PROTOCOL_ENV, "v1")]);
    assert_v1_reset_error(status, &err, "v1 client, our agent", PROTOCOL_ENV);

    // And `proxy --stdio`, v1 by the env var: the same bytes as v2.
    let echo = echo_server().to_string();
    for protocol in ["v1", "v2"] {
        let mut c = pod.home.cli(&["proxy", "--server", &pod.fault.url(), "--port", &echo, "--stdio"]);
        if protocol == "v1" {
            c.env(PROTOCOL_ENV, "v1");
        }
        let mut child =
            c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"hello through the tunnel\n").unwrap();
        let o = wait(child, T);
        assert!(o.status.success(), "{protocol}: {}", stderr(&o));
        assert_eq!(stdout(&o), "hello through the tunnel\n", "{protocol}");
    }
}

/// When the network comes back after the agent's resume window has passed (3 s here, the
/// network black for 6 s after a reset), the session is gone: ssh fails, and the one line
/// from the ProxyCommand says the window passed.
#[test]
fn after_the_resume_window_the_error_says_the_window_passed() {
    let pod = Pod::start(&["--resume-window", "3"]);
    let mut s = pod.ssh_streaming("for i in $(seq 40); do echo line $i; sleep 1; done", &[]);
    s.wait_lines(2, T);
    let f = &pod.fault;
    f.black_hole();
    f.reset_all();
    std::thread::sleep(Duration::from_secs(6));
    f.heal();
    let t = Instant::now();
    let (status, err) = s.finish(Duration::from_secs(30));
    eprintln!(
        "resume window passed: ssh exited {status} {:?} after the network came back; stderr: {err}",
        t.elapsed()
    );
    assert!(!status.success(), "ssh went on after the resume window passed; lines {:?}", s.numbered());
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("sandbox-forward")).collect();
    assert_eq!(ours.len(), 1, "one line from the ProxyCommand, got: {err}");
    assert!(
        ours[0].to_lowercase().contains("window"),
        "the line does not say the resume window passed: {err}"
    );
    let numbered = s.numbered();
    assert!(numbered.len() < 40, "all the lines came: {numbered:?}");
}

/// The production path: the CLI → nginx (the routing service: bearer token, `X-Forwarded-Sub`)
/// → the network → the agent. The leg behind nginx is reset (nginx hangs up on the client without
/// a Close), then the agent is unreachable for 2 s (nginx answers the reconnects 502): the
/// session resumes through nginx, every line once, exit 0.
#[test]
fn through_the_nginx_gateway_a_reset_and_502s_meanwhile_are_survived() {
    const TOKEN: &str = "good-token-5e1d";
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let fault = FaultProxy::start(agent.port);
    let gateway = sandbox_tests::gateway::Gateway::start(fault.port(), TOKEN, "alice");
    let home = Home::new();
    let token = home.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let setup = ["ssh-setup", NAME, "--server", &gateway.url(), "--bearer-file", token.to_str().unwrap()];
    ok(&run(home.cli(&setup), T));
    let pod = Pod { home, agent, fault, _workspace: workspace };

    let mut s = pod.ssh_streaming("for i in $(seq 20); do echo line $i; sleep 1; done", &[]);
    s.wait_lines(2, T);
    let accepted = pod.fault.accepted();
    let seen = s.numbered().len();
    let reset = Instant::now();
    pod.fault.reset_all();
    let after_reset = s.next_line_after(seen, reset, Duration::from_secs(10));
    eprintln!("behind nginx, reset: first line {after_reset:?} later");
    assert!(pod.fault.accepted() > accepted, "no new connection from nginx after the reset");

    // The agent unreachable: nginx answers 502 to every reconnect until it is back.
    pod.fault.refuse();
    pod.fault.reset_all();
    std::thread::sleep(Duration::from_secs(2));
    let seen = s.numbered().len();
    let back = Instant::now();
    pod.fault.resume();
    let after_502 = s.next_line_after(seen, back, Duration::from_secs(10));
    eprintln!("behind nginx, 2 s of 502: first line {after_502:?} after the agent was reachable again");

    let (status, err) = s.finish(Duration::from_secs(60));
    expect_all_lines(&s.numbered(), 20, &format!("ssh said on stderr: {err}"));
    assert!(status.success(), "ssh exited {status}; stderr: {err}");
    assert_eq!(err, "", "the terminal got text while the tunnel resumed");
    assert!(after_502 < RECOVERY, "after the 502s the session took {after_502:?} to move again");
}

/// The byte at `offset` of the stream [`flapping`] sends: no period a replay from a wrong
/// offset could hide behind (a 4 KiB block number is mixed in).
fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(7) ^ (offset >> 12).wrapping_mul(131)) as u8
}

/// A forward through a network that resets every connection after each MiB uploaded, twenty
/// times in a row, while 48 MiB go through an echo server in the pod both ways at once: every
/// byte comes back once, in order, and the local connection never notices.
#[test]
fn a_forward_survives_a_reset_every_mebibyte_both_ways() {
    const TOTAL: u64 = 48 << 20;
    let pod = Pod::start(&[]);
    let (_forward, local) = pod.forward_to_echo(Stdio::null());
    let c = TcpStream::connect(("127.0.0.1", local)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();

    pod.fault.reset_every(Dir::Up, 1 << 20, 20);
    let t0 = Instant::now();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut off = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        while off < TOTAL {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            w.write_all(&buf).expect("write to the forward");
            off += buf.len() as u64;
        }
    });
    let mut r = c;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < TOTAL {
        let n = match r.read(&mut buf) {
            Ok(0) => panic!("the forwarded connection ended after {got} bytes"),
            Ok(n) => n,
            Err(e) => panic!("the forwarded connection broke after {got} bytes: {e}"),
        };
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(got + i as u64)) {
            panic!("byte {} came back wrong (after {} resets)", got + i as u64, pod.fault.triggered());
        }
        got += n as u64;
    }
    writer.join().unwrap();
    eprintln!("48 MiB echoed through {} resets in {:?}", pod.fault.triggered(), t0.elapsed());
    assert_eq!(pod.fault.triggered(), 20, "not every reset fired");
    assert!(pod.fault.accepted() >= 21, "the resets did not replace the WebSocket");
}
