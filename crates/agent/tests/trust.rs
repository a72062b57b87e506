//! Who may use a sandbox, checked on the wire: the owner allow-list in every mode (and what it
//! means for registered SSH keys), header-mode hardening (repeated identity headers, the
//! gateway's secret), browsers (`Origin`, `Content-Type`), the tunnel to the API's own port,
//! and what key registrations may cost. Loopback only; `ssh` children die with their handles.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use sandbox_agent::access::AccessPolicy;
use sandbox_agent::authorized_keys::KeyLimits;
use sandbox_agent::{run, AgentConfig, AuthMode, GatewaySecret, Trust};
use sandbox_test_support::aio::{request, InProcess};
use sandbox_test_support::{agent_command, AgentProcess};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn start(auth: AuthMode, trust: Trust) -> InProcess {
    InProcess::start(|listener, workspace, shutdown| {
        let workspace = workspace.to_owned();
        let config =
            AgentConfig { workspace, auth, ssh: true, port_forward: true, trust, ..Default::default() };
        run(listener, config, shutdown)
    })
    .await
}

fn header_mode() -> AuthMode {
    AuthMode::ForwardedHeaders { dev_mode: false }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ALICE: (&str, &str) = ("X-Forwarded-Sub", "alice");

/// A syntactically valid ed25519 public key line from 32 bytes.
fn ed25519_line(seed: u8) -> String {
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[seed; 32][..]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-ed25519 {}", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// An RSA public key line with a modulus of `bits` bits (not a real key: parsing is all the
/// agent does with it before the size check).
fn rsa_line(bits: usize) -> String {
    let mut blob = Vec::new();
    let mut n = vec![0xc5u8; bits / 8];
    n.insert(0, 0); // mpint: a leading zero keeps it positive.
    for part in [&b"ssh-rsa"[..], &[1, 0, 1][..], &n[..]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-rsa {}", base64::engine::general_purpose::STANDARD.encode(blob))
}

fn key_body(line: &str) -> String {
    serde_json::json!({ "public_key": line }).to_string()
}

#[tokio::test]
async fn an_identity_header_given_twice_is_refused() {
    let s = start(header_mode(), Trust::default()).await;
    let two_subs = [("X-Forwarded-Sub", "mallory"), ALICE];
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &two_subs, "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("x-forwarded-sub given more than once"), "{body}");
    let two_groups = [ALICE, ("X-Forwarded-Groups", "a"), ("X-Forwarded-Groups", "b")];
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &two_groups, "").await.0, 400);
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &[ALICE], "").await.0, 200);
}

#[tokio::test]
async fn the_allow_list_admits_owners_only_in_every_mode() {
    let trust = || Trust { access: AccessPolicy::new(["alice"], ["devs"]), ..Default::default() };
    let s = start(header_mode(), trust()).await;
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &[ALICE], "").await.0, 200);
    let carol = [("X-Forwarded-Sub", "carol"), ("X-Forwarded-Groups", "ops, devs")];
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &carol, "").await.0, 200);
    let bob = [("X-Forwarded-Sub", "bob"), ("X-Forwarded-Groups", "ops")];
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &bob, "").await;
    assert_eq!(status, 403);
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.starts_with("subject \"bob\" may not use this sandbox"), "{body}");
    // Refused before any endpoint runs: no key, no tunnel.
    let post = [bob[0], bob[1], JSON];
    assert_eq!(
        request(s.port, "POST", "/api/ssh-authorized-keys", &post, &key_body(&ed25519_line(1))).await.0,
        403
    );
    assert_eq!(request(s.port, "GET", "/api/port-forward?port=2000", &bob, "").await.0, 403);

    // Token mode: the token holder is subject "local"; the allow-list still applies.
    let token = AuthMode::Token("t0ken".into());
    let bearer = ("Authorization", "Bearer t0ken");
    let s = start(token.clone(), trust()).await;
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &[bearer], "").await.0, 403);
    let s = start(token, Trust { access: AccessPolicy::new(["local"], [""; 0]), ..Default::default() }).await;
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &[bearer], "").await.0, 200);
}

#[tokio::test]
async fn oidc_without_an_owner_does_not_start() {
    let oidc = AuthMode::Oidc {
        issuer: "http://127.0.0.1:1".into(),
        audience: "sandbox-api".into(),
        groups_claim: "groups".into(),
    };
    let config = |trust| AgentConfig { auth: oidc.clone(), trust, ..Default::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = run(listener, config(Trust::default()), CancellationToken::new()).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("--allow-sub"), "{e}");
    let addr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(config(Trust { allow_any_subject: true, ..Default::default() }).check(addr), Ok(vec![]));
    let owner = Trust { access: AccessPolicy::new(["alice"], [""; 0]), ..Default::default() };
    assert_eq!(config(owner).check(addr), Ok(vec![]));
}

