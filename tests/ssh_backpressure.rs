//! What a client pushing more than the pod consumes costs the agent: with the real OpenSSH
//! client through our ProxyCommand and nginx, input to a process that does not read holds the
//! agent's memory to about one SSH window, and is all delivered once the process reads.
//!
//! Unix only: drives the pod side (`sandbox-agent`, Unix by design).
#![cfg(unix)]

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox_tests::gateway::Gateway;
use sandbox_tests::{eventually, ok, run, Agent, Guard, Home};

const TOKEN: &str = "good-token-7f3a";
const T: Duration = Duration::from_secs(60);

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn input_to_a_process_that_does_not_read_holds_the_agent_to_one_window() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let gateway = Gateway::start(agent.port, TOKEN, "alice");
    let home = Home::new();
    let token = home.path().join(".config/sandbox/token");
    std::fs::create_dir_all(token.parent().unwrap()).unwrap();
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let url = gateway.url();
    let setup = ["ssh-setup", "flood", "--server", &url, "--bearer-file", token.to_str().unwrap()];
    ok(&run(home.cli(&setup), T));
    assert_eq!(ok(&run(home.ssh("ssh", &["flood", "echo ready"]), T)), "ready\n");
    let before = rss_kib(agent.guard.pid());

    // 256 MiB into a command that reads nothing for 6 s, then counts what it gets.
    const INPUT: u64 = 256 << 20;
    let mut ssh = home.ssh("ssh", &["flood", "sleep 6; wc -c"]);
    let mut child = ssh.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || {
            let chunk = vec![0x5a_u8; 1 << 20];
            while sent.load(Ordering::Relaxed) < INPUT {
                if stdin.write_all(&chunk).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let mut ssh = Guard { child, name: "ssh" };
    let started = Instant::now();
    let mut peak = before;
    while started.elapsed() < Duration::from_secs(5) {
        peak = peak.max(rss_kib(agent.guard.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let pushed_while_asleep = sent.load(Ordering::Relaxed);
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "agent VmRSS {} MiB before, peak {} MiB while the client pushed {} MiB at a sleeping process",
        before / 1024,
        peak / 1024,
        pushed_while_asleep >> 20
    );
    assert!(
        grown_mib < 48,
        "agent grew by {grown_mib} MiB (from {} MiB) while the client pushed {} MiB at a sleeping \
         process",
        before / 1024,
        pushed_while_asleep >> 20
    );
    // The client was held back, not just the agent's memory: a window plus pipes in flight.
    assert!(pushed_while_asleep < 64 << 20, "client pushed {} MiB", pushed_while_asleep >> 20);

    // Once the process reads, every byte arrives: the window reopens as it is consumed.
    writer.join().unwrap();
    let mut status = None;
    assert!(eventually(T, || {
        status = ssh.child.try_wait().unwrap();
        status.is_some()
    }));
    assert!(status.unwrap().success());
    assert_eq!(reader.join().unwrap().unwrap().trim(), INPUT.to_string());
}
