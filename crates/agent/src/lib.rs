//! `sandbox-agent`: the pod side of Sandbox Forward — the sandbox HTTP API
//! (`/api/ssh-port`, `/api/ssh-authorized-keys`, `/api/port-forward`, `/api/listening-ports`)
//! and an embedded SSH server reachable only through the port-forward tunnel.
//!
//! This crate never depends on the client side (`sandbox-core`); the two meet only in
//! `sandbox-wire`.
//!
//! The pod side runs on Linux (and other Unixes): sessions need ptys, process groups and
//! signals. Windows is not a pod OS, so the crate refuses to build there rather than half-work;
//! cross-platform checks exclude it (`scripts/xcheck.sh`).
#[cfg(not(unix))]
compile_error!("sandbox-agent is the sandbox pod's side and runs on Linux/Unix only");

pub mod access;
pub mod authorized_keys;
pub mod http;
pub mod listening;
pub mod ssh;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{AccessPolicy, Untrusted};
use crate::authorized_keys::{AuthorizedKeys, KeyLimits};
use crate::http::{Authenticator, JwtValidator};
use crate::ssh::{HostKey, SshServer};

/// How the agent learns who sent a request. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
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
        /// The claim holding the caller's groups (`groups` unless `--groups-claim` says else).
        groups_claim: String,
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

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::ForwardedHeaders { dev_mode } => {
                f.debug_struct("ForwardedHeaders").field("dev_mode", dev_mode).finish()
            }
            AuthMode::Oidc { issuer, audience, groups_claim } => f
                .debug_struct("Oidc")
                .field("issuer", issuer)
                .field("audience", audience)
                .field("groups_claim", groups_claim)
                .finish(),
            AuthMode::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// A secret shared with the gateway (`--gateway-secret-file`); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewaySecret(Arc<str>);

impl GatewaySecret {
    /// The header the gateway sets to this secret on every request it forwards.
    pub const HEADER: &'static str = "x-sandbox-gateway-secret";

    /// Wraps a non-empty secret.
    pub fn new(secret: &str) -> Option<Self> {
        (!secret.is_empty()).then(|| GatewaySecret(secret.into()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for GatewaySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatewaySecret(..)")
    }
}

/// Who may use the sandbox and how its API may be reached, on top of [`AuthMode`]
/// (README "Trust model").
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// `--allow-sub`/`--allow-group`: the owners, in every mode.
    pub access: AccessPolicy,
    /// `--allow-any-subject`: OIDC mode without allow rules, said on purpose.
    pub allow_any_subject: bool,
    /// `--gateway-secret-file`: every request must carry it in [`GatewaySecret::HEADER`].
    pub gateway_secret: Option<GatewaySecret>,
    /// `--allow-origin`: browser origins admitted; any other `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    /// Bounds on registered SSH keys.
    pub key_limits: KeyLimits,
}

/// A configuration the agent refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// OIDC mode without an owner.
    #[error(
        "--oidc-issuer without --allow-sub or --allow-group would let anyone with a token for the \
         audience in; name the owner with --allow-sub SUB or --allow-group GROUP (or say --allow-any-subject)"
    )]
    NoOwner,
    /// `--allow-any-subject` beside allow rules.
    #[error("--allow-any-subject contradicts --allow-sub/--allow-group; give one or the other")]
    AnyAndRules,
    /// Dev mode off loopback.
    #[error(
        "--dev-mode accepts requests without identity and listens on loopback only; \
         use --api-addr 127.0.0.1:PORT instead of {0}"
    )]
    DevModeNotLoopback(SocketAddr),
    /// A malformed `--allow-origin`.
    #[error("--allow-origin {0} is not an origin like https://app.example.com (scheme and host, optional port, no path)")]
    BadOrigin(String),
}

/// How the agent runs.
#[derive(Debug, Clone, Default)]
pub struct AgentConfig {
    /// Sessions start here, with `HOME` set to it.
    pub workspace: PathBuf,
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// Serve `/api/ssh-port`, `/api/ssh-authorized-keys` and the embedded SSH server.
    pub ssh: bool,
    /// Serve `/api/port-forward`.
    pub port_forward: bool,
    /// Owners, gateway secret, browser origins, key bounds.
    pub trust: Trust,
    /// Protocol v2: the resume window and the caps on suspended tunnels.
    pub tunnels: http::TunnelLimits,
}

