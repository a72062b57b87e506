//! The sandbox HTTP API server: routing, identity, and the three endpoints.
//!
//! Plain hyper rather than a framework: three routes, and the WebSocket upgrade is done by hand
//! so the tunnel runs on the same tungstenite as the client (one code path in `sandbox-wire`).

mod identity;
pub mod jwt;
mod keys;
mod port_forward;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sandbox_wire::api::{SshPortResponse, AUTHORIZED_KEYS_PATH, PORT_FORWARD_PATH, SSH_PORT_PATH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::authorized_keys::AuthorizedKeys;
use crate::AgentConfig;

pub use identity::{Authenticator, Identity, Rejection};
pub use jwt::JwtValidator;

/// The embedded SSH server as the API reports it.
#[derive(Debug, Clone)]
pub struct SshInfo {
    /// Loopback port.
    pub port: u16,
    /// Host public key, OpenSSH form.
    pub host_key: String,
    /// Tunnels to `port` reach the server through this, in memory.
    pub injector: crate::ssh::SshInjector,
}

/// Shared state of all requests.
#[derive(Clone)]
pub struct State(Arc<Inner>);

struct Inner {
    config: AgentConfig,
    auth: Authenticator,
    keys: AuthorizedKeys,
    ssh: Option<SshInfo>,
}

impl State {
    /// State for the API server; `auth` decides who a request comes from.
    pub fn new(config: AgentConfig, auth: Authenticator, keys: AuthorizedKeys, ssh: Option<SshInfo>) -> Self {
        State(Arc::new(Inner { config, auth, keys, ssh }))
    }
}

type Body = Full<Bytes>;

/// A plain-text response, as the original server's error bodies are.
pub(crate) fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{body}\n"))))
        .expect("static response parts are valid")
}

/// Serves HTTP/1.1 (with upgrades) on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, state: State, shutdown: CancellationToken) -> std::io::Result<()> {
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                let shutdown = shutdown.clone();
                async move { Ok::<_, Infallible>(route(req, &state, shutdown).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

async fn route(req: Request<Incoming>, state: &State, shutdown: CancellationToken) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/api/openapi.yaml" {
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/yaml")
            .body(Full::new(Bytes::from_static(include_bytes!("../../openapi.yaml"))))
            .expect("static response parts are valid");
    }
    if !path.starts_with("/api/") {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    let identity = match state.0.auth.identify(req.headers()).await {
        Ok(id) => id,
        Err(rejection) => return rejection.response(),
    };
    let cfg = &state.0.config;
    match path.as_str() {
        SSH_PORT_PATH if cfg.ssh => {
            if req.method() != Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let ssh = state.0.ssh.as_ref().expect("ssh info exists when ssh is enabled");
            let body = SshPortResponse { port: ssh.port, host_key: Some(ssh.host_key.clone()) };
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).expect("serialisable"))))
                .expect("static response parts are valid")
        }
        AUTHORIZED_KEYS_PATH if cfg.ssh => keys::register(req, &state.0.keys, &identity).await,
        PORT_FORWARD_PATH if cfg.port_forward => {
            let ssh = state.0.ssh.as_ref().map(|s| (s.port, s.injector.clone()));
            port_forward::upgrade(req, identity, shutdown, ssh)
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}
