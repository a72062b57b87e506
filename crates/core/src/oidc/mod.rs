//! OpenID Connect sign-in: the browser login (authorization code + PKCE, loopback redirect per
//! RFC 8252), token storage in the OS keychain, and refresh serialised across processes.

mod http;
mod loopback;
mod provider;
pub mod session;
pub mod token_store;

use serde::{Deserialize, Serialize};

pub use provider::{login, LoginOptions};
pub use session::Session;

/// Scopes asked for when none are configured: identity plus a refresh token.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "offline_access"];

/// A sandbox's OpenID provider settings (public client: no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSettings {
    /// Issuer URL (discovery at `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    /// The registered public client's id.
    pub client_id: String,
    /// Scopes to request.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// API audience / resource to request tokens for, when the provider needs one named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
}

/// Why signing in, refreshing or signing out failed. Messages name cause and fix and never
/// contain a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery failed.
    #[error("cannot read the OpenID configuration of {issuer}: {detail}; check --oidc-issuer")]
    Discovery { issuer: String, detail: String },
    /// The provider's answer breaks the protocol or fails verification.
    #[error("sign-in rejected: {0}")]
    Rejected(String),
    /// The user (or the provider) refused, or the browser never came back.
    #[error("sign-in did not complete: {0}")]
    NotCompleted(String),
    /// No stored sign-in, or it can no longer be refreshed.
    #[error("not signed in to {name} ({why}); run `sandbox-forward login {name}`")]
    LoginRequired { name: String, why: String },
    /// Token storage failed.
    #[error(transparent)]
    Store(#[from] token_store::StoreError),
    /// Local I/O (loopback listener, lock file).
    #[error("{0}")]
    Io(String),
}
