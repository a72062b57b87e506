//! `proxy --ssh`: the ProxyCommand. Discovers the pod's SSH port, keeps the pinned host key and
//! the registered public key in step with the pod, then carries ssh's bytes over one tunnel.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::api::{ApiClient, ApiError};
use crate::forward::{self, TunnelError};
use crate::known_hosts::{self, KnownHostsError};
use crate::name::SandboxName;

/// What `proxy --ssh --sandbox NAME` knows beyond the endpoint: where the host key is pinned
/// and which public key to re-register when the pod has restarted.
#[derive(Debug, Clone)]
pub struct HostPin {
    /// The `HostKeyAlias` ssh checks the pinned key under.
    pub alias: SandboxName,
    /// The per-sandbox known_hosts file.
    pub known_hosts: PathBuf,
    /// Our public key line, if the keypair exists.
    pub public_key: Option<String>,
}

/// Why the ProxyCommand failed.
#[derive(Debug, thiserror::Error)]
pub enum SshProxyError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The host key could not be pinned.
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    /// The tunnel failed.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
}

/// What happened before the first byte passed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// The server sends no host key (original server): nothing pinned.
    NotOffered,
    /// The pinned key matched.
    Unchanged,
    /// A new host key (the pod restarted): key re-registered and new host key pinned.
    Renewed,
}

/// Brings the pin (and the pod's copy of our public key) up to date, returning the SSH port.
///
/// A changed host key means a new pod process, which has lost its in-memory authorized keys:
/// re-registering then — and only then — keeps `ssh NAME` working without growing the key
/// list of servers that do not de-duplicate.
pub async fn prepare(api: &ApiClient, pin: Option<&HostPin>) -> Result<(u16, PinOutcome), SshProxyError> {
    let info = api.ssh_port().await?;
    let (Some(pin), Some(offered)) = (pin, info.host_key.as_deref()) else {
        return Ok((info.port, PinOutcome::NotOffered));
    };
    let offered = known_hosts::normalise(offered)?;
    if known_hosts::pinned(&pin.known_hosts, &pin.alias).as_deref() == Some(offered.as_str()) {
        return Ok((info.port, PinOutcome::Unchanged));
    }
    if let Some(public_key) = &pin.public_key {
        api.register_key(public_key).await?;
    }
    known_hosts::pin(&pin.known_hosts, &pin.alias, &offered)?;
    Ok((info.port, PinOutcome::Renewed))
}

/// Runs the ProxyCommand over `input`/`output` (ssh's pipes) until either side closes.
pub async fn run<R, W>(
    api: &ApiClient,
    pin: Option<&HostPin>,
    input: R,
    output: W,
) -> Result<PinOutcome, SshProxyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (port, outcome) = prepare(api, pin).await?;
    forward::stdio(api, port, input, output).await?;
    Ok(outcome)
}
