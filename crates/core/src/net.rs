//! Reaching the sandbox server: TLS settings, the TCP/TLS transport under the WebSocket, and
//! turning low-level failures into one-line messages that name cause and fix.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::server::ServerUrl;

/// How long connecting (DNS + TCP + TLS) may take before we say so.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// TLS trust: the platform's store, plus an optional extra CA bundle (`--ca-file`), and
/// whether credentials may travel without TLS to a host off this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of extra trusted roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// `--allow-insecure-http`: the user accepted that an `http://` server or issuer that is
    /// not on loopback sees (and lets the network see) the credentials in cleartext.
    pub allow_insecure_http: bool,
}

impl TlsSettings {
    /// Refuses a cleartext (`http`/`ws`) `url` off loopback unless the user allowed it: every
    /// request carries a credential. `what` names the URL's role for the message.
    pub fn check_cleartext(&self, url: &url::Url, what: &'static str) -> Result<(), NetError> {
        if !is_cleartext(url) || is_loopback(url) {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if self.allow_insecure_http {
            tracing::info!(
                "sending credentials without TLS to {host} ({what}), as --allow-insecure-http allows"
            );
            return Ok(());
        }
        Err(NetError::Cleartext { host, what })
    }

    /// A rustls client config trusting the platform roots and `ca_file`, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, NetError> {
        let [config] = self.client_configs([alpn])?;
        Ok(config)
    }

    /// One client config per ALPN list, sharing one verifier: it reads the trusted roots once
    /// and keeps them, so build these once per client, not per connection.
    pub fn client_configs<const N: usize>(
        &self,
        alpns: [&[&[u8]]; N],
    ) -> Result<[ClientConfig; N], NetError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let extra = match &self.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let platform = Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
                .map_err(|e| NetError::TlsSetup(e.to_string()))?,
        );
        let verifier: Arc<dyn ServerCertVerifier> = if extra.is_empty() {
            platform
        } else {
            Arc::new(CaFileVerifier { inner: platform, exact: extra })
        };
        let configs = alpns.map(|alpn| {
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| NetError::TlsSetup(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(config)
        });
        let configs: Vec<ClientConfig> = configs.into_iter().collect::<Result<_, NetError>>()?;
        Ok(configs.try_into().unwrap_or_else(|_| unreachable!("one config per ALPN list")))
    }
}

/// The platform's verifier, plus: a server certificate that is byte for byte one of the
/// `--ca-file` certificates is trusted as itself (its name is still checked). A self-signed
/// certificate from `openssl req -x509` carries CA:TRUE, which WebPKI refuses as a server's own
/// (`CaUsedAsEndEntity`) even when it is the trust anchor; the user who hands us that exact
/// certificate means "trust this server".
#[derive(Debug)]
struct CaFileVerifier {
    inner: Arc<rustls_platform_verifier::Verifier>,
    exact: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verdict {
            Err(_) if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS handshake failure as a sentence with its fix. `addr` is `host:port`.
pub fn describe_tls(e: &rustls::Error, addr: &str) -> String {
    use rustls::CertificateError as C;
    let debug = format!("{e:?}");
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "the server's certificate is not issued by a CA this machine trusts; if your platform uses a private CA, pass its certificate with --ca-file".into(),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!("the server's certificate does not name {}; use a server URL with a name the certificate lists", addr.rsplit_once(':').map_or(addr, |(h, _)| h)),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "the server's certificate has expired; renew it (or check this machine's clock)".into(),
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => "the server's certificate is not valid yet; check this machine's clock".into(),
        rustls::Error::InvalidCertificate(C::Revoked) => "the server's certificate was revoked; the server needs a new one".into(),
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => "the server's certificate is not for TLS servers (no serverAuth usage); reissue it".into(),
        rustls::Error::InvalidCertificate(C::BadSignature) => "the server's certificate signature does not verify: --ca-file may hold a different CA than the one that issued it".into(),
        _ if debug.contains("CaUsedAsEndEntity") => "the server presents a CA certificate as its own (a self-signed certificate made with `openssl req -x509` is a CA); pass exactly that certificate with --ca-file, or give the server a certificate issued by a CA".into(),
        _ if debug.contains("UnsupportedSignatureAlgorithm") => "the server's certificate is signed with an algorithm that does not fit its issuer's key (or one not supported): check that --ca-file holds the CA that issued it, or reissue the certificate with RSA or ECDSA and SHA-256".into(),
        rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) | rustls::Error::PeerIncompatible(_) => "the server and this client have no TLS version, cipher or signature scheme in common (an RSA-PSS or other unusual certificate key?); give the server an RSA or ECDSA certificate, with TLS 1.2 or 1.3".into(),
        _ if debug.contains("InvalidContentType") || debug.contains("CorruptMessage") => format!("{addr} does not speak TLS (it answered like plain HTTP); use http:// for that port (only on a network you trust), or the server's https port"),
        _ => format!("{e}"),
    }
}

