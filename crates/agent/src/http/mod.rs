//! The sandbox HTTP API server: routing, identity, and the endpoints.
//!
//! Plain hyper rather than a framework: three routes, and the WebSocket upgrade is done by hand
//! so the tunnel runs on the same tungstenite as the client (one code path in `sandbox-wire`).

mod connections;
mod identity;
pub mod jwt;
mod keys;
mod port_forward;
mod resumable;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sandbox_wire::api::{
    ListeningPortsResponse, SshPortResponse, AUTHORIZED_KEYS_PATH, LISTENING_PORTS_PATH, PORT_FORWARD_PATH,
    SSH_PORT_PATH,
};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::access::Untrusted;
use crate::authorized_keys::AuthorizedKeys;
use crate::{AgentConfig, GatewaySecret};
use connections::{AcceptFailures, ConnectionSlot};

pub use connections::{default_max_connections, Limits};
pub use identity::{Authenticator, Identity, Rejection};
pub use jwt::JwtValidator;
pub use resumable::TunnelLimits;

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
    /// The API's own port: a tunnel to it would reach the API past the gateway.
    api_port: u16,
    /// `--allow-origin`, normalised.
    origins: Vec<String>,
    /// Protocol v2 tunnels, by resume token.
    tunnels: resumable::Tunnels,
}

impl State {
    /// State for the API server listening on `api_port`; `auth` decides who a request comes from.
    pub fn new(
        config: AgentConfig,
        auth: Authenticator,
        keys: AuthorizedKeys,
        ssh: Option<SshInfo>,
        api_port: u16,
    ) -> Self {
        let origins = config.trust.allowed_origins.iter().filter_map(|o| normalize_origin(o)).collect();
        let tunnels = resumable::Tunnels::new(config.tunnels);
        State(Arc::new(Inner { config, auth, keys, ssh, api_port, origins, tunnels }))
    }
}

/// `scheme://host[:port]` as browsers send it in `Origin` (lower case, default port dropped),
/// or `None` when `origin` is not such a thing.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin.trim()).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let origin = url.origin();
    (bare && origin.is_tuple() && url.username().is_empty()).then(|| origin.ascii_serialization())
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

/// Serves HTTP/1.1 (with upgrades) on `listener` until `shutdown`, with the default [`Limits`].
pub async fn serve(listener: TcpListener, state: State, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_with(listener, state, Limits::default(), shutdown).await
}

