//! Standalone OIDC bearer validation, with no network beyond loopback: a tiny OpenID provider
//! (`sandbox_test_support::oidc::fake`: discovery + JWKS, counting fetches) and tokens signed with locally generated keys.
//! First the validator on its own, then the agent over HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sandbox_agent::access::AccessPolicy;
use sandbox_agent::http::jwt::{JwksPolicy, JwtError, JwtValidator};
use sandbox_agent::http::{Authenticator, Identity, Rejection};
use sandbox_agent::{run, AgentConfig, AuthMode, Trust};
use sandbox_test_support::aio::{eventually, request_with_head, InProcess};
use sandbox_test_support::oidc::fake::FakeProvider;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const AUD: &str = "sandbox-api";

// ---------------------------------------------------------------------------------------------
// Keys and tokens

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// The public JWK as the provider publishes it.
    jwk: Value,
    /// The public key as PEM (RSA only), for the algorithm-confusion attack.
    public_pem: Option<String>,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn publish(encoding: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(encoding, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_value(jwk).unwrap()
}

fn rsa_key(kid: &str) -> TestKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap();
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        aws_lc_rs::signature::KeyPair::public_key(&pair),
    )
    .unwrap();
    let jwk = publish(&encoding, Algorithm::RS256, kid);
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding,
        jwk,
        public_pem: Some(pem("PUBLIC KEY", spki.as_ref())),
    }
}

fn ed25519_key(kid: &str) -> TestKey {
    let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
        .unwrap();
    let encoding = EncodingKey::from_ed_der(doc.as_ref());
    let jwk = publish(&encoding, Algorithm::EdDSA, kid);
    TestKey { kid: kid.to_owned(), alg: Algorithm::EdDSA, encoding, jwk, public_pem: None }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Typical access-token claims from `issuer` for alice.
fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUD,
        "sub": "alice-sub",
        "preferred_username": "alice",
        "groups": ["devs", "ops"],
        "iat": now(),
        "exp": now() + 300,
        "scope": "openid",
    })
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64url(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// The public JWKs of `keys`, as the provider publishes them.
fn jwks(keys: &[&TestKey]) -> Vec<Value> {
    keys.iter().map(|k| k.jwk.clone()).collect()
}

fn invalid(reason: &'static str) -> Result<Identity, JwtError> {
    Err(JwtError::Invalid(reason))
}

// ---------------------------------------------------------------------------------------------
// The validator

#[tokio::test]
async fn valid_token_gives_sub_user_and_groups() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    assert_eq!(p.jwks_fetches(), 0, "nothing is fetched before the first token");

    let id = v.validate(&sign(&key, &claims(&p.issuer))).await.unwrap();
    assert_eq!(
        id,
        Identity {
            sub: "alice-sub".into(),
            user: Some("alice".into()),
            groups: vec!["devs".into(), "ops".into()]
        }
    );

    // `aud` as an array; `name` when there is no `preferred_username`; no groups.
    let mut c = claims(&p.issuer);
    c["aud"] = json!(["other-api", AUD]);
    c.as_object_mut().unwrap().remove("preferred_username");
    c.as_object_mut().unwrap().remove("groups");
    c["name"] = json!("Alice A.");
    let id = v.validate(&sign(&key, &c)).await.unwrap();
    assert_eq!((id.user.as_deref(), id.groups.len()), (Some("Alice A."), 0));

    // A token without kid is matched to the only key that fits.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = None;
    let t = jsonwebtoken::encode(&header, &claims(&p.issuer), &key.encoding).unwrap();
    assert_eq!(v.validate(&t).await.unwrap().sub, "alice-sub");
    assert_eq!(p.jwks_fetches(), 1, "the JWKS is cached");
}

