//! The HTTP client openidconnect calls: our reqwest/rustls stack, redirects off (following them
//! would let a provider response steer us to arbitrary URLs).

use std::time::Duration;

use crate::net::TlsSettings;

/// A client for provider calls.
pub(super) fn client(tls: &TlsSettings) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("sandbox-forward/", env!("CARGO_PKG_VERSION")));
    builder = builder
        .tls_backend_preconfigured(tls.client_config(&[b"h2", b"http/1.1"]).map_err(|e| e.to_string())?);
    builder.build().map_err(|e| e.to_string())
}

/// Performs one `openidconnect` request with `client`.
/// Takes the client by value (a cheap handle) so the future borrows nothing and stays `Send`.
pub(super) async fn send(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let resp =
        client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = ::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(builder.body(body).expect("status and headers came from a valid response"))
}
