//! Our frame pump and handshake against an independent WebSocket implementation
//! (tokio-tungstenite) on loopback: bytes arrive intact both ways, whatever the frame sizes,
//! fragmentation, interleaved text and pings; close codes and protocol errors are reported.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sandbox_wire::frame::{self, Header, OpCode};
use sandbox_wire::handshake::{self, HandshakeError};
use sandbox_wire::tunnel::{splice, Role, SpliceError, SpliceOptions, TunnelSocket, MAX_MESSAGE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode as TOp};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Our client end: connects, upgrades with our handshake.
async fn our_client(port: u16) -> TunnelSocket<TcpStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let host = format!("127.0.0.1:{port}");
    let ahead = handshake::client(&mut tcp, &host, "/api/port-forward?port=1", &http::HeaderMap::new())
        .await
        .expect("upgrade");
    TunnelSocket::new(tcp, Role::Client, &ahead.read_ahead)
}

/// The server side of the handshake, by hand (as the agent does it with hyper).
async fn accept_by_hand(l: &TcpListener) -> (TcpStream, Vec<u8>) {
    let (mut s, _) = l.accept().await.unwrap();
    let mut buf = Vec::new();
    let end = loop {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "client hung up mid request");
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
        .expect("key header")
        .trim()
        .to_owned();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    s.write_all(resp.as_bytes()).await.unwrap();
    (s, buf.split_off(end))
}

/// A tungstenite server that echoes binary messages, sending a text message before each echo and
/// a ping every seventh; returns the largest message it got and the pongs it saw.
fn tungstenite_echo(l: TcpListener) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        // Sent at once, so it may ride in the same segment as the 101: the read-ahead path.
        ws.send(Message::binary(b"first".to_vec())).await.unwrap();
        let (mut largest, mut pongs, mut n) = (0, 0, 0);
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Binary(b) => {
                    largest = largest.max(b.len());
                    n += 1;
                    // Text is ignored by contract and pings are answered, between data.
                    ws.send(Message::text("ignore me")).await.unwrap();
                    if n % 7 == 0 {
                        ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
                    }
                    ws.send(Message::Binary(b)).await.unwrap();
                }
                Message::Pong(p) => {
                    assert_eq!(&p[..], b"are you there");
                    pongs += 1;
                }
                Message::Close(_) => break,
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (largest, pongs)
    })
}

/// Sends 3 MiB in odd write sizes through a client pump on `ws` to the echo server and checks
/// every byte comes back after "first"; then ends the tunnel with a local EOF.
async fn echo_through<S, L>(ws: TunnelSocket<S>, local: L, mut app: tokio::io::DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    L: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (lr, lw) = tokio::io::split(local);
    let pump = tokio::spawn(async move { splice(ws, lr, lw, SpliceOptions::default()).await });
    let data = pattern(3 << 20, 7);
    let (mut app_r, mut app_w) = tokio::io::split(&mut app);
    let send = async {
        // Odd write sizes: small (interactive) and large (bulk) reads both happen.
        let mut at = 0;
        for size in [1usize, 5, 4096, 70_000, 1 << 20].iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            app_w.write_all(&data[at..end]).await.unwrap();
            at = end;
        }
    };
    let recv = async {
        let mut got = vec![0; 5 + data.len()];
        app_r.read_exact(&mut got).await.unwrap();
        got
    };
    let (_, got) = tokio::time::timeout(LIMIT, async { tokio::join!(send, recv) }).await.expect("in time");
    assert_eq!(&got[..5], b"first");
    assert!(got[5..] == data[..], "echoed bytes differ");
    app_w.shutdown().await.unwrap();
    let result = tokio::time::timeout(LIMIT, pump).await.expect("pump ends").unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn client_pump_carries_bytes_through_a_tungstenite_server() {
    let (l, port) = listener().await;
    let server = tungstenite_echo(l);
    let (local, app) = tokio::io::duplex(64 * 1024);
    echo_through(our_client(port).await, local, app).await;
    let (largest, pongs) = server.await.unwrap();
    assert!(largest <= MAX_MESSAGE, "a message of {largest} bytes exceeds the 32 KiB rule");
    assert!(pongs > 0, "pings were not answered");
}

/// Delegates to `T` but cannot `writev` (as some TLS or pipe wrappers): the pump must then
/// send each batch as one staged buffer and deliver payload piece by piece.
struct NoVectored<T>(T);

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for NoVectored<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for NoVectored<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn connections_that_cannot_writev_carry_the_same_bytes() {
    let (l, port) = listener().await;
    let server = tungstenite_echo(l);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let host = format!("127.0.0.1:{port}");
    let ahead = handshake::client(&mut tcp, &host, "/", &http::HeaderMap::new()).await.unwrap();
    let ws = TunnelSocket::new(NoVectored(tcp), Role::Client, &ahead.read_ahead);
    let (local, app) = tokio::io::duplex(64 * 1024);
    echo_through(ws, NoVectored(local), app).await;
    let (largest, _) = server.await.unwrap();
    assert!(largest <= MAX_MESSAGE);
}