#[tokio::test]
async fn claims_are_checked() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&p.issuer);
        f(&mut c);
        sign(&key, &c)
    };

    assert_eq!(v.validate(&with(&|c| c["iss"] = json!("http://127.0.0.1:1"))).await, invalid("wrong issuer"));
    assert_eq!(
        v.validate(&with(&|c| c["iss"] = json!(format!("{}/", p.issuer)))).await,
        invalid("wrong issuer")
    );
    assert_eq!(v.validate(&with(&|c| c["aud"] = json!("other-api"))).await, invalid("wrong audience"));
    assert_eq!(v.validate(&with(&|c| c["aud"] = json!(["a", "b"]))).await, invalid("wrong audience"));
    assert_eq!(v.validate(&with(&|c| c["exp"] = json!(now() - 120))).await, invalid("expired"));
    assert!(v.validate(&with(&|c| c["exp"] = json!(now() - 30))).await.is_ok(), "within the leeway");
    assert_eq!(v.validate(&with(&|c| c["nbf"] = json!(now() + 300))).await, invalid("not yet valid"));
    assert!(v.validate(&with(&|c| c["nbf"] = json!(now() + 30))).await.is_ok(), "within the leeway");
    assert_eq!(v.validate(&with(&|c| c["sub"] = json!(""))).await, invalid("empty sub"));
    for claim in ["sub", "exp", "aud", "iss"] {
        let t = with(&|c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert!(matches!(v.validate(&t).await, Err(JwtError::Invalid(_))), "{claim}");
    }

    // A changed payload under the original signature.
    let good = with(&|_| {});
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = claims(&p.issuer);
    c["sub"] = json!("mallory");
    parts[1] = b64url(&c);
    assert_eq!(v.validate(&parts.join(".")).await, invalid("bad signature"));

    // Signed by a key the provider does not publish, under the published kid.
    let stranger = rsa_key("k1");
    assert_eq!(v.validate(&sign(&stranger, &claims(&p.issuer))).await, invalid("bad signature"));

    for junk in ["", "abc", "a.b.c", "a.b.c.d"] {
        let e = v.validate(junk).await.unwrap_err();
        assert_eq!(e, JwtError::Invalid("malformed"), "{junk:?}");
    }
}

#[tokio::test]
async fn alg_none_and_hmac_confusion_are_rejected() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    let c = claims(&p.issuer);

    let unsigned = format!("{}.{}.", b64url(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})), b64url(&c));
    assert_eq!(v.validate(&unsigned).await, invalid("signature algorithm not allowed"));
    let unsigned = format!("{}.{}.", b64url(&json!({"alg": "None", "kid": "k1"})), b64url(&c));
    assert_eq!(v.validate(&unsigned).await, invalid("signature algorithm not allowed"));

    // HS256 "signed" with the public key as the shared secret: the classic confusion attack.
    let public_pem = key.public_pem.clone().unwrap();
    for secret in [public_pem.as_bytes(), key.jwk["n"].as_str().unwrap().as_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("k1".into());
            let forged = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(secret)).unwrap();
            assert_eq!(v.validate(&forged).await, invalid("signature algorithm not allowed"), "{alg:?}");
        }
    }

    // An RSA key used with an algorithm of another family.
    let ed = ed25519_key("k1");
    assert_eq!(v.validate(&sign(&ed, &c)).await, invalid("signature algorithm does not match the key"));
    assert!(v.validate(&sign(&key, &c)).await.is_ok());
}

#[tokio::test]
async fn symmetric_keys_in_the_jwks_are_never_used() {
    let key = rsa_key("rsa");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let secret = b"a shared secret that must never verify anything";
    let oct = json!({"kty": "oct", "kid": "hmac", "alg": "HS256",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)});
    p.add_key(oct);
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let forged =
        jsonwebtoken::encode(&header, &claims(&p.issuer), &EncodingKey::from_secret(secret)).unwrap();
    assert_eq!(v.validate(&forged).await, invalid("signature algorithm not allowed"));
    assert!(v.validate(&sign(&key, &claims(&p.issuer))).await.is_ok());
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_accepts_the_rotated_key() {
    let old = rsa_key("old");
    let new = ed25519_key("new");
    let p = FakeProvider::start(jwks(&[&old])).await;
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    assert!(v.validate(&sign(&old, &claims(&p.issuer))).await.is_ok());
    assert_eq!(p.jwks_fetches(), 1);

    // The provider rotates to an Ed25519 key and signs with it at once.
    p.set_keys(jwks(&[&new]));
    let id = v.validate(&sign(&new, &claims(&p.issuer))).await.unwrap();
    assert_eq!(id.sub, "alice-sub");
    assert_eq!(p.jwks_fetches(), 2, "exactly one refetch for the unknown kid");

    // The old kid is now unknown too, but the refetch budget is spent: no further fetch.
    assert_eq!(v.validate(&sign(&old, &claims(&p.issuer))).await, invalid("unknown signing key"));
    assert_eq!(v.validate(&sign(&new, &claims(&p.issuer))).await.unwrap().sub, "alice-sub");
    assert_eq!(p.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_interval() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    // Default policy: one refetch per 30 s.
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    assert!(v.validate(&sign(&key, &claims(&p.issuer))).await.is_ok());
    let strangers: Vec<TestKey> = (0..3).map(|i| ed25519_key(&format!("made-up-{i}"))).collect();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let v = v.clone();
        let token = sign(&strangers[i % 3], &claims(&p.issuer));
        tasks.push(tokio::spawn(async move { v.validate(&token).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), invalid("unknown signing key"));
    }
    assert_eq!(p.jwks_fetches(), 2, "one initial fetch + one refetch for 60 unknown kids");

    // With a short interval: the next refetch happens only after it has passed.
    let policy = JwksPolicy { min_refetch_interval: Duration::from_millis(400), ..JwksPolicy::default() };
    let v = JwtValidator::with_policy(&p.issuer, AUD, policy).unwrap();
    let before = p.jwks_fetches();
    for _ in 0..10 {
        assert_eq!(
            v.validate(&sign(&strangers[0], &claims(&p.issuer))).await,
            invalid("unknown signing key")
        );
    }
    assert_eq!(p.jwks_fetches(), before + 2, "initial fetch + one refetch");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        assert_eq!(
            v.validate(&sign(&strangers[1], &claims(&p.issuer))).await,
            invalid("unknown signing key")
        );
    }
    assert_eq!(p.jwks_fetches(), before + 3, "one more refetch after the interval");
}

