//! Credentials attached to every request to the sandbox server.
//!
//! The routing service in front of the pod authenticates; we only carry what the platform
//! gave the user: a bearer token (literal or re-read from a file for every connection), cookies
//! and extra headers. Nothing here ever formats a secret into a message.

use std::fmt;
use std::path::{Path, PathBuf};

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use serde::{Deserialize, Serialize};

/// How requests authenticate, as stored in a sandbox profile or given on the command line.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `--bearer VALUE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    /// `--bearer-file PATH`, re-read for every connection so rotated tokens are picked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_file: Option<PathBuf>,
    /// `--cookie NAME=VALUE` (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<(String, String)>,
    /// `--header KEY=VALUE` (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for Credentials {
    // Values are secrets: show only which kinds are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("bearer_file", &self.bearer_file)
            .field("cookies", &self.cookies.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

/// Why credentials could not be turned into request headers.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bearer file is missing or unreadable.
    #[error("cannot read the bearer token file {path}: {source}; check --bearer-file")]
    BearerFile { path: PathBuf, source: std::io::Error },
    /// The bearer file is empty.
    #[error("the bearer token file {0} is empty; write a fresh token into it")]
    EmptyBearerFile(PathBuf),
    /// The bearer file holds something other than a token (its content is never shown).
    #[error("the bearer token file {path} does not look like a token: {why}; write only the token into it, on one line, or check --bearer-file")]
    NotAToken { path: PathBuf, why: &'static str },
    /// A value holds bytes HTTP forbids (newlines, control characters).
    #[error("the {0} contains characters not allowed in an HTTP header (newline or control character)")]
    InvalidValue(&'static str),
    /// A header name is not a valid token.
    #[error("invalid header name {0:?} in --header; expected KEY=VALUE")]
    InvalidHeaderName(String),
    /// `KEY=VALUE` syntax not followed.
    #[error("expected NAME=VALUE, got {0:?}")]
    NotAPair(String),
}

impl Credentials {
    /// Whether any credential is configured.
    pub fn is_empty(&self) -> bool {
        self.bearer.is_none()
            && self.bearer_file.is_none()
            && self.cookies.is_empty()
            && self.headers.is_empty()
    }

    /// Builds the request headers, re-reading the bearer file.
    pub fn headers(&self) -> Result<HeaderMap, AuthError> {
        let mut map = HeaderMap::new();
        let token = match (&self.bearer_file, &self.bearer) {
            (Some(path), _) => Some(read_bearer_file(path)?),
            (None, Some(token)) => Some(token.clone()),
            (None, None) => None,
        };
        if let Some(token) = token {
            map.insert(AUTHORIZATION, sensitive(&format!("Bearer {token}"), "bearer token")?);
        }
        if !self.cookies.is_empty() {
            let joined = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
            map.insert(COOKIE, sensitive(&joined, "cookie")?);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| AuthError::InvalidHeaderName(name.clone()))?;
            map.append(name, sensitive(value, "header value")?);
        }
        Ok(map)
    }
}

/// The most a bearer token file may hold: a JWT with many claims is a few KiB.
const MAX_BEARER_FILE: u64 = 64 * 1024;

/// Reads a bearer token file, trimming the trailing CR/LF editors and `echo` leave. The rest
/// must look like a token — one line of visible ASCII, no spaces — or the file is refused
/// without a byte of it in the message: a mistyped path (`~/.ssh/id_ed25519`, `/etc/passwd`)
/// must send nothing to the server and show nothing in a log.
pub fn read_bearer_file(path: &Path) -> Result<String, AuthError> {
    use std::io::Read;
    let fail = |source| AuthError::BearerFile { path: path.to_owned(), source };
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BEARER_FILE + 1).read_to_end(&mut raw))
        .map_err(fail)?;
    if raw.len() as u64 > MAX_BEARER_FILE {
        return Err(AuthError::NotAToken { path: path.to_owned(), why: "it is larger than 64 KiB" });
    }
    let end = raw.iter().rposition(|b| !matches!(b, b'\r' | b'\n')).map_or(0, |i| i + 1);
    let token = &raw[..end];
    if token.is_empty() {
        return Err(AuthError::EmptyBearerFile(path.to_owned()));
    }
    if let Some(bad) = token.iter().find(|b| !b.is_ascii_graphic()) {
        let why = match bad {
            b'\n' | b'\r' => "it holds more than one line",
            b' ' | b'\t' => "it holds a space (write only the token, without `Bearer `)",
            _ => "it holds control or non-ASCII characters",
        };
        return Err(AuthError::NotAToken { path: path.to_owned(), why });
    }
    Ok(String::from_utf8(token.to_vec()).expect("visible ASCII is UTF-8"))
}