fn keygen(path: &Path) -> String {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// `ssh … true` straight to the embedded server's loopback port; whether it logged in.
async fn ssh_login(port: u16, key: &Path) -> bool {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(key)
        .args(["-p", &port.to_string(), "me@127.0.0.1", "true"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("ssh hung").unwrap();
    out.status.success()
}

#[tokio::test]
async fn keys_stop_working_once_their_owner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    let public = keygen(&key);
    let trust = Trust { access: AccessPolicy::new([""; 0], ["devs"]), ..Default::default() };
    let s = start(header_mode(), trust).await;
    let in_devs = [ALICE, ("X-Forwarded-Groups", "devs")];
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &in_devs, "").await;
    assert_eq!(status, 200, "{body}");
    let ssh_port = serde_json::from_str::<serde_json::Value>(&body).unwrap()["port"].as_u64().unwrap() as u16;
    let post = [in_devs[0], in_devs[1], JSON];
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &post, &key_body(&public)).await.0, 201);
    assert!(ssh_login(ssh_port, &key).await, "alice in devs logs in");

    // Alice left devs: her next request is refused, and her key with it.
    let (status, _) =
        request(s.port, "GET", "/api/ssh-port", &[ALICE, ("X-Forwarded-Groups", "ops")], "").await;
    assert_eq!(status, 403);
    assert!(!ssh_login(ssh_port, &key).await, "a refused subject's key no longer logs in");
}

#[tokio::test]
async fn only_the_gateway_may_call_when_it_has_a_secret() {
    let trust = Trust { gateway_secret: GatewaySecret::new("g4teway-s3cret"), ..Default::default() };
    let s = start(header_mode(), trust).await;
    const SECRET: &str = "X-Sandbox-Gateway-Secret";
    let (status, body) = request(s.port, "GET", "/api/ssh-port", &[ALICE], "").await;
    assert_eq!(status, 403);
    assert!(body.contains("did not come through the gateway") && !body.contains("g4teway"), "{body}");
    for wrong in ["g4teway-s3creT", "g4teway-s3cret-", "g4teway", ""] {
        assert_eq!(
            request(s.port, "GET", "/api/ssh-port", &[ALICE, (SECRET, wrong)], "").await.0,
            403,
            "{wrong}"
        );
    }
    let twice = [ALICE, (SECRET, "g4teway-s3cret"), (SECRET, "g4teway-s3cret")];
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &twice, "").await.0, 403);
    assert_eq!(request(s.port, "GET", "/api/openapi.yaml", &[], "").await.0, 403, "every request");
    assert_eq!(
        request(s.port, "GET", "/api/ssh-port", &[ALICE, (SECRET, "g4teway-s3cret")], "").await.0,
        200
    );
}

#[tokio::test]
async fn web_pages_are_refused_unless_their_origin_is_allowed() {
    let trust = Trust { allowed_origins: vec!["https://ide.example.com".into()], ..Default::default() };
    let s = start(AuthMode::ForwardedHeaders { dev_mode: true }, trust).await;
    let key = key_body(&ed25519_line(7));
    // What any web page can do without a CORS preflight: a text/plain POST, a WebSocket.
    let evil = ("Origin", "https://evil.example");
    let (status, body) = request(s.port, "POST", "/api/ssh-authorized-keys", &[evil, JSON], &key).await;
    assert_eq!(status, 403);
    assert!(body.contains("--allow-origin"), "{body}");
    let ws = [
        evil,
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(request(s.port, "GET", "/api/port-forward?port=2000", &ws, "").await.0, 403);
    assert_eq!(request(s.port, "GET", "/api/ssh-port", &[("Origin", "null")], "").await.0, 403);
    // Without a Content-Type of JSON, no key is taken even from our own clients.
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        let (status, body) = request(s.port, "POST", "/api/ssh-authorized-keys", &headers, &key).await;
        assert_eq!(status, 415, "{ct:?}: {body}");
    }
    let json_charset = ("Content-Type", "application/json; charset=utf-8");
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &[json_charset], &key).await.0, 201);
    let allowed = ("Origin", "https://IDE.example.com:443");
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &[allowed, JSON], &key).await.0, 201);
}

