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
    /// Where the SSH port seen at our key's registration is kept (see
    /// [`crate::paths::Paths::registered_ssh_port`]).
    pub registered_port: PathBuf,
}

/// The SSH port recorded at the last registration, if any.
pub fn registered_port(path: &std::path::Path) -> Option<u16> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Records the SSH port our key was registered at.
pub fn record_registered_port(path: &std::path::Path, port: u16) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomic(path, format!("{port}\n").as_bytes(), 0o644)
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
    /// The tunnel opened but no SSH server greeted through it.
    #[error("the tunnel to the sandbox's SSH port {port} opened, but no SSH server answered through it ({detail}); check that the server's port forwarding reaches its SSH server")]
    NoGreeting { port: u16, detail: String },
}

/// What happened before the first byte passed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// No pin to keep (`proxy --ssh --server`, without `--sandbox`).
    NotOffered,
    /// The pinned key matched.
    Unchanged,
    /// A new host key, or for a server without host keys a new SSH port (the pod restarted):
    /// key re-registered and the new host key (or port) recorded.
    Renewed,
}

/// Brings the pin (and the pod's copy of our public key) up to date, returning the SSH port.
///
/// A changed host key means a new pod process, which has lost its in-memory authorized keys:
/// re-registering then — and only then — keeps `ssh NAME` working without growing the key
/// list of servers that do not de-duplicate. A server without host keys (the original) picks
/// a fresh SSH port at every start instead, so there a port other than the one recorded at
/// registration is the sign of a restart.
pub async fn prepare(api: &ApiClient, pin: Option<&HostPin>) -> Result<(u16, PinOutcome), SshProxyError> {
    let info = api.ssh_port().await?;
    let Some(pin) = pin else {
        return Ok((info.port, PinOutcome::NotOffered));
    };
    let Some(offered) = info.host_key.as_deref() else {
        if registered_port(&pin.registered_port) == Some(info.port) {
            return Ok((info.port, PinOutcome::Unchanged));
        }
        if let Some(public_key) = &pin.public_key {
            api.register_key(public_key).await?;
        }
        if let Err(e) = record_registered_port(&pin.registered_port, info.port) {
            // The connection still works; the next one registers the key once more.
            tracing::warn!("cannot record the SSH port in {}: {e}", pin.registered_port.display());
        }
        return Ok((info.port, PinOutcome::Renewed));
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

/// How long `ssh-setup` waits for the SSH server's greeting through a fresh tunnel.
const GREETING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Proves the whole path before a setup reports success: one tunnel to the pod's SSH `port`,
/// through every proxy in between, must carry the SSH server's greeting (`SSH-2.0-…`) back. A
/// proxy that refuses the WebSocket upgrade (a 502) or a port that answers something else
/// fails here instead of at the user's first `ssh`.
pub async fn check_tunnel(api: &ApiClient, port: u16) -> Result<(), SshProxyError> {
    use tokio::io::AsyncReadExt;
    let (ours, theirs) = tokio::io::duplex(4096);
    let (their_read, their_write) = tokio::io::split(theirs);
    // Our write half stays open (unused) until the greeting is in: its end is the tunnel's EOF.
    let (mut read, write) = tokio::io::split(ours);
    // Protocol v1: a probe dropped after the greeting must not leave a suspended v2 tunnel
    // (and an SSH connection) waiting on the agent for its resume window.
    let pump = async {
        let ws = api.open_tunnel(port).await?;
        sandbox_wire::tunnel::splice(ws, their_read, their_write, Default::default()).await?;
        Ok::<(), TunnelError>(())
    };
    tokio::pin!(pump);
    let greeting = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got.len() < 4 && !got.contains(&b'\n') {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    };
    let got = tokio::select! {
        result = &mut pump => {
            result?;
            Vec::new()
        }
        got = tokio::time::timeout(GREETING_TIMEOUT, greeting) => match got {
            Ok(got) => got,
            Err(_) => return Err(SshProxyError::NoGreeting {
                port,
                detail: format!("nothing arrived within {} s", GREETING_TIMEOUT.as_secs()),
            }),
        },
    };
    if got.starts_with(b"SSH-") {
        // Dropped without a close handshake: waiting for the pod's SSH server to end its side
        // took seconds (measured: the e2e suite 4 s -> 43 s), for nothing the user sees.
        drop((write, read));
        return Ok(());
    }
    let detail = if got.is_empty() {
        "the tunnel closed before any byte arrived".to_owned()
    } else {
        format!("it answered {:?}", crate::untrusted::one_line(&String::from_utf8_lossy(&got), 60))
    };
    Err(SshProxyError::NoGreeting { port, detail })
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
