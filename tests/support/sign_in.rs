//! The sign-in topology `oidc_e2e.rs` and `keychain_e2e.rs` share: node `oidc-provider`,
//! `sandbox-agent` behind Apache with mod_auth_openidc (or standing alone, validating the
//! provider's JWTs itself), a home for our CLI, and the stand-in browser it opens.

use std::process::Command;
use std::time::Duration;

use crate::oidc::{OidcGateway, Provider, StandInBrowser, AUDIENCE, CLIENT_ID};
use crate::{eventually, Agent, Home};

/// A provider, an agent (gated or standing alone) and a home; every process stops on drop.
pub struct SignIn {
    pub provider: Provider,
    /// Where the CLI sends API requests: the gateway, or the agent itself when it stands alone.
    pub server: String,
    pub home: Home,
    /// Writes the URL it was asked to open into `browser.url_file`.
    pub browser: StandInBrowser,
    _gateway: Option<OidcGateway>,
    _agent: Agent,
    _workspace: tempfile::TempDir,
}

impl SignIn {
    /// The agent behind the gateway, which checks the provider's access tokens (lifetime in
    /// seconds) and vouches for their subject.
    pub fn gated(access_token_ttl: u64) -> SignIn {
        let provider = Provider::start(access_token_ttl);
        let workspace = tempfile::tempdir().unwrap();
        let agent = Agent::start(workspace.path(), 0, &[]);
        let gateway = OidcGateway::start(agent.port, &provider, AUDIENCE);
        let server = gateway.url();
        SignIn::with(provider, server, Some(gateway), agent, workspace)
    }

    /// No gateway: the agent validates the provider's JWTs itself; `owner` (a login name, the
    /// provider's `sub`) owns the sandbox.
    pub fn standalone(access_token_ttl: u64, owner: &str) -> SignIn {
        let provider = Provider::start(access_token_ttl);
        let workspace = tempfile::tempdir().unwrap();
        let flags = ["--oidc-issuer", provider.issuer.as_str(), "--audience", AUDIENCE, "--allow-sub", owner];
        let agent = Agent::start(workspace.path(), 0, &flags);
        let server = agent.url();
        SignIn::with(provider, server, None, agent, workspace)
    }

    fn with(
        provider: Provider,
        server: String,
        gateway: Option<OidcGateway>,
        agent: Agent,
        workspace: tempfile::TempDir,
    ) -> SignIn {
        let home = Home::new();
        let browser = StandInBrowser::new(home.path());
        SignIn { provider, server, home, browser, _gateway: gateway, _agent: agent, _workspace: workspace }
    }

    /// `BROWSER` (the stand-in) and our log level for a client process.
    pub fn client_env<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        c.env("BROWSER", &self.browser.program).env("SANDBOX_FORWARD_LOG", "sandbox_core=info")
    }

    /// `sandbox-forward ssh-setup NAME` with browser sign-in at this provider (no environment
    /// but the home's: the caller adds its own).
    pub fn ssh_setup_args<'a>(&'a self, name: &'a str) -> [&'a str; 8] {
        let issuer = self.provider.issuer.as_str();
        ["ssh-setup", name, "--server", &self.server, "--oidc-issuer", issuer, "--client-id", CLIENT_ID]
    }

    /// The URL our CLI asked the browser to open, once it did (within `timeout`).
    #[track_caller]
    pub fn browser_url(&self, timeout: Duration) -> String {
        assert!(eventually(timeout, || self.browser.url_file.exists()), "the CLI never opened the browser");
        std::fs::read_to_string(&self.browser.url_file).unwrap()
    }

    /// The home's `~/.config/sandbox/tokens`.
    pub fn tokens_dir(&self) -> std::path::PathBuf {
        self.home.path().join(".config/sandbox/tokens")
    }
}
