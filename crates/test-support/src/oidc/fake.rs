//! A tiny OpenID provider on loopback, for what a certified one cannot be made to do: serve a
//! discovery document, the JWKS the test sets (counting fetches), and a token endpoint whose
//! answer the test writes (a bad id_token); go down (503) and come back; name another issuer.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The token endpoint's JSON answer, given the issuer.
type TokenEndpoint = Box<dyn Fn(&str) -> Value + Send>;

#[derive(Default)]
struct State {
    keys: Vec<Value>,
    /// Answer 503 to everything.
    down: bool,
    /// The `issuer` the discovery document names (default: the real one).
    discovery_issuer: Option<String>,
    token: Option<TokenEndpoint>,
    jwks_fetches: usize,
    discovery_fetches: usize,
}

/// A running fake provider at `http://127.0.0.1:PORT`; its task stops when it drops.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// On a free loopback port, publishing `keys` (public JWKs).
    pub async fn start(keys: Vec<Value>) -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, keys)
    }

    /// On `listener` (a port chosen earlier, e.g. one the agent already names).
    pub fn serve(listener: TcpListener, keys: Vec<Value>) -> FakeProvider {
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State { keys, ..Default::default() }));
        let task = tokio::spawn({
            let (state, issuer) = (state.clone(), issuer.clone());
            async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else { return };
                    tokio::spawn(answer(socket, state.clone(), issuer.clone()));
                }
            }
        });
        FakeProvider { issuer, state, task }
    }

    /// `POST /token` answers `token(issuer)` (without one: 404).
    pub fn with_token_endpoint(self, token: impl Fn(&str) -> Value + Send + 'static) -> FakeProvider {
        self.state.lock().unwrap().token = Some(Box::new(token));
        self
    }

    /// Publishes these keys from now on.
    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    /// Publishes one more key.
    pub fn add_key(&self, key: Value) {
        self.state.lock().unwrap().keys.push(key);
    }

    /// Answers 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// The discovery document names this issuer instead of its own.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().discovery_issuer = Some(issuer.to_owned());
    }

    /// How often the JWKS was served.
    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    /// How often the discovery document was served.
    pub fn discovery_fetches(&self) -> usize {
        self.state.lock().unwrap().discovery_fetches
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(mut socket: TcpStream, state: Arc<Mutex<State>>, issuer: String) {
    // The head, then as much body as it announces (a token request's form, unread otherwise: a
    // close with unread bytes would reset the connection under our answer).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let request = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = request
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (status, body) = {
        let mut s = state.lock().unwrap();
        if s.down {
            ("503 Service Unavailable", "down".to_owned())
        } else if path == "/.well-known/openid-configuration" {
            s.discovery_fetches += 1;
            let doc_issuer = s.discovery_issuer.clone().unwrap_or_else(|| issuer.clone());
            let doc = json!({
                "issuer": doc_issuer, "authorization_endpoint": format!("{issuer}/auth"),
                "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            });
            ("200 OK", doc.to_string())
        } else if path == "/jwks" {
            s.jwks_fetches += 1;
            ("200 OK", json!({"keys": s.keys}).to_string())
        } else if let (Some(token), "/token") = (&s.token, path.as_str()) {
            ("200 OK", token(&issuer).to_string())
        } else {
            ("404 Not Found", "{}".to_owned())
        }
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(resp.as_bytes()).await;
    let _ = socket.shutdown().await;
}
