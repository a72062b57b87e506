//! The local side a pump reads from — and, for a TCP socket on Linux, where a v2 stream keeps
//! the bytes the peer has not acknowledged yet.
//!
//! v2 must keep every byte until the peer acknowledges it ([`crate::resume`]). Kept in our own
//! memory, those bytes cost: each read lands in memory a window's worth of traffic old (cold in
//! the caches), and a window small enough to stay warm makes the sender wait for
//! acknowledgements. Measured on loopback against v1, the two together cost v2 10–15 % of its
//! throughput; with neither (an experiment that kept nothing) v2 matched v1. A TCP socket
//! already holds the bytes — in its receive queue, until they are read. So a [`TcpSource`]
//! *peeks* instead of reading (`MSG_PEEK` from a moving offset, `SO_PEEK_OFF`), leaves the
//! bytes in the queue, and drops them (`MSG_TRUNC`, no copy) as the peer acknowledges them; a
//! new leg rewinds the offset to replay. The read buffer is reused like v1's, and the socket's
//! receive buffer bounds what is kept, as it bounds what v1 has in flight. `SO_PEEK_OFF` on TCP
//! needs Linux 6.9, and the buffer a `net.core.rmem_max` of a window; elsewhere (other systems,
//! older kernels, a smaller limit, pipes) the stream keeps its bytes itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, ReadHalf};
use tokio::net::TcpStream;

use crate::resume::REPLAY_LIMIT;

/// What a pump reads the local side from.
pub trait LocalRead: AsyncRead + Unpin {
    /// The kernel queue that can keep a v2 stream's unacknowledged bytes, if this side has one.
    fn kernel_queue(&mut self) -> Option<&mut dyn KernelQueue> {
        None
    }
}

impl<L: LocalRead + ?Sized> LocalRead for &mut L {
    fn kernel_queue(&mut self) -> Option<&mut dyn KernelQueue> {
        (**self).kernel_queue()
    }
}

/// A receive queue read by peeking: bytes stay queued until dropped.
pub trait KernelQueue {
    /// Starts peeking at the front of the queue, with room in it for a whole window
    /// ([`crate::resume::REPLAY_LIMIT`]) of kept bytes; before anything is read. `Err` if the
    /// kernel does not allow it (the stream then keeps its bytes itself).
    fn start_keeping(&mut self) -> io::Result<()>;
    /// Copies queued bytes from the peek offset on into `buf`, moving the offset past them;
    /// `Ok(0)` at the end of the stream.
    fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>>;
    /// Drops the first `n` queued bytes (acknowledged): the peek offset moves back by `n`.
    fn drop_front(&mut self, n: usize) -> io::Result<()>;
    /// Peeks from `offset` bytes after the front of the queue next (a new leg replays).
    fn rewind(&mut self, offset: usize) -> io::Result<()>;
}

/// Any reader: a v2 stream over it keeps its unacknowledged bytes itself.
#[derive(Debug)]
pub struct Plain<R>(pub R);

impl<R: AsyncRead + Unpin> AsyncRead for Plain<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: AsyncRead + Unpin> LocalRead for Plain<R> {}

/// The read half of a local TCP socket: where the kernel allows, a v2 stream keeps its
/// unacknowledged bytes in the socket's receive queue (see the module).
#[derive(Debug)]
pub struct TcpSource<R> {
    half: R,
    peeking: bool,
    /// The peek offset moved back since the last peek that found nothing.
    rewound: bool,
}

/// tokio's TCP read halves.
pub trait TcpHalf: AsyncRead + AsRef<TcpStream> + Unpin {
    fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>>;
}

impl TcpHalf for ReadHalf<'_> {
    fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        ReadHalf::poll_peek(self, cx, buf)
    }
}

impl TcpHalf for OwnedReadHalf {
    fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        OwnedReadHalf::poll_peek(self, cx, buf)
    }
}

impl<R: TcpHalf> TcpSource<R> {
    /// Wraps `half`. Nothing changes on the socket until a v2 stream starts keeping its bytes
    /// there ([`KernelQueue::start_keeping`]): a v1 tunnel costs no system call more.
    pub fn new(half: R) -> Self {
        TcpSource { half, peeking: peek_offset::supported(), rewound: false }
    }

