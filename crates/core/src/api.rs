//! The sandbox HTTP API, client side: discover the SSH port, register a key, open a tunnel, list
//! the pod's listening ports.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use sandbox_wire::api::{
    AuthorizedKeyRequest, ListeningPort, ListeningPortsResponse, SshPortResponse, AUTHORIZED_KEYS_PATH,
    LISTENING_PORTS_PATH, SSH_PORT_PATH,
};
use sandbox_wire::handshake::{self, HandshakeError};
use sandbox_wire::resume;
use sandbox_wire::tunnel::{Role, TunnelSocket};

use crate::auth::{AuthError, Credentials};
use crate::net::{self, NetError, TlsSettings, Transport};
use crate::server::ServerUrl;
use crate::untrusted;

/// Where a sandbox is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL of the sandbox server (routing service).
    pub server: ServerUrl,
    /// What to attach to every request.
    pub credentials: Credentials,
    /// Which certificates to trust.
    pub tls: TlsSettings,
    /// A sign-in that supplies (and renews) the bearer token; overrides `credentials.bearer`.
    pub bearer: Option<Arc<dyn BearerSource>>,
}

/// Supplies a currently valid bearer token for every request (an OpenID sign-in).
pub trait BearerSource: Send + Sync + std::fmt::Debug {
    /// A token valid right now, renewed if needed. Errors are one line saying what to do.
    fn bearer(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
    /// What the user should do when the server still says 401.
    fn reauth_hint(&self) -> String;
}

/// Which API feature a request needed: named in 404 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `/api/ssh-port`, `/api/ssh-authorized-keys`.
    Ssh,
    /// `/api/port-forward`.
    PortForward,
    /// `/api/listening-ports` (ours; the original server lacks it).
    ListeningPorts,
}

impl Feature {
    fn describe(self) -> &'static str {
        match self {
            Feature::Ssh => "SSH access",
            Feature::PortForward => "port forwarding",
            Feature::ListeningPorts => "listing the pod's listening ports",
        }
    }
}

/// A failed API call, phrased for the user: cause and fix in one line, no secrets.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Credentials could not be prepared.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 401.
    #[error("{server} rejected the credentials (401 Unauthorized{}): the token is missing, expired or wrong; {hint}", reason_suffix(.reason))]
    Unauthorized { server: String, hint: String, reason: Option<String> },
    /// The sign-in could not supply a token.
    #[error("{0}")]
    SignIn(String),
    /// 403.
    #[error("{server} refused access (403 Forbidden): your identity may not use this sandbox; check you are signed in as the sandbox's owner")]
    Forbidden { server: String },
    /// 404.
    #[error("{url} returned 404: {} is not enabled on this sandbox, or the server URL is wrong", .feature.describe())]
    NotFound { url: String, feature: Feature },
    /// 400 on key registration.
    #[error("the sandbox rejected the public key (400): {detail}")]
    KeyRejected { detail: String },
    /// The server answered a WebSocket request without upgrading.
    #[error("{url} answered {status} instead of upgrading to a WebSocket: a proxy in front of the sandbox is not forwarding WebSockets")]
    NoUpgrade { url: String, status: u16 },
    /// Any other unexpected status.
    #[error("{url} answered {status}: {detail}")]
    Status { url: String, status: u16, detail: String },
    /// A 3xx: we follow no redirect (it would carry the credentials and the public key to
    /// another server, whose host key would then be pinned).
    #[error("{url} answered {status}, a redirect to {location}, which is not followed (credentials stay with the server they were given for); if the sandbox moved, set the new server URL")]
    Redirect { url: String, status: u16, location: String },
    /// 2xx with a body that is not what the contract says.
    #[error("{url} did not answer like a sandbox server ({detail}); check the server URL")]
    BadBody { url: String, detail: String },
    /// The WebSocket handshake failed below HTTP.
    #[error("WebSocket handshake with {url} failed: {detail}")]
    Handshake { url: String, detail: String },
    /// 410 to a resume: the server no longer holds the tunnel.
    #[error("{server} no longer holds this tunnel (410 Gone): its resume window passed or the sandbox agent restarted, and what was in flight is lost; reconnect")]
    TunnelGone { server: String },
}

/// What a tunnel request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Offer<'a> {
    /// Protocol v1 only.
    V1,
    /// Protocol v2 if the server speaks it, else v1.
    V2,
    /// The next leg of the v2 tunnel `token`, whose peer stream we have written out up to
    /// `received` bytes.
    Resume { token: &'a str, received: u64 },
}