#[tokio::test]
async fn keepalive_keeps_an_idle_tunnel_and_gives_up_on_a_silent_peer() {
    let opts = || SpliceOptions { ping_interval: Some(Duration::from_millis(50)), ..Default::default() };
    // A live peer answers the pings (tungstenite does while reading): idle for 12 intervals, fine.
    let (l, port) = listener().await;
    let _server = tungstenite_echo(l);
    let ws = our_client(port).await;
    let (local, mut app) = tokio::io::duplex(1024);
    let (lr, lw) = tokio::io::split(local);
    let pump = tokio::spawn(async move { splice(ws, lr, lw, opts()).await });
    let mut first = [0; 5];
    app.read_exact(&mut first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!pump.is_finished(), "a tunnel to a live peer ended while idle");
    app.shutdown().await.unwrap();
    assert!(tokio::time::timeout(LIMIT, pump).await.unwrap().unwrap().is_ok());

    // A peer that accepted and then went silent (a dropped NAT mapping, say).
    let (l, port) = listener().await;
    let silent = tokio::spawn(async move {
        let (tcp, _) = accept_by_hand(&l).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tcp);
    });
    let ws = our_client(port).await;
    let (local, _app) = tokio::io::duplex(1024);
    let (lr, lw) = tokio::io::split(local);
    let err = tokio::time::timeout(LIMIT, splice(ws, lr, lw, opts())).await.unwrap().unwrap_err();
    assert!(matches!(err, SpliceError::PeerSilent(_)), "{err:?}");
    silent.abort();
}

#[tokio::test]
async fn server_pump_reassembles_what_a_tungstenite_client_sends() {
    let (l, port) = listener().await;
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), tcp).await.unwrap();
        let big = pattern(1 << 20, 3);
        // One 1 MiB frame (larger than our buffers), a fragmented message with a ping in the
        // middle, then a normal close.
        ws.send(Message::binary(big.clone())).await.unwrap();
        ws.send(Message::Frame(Frame::message(b"frag-".to_vec(), TOp::Data(Data::Binary), false)))
            .await
            .unwrap();
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        ws.send(Message::Frame(Frame::message(b"ment".to_vec(), TOp::Data(Data::Continue), true)))
            .await
            .unwrap();
        ws.send(Message::binary(b"end".to_vec())).await.unwrap();
        ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await.unwrap();
        let mut pong = false;
        while let Some(Ok(m)) = ws.next().await {
            pong |= matches!(m, Message::Pong(ref p) if &p[..] == b"p");
        }
        (big, pong)
    });
    let (tcp, ahead) = accept_by_hand(&l).await;
    let ws = TunnelSocket::new(tcp, Role::Server, &ahead);
    let (local, mut app) = tokio::io::duplex(16 * 1024);
    let (lr, lw) = tokio::io::split(local);
    let pump = tokio::spawn(async move { splice(ws, lr, lw, SpliceOptions::default()).await });
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, app.read_to_end(&mut got)).await.expect("in time").unwrap();
    let result = tokio::time::timeout(LIMIT, pump).await.unwrap().unwrap();
    assert!(result.is_ok(), "{result:?}");
    let (big, pong) = client.await.unwrap();
    let mut want = big;
    want.extend_from_slice(b"frag-mentend");
    assert!(got == want, "got {} bytes, want {}", got.len(), want.len());
    assert!(pong, "the ping inside the fragmented message was not answered");
}

#[tokio::test]
async fn a_close_code_from_the_pod_is_reported_with_its_meaning() {
    let (l, port) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let close = CloseFrame { code: CloseCode::Error, reason: "dial failed".into() };
        ws.close(Some(close)).await.unwrap();
        while ws.next().await.is_some() {}
    });
    let ws = our_client(port).await;
    let (local, _app) = tokio::io::duplex(1024);
    let (lr, lw) = tokio::io::split(local);
    let err =
        tokio::time::timeout(LIMIT, splice(ws, lr, lw, SpliceOptions::default())).await.unwrap().unwrap_err();
    assert!(matches!(err, SpliceError::Closed { code: 1011, .. }), "{err:?}");
    assert!(err.to_string().contains("nothing is listening on that port"), "{err}");
}

#[tokio::test]
async fn a_refused_upgrade_keeps_its_status_and_body() {
    let (l, port) = listener().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"token absent").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let err = handshake::client(&mut tcp, "x", "/", &http::HeaderMap::new()).await.unwrap_err();
    match err {
        HandshakeError::Refused { status: 401, body } => assert_eq!(body, "token absent"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_masked_frame_from_a_server_is_a_protocol_error() {
    let (l, port) = listener().await;
    tokio::spawn(async move {
        let (mut tcp, _) = accept_by_hand(&l).await;
        let mut head = [0; frame::MAX_HEADER];
        let h = Header { fin: true, opcode: OpCode::Binary, mask: Some([1, 2, 3, 4]), len: 3 };
        let n = frame::encode_header(&h, &mut head);
        tcp.write_all(&head[..n]).await.unwrap();
        tcp.write_all(b"abc").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let ws = our_client(port).await;
    let (local, _app) = tokio::io::duplex(1024);
    let (lr, lw) = tokio::io::split(local);
    let err =
        tokio::time::timeout(LIMIT, splice(ws, lr, lw, SpliceOptions::default())).await.unwrap().unwrap_err();
    assert!(matches!(err, SpliceError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn a_connection_dropped_without_close_is_an_error_not_a_clean_end() {
    let (l, port) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = accept_by_hand(&l).await;
        drop(tcp);
    });
    let ws = our_client(port).await;
    let (local, _app) = tokio::io::duplex(1024);
    let (lr, lw) = tokio::io::split(local);
    let err =
        tokio::time::timeout(LIMIT, splice(ws, lr, lw, SpliceOptions::default())).await.unwrap().unwrap_err();
    assert!(matches!(err, SpliceError::Dropped | SpliceError::WebSocket(_)), "{err:?}");
}
