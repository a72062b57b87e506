//! Who is calling: the subject the routing service vouches for in `X-Forwarded-Sub`, or — in
//! standalone OIDC mode — the `sub` of a bearer JWT the agent validated itself.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use sandbox_wire::api::{FORWARDED_GROUPS, FORWARDED_SUB, FORWARDED_USER};

use subtle::ConstantTimeEq;

use super::jwt::{JwtError, JwtValidator};
use super::{text, Body};

/// The caller, as the routing service or the bearer token identified them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable subject identifier (OIDC `sub`).
    pub sub: String,
    /// Display name, for audit logs.
    pub user: Option<String>,
    /// Groups, for audit logs.
    pub groups: Vec<String>,
}

impl Identity {
    /// Reads the identity headers; in dev mode a missing subject becomes `dev`.
    ///
    /// Each header may appear once: a gateway that appends to a client's `X-Forwarded-Sub`
    /// instead of replacing it would otherwise let the client's copy win. A subject with a comma
    /// is refused for the same reason (a proxy may join repeated headers with commas).
    pub fn from_headers(headers: &HeaderMap, dev_mode: bool) -> Result<Identity, Rejection> {
        let get = |name: &'static str| {
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(Rejection::RepeatedHeader(name));
            }
            Ok(first.and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()))
        };
        let sub = match get(FORWARDED_SUB)? {
            Some(s) if s.contains(',') => return Err(Rejection::RepeatedHeader(FORWARDED_SUB)),
            Some(s) => s.to_owned(),
            None if dev_mode => "dev".to_owned(),
            None => return Err(Rejection::MissingHeaders),
        };
        Ok(Identity {
            sub,
            user: get(FORWARDED_USER)?.map(str::to_owned),
            groups: get(FORWARDED_GROUPS)?
                .map(|g| g.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Trust `X-Forwarded-*` from the routing service; in dev mode a missing subject is `dev`.
    ForwardedHeaders {
        /// Accept requests without `X-Forwarded-Sub` as subject `dev`.
        dev_mode: bool,
    },
    /// Validate `Authorization: Bearer <JWT>` ourselves; `X-Forwarded-*` is ignored.
    Bearer(JwtValidator),
    /// One static bearer token (a local sandbox only its owner may use, such as the app's demo);
    /// the subject is `local`.
    Token(std::sync::Arc<str>),
}

/// Why a request has no identity; [`Rejection::response`] is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Header mode without `X-Forwarded-Sub`.
    MissingHeaders,
    /// Header mode with an identity header given more than once (or a subject with a comma).
    RepeatedHeader(&'static str),
    /// Bearer mode: no token, or a token we refused.
    Bearer(JwtError),
}

impl Rejection {
    /// 401 (plain text; `WWW-Authenticate` in bearer mode) or 503 when the identity provider
    /// cannot be reached.
    pub fn response(&self) -> Response<Body> {
        match self {
            Rejection::MissingHeaders => text(StatusCode::UNAUTHORIZED, "missing identity headers"),
            Rejection::RepeatedHeader(name) => text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{name} given more than once (or as a list); the gateway must replace identity headers, not append to them"
                ),
            ),
            Rejection::Bearer(e @ JwtError::ProviderUnavailable) => {
                text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
            Rejection::Bearer(e) => {
                let mut resp = text(StatusCode::UNAUTHORIZED, &e.to_string());
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
                resp
            }
        }
    }
}

impl Authenticator {
    /// Who sent a request with these headers.
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Identity, Rejection> {
        match self {
            Authenticator::ForwardedHeaders { dev_mode } => Identity::from_headers(headers, *dev_mode),
            Authenticator::Bearer(validator) => validator.identify(headers).await.map_err(Rejection::Bearer),
            Authenticator::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if given.is_empty() {
                    Err(Rejection::Bearer(JwtError::MissingToken))
                } else if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                    Ok(Identity { sub: "local".into(), user: None, groups: Vec::new() })
                } else {
                    Err(Rejection::Bearer(JwtError::Invalid("not this sandbox's token")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_static_token_admits_only_its_holder() {
        let auth = Authenticator::Token("s3cret-token".into());
        let mut headers = HeaderMap::new();
        assert_eq!(auth.identify(&headers).await, Err(Rejection::Bearer(JwtError::MissingToken)));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret-tokem"));
        assert!(matches!(auth.identify(&headers).await, Err(Rejection::Bearer(JwtError::Invalid(_)))));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret-token"));
        headers.insert(FORWARDED_SUB, HeaderValue::from_static("mallory"));
        assert_eq!(auth.identify(&headers).await.unwrap().sub, "local");
    }

    #[test]
    fn subject_required_unless_dev_mode() {
        let mut h = HeaderMap::new();
        assert_eq!(Identity::from_headers(&h, false), Err(Rejection::MissingHeaders));
        assert_eq!(Identity::from_headers(&h, true).unwrap().sub, "dev");
        h.insert("x-forwarded-sub", "alice".parse().unwrap());
        h.insert("x-forwarded-groups", "a, b,".parse().unwrap());
        let id = Identity::from_headers(&h, false).unwrap();
        assert_eq!((id.sub.as_str(), id.groups), ("alice", vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn an_identity_header_given_twice_is_refused() {
        for name in [FORWARDED_SUB, FORWARDED_USER, FORWARDED_GROUPS] {
            let mut h = HeaderMap::new();
            h.insert(FORWARDED_SUB, HeaderValue::from_static("alice"));
            h.insert(name, HeaderValue::from_static("alice"));
            h.append(name, HeaderValue::from_static("mallory"));
            for dev_mode in [false, true] {
                assert_eq!(
                    Identity::from_headers(&h, dev_mode),
                    Err(Rejection::RepeatedHeader(name)),
                    "{name}"
                );
            }
        }
        let mut h = HeaderMap::new();
        h.insert(FORWARDED_SUB, HeaderValue::from_static("mallory, alice"));
        assert_eq!(Identity::from_headers(&h, false), Err(Rejection::RepeatedHeader(FORWARDED_SUB)));
        let body = Rejection::RepeatedHeader(FORWARDED_SUB).response();
        assert_eq!(body.status(), StatusCode::BAD_REQUEST);
    }
}
