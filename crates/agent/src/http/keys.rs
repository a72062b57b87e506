//! `POST /api/ssh-authorized-keys`.

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sandbox_wire::api::{AuthorizedKeyRequest, MAX_KEY_BODY};

use super::{text, Body, Identity};
use crate::authorized_keys::AuthorizedKeys;

/// Registers the caller's public key: 201 with an empty body, 400 with a plain-text reason.
pub async fn register(req: Request<Incoming>, keys: &AuthorizedKeys, who: &Identity) -> Response<Body> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let body = match Limited::new(req.into_body(), MAX_KEY_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "request body too large or unreadable"),
    };
    let request: AuthorizedKeyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid JSON body"),
    };
    if request.public_key.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "public_key is empty");
    }
    match keys.add(&who.sub, &request.public_key) {
        Ok(added) => {
            tracing::info!(sub = %who.sub, user = ?who.user, new = added, "registered SSH public key");
            let mut resp = Response::new(Body::default());
            *resp.status_mut() = StatusCode::CREATED;
            resp
        }
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("invalid public key: {e}")),
    }
}