/// Serves HTTP/1.1 (with upgrades) on `listener` until `shutdown`, within `limits` (see the
/// `connections` module). Returns an error only when the listener itself is unusable.
pub async fn serve_with(
    listener: TcpListener,
    state: State,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut failures = AcceptFailures::default();
    loop {
        // A slot first: at the cap, new connections wait in the listen backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => return Ok(()),
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => {
                    failures.recovered();
                    c
                }
                Err(e) if crate::ssh::is_fatal_accept_error(&e) => return Err(e),
                Err(e) => {
                    let open = limits.max_connections.saturating_sub(slots.available_permits() + 1);
                    let pause = failures.failed(&e, open);
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let slot = ConnectionSlot::new(permit);
        let state = state.clone();
        let shutdown = shutdown.clone();
        let request_timeout = limits.request_timeout;
        let conn = http1.serve_connection(
            TokioIo::new(socket),
            service_fn(move |mut req: Request<Incoming>| {
                // A tunnel keeps the connection's slot for as long as it runs.
                req.extensions_mut().insert(slot.clone());
                let state = state.clone();
                let shutdown = shutdown.clone();
                async move {
                    let response =
                        match tokio::time::timeout(request_timeout, route(req, &state, shutdown)).await {
                            Ok(response) => response,
                            Err(_) => {
                                tracing::info!(%peer, "request not complete in {request_timeout:?}: closing");
                                let mut response =
                                    text(StatusCode::REQUEST_TIMEOUT, "request body not received in time");
                                response
                                    .headers_mut()
                                    .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
                                response
                            }
                        };
                    Ok::<_, Infallible>(response)
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

async fn route(req: Request<Incoming>, state: &State, shutdown: CancellationToken) -> Response<Body> {
    // Who may reach us at all, before anything else is looked at: the gateway, and no browser.
    if let Some(refusal) =
        gateway_refusal(req.headers(), state).or_else(|| origin_refusal(req.headers(), state))
    {
        return refusal;
    }
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
    // Authenticated is not yet allowed: the owner allow-list, in every mode.
    if let Err(denied) = state.0.config.trust.access.check(&identity.sub, &identity.groups) {
        let dropped = state.0.keys.forget(&identity.sub);
        tracing::warn!(sub = %Untrusted(&identity.sub), dropped_keys = dropped, "refused a subject the allow-list does not name");
        return text(StatusCode::FORBIDDEN, &denied.to_string());
    }
    state.0.keys.seen(&identity.sub, &identity.groups);
    let cfg = &state.0.config;
    match path.as_str() {
        SSH_PORT_PATH if cfg.ssh => {
            if req.method() != Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let ssh = state.0.ssh.as_ref().expect("ssh info exists when ssh is enabled");
            json(&SshPortResponse { port: ssh.port, host_key: Some(ssh.host_key.clone()) })
        }
        // What a client may forward: gated with port forwarding, whose targets it lists.
        LISTENING_PORTS_PATH if cfg.port_forward => {
            if req.method() != Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            listening_ports(state).await
        }
        AUTHORIZED_KEYS_PATH if cfg.ssh => keys::register(req, &state.0.keys, &identity).await,
        PORT_FORWARD_PATH if cfg.port_forward => {
            if port_forward::requested_port(req.uri().query().unwrap_or("")) == Some(state.0.api_port) {
                return text(
                    StatusCode::FORBIDDEN,
                    "port-forward to the agent's own API port is refused: it would bypass the gateway",
                );
            }
            let ssh = state.0.ssh.as_ref().map(|s| (s.port, s.injector.clone()));
            port_forward::upgrade(req, identity, shutdown, ssh, state.0.tunnels.clone()).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A JSON response.
fn json(body: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).expect("serialisable"))))
        .expect("static response parts are valid")
}

/// `GET /api/listening-ports`: the pod's listeners less the agent's own (its API port, which a
/// tunnel refuses, and the SSH server's, which `ssh NAME` already reaches).
async fn listening_ports(state: &State) -> Response<Body> {
    use crate::listening::{self, ListeningError};
    let mut own = vec![state.0.api_port];
    own.extend(state.0.ssh.as_ref().map(|s| s.port));
    // /proc reads block: on the blocking pool, off the one runtime thread.
    match tokio::task::spawn_blocking(move || listening::listening_ports(&own)).await {
        Ok(Ok(ports)) => json(&ListeningPortsResponse { ports }),
        Ok(Err(e @ ListeningError::Unsupported)) => text(StatusCode::NOT_IMPLEMENTED, &e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!("listing listening ports failed: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Err(e) => {
            tracing::error!("listing listening ports panicked: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, "listing listening ports failed; see the agent's log")
        }
    }
}

/// 403 unless the request carries the gateway's secret (when one is configured). Compared in
/// constant time; the header must appear once.
fn gateway_refusal(headers: &HeaderMap, state: &State) -> Option<Response<Body>> {
    let secret = state.0.config.trust.gateway_secret.as_ref()?;
    let mut given = headers.get_all(GatewaySecret::HEADER).iter();
    let ok = match (given.next(), given.next()) {
        (Some(value), None) => bool::from(value.as_bytes().ct_eq(secret.as_bytes())),
        _ => false,
    };
    if ok {
        return None;
    }
    tracing::info!("refused a request without the gateway's secret");
    Some(text(
        StatusCode::FORBIDDEN,
        "request did not come through the gateway (missing or wrong X-Sandbox-Gateway-Secret)",
    ))
}

/// 403 for a request a web page made (it carries `Origin`; our clients never send one) unless
/// `--allow-origin` names that origin. WebSockets have no CORS, and a `text/plain` POST needs no
/// preflight, so without this any page the owner visits could use the sandbox as the owner.
fn origin_refusal(headers: &HeaderMap, state: &State) -> Option<Response<Body>> {
    let mut refused = None;
    for value in headers.get_all(header::ORIGIN) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let allowed = normalize_origin(&text).is_some_and(|o| state.0.origins.contains(&o));
        if !allowed {
            refused = Some(text.into_owned());
        }
    }
    let origin = refused?;
    tracing::info!(origin = %Untrusted(&origin), "refused a request from a web page");
    Some(text(
        StatusCode::FORBIDDEN,
        &format!(
            "requests from web pages are refused (Origin: {}); allow the page with --allow-origin",
            Untrusted(&origin)
        ),
    ))
}