#[tokio::test]
async fn provider_down_is_503_then_recovers() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    p.set_down(true);
    let policy = JwksPolicy { failure_backoff: Duration::from_millis(300), ..JwksPolicy::default() };
    let v = JwtValidator::with_policy(&p.issuer, AUD, policy).unwrap();
    let token = sign(&key, &claims(&p.issuer));
    assert_eq!(v.validate(&token).await, Err(JwtError::ProviderUnavailable));
    assert_eq!(JwtError::ProviderUnavailable.to_string(), "cannot reach the identity provider");
    // Within the backoff nobody asks the provider again.
    p.set_down(false);
    for _ in 0..5 {
        assert_eq!(v.validate(&token).await, Err(JwtError::ProviderUnavailable));
    }
    assert_eq!((p.discovery_fetches(), p.jwks_fetches()), (0, 0));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(v.validate(&token).await.unwrap().sub, "alice-sub");
    assert_eq!(p.jwks_fetches(), 1);
}

#[tokio::test]
async fn stale_keys_are_refreshed_and_kept_when_the_provider_is_down() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let policy = JwksPolicy {
        max_age: Duration::from_millis(200),
        failure_backoff: Duration::from_millis(100),
        ..JwksPolicy::default()
    };
    let v = JwtValidator::with_policy(&p.issuer, AUD, policy).unwrap();
    let token = sign(&key, &claims(&p.issuer));
    assert!(v.validate(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Served from the cache at once; the refresh runs in the background.
    assert!(v.validate(&token).await.is_ok());
    assert!(eventually(Duration::from_secs(5), || p.jwks_fetches() == 2).await, "refreshed once stale");
    assert!(v.validate(&token).await.is_ok());
    assert_eq!(p.jwks_fetches(), 2, "fresh again");
    p.set_down(true);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(v.validate(&token).await.is_ok(), "old keys still serve while the provider is down");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(v.validate(&token).await.is_ok(), "and after the refresh failed");
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    p.set_discovery_issuer("https://evil.example");
    let v = JwtValidator::new(&p.issuer, AUD).unwrap();
    assert_eq!(v.validate(&sign(&key, &claims(&p.issuer))).await, Err(JwtError::ProviderUnavailable));
    assert_eq!(p.jwks_fetches(), 0, "the JWKS of a mismatched document is not even fetched");

    // Trailing slash tolerated: configured with one, the provider spells it without.
    let p = FakeProvider::start(jwks(&[&key])).await;
    let v = JwtValidator::new(&format!("{}/", p.issuer), AUD).unwrap();
    assert!(v.validate(&sign(&key, &claims(&p.issuer))).await.is_ok());
}

#[tokio::test]
async fn forged_forwarded_headers_are_ignored_in_bearer_mode() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let auth = Authenticator::Bearer(JwtValidator::new(&p.issuer, AUD).unwrap());
    let mut h = http::HeaderMap::new();
    h.insert("x-forwarded-sub", "mallory".parse().unwrap());
    h.insert("x-forwarded-user", "mallory".parse().unwrap());
    h.insert("x-forwarded-groups", "admins".parse().unwrap());
    assert_eq!(auth.identify(&h).await, Err(Rejection::Bearer(JwtError::MissingToken)));
    let bearer = format!("Bearer {}", sign(&key, &claims(&p.issuer)));
    h.insert("authorization", bearer.parse().unwrap());
    let id = auth.identify(&h).await.unwrap();
    assert_eq!((id.sub.as_str(), id.user.as_deref()), ("alice-sub", Some("alice")));
    assert_eq!(id.groups, vec!["devs".to_owned(), "ops".to_owned()]);

    // Header mode still trusts them (and ignores a bearer).
    let headers = Authenticator::ForwardedHeaders { dev_mode: false };
    assert_eq!(headers.identify(&h).await.unwrap().sub, "mallory");
}

