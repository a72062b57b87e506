//! The OIDC peers work as the sign-in tests assume: a real OpenID provider (node-oidc-provider)
//! issuing RS256 JWT access tokens and rotating refresh tokens, and a real routing service (Apache
//! httpd + mod_auth_openidc) in front of a real `sandbox-agent`, checking those tokens and vouching
//! for their subject in `X-Forwarded-Sub`.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and Unix peers.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sandbox_test_support::{agent_command, AgentProcess};
use sandbox_tests::oidc::{
    http, jwt_claims, jwt_header, pkce_pair, OidcGateway, Provider, AUDIENCE, CLIENT_ID,
};
use sandbox_tests::{bin, eventually, free_port, Guard};
use serde_json::Value;

/// A `sandbox-agent` (not in dev mode: it 401s without `X-Forwarded-Sub`) whose log goes to a file.
struct LoggedAgent {
    _guard: Guard,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoggedAgent {
    fn start() -> LoggedAgent {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        let log = dir.path().join("agent.log");
        let mut cmd = agent_command(&bin("sandbox-agent"), &workspace, 0);
        cmd.stderr(std::fs::File::create(&log).unwrap());
        let agent = AgentProcess::start(cmd);
        LoggedAgent { _guard: agent.guard, port: agent.port, log, _dir: dir }
    }

    /// The log without ANSI colours.
    fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// GET through the gateway with optional bearer and extra headers: (status, headers, body).
fn get(url: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> (u16, ureq::http::HeaderMap, String) {
    let mut req = http().get(url);
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.body_mut().read_to_string().unwrap())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn discovery_advertises_s256_only_and_iss_in_the_callback() {
    let p = Provider::start(60);
    let (status, _, body) = get(&p.discovery_url(), None, &[]);
    assert_eq!(status, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["issuer"], p.issuer.as_str());
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["revocation_endpoint"], p.revocation_endpoint().as_str());
    assert_eq!(d["token_endpoint"], p.token_endpoint().as_str());
    assert!(d["scopes_supported"].as_array().unwrap().contains(&"offline_access".into()), "{d}");
}

#[test]
fn tokens_for_returns_an_rs256_jwt_access_token_for_the_api_and_a_refresh_token() {
    let p = Provider::start(300);
    let t = p.tokens_for("alice");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 300);
    assert!(str_of(&t, "scope").split(' ').any(|s| s == "offline_access"), "{t}");
    assert!(!str_of(&t, "refresh_token").is_empty());

    let at = str_of(&t, "access_token");
    let h = jwt_header(at);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["kid"], p.kid.as_str());
    let c = jwt_claims(at);
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["iss"], p.issuer.as_str());
    assert_eq!(c["client_id"], CLIENT_ID);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);

    let id = jwt_claims(str_of(&t, "id_token"));
    assert_eq!(jwt_header(str_of(&t, "id_token"))["alg"], "RS256");
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["iss"], p.issuer.as_str());
    assert!(id["nonce"].is_string(), "{id}");

    // The key files the gateway and the client's tests may use.
    for f in ["jwks.json", "signing-key.pem", "signing-cert.pem"] {
        assert!(p.keys_dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn refresh_rotates_and_reusing_a_rotated_token_revokes_the_grant() {
    let p = Provider::start(300);
    let t0 = p.tokens_for("alice");
    let rt0 = str_of(&t0, "refresh_token").to_owned();

    let (s, t1) = p.refresh(&rt0);
    assert_eq!(s, 200, "{t1}");
    let rt1 = str_of(&t1, "refresh_token").to_owned();
    assert_ne!(rt1, rt0, "refresh token not rotated");
    assert_ne!(t1["access_token"], t0["access_token"]);
    assert_eq!(jwt_claims(str_of(&t1, "access_token"))["aud"], AUDIENCE);
    assert_eq!(jwt_claims(str_of(&t1, "id_token"))["sub"], "alice");

    let (s, t2) = p.refresh(&rt1);
    assert_eq!(s, 200, "{t2}");
    let rt2 = str_of(&t2, "refresh_token").to_owned();
    assert_eq!(p.live_grants("alice").len(), 1);

    // Replay of a rotated token: refused, and the whole grant goes — the newest token too.
    let (s, e) = p.refresh(&rt0);
    assert_eq!((s, str_of(&e, "error")), (400, "invalid_grant"), "{e}");
    let (s, e) = p.refresh(&rt2);
    assert_eq!((s, str_of(&e, "error")), (400, "invalid_grant"), "{e}");
    assert!(p.live_grants("alice").is_empty());
}

#[test]
fn revocation_endpoint_and_admin_revoke_kill_refresh_tokens() {
    let p = Provider::start(300);
    let t = p.tokens_for("carol");
    let rt = str_of(&t, "refresh_token");
    // JWT access tokens are not stored, so they cannot be revoked (400 unsupported_token_type):
    // logout revokes the refresh token. Unknown tokens are a 200, as RFC 7009 says.
    assert_eq!(p.revoke(str_of(&t, "access_token"), Some("access_token")), 400);
    assert_eq!(p.revoke("no-such-token", None), 200);
    assert_eq!(p.revoke(rt, Some("refresh_token")), 200);
    let (s, e) = p.refresh(rt);
    assert_eq!((s, str_of(&e, "error")), (400, "invalid_grant"), "{e}");

    let a = p.tokens_for("bob");
    let b = p.tokens_for("bob");
    let other = p.tokens_for("dave");
    assert_eq!(p.revoke_all("bob"), 2);
    for t in [&a, &b] {
        let (s, e) = p.refresh(str_of(t, "refresh_token"));
        assert_eq!(s, 400, "{e}");
    }
    let (s, e) = p.refresh(str_of(&other, "refresh_token"));
    assert_eq!(s, 200, "{e}");
}

#[test]
fn authorization_requires_pkce_s256_and_a_loopback_redirect() {
    let p = Provider::start(60);
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let (verifier, challenge) = pkce_pair();

    // Any loopback port is fine (native client, RFC 8252 §7.3); callback has code, state and iss.
    let cb = p.authorize_until_callback(&p.authorization_url(&redirect, "st", "nn", &challenge), "erin");
    let cb = url::Url::parse(&cb).unwrap();
    let q: std::collections::HashMap<_, _> = cb.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st");
    assert_eq!(q["iss"], p.issuer);
    let code = q["code"].clone();

    // Wrong verifier: invalid_grant (oidc-provider checks PKCE before it consumes the code, so the
    // right verifier still works afterwards).
    let form = |v: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect.clone()),
            ("code_verifier", v.to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
        ]
    };
    let wrong = pkce_pair().0;
    let f = form(&wrong);
    let (s, e) = p.token_request(&f.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    assert_eq!((s, str_of(&e, "error")), (400, "invalid_grant"), "{e}");
    let f = form(&verifier);
    let (s, t) = p.token_request(&f.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    assert_eq!(s, 200, "{t}");
    // A code works once.
    let (s, e) = p.token_request(&f.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    assert_eq!((s, str_of(&e, "error")), (400, "invalid_grant"), "{e}");

    // No PKCE, or `plain`: the error comes back to the (valid) redirect URI.
    let no_pkce =
        p.authorization_url(&redirect, "st", "nn", &challenge).replace("&code_challenge_method=S256", "");
    let no_pkce = no_pkce.split("&code_challenge=").next().unwrap().to_owned();
    let cb = p.authorize_until_callback(&no_pkce, "erin");
    assert!(cb.contains("error=invalid_request"), "{cb}");
    let plain = p.authorization_url(&redirect, "st", "nn", &challenge).replace("method=S256", "method=plain");
    let cb = p.authorize_until_callback(&plain, "erin");
    assert!(cb.contains("error=invalid_request"), "{cb}");

    // A redirect URI that is not registered is never redirected to: an error page.
    for bad in [format!("http://localhost:{port}/callback"), format!("http://127.0.0.1:{port}/other")] {
        let r = p.try_authorize_until_callback(&p.authorization_url(&bad, "st", "nn", &challenge), "erin");
        assert!(matches!(&r, Err(e) if e.starts_with("400")), "{bad}: {r:?}");
    }
}

#[test]
fn complete_login_delivers_the_callback_to_the_loopback_listener() {
    let p = Provider::start(60);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nsigned in\n")
            .unwrap();
        String::from_utf8(req).unwrap()
    });
    let (_, challenge) = pkce_pair();
    let url = p.authorization_url(&format!("http://127.0.0.1:{port}/callback"), "s1", "n1", &challenge);
    let (status, body) = p.complete_login(&url, "frank");
    assert_eq!((status, body.as_str()), (200, "signed in\n"));
    let req = server.join().unwrap();
    let first = req.lines().next().unwrap();
    assert!(first.starts_with("GET /callback?code="), "{first}");
    assert!(first.contains("state=s1"), "{first}");
    assert!(
        first.contains(&format!(
            "iss={}",
            url::form_urlencoded::byte_serialize(p.issuer.as_bytes()).collect::<String>()
        )),
        "{first}"
    );
}

/// Raw WebSocket handshake to the agent's SSH port through the gateway; returns the status line
/// and, on 101, the first bytes the tunnel carried (the SSH banner in a binary frame).
fn websocket_ssh_banner(gateway: &OidcGateway, token: &str, ssh_port: u64) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", gateway.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/port-forward?port={ssh_port} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gateway.port
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && !String::from_utf8_lossy(&got).contains("SSH-2.0") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, text)
}

