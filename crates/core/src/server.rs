//! The sandbox server's base URL and the endpoint URLs derived from it.

use std::fmt;

use url::Url;

/// A validated sandbox server URL (`https://sandbox.example.com`, optionally with a path prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(Url);

/// Why a `--server` value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// Not parseable at all.
    #[error("invalid server URL {0:?}: expected https://HOST[:PORT] or a bare host name")]
    Invalid(String),
    /// A scheme other than http(s).
    #[error("unsupported scheme {0:?} in server URL: use https:// (or http:// for a local sandbox)")]
    Scheme(String),
    /// Credentials inside the URL would end up in files and process lists.
    #[error("the server URL must not carry a user name or password: use --bearer-file or --header instead")]
    UserInfo,
    /// Query or fragment: the API paths are appended to the URL.
    #[error("the server URL must not have a query or fragment: give only scheme, host, port and path")]
    Query,
}

impl ServerUrl {
    /// Parses a `--server` value. A bare host (`sandbox.example.com`) means https, as in the
    /// original CLI.
    pub fn parse(input: &str) -> Result<Self, ServerUrlError> {
        let input = input.trim();
        let with_scheme = if input.contains("://") { input.to_owned() } else { format!("https://{input}") };
        let url = Url::parse(&with_scheme).map_err(|_| ServerUrlError::Invalid(input.into()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(ServerUrlError::Scheme(other.into())),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ServerUrlError::Invalid(input.into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ServerUrlError::UserInfo);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ServerUrlError::Query);
        }
        Ok(ServerUrl(url))
    }

    /// The HTTP(S) URL of an API path such as `/api/ssh-port`, keeping any path prefix.
    pub fn endpoint(&self, api_path: &str) -> Url {
        let mut url = self.0.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{api_path}"));
        url
    }

    /// The WebSocket URL of `/api/port-forward?port=N` (http→ws, https→wss).
    pub fn port_forward(&self, port: u16) -> Url {
        let mut url = self.endpoint(sandbox_wire::api::PORT_FORWARD_PATH);
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        url.set_scheme(scheme).expect("ws and wss are valid special schemes");
        url.query_pairs_mut().append_pair("port", &port.to_string());
        url
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// Host name or address.
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// Port, defaulted from the scheme.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// The URL as given (normalised).
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_means_https_and_wss() {
        let s = ServerUrl::parse("sandbox.example.com").unwrap();
        assert_eq!(s.endpoint("/api/ssh-port").as_str(), "https://sandbox.example.com/api/ssh-port");
        assert_eq!(s.port_forward(2345).as_str(), "wss://sandbox.example.com/api/port-forward?port=2345");
    }

    #[test]
    fn http_maps_to_ws_and_prefix_is_kept() {
        let s = ServerUrl::parse("http://127.0.0.1:8080/pods/alice/").unwrap();
        assert_eq!(s.endpoint("/api/ssh-port").as_str(), "http://127.0.0.1:8080/pods/alice/api/ssh-port");
        assert_eq!(
            s.port_forward(1024).as_str(),
            "ws://127.0.0.1:8080/pods/alice/api/port-forward?port=1024"
        );
        assert_eq!(s.port(), 8080);
        assert!(!s.is_tls());
    }

    #[test]
    fn rejects_what_cannot_work_or_would_leak() {
        assert_eq!(ServerUrl::parse("ftp://x"), Err(ServerUrlError::Scheme("ftp".into())));
        assert_eq!(ServerUrl::parse("https://u:p@x"), Err(ServerUrlError::UserInfo));
        assert_eq!(ServerUrl::parse("https://x/?a=b"), Err(ServerUrlError::Query));
        assert!(ServerUrl::parse("https://").is_err());
        assert!(ServerUrl::parse("not a url").is_err());
    }
}