// ---------------------------------------------------------------------------------------------
// The agent over HTTP

/// An agent whose owner is alice (`sub` of [`claims`]).
async fn start_agent(issuer: &str) -> InProcess {
    let owner = Trust { access: AccessPolicy::new(["alice-sub"], [""; 0]), ..Default::default() };
    start_agent_with(issuer, "groups", owner).await
}

async fn start_agent_with(issuer: &str, groups_claim: &str, trust: Trust) -> InProcess {
    let auth = AuthMode::Oidc {
        issuer: issuer.to_owned(),
        audience: AUD.to_owned(),
        groups_claim: groups_claim.to_owned(),
    };
    InProcess::start(|listener, workspace, shutdown| {
        let config = AgentConfig {
            workspace: workspace.to_owned(),
            auth,
            ssh: true,
            port_forward: true,
            trust,
            ..Default::default()
        };
        run(listener, config, shutdown)
    })
    .await
}

/// One request with no body; returns (status, head, body).
async fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    request_with_head(port, method, path, headers, "").await
}

#[tokio::test]
async fn agent_requires_a_valid_bearer_and_ignores_forwarded_headers() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let agent = start_agent(&p.issuer).await;
    let www = "www-authenticate: bearer error=\"invalid_token\"";

    let (status, head, body) = request(agent.port, "GET", "/api/ssh-port", &[]).await;
    assert_eq!((status, body.as_str()), (401, "missing bearer token\n"));
    assert!(head.contains(www), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");

    let forged = [("X-Forwarded-Sub", "alice"), ("X-Forwarded-User", "alice")];
    let (status, _, body) = request(agent.port, "GET", "/api/ssh-port", &forged).await;
    assert_eq!((status, body.trim()), (401, "missing bearer token"), "X-Forwarded-Sub is not trusted");

    let (status, _, body) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", "Basic YTpi")]).await;
    assert_eq!((status, body.trim()), (401, "missing bearer token"));

    let mut expired = claims(&p.issuer);
    expired["exp"] = json!(now() - 3600);
    let expired = sign(&key, &expired);
    let bearer = format!("Bearer {expired}");
    let (status, head, body) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer)]).await;
    assert_eq!((status, body.as_str()), (401, "invalid token: expired\n"));
    assert!(head.contains(www), "{head}");
    assert!(!body.contains(&expired[..20]) && !head.contains(&expired[..20].to_ascii_lowercase()));

    let bearer = format!("Bearer {}", sign(&key, &claims(&p.issuer)));
    let (status, _, body) = request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["host_key"].as_str().unwrap().starts_with("ssh-ed25519 "));
    let (status, _, _) = request(
        agent.port,
        "GET",
        "/api/ssh-port",
        &[("Authorization", &bearer), ("X-Forwarded-Sub", "mallory")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(request(agent.port, "GET", "/api/nope", &[("Authorization", &bearer)]).await.0, 404);

    // The spec stays public; everything else under /api/ needs the token first.
    assert_eq!(request(agent.port, "GET", "/api/openapi.yaml", &[]).await.0, 200);
    assert_eq!(request(agent.port, "GET", "/api/nope", &[]).await.0, 401);

    // The tunnel upgrade works with a bearer (here to a port where nothing listens).
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let path = format!("/api/port-forward?port={closed}");
    let ws = [
        ("Authorization", bearer.as_str()),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    for (k, v) in ws {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"HTTP/1.1 101");
}

#[tokio::test]
async fn a_token_for_the_audience_is_not_an_owner() {
    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let bearer = |c: &Value| format!("Bearer {}", sign(&key, c));
    let mut bob = claims(&p.issuer);
    bob["sub"] = json!("bob-sub");

    // Owner by subject: alice, not bob.
    let agent = start_agent(&p.issuer).await;
    let (status, _, _) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer(&claims(&p.issuer)))]).await;
    assert_eq!(status, 200);
    let (status, _, body) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer(&bob))]).await;
    assert_eq!((status, body.lines().count()), (403, 1), "{body}");
    assert!(body.contains("\"bob-sub\" may not use this sandbox"), "{body}");

    // Owners by group, read from the configured claim.
    let admins = Trust { access: AccessPolicy::new([""; 0], ["admins"]), ..Default::default() };
    let agent = start_agent_with(&p.issuer, "roles", admins).await;
    bob["roles"] = json!(["admins"]);
    let (status, _, _) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer(&bob))]).await;
    assert_eq!(status, 200, "bob's roles name admins");
    let mut alice = claims(&p.issuer);
    alice["groups"] = json!(["admins"]);
    alice["roles"] = json!("viewers");
    let (status, _, _) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer(&alice))]).await;
    assert_eq!(status, 403, "the groups claim is not the one configured");
    alice["roles"] = json!("admins");
    let (status, _, _) =
        request(agent.port, "GET", "/api/ssh-port", &[("Authorization", &bearer(&alice))]).await;
    assert_eq!(status, 200, "one role as a string");
}

