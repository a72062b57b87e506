//! Tunnel protocol v2's HTTP contract on a real agent (ARCHITECTURE.md, "Tunnel protocol v2"):
//! what a new tunnel is told, and who may resume it — the token's owner only (403 for another
//! subject, 410 for an unknown token or one whose window passed), every reconnect
//! authenticated again; a tunnel that ended cleanly tells a late resume its end; v2 off
//! (`--resume-window 0`) answers in v1.
#![cfg(unix)]

use std::time::Duration;

use sandbox_tests::{echo_server, Agent};
use sandbox_wire::frame::{self, OpCode};
use sandbox_wire::handshake::{self, HandshakeError, Upgraded};
use sandbox_wire::resume::{RECEIVED_HEADER, RESUME_HEADER, SUBPROTOCOL, WINDOW_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One upgrade request to the agent as `sub`, with `extra` headers; the connection and answer.
async fn upgrade(
    agent: &Agent,
    port: u16,
    sub: &str,
    extra: &[(&'static str, &str)],
) -> (TcpStream, Result<Upgraded, HandshakeError>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", agent.port)).await.unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-sub", sub.parse().unwrap());
    for (name, value) in extra {
        headers.insert(*name, value.parse().unwrap());
    }
    let answer = handshake::client(
        &mut tcp,
        &format!("127.0.0.1:{}", agent.port),
        &format!("/api/port-forward?port={port}"),
        &headers,
    )
    .await;
    (tcp, answer)
}

fn refused_with(answer: Result<Upgraded, HandshakeError>) -> (u16, String) {
    match answer {
        Err(HandshakeError::Refused { status, body }) => (status, body),
        Err(e) => panic!("not refused but failed: {e}"),
        Ok(u) => panic!("not refused: upgraded with {:?}", u.headers),
    }
}

/// Drops a connection with a reset, as a broken network would end it.
fn reset(tcp: TcpStream) {
    tcp.set_zero_linger().unwrap();
    drop(tcp);
}

#[tokio::test]
async fn only_the_tokens_subject_resumes_and_a_gone_tunnel_says_so() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let target = echo_server();

    // A v2 tunnel: the answer names the subprotocol, a token, the window and a zero count.
    let (tcp, answer) = upgrade(&agent, target, "alice", &[("sec-websocket-protocol", SUBPROTOCOL)]).await;
    let first = answer.expect("upgraded");
    assert_eq!(first.protocol(), Some(SUBPROTOCOL));
    let token = first.header(RESUME_HEADER).expect("a resume token").to_owned();
    assert_eq!(token.len(), 43, "256 bits in URL-safe base64: {token}");
    assert_eq!(first.header(WINDOW_HEADER), Some("120"));
    assert_eq!(first.header(RECEIVED_HEADER), Some("0"));
    reset(tcp);

    let resume = |token: &str| {
        [("sec-websocket-protocol", SUBPROTOCOL), (RESUME_HEADER, token), (RECEIVED_HEADER, "0")]
            .map(|(n, v)| (n, v.to_owned()))
    };
    fn as_refs<'a>(h: &'a [(&'static str, String); 3]) -> Vec<(&'static str, &'a str)> {
        h.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    // Another subject with alice's token: refused, and the tunnel stays hers.
    let h = resume(&token);
    let (_, answer) = upgrade(&agent, target, "mallory", &as_refs(&h)).await;
    let (status, body) = refused_with(answer);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another user"), "{body}");

    // A token nobody was given.
    let h = resume("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let (_, answer) = upgrade(&agent, target, "alice", &as_refs(&h)).await;
    let (status, body) = refused_with(answer);
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("its resume window passed, or the agent restarted"), "{body}");

    // A resume without the subprotocol is not v2.
    let (_, answer) =
        upgrade(&agent, target, "alice", &[(RESUME_HEADER, &token), (RECEIVED_HEADER, "0")]).await;
    assert_eq!(refused_with(answer).0, 400);

    // Alice, authenticated again, gets her tunnel back with the agent's count.
    let h = resume(&token);
    let (_tcp, answer) = upgrade(&agent, target, "alice", &as_refs(&h)).await;
    let resumed = answer.expect("resumed");
    assert_eq!(resumed.protocol(), Some(SUBPROTOCOL));
    assert_eq!(resumed.header(RECEIVED_HEADER), Some("0"));
    assert_eq!(resumed.header(RESUME_HEADER), None, "the token is not sent again");

    // A count beyond what the agent sent is refused: the resume does not complete.
    let h =
        [("sec-websocket-protocol", SUBPROTOCOL), (RESUME_HEADER, token.as_str()), (RECEIVED_HEADER, "999")];
    let (_, answer) = upgrade(&agent, target, "alice", &h).await;
    assert!(answer.is_err(), "a resume at a byte never sent was accepted");
}

#[tokio::test]
async fn after_the_window_the_tunnel_is_gone() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode", "--resume-window", "1"]);
    let target = echo_server();
    let (tcp, answer) = upgrade(&agent, target, "alice", &[("sec-websocket-protocol", SUBPROTOCOL)]).await;
    let token = answer.unwrap().header(RESUME_HEADER).unwrap().to_owned();
    assert_eq!(token.len(), 43);
    reset(tcp);
    // The agent notices the reset at once and keeps the tunnel for 1 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let h =
        [("sec-websocket-protocol", SUBPROTOCOL), (RESUME_HEADER, token.as_str()), (RECEIVED_HEADER, "0")];
    let (_, answer) = upgrade(&agent, target, "alice", &h).await;
    assert_eq!(refused_with(answer).0, 410);
}

#[tokio::test]
async fn with_resumption_off_the_agent_answers_in_v1() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode", "--resume-window", "0"]);
    let target = echo_server();
    let (_tcp, answer) = upgrade(&agent, target, "alice", &[("sec-websocket-protocol", SUBPROTOCOL)]).await;
    let answer = answer.expect("upgraded");
    assert_eq!(answer.protocol(), None, "v2 offered although resumption is off");
    assert_eq!(answer.header(RESUME_HEADER), None);
    // A resume (an agent restarted without resumption) is told the tunnel is gone.
    let h = [("sec-websocket-protocol", SUBPROTOCOL), (RESUME_HEADER, "x"), (RECEIVED_HEADER, "0")];
    let (_, answer) = upgrade(&agent, target, "alice", &h).await;
    assert_eq!(refused_with(answer).0, 410);
}

/// Reads the next frame the agent sends (unmasked, unfragmented: the agent's control frames and
/// small messages), `buf` holding what was read past earlier frames.
async fn next_frame(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> (OpCode, Vec<u8>) {
    loop {
        if let Some((h, at)) = frame::parse_header(buf).unwrap() {
            let end = at + h.len as usize;
            if buf.len() >= end {
                let payload = buf[at..end].to_vec();
                buf.drain(..end);
                return (h.opcode, payload);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("the agent said nothing for 10 s")
            .unwrap();
        assert!(n > 0, "the agent hung up");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A client frame: masked, as RFC 6455 wants.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = [7, 1, 9, 3];
    let mut head = [0u8; frame::MAX_HEADER];
    let n = frame::encode_header(
        &frame::Header { fin: true, opcode, mask: Some(mask), len: payload.len() as u64 },
        &mut head,
    );
    let mut body = payload.to_vec();
    frame::apply_mask(&mut body, mask, 0);
    [&head[..n], &body[..]].concat()
}

/// The agent ends a tunnel cleanly (both streams over and acknowledged: its Close 1000 sent)
/// while the client's leg dies before that end reaches it. The client resumes: it is told the
/// end — the agent's count, `eof N`, Close 1000 — instead of a 410 "gone" that would turn a
/// complete transfer into a failed one.
#[tokio::test]
async fn a_resume_after_a_clean_end_is_told_the_end_not_gone() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    // "In the pod": reads the client's stream to its end, answers "bye", closes.
    let pod = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = pod.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = pod.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"bye").unwrap();
    });

    let (mut tcp, answer) =
        upgrade(&agent, target, "alice", &[("sec-websocket-protocol", SUBPROTOCOL)]).await;
    let first = answer.expect("upgraded");
    let token = first.header(RESUME_HEADER).unwrap().to_owned();
    let mut buf = first.read_ahead.clone();
    tcp.write_all(&client_frame(OpCode::Binary, b"hello")).await.unwrap();
    tcp.write_all(&client_frame(OpCode::Text, b"eof 5")).await.unwrap();
    // The agent's whole side: "bye", its end, our stream acknowledged — in some order.
    let (mut reply, mut heard) = (Vec::new(), Vec::new());
    while !(reply == b"bye" && heard.contains(&"eof 3".to_owned()) && heard.contains(&"ack 5".to_owned())) {
        match next_frame(&mut tcp, &mut buf).await {
            (OpCode::Binary, data) => reply.extend(data),
            (OpCode::Text, text) => heard.push(String::from_utf8(text).unwrap()),
            (OpCode::Ping | OpCode::Pong, _) => {}
            other => panic!("unexpected before the end: {other:?}"),
        }
    }
    tcp.write_all(&client_frame(OpCode::Text, b"ack 3")).await.unwrap();
    // Complete on the agent: it closes. The leg dies before the client reads that.
    loop {
        if let (OpCode::Close, payload) = next_frame(&mut tcp, &mut buf).await {
            assert_eq!(frame::parse_close(&payload).unwrap().0, 1000);
            break;
        }
    }
    reset(tcp);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let h =
        [("sec-websocket-protocol", SUBPROTOCOL), (RESUME_HEADER, token.as_str()), (RECEIVED_HEADER, "3")];
    let (mut tcp, answer) = upgrade(&agent, target, "alice", &h).await;
    let resumed = answer.expect("a clean end is not gone");
    assert_eq!(resumed.protocol(), Some(SUBPROTOCOL));
    assert_eq!(resumed.header(RECEIVED_HEADER), Some("5"), "all of the client's stream was written out");
    let mut buf = resumed.read_ahead.clone();
    assert_eq!(next_frame(&mut tcp, &mut buf).await, (OpCode::Text, b"eof 3".to_vec()));
    let (op, payload) = next_frame(&mut tcp, &mut buf).await;
    assert_eq!((op, frame::parse_close(&payload).unwrap().0), (OpCode::Close, 1000));

    // Another subject with that token is still refused.
    let (_, answer) = upgrade(&agent, target, "mallory", &h).await;
    assert_eq!(refused_with(answer).0, 403);
}