#[test]
fn gateway_admits_a_valid_token_as_its_subject_over_http_and_websocket() {
    let p = Provider::start(300);
    let agent = LoggedAgent::start();
    let gw = OidcGateway::start(agent.port, &p, AUDIENCE);
    let t = p.tokens_for("alice");
    let at = str_of(&t, "access_token");

    // The agent 401s without X-Forwarded-Sub, so 200 means the gateway set it.
    let (s, _, body) = get(&format!("http://127.0.0.1:{}/api/ssh-port", agent.port), None, &[]);
    assert_eq!(s, 401, "agent without the header: {body}");
    let (s, _, body) = get(&format!("{}/api/ssh-port", gw.url()), Some(at), &[]);
    assert_eq!(s, 200, "{body}\n{}", gw.error_log());
    let ssh_port = serde_json::from_str::<Value>(&body).unwrap()["port"].as_u64().unwrap();

    // A client-sent identity does not survive the gateway.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVs1Hcbd2RTLZL2eJ4WsVNrEfiBqo6KyK9McHA8WqgS test";
    let mut resp = http()
        .post(&format!("{}/api/ssh-authorized-keys", gw.url()))
        .header("Authorization", format!("Bearer {at}"))
        .header("X-Forwarded-Sub", "mallory")
        .header("X-Forwarded-User", "Mallory")
        .header("Content-Type", "application/json")
        .send(serde_json::json!({ "public_key": key }).to_string())
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{body}\n{}", gw.error_log());
    assert!(
        eventually(Duration::from_secs(5), || agent
            .log()
            .contains("registered SSH public key sub=alice user=None")),
        "{}",
        agent.log()
    );
    assert!(!agent.log().contains("mallory") && !agent.log().contains("Mallory"), "{}", agent.log());

    // WebSocket upgrade through the gateway reaches the agent's SSH server.
    let (status, text) = websocket_ssh_banner(&gw, at, ssh_port);
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols", "{text}\n{}", gw.error_log());
    assert!(text.contains("SSH-2.0-"), "{text}");
    // ... and not without a token.
    let (status, _) = websocket_ssh_banner(&gw, "not-a-token", ssh_port);
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
}

