//! TCP port forwarding: `direct-tcpip` channels (`ssh -L`, `ssh -W`, IDE
//! tunnels) and `tcpip-forward` listeners (`ssh -R`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::inbox::{Inbox, Window};

/// Bound on connecting to a `direct-tcpip` destination.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Read size for the TCP side; matches russh's maximum packet size.
const READ_CHUNK: usize = 32 * 1024;

/// Connects to `host:port` from the pod and, once connected, accepts the
/// channel and pipes both ways. Any destination is allowed: the user can
/// reach it from a shell in the pod anyway.
pub(crate) async fn direct_tcpip(
    channel: Channel<Msg>,
    handle: Handle,
    reply: ChannelOpenHandle,
    host: String,
    port: u32,
) {
    let Ok(port) = u16::try_from(port) else {
        reply.reject(ChannelOpenFailure::ConnectFailed).await;
        return;
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(?host, port, error = %e, "direct-tcpip connect failed");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
        Err(_) => {
            tracing::debug!(?host, port, "direct-tcpip connect timed out");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    reply.accept().await;
    let window = Window::new(handle, channel.id());
    pipe(channel, window, stream).await;
}

/// A live `tcpip-forward` listener; dropping it stops accepting.
pub(crate) struct RemoteForward {
    _stop: tokio_util::sync::DropGuard,
}

/// Binds a listener for `ssh -R` and forwards each accepted connection to
/// the client as a `forwarded-tcpip` channel. Returns the bound port.
///
/// Like sshd's default `GatewayPorts no`, it binds loopback whatever address
/// the client names: the pod's ports are reached through the agent's own
/// port-forward, which targets 127.0.0.1.
pub(crate) async fn listen(
    handle: Handle,
    address: String,
    port: u32,
) -> std::io::Result<(u32, RemoteForward)> {
    let port = u16::try_from(port)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "port out of range"))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let bound = u32::from(listener.local_addr()?.port());
    let stop = CancellationToken::new();
    tokio::spawn(accept_loop(listener, handle, address, bound, stop.clone()));
    Ok((bound, RemoteForward { _stop: stop.drop_guard() }))
}

async fn accept_loop(
    listener: TcpListener,
    handle: Handle,
    address: String,
    port: u32,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "tcpip-forward accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        let address = address.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (orig_host, orig_port) = split_addr(peer);
            // The client matches the channel to its forward by the address
            // and port it asked for, so echo those back.
            match handle.channel_open_forwarded_tcpip(address, port, orig_host, orig_port).await {
                Ok(channel) => {
                    let window = Window::new(handle, channel.id());
                    pipe(channel, window, stream).await
                }
                Err(e) => tracing::debug!(error = %e, "forwarded-tcpip open refused"),
            }
        });
    }
}

fn split_addr(addr: SocketAddr) -> (String, u32) {
    (addr.ip().to_string(), u32::from(addr.port()))
}

/// Why the channel-to-TCP direction ended.
enum Downstream {
    /// The client closed the channel (or the connection is gone).
    Closed,
    /// Both sides have sent EOF: the channel can be closed.
    Done,
    /// Writing to the TCP peer failed.
    Failed,
}

/// Pipes bytes between `channel` and `stream` with half-close semantics:
/// EOF on either side is passed on as EOF to the other, and the channel is
/// closed when both directions are finished or either side fails.
/// Data is handed back to `window` once written to the TCP peer: a peer that stops reading
/// stops the client after one window.
pub(crate) async fn pipe(channel: Channel<Msg>, window: Window, stream: TcpStream) {
    let (rx, tx) = channel.split();
    let mut inbox = Inbox::spawn(rx);
    let (mut tcp_read, mut tcp_write) = stream.into_split();
    let upstream_done = AtomicBool::new(false);
    let downstream_eof = AtomicBool::new(false);

    // TCP → channel. ChannelTx waits for the client's window, which is the
    // backpressure towards the TCP peer.
    let mut to_client = tx.make_writer();
    let upstream = async {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = tcp_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            to_client.write_all(&buf[..n]).await?;
        }
    };
    // Channel → TCP. Runs concurrently with `upstream` so a peer that only
    // reads after writing cannot deadlock the pipe; the inbox keeps russh's
    // queue drained while a TCP write waits.
    let downstream = async {
        loop {
            match inbox.recv().await {
                Some(ChannelMsg::Data { data }) => {
                    if !downstream_eof.load(Ordering::Relaxed) && tcp_write.write_all(&data).await.is_err() {
                        return Downstream::Failed;
                    }
                    window.consumed(data.len());
                }
                Some(ChannelMsg::Eof) => {
                    downstream_eof.store(true, Ordering::Relaxed);
                    let _ = tcp_write.shutdown().await;
                    if upstream_done.load(Ordering::Relaxed) {
                        return Downstream::Done;
                    }
                }
                Some(ChannelMsg::Close) | None => return Downstream::Closed,
                Some(other) => window.consumed_msg(&other),
            }
        }
    };
    tokio::pin!(upstream, downstream);

    let mut upstream_running = true;
    loop {
        tokio::select! {
            result = &mut upstream, if upstream_running => {
                upstream_running = false;
                upstream_done.store(true, Ordering::Relaxed);
                if let Err(e) = result {
                    tracing::debug!(error = %e, "forwarded TCP connection failed");
                    break;
                }
                let _ = tx.eof().await;
                if downstream_eof.load(Ordering::Relaxed) {
                    break;
                }
            }
            end = &mut downstream => match end {
                // russh answers the client's CLOSE itself.
                Downstream::Closed => return,
                Downstream::Done | Downstream::Failed => break,
            },
        }
    }
    let _ = tx.close().await;
}
