//! Pseudo-terminal allocation for sessions that sent a `pty-req`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::termios::Winsize;
use tokio::process::{Child, Command};

/// Terminal size as sent in `pty-req` and `window-change` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WinSize {
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    pub(crate) px_width: u32,
    pub(crate) px_height: u32,
}

impl WinSize {
    fn to_winsize(self) -> Winsize {
        // The wire carries u32s; the kernel takes u16s. Clamp rather than
        // wrap so a silly client value cannot become a tiny terminal.
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Winsize {
            ws_row: clamp(self.rows),
            ws_col: clamp(self.cols),
            ws_xpixel: clamp(self.px_width),
            ws_ypixel: clamp(self.px_height),
        }
    }
}

/// What the client asked for in `pty-req`.
#[derive(Debug, Clone)]
pub(crate) struct PtyRequest {
    /// Value for `TERM`, e.g. `xterm-256color`.
    pub(crate) term: String,
    pub(crate) size: WinSize,
}

/// The parent's side of a session PTY.
pub(crate) struct PtyMaster {
    reader: pty_process::OwnedReadPty,
    writer: pty_process::OwnedWritePty,
    /// A duplicate of the master fd used only for resizing, so resizes do not
    /// have to wait behind queued input on `writer`.
    control: OwnedFd,
}

impl PtyMaster {
    /// Splits into reader, writer and resize handle so each can live in its own task.
    pub(crate) fn split(self) -> (pty_process::OwnedReadPty, pty_process::OwnedWritePty, PtyControl) {
        (self.reader, self.writer, PtyControl(self.control))
    }
}

/// Resize handle that outlives the split reader and writer halves.
pub(crate) struct PtyControl(OwnedFd);

impl PtyControl {
    /// Applies a `window-change`; the kernel then sends SIGWINCH to the
    /// terminal's foreground process group.
    pub(crate) fn resize(&self, size: WinSize) -> io::Result<()> {
        rustix::termios::tcsetwinsize(&self.0, size.to_winsize())?;
        Ok(())
    }
}

/// Allocates a PTY of the requested size and spawns `command` on it as the
/// leader of a new session (so it gets the PTY as controlling terminal and its
/// own process group).
pub(crate) fn spawn(command: Command, size: WinSize) -> io::Result<(Child, PtyMaster)> {
    let (pty, pts) = pty_process::open().map_err(into_io)?;
    let control = rustix::io::dup(&pty)?;
    let master_size = size.to_winsize();
    rustix::termios::tcsetwinsize(&control, master_size)?;
    // `spawn` consumes `pts`, so the parent holds no slave fd afterwards and
    // reads on the master report EIO once the session's processes are gone.
    let child = pty_process::Command::from(command).spawn(pts).map_err(into_io)?;
    let (reader, writer) = pty.into_split();
    Ok((child, PtyMaster { reader, writer, control }))
}

fn into_io(e: pty_process::Error) -> io::Error {
    match e {
        pty_process::Error::Io(e) => e,
        pty_process::Error::Rustix(errno) => errno.into(),
        other => io::Error::other(other.to_string()),
    }
}

/// Whether a read error on the master just means "all slave fds closed".
pub(crate) fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}