/// Splits a `NAME=VALUE` flag argument.
pub fn parse_pair(arg: &str) -> Result<(String, String), AuthError> {
    match arg.split_once('=') {
        Some((n, v)) if !n.is_empty() => Ok((n.to_owned(), v.to_owned())),
        _ => Err(AuthError::NotAPair(arg.to_owned())),
    }
}

fn sensitive(value: &str, what: &'static str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| AuthError::InvalidValue(what))?;
    // Keeps the value out of HTTP/2 header compression tables and debug output.
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_file_is_reread_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "one\r\n").unwrap();
        let c = Credentials { bearer_file: Some(f.clone()), ..Default::default() };
        assert_eq!(c.headers().unwrap()[AUTHORIZATION], "Bearer one");
        std::fs::write(&f, "two\n").unwrap();
        assert_eq!(c.headers().unwrap()[AUTHORIZATION], "Bearer two");
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(c.headers(), Err(AuthError::EmptyBearerFile(_))));
    }

    #[test]
    fn a_bearer_file_that_is_not_a_token_is_refused_unseen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        let cases: [&[u8]; 6] = [
            b"Bearer secret-tok\n",
            b"secret line one\nsecret line two\n",
            b"secret-a\nsecret-b",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecretkeymaterial\n-----END OPENSSH PRIVATE KEY-----\n",
            b"secret\x1b]0;x\x07tok",
            b"root:x:0:0:secret:/root:/bin/bash\nuser:x:1000:1000:secret user:/home/u:/bin/sh\n",
        ];
        for content in cases {
            std::fs::write(&f, content).unwrap();
            let c = Credentials { bearer_file: Some(f.clone()), ..Default::default() };
            let err = c.headers().unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, AuthError::NotAToken { .. }),
                "{:?}: {msg}",
                String::from_utf8_lossy(content)
            );
            assert!(!msg.contains("secret") && msg.contains("--bearer-file"), "{msg}");
        }
        std::fs::write(&f, vec![b'a'; 70 * 1024]).unwrap();
        assert!(matches!(read_bearer_file(&f), Err(AuthError::NotAToken { .. })));
        // What tokens look like: JWTs, opaque base64url, with the newline `echo` adds.
        std::fs::write(&f, "eyJhbGciOi.eyJzdWIi.c2ln-_~+/=\r\n").unwrap();
        assert_eq!(read_bearer_file(&f).unwrap(), "eyJhbGciOi.eyJzdWIi.c2ln-_~+/=");
    }

    #[test]
    fn cookies_and_headers_are_attached() {
        let c = Credentials {
            cookies: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            headers: vec![("X-Team".into(), "blue".into())],
            ..Default::default()
        };
        let h = c.headers().unwrap();
        assert_eq!(h[COOKIE], "a=1; b=2");
        assert_eq!(h["x-team"], "blue");
    }

    #[test]
    fn header_injection_is_refused_without_echoing_the_value() {
        let c = Credentials { bearer: Some("secret\r\nX-Evil: 1".into()), ..Default::default() };
        let err = c.headers().unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_redacts_values() {
        let c = Credentials {
            bearer: Some("tok123".into()),
            cookies: vec![("sid".into(), "cookie456".into())],
            ..Default::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("tok123") && !s.contains("cookie456"), "{s}");
    }
}