    /// Whether a v2 stream over this socket may keep its bytes in the kernel (`rmem_max` allows a
    /// window; the peek offset itself is tried by [`KernelQueue::start_keeping`]).
    pub fn peeking(&self) -> bool {
        self.peeking
    }
}

impl<R: TcpHalf> AsyncRead for TcpSource<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_read(cx, buf)
    }
}

impl<R: TcpHalf> LocalRead for TcpSource<R> {
    fn kernel_queue(&mut self) -> Option<&mut dyn KernelQueue> {
        if self.peeking {
            Some(self)
        } else {
            None
        }
    }
}

impl<R: TcpHalf> KernelQueue for TcpSource<R> {
    fn start_keeping(&mut self) -> io::Result<()> {
        // Also tells whether TCP has a peek offset here (Linux 6.9).
        peek_offset::set(self.half.as_ref(), 0)?;
        // Autotuning grows a receive buffer as fast as the application reads; bytes that stay
        // queued until acknowledged hold it at its first size (128 KiB: measured 0.55× of v1's
        // throughput). A fixed buffer of a whole window does not wait for that.
        let socket = socket2::SockRef::from(self.half.as_ref());
        socket.set_recv_buffer_size(REPLAY_LIMIT)?;
        // The kernel doubles what it is asked for (bookkeeping), within `net.core.rmem_max`.
        if socket.recv_buffer_size()? < 2 * REPLAY_LIMIT {
            return Err(io::Error::other("net.core.rmem_max is below a window"));
        }
        Ok(())
    }

    fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        if !self.rewound {
            return self.half.poll_peek(cx, buf);
        }
        // Rewound: straight to the socket until it has nothing more. tokio's readiness says
        // "nothing to read" since the last peek that found nothing, yet the queue has bytes to
        // peek again though none arrived (waiting for more could wait for ever: a forwarded
        // connection whose application waits for its answer). Not always: a peek that finds
        // nothing would cost a system call at every turn of the pump.
        // SAFETY: `peek` only writes initialised bytes into the slice, and reports how many.
        let unfilled = unsafe { buf.unfilled_mut() };
        match socket2::SockRef::from(self.half.as_ref()).peek(unfilled) {
            Ok(n) => {
                // SAFETY: the kernel has written `n` bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(n))
            }
            // Nothing queued past the offset: wait for the socket as tokio does.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.rewound = false;
                self.half.poll_peek(cx, buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.poll_peek(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn drop_front(&mut self, n: usize) -> io::Result<()> {
        peek_offset::drop_front(self.half.as_ref(), n)
    }

    fn rewind(&mut self, offset: usize) -> io::Result<()> {
        peek_offset::set(self.half.as_ref(), offset)?;
        self.rewound = true;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod peek_offset {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::net::TcpStream;

    /// `SO_PEEK_OFF`: the next `MSG_PEEK` starts `offset` bytes into the receive queue, and
    /// moves the offset on.
    pub fn set(socket: &TcpStream, offset: usize) -> io::Result<()> {
        let value =
            libc::c_int::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEEK_OFF,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether a receive buffer may be set as large as a window (`net.core.rmem_max`, read
    /// once): a socket whose buffer is set stops autotuning, so one that could not hold a whole
    /// window is better left to grow by itself, the stream keeping its bytes itself.
    pub fn supported() -> bool {
        static ROOM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ROOM.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/net/core/rmem_max")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .is_some_and(|max| max >= super::REPLAY_LIMIT)
        })
    }

    /// Drops `n` bytes from the front of the receive queue without copying them (TCP's
    /// `MSG_TRUNC`); they are queued already, so this never waits.
    pub fn drop_front(socket: &TcpStream, mut n: usize) -> io::Result<()> {
        while n > 0 {
            // SAFETY: with MSG_TRUNC, TCP copies nothing into the (null) buffer.
            let r = unsafe {
                libc::recv(socket.as_raw_fd(), std::ptr::null_mut(), n, libc::MSG_TRUNC | libc::MSG_DONTWAIT)
            };
            match r {
                r if r > 0 => n -= r as usize,
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod peek_offset {
    use std::io;

    use tokio::net::TcpStream;

    pub fn supported() -> bool {
        false
    }

    pub fn set(_: &TcpStream, _: usize) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn drop_front(_: &TcpStream, _: usize) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
