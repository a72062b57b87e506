//! `GET /api/port-forward?port=N`: WebSocket ⇄ raw TCP to `127.0.0.1:N` (or `[::1]:N`) in the pod.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sandbox_wire::api::FORWARDABLE_PORTS;
use sandbox_wire::local::{LocalRead, Plain, TcpSource};
use sandbox_wire::resume;
use sandbox_wire::tunnel::{splice, Role, SpliceOptions, Traffic, TunnelSocket, CLOSE_ERROR, DIAL_FAILED};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tungstenite::handshake::derive_accept_key;

use super::connections::ConnectionSlot;
use super::resumable::{self, LegIo, Refusal, Takeover, Tunnels};
use super::{text, Body, Identity};
use crate::access::Untrusted;
use crate::ssh::SshInjector;

/// Validates the request and answers 101; the tunnel itself runs in a task of its own once
/// hyper hands over the connection.
///
/// `ssh` is the embedded SSH server's port and a way into it without a socket, used when the
/// tunnel asks for that port. A client offering [`resume::SUBPROTOCOL`] gets protocol v2 (when
/// `tunnels` has it enabled); one presenting a resume token gets the next leg of its tunnel.
pub async fn upgrade(
    mut req: Request<Incoming>,
    who: Identity,
    shutdown: CancellationToken,
    ssh: Option<(u16, SshInjector)>,
    tunnels: Tunnels,
) -> Response<Body> {
    // RFC 6455 §4.1: the opening handshake is a GET; any other method carrying upgrade
    // headers is not one, and must not become a tunnel.
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed: a tunnel is opened with GET");
    }
    let Some(port) = requested_port(req.uri().query().unwrap_or("")) else {
        return text(StatusCode::BAD_REQUEST, "invalid port");
    };
    let headers = req.headers();
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, true, Some(key)) =
        (has_token(header::CONNECTION, "upgrade"), has_token(header::UPGRADE, "websocket"), key)
    else {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade request");
    };
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Response::builder()
            .status(StatusCode::UPGRADE_REQUIRED)
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .body(Body::default())
            .expect("static response parts are valid");
    }
    let accept = derive_accept_key(key.as_bytes());
    let v2 = tunnels.enabled() && has_token(header::SEC_WEBSOCKET_PROTOCOL, resume::SUBPROTOCOL);
    let resume_token = headers.get(resume::RESUME_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let client_received =
        headers.get(resume::RECEIVED_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // The tunnel keeps its connection's place under the connection cap until it ends.
    let slot = req.extensions_mut().remove::<ConnectionSlot>();
    let upgrade = hyper::upgrade::on(&mut req);
    let switching = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(token) = resume_token {
        if !tunnels.enabled() {
            // Restarted without resumption: whatever the client had is gone.
            return text(StatusCode::GONE, "this tunnel is gone: this agent does not resume tunnels");
        }
        let (true, Some(client_received)) = (v2, client_received) else {
            return text(StatusCode::BAD_REQUEST, "a resume needs protocol v2 and a byte count");
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let (io_tx, io) = tokio::sync::oneshot::channel();
        let received = match tunnels.takeover(&token, &who.sub, Takeover { client_received, answer, io }) {
            Ok(()) => {
                // The old leg stops first, so the count we answer is final.
                let Ok(Ok(received)) = tokio::time::timeout(std::time::Duration::from_secs(5), answered).await
                else {
                    return text(StatusCode::GONE, "this tunnel is gone: it ended while resuming");
                };
                when_upgraded(upgrade, move |io| async move {
                    let _ = io_tx.send((io, slot));
                });
                received
            }
            Err(Refusal::Ended { received, sent }) => {
                when_upgraded(upgrade, move |io| async move {
                    let _ = TunnelSocket::new(io, Role::Server, &[]).end_resumed(sent).await;
                    drop(slot);
                });
                received
            }
            Err(Refusal::Gone) => {
                return text(
                    StatusCode::GONE,
                    "this tunnel is gone: it ended with an error, its resume window passed, or the agent restarted",
                )
            }
            Err(Refusal::NotYours) => {
                tracing::warn!(sub = %Untrusted(&who.sub), port, "refused a resume token of another subject");
                return text(StatusCode::FORBIDDEN, "this tunnel belongs to another user");
            }
        };
        return switching
            .header(header::SEC_WEBSOCKET_PROTOCOL, resume::SUBPROTOCOL)
            .header(resume::RECEIVED_HEADER, received)
            .body(Body::default())
            .expect("static response parts are valid");
    }
    if v2 {
        let token = Tunnels::new_token();
        let response = switching
            .header(header::SEC_WEBSOCKET_PROTOCOL, resume::SUBPROTOCOL)
            .header(resume::RESUME_HEADER, &token)
            .header(resume::RECEIVED_HEADER, 0)
            .header(resume::WINDOW_HEADER, tunnels.window().as_secs())
            .body(Body::default())
            .expect("static response parts are valid");
        let carrier = |first| Carrier::V2 { tunnels, token, first };
        spawn_tunnel(upgrade, slot, carrier, port, who, shutdown, ssh);
        return response;
    }
    spawn_tunnel(upgrade, slot, Carrier::V1, port, who, shutdown, ssh);
    switching.body(Body::default()).expect("static response parts are valid")
}

/// Runs the tunnel in a task of its own once hyper hands over the connection.
fn spawn_tunnel(
    upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<ConnectionSlot>,
    carrier: impl FnOnce(LegIo) -> Carrier + Send + 'static,
    port: u16,
    who: Identity,
    shutdown: CancellationToken,
    ssh: Option<(u16, SshInjector)>,
) {
    when_upgraded(upgrade, move |io| async move {
        // The leg keeps its connection's place under the connection cap until it ends.
        tokio::select! {
            _ = tunnel(carrier((io, slot)), port, &who, ssh) => {}
            _ = shutdown.cancelled() => {}
        }
    });
}

/// Runs `then` in a task of its own on the connection, once hyper hands it over (after the
/// 101 went out).
fn when_upgraded<F, Fut>(upgrade: hyper::upgrade::OnUpgrade, then: F)
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => then(TokioIo::new(io)).await,
            Err(e) => tracing::debug!("upgrade failed: {e}"),
        }
    });
}

