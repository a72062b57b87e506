//! Prompt draining of a channel's incoming messages, and the channel's receive window.
//!
//! russh delivers channel messages by awaiting a bounded queue (100 messages) from the
//! connection's single event loop. A consumer that stops reading while it waits for the
//! connection (say, for window space to send a large reply) would stall every channel of the
//! connection, and could deadlock it. An [`Inbox`] keeps that queue drained by a task of its own.
//!
//! What bounds the memory is the SSH window: the server runs with russh's
//! `manual_window_adjust` (our patch, `vendor/russh/PATCHED.md`), so a channel's window reopens
//! only as its consumer reports data consumed ([`Window::consumed`]), never on receipt. A client
//! can therefore have at most [`WINDOW`] bytes in flight or buffered per channel; russh drops
//! data beyond the window. A client that fills the window with tiny packets meets
//! [`MAX_QUEUED`] instead: draining pauses and only its own connection stalls.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};

/// Receive window per channel: what a client may send ahead of the consumer. 2 MiB (russh's
/// default) keeps a 1 Gbit/s link with 15 ms of round trip busy.
pub(crate) const WINDOW: u32 = 2 * 1024 * 1024;
/// Consumed bytes are returned to the client in steps of this size (one WINDOW_ADJUST each), so
/// the client always has at least `WINDOW - GRANT_STEP` bytes of window while the consumer
/// keeps up.
const GRANT_STEP: usize = 256 * 1024;
/// Messages queued but not yet taken by the consumer above which draining pauses.
const MAX_QUEUED: usize = 4096;

/// A channel's receive window, reopened as its data is consumed. Clones share the count.
#[derive(Clone)]
pub(crate) struct Window(Arc<WindowState>);

struct WindowState {
    handle: Handle,
    id: ChannelId,
    /// Consumed but not yet returned to the client.
    owed: AtomicUsize,
}

impl Window {
    pub(crate) fn new(handle: Handle, id: ChannelId) -> Self {
        Window(Arc::new(WindowState { handle, id, owed: AtomicUsize::new(0) }))
    }

    /// `n` bytes of the channel's data were consumed (written on, or discarded).
    pub(crate) fn consumed(&self, n: usize) {
        if n == 0 {
            return;
        }
        let owed = self.0.owed.fetch_add(n, Ordering::AcqRel) + n;
        if owed >= GRANT_STEP {
            let amount = self.0.owed.swap(0, Ordering::AcqRel);
            if amount > 0 {
                // An error means the connection is gone; nothing to reopen then.
                let _ = self.0.handle.grant_window(self.0.id, u32::try_from(amount).unwrap_or(u32::MAX));
            }
        }
    }

    /// The payload of `msg` was consumed (or discarded).
    pub(crate) fn consumed_msg(&self, msg: &ChannelMsg) {
        self.consumed(payload_len(msg));
    }
}

/// Messages queued but not yet taken by the consumer.
#[derive(Default)]
struct Backlog {
    messages: AtomicUsize,
    taken: Notify,
}

/// The consumer's end: channel messages in arrival order.
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<ChannelMsg>,
    backlog: Arc<Backlog>,
}

pub(crate) fn payload_len(msg: &ChannelMsg) -> usize {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
        _ => 0,
    }
}

impl Inbox {
    /// Starts draining `read` in a background task.
    pub(crate) fn spawn(mut read: ChannelReadHalf) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let shared = Arc::clone(&backlog);
        tokio::spawn(async move {
            while let Some(msg) = read.wait().await {
                loop {
                    // Register interest before checking, so a wake-up between
                    // the check and the await is not lost.
                    let taken = shared.taken.notified();
                    if shared.messages.load(Ordering::Acquire) < MAX_QUEUED {
                        break;
                    }
                    taken.await;
                }
                shared.messages.fetch_add(1, Ordering::AcqRel);
                if tx.send(msg).is_err() {
                    // Consumer gone: dropping `read` makes russh discard the rest.
                    return;
                }
            }
        });
        Self { rx, backlog }
    }

    /// The next message; `None` once the channel is gone.
    pub(crate) async fn recv(&mut self) -> Option<ChannelMsg> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelMsg>> {
        let msg = ready!(self.rx.poll_recv(cx));
        if msg.is_some() {
            self.backlog.messages.fetch_sub(1, Ordering::AcqRel);
            self.backlog.taken.notify_one();
        }
        Poll::Ready(msg)
    }
}

/// `AsyncRead` over a channel's data, for stream-based subsystems (SFTP).
/// EOF or close from the client reads as end-of-file. Dropping it ends the
/// channel as a finished subsystem process would: `exit-status 0`, EOF and
/// close (OpenSSH's `scp` treats a missing exit status as failure).
pub(crate) struct InboxReader {
    inbox: Inbox,
    window: Window,
    current: Bytes,
    done: bool,
    closer: Option<ChannelWriteHalf<Msg>>,
    _slot: OwnedSemaphorePermit,
}

impl InboxReader {
    /// Reads from `inbox`, reopening `window` as bytes are read; `closer` is used to end the
    /// channel on drop, when `slot` (its place among the connection's channels) is freed too.
    pub(crate) fn new(
        inbox: Inbox,
        window: Window,
        closer: ChannelWriteHalf<Msg>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Self { inbox, window, current: Bytes::new(), done: false, closer: Some(closer), _slot: slot }
    }
}

impl AsyncRead for InboxReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.remaining());
                let chunk = self.current.split_to(n);
                buf.put_slice(&chunk);
                self.window.consumed(n);
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.inbox.poll_recv(cx)) {
                Some(ChannelMsg::Data { data }) => self.current = data,
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => self.done = true,
                Some(other) => self.window.consumed_msg(&other),
            }
        }
    }
}

impl Drop for InboxReader {
    fn drop(&mut self) {
        if let (Some(closer), Ok(rt)) = (self.closer.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = closer.exit_status(0).await;
                let _ = closer.eof().await;
                let _ = closer.close().await;
            });
        }
    }
}
