//! The id_token checks of `oidc::login` against a provider that misbehaves on purpose: a token
//! for another audience, an expired one, one from another issuer, one signed by a stranger.
//! (The happy path and state/nonce/iss tampering run against the real `oidc-provider` in
//! `tests/oidc_e2e.rs`; a certified provider cannot be made to issue these bad tokens.)

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sandbox_core::net::TlsSettings;
use sandbox_core::oidc::{login, LoginOptions, OidcError, OidcSettings};
use sandbox_test_support::oidc::fake::FakeProvider;
use serde_json::json;

struct Key {
    pem: Vec<u8>,
    n: String,
}

/// A fresh RSA key, made by `openssl`; `None` (said on stderr) where there is none to run, as on
/// Windows without Git's or under Wine.
fn rsa_key() -> Option<Key> {
    let pem = match Command::new("openssl").args(["genrsa", "2048"]).output() {
        Ok(out) => out.stdout,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: no openssl on PATH ({e}) to make the test's RSA keys");
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), &pem).unwrap();
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(dir.path().join("k.pem"))
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap().trim().trim_start_matches("Modulus=").to_owned();
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    Some(Key { pem, n: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes) })
}

/// Claims of the id_token the fake provider will issue, given the request's nonce.
type Mint = Box<dyn Fn(&str, &str) -> serde_json::Value + Send + Sync>;

/// A provider serving discovery, JWKS and a token endpoint whose id_token `mint` decides; with
/// the nonce the "browser" saw in the authorization request.
async fn fake_provider(published: &Key, signer: Arc<Key>, mint: Mint) -> (FakeProvider, Arc<Mutex<String>>) {
    let nonce = Arc::new(Mutex::new(String::new()));
    let jwk = json!({"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": published.n, "e": "AQAB"});
    let nonce_seen = nonce.clone();
    let provider = FakeProvider::start(vec![jwk]).await.with_token_endpoint(move |iss| {
        let claims = mint(iss, &nonce_seen.lock().unwrap());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_rsa_pem(&signer.pem).unwrap();
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": 60,
               "id_token": encode(&header, &claims, &key).unwrap()})
    });
    (provider, nonce)
}

/// Runs `login` with a "browser" that approves at once: it redirects to our loopback listener
/// with a code and the request's own state.
async fn run_login(issuer: &str, nonce_seen: Arc<Mutex<String>>) -> Result<(), OidcError> {
    let settings = OidcSettings {
        issuer: issuer.to_owned(),
        client_id: "cli".into(),
        scopes: vec!["openid".into()],
        audience: None,
    };
    let browser = move |url: &str| {
        let url = url::Url::parse(url).unwrap();
        let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
        *nonce_seen.lock().unwrap() = q("nonce");
        let callback = format!("{}?code=c&state={}", q("redirect_uri"), q("state"));
        std::thread::spawn(move || {
            let u = url::Url::parse(&callback).unwrap();
            let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).unwrap();
            use std::io::{Read, Write};
            write!(s, "GET {}?{} HTTP/1.1\r\nHost: x\r\n\r\n", u.path(), u.query().unwrap()).unwrap();
            let _ = s.read_to_end(&mut Vec::new());
        });
    };
    let tls = TlsSettings::default();
    let opts = LoginOptions {
        settings: &settings,
        tls: &tls,
        open_browser: &browser,
        timeout: Duration::from_secs(20),
    };
    login(opts).await.map(drop)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn verdict(published: &Key, signer: Arc<Key>, mint: Mint) -> Result<(), String> {
    let (provider, nonce) = fake_provider(published, signer, mint).await;
    run_login(&provider.issuer, nonce).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn only_a_well_formed_id_token_signs_in() {
    let Some(key) = rsa_key() else { return };
    let key = Arc::new(key);
    let good = |iss: &str, nonce: &str| json!({"iss": iss, "aud": "cli", "sub": "alice", "nonce": nonce, "iat": now(), "exp": now() + 300});
    verdict(&key, key.clone(), Box::new(good)).await.expect("a good id_token is accepted");

    let wrong_aud = |iss: &str, nonce: &str| json!({"iss": iss, "aud": "someone-else", "sub": "alice", "nonce": nonce, "iat": now(), "exp": now() + 300});
    let e = verdict(&key, key.clone(), Box::new(wrong_aud)).await.unwrap_err();
    assert!(e.contains("id_token failed verification") && e.to_lowercase().contains("audience"), "{e}");

    let expired = |iss: &str, nonce: &str| json!({"iss": iss, "aud": "cli", "sub": "alice", "nonce": nonce, "iat": now() - 7200, "exp": now() - 3600});
    let e = verdict(&key, key.clone(), Box::new(expired)).await.unwrap_err();
    assert!(e.contains("id_token failed verification") && e.to_lowercase().contains("expire"), "{e}");

    let other_iss = |_: &str, nonce: &str| json!({"iss": "https://evil.example", "aud": "cli", "sub": "alice", "nonce": nonce, "iat": now(), "exp": now() + 300});
    let e = verdict(&key, key.clone(), Box::new(other_iss)).await.unwrap_err();
    assert!(e.contains("id_token failed verification") && e.to_lowercase().contains("issuer"), "{e}");

    let stranger = Arc::new(rsa_key().expect("openssl ran a moment ago"));
    let e = verdict(&key, stranger, Box::new(good)).await.unwrap_err();
    assert!(e.contains("id_token failed verification") && e.to_lowercase().contains("signature"), "{e}");
}
