//! The HTTP API contract of `sandbox-agent`, checked on the wire: status codes, bodies, and the
//! WebSocket tunnel's close codes, exactly as the reference describes the original server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sandbox_agent::{run, AgentConfig, AuthMode};
use sandbox_test_support::aio::{echo_on, echo_server, request, InProcess};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn start(dev_mode: bool, ssh: bool) -> InProcess {
    InProcess::start(|listener, workspace, shutdown| {
        let config = AgentConfig {
            workspace: workspace.to_owned(),
            auth: AuthMode::ForwardedHeaders { dev_mode },
            ssh,
            port_forward: true,
            ..Default::default()
        };
        run(listener, config, shutdown)
    })
    .await
}

const SUB: (&str, &str) = ("X-Forwarded-Sub", "alice");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ8fBLAmfJ3oKbxLbYx0ixJ0KCb8whrMPmBthzdvHKX me@laptop";

#[tokio::test]
async fn identity_is_required_outside_dev_mode() {
    let s = start(false, true).await;
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &[], "").await;
    assert_eq!((status, body.trim()), (401, "missing identity headers"));
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &[SUB], "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["port"].as_u64().unwrap() > 0);
    assert!(v["host_key"].as_str().unwrap().starts_with("ssh-ed25519 "));

    let dev = start(true, true).await;
    assert_eq!(request(dev.port, "GET", "/api/ssh-port", &[], "").await.0, 200);
}

#[tokio::test]
async fn methods_bodies_and_disabled_features() {
    let s = start(false, true).await;
    assert_eq!(request(s.port, "POST", "/api/ssh-port", &[SUB], "").await.0, 405);
    assert_eq!(request(s.port, "GET", "/api/ssh-authorized-keys", &[SUB], "").await.0, 405);
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &[SUB, JSON], "{").await.0, 400);
    let empty = r#"{"public_key": ""}"#;
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &[SUB, JSON], empty).await.0, 400);
    let junk = r#"{"public_key": "ssh-ed25519 not-base64"}"#;
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &[SUB, JSON], junk).await.0, 400);
    let good = format!(r#"{{"public_key": "{KEY}"}}"#);
    let (status, body) = request(s.port, "POST", "/api/ssh-authorized-keys", &[SUB, JSON], &good).await;
    assert_eq!((status, body.as_str()), (201, ""));
    assert_eq!(request(s.port, "GET", "/api/nope", &[SUB], "").await.0, 404);
    assert_eq!(request(s.port, "GET", "/api/openapi.yaml", &[], "").await.0, 200);

    let no_ssh = start(false, false).await;
    assert_eq!(request(no_ssh.port, "GET", "/api/ssh-port", &[SUB], "").await.0, 404);
}

#[tokio::test]
async fn port_forward_validates_then_tunnels_then_closes() {
    let s = start(false, true).await;
    for bad in ["/api/port-forward", "/api/port-forward?port=80", "/api/port-forward?port=70000"] {
        let (status, body) = request(s.port, "GET", bad, &[SUB], "").await;
        assert_eq!((status, body.trim()), (400, "invalid port"), "{bad}");
    }

    // An echo server "in the pod".
    let echo_port = echo_server().await;
    let url = format!("ws://127.0.0.1:{}/api/port-forward?port={echo_port}", s.port);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-sub", "alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Binary(vec![7u8; 100_000].into())).await.unwrap();
    let mut got = 0;
    while got < 100_000 {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => {
                assert!(b.len() <= 32 * 1024 && b.iter().all(|&x| x == 7));
                got += b.len();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, 100_000, "binary echoed");
    ws.close(None).await.unwrap();

    // Nothing listens: close 1011 "dial failed".
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{}/api/port-forward?port={closed}", s.port);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-sub", "alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(f)) => assert_eq!((f.code, f.reason.as_str()), (CloseCode::Error, "dial failed")),
        other => panic!("unexpected {other:?}"),
    }
}

/// A server that took only `[::1]` (a dev server binding `localhost` on Node ≥ 17) is reached
/// too: the dial falls back to it when `127.0.0.1` refuses.
#[tokio::test]
async fn port_forward_reaches_a_server_listening_on_ipv6_loopback_only() {
    let Ok(echo) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    };
    let port = echo.local_addr().unwrap().port();
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the port is free on 127.0.0.1");
    echo_on(echo);
    let s = start(false, true).await;
    let url = format!("ws://127.0.0.1:{}/api/port-forward?port={port}", s.port);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-sub", "alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Binary(b"over ::1".to_vec().into())).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
        Message::Binary(b) => assert_eq!(&b[..], b"over ::1"),
        other => panic!("unexpected {other:?}"),
    }
    ws.close(None).await.unwrap();
}
