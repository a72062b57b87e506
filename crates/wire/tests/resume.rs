//! Protocol v2 end to end between two pumps: the byte streams both ways survive legs lost at
//! any moment, EOF travels per direction, and the replay buffer stays bounded.

use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use sandbox_wire::local::{LocalRead, Plain, TcpSource};
use sandbox_wire::resume::{Stream, REPLAY_LIMIT};
use sandbox_wire::tunnel::{splice_v2, Role, SpliceError, SpliceOptions, TunnelSocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(60);

fn opts() -> SpliceOptions<'static> {
    SpliceOptions { ping_interval: Some(Duration::from_secs(5)), ..Default::default() }
}

/// One application at a tunnel end: writes `payload` while reading until EOF; then (or, with
/// `eof_first`, as soon as its payload is written) sends its own EOF. A server sends its EOF
/// last: the client ends its side when the pod's ends, as in v1.
fn app<T>(io: T, payload: Vec<u8>, eof_first: bool) -> tokio::task::JoinHandle<Vec<u8>>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(io);
        let (read_all, all_read) = tokio::sync::oneshot::channel::<()>();
        let writer = async move {
            for chunk in payload.chunks(7_919) {
                w.write_all(chunk).await.unwrap();
            }
            if !eof_first {
                let _ = all_read.await;
            }
            w.shutdown().await.unwrap();
        };
        let reader = async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            let _ = read_all.send(());
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        got
    })
}

/// Carries two streams over legs that are cut after `cut(i)` for leg `i` (`None`: let it run),
/// as a network failure would: both pumps stop where they are.
async fn carry<CR, CW, SR, SW>(
    (mut cr, mut cw): (CR, CW),
    (mut sr, mut sw): (SR, SW),
    mut cut: impl FnMut(usize) -> Option<Duration>,
) -> (usize, Stream, Stream)
where
    CR: LocalRead,
    CW: AsyncWrite + Unpin,
    SR: LocalRead,
    SW: AsyncWrite + Unpin,
{
    let (mut client, mut server) = (Stream::new(), Stream::new());
    for leg in 0.. {
        // A new leg: each end learns what the other has written out, as the headers say.
        let (c_ws, s_ws) = tokio::io::duplex(256 * 1024);
        let (c_got, s_got) = (client.delivered(), server.delivered());
        client.resync(s_got).expect("client resyncs");
        server.resync(c_got).expect("server resyncs");
        let both = async {
            tokio::join!(
                splice_v2(TunnelSocket::new(c_ws, Role::Client, &[]), &mut cr, &mut cw, &mut client, opts()),
                splice_v2(TunnelSocket::new(s_ws, Role::Server, &[]), &mut sr, &mut sw, &mut server, opts()),
            )
        };
        let ended = match cut(leg) {
            Some(after) => tokio::time::timeout(after, both).await.ok(),
            None => Some(both.await),
        };
        match ended {
            Some((Ok(()), Ok(()))) => return (leg + 1, client, server),
            // One end closed and the other saw the leg end: the tunnel is over only if the
            // stream says so.
            Some((c, s)) => {
                for r in [c, s] {
                    if let Err(e) = r {
                        assert!(e.is_network(), "a lost leg is a network error: {e}");
                    }
                }
                if client.complete() && server.complete() {
                    return (leg + 1, client, server);
                }
            }
            None => {}
        }
    }
    unreachable!()
}

/// A local side that keeps nothing for us (a pipe, an in-memory stream).
fn plain(io: DuplexStream) -> (Plain<ReadHalf<DuplexStream>>, WriteHalf<DuplexStream>) {
    let (r, w) = tokio::io::split(io);
    (Plain(r), w)
}

/// Whether TCP local sides keep the bytes in the kernel: Linux 6.9 and later with a
/// `net.core.rmem_max` of a window (the CI machine has both); elsewhere (Windows under Wine, in
/// CI) the same tests cover a stream that keeps its bytes itself over TCP.
const KERNEL: bool = cfg!(target_os = "linux");