#[tokio::test]
async fn no_tunnel_to_the_agents_own_api() {
    let s = start(header_mode(), Trust::default()).await;
    let path = format!("/api/port-forward?port={}", s.port);
    let ws = [
        ALICE,
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (status, body) = request(s.port, "GET", &path, &ws, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("own API port"), "{body}");
}

#[tokio::test]
async fn key_registrations_are_bounded() {
    let trust = Trust { key_limits: KeyLimits { total: 3, ..Default::default() }, ..Default::default() };
    let s = start(header_mode(), trust).await;
    let post = |sub: &'static str| [("X-Forwarded-Sub", sub), JSON];
    // Size: RSA up to 16384 bits; a 376k-bit key (accepted before) is refused.
    assert_eq!(
        request(s.port, "POST", "/api/ssh-authorized-keys", &post("a"), &key_body(&rsa_line(16384))).await.0,
        201
    );
    let (status, body) =
        request(s.port, "POST", "/api/ssh-authorized-keys", &post("a"), &key_body(&rsa_line(16392))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("larger than the 16384 bits"), "{body}");
    let (status, _) =
        request(s.port, "POST", "/api/ssh-authorized-keys", &post("a"), &key_body(&rsa_line(376_000))).await;
    assert_eq!(status, 413);
    // Total: a fourth key is refused, whoever sends it; a known one is still fine.
    for (i, sub) in ["b", "c"].into_iter().enumerate() {
        let body = key_body(&ed25519_line(i as u8));
        assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &post(sub), &body).await.0, 201);
    }
    let (status, body) =
        request(s.port, "POST", "/api/ssh-authorized-keys", &post("d"), &key_body(&ed25519_line(9))).await;
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("holds 3 SSH keys"), "{body}");
    let again = key_body(&ed25519_line(0));
    assert_eq!(request(s.port, "POST", "/api/ssh-authorized-keys", &post("b"), &again).await.0, 201);
}

#[test]
fn command_line_refusals() {
    let agent = env!("CARGO_BIN_EXE_sandbox-agent");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(agent).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} started");
        assert!(out.stdout.is_empty(), "{args:?}: nothing listened");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--api-addr", "0.0.0.0:0", "--dev-mode"]);
    assert!(err.contains("--dev-mode") && err.contains("loopback"), "{err}");
    let err = run(&["--api-addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--audience", "a"]);
    assert!(err.contains("--allow-sub"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("secret");
    std::fs::write(&empty, "\n").unwrap();
    let err = run(&["--api-addr", "127.0.0.1:0", "--gateway-secret-file", empty.to_str().unwrap()]);
    assert!(err.contains("--gateway-secret-file") && err.contains("is empty"), "{err}");
    let err = run(&["--api-addr", "127.0.0.1:0", "--allow-origin", "https://x.example/path"]);
    assert!(err.contains("--allow-origin"), "{err}");
}

#[tokio::test]
async fn the_command_line_wires_the_trust_flags() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("gateway-secret");
    std::fs::write(&secret, "s3cret-from-file\nignored second line\n").unwrap();
    let mut cmd = agent_command(Path::new(env!("CARGO_BIN_EXE_sandbox-agent")), dir.path(), 0);
    cmd.arg("--gateway-secret-file")
        .arg(&secret)
        .args(["--allow-sub", "alice", "--allow-group", "devs", "--allow-origin", "https://ide.example.com"])
        .stderr(std::process::Stdio::null());
    // Killed by PID when the test ends, even on panic.
    let agent = AgentProcess::start(cmd);
    let port = agent.port;
    let gw = ("X-Sandbox-Gateway-Secret", "s3cret-from-file");
    assert_eq!(request(port, "GET", "/api/ssh-port", &[ALICE], "").await.0, 403, "no secret");
    assert_eq!(request(port, "GET", "/api/ssh-port", &[ALICE, gw], "").await.0, 200);
    let carol = [gw, ("X-Forwarded-Sub", "carol"), ("X-Forwarded-Groups", "devs")];
    assert_eq!(request(port, "GET", "/api/ssh-port", &carol, "").await.0, 200);
    assert_eq!(request(port, "GET", "/api/ssh-port", &[gw, ("X-Forwarded-Sub", "bob")], "").await.0, 403);
    let page = ("Origin", "https://ide.example.com");
    assert_eq!(request(port, "GET", "/api/ssh-port", &[gw, ALICE, page], "").await.0, 200);
    let other = ("Origin", "https://other.example.com");
    assert_eq!(request(port, "GET", "/api/ssh-port", &[gw, ALICE, other], "").await.0, 403);
}
