//! The HTTP client openidconnect calls: our reqwest/rustls stack, redirects off (following them
//! would let a provider response steer us to arbitrary URLs).

use std::time::Duration;

use crate::net::TlsSettings;

/// The provider's HTTP client and whether cleartext off loopback is allowed.
#[derive(Debug, Clone)]
pub(super) struct OidcHttp {
    pub(super) client: reqwest::Client,
    tls: TlsSettings,
}

impl OidcHttp {
    /// Refuses a cleartext URL off loopback unless allowed (codes, tokens and refresh tokens
    /// travel in these requests).
    pub(super) fn check(&self, url: &url::Url) -> Result<(), crate::net::NetError> {
        self.tls.check_cleartext(url, "the OpenID provider")
    }
}

/// A client for provider calls.
pub(super) fn client(tls: &TlsSettings) -> Result<OidcHttp, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("sandbox-forward/", env!("CARGO_PKG_VERSION")));
    builder = builder
        .tls_backend_preconfigured(tls.client_config(&[b"h2", b"http/1.1"]).map_err(|e| e.to_string())?);
    let client = builder.build().map_err(|e| e.to_string())?;
    Ok(OidcHttp { client, tls: tls.clone() })
}

/// Why a provider request failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    /// Refused before sending: cleartext off loopback.
    #[error(transparent)]
    Cleartext(#[from] crate::net::NetError),
    /// The request failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Performs one `openidconnect` request with `client`.
/// Takes the client by value (a cheap handle) so the future borrows nothing and stays `Send`.
pub(super) async fn send(
    http: OidcHttp,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, SendError> {
    let (parts, body) = request.into_parts();
    let uri = parts.uri.to_string();
    if let Ok(url) = url::Url::parse(&uri) {
        http.check(&url)?;
    }
    let resp = http.client.request(parts.method, uri).headers(parts.headers).body(body).send().await?;
    let mut builder = ::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(builder.body(body).expect("status and headers came from a valid response"))
}