/// `port=N` with N a non-privileged port; anything else is `None`.
pub(super) fn requested_port(query: &str) -> Option<u16> {
    let value = url_query_value(query, "port")?;
    let port: u16 = value.parse().ok()?;
    FORWARDABLE_PORTS.contains(&port).then_some(port)
}

fn url_query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// How a tunnel reaches the client: one WebSocket (v1), or legs of a resumable tunnel (v2).
enum Carrier {
    V1(LegIo),
    V2 { tunnels: Tunnels, token: String, first: LegIo },
}

impl Carrier {
    /// Carries the target's halves until the tunnel ends; the error, for the log line.
    async fn carry<R, W>(self, r: R, w: W, who: &Identity, port: u16, traffic: &Traffic) -> Result<(), String>
    where
        R: LocalRead,
        W: tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Carrier::V1((io, _slot)) => {
                // hyper hands over any bytes it read past the request itself inside `io`.
                let ws = TunnelSocket::new(io, Role::Server, &[]);
                // Half-close: a client's Close 1000 only says it is done sending; the target
                // reads EOF and its reply still reaches the client (`printf 'GET / …' | proxy --stdio`).
                let opts = SpliceOptions { traffic: Some(traffic), half_close: true, ..Default::default() };
                splice(ws, r, w, opts).await.map_err(|e| e.to_string())
            }
            Carrier::V2 { tunnels, token, first } => {
                resumable::run(&tunnels, token, &who.sub, port, first, r, w, traffic).await
            }
        }
    }

    /// Tells the client the target cannot be reached (Close 1011 "dial failed").
    async fn dial_failed(self) {
        let (Carrier::V1((io, _)) | Carrier::V2 { first: (io, _), .. }) = self;
        let _ = TunnelSocket::new(io, Role::Server, &[]).close(CLOSE_ERROR, DIAL_FAILED).await;
    }

    fn protocol(&self) -> u8 {
        match self {
            Carrier::V1(_) => 1,
            Carrier::V2 { .. } => 2,
        }
    }
}

/// Dials the target — the embedded SSH server in memory when `port` is its own, else loopback
/// TCP — and carries it until the tunnel ends; one audit line with bytes and duration.
async fn tunnel(carrier: Carrier, port: u16, who: &Identity, ssh: Option<(u16, SshInjector)>) {
    let started = Instant::now();
    let traffic = Traffic::default();
    let protocol = carrier.protocol();
    let result = match ssh {
        Some((ssh_port, injector)) if ssh_port == port => {
            let (r, w) = tokio::io::split(injector.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            carrier.carry(Plain(r), w, who, port, &traffic).await
        }
        _ => {
            let mut target = match dial_loopback(port).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(sub = %Untrusted(&who.sub), port, "port-forward dial failed: {e}");
                    carrier.dial_failed().await;
                    return;
                }
            };
            let _ = target.set_nodelay(true);
            // Borrowed halves keep the socket ours: a broken tunnel resets the target (an
            // upload cut short must not look complete to it); an owned half would send a FIN.
            let (r, w) = target.split();
            let result = carrier.carry(TcpSource::new(r), w, who, port, &traffic).await;
            if result.is_err() {
                let _ = target.set_zero_linger();
            }
            result
        }
    };
    let (to_client, from_client) = traffic.snapshot();
    tracing::info!(
        sub = %Untrusted(&who.sub),
        port,
        protocol,
        bytes_in = from_client,
        bytes_out = to_client,
        duration_ms = started.elapsed().as_millis() as u64,
        error = result.err(),
        "port-forward closed"
    );
}

/// Connects to `127.0.0.1:port`, or — refused there — `[::1]:port`: a dev server that binds
/// `localhost` may take only the IPv6 one (Node ≥ 17 resolves it to `::1` first), and
/// `/api/listening-ports` lists it. Loopback only, hard-coded: this endpoint must never become
/// an SSRF proxy.
async fn dial_loopback(port: u16) -> std::io::Result<TcpStream> {
    match TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            TcpStream::connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))).await.map_err(|_| e)
        }
        dialed => dialed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_privileged_ports_are_forwarded() {
        assert_eq!(requested_port("port=2345"), Some(2345));
        assert_eq!(requested_port("x=1&port=65535"), Some(65535));
        for bad in ["", "port=", "port=80", "port=1023", "port=65536", "port=-1", "port=abc", "prt=2000"] {
            assert_eq!(requested_port(bad), None, "{bad}");
        }
    }
}
