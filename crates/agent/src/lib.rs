//! `sandbox-agent`: the pod side of Sandbox Forward — the sandbox HTTP API
//! (`/api/ssh-port`, `/api/ssh-authorized-keys`, `/api/port-forward`) and an embedded SSH
//! server reachable only through the port-forward tunnel.
//!
//! This crate never depends on the client side (`sandbox-core`); the two meet only in
//! `sandbox-wire`.
//!
//! The pod side runs on Linux (and other Unixes): sessions need ptys, process groups and
//! signals. Windows is not a pod OS, so the crate refuses to build there rather than half-work;
//! cross-platform checks exclude it (`scripts/xcheck.sh`).
#[cfg(not(unix))]
compile_error!("sandbox-agent is the sandbox pod's side and runs on Linux/Unix only");

pub mod authorized_keys;
pub mod http;
pub mod ssh;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::authorized_keys::AuthorizedKeys;
use crate::http::{Authenticator, JwtValidator};
use crate::ssh::{HostKey, SshServer};

/// How the agent learns who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Behind a routing service that authenticates and sets `X-Forwarded-Sub` (and `-User`,
    /// `-Groups`).
    ForwardedHeaders {
        /// Accept requests without `X-Forwarded-Sub` as subject `dev` (local development only).
        dev_mode: bool,
    },
    /// Standalone: validate `Authorization: Bearer <JWT>` from this OpenID provider; client-sent
    /// `X-Forwarded-*` headers are ignored.
    Oidc {
        /// Issuer URL; its `/.well-known/openid-configuration` names the JWKS.
        issuer: String,
        /// Required `aud` of access tokens.
        audience: String,
    },
    /// Standalone with one static bearer token (a local sandbox only its owner may use, like the
    /// desktop app's demo). The subject is `local`.
    Token(String),
}

impl Default for AuthMode {
    fn default() -> Self {
        AuthMode::ForwardedHeaders { dev_mode: false }
    }
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Sessions start here, with `HOME` set to it.
    pub workspace: PathBuf,
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// Serve `/api/ssh-port`, `/api/ssh-authorized-keys` and the embedded SSH server.
    pub ssh: bool,
    /// Serve `/api/port-forward`.
    pub port_forward: bool,
}

/// Runs the agent on an already-bound API listener until `shutdown` is cancelled.
///
/// In OIDC mode a bad issuer URL or empty audience is an `InvalidInput` error; an unreachable
/// provider is not (keys are fetched lazily, and a first attempt is made in the background).
pub async fn run(api: TcpListener, config: AgentConfig, shutdown: CancellationToken) -> std::io::Result<()> {
    let auth = match &config.auth {
        AuthMode::ForwardedHeaders { dev_mode } => Authenticator::ForwardedHeaders { dev_mode: *dev_mode },
        AuthMode::Token(token) => Authenticator::Token(token.as_str().into()),
        AuthMode::Oidc { issuer, audience } => {
            let validator = JwtValidator::new(issuer, audience)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
            tokio::spawn({
                let validator = validator.clone();
                async move { validator.prefetch().await }
            });
            Authenticator::Bearer(validator)
        }
    };
    let keys = AuthorizedKeys::new();
    let ssh = if config.ssh {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let port = listener.local_addr()?.port();
        let host_key = HostKey::generate();
        let public = host_key.openssh_public();
        let server = SshServer::new(host_key, keys.clone(), config.workspace.clone());
        let injector = server.injector(listener.local_addr()?, shutdown.clone());
        tokio::spawn(server.serve(listener, shutdown.clone()));
        tracing::info!(port, "embedded SSH server listening on 127.0.0.1");
        Some(http::SshInfo { port, host_key: public, injector })
    } else {
        None
    };
    let state = http::State::new(config, auth, keys, ssh);
    http::serve(api, state, shutdown).await
}
