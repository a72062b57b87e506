//! The loopback redirect listener of RFC 8252: `http://127.0.0.1:<random port>/callback`, bound
//! to 127.0.0.1 only, answering exactly one callback, closed right after.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::OidcError;

const CALLBACK_PATH: &str = "/callback";

/// A bound, not yet used, redirect listener.
pub(super) struct Loopback {
    listener: TcpListener,
    port: u16,
}

/// The browser's callback request, held open until we know what to tell the user.
pub(super) struct Callback {
    /// Query parameters (`code`, `state`, `iss`, or `error`, `error_description`).
    pub params: HashMap<String, String>,
    stream: TcpStream,
}

impl Loopback {
    /// Binds `127.0.0.1:0`.
    pub async fn bind() -> Result<Loopback, OidcError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            OidcError::Io(format!("cannot listen on 127.0.0.1 for the sign-in callback: {e}"))
        })?;
        let port = listener.local_addr().map_err(|e| OidcError::Io(e.to_string()))?.port();
        Ok(Loopback { listener, port })
    }

    /// The redirect URI to register in the authorization request.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// Waits for the callback; other paths (favicon, probes) get a 404 and are ignored. The
    /// listener is dropped — the port closed — when this returns.
    pub async fn wait(self, timeout: Duration) -> Result<Callback, OidcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await.map_err(|_| {
                OidcError::NotCompleted(format!(
                    "no answer from the browser within {} minutes",
                    timeout.as_secs() / 60
                ))
            })?;
            let Ok((mut stream, _)) = accepted else { continue };
            let Ok(Ok(target)) =
                tokio::time::timeout(Duration::from_secs(10), read_request_target(&mut stream)).await
            else {
                continue;
            };
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            if path != CALLBACK_PATH {
                let _ = respond(&mut stream, "404 Not Found", "Not found.").await;
                continue;
            }
            let params = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            return Ok(Callback { params, stream });
        }
    }
}

impl Callback {
    /// Shows the user the outcome and closes the connection.
    pub async fn finish(mut self, ok: bool, message: &str) {
        let status = if ok { "200 OK" } else { "400 Bad Request" };
        let _ = respond(&mut self.stream, status, message).await;
    }
}

/// Reads the request head; returns the request target of a GET.
async fn read_request_target(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    match line.split(' ').collect::<Vec<_>>()[..] {
        ["GET", target, _] => Ok(target.to_owned()),
        _ => Err(std::io::ErrorKind::InvalidData.into()),
    }
}

async fn respond(stream: &mut TcpStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = page(message);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn page(message: &str) -> String {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox Forward</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:4rem auto;max-width:32rem;color:#222}}\
         @media(prefers-color-scheme:dark){{body{{background:#1b1b1f;color:#eee}}}}</style></head>\
         <body><h1>Sandbox Forward</h1><p>{escaped}</p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_one_callback_on_127_0_0_1_then_closes() {
        let lb = Loopback::bind().await.unwrap();
        let uri = lb.redirect_uri();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"), "{uri}");
        let port = lb.port;
        let waiter = tokio::spawn(lb.wait(Duration::from_secs(10)));
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let browser = tokio::spawn(get(port, "/callback?code=c1&state=s%201"));
        let cb = waiter.await.unwrap().unwrap();
        assert_eq!(cb.params["code"], "c1");
        assert_eq!(cb.params["state"], "s 1");
        cb.finish(true, "Signed in as <alice>.").await;
        let page = browser.await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("Signed in as &lt;alice&gt;."), "{page}");
        // Single use: the port is closed now.
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout() {
        let lb = Loopback::bind().await.unwrap();
        let err = lb.wait(Duration::from_millis(100)).await.err().unwrap();
        assert!(matches!(err, OidcError::NotCompleted(_)));
    }
}