/// A log sink for one test (the test's runtime is this thread's).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_subject_cannot_forge_a_log_line() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = rsa_key("k1");
    let p = FakeProvider::start(jwks(&[&key])).await;
    let agent =
        start_agent_with(&p.issuer, "groups", Trust { allow_any_subject: true, ..Default::default() }).await;
    let mut forger = claims(&p.issuer);
    forger["sub"] =
        json!("mallory\n2026-11-29T00:00:00.000000Z  INFO FORGED: registered SSH public key sub=alice");
    let bearer = format!("Bearer {}", sign(&key, &forger));
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ8fBLAmfJ3oKbxLbYx0ixJ0KCb8whrMPmBthzdvHKX me@laptop";
    let body = json!({ "public_key": public }).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).await.unwrap();
    let req = format!(
        "POST /api/ssh-authorized-keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("mallory\\n2026"), "the subject is logged, escaped: {log}");
    assert!(log.lines().all(|l| !l.starts_with("2026-11-29T00:00:00.000000Z")), "a forged line: {log}");
}

#[tokio::test]
async fn agent_answers_503_while_the_provider_is_unreachable_then_recovers() {
    let key = rsa_key("k1");
    // A port where nothing listens yet.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let agent = start_agent(&issuer).await;
    let bearer = format!("Bearer {}", sign(&key, &claims(&issuer)));
    let auth = [("Authorization", bearer.as_str())];

    let (status, head, body) = request(agent.port, "GET", "/api/ssh-port", &auth).await;
    assert_eq!((status, body.as_str()), (503, "cannot reach the identity provider\n"));
    assert!(head.contains("content-type: text/plain"), "{head}");
    // A missing token is still a 401, provider or not.
    assert_eq!(request(agent.port, "GET", "/api/ssh-port", &[]).await.0, 401);

    // The provider comes up on that port; within the failure backoff (5 s) the agent recovers.
    let p = FakeProvider::serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), jwks(&[&key]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = request(agent.port, "GET", "/api/ssh-port", &auth).await;
        if status == 200 {
            break;
        }
        assert_eq!((status, body.trim()), (503, "cannot reach the identity provider"));
        assert!(tokio::time::Instant::now() < deadline, "agent never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(p.jwks_fetches(), 1);
}

#[tokio::test]
async fn bad_oidc_configuration_fails_run() {
    for (issuer, audience) in
        [("http://id.example.com", AUD), ("not a url", AUD), ("https://id.example.com", "")]
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = AgentConfig {
            workspace: std::env::temp_dir(),
            auth: AuthMode::Oidc {
                issuer: issuer.into(),
                audience: audience.into(),
                groups_claim: "groups".into(),
            },
            ssh: false,
            port_forward: false,
            trust: Trust { allow_any_subject: true, ..Default::default() },
            ..Default::default()
        };
        let e = run(listener, config, CancellationToken::new()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{issuer} {audience}: {e}");
    }
}

#[test]
fn command_line_flags() {
    let agent = env!("CARGO_BIN_EXE_sandbox-agent");
    let out = std::process::Command::new(agent)
        .args([
            "--api-addr",
            "127.0.0.1:0",
            "--dev-mode",
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--audience",
            AUD,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dev-mode cannot be combined with --oidc-issuer"), "{err}");
    assert!(out.stdout.is_empty(), "nothing listened");

    for args in [&["--oidc-issuer", "http://127.0.0.1:1"][..], &["--audience", AUD][..]] {
        let out = std::process::Command::new(agent)
            .args(["--api-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: clap usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("required"), "{err}");
    }

    let out = std::process::Command::new(agent)
        .args(["--api-addr", "127.0.0.1:0", "--oidc-issuer", "http://id.example.com", "--audience", AUD])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must use https"));
}