impl Offer<'_> {
    fn is_resume(&self) -> bool {
        matches!(self, Offer::Resume { .. })
    }
}

/// One WebSocket of a tunnel.
pub struct Leg {
    pub socket: TunnelSocket<Transport>,
    /// Protocol v2's terms, when the server speaks it.
    pub v2: Option<LegV2>,
}

/// What the server said about a v2 leg.
#[derive(Clone)]
pub struct LegV2 {
    /// The tunnel's resume token. Secret: it is never logged.
    pub token: String,
    /// Bytes of our stream the server has written out.
    pub received: u64,
    /// How long the server keeps the tunnel after a lost leg.
    pub window: Duration,
}

impl std::fmt::Debug for LegV2 {
    /// Without the token: it is a credential for the tunnel.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegV2").field("received", &self.received).field("window", &self.window).finish()
    }
}

/// The longest resume window a client honours: a server announcing more does not keep a
/// client retrying for days.
const MAX_RESUME_WINDOW: Duration = Duration::from_secs(3600);

/// What we call ourselves in requests.
const USER_AGENT: &str = concat!("sandbox-forward/", env!("CARGO_PKG_VERSION"));

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Client of one sandbox's HTTP API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    endpoint: Endpoint,
    http: reqwest::Client,
    /// How long the answer to the WebSocket upgrade may take.
    upgrade_timeout: Duration,
    /// TLS for tunnels (HTTP/1.1 only: the upgrade needs it), built once; `None` for http.
    tunnel_tls: Option<Arc<rustls::ClientConfig>>,
}

impl ApiClient {
    /// A client for `endpoint`. Builds the TLS config once; cheap to clone.
    pub fn new(endpoint: Endpoint) -> Result<Self, ApiError> {
        Self::with_timeouts(endpoint, REQUEST_TIMEOUT, net::CONNECT_TIMEOUT)
    }

