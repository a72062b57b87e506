//! The client side of the WebSocket opening handshake (RFC 6455 §4.1).
//!
//! Done here rather than by a library so that the bytes arriving right behind the `101` answer
//! (an SSH server's banner, say, sent as soon as the pod dials it) are handed to the tunnel
//! instead of staying in a library's buffer.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;

/// Longest answer head we read before giving up on the server.
const MAX_HEAD: usize = 16 * 1024;

/// Most of a refusal's body we keep for the error message.
const MAX_BODY: usize = 64 * 1024;

/// Why the upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server answered with a status other than 101.
    #[error("the server answered {status} instead of 101 Switching Protocols")]
    Refused { status: u16, body: String },
    /// The answer was not a valid WebSocket upgrade.
    #[error("{0}")]
    Invalid(String),
}

/// A completed upgrade.
#[derive(Debug)]
pub struct Upgraded {
    /// The bytes that followed the answer's head: the first frames.
    pub read_ahead: Vec<u8>,
    /// The answer's headers (a subprotocol, tunnel protocol v2's resume token).
    pub headers: http::HeaderMap,
}

impl Upgraded {
    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.header(http::header::SEC_WEBSOCKET_PROTOCOL.as_str())
    }

    /// One header of the answer, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
    }
}

/// Sends `GET path` to upgrade `io` to a WebSocket, with `headers` added (credentials, the
/// subprotocols offered), and reads the answer.
///
/// A subprotocol in the answer that `headers` did not offer fails the upgrade (RFC 6455 §4.1).
///
/// `host` is the request's Host header (`host[:port]`), `path` its target (`/p?q`); both come
/// from a parsed URL, and header values cannot hold a line break, so nothing here can inject a
/// header.
pub async fn client<S>(
    io: &mut S,
    host: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Upgraded, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    io.write_all(&request).await?;
    io.flush().await?;

    let mut buf = Vec::with_capacity(1024);
    let (status, head_len, accept, upgrade, body_len, answer) = loop {
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut parsed);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                };
                let body_len = header("content-length").and_then(|v| v.parse::<usize>().ok());
                let status = resp.code.unwrap_or_default();
                let mut answer = http::HeaderMap::new();
                for h in resp.headers.iter() {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(h.name.as_bytes()),
                        http::HeaderValue::from_bytes(h.value),
                    ) {
                        answer.append(name, value);
                    }
                }
                break (status, n, header("sec-websocket-accept"), header("upgrade"), body_len, answer);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Invalid("the answer's headers are too long".into()))
            }
            Err(e) => return Err(HandshakeError::Invalid(format!("the answer is not HTTP/1.1 ({e})"))),
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::Invalid("the server closed the connection without answering".into()));
        }
    };
    if status != 101 {
        // Without a length (chunked), what came with the head has to do: waiting for the end
        // of a kept-alive connection would hang.
        let want = body_len.unwrap_or(buf.len() - head_len).min(MAX_BODY);
        while buf.len() - head_len < want {
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let end = buf.len().min(head_len + want);
        let body = String::from_utf8_lossy(&buf[head_len..end]).into_owned();
        return Err(HandshakeError::Refused { status, body });
    }
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(HandshakeError::Invalid("the 101 answer does not upgrade to websocket".into()));
    }
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(HandshakeError::Invalid("the 101 answer has a wrong Sec-WebSocket-Accept".into()));
    }
    let upgraded = Upgraded { read_ahead: buf.split_off(head_len), headers: answer };
    if let Some(chosen) = upgraded.protocol() {
        let offered = headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|p| p.trim() == chosen));
        if !offered {
            return Err(HandshakeError::Invalid(format!(
                "the server chose the subprotocol {:?}, which was not offered",
                chosen.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(upgraded)
}
