//! `sandbox-agent` command line: parse flags, bind, announce, run.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use sandbox_agent::access::AccessPolicy;
use sandbox_agent::{AgentConfig, AuthMode, GatewaySecret, Trust};
use tokio_util::sync::CancellationToken;

/// The sandbox pod's side of Sandbox Forward: HTTP API + embedded SSH server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the HTTP API (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:19877")]
    api_addr: SocketAddr,
    /// Directory sessions start in; also their HOME.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// Accept requests without X-Forwarded-Sub (as subject "dev"). Local development only;
    /// not with --oidc-issuer.
    #[arg(long)]
    dev_mode: bool,
    /// Validate `Authorization: Bearer <JWT>` from this OpenID provider instead of trusting
    /// X-Forwarded-Sub (standalone, no routing service in front). Needs --audience.
    #[arg(long, value_name = "URL", requires = "audience")]
    oidc_issuer: Option<String>,
    /// The `aud` access tokens must carry (with --oidc-issuer).
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    audience: Option<String>,
    /// The token claim holding the caller's groups, for --allow-group (with --oidc-issuer).
    #[arg(long, value_name = "CLAIM", requires = "oidc_issuer", default_value = "groups")]
    groups_claim: String,
    /// Let this subject use the sandbox (repeatable). With any --allow-sub or --allow-group, a
    /// caller named by neither gets 403, in every mode; --oidc-issuer requires one of them.
    #[arg(long, value_name = "SUB")]
    allow_sub: Vec<String>,
    /// Let members of this group use the sandbox (repeatable): X-Forwarded-Groups behind a
    /// gateway, the --groups-claim of the token with --oidc-issuer.
    #[arg(long, value_name = "GROUP")]
    allow_group: Vec<String>,
    /// With --oidc-issuer and no --allow-sub/--allow-group: admit anyone holding a valid token
    /// for the audience (say so only if the provider issues such tokens to owners alone).
    #[arg(long, conflicts_with_all = ["allow_sub", "allow_group"])]
    allow_any_subject: bool,
    /// Require every request to carry the secret in this file (first line) in the
    /// X-Sandbox-Gateway-Secret header, which the gateway in front sets.
    #[arg(long, value_name = "FILE")]
    gateway_secret_file: Option<PathBuf>,
    /// Admit requests from web pages of this origin (repeatable; e.g. https://ide.example.com).
    /// Any other request carrying an Origin header gets 403.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Require `Authorization: Bearer <token>` with the token in this file (first line), e.g. for
    /// a sandbox on loopback that only its owner may use. Not with --oidc-issuer or --dev-mode.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["oidc_issuer", "dev_mode"])]
    token_file: Option<PathBuf>,
    /// Turn off the embedded SSH server and its endpoints.
    #[arg(long)]
    no_ssh: bool,
    /// Turn off /api/port-forward.
    #[arg(long)]
    no_port_forward: bool,
    /// HTTP connections (tunnels included) open at once; more wait in the listen backlog until
    /// one closes. Default: a quarter of the open-file limit (RLIMIT_NOFILE) less a reserve.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Seconds a client may take to send a request's headers, and a kept-alive connection may
    /// stay idle, before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds from a request's headers to its response, body included; a slower request gets
    /// 408 and its connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: u64,
    /// Seconds a tunnel whose connection dropped is kept for the client to resume (tunnel
    /// protocol v2): the pod-side connection — an SSH session, a forwarded TCP connection —
    /// stays open meanwhile. 0 turns resumption off (every tunnel speaks protocol v1).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    resume_window: u64,
}

/// One thread: a tunnelled ssh packet passes from the WebSocket pump to the SSH server task and
/// back, and on a multi-thread runtime every such hand-off can wake a second worker (measured
/// through the tunnel: `ssh NAME true` 24 ms → 19.5 ms, direct 18.5 ms). One core's SSH crypto
/// (~1 GB/s) outruns any link to a pod; file I/O and child processes run off this thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SANDBOX_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a pod's log collector stores the escapes raw.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let args = Args::parse();
    let auth = match (args.oidc_issuer, args.audience) {
        (Some(_), Some(_)) if args.dev_mode => anyhow::bail!(
            "--dev-mode cannot be combined with --oidc-issuer: dev mode trusts X-Forwarded-Sub, \
             OIDC mode requires a valid bearer token on every request"
        ),
        (Some(issuer), Some(audience)) => {
            sandbox_agent::http::JwtValidator::new(&issuer, &audience)?;
            AuthMode::Oidc { issuer, audience, groups_claim: args.groups_claim.clone() }
        }
        _ => match &args.token_file {
            Some(path) => AuthMode::Token(read_secret("--token-file", path)?),
            None => AuthMode::ForwardedHeaders { dev_mode: args.dev_mode },
        },
    };
    let gateway_secret = match &args.gateway_secret_file {
        Some(path) => GatewaySecret::new(&read_secret("--gateway-secret-file", path)?),
        None => None,
    };
    let trust = Trust {
        access: AccessPolicy::new(args.allow_sub, args.allow_group),
        allow_any_subject: args.allow_any_subject,
        gateway_secret,
        allowed_origins: args.allow_origin,
        key_limits: Default::default(),
    };
    let tunnels = sandbox_agent::http::TunnelLimits {
        resume_window: std::time::Duration::from_secs(args.resume_window),
        ..Default::default()
    };
    let workspace = std::fs::canonicalize(&args.workspace)
        .map_err(|e| anyhow::anyhow!("workspace {}: {e}", args.workspace.display()))?;
    let config = AgentConfig {
        workspace,
        auth,
        ssh: !args.no_ssh,
        port_forward: !args.no_port_forward,
        trust,
        tunnels,
    };
    // Refuse before binding, so nothing ever listened with a configuration we refuse.
    config.check(args.api_addr)?;
    let listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.api_addr))?;
    match &config.auth {
        AuthMode::ForwardedHeaders { dev_mode: true } => {
            tracing::warn!("dev mode: requests without X-Forwarded-Sub are accepted as subject \"dev\"")
        }
        AuthMode::ForwardedHeaders { dev_mode: false } => {
            tracing::info!("trusting X-Forwarded-Sub from the routing service")
        }
        AuthMode::Oidc { issuer, audience, groups_claim } => {
            tracing::info!(issuer = ?issuer, audience = ?audience, groups_claim = ?groups_claim, "validating bearer tokens (OIDC)")
        }
        AuthMode::Token(_) => tracing::info!("requiring the bearer token from --token-file"),
    }
    // Tests and scripts read this first line to learn the port.
    let mut out = std::io::stdout();
    writeln!(out, "listening on http://{}", listener.local_addr()?)?;
    out.flush()?;

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let limits = sandbox_agent::http::Limits {
        max_connections: args
            .max_connections
            .map_or_else(sandbox_agent::http::default_max_connections, |n| n as usize),
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
        request_timeout: std::time::Duration::from_secs(args.request_timeout),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = args.header_timeout,
        request_timeout_s = args.request_timeout,
        "HTTP limits"
    );
    sandbox_agent::run_with(listener, config, limits, shutdown).await?;
    Ok(())
}

/// The first line of a secret file, trimmed; an empty one is refused. Never echoes the content.
fn read_secret(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {flag} {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(
        !secret.is_empty(),
        "{flag} {} is empty; write the secret into its first line",
        path.display()
    );
    Ok(secret)
}
