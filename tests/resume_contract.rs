//! Tunnel protocol v2's HTTP contract on a real agent (ARCHITECTURE.md, "Tunnel protocol v2"):
//! what a new tunnel is told, and who may resume it — the token's owner only (403 for another
//! subject, 410 for an unknown token or one whose window passed), every reconnect
//! authenticated again; v2 off (`--resume-window 0`) answers in v1.
#![cfg(unix)]

use std::time::Duration;

use sandbox_tests::{echo_server, Agent};
use sandbox_wire::handshake::{self, HandshakeError, Upgraded};
use sandbox_wire::resume::{RECEIVED_HEADER, RESUME_HEADER, SUBPROTOCOL, WINDOW_HEADER};
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
    assert!(body.contains("resume window passed or the agent restarted"), "{body}");

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
