//! Half-close over protocol v1, between our client pump and a server pump with
//! `SpliceOptions::half_close` (our agent): the client's local EOF ends only its direction, the
//! target reads EOF and its whole reply still arrives. Without it (the original server) the
//! reply is lost, as before.

use std::time::Duration;

use sandbox_wire::handshake;
use sandbox_wire::tunnel::{splice, Role, SpliceOptions, TunnelSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A pair of our pumps over loopback TCP: the client's local side is `app`, the server's is a
/// target that reads its request to EOF, then answers with `reply` bytes and closes.
async fn tunnel(
    half_close: bool,
    reply: usize,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<(), sandbox_wire::tunnel::SpliceError>>,
    tokio::task::JoinHandle<Result<(), sandbox_wire::tunnel::SpliceError>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let ws = accept(tcp).await;
        let (pod_side, mut target) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut request = Vec::new();
            target.read_to_end(&mut request).await.unwrap();
            let mut answer = format!("got {}\n", request.len()).into_bytes();
            answer.resize(answer.len() + reply, b'x');
            // The pod side may be gone already (no half-close): then the answer has no reader.
            let _ = target.write_all(&answer).await;
            let _ = target.shutdown().await;
        });
        let (r, w) = tokio::io::split(pod_side);
        splice(ws, r, w, SpliceOptions { half_close, ..Default::default() }).await
    });
    let ws = connect(port).await;
    let (local, app) = tokio::io::duplex(64 * 1024);
    let client = tokio::spawn(async move {
        let (r, w) = tokio::io::split(local);
        splice(ws, r, w, SpliceOptions::default()).await
    });
    (app, client, server)
}

/// Our client's side of a tunnel to `127.0.0.1:port`, after its handshake.
async fn connect(port: u16) -> TunnelSocket<TcpStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let ahead = handshake::client(&mut tcp, &format!("127.0.0.1:{port}"), "/", &http::HeaderMap::new())
        .await
        .unwrap();
    TunnelSocket::new(tcp, Role::Client, &ahead.read_ahead)
}

/// The server half of the handshake, just enough for our client.
async fn accept(mut s: TcpStream) -> TunnelSocket<TcpStream> {
    answer_upgrade(&mut s).await;
    TunnelSocket::new(s, Role::Server, &[])
}

/// Reads the client's upgrade request and answers 101.
async fn answer_upgrade(s: &mut TcpStream) {
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
        .expect("key")
        .trim()
        .to_owned();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    s.write_all(answer.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn with_half_close_the_whole_reply_follows_the_local_eof() {
    let (mut app, client, server) = tunnel(true, 3 << 20).await;
    app.write_all(&[1u8; 100_000]).await.unwrap();
    app.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(LIMIT, app.read_to_end(&mut reply)).await.expect("in time").unwrap();
    assert!(
        reply.starts_with(b"got 100000\n"),
        "{:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(40)])
    );
    assert_eq!(reply.len(), "got 100000\n".len() + (3 << 20));
    let client = tokio::time::timeout(LIMIT, client).await.unwrap().unwrap();
    let server = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(client.is_ok() && server.is_ok(), "{client:?} {server:?}");
}

#[tokio::test]
async fn without_half_close_the_peer_close_ends_both_ways_as_before() {
    let (mut app, client, server) = tunnel(false, 10).await;
    app.write_all(b"request").await.unwrap();
    app.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(LIMIT, app.read_to_end(&mut reply)).await.expect("in time").unwrap();
    assert_eq!(reply, b"", "the original server's behaviour: the reply is lost");
    assert!(tokio::time::timeout(LIMIT, client).await.unwrap().unwrap().is_ok());
    assert!(tokio::time::timeout(LIMIT, server).await.unwrap().unwrap().is_ok());
}

#[tokio::test]
async fn a_half_closed_tunnel_ends_when_the_client_hangs_up() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let ws = accept(tcp).await;
        // A target that never answers and never closes.
        let (pod_side, target) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(pod_side);
        let result = splice(ws, r, w, SpliceOptions { half_close: true, ..Default::default() }).await;
        drop(target);
        result
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    handshake::client(&mut tcp, &format!("127.0.0.1:{port}"), "/", &http::HeaderMap::new()).await.unwrap();
    // A masked Close 1000 (mask 0: the payload stays as is), then the client is gone.
    tcp.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).await.unwrap();
    drop(tcp);
    let result = tokio::time::timeout(LIMIT, server).await.expect("the server pump ended").unwrap();
    assert!(result.is_ok(), "{result:?}");
}

/// After our EOF the reply may still be on its way: a peer that then falls silent (a stall, a
/// black-holed network) is a broken tunnel, not a clean end (it used to end `Ok` after 5 s).
#[tokio::test]
async fn a_peer_silent_after_our_eof_is_an_error_not_a_clean_end() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let _ws = accept(tcp).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let ws = connect(port).await;
    let (local, mut app) = tokio::io::duplex(1024);
    app.shutdown().await.unwrap();
    let (r, w) = tokio::io::split(local);
    // Silence is noticed after three intervals, 6 s: longer than the 5 s the old wait took.
    let opts = SpliceOptions { ping_interval: Some(Duration::from_secs(2)), ..Default::default() };
    let result = tokio::time::timeout(LIMIT, splice(ws, r, w, opts)).await.expect("gave up in time");
    assert!(matches!(result, Err(sandbox_wire::tunnel::SpliceError::PeerSilent(_))), "{result:?}");
    silent.abort();
}

/// A peer that answers a ping still in flight (a Pong) after our Close and then hangs up without
/// a Close of its own sent no reply: that is a clean end, as before half-close, not `Dropped`.
/// (Under Wine's timing the keepalive test in interop.rs met exactly this race.)
#[tokio::test]
async fn a_pong_after_our_close_is_not_a_reply() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        answer_upgrade(&mut tcp).await;
        // Wait for the client's Close (opcode 8, masked), answer a Pong, and hang up.
        let mut seen = Vec::new();
        let mut chunk = [0u8; 256];
        while !seen.contains(&0x88) {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "no Close from the client");
            seen.extend_from_slice(&chunk[..n]);
        }
        tcp.write_all(&[0x8A, 0x00]).await.unwrap(); // Pong, empty, unmasked (server)
        drop(tcp);
    });
    let ws = connect(port).await;
    let (local, mut app) = tokio::io::duplex(1024);
    app.shutdown().await.unwrap();
    let (r, w) = tokio::io::split(local);
    let opts = SpliceOptions { ping_interval: None, ..Default::default() };
    let result = tokio::time::timeout(LIMIT, splice(ws, r, w, opts)).await.expect("ended in time");
    assert!(result.is_ok(), "{result:?}");
    peer.await.unwrap();
}
