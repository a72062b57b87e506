//! `GET /api/listening-ports` of a real `sandbox-agent` process: a listener another process
//! opens in the "pod" (python3, a child of this test) is listed with its process name while it
//! runs and gone once it stops; the agent's own ports never are; the endpoint passes the same
//! identity, allow-list and feature checks as every other.
//!
//! Every process is a child killed by PID when its guard drops, also on failure.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox_test_support::{agent_command, python_listener, AgentProcess};

/// Starts `sandbox-agent` (header mode) with `flags`; returns it (killed by PID on drop) and
/// its workspace.
fn agent(flags: &[&str]) -> (AgentProcess, tempfile::TempDir) {
    let workspace = tempfile::tempdir().unwrap();
    let mut cmd = agent_command(Path::new(env!("CARGO_BIN_EXE_sandbox-agent")), workspace.path(), 0);
    cmd.args(flags).stderr(Stdio::null());
    (AgentProcess::start(cmd), workspace)
}

/// One request; returns (status, content type, body).
fn get(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

const ALICE: &str = "X-Forwarded-Sub: alice";

fn listed(api: u16) -> Vec<(u64, Option<String>)> {
    let (status, content_type, body) = get(api, "GET", "/api/listening-ports", &[ALICE]);
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("no ports array: {body}"))
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["process"].as_str().map(str::to_owned)))
        .collect()
}

#[test]
fn a_listener_in_the_pod_is_listed_with_its_process_until_it_stops() {
    let (server, _ws) = agent(&[]);
    let api = server.port;
    let (python, v4, v6) = python_listener(true);
    let (_, _, body) = get(api, "GET", "/api/ssh-port", &[ALICE]);
    let ssh: u64 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["port"].as_u64().unwrap();

    let ports = listed(api);
    let find = |port: u16| ports.iter().find(|(p, _)| *p == u64::from(port));
    let (_, name) = find(v4).unwrap_or_else(|| panic!("127.0.0.1:{v4} not listed: {ports:?}"));
    assert!(name.as_deref().is_some_and(|n| n.starts_with("python3")), "process of {v4}: {name:?}");
    if let Some(v6) = v6 {
        assert!(find(v6).is_some(), "[::]:{v6} not listed: {ports:?}");
    }
    assert!(find(api).is_none() && !ports.iter().any(|(p, _)| *p == ssh), "the agent's own: {ports:?}");
    assert!(ports.windows(2).all(|w| w[0].0 < w[1].0), "sorted, one per port: {ports:?}");
    assert!(ports.iter().all(|(p, _)| *p >= 1024), "{ports:?}");

    drop(python);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed(api).iter().any(|(p, _)| *p == u64::from(v4)) {
        assert!(Instant::now() < deadline, "{v4} still listed after python3 stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_same_checks_as_every_endpoint() {
    let (server, _ws) = agent(&["--allow-sub", "alice"]);
    let api = server.port;
    let (status, _, body) = get(api, "GET", "/api/listening-ports", &[]);
    assert_eq!((status, body.trim()), (401, "missing identity headers"));
    let (status, _, body) = get(api, "GET", "/api/listening-ports", &["X-Forwarded-Sub: mallory"]);
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = get(api, "GET", "/api/listening-ports", &[ALICE, "Origin: https://evil.example"]);
    assert_eq!(status, 403, "a web page");
    assert_eq!(get(api, "POST", "/api/listening-ports", &[ALICE]).0, 405);
    assert_eq!(get(api, "GET", "/api/listening-ports", &[ALICE]).0, 200);

    let (no_forwarding, _ws) = agent(&["--no-port-forward"]);
    let off = no_forwarding.port;
    assert_eq!(get(off, "GET", "/api/listening-ports", &[ALICE]).0, 404, "off with port forwarding");
    let (_, _, spec) = get(off, "GET", "/api/openapi.yaml", &[]);
    assert!(spec.contains("/api/listening-ports:"), "documented in the served spec");
}