impl AgentConfig {
    /// Refuses configurations that would let strangers in when the API listens on `api_addr`;
    /// returns warnings worth a log line at start.
    pub fn check(&self, api_addr: SocketAddr) -> Result<Vec<String>, ConfigError> {
        let trust = &self.trust;
        if trust.allow_any_subject && trust.access.has_rules() {
            return Err(ConfigError::AnyAndRules);
        }
        for origin in &trust.allowed_origins {
            http::normalize_origin(origin)
                .ok_or_else(|| ConfigError::BadOrigin(Untrusted(origin).to_string()))?;
        }
        let mut warnings = Vec::new();
        match &self.auth {
            AuthMode::Oidc { .. } if !trust.access.has_rules() && !trust.allow_any_subject => {
                return Err(ConfigError::NoOwner)
            }
            AuthMode::ForwardedHeaders { dev_mode: true } if !api_addr.ip().is_loopback() => {
                return Err(ConfigError::DevModeNotLoopback(api_addr))
            }
            AuthMode::ForwardedHeaders { dev_mode: false }
                if trust.gateway_secret.is_none() && !api_addr.ip().is_loopback() =>
            {
                warnings.push(format!(
                    "trusting X-Forwarded-Sub on {api_addr} without --gateway-secret-file: anyone who can \
                     reach this address can claim any identity; let only the gateway reach it (e.g. a \
                     NetworkPolicy) or set --gateway-secret-file"
                ))
            }
            _ => {}
        }
        Ok(warnings)
    }
}

/// Runs the agent on an already-bound API listener until `shutdown` is cancelled.
///
/// A configuration [`AgentConfig::check`] refuses, and in OIDC mode a bad issuer URL or empty
/// audience, are `InvalidInput` errors; an unreachable provider is not (keys are fetched lazily,
/// and a first attempt is made in the background).
pub async fn run(api: TcpListener, config: AgentConfig, shutdown: CancellationToken) -> std::io::Result<()> {
    run_with(api, config, http::Limits::default(), shutdown).await
}

/// [`run`] with the HTTP server's connection cap and timeouts given (`--max-connections`…).
pub async fn run_with(
    api: TcpListener,
    config: AgentConfig,
    limits: http::Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let api_addr = api.local_addr()?;
    for warning in config.check(api_addr).map_err(|e| invalid(e.to_string()))? {
        tracing::warn!("{warning}");
    }
    let auth = match &config.auth {
        AuthMode::ForwardedHeaders { dev_mode } => Authenticator::ForwardedHeaders { dev_mode: *dev_mode },
        AuthMode::Token(token) => Authenticator::Token(token.as_str().into()),
        AuthMode::Oidc { issuer, audience, groups_claim } => {
            let validator = JwtValidator::new(issuer, audience)
                .map_err(|e| invalid(e.to_string()))?
                .with_groups_claim(groups_claim);
            tokio::spawn({
                let validator = validator.clone();
                async move { validator.prefetch().await }
            });
            Authenticator::Bearer(validator)
        }
    };
    let keys = AuthorizedKeys::with_policy(config.trust.access.clone(), config.trust.key_limits);
    let ssh = if config.ssh {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let port = listener.local_addr()?.port();
        let host_key = HostKey::generate();
        let public = host_key.openssh_public();
        let server =
            SshServer::new(host_key, keys.clone(), config.workspace.clone(), config.tunnels.resume_window);
        let injector = server.injector(listener.local_addr()?, shutdown.clone());
        tokio::spawn(server.serve(listener, shutdown.clone()));
        tracing::info!(port, "embedded SSH server listening on 127.0.0.1");
        Some(http::SshInfo { port, host_key: public, injector })
    } else {
        None
    };
    let state = http::State::new(config, auth, keys, ssh, api_addr.port());
    http::serve_with(api, state, limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_mode_off_loopback_without_a_gateway_secret_warns() {
        let config = AgentConfig::default();
        let public: SocketAddr = "0.0.0.0:19877".parse().unwrap();
        let warnings = config.check(public).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("--gateway-secret-file"), "{warnings:?}");
        assert_eq!(config.check("127.0.0.1:19877".parse().unwrap()), Ok(vec![]));
        let with_secret = AgentConfig {
            trust: Trust { gateway_secret: GatewaySecret::new("s"), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(with_secret.check(public), Ok(vec![]));
        assert_eq!(format!("{:?}", with_secret.trust.gateway_secret), "Some(GatewaySecret(..))");
        assert_eq!(format!("{:?}", AuthMode::Token("t0ken".into())), "Token(..)");
        assert!(GatewaySecret::new("").is_none());
    }

    #[test]
    fn refused_configurations() {
        let public: SocketAddr = "10.0.0.5:19877".parse().unwrap();
        let dev = AgentConfig { auth: AuthMode::ForwardedHeaders { dev_mode: true }, ..Default::default() };
        assert_eq!(dev.check(public), Err(ConfigError::DevModeNotLoopback(public)));
        assert!(dev.check("[::1]:1".parse().unwrap()).is_ok());
        let both = Trust {
            allow_any_subject: true,
            access: AccessPolicy::new(["a"], [""; 0]),
            ..Default::default()
        };
        assert_eq!(
            AgentConfig { trust: both, ..Default::default() }.check(public),
            Err(ConfigError::AnyAndRules)
        );
        for bad in ["null", "https://x.example/path", "x.example", "https://u@x.example"] {
            let trust = Trust { allowed_origins: vec![bad.into()], ..Default::default() };
            let result = AgentConfig { trust, ..Default::default() }.check("127.0.0.1:1".parse().unwrap());
            assert!(matches!(result, Err(ConfigError::BadOrigin(_))), "{bad}");
        }
    }
}