/// A local TCP connection: the application's end, and ours, whose receive queue keeps what
/// the peer has not acknowledged.
async fn tcp() -> (TcpStream, (TcpSource<OwnedReadHalf>, OwnedWriteHalf)) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    let (r, w) = ours.into_split();
    let source = TcpSource::new(r);
    assert_eq!(source.peeking(), KERNEL, "the kernel can keep the bytes");
    (app, (source, w))
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Both streams (24 and 16 MiB) across up to 25 legs, each cut after 1–40 ms; returns the
/// ends' streams once both applications have everything. A socket closed with bytes still
/// queued would reset an application's read and fail it.
async fn whole_across_random_cuts<A, CR, CW, SR, SW>(
    (c_app, c_local): (A, (CR, CW)),
    (s_app, s_local): (A, (SR, SW)),
    seed: u64,
) -> (Stream, Stream)
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    CR: LocalRead,
    CW: AsyncWrite + Unpin,
    SR: LocalRead,
    SW: AsyncWrite + Unpin,
{
    let up = random(24 << 20, seed);
    let down = random(16 << 20, seed + 1);
    let client_app = app(c_app, up.clone(), true);
    let target = app(s_app, down.clone(), false);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 2);
    let (legs, client, server) = tokio::time::timeout(
        LIMIT,
        carry(c_local, s_local, |leg| (leg < 25).then(|| Duration::from_millis(rng.random_range(1..40)))),
    )
    .await
    .expect("carried in time");
    let (at_target, at_client) = (target.await.unwrap(), client_app.await.unwrap());
    assert!(at_target == up, "upstream differs: {} of {} bytes", at_target.len(), up.len());
    assert!(at_client == down, "downstream differs: {} of {} bytes", at_client.len(), down.len());
    assert!(legs > 5, "only {legs} legs: the test did not cut any");
    assert_eq!((client.buffered(), server.buffered()), (0, 0), "all acknowledged");
    (client, server)
}

#[tokio::test]
async fn both_streams_arrive_whole_across_many_lost_legs() {
    let ends = |(app, local)| (app, plain(local));
    whole_across_random_cuts(ends(tokio::io::duplex(64 * 1024)), ends(tokio::io::duplex(64 * 1024)), 1).await;
}

#[tokio::test]
async fn with_the_bytes_kept_in_the_local_sockets_both_streams_arrive_whole_across_lost_legs() {
    let (client, server) = whole_across_random_cuts(tcp().await, tcp().await, 4).await;
    assert_eq!((client.in_kernel(), server.in_kernel()), (KERNEL, KERNEL), "the sockets kept the bytes");
}

/// The client sends a request and EOF first; the target reads to EOF, thinks, then answers.
/// The first leg is lost while the target is still thinking, after the request's EOF.
async fn request_eof_then_reply<A, CR, CW, SR, SW>(
    (c_app, c_local): (A, (CR, CW)),
    (s_app, s_local): (A, (SR, SW)),
) -> (Stream, Stream)
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    CR: LocalRead,
    CW: AsyncWrite + Unpin,
    SR: LocalRead,
    SW: AsyncWrite + Unpin,
{
    let client_app = tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(c_app);
        w.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    });
    let target = tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(s_app);
        let mut req = Vec::new();
        r.read_to_end(&mut req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello").await.unwrap();
        w.shutdown().await.unwrap();
        req
    });
    let (legs, client, server) = tokio::time::timeout(
        LIMIT,
        carry(c_local, s_local, |leg| (leg == 0).then_some(Duration::from_millis(150))),
    )
    .await
    .unwrap();
    assert_eq!(target.await.unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(client_app.await.unwrap(), b"HTTP/1.0 200 OK\r\n\r\nhello");
    assert_eq!(legs, 2);
    assert!(client.complete() && server.complete());
    (client, server)
}

#[tokio::test]
async fn eof_is_per_direction_and_the_reply_follows_it() {
    let ends = |(app, local)| (app, plain(local));
    request_eof_then_reply(ends(tokio::io::duplex(64 * 1024)), ends(tokio::io::duplex(64 * 1024))).await;
}

#[tokio::test]
async fn with_the_bytes_kept_in_the_kernel_eof_and_the_reply_survive_a_lost_leg() {
    let (client, server) = request_eof_then_reply(tcp().await, tcp().await).await;
    assert_eq!((client.in_kernel(), server.in_kernel()), (KERNEL, KERNEL), "the sockets kept the bytes");
}

