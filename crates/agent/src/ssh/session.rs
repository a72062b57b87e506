//! `shell` and `exec` sessions: spawning the process and shuttling bytes,
//! window changes, signals and the exit status between it and the channel.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg};
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::env::BaseEnv;
use super::inbox::{Inbox, Window};
use super::pty::{self, PtyControl, PtyRequest, WinSize};
use super::signal::{self, GroupGuard};

/// Read size for the child's output; matches russh's maximum packet size.
const READ_CHUNK: usize = 32 * 1024;
/// After the child exits, PTY output is drained until the PTY is idle this
/// long: background jobs may keep the slave open forever, and (like sshd)
/// we do not wait for them.
const PTY_DRAIN_IDLE: Duration = Duration::from_millis(100);
/// Time a hung-up session gets to exit on SIGHUP before its group is SIGKILLed.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// Everything needed to start one session process.
pub(crate) struct SessionSpec<'a> {
    pub(crate) base_env: &'a BaseEnv,
    pub(crate) workspace: &'a std::path::Path,
    /// `None` runs an interactive shell; `Some` runs `<shell> -c <command>`.
    pub(crate) command: Option<OsString>,
    pub(crate) pty: Option<PtyRequest>,
    /// Connection-derived variables (`SSH_CONNECTION`…), set after the base.
    pub(crate) connection_env: Vec<(OsString, OsString)>,
    /// Already-filtered variables from client `env` requests; set last.
    pub(crate) client_env: Vec<(String, String)>,
}

/// The child's stdio as seen from the agent.
enum ChildIo {
    Pipes {
        stdin: tokio::process::ChildStdin,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
    },
    Pty(pty::PtyMaster),
}

/// A spawned session process, ready to be driven by [`Running::drive`].
pub(crate) struct Running {
    child: Child,
    io: ChildIo,
}

/// Spawns the session process described by `spec`.
pub(crate) fn spawn(spec: SessionSpec<'_>) -> io::Result<Running> {
    let shell = &spec.base_env.shell;
    let mut cmd = Command::new(shell);
    if let Some(command) = &spec.command {
        cmd.arg("-c").arg(command);
    }
    // Not a login shell: /etc/profile on common images resets PATH, and the
    // image's PATH is what users expect inside their sandbox.
    cmd.env_clear()
        .envs(spec.base_env.vars().iter().map(|(k, v)| (k, v)))
        .envs(spec.connection_env.iter().map(|(k, v)| (k, v)));
    if let Some(pty) = &spec.pty {
        cmd.env("TERM", &pty.term);
    }
    cmd.envs(spec.client_env.iter().map(|(k, v)| (k, v))).current_dir(spec.workspace).kill_on_drop(true);

    let (child, io) = match &spec.pty {
        Some(pty) => {
            let (child, master) = pty::spawn(cmd, pty.size)?;
            (child, ChildIo::Pty(master))
        }
        None => {
            // Own process group, so hang-up can signal the whole job tree.
            cmd.process_group(0).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn()?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(io::Error::other("child stdio was not captured"));
            };
            (child, ChildIo::Pipes { stdin, stdout, stderr })
        }
    };
    Ok(Running { child, io })
}

/// How the session process ended.
enum Exit {
    Status(ExitStatus),
    /// `wait` itself failed; reported as exit status 255 like sshd's "lost" child.
    Unknown,
}