/// A TLS config that trusts nothing, for clients that only ever speak plain http.
pub fn no_tls_config() -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let bad = |detail: String| NetError::CaFile { path: path.to_owned(), detail };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Whether `url` travels without TLS.
pub fn is_cleartext(url: &url::Url) -> bool {
    matches!(url.scheme(), "http" | "ws")
}

/// Whether `url`'s host is this machine: 127.0.0.0/8, `::1` (also IPv4-mapped), `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(name)) => name.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A failure to reach the server, classified for the user.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The host name does not resolve.
    #[error("cannot resolve {host}: check the server URL and your DNS/VPN")]
    Dns { host: String },
    /// Nothing listens at the address.
    #[error("connection refused by {addr}: the sandbox server is not running there; check the server URL")]
    Refused { addr: String },
    /// No answer in time; `phase` says to what, `after` how long we really waited.
    #[error("{}", timeout_message(addr, *phase, *after))]
    Timeout { addr: String, phase: TimeoutPhase, after: Duration },
    /// The TLS handshake failed (untrusted certificate, wrong host name…); `detail` is a
    /// sentence with its fix ([`describe_tls`]).
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    /// The extra CA bundle is unusable.
    #[error("cannot use CA file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    /// rustls could not be configured.
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    /// An `http://` URL off loopback without `--allow-insecure-http`.
    #[error("refusing to send credentials in cleartext to {host}: {what} uses http:// and is not on this machine; use https://, or allow it explicitly (--allow-insecure-http; in the app: \"Allow insecure HTTP\") only on a network you trust")]
    Cleartext { host: String, what: &'static str },
    /// Any other socket error.
    #[error("network error talking to {addr}: {source}")]
    Io { addr: String, source: io::Error },
}

/// Which step of reaching the server ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// DNS and TCP: nothing answered at all.
    Connect,
    /// TCP connected, the TLS handshake did not finish.
    Tls,
    /// Connected; the answer to an API request did not come.
    Response,
    /// Connected; the answer to the WebSocket upgrade did not come.
    Upgrade,
}

fn timeout_message(addr: &str, phase: TimeoutPhase, after: Duration) -> String {
    let secs = format!("{:.0} s", after.as_secs_f64());
    match phase {
        TimeoutPhase::Connect => {
            format!("timed out connecting to {addr} after {secs}: the server is unreachable (VPN? firewall?)")
        }
        TimeoutPhase::Tls => format!(
            "{addr} accepted the connection but the TLS handshake did not finish within {secs}: something there does not answer TLS; check the URL's port"
        ),
        TimeoutPhase::Response => format!(
            "{addr} accepted the connection but sent no answer within {secs}: the server, or a proxy in front of it, is stuck; try again or check the server"
        ),
        TimeoutPhase::Upgrade => format!(
            "{addr} accepted the connection but did not answer the WebSocket upgrade within {secs}: the server, or a proxy in front of it, is stuck; try again or check the server"
        ),
    }
}

/// The byte stream under a tunnel's WebSocket: plain TCP for `http://`, TLS for `https://`.
#[allow(clippy::large_enum_variant)]
pub enum Transport {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens TCP (and TLS with `tls` when the URL says so) to the server, with `TCP_NODELAY`:
/// tunnel traffic is interactive, and the WebSocket layer already sends whole messages.
pub async fn connect(server: &ServerUrl, tls: Option<&Arc<ClientConfig>>) -> Result<Transport, NetError> {
    let addr = format!("{}:{}", server.host(), server.port());
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let addrs: Vec<_> = tokio::net::lookup_host(&addr)
            .await
            .map_err(|_| NetError::Dns { host: server.host().to_owned() })?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => classify_io(&addr, e),
            None => NetError::Dns { host: server.host().to_owned() },
        })
    })
    .await
    .map_err(|_| NetError::Timeout {
        addr: addr.clone(),
        phase: TimeoutPhase::Connect,
        after: CONNECT_TIMEOUT,
    })??;
    tcp.set_nodelay(true).map_err(|e| classify_io(&addr, e))?;
    if !server.is_tls() {
        return Ok(Transport::Plain(tcp));
    }
    let config =
        tls.cloned().ok_or_else(|| NetError::TlsSetup("no TLS configuration for an https server".into()))?;
    let name = ServerName::try_from(server.host().to_owned())
        .map_err(|_| NetError::Dns { host: server.host().to_owned() })?;
    let stream =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(config).connect(name, tcp))
            .await
            .map_err(|_| NetError::Timeout {
                addr: addr.clone(),
                phase: TimeoutPhase::Tls,
                after: CONNECT_TIMEOUT,
            })?
            .map_err(|e| {
                let detail = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                    Some(tls) => describe_tls(tls, &addr),
                    None => e.to_string(),
                };
                NetError::Tls { host: server.host().to_owned(), detail }
            })?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Maps a socket error to its user-facing class.