#[tokio::test]
async fn a_peer_that_does_not_acknowledge_holds_the_sender_at_the_replay_limit() {
    // The server end never runs: the client's leg is a socket nobody reads beyond its buffer.
    let (c_app, c_local) = tokio::io::duplex(64 * 1024);
    let (c_ws, mut s_ws) = tokio::io::duplex(REPLAY_LIMIT * 4);
    let on_wire = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = on_wire.clone();
    let sink = tokio::spawn(async move {
        // Read (and drop) everything the client sends, acknowledging nothing.
        let mut buf = vec![0; 64 * 1024];
        while let Ok(k @ 1..) = s_ws.read(&mut buf).await {
            counted.fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let writer = tokio::spawn(async move {
        let (_r, mut w) = tokio::io::split(c_app);
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        while tokio::time::timeout(Duration::from_millis(500), w.write_all(&chunk)).await.is_ok() {
            written += chunk.len();
        }
        written
    });
    let (mut cr, mut cw) = tokio::io::split(c_local);
    let mut client = Stream::new();
    let result = tokio::time::timeout(
        Duration::from_secs(2),
        splice_v2(TunnelSocket::new(c_ws, Role::Client, &[]), Plain(&mut cr), &mut cw, &mut client, opts()),
    )
    .await;
    assert!(
        result.is_err(),
        "the pump waits for acknowledgements: {:?}",
        result.map(|r| r.map_err(|e: SpliceError| e.to_string()))
    );
    assert_eq!(client.buffered(), REPLAY_LIMIT, "the replay buffer fills to its limit and no further");
    let written = writer.await.unwrap();
    assert!(written <= REPLAY_LIMIT + 256 * 1024, "the local side was held back: {written} bytes taken");
    let on_wire = on_wire.load(std::sync::atomic::Ordering::Relaxed);
    assert!(on_wire as usize >= REPLAY_LIMIT, "what is kept was also sent: {on_wire}");
    sink.abort();
}

#[tokio::test]
async fn the_pods_end_ends_the_client_side_too_as_in_v1() {
    // The client's application sends a request and keeps its side open (a terminal that never
    // types EOF); the target answers and closes. The tunnel ends: the client follows the pod.
    let (c_app, c_local) = tokio::io::duplex(64 * 1024);
    let (s_app, s_local) = tokio::io::duplex(64 * 1024);
    let client_app = tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(c_app);
        w.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        (got, w)
    });
    let target = tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(s_app);
        let mut req = [0u8; 18];
        r.read_exact(&mut req).await.unwrap();
        w.write_all(b"HTTP/1.1 200 OK\r\n\r\nbye").await.unwrap();
        w.shutdown().await.unwrap();
        // A server that closed reads nothing more: its reader is dropped with it.
    });
    let (legs, client, _) =
        tokio::time::timeout(LIMIT, carry(plain(c_local), plain(s_local), |_| None)).await.expect("ended");
    assert_eq!(legs, 1);
    assert!(client.complete());
    target.await.unwrap();
    let (got, _keep_open) = client_app.await.unwrap();
    assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\nbye");
}

#[tokio::test]
async fn with_the_bytes_kept_in_the_kernel_a_new_leg_replays_with_nothing_new_to_read() {
    // The application wrote its request and waits for the answer: nothing new will arrive on
    // its socket, so the replay must not wait for the socket to become readable again.
    let (mut c_app, (mut cr, mut cw)) = tcp().await;
    let (mut s_app, (mut sr, mut sw)) = tcp().await;
    c_app.write_all(b"hello").await.unwrap();
    let (mut client, mut server) = (Stream::new(), Stream::new());
    // The first leg reaches nobody: what the client sends on it is lost with it.
    let (c_ws, _nobody) = tokio::io::duplex(64 * 1024);
    let leg = splice_v2(TunnelSocket::new(c_ws, Role::Client, &[]), &mut cr, &mut cw, &mut client, opts());
    assert!(tokio::time::timeout(Duration::from_millis(300), leg).await.is_err(), "the lost leg ended");
    assert_eq!((client.sent(), client.buffered()), (5, 5), "sent, and kept");
    assert_eq!(client.in_kernel(), KERNEL);

    client.resync(server.delivered()).unwrap();
    server.resync(client.delivered()).unwrap();
    let (c_ws, s_ws) = tokio::io::duplex(256 * 1024);
    let legs = async {
        tokio::join!(
            splice_v2(TunnelSocket::new(c_ws, Role::Client, &[]), &mut cr, &mut cw, &mut client, opts()),
            splice_v2(TunnelSocket::new(s_ws, Role::Server, &[]), &mut sr, &mut sw, &mut server, opts()),
        )
    };
    let request = async {
        let mut got = [0u8; 5];
        s_app.read_exact(&mut got).await.unwrap();
        got
    };
    tokio::select! {
        got = tokio::time::timeout(Duration::from_secs(5), request) => {
            assert_eq!(&got.expect("the request was replayed on the new leg"), b"hello");
        }
        ended = legs => panic!("the tunnel ended: {:?}", (ended.0.err(), ended.1.err())),
    }
    drop(c_app);
}