#[test]
fn gateway_rejects_missing_foreign_and_expired_tokens_with_401() {
    const TTL: u64 = 3;
    let p = Provider::start(TTL);
    let agent = LoggedAgent::start();
    let gw = OidcGateway::start(agent.port, &p, AUDIENCE);
    let url = format!("{}/api/ssh-port", gw.url());

    let t = p.tokens_for("alice");
    let issued = Instant::now();
    let at = str_of(&t, "access_token");
    let (s, _, body) = get(&url, Some(at), &[]);
    assert_eq!(s, 200, "fresh token: {body}\n{}", gw.error_log());

    let unauthorized = |bearer: Option<&str>, headers: &[(&str, &str)], what: &str| {
        let (s, h, body) = get(&url, bearer, headers);
        assert_eq!(s, 401, "{what}: {body}");
        assert_eq!(body, "unauthorized", "{what}");
        let www = h.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(www.starts_with("Bearer"), "{what}: {www:?}");
    };
    unauthorized(None, &[], "no token");
    unauthorized(None, &[("X-Forwarded-Sub", "alice")], "no token, forged subject");
    unauthorized(Some("garbage"), &[], "not a JWT");

    // Correctly signed, but for another audience.
    let other = p.tokens_for_resource("alice", Some("urn:other-api"));
    assert_eq!(jwt_claims(str_of(&other, "access_token"))["aud"], "other-api");
    unauthorized(Some(str_of(&other, "access_token")), &[], "wrong audience");
    // The ID token is a JWT from the same issuer and key, but its audience is the client.
    unauthorized(Some(str_of(&t, "id_token")), &[], "id_token as bearer");
    // Right audience, issuer-shaped, but signed by another key.
    let stranger = Provider::start(300);
    unauthorized(Some(str_of(&stranger.tokens_for("alice"), "access_token")), &[], "foreign signer");
    // A tampered payload (sub swapped) breaks the signature.
    let parts: Vec<&str> = at.split('.').collect();
    let mut claims = jwt_claims(at);
    claims["sub"] = "mallory".into();
    use base64::Engine as _;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    unauthorized(Some(&forged), &[], "tampered payload");

    // Expired.
    let wait = Duration::from_secs(TTL) + Duration::from_millis(1500);
    std::thread::sleep(wait.saturating_sub(issued.elapsed()));
    unauthorized(Some(at), &[], "expired");
    assert!(gw.error_log().contains("JWT expired"), "{}", gw.error_log());
    // A refreshed token works again.
    let (s, t2) = p.refresh(str_of(&t, "refresh_token"));
    assert_eq!(s, 200, "{t2}");
    let (s, _, body) = get(&url, Some(str_of(&t2, "access_token")), &[]);
    assert_eq!(s, 200, "refreshed token: {body}\n{}", gw.error_log());
}
