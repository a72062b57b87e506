//! The reference for what any tunnel of ours could reach on this machine: bare TCP relays with
//! no WebSocket and no masking, on the same tokio and the same 1 MiB buffers as ours. The run
//! chains two of them (the hops our tunnel has: local end, server end) and, for ssh, carries
//! ssh's ProxyCommand pipes straight to the SSH port.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Bytes each direction moves per read, as ours does under bulk load.
const BUF: usize = 1 << 20;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Accepts on `127.0.0.1:listen` and relays each connection to `127.0.0.1:target`.
pub async fn tcp(listen: u16, target: u16) -> io::Result<()> {
    let listener = TcpListener::bind(loopback(listen)).await?;
    loop {
        let (mut a, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut b) = TcpStream::connect(loopback(target)).await else { return };
            let _ = (a.set_nodelay(true), b.set_nodelay(true));
            let _ = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUF, BUF).await;
        });
    }
}

/// Relays stdin/stdout (ssh's ProxyCommand pipes, through the same reactor-driven stdio as
/// ours) to `127.0.0.1:target` until either side ends.
pub async fn stdio(target: u16) -> io::Result<()> {
    let mut tcp = TcpStream::connect(loopback(target)).await?;
    tcp.set_nodelay(true)?;
    let (r, mut w) = tcp.split();
    let mut input = BufReader::with_capacity(BUF, sandbox_core::stdio::stdin());
    let mut output = sandbox_core::stdio::stdout();
    let up = async {
        tokio::io::copy_buf(&mut input, &mut w).await?;
        w.shutdown().await
    };
    let down = async { tokio::io::copy_buf(&mut BufReader::with_capacity(BUF, r), &mut output).await };
    tokio::select! {
        r = up => r,
        r = down => r.map(drop),
    }
}