    /// [`ApiClient::new`] with other limits for one API request and for the upgrade's answer.
    fn with_timeouts(endpoint: Endpoint, request: Duration, upgrade: Duration) -> Result<Self, ApiError> {
        endpoint.tls.check_cleartext(&endpoint.server.endpoint("/"), "the sandbox server")?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(net::CONNECT_TIMEOUT.min(request))
            .timeout(request)
            .user_agent(USER_AGENT)
            // Credentials (`--header`, cookies, the bearer) and our public key are for this
            // server only: a redirect is reported, never followed.
            .redirect(reqwest::redirect::Policy::none());
        let tunnel_tls = if endpoint.server.is_tls() {
            // One verifier for the API client and every tunnel: the roots are read once.
            let [api, tunnel] = endpoint.tls.client_configs([&[b"h2", b"http/1.1"], &[b"http/1.1"]])?;
            builder = builder.tls_backend_preconfigured(api);
            Some(Arc::new(tunnel))
        } else {
            // Plain http never does TLS: skip loading the platform's roots, which was most of a
            // ProxyCommand's start-up (`ssh NAME true` through the tunnel: 45 → 29 ms).
            builder = builder.tls_backend_preconfigured(net::no_tls_config());
            None
        };
        let http = builder.build().map_err(|e| NetError::TlsSetup(e.to_string()))?;
        Ok(ApiClient { endpoint, http, upgrade_timeout: upgrade, tunnel_tls })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET /api/ssh-port`: the embedded SSH server's port (and, from our agent, its host key).
    pub async fn ssh_port(&self) -> Result<SshPortResponse, ApiError> {
        let url = self.endpoint.server.endpoint(SSH_PORT_PATH);
        let started = std::time::Instant::now();
        let resp = self.send(self.http.get(url.clone())).await?;
        let resp = self.check(resp, Feature::Ssh).await?;
        let body = resp.bytes().await.map_err(|e| self.net(&e, started.elapsed()))?;
        serde_json::from_slice(&body).map_err(|e| ApiError::BadBody {
            url: url.to_string(),
            // serde quotes the offending value: it is the server's text.
            detail: format!(
                "expected JSON {{\"port\": N}}: {}",
                untrusted::one_line(&e.to_string(), MAX_DETAIL)
            ),
        })
    }

    /// `GET /api/listening-ports`: the TCP ports listening in the pod that a tunnel reaches,
    /// sorted. [`ApiError::NotFound`] from a server without it (the original): see
    /// [`crate::ports`] for the fallback over SSH. Process names are the pod's text: pass them
    /// through [`untrusted::printable`] before showing them.
    pub async fn listening_ports(&self) -> Result<Vec<ListeningPort>, ApiError> {
        let url = self.endpoint.server.endpoint(LISTENING_PORTS_PATH);
        let started = std::time::Instant::now();
        let resp = self.send(self.http.get(url.clone())).await?;
        let resp = self.check(resp, Feature::ListeningPorts).await?;
        let body = resp.bytes().await.map_err(|e| self.net(&e, started.elapsed()))?;
        let answer: ListeningPortsResponse =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadBody {
                url: url.to_string(),
                detail: format!(
                    "expected JSON {{\"ports\": [...]}}: {}",
                    untrusted::one_line(&e.to_string(), MAX_DETAIL)
                ),
            })?;
        Ok(answer.ports)
    }

    /// `POST /api/ssh-authorized-keys`: registers an OpenSSH public key for our identity.
    pub async fn register_key(&self, public_key: &str) -> Result<(), ApiError> {
        let url = self.endpoint.server.endpoint(AUTHORIZED_KEYS_PATH);
        let body = AuthorizedKeyRequest { public_key: public_key.to_owned() };
        let resp = self.send(self.http.post(url).json(&body)).await?;
        if resp.status() == StatusCode::BAD_REQUEST {
            let detail = resp.text().await.unwrap_or_default();
            return Err(ApiError::KeyRejected { detail: untrusted::one_line(&detail, MAX_DETAIL) });
        }
        self.check(resp, Feature::Ssh).await?;
        Ok(())
    }

    /// Checks, without dialing anything in the pod, that port forwarding is enabled and our
    /// credentials pass: a plain GET of the tunnel URL must reach the server's "not a WebSocket
    /// request" answer (400/426) rather than 401/403/404.
    pub async fn preflight_port_forward(&self, port: u16) -> Result<(), ApiError> {
        let mut url = self.endpoint.server.port_forward(port);
        let scheme = if self.endpoint.server.is_tls() { "https" } else { "http" };
        url.set_scheme(scheme).expect("http and https are valid special schemes");
        let resp = self.send(self.http.get(url.clone())).await?;
        match resp.status() {
            StatusCode::BAD_REQUEST | StatusCode::UPGRADE_REQUIRED => Ok(()),
            s if s.is_success() => Ok(()),
            _ => self.check(resp, Feature::PortForward).await.map(drop),
        }
    }

    /// Opens a tunnel to `port` in the pod in tunnel protocol v1 (one WebSocket, no resumption).
    pub async fn open_tunnel(&self, port: u16) -> Result<TunnelSocket<Transport>, ApiError> {
        Ok(self.open_leg(port, Offer::V1).await?.socket)
    }

    /// Opens a tunnel to `port` in the pod, or the next leg of one ([`Offer::Resume`]).
    ///
    /// A v2 offer gets a v1 tunnel from a server that does not know v2 (the original); a
    /// resume is v2 or nothing.
    pub async fn open_leg(&self, port: u16, offer: Offer<'_>) -> Result<Leg, ApiError> {
        let url = self.endpoint.server.port_forward(port);
        let mut headers = self.auth_headers().await?;
        headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
        if !matches!(offer, Offer::V1) {
            headers.insert(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static(resume::SUBPROTOCOL),
            );
        }
        if let Offer::Resume { token, received } = offer {
            let mut value = http::HeaderValue::from_str(token).map_err(|_| ApiError::Handshake {
                url: url.to_string(),
                detail: "the resume token is not a valid header value".into(),
            })?;
            value.set_sensitive(true);
            headers.insert(resume::RESUME_HEADER, value);
            headers.insert(resume::RECEIVED_HEADER, http::HeaderValue::from(received));
        }
        let mut transport = net::connect(&self.endpoint.server, self.tunnel_tls.as_ref()).await?;
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let upgrade = handshake::client(&mut transport, host, target, &headers);
        let upgraded = match tokio::time::timeout(self.upgrade_timeout, upgrade).await {
            Err(_) => {
                return Err(NetError::Timeout {
                    addr: url.to_string(),
                    phase: net::TimeoutPhase::Upgrade,
                    after: self.upgrade_timeout,
                }
                .into())
            }
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(HandshakeError::Refused { status, .. })) if status == 410 && offer.is_resume() => {
                return Err(ApiError::TunnelGone { server: self.endpoint.server.to_string() })
            }
            Ok(Err(HandshakeError::Refused { status, body })) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return Err(self.status_error(status, &body, &url, Feature::PortForward, true));
            }
            Ok(Err(e)) => {
                return Err(ApiError::Handshake {
                    url: url.to_string(),
                    detail: untrusted::one_line(&e.to_string(), MAX_DETAIL),
                })
            }
        };
        let bad = |detail: &str| ApiError::Handshake { url: url.to_string(), detail: detail.into() };
        let v2 = match upgraded.protocol() {
            Some(resume::SUBPROTOCOL) => {
                let received = match upgraded.header(resume::RECEIVED_HEADER) {
                    Some(n) => n.parse().map_err(|_| bad("the resume answer has an invalid byte count"))?,
                    None if offer.is_resume() => return Err(bad("the resume answer has no byte count")),
                    None => 0,
                };
                let token = match (offer, upgraded.header(resume::RESUME_HEADER)) {
                    (Offer::Resume { token, .. }, _) => token.to_owned(),
                    (_, Some(token)) if !token.is_empty() => token.to_owned(),
                    _ => return Err(bad("the v2 answer has no resume token")),
                };
                let window = upgraded
                    .header(resume::WINDOW_HEADER)
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(resume::DEFAULT_RESUME_WINDOW)
                    .min(MAX_RESUME_WINDOW);
                Some(LegV2 { token, received, window })
            }
            _ if offer.is_resume() => {
                return Err(bad("the server answered a resume in protocol v1: it no longer resumes tunnels"))
            }
            _ => None,
        };
        Ok(Leg { socket: TunnelSocket::new(transport, Role::Client, &upgraded.read_ahead), v2 })
    }

    /// The credential headers of one request, with a fresh token from the sign-in if any.
    async fn auth_headers(&self) -> Result<http::HeaderMap, ApiError> {
        let mut headers = self.endpoint.credentials.headers()?;
        if let Some(source) = &self.endpoint.bearer {
            let token = source.bearer().await.map_err(ApiError::SignIn)?;
            let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| AuthError::InvalidValue("access token"))?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(headers)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let headers = self.auth_headers().await?;
        let started = std::time::Instant::now();
        req.headers(headers).send().await.map_err(|e| self.net(&e, started.elapsed()))
    }

    async fn check(&self, resp: reqwest::Response, feature: Feature) -> Result<reqwest::Response, ApiError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let url = resp.url().clone();
        if status.is_redirection() {
            let location = resp.headers().get(http::header::LOCATION).map(|v| v.as_bytes());
            return Err(ApiError::Redirect {
                url: url.to_string(),
                status: status.as_u16(),
                location: location_for_message(&url, location),
            });
        }
        let body = resp.text().await.unwrap_or_default();
        Err(self.status_error(status, &body, &url, feature, false))
    }

    fn status_error(
        &self,
        status: StatusCode,
        body: &str,
        url: &url::Url,
        feature: Feature,
        upgrading: bool,
    ) -> ApiError {
        let server = self.endpoint.server.to_string();
        let url = url.to_string();
        match status {
            StatusCode::UNAUTHORIZED => {
                let hint = match &self.endpoint.bearer {
                    Some(source) => source.reauth_hint(),
                    None => "get a fresh token (e.g. rewrite the --bearer-file) and retry".into(),
                };
                ApiError::Unauthorized { server, hint, reason: plain_reason(body) }
            }
            StatusCode::FORBIDDEN => ApiError::Forbidden { server },
            StatusCode::NOT_FOUND => ApiError::NotFound { url, feature },
            // The WebSocket handshake keeps no headers: the target is not known here.
            s if s.is_redirection() => {
                ApiError::Redirect { url, status: s.as_u16(), location: "another address".into() }
            }
            s if upgrading && s.is_success() => ApiError::NoUpgrade { url, status: s.as_u16() },
            s => ApiError::Status { url, status: s.as_u16(), detail: untrusted::one_line(body, MAX_DETAIL) },
        }
    }

    fn net(&self, e: &reqwest::Error, waited: Duration) -> ApiError {
        net::classify_reqwest(&self.endpoint.server, e, waited).into()
    }
}

/// The server's own words for a refusal (the original says `missing identity headers`), when
/// its body is a short plain-text line rather than an HTML error page.
fn plain_reason(body: &str) -> Option<String> {
    let text = untrusted::one_line(body, MAX_DETAIL);
    let text = text.trim();
    (!text.is_empty() && !text.starts_with('<') && !text.starts_with('{')).then(|| text.to_owned())
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
}

/// How much of a server's text a message quotes.
const MAX_DETAIL: usize = 200;

/// Where a redirect pointed, fit for a message: resolved against the request URL, without
/// user-info, query or fragment (either may hold a token), control characters removed.
fn location_for_message(base: &url::Url, location: Option<&[u8]>) -> String {
    let Some(raw) = location else { return "(no Location header)".into() };
    let raw = String::from_utf8_lossy(raw);
    match base.join(raw.trim()) {
        Ok(mut target) => {
            let _ = target.set_username("");
            let _ = target.set_password(None);
            target.set_query(None);
            target.set_fragment(None);
            untrusted::one_line(target.as_str(), MAX_DETAIL)
        }
        Err(_) => format!("an invalid Location {:?}", untrusted::one_line(&raw, 80)),
    }
}

/// A client without credentials or extra trust, for the crate's unit tests.
#[cfg(test)]
pub(crate) fn test_client(server: &str) -> ApiClient {
    ApiClient::new(Endpoint {
        server: ServerUrl::parse(server).expect("a valid test server URL"),
        credentials: Credentials::default(),
        tls: crate::net::TlsSettings::default(),
        bearer: None,
    })
    .expect("a client for a test server")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback server answering every request with `response`; the requests' heads arrive on
    /// the channel. Runs until the test's runtime ends.
    async fn canned(response: String) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 64 * 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (url, rx)
    }

    fn client(server: &str) -> ApiClient {
        ApiClient::new(Endpoint {
            server: ServerUrl::parse(server).unwrap(),
            credentials: Credentials {
                headers: vec![("X-Api-Key".into(), "hdr-secret".into())],
                cookies: vec![("sid".into(), "cookie-secret".into())],
                ..Default::default()
            },
            tls: TlsSettings::default(),
            bearer: None,
        })
        .unwrap()
    }

    fn reply(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_say_where_they_pointed() {
        let (elsewhere, mut elsewhere_saw) =
            canned(reply("200 OK", "", r#"{"port": 2222, "host_key": null}"#)).await;
        let location = format!("{}/steal?token=abc#frag", elsewhere.replace("http://", "http://u:pw@"));
        for status in ["302 Found", "307 Temporary Redirect", "308 Permanent Redirect"] {
            let (server, mut saw) = canned(reply(status, &format!("Location: {location}\r\n"), "")).await;
            let api = client(&server);
            let err = api.ssh_port().await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ApiError::Redirect { .. }), "{status}: {msg}");
            assert!(msg.contains(&format!("{elsewhere}/steal")), "names the target: {msg}");
            assert!(!msg.contains("abc") && !msg.contains("pw"), "query and user-info go: {msg}");
            let err = api.register_key("ssh-ed25519 AAAA").await.unwrap_err();
            assert!(matches!(err, ApiError::Redirect { .. }), "{status}: {err}");
            assert!(saw.recv().await.unwrap().contains("hdr-secret"), "the server itself got the request");
        }
        // Give a followed request time to arrive: none may.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(elsewhere_saw.try_recv().is_err(), "a credential went to the redirect target");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_naming_the_phase_and_the_real_time() {
        // Accepts TCP, never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let endpoint = client(&server).endpoint().clone();
        let api = ApiClient::with_timeouts(endpoint, Duration::from_secs(1), Duration::from_secs(2)).unwrap();
        let started = std::time::Instant::now();
        let msg = api.ssh_port().await.unwrap_err().to_string();
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
        assert!(msg.contains("accepted the connection but sent no answer within 1 s"), "{msg}");
        assert!(!msg.contains("connecting"), "{msg}");
        let msg = api.open_tunnel(2222).await.err().expect("timed out").to_string();
        assert!(msg.contains("did not answer the WebSocket upgrade within 2 s"), "{msg}");
    }

    #[tokio::test]
    async fn listening_ports_read_the_body_and_a_404_is_not_found() {
        let body = r#"{"ports":[{"port":5173,"process":"node"},{"port":8000,"process":null}]}"#;
        let (server, mut saw) = canned(reply("200 OK", "Content-Type: application/json\r\n", body)).await;
        let ports = client(&server).listening_ports().await.unwrap();
        assert_eq!(
            ports,
            [
                ListeningPort { port: 5173, process: Some("node".into()) },
                ListeningPort { port: 8000, process: None }
            ]
        );
        let head = saw.recv().await.unwrap();
        assert!(
            head.starts_with("GET /api/listening-ports HTTP/1.1") && head.contains("hdr-secret"),
            "{head}"
        );
        let (server, _saw) = canned(reply("404 Not Found", "", "404 page not found\n")).await;
        let err = client(&server).listening_ports().await.unwrap_err();
        assert!(matches!(err, ApiError::NotFound { feature: Feature::ListeningPorts, .. }), "{err}");
        assert!(err.to_string().contains("listing the pod's listening ports is not enabled"), "{err}");
        let (server, _saw) = canned(reply("200 OK", "", r#"{"port": 2222}"#)).await;
        let err = client(&server).listening_ports().await.unwrap_err();
        assert!(matches!(err, ApiError::BadBody { .. }), "{err}");
    }

    #[test]
    fn a_resume_token_never_shows_in_debug_output() {
        let leg = LegV2 { token: "tok-3f9a-secret".into(), received: 7, window: Duration::from_secs(120) };
        let shown = format!("{leg:?}");
        assert!(!shown.contains("tok-3f9a-secret") && shown.contains("received: 7"), "{shown}");
    }

    #[tokio::test]
    async fn a_401_says_the_servers_reason_unless_it_is_a_page() {
        let (server, _saw) = canned(reply("401 Unauthorized", "", "missing identity headers\n")).await;
        let msg = client(&server).ssh_port().await.unwrap_err().to_string();
        assert!(msg.contains("(401 Unauthorized: missing identity headers)"), "{msg}");
        let page = "<html><head><title>401 Authorization Required</title></head></html>";
        let (server, _saw) = canned(reply("401 Unauthorized", "", page)).await;
        let msg = client(&server).ssh_port().await.unwrap_err().to_string();
        assert!(msg.contains("(401 Unauthorized)") && !msg.contains("html"), "{msg}");
        let (server, _saw) = canned(reply("401 Unauthorized", "", "token expired")).await;
        let msg = client(&server).open_tunnel(2222).await.err().expect("refused").to_string();
        assert!(msg.contains("(401 Unauthorized: token expired)"), "{msg}");
    }

    #[test]
    fn no_client_sends_credentials_in_cleartext_off_loopback() {
        let endpoint = |server: &str, allow| Endpoint {
            server: ServerUrl::parse(server).unwrap(),
            credentials: Credentials { bearer: Some("tok".into()), ..Default::default() },
            tls: TlsSettings { allow_insecure_http: allow, ..Default::default() },
            bearer: None,
        };
        let err = ApiClient::new(endpoint("http://sandbox.example.com", false)).unwrap_err();
        assert!(matches!(err, ApiError::Net(NetError::Cleartext { .. })), "{err}");
        assert!(ApiClient::new(endpoint("http://sandbox.example.com", true)).is_ok());
        assert!(ApiClient::new(endpoint("http://127.0.0.1:1", false)).is_ok());
        match ApiClient::new(endpoint("https://sandbox.example.com", false)) {
            Ok(_) => {}
            // Wine has no certificate store for the platform verifier: only that may fail there.
            Err(ApiError::Net(NetError::TlsSetup(e))) if cfg!(windows) => {
                eprintln!("skipped: https under Wine: {e}")
            }
            Err(e) => panic!("https refused: {e}"),
        }
    }

    #[tokio::test]
    async fn server_text_in_errors_has_no_control_characters() {
        let hostile = "\x1b]0;owned\x07\x1b[2Jbad gateway\u{9b}1m";
        for (status, call) in
            [("502 Bad Gateway", "ssh-port"), ("400 Bad Request", "register"), ("200 OK", "body")]
        {
            let body =
                if call == "body" { format!(r#"{{"port": "{hostile}"}}"#) } else { hostile.to_owned() };
            let (server, _saw) = canned(reply(status, "", &body)).await;
            let api = client(&server);
            let err = match call {
                "register" => api.register_key("ssh-ed25519 AAAA").await.unwrap_err(),
                _ => api.ssh_port().await.unwrap_err(),
            };
            let msg = err.to_string();
            assert!(!msg.chars().any(|c| c.is_control()), "{call}: {msg:?}");
        }
        // The tunnel's refusal too.
        let (server, _saw) = canned(reply("500 Internal Server Error", "", hostile)).await;
        let msg = client(&server).open_tunnel(2222).await.err().expect("refused").to_string();
        assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
    }
}
