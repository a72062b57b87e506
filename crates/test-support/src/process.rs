//! Processes a test starts, each stopped by PID when its guard drops (also when the test fails
//! half-way), and commands run with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL, with the processes it started) and reaped on drop.
pub struct Guard {
    pub child: Child,
    pub name: &'static str,
}

impl Guard {
    /// Spawns `cmd` as it is set up (stdio included) and guards it.
    #[track_caller]
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Guard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Guard { child, name }
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it with a deadline, collecting its output (its pipes must be piped); kills it by
    /// PID and panics when the deadline passes.
    #[track_caller]
    pub fn finish(self, timeout: Duration) -> Output {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the child is read out once and `this` is never used or dropped afterwards; the
        // name, the only other field, needs no drop.
        let child = unsafe { std::ptr::read(&this.child) };
        wait(child, timeout)
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The processes it started first (websockify forks one per connection): once the child
        // is gone they belong to init and can no longer be found.
        for pid in descendants(self.child.id()).into_iter().skip(1) {
            kill(pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a process by PID on drop: for a child owned elsewhere (a `tokio::process::Child`).
pub struct PidGuard(pub u32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        kill(self.0);
    }
}

/// Kills a process we started (or its child) by PID, at once.
pub fn kill(pid: u32) {
    #[cfg(unix)]
    // SAFETY: a plain syscall on a PID we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    #[cfg(windows)]
    let _ = Command::new("taskkill").args(["/F", "/PID", &pid.to_string()]).output();
}

/// `pid` and all its descendants (from `/proc`; elsewhere just `pid`).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            // Fields after the `(comm)`, which may contain spaces.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// A free loopback port (bound then released; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `target/<profile>`, where the workspace's binaries are built beside the running test.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..").to_owned()
}

/// Path of a workspace binary built beside this test (`cargo build --workspace --bins` first).
#[track_caller]
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.is_file(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
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

/// Waits for a spawned child with a deadline, collecting its output; kills it by PID when the
/// deadline passes (`ErrorKind::TimedOut`).
pub fn output_within(child: Child, timeout: Duration) -> std::io::Result<Output> {
    within(child, timeout, Child::wait_with_output)
}

/// Waits for a spawned child's exit (not for its pipes) with a deadline; kills it by PID when
/// the deadline passes (`ErrorKind::TimedOut`).
pub fn exit_within(child: Child, timeout: Duration) -> std::io::Result<ExitStatus> {
    within(child, timeout, |mut c| c.wait())
}

fn within<T: Send + 'static>(
    child: Child,
    timeout: Duration,
    wait: fn(Child) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(wait(child));
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            kill(pid);
            let msg = format!("process {pid} did not finish within {timeout:?}");
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, msg))
        }
    }
}

/// Runs a command to completion (stdin closed) with a deadline; kills it when the deadline
/// passes.
#[track_caller]
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    wait(child, timeout)
}

/// Waits for a spawned child with a deadline, collecting its output; panics when it passes.
#[track_caller]
pub fn wait(child: Child, timeout: Duration) -> Output {
    output_within(child, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise; returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed ({:?})\nstdout: {}\nstderr: {}", o.status, stdout(o), stderr(o));
    stdout(o)
}
