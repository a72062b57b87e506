//! Test harness: real processes on loopback, each stopped by PID when its guard drops — also
//! when a test fails half-way.

pub mod fault;
pub mod gateway;
pub mod keychain;
pub mod oidc;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built beside this test (`cargo build --workspace --bins` first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    let path = dir.join(name);
    assert!(path.is_file(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Guard {
    pub child: Child,
    pub name: &'static str,
}

impl Guard {
    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An echo server "in the pod" on a free loopback port; its threads end with the test process.
pub fn echo_server() -> u16 {
    use std::io::{Read, Write};
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

/// A running `sandbox-agent`.
pub struct Agent {
    pub guard: Guard,
    pub port: u16,
    pub workspace: PathBuf,
}

impl Agent {
    /// Starts an agent on `port` (0 = any) serving `workspace`, with extra flags.
    pub fn start(workspace: &Path, port: u16, extra: &[&str]) -> Agent {
        let mut child = Command::new(bin("sandbox-agent"))
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--workspace")
            .arg(workspace)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sandbox-agent");
        let stdout = child.stdout.take().unwrap();
        let guard = Guard { child, name: "sandbox-agent" };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("agent stdout");
        let addr =
            line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("agent said {line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Agent { guard, port, workspace: workspace.to_owned() }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A fake home directory: `HOME` for every client process a test runs.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The written `~/.ssh/config`.
    pub fn ssh_config(&self) -> PathBuf {
        self.path().join(".ssh/config")
    }

    /// `sandbox-forward ARGS` with this home.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("sandbox-forward"));
        c.args(args).env("HOME", self.path()).env_remove("SANDBOX_FORWARD_LOG");
        c
    }

    /// The real OpenSSH client through the written config. OpenSSH reads `~` from the password
    /// database, not `$HOME`, hence `-F`; `HOME` still reaches our ProxyCommand.
    pub fn ssh(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.arg("-F").arg(self.ssh_config()).args(["-o", "BatchMode=yes"]).args(args).env("HOME", self.path());
        c
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a command to completion with a deadline; kills it when the deadline passes.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    wait(child, timeout)
}

/// Waits for a spawned child with a deadline, collecting its output.
pub fn wait(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("process {pid} did not finish within {timeout:?}");
        }
    }
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed ({:?})\nstdout: {}\nstderr: {}", o.status, stdout(o), stderr(o));
    stdout(o)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
