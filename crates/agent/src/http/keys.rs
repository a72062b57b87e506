//! `POST /api/ssh-authorized-keys`.

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sandbox_wire::api::AuthorizedKeyRequest;

use super::{text, Body, Identity};
use crate::access::Untrusted;
use crate::authorized_keys::{AddError, AuthorizedKeys, KeyLimits};

/// Largest request body: a key line of [`KeyLimits::MAX_LINE`] with its JSON around it.
pub const MAX_BODY: usize = 2 * KeyLimits::MAX_LINE;

/// Registers the caller's public key: 201 with an empty body; 400 with a plain-text reason for
/// a bad key, 413 for a body over [`MAX_BODY`], 415 unless the body is declared JSON (a web
/// page can POST `text/plain` without a preflight), 507 when the store is full.
pub async fn register(req: Request<Incoming>, keys: &AuthorizedKeys, who: &Identity) -> Response<Body> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if !is_json(req.headers().get(header::CONTENT_TYPE)) {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the key as Content-Type: application/json");
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || text(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body over {MAX_BODY} bytes"));
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "request body unreadable"),
    };
    let request: AuthorizedKeyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid JSON body"),
    };
    if request.public_key.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "public_key is empty");
    }
    match keys.register(&who.sub, &who.groups, &request.public_key) {
        Ok(added) => {
            let user = who.user.as_deref().map(Untrusted);
            tracing::info!(sub = %Untrusted(&who.sub), user = ?user, new = added, "registered SSH public key");
            let mut resp = Response::new(Body::default());
            *resp.status_mut() = StatusCode::CREATED;
            resp
        }
        Err(e @ AddError::Full(_)) => {
            tracing::warn!(sub = %Untrusted(&who.sub), "refused an SSH key: {e}");
            text(StatusCode::INSUFFICIENT_STORAGE, &e.to_string())
        }
        Err(AddError::Invalid(e)) => text(StatusCode::BAD_REQUEST, &format!("invalid public key: {e}")),
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`), in any case.
fn is_json(value: Option<&http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_is_json() {
        let v = http::HeaderValue::from_static;
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("Application/JSON; charset=utf-8"))));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(Some(&v(other))), "{other}");
        }
        assert!(!is_json(None));
    }
}
