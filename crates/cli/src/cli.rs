//! The command line, as clap types. Commands and flags of the original `sandbox-forward` keep
//! their names and meaning; the rest is ours.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use sandbox_core::ide::Ide;

/// Tunnel SSH and TCP ports to a remote sandbox pod over an authenticated WebSocket.
#[derive(Debug, Parser)]
#[command(name = "sandbox-forward", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a keypair for NAME, register it with the sandbox and write `Host NAME` to ~/.ssh/config.
    #[command(name = "ssh-setup")]
    SshSetup {
        /// Sandbox name: letters, digits, '-' and '_'. Becomes the ssh host alias.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// Sandbox server URL (https://sandbox.example.com; a bare host means https). Without
        /// it, the sandbox's saved settings are used (one added in the app, or set up before).
        #[arg(long)]
        server: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        oidc: OidcArgs,
        /// Folder in the sandbox that `open` and the app open (absolute; default /workspace).
        #[arg(long, value_name = "PATH")]
        folder: Option<String>,
    },
    /// Sign in to a sandbox's OpenID provider in the browser.
    Login {
        /// Sandbox name (set up with ssh-setup --oidc-issuer).
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
    },
    /// Sign out: revoke the refresh token where the provider supports it, delete the stored tokens.
    Logout {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
    },
    /// Tunnel to the sandbox: SSH on stdio (--ssh, for ProxyCommand), a local port (--port), or a port on stdio.
    Proxy(ProxyArgs),
    /// Configure a sandbox's saved port forwards (what `up` and the app start).
    #[command(subcommand)]
    Forward(ForwardCommand),
    /// Run a sandbox's saved forwards (those marked --auto-start, or all with --all) until Ctrl-C.
    Up {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// Start every saved forward, not only the auto-start ones.
        #[arg(long)]
        all: bool,
    },
    /// Open a sandbox in VS Code, Cursor, JetBrains Gateway, Zed or a terminal (over `ssh NAME`).
    Open {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// vscode (or code), cursor, gateway (or jetbrains), zed or terminal (default: the
        /// editor chosen in the app's preferences, else vscode).
        #[arg(long)]
        ide: Option<Ide>,
        /// Folder in the sandbox (default: the one saved by ssh-setup --folder, else /workspace).
        #[arg(long, value_name = "PATH")]
        folder: Option<String>,
        /// Print the exact command line or URL instead of running it.
        #[arg(long)]
        print: bool,
    },
    /// List the TCP ports listening in a sandbox (1024 and up, on loopback or all addresses)
    /// with their processes: what `proxy --port` or `forward add` can reach.
    Ports {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// Print `{"ports":[{"port":N,"process":"name"|null}, …]}` (the API's answer) instead
        /// of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what is set up for one or all sandboxes and whether it works.
    Status {
        /// Only this sandbox.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: Option<String>,
        /// Skip the network checks (server reachable, key accepted).
        #[arg(long)]
        offline: bool,
    },
    /// List the sandboxes set up on this machine.
    List,
    /// Show what a `sandbox-forward://add?name=…&server=…` link (from a team's dashboard) sets
    /// up, and the ssh-setup command that does it. The link itself does nothing.
    #[command(name = "add-link")]
    AddLink {
        /// The link, e.g. 'sandbox-forward://add?name=dev&server=https://sandboxes.example.com'.
        link: String,
    },
    /// Remove a sandbox's keys, settings and Host block.
    Forget {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
    },
    /// Find and repair orphaned keys or blocks, a moved binary, a missing Include.
    Doctor {
        /// Only report; change nothing (exit status 1 when something needs repair).
        #[arg(long)]
        check: bool,
        /// Skip the network check (does the server accept each sandbox's key).
        #[arg(long)]
        offline: bool,
    },
    /// Print the version.
    Version,
    /// Print the shell hook for completions (bash, zsh, fish, elvish or powershell): it asks
    /// this binary, so sandbox names complete too. E.g. `source <(sandbox-forward completions bash)`.
    Completions {
        /// Target shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Use the server and credentials stored for this sandbox by ssh-setup.
    #[arg(long, conflicts_with = "server", add = ArgValueCandidates::new(crate::environment::sandbox_names))]
    pub sandbox: Option<String>,
    /// Sandbox server URL.
    #[arg(long, required_unless_present = "sandbox")]
    pub server: Option<String>,
    /// Carry an SSH connection on stdin/stdout (for ssh's ProxyCommand). As with the original
    /// tool, it wins over --port, --local-port and --stdio (which are then ignored, with a warning).
    #[arg(long)]
    pub ssh: bool,
    /// Port inside the sandbox to reach.
    #[arg(long, required_unless_present = "ssh", value_parser = clap::value_parser!(u16).range(1024..))]
    pub port: Option<u16>,
    /// Local port to listen on (default: the same as --port). Always bound to 127.0.0.1.
    #[arg(long, conflicts_with = "stdio")]
    pub local_port: Option<u16>,
    /// Carry one connection to --port on stdin/stdout instead of listening.
    #[arg(long)]
    pub stdio: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Credentials, as the original CLI takes them.
#[derive(Debug, Args, Default)]
pub struct AuthArgs {
    /// Bearer token (prefer --bearer-file: arguments are visible to other local users).
    #[arg(long, conflicts_with = "bearer_file")]
    pub bearer: Option<String>,
    /// File holding the bearer token; re-read for every connection.
    #[arg(long)]
    pub bearer_file: Option<PathBuf>,
    /// Cookie to send, NAME=VALUE (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub cookie: Vec<String>,
    /// Extra header to send, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub header: Vec<String>,
    /// Extra trusted CA certificates (PEM), for a private CA.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Allow an http:// server or OpenID issuer that is not on this machine: credentials then
    /// cross the network in cleartext. Loopback (127.0.0.1, ::1, localhost) never needs it.
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// OpenID Connect sign-in instead of a static credential.
#[derive(Debug, Args, Default)]
pub struct OidcArgs {
    /// Issuer URL of the organisation's OpenID provider; enables browser sign-in.
    #[arg(long, requires = "client_id", conflicts_with_all = ["bearer", "bearer_file"])]
    pub oidc_issuer: Option<String>,
    /// Client id of the (public, native) OAuth client registered for sandbox-forward.
    #[arg(long, requires = "oidc_issuer")]
    pub client_id: Option<String>,
    /// Scope to request (repeatable; default: openid offline_access).
    #[arg(long = "scope", requires = "oidc_issuer")]
    pub scopes: Vec<String>,
    /// API audience / resource to request tokens for, if the provider needs one named.
    #[arg(long, requires = "oidc_issuer")]
    pub audience: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// Save a forward: 127.0.0.1:LOCAL → PORT in the sandbox.
    Add {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// Port inside the sandbox (1024-65535).
        #[arg(long)]
        port: u16,
        /// Local port (default: the same as --port; 0 picks a free one).
        #[arg(long)]
        local_port: Option<u16>,
        /// What runs there, e.g. vite or debugpy.
        #[arg(long, default_value = "")]
        label: String,
        /// Start it with `up` and with the app.
        #[arg(long)]
        auto_start: bool,
    },
    /// Remove a saved forward.
    Rm {
        /// Sandbox name.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: String,
        /// Port inside the sandbox.
        #[arg(long)]
        port: u16,
    },
    /// List saved forwards.
    List {
        /// Only this sandbox.
        #[arg(add = ArgValueCandidates::new(crate::environment::sandbox_names))]
        name: Option<String>,
    },
}