impl Running {
    /// Shuttles data between the process and `channel` until the process
    /// exits and its output is drained (then reports the exit and closes the
    /// channel), or until the client closes the channel or disconnects (then
    /// hangs up the process group).
    ///
    /// Input reopens `window` only once written to the process: a process that does not read
    /// stops the client after one window (`head -c 1G /dev/zero | ssh NAME sleep 30` holds
    /// the agent at ~2 MiB for that channel, not 1 GiB).
    pub(crate) async fn drive(self, channel: Channel<Msg>, window: Window, handle: Handle) {
        let Running { mut child, io } = self;
        let id = channel.id();
        let pgid = child.id().and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?));
        let mut guard = GroupGuard::new(pgid);
        let (rx, tx) = channel.split();
        // Drained by a task of its own, so russh's queue never waits on this loop.
        let mut rx = Inbox::spawn(rx);

        let exited = CancellationToken::new();
        let mut pumps = JoinSet::new();
        // Unbounded, yet bounded by the channel's window: input reopens it only once `feed`
        // has written it to the process. Blocking this loop instead would stall the whole
        // connection (and could deadlock against our own output).
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel::<Bytes>();
        let is_pty = matches!(io, ChildIo::Pty(_));
        let mut control: Option<PtyControl> = None;
        let feeder = match io {
            ChildIo::Pipes { stdin, stdout, stderr } => {
                pumps.spawn(pump(stdout, tx.make_writer(), None));
                pumps.spawn(pump(stderr, tx.make_writer_ext(Some(1)), None));
                tokio::spawn(feed(stdin, stdin_rx, window.clone()))
            }
            ChildIo::Pty(master) => {
                let (reader, writer, ctl) = master.split();
                control = Some(ctl);
                pumps.spawn(pump(reader, tx.make_writer(), Some(exited.clone())));
                tokio::spawn(feed(writer, stdin_rx, window.clone()))
            }
        };
        let mut stdin_tx = Some(stdin_tx);
        let mut exit: Option<Exit> = None;
        let mut pumps_done = false;

        while exit.is_none() || !pumps_done {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        let len = data.len();
                        // A send error means the child closed its stdin: the data is dropped.
                        if stdin_tx.as_ref().is_none_or(|stdin| stdin.send(data).is_err()) {
                            window.consumed(len);
                        }
                    }
                    // With a PTY, EOF has no meaning for the terminal (sshd
                    // ignores it too); without one it closes the child's stdin
                    // once queued input is written.
                    Some(ChannelMsg::Eof) if !is_pty => stdin_tx = None,
                    Some(ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height }) => {
                        if let Some(control) = &control {
                            let size = WinSize { cols: col_width, rows: row_height, px_width: pix_width, px_height: pix_height };
                            if let Err(e) = control.resize(size) {
                                tracing::debug!(error = %e, "PTY resize failed");
                            }
                        }
                    }
                    Some(ChannelMsg::Signal { signal }) => {
                        if let (Some(pgid), Some(sig)) = (guard.pgid(), signal::from_ssh(&signal)) {
                            signal::kill_group(pgid, sig);
                        }
                    }
                    Some(ChannelMsg::Close) | None => {
                        tracing::debug!(channel = %id, "session channel closed by client; hanging up");
                        feeder.abort();
                        hang_up(child, guard);
                        return;
                    }
                    Some(other) => window.consumed_msg(&other),
                },
                status = child.wait(), if exit.is_none() => {
                    exit = Some(match status {
                        Ok(status) => Exit::Status(status),
                        Err(e) => {
                            tracing::warn!(error = %e, "waiting for session process failed");
                            Exit::Unknown
                        }
                    });
                    exited.cancel();
                }
                _ = pumps.join_next(), if !pumps_done => pumps_done = pumps.is_empty(),
            }
        }

        // Stop accepting input first: with nobody reading, russh would block
        // on a full queue while we wait for it to send the exit status.
        drop(rx);
        // Normal end: whatever the process left running in the background is
        // the user's business (sshd semantics; e.g. nohup'ed IDE servers).
        guard.disarm();
        feeder.abort();
        drop(control);
        report_exit(&handle, id, exit.unwrap_or(Exit::Unknown)).await;
        let _ = tx.eof().await;
        let _ = tx.close().await;
    }
}

/// Sends `exit-status`, or `exit-signal` for a process killed by a signal.
async fn report_exit(handle: &Handle, id: ChannelId, exit: Exit) {
    let status = match exit {
        Exit::Status(status) => status,
        Exit::Unknown => {
            let _ = handle.exit_status_request(id, 255).await;
            return;
        }
    };
    if let Some(code) = status.code() {
        // Exit codes are 0..=255; the cast cannot lose information.
        let _ = handle.exit_status_request(id, code as u32).await;
    } else if let Some(raw) = status.signal() {
        let _ = handle
            .exit_signal_request(id, signal::to_ssh(raw), status.core_dumped(), String::new(), String::new())
            .await;
    } else {
        let _ = handle.exit_status_request(id, 255).await;
    }
}

/// The client went away while the process runs: SIGHUP the group (as a
/// terminal hang-up would), then SIGKILL whatever is left after a grace period.
fn hang_up(mut child: Child, mut guard: GroupGuard) {
    let Some(pgid) = guard.pgid() else {
        return;
    };
    signal::kill_group(pgid, Signal::HUP);
    guard.disarm();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(HANGUP_GRACE, child.wait()).await;
        // Also reaps group members that outlived or ignored the SIGHUP.
        signal::kill_group(pgid, Signal::KILL);
        let _ = child.wait().await;
    });
}

/// Copies the child's output to the channel until EOF. With `exited` set (PTY
/// sessions), stops once the child has exited and the PTY went idle.
async fn pump<R, W>(mut reader: R, mut writer: W, exited: Option<CancellationToken>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let read = match &exited {
            None => reader.read(&mut buf).await,
            Some(exited) if exited.is_cancelled() => {
                match tokio::time::timeout(PTY_DRAIN_IDLE, reader.read(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            }
            Some(exited) => tokio::select! {
                read = reader.read(&mut buf) => read,
                // Re-evaluate with the drain deadline in force.
                () = exited.cancelled() => continue,
            },
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                if writer.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !pty::is_hangup(&e) {
                    tracing::debug!(error = %e, "reading session output failed");
                }
                break;
            }
        }
    }
    let _ = writer.flush().await;
}

/// Writes channel data to the child's stdin (or PTY) in arrival order, reopening `window`
/// for what is written; when the sender is dropped (channel EOF), closes it.
async fn feed<W>(mut writer: W, mut input: mpsc::UnboundedReceiver<Bytes>, window: Window)
where
    W: AsyncWrite + Unpin,
{
    while let Some(data) = input.recv().await {
        if writer.write_all(&data).await.is_err() {
            // The child closed its input; drop the rest (the window reopens as `drive`
            // finds the queue closed).
            window.consumed(data.len());
            while let Ok(rest) = input.try_recv() {
                window.consumed(rest.len());
            }
            return;
        }
        window.consumed(data.len());
    }
    let _ = writer.shutdown().await;
}
