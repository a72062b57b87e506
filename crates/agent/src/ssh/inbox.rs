//! Prompt draining of a channel's incoming messages.
//!
//! russh delivers channel messages by awaiting a bounded queue from the
//! connection's single event loop, and it re-opens the SSH window as soon as
//! data arrives rather than when it is consumed. A consumer that stops reading
//! while it waits for the connection (say, for window space to send a large
//! reply) therefore deadlocks the whole connection once that queue is full.
//! An [`Inbox`] keeps the queue drained by a dedicated task and buffers up to
//! [`HIGH_WATERMARK`] bytes; only beyond that does backpressure reach russh.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{mpsc, Notify};

/// Buffered payload bytes per channel above which draining pauses.
const HIGH_WATERMARK: usize = 32 * 1024 * 1024;

/// Payload bytes queued but not yet taken by the consumer.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

/// The consumer's end: channel messages in arrival order.
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<ChannelMsg>,
    backlog: Arc<Backlog>,
}

fn payload_len(msg: &ChannelMsg) -> usize {
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
                    let drained = shared.drained.notified();
                    if shared.bytes.load(Ordering::Acquire) <= HIGH_WATERMARK {
                        break;
                    }
                    drained.await;
                }
                shared.bytes.fetch_add(payload_len(&msg), Ordering::AcqRel);
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
        if let Some(msg) = &msg {
            let len = payload_len(msg);
            if len > 0 {
                self.backlog.bytes.fetch_sub(len, Ordering::AcqRel);
                self.backlog.drained.notify_one();
            }
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
    current: Bytes,
    done: bool,
    closer: Option<ChannelWriteHalf<Msg>>,
}

impl InboxReader {
    /// Reads from `inbox`; `closer` is used to end the channel on drop.
    pub(crate) fn new(inbox: Inbox, closer: ChannelWriteHalf<Msg>) -> Self {
        Self { inbox, current: Bytes::new(), done: false, closer: Some(closer) }
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
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.inbox.poll_recv(cx)) {
                Some(ChannelMsg::Data { data }) => self.current = data,
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => self.done = true,
                Some(_) => {}
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
