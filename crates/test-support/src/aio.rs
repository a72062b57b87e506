//! The async helpers: echo servers, one raw HTTP/1.1 request, a server run in-process on the
//! test's runtime, polling.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An echo server on a free loopback port, on the test's runtime; returns its port.
pub async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("echo addr").port();
    echo_on(listener);
    port
}

/// Echoes every connection `listener` accepts (each until its EOF, then shuts its writing half).
pub fn echo_on(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// One raw HTTP/1.1 request to `127.0.0.1:port` with `Connection: close`, a `Content-Length` and
/// no headers but `headers`; reads the answer to its end (30 s at most). Returns (status, body).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = request_with_head(port, method, path, headers, body).await;
    (status, body)
}

/// [`request`], returning (status, status line and headers lower-cased, body).
pub async fn request_with_head(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // The server may answer (and close) before reading a large body.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    read.expect("answered within 30 s").ok();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status =
        out.split_whitespace().nth(1).unwrap_or_else(|| panic!("no answer: {out:?}")).parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A server running in-process on a loopback port with a workspace of its own; cancelled when
/// dropped.
pub struct InProcess {
    pub port: u16,
    shutdown: CancellationToken,
    _workspace: tempfile::TempDir,
}

impl InProcess {
    /// Binds `127.0.0.1:0` and spawns `serve(listener, workspace, shutdown)`.
    pub async fn start<F, Fut, T>(serve: F) -> InProcess
    where
        F: FnOnce(TcpListener, &Path, CancellationToken) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let workspace = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, workspace.path(), shutdown.clone()));
        InProcess { port, shutdown, _workspace: workspace }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