pub fn classify_io(addr: &str, e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => NetError::Refused { addr: addr.to_owned() },
        io::ErrorKind::TimedOut => {
            NetError::Timeout { addr: addr.to_owned(), phase: TimeoutPhase::Connect, after: CONNECT_TIMEOUT }
        }
        _ => NetError::Io { addr: addr.to_owned(), source: e },
    }
}

/// The causes of an error, outermost first. `io::Error` is descended through `get_ref`: its own
/// `source()` skips the wrapped error (where rustls puts its certificate verdicts).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| match c.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => c.source(),
    })
}

/// Classifies a reqwest failure by walking its cause chain; `waited` is how long the request
/// had been running (the time a timeout message names).
pub fn classify_reqwest(server: &ServerUrl, e: &reqwest::Error, waited: Duration) -> NetError {
    let addr = format!("{}:{}", server.host(), server.port());
    for c in causes(e) {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return NetError::Tls { host: server.host().to_owned(), detail: describe_tls(tls, &addr) };
        }
        if c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused) {
            return NetError::Refused { addr };
        }
        if c.to_string().contains("dns error") {
            return NetError::Dns { host: server.host().to_owned() };
        }
    }
    if e.is_timeout() {
        // reqwest's connect step covers TCP and TLS; after it, the wait is for the answer.
        let phase = if e.is_connect() { TimeoutPhase::Connect } else { TimeoutPhase::Response };
        return NetError::Timeout { addr, phase, after: waited };
    }
    // Unclassified: the innermost cause says what actually went wrong.
    let innermost = causes(e).last().map(|c| c.to_string()).unwrap_or_default();
    NetError::Io { addr, source: io::Error::other(innermost) }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_read_as_sentences_with_their_fix() {
        use rustls::CertificateError as C;
        let say = |e: rustls::Error| describe_tls(&e, "sandbox.example.com:443");
        let unknown = say(rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(unknown.contains("--ca-file"), "{unknown}");
        let ca = say(rustls::Error::InvalidCertificate(C::Other(rustls::OtherError(Arc::new(
            io::Error::other("CaUsedAsEndEntity"),
        )))));
        assert!(ca.contains("CA certificate as its own") && ca.contains("--ca-file"), "{ca}");
        let alg =
            say(rustls::Error::InvalidCertificate(C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: vec![1],
                public_key_algorithm_id: vec![2],
            }));
        assert!(alg.contains("does not fit its issuer's key") && !alg.contains("Context"), "{alg}");
        let name = say(rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(name.contains("does not name sandbox.example.com") && !name.contains("--ca-file"), "{name}");
        let plain = say(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType));
        assert!(plain.contains("does not speak TLS") && !plain.contains("--ca-file"), "{plain}");
        let none = say(rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert!(none.contains("no TLS version, cipher or signature scheme in common"), "{none}");
        for e in [unknown, ca, alg, name, plain, none] {
            assert!(!e.contains('{') && !e.contains("Other("), "raw: {e}");
        }
    }

    #[test]
    fn cleartext_is_refused_off_loopback_unless_allowed() {
        let strict = TlsSettings::default();
        let allowed = TlsSettings { allow_insecure_http: true, ..Default::default() };
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://[::1]:1",
            "http://[::ffff:127.0.0.1]",
            "ws://localhost:9/x",
            "http://LOCALHOST.",
            "https://sandbox.example.com",
            "wss://10.0.0.1",
        ] {
            assert!(strict.check_cleartext(&url::Url::parse(ok).unwrap(), "the server").is_ok(), "{ok}");
        }
        for refused in [
            "http://sandbox.example.com",
            "http://10.0.0.1:8080",
            "ws://[fe80::1]",
            "http://localhost.evil.com",
            "http://0.0.0.0",
        ] {
            let url = url::Url::parse(refused).unwrap();
            let err = strict.check_cleartext(&url, "the OpenID issuer").unwrap_err().to_string();
            assert!(err.contains("--allow-insecure-http") && err.contains("the OpenID issuer"), "{err}");
            assert!(allowed.check_cleartext(&url, "the server").is_ok(), "{refused}");
        }
    }
}
