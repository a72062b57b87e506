//! Peers "in the pod" on loopback: an echo server, a python listener, and a spawned
//! `sandbox-agent`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::process::Guard;

/// An echo server on a free loopback port; its threads end with the test process.
pub fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A process with a name the agent can show: python3 listening on `127.0.0.1` and, with `ipv6`
/// (where the host has IPv6), on `[::]`, on ports the system picks, until dropped. Returns it
/// and the ports it printed.
pub fn python_listener(ipv6: bool) -> (Guard, u16, Option<u16>) {
    let six = if ipv6 {
        "try:\n    b = socket.socket(socket.AF_INET6); b.bind(('::', 0)); b.listen(); six = b.getsockname()[1]\n\
         except OSError:\n    six = 0\n"
    } else {
        "six = 0\n"
    };
    let script = format!(
        "import socket, sys\n\
         a = socket.socket(); a.bind(('127.0.0.1', 0)); a.listen()\n\
         {six}\
         print(a.getsockname()[1], six, flush=True)\n\
         sys.stdin.read()\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard { child, name: "python3" };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let mut ports = line.split_whitespace().map(|p| p.parse::<u16>().ok());
    let v4 = ports.next().flatten().unwrap_or_else(|| panic!("python3 said {line:?}"));
    let v6 = ports.next().flatten().filter(|&p| p != 0);
    (guard, v4, v6)
}

/// `AGENT --api-addr 127.0.0.1:PORT --workspace WORKSPACE` (port 0: any), to add flags to.
pub fn agent_command(agent: &Path, workspace: &Path, port: u16) -> Command {
    let mut cmd = Command::new(agent);
    cmd.arg("--api-addr").arg(format!("127.0.0.1:{port}")).arg("--workspace").arg(workspace);
    cmd
}

/// A spawned `sandbox-agent`, killed by PID when dropped.
pub struct AgentProcess {
    pub guard: Guard,
    pub port: u16,
}

impl AgentProcess {
    /// Spawns `cmd` (stdin closed, stdout read here; stderr as the caller set it) and waits for
    /// its `listening on http://ADDR` line.
    #[track_caller]
    pub fn start(mut cmd: Command) -> AgentProcess {
        let mut guard = Guard::spawn("sandbox-agent", cmd.stdin(Stdio::null()).stdout(Stdio::piped()));
        let stdout = guard.child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("agent stdout");
        let addr =
            line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("agent said {line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        AgentProcess { guard, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
