//! The process's stdin/stdout as async byte streams for `proxy --ssh` / `--stdio`.
//!
//! tokio's `stdin()`/`stdout()` do every read and write on a blocking-pool thread: a thread hop
//! and a copy per chunk, on the path of every ssh packet. When the descriptor is a pipe or a
//! socket (ssh hands its ProxyCommand pipes), we register it with the reactor instead, in
//! non-blocking mode, and read/write it directly from the tunnel's task. Anything else (a tty, a
//! regular file, `/dev/null`) falls back to tokio's blocking implementation, which handles
//! descriptors epoll cannot watch. Non-Unix platforms always use the fallback.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Async stdin: a reactor-registered pipe/socket, or tokio's blocking-pool stdin.
pub enum Stdin {
    #[cfg(unix)]
    Pipe(tokio::net::unix::pipe::Receiver),
    #[cfg(unix)]
    Socket(tokio::net::UnixStream),
    Blocking(tokio::io::Stdin),
}

/// Async stdout: a reactor-registered pipe/socket, or tokio's blocking-pool stdout.
pub enum Stdout {
    #[cfg(unix)]
    Pipe(tokio::net::unix::pipe::Sender),
    #[cfg(unix)]
    Socket(tokio::net::UnixStream),
    Blocking(tokio::io::Stdout),
}

#[cfg(unix)]
mod unix {
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;

    /// What a descriptor is, seen through a duplicate of it.
    pub enum Kind {
        Pipe(OwnedFd),
        Socket(OwnedFd),
        Other,
    }

    pub fn classify(fd: impl AsFd) -> Kind {
        let Ok(owned) = fd.as_fd().try_clone_to_owned() else { return Kind::Other };
        let file = std::fs::File::from(owned);
        match file.metadata().map(|m| m.file_type()) {
            Ok(t) if t.is_fifo() => Kind::Pipe(file.into()),
            Ok(t) if t.is_socket() => Kind::Socket(file.into()),
            _ => Kind::Other,
        }
    }

    /// Asks for a 1 MiB pipe (the default is 64 KiB): ssh's bulk data then crosses in fewer,
    /// larger reads and writes, and wake-ups rather than copies are what a pipe hop costs.
    /// Best effort: the system may cap pipe sizes lower, and the default works.
    pub fn grow_pipe(fd: impl AsFd) {
        #[cfg(target_os = "linux")]
        let _ = rustix::pipe::fcntl_setpipe_size(fd, 1 << 20);
        #[cfg(not(target_os = "linux"))]
        let _ = fd;
    }

    pub fn socket(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
        let s = std::os::unix::net::UnixStream::from(fd);
        s.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(s)
    }
}

/// This process's stdin. Must be called inside a tokio runtime.
pub fn stdin() -> Stdin {
    #[cfg(unix)]
    {
        use tokio::net::unix::pipe;
        match unix::classify(std::io::stdin()) {
            unix::Kind::Pipe(fd) => {
                unix::grow_pipe(&fd);
                if let Ok(r) = pipe::Receiver::from_owned_fd(fd) {
                    return Stdin::Pipe(r);
                }
            }
            unix::Kind::Socket(fd) => {
                if let Ok(s) = unix::socket(fd) {
                    return Stdin::Socket(s);
                }
            }
            unix::Kind::Other => {}
        }
    }
    Stdin::Blocking(tokio::io::stdin())
}

/// This process's stdout. Must be called inside a tokio runtime.
pub fn stdout() -> Stdout {
    #[cfg(unix)]
    {
        use tokio::net::unix::pipe;
        match unix::classify(std::io::stdout()) {
            unix::Kind::Pipe(fd) => {
                unix::grow_pipe(&fd);
                if let Ok(w) = pipe::Sender::from_owned_fd(fd) {
                    return Stdout::Pipe(w);
                }
            }
            unix::Kind::Socket(fd) => {
                if let Ok(s) = unix::socket(fd) {
                    return Stdout::Socket(s);
                }
            }
            unix::Kind::Other => {}
        }
    }
    Stdout::Blocking(tokio::io::stdout())
}

impl Stdin {
    /// Whether reads go through the reactor (no blocking-pool hop).
    pub fn is_direct(&self) -> bool {
        !matches!(self, Stdin::Blocking(_))
    }
}

impl Stdout {
    /// Whether writes go through the reactor (no blocking-pool hop).
    pub fn is_direct(&self) -> bool {
        !matches!(self, Stdout::Blocking(_))
    }
}

impl AsyncRead for Stdin {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Stdin::Pipe(r) => Pin::new(r).poll_read(cx, buf),
            #[cfg(unix)]
            Stdin::Socket(s) => Pin::new(s).poll_read(cx, buf),
            Stdin::Blocking(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stdout {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            #[cfg(unix)]
            Stdout::Pipe(w) => Pin::new(w).poll_write(cx, buf),
            #[cfg(unix)]
            Stdout::Socket(s) => Pin::new(s).poll_write(cx, buf),
            Stdout::Blocking(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            #[cfg(unix)]
            Stdout::Pipe(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Stdout::Socket(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stdout::Blocking(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            #[cfg(unix)]
            Stdout::Pipe(w) => w.is_write_vectored(),
            #[cfg(unix)]
            Stdout::Socket(s) => s.is_write_vectored(),
            Stdout::Blocking(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Stdout::Pipe(w) => Pin::new(w).poll_flush(cx),
            #[cfg(unix)]
            Stdout::Socket(s) => Pin::new(s).poll_flush(cx),
            Stdout::Blocking(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Stdout::Pipe(w) => Pin::new(w).poll_shutdown(cx),
            #[cfg(unix)]
            Stdout::Socket(s) => Pin::new(s).poll_shutdown(cx),
            Stdout::Blocking(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pipes_are_driven_by_the_reactor() {
        let (r, w) = std::io::pipe().unwrap();
        let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
        assert!(matches!(unix::classify(&r), unix::Kind::Pipe(_)));
        let mut rx = Stdin::Pipe(tokio::net::unix::pipe::Receiver::from_owned_fd(r).unwrap());
        let mut tx = Stdout::Pipe(tokio::net::unix::pipe::Sender::from_owned_fd(w).unwrap());
        assert!(rx.is_direct() && tx.is_direct());
        let data = vec![7u8; 300_000];
        let writer = tokio::spawn(async move {
            tx.write_all(&data).await.unwrap();
            tx.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), 300_000);
        assert!(got.iter().all(|b| *b == 7));
    }

    #[test]
    fn regular_files_fall_back() {
        let f = tempfile::tempfile().unwrap();
        assert!(matches!(unix::classify(&f), unix::Kind::Other));
    }
}
