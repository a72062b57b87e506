//! Child processes owned by guards (killed by PID on drop, with the processes they started:
//! `sandbox_test_support::Guard`), RSS readings, file-descriptor limit.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
pub use sandbox_test_support::{descendants, free_port, kill};

/// A child process killed (SIGKILL, with its descendants: websockify forks one per connection)
/// and reaped on drop — also when a run fails half-way.
pub struct Guard {
    process: sandbox_test_support::Guard,
    pub name: String,
}

impl Guard {
    /// Spawns `cmd` with stdin closed and stdout/stderr to `log` (appended).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Guard> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let process = sandbox_test_support::Guard { child, name: "benchmark process" };
        Ok(Guard { process, name: name.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.process.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

/// Waits until `port` on loopback accepts a connection (the probe connection is closed at
/// once), while `guard` stays alive.
pub fn wait_listening(guard: &mut Guard, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + timeout;
    loop {
        guard.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{} did not listen on {addr} within {timeout:?}", guard.name);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// VmRSS of one process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Summed VmRSS of `pid` and its descendants, KiB (shared pages counted once per process).
pub fn tree_rss_kib(pid: u32) -> u64 {
    descendants(pid).into_iter().filter_map(rss_kib).sum()
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (children inherit it); returns the new soft
/// limit. Windows has no such limit per process: 0 there.
#[cfg(not(unix))]
pub fn raise_nofile() -> u64 {
    0
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (children inherit it); returns the new soft
/// limit.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every target.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let want = lim.rlim_max.min(1 << 20);
        if lim.rlim_cur < want {
            let new = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                return want as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// `program` on `PATH` or in one of `extra` directories.
pub fn find_tool(program: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().cloned()).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Runs `cmd` to completion (stdin closed) with a deadline; kills it (by PID) when it passes.
pub fn run(mut cmd: Command, timeout: Duration) -> anyhow::Result<Output> {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    wait_output(child, timeout)
}

/// Waits for a spawned child with a deadline, collecting its output; kills it by PID when the
/// deadline passes.
pub fn wait_output(child: Child, timeout: Duration) -> anyhow::Result<Output> {
    Ok(sandbox_test_support::output_within(child, timeout)?)
}

/// Waits for a spawned child's exit (not for its pipes) with a deadline; kills it by PID when
/// the deadline passes.
pub fn wait_exit(child: Child, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    Ok(sandbox_test_support::exit_within(child, timeout)?)
}

/// Asserts success, with both streams in the error otherwise.
pub fn ok(o: Output) -> anyhow::Result<String> {
    if !o.status.success() {
        bail!(
            "failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}
