//! A peer that only talks: reads hand out the fuzz input in chunks of the sizes the input itself
//! chooses (so frame and header boundaries land anywhere), then EOF; writes are swallowed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct Scripted<'a> {
    data: &'a [u8],
    chunks: &'a [u8],
    turn: usize,
}

impl<'a> Scripted<'a> {
    /// The first byte says how many of the following bytes are chunk sizes; the rest is read.
    pub fn new(input: &'a [u8]) -> Self {
        let n = input.first().map_or(0, |&b| usize::from(b % 8)).min(input.len().saturating_sub(1));
        let (chunks, data) = input.get(1..).unwrap_or_default().split_at(n);
        Scripted { data, chunks, turn: 0 }
    }
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let size = match self.chunks.get(self.turn % self.chunks.len().max(1)) {
            Some(&c) => usize::from(c).max(1),
            None => usize::MAX,
        };
        self.turn += 1;
        let n = size.min(buf.remaining()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A current-thread runtime whose clock jumps ahead whenever every task waits: timeouts in the
/// code under test fire at once instead of stalling the fuzzer, and a real hang still shows.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}
