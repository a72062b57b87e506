//! The resident tray process, `sandbox-forward-tray`, installed beside this binary (and built
//! beside it in the target directory during development): found, started, waited for.

use std::io;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Command;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sandbox_desk::control::ControlClient;

/// The tray binary's name, without the platform's suffix.
pub const TRAY_BINARY: &str = "sandbox-forward-tray";
/// How long a freshly started tray process may take to serve its socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Where the tray binary is: next to the running one.
pub fn tray_binary() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "this program's path has no folder"))?;
    Ok(dir.join(format!("{TRAY_BINARY}{}", std::env::consts::EXE_SUFFIX)))
}

/// `--background`: become the tray process (no window, no GUI toolkit). On Unix this process is
/// replaced by it; elsewhere it is started detached and this one exits.
pub fn exec_tray() -> ExitCode {
    let tray = match tray_binary() {
        Ok(tray) => tray,
        Err(e) => {
            tracing::error!("cannot find {TRAY_BINARY}: {e}");
            return ExitCode::FAILURE;
        }
    };
    become_tray(&tray)
}

#[cfg(unix)]
fn become_tray(tray: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    // Only returns on failure.
    let e = Command::new(tray).exec();
    tracing::error!("cannot start {}: {e}", tray.display());
    ExitCode::FAILURE
}

#[cfg(not(unix))]
fn become_tray(tray: &Path) -> ExitCode {
    match sandbox_core::detached::spawn(tray) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot start {}: {e}", tray.display());
            ExitCode::FAILURE
        }
    }
}

/// Makes sure a tray process answers on the control socket: starts one if none does, and waits
/// for it. The error is one sentence for the log.
pub async fn ensure_running(client: &ControlClient) -> Result<(), String> {
    if client.is_served().await {
        return Ok(());
    }
    let tray = tray_binary().map_err(|e| format!("cannot find {TRAY_BINARY}: {e}"))?;
    let mut child = sandbox_core::detached::spawn(&tray).map_err(|e| {
        format!(
            "cannot start the tray process {}: {e}; the window cannot do anything without it",
            tray.display()
        )
    })?;
    tracing::info!("started {} (pid {})", tray.display(), child.id());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if client.is_served().await {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the tray process {} exited at once ({status})", tray.display()));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the tray process {} did not answer within {} s",
                tray.display(),
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
