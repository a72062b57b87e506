//! One function per command: turn flags into core calls and core results into output.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sandbox_core::api::{ApiClient, Endpoint};
use sandbox_core::auth::{parse_pair, Credentials};
use sandbox_core::forward::{self, ForwardStats};
use sandbox_core::inspect::{access_fix, effective_proxy_command, probe_ssh, Problem, SshView};
use sandbox_core::name::SandboxName;
use sandbox_core::net::TlsSettings;
use sandbox_core::profile::Profile;
use sandbox_core::server::ServerUrl;
use sandbox_core::ssh_config::IncludeStatus;
use sandbox_core::ssh_proxy::{self, HostPin};
use sandbox_core::stdio;
use sandbox_core::untrusted::printable;

use std::time::Duration;

use sandbox_core::oidc::{OidcSettings, DEFAULT_SCOPES};

use sandbox_core::forwards::{Forwards, PortForward};

use crate::cli::{AuthArgs, Command, ForwardCommand, OidcArgs, ProxyArgs};
use crate::environment;

use sandbox_core::ide::{self, Ide, Os};

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::SshSetup { name, server, auth, oidc, folder } => {
            ssh_setup(&name, server.as_deref(), auth, oidc, folder).await
        }
        Command::Login { name } => login(&name).await,
        Command::Logout { name } => logout(&name).await,
        Command::Proxy(args) => proxy(args).await,
        Command::Forward(cmd) => forward_config(cmd),
        Command::Up { name, all } => up(&name, all).await,
        Command::Open { name, ide, folder, print } => open_in_ide(&name, ide, folder, print).await,
        Command::Ports { name, json } => ports(&name, json).await,
        Command::Status { name, offline } => status(name.as_deref(), offline).await,
        Command::List => list(),
        Command::AddLink { link } => add_link(&link),
        Command::Forget { name } => forget(&name).await,
        Command::Doctor { check, offline } => doctor(check, offline).await,
        Command::Version => {
            println!("sandbox-forward {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            // The dynamic hook (what `COMPLETE=SHELL sandbox-forward` prints): the shell asks
            // the binary at each TAB, so the names of the sandboxes set up here complete too.
            let name = shell.to_string();
            let shells = clap_complete::env::Shells::builtins();
            let hook = shells.completer(&name).context("no completion hook for that shell")?;
            hook.write_registration(
                COMPLETE_VAR,
                "sandbox-forward",
                "sandbox-forward",
                "sandbox-forward",
                &mut std::io::stdout(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn credentials(auth: &AuthArgs) -> anyhow::Result<Credentials> {
    let pairs = |v: &[String]| v.iter().map(|s| parse_pair(s)).collect::<Result<Vec<_>, _>>();
    let bearer_file = match &auth.bearer_file {
        // Stored in a profile and read from other directories later: make it absolute.
        Some(p) => Some(std::path::absolute(p).with_context(|| format!("--bearer-file {}", p.display()))?),
        None => None,
    };
    Ok(Credentials {
        bearer: auth.bearer.clone(),
        bearer_file,
        cookies: pairs(&auth.cookie)?,
        headers: pairs(&auth.header)?,
    })
}

fn ca_file(auth: &AuthArgs) -> anyhow::Result<Option<std::path::PathBuf>> {
    auth.ca_file.as_deref().map(std::path::absolute).transpose().context("--ca-file")
}

/// The warning `--allow-insecure-http` earns, on stderr (stdout may be a tunnel).
fn warn_cleartext(hosts: &[String]) {
    for host in hosts {
        eprintln!(
            "Warning: credentials for {host} travel in cleartext over http:// (--allow-insecure-http); anyone on the network path can read and reuse them"
        );
    }
}

/// The variable that turns a run into a shell-completion request (clap_complete's `CompleteEnv`).
pub const COMPLETE_VAR: &str = "SANDBOX_FORWARD_COMPLETE";

/// How long the browser sign-in may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

async fn ssh_setup(
    name: &str,
    server: Option<&str>,
    auth: AuthArgs,
    oidc: OidcArgs,
    folder: Option<String>,
) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let Some(server) = server else {
        return ssh_setup_saved(&install, &name, auth, oidc, folder).await;
    };
    ServerUrl::parse(server)?;
    if let Some(folder) = &folder {
        ide::validate_folder(folder).context("--folder")?;
    }
    let oidc = oidc.oidc_issuer.map(|issuer| OidcSettings {
        issuer,
        client_id: oidc.client_id.unwrap_or_default(),
        scopes: if oidc.scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
        } else {
            oidc.scopes
        },
        audience: oidc.audience,
    });
    // Re-running ssh-setup keeps what else the sandbox had (its forwards, its folder).
    let mut previous = install.profiles().load(&name).unwrap_or_default();
    if folder.is_some() {
        previous.remote_folder = folder;
    }
    let profile = Profile {
        server: server.to_owned(),
        ca_file: ca_file(&auth)?,
        credentials: credentials(&auth)?,
        oidc,
        allow_insecure_http: auth.allow_insecure_http,
        ..previous
    };
    // Before any sign-in or request: credentials never leave in cleartext unless allowed.
    profile.check_cleartext()?;
    warn_cleartext(&profile.cleartext_hosts());
    // A sandbox moved to another server or provider: its tokens stay behind.
    if install.drop_sign_in_if_moved(&name, &profile).await? {
        println!("The server or sign-in provider of {name} changed: deleted its stored sign-in");
    }
    if let Some(session) = install.session(&name, &profile).await {
        // Sign in first unless a usable (or refreshable) sign-in is stored already.
        if session.access_token().await.is_err() {
            let tokens = session.login(&environment::open_browser, LOGIN_TIMEOUT).await?;
            println!("Signed in as {}", tokens.subject);
        }
    }
    let report = install.ssh_setup(&name, profile, &environment::key_comment()).await?;
    report_setup(&install, &name, server, report).await
}

/// `ssh-setup NAME` without `--server`: the saved settings (a sandbox added in the app, or set
/// up before) with a fresh key. Credentials come only from the settings: flags that would change
/// them need `--server` too, so a half-specified change never mixes with stored secrets.
async fn ssh_setup_saved(
    install: &sandbox_core::setup::Installation,
    name: &SandboxName,
    auth: AuthArgs,
    oidc: OidcArgs,
    folder: Option<String>,
) -> anyhow::Result<ExitCode> {
    let changes_credentials = auth.bearer.is_some()
        || auth.bearer_file.is_some()
        || !auth.cookie.is_empty()
        || !auth.header.is_empty()
        || auth.ca_file.is_some()
        || auth.allow_insecure_http
        || oidc.oidc_issuer.is_some();
    if changes_credentials {
        anyhow::bail!("give --server URL too when changing {name}'s credentials or trust settings");
    }
    let mut profile = match install.profiles().load(name) {
        Ok(profile) => profile,
        Err(sandbox_core::profile::ProfileError::Missing(_)) => anyhow::bail!(
            "{name} has no saved settings here; run `sandbox-forward ssh-setup {name} --server URL …` (or add it in the app)"
        ),
        Err(e) => return Err(e.into()),
    };
    if let Some(folder) = folder {
        ide::validate_folder(&folder).context("--folder")?;
        profile.remote_folder = Some(folder);
    }
    profile.check_cleartext()?;
    warn_cleartext(&profile.cleartext_hosts());
    if let Some(session) = install.session(name, &profile).await {
        if session.access_token().await.is_err() {
            let tokens = session.login(&environment::open_browser, LOGIN_TIMEOUT).await?;
            println!("Signed in as {}", tokens.subject);
        }
    }
    let server = profile.server.clone();
    let report = install.ssh_setup(name, profile, &environment::key_comment()).await?;
    report_setup(install, name, &server, report).await
}

/// What `ssh-setup` prints once the key is registered and the block written.
async fn report_setup(
    install: &sandbox_core::setup::Installation,
    name: &SandboxName,
    server: &str,
    report: sandbox_core::setup::SetupReport,
) -> anyhow::Result<ExitCode> {
    let verb = if report.rotated { "Rotated" } else { "Generated" };
    println!("{verb} key {} and registered it with {server}", install.paths.private_key(name).display());
    if report.host_key_pinned {
        println!("Pinned the sandbox's SSH host key (re-pinned through the authenticated API whenever the pod restarts)");
    } else {
        println!("The server does not publish its SSH host key: host-key checking is off for {name}, as with the original tool");
    }
    match &report.include {
        IncludeStatus::ManualLineNeeded { line, reason } => {
            println!("Wrote Host {name} to {}", install.paths.ssh_include().display());
            println!("{reason}. Add this line near the top of your ssh config (before any Host or Match):");
            println!("    {line}");
        }
        _ => println!(
            "Wrote Host {name} to {} (included from {})",
            install.paths.ssh_include().display(),
            install.paths.ssh_config.display()
        ),
    }
    if let Some(moved) = &report.legacy_moved {
        println!(
            "Moved the original sandbox-forward's Host {name} block out of {} into {} (it would shadow this one)",
            install.paths.ssh_config.display(),
            moved.backup.display()
        );
    }
    if let Some(left) = &report.legacy_left {
        println!("Warning: {left}");
    }
    let expected = install.host_block(name, report.host_key_pinned)?.proxy_command;
    let ssh = environment::ssh_binary();
    let config = install.paths.ssh_config.display();
    let manual = matches!(report.include, IncludeStatus::ManualLineNeeded { .. });
    match effective_proxy_command(&ssh, &install.paths.ssh_config, name).await {
        Some(SshView::Rejected(message)) => println!(
            "Warning: ssh refuses {config}: {message}; fix that file, or ssh cannot use any host in it"
        ),
        Some(SshView::ProxyCommand(actual)) if actual == expected => {
            println!("Checked with `ssh -G {name}`: ssh uses this block")
        }
        Some(SshView::ProxyCommand(_)) if manual => {
            println!("ssh does not use this block until the Include line above is in your ssh config")
        }
        Some(SshView::ProxyCommand(actual)) if actual.is_empty() => println!(
            "Warning: `ssh -G {name}` runs no ProxyCommand: {config} does not include {}; run `sandbox-forward doctor`",
            install.paths.ssh_include().display()
        ),
        Some(SshView::ProxyCommand(actual)) => println!(
            "Warning: `ssh -G {name}` uses ProxyCommand {actual:?}: an earlier `Host {name}` entry in {config} takes precedence; remove it"
        ),
        None => {}
    }
    println!("Try it: ssh {name}");
    Ok(ExitCode::SUCCESS)
}

/// Endpoint and (with --sandbox) host pin for `proxy`; explicit flags override the profile.
async fn proxy_target(args: &ProxyArgs) -> anyhow::Result<(Endpoint, Option<HostPin>)> {
    let explicit = credentials(&args.auth)?;
    if let Some(name) = &args.sandbox {
        let name = SandboxName::new(name)?;
        let install = environment::installation()?;
        let profile = install.profiles().load(&name)?;
        let mut endpoint = install.endpoint(&name, &profile).await?;
        if !explicit.is_empty() {
            endpoint.credentials = explicit;
        }
        if let Some(ca) = ca_file(&args.auth)? {
            endpoint.tls.ca_file = Some(ca);
        }
        endpoint.tls.allow_insecure_http |= args.auth.allow_insecure_http;
        return Ok((endpoint, Some(install.host_pin(&name)?)));
    }
    let server = args.server.as_deref().context("--server or --sandbox is required")?;
    let endpoint = Endpoint {
        server: ServerUrl::parse(server)?,
        credentials: explicit,
        tls: TlsSettings {
            ca_file: ca_file(&args.auth)?,
            allow_insecure_http: args.auth.allow_insecure_http,
        },
        bearer: None,
    };
    let profile = Profile {
        server: server.to_owned(),
        allow_insecure_http: args.auth.allow_insecure_http,
        ..Default::default()
    };
    profile.check_cleartext()?;
    warn_cleartext(&profile.cleartext_hosts());
    Ok((endpoint, None))
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let (endpoint, pin) = proxy_target(&args).await?;
    let api = ApiClient::new(endpoint)?;
    if args.ssh {
        // The original lets --ssh win; stdout is ssh's, so the warning goes to stderr.
        for (given, flag) in [
            (args.port.is_some(), "--port"),
            (args.local_port.is_some(), "--local-port"),
            (args.stdio, "--stdio"),
        ] {
            if given {
                eprintln!("sandbox-forward: warning: {flag} is ignored with --ssh");
            }
        }
        // Pipes from ssh are driven by the reactor directly (no blocking-pool hop per packet).
        let run = ssh_proxy::run(&api, pin.as_ref(), stdio::stdin(), stdio::stdout());
        let outcome = until_hangup_settles(run).await?;
        tracing::info!(?outcome, "ssh tunnel closed");
        // ssh has closed our pipes; a blocked stdin read must not keep the process alive.
        std::process::exit(0);
    }
    let port = args.port.context("--port is required unless --ssh is given")?;
    if args.stdio {
        forward::stdio(&api, port, stdio::stdin(), stdio::stdout()).await?;
        std::process::exit(0);
    }
    let local = args.local_port.unwrap_or(port);
    forward::check_target(&api, local, port)?;
    api.preflight_port_forward(port).await?;
    let listener = forward::bind_local(local).await?;
    let bound = listener.local_addr()?.port();
    forward::check_target(&api, bound, port)?;
    eprintln!(
        "Forwarding 127.0.0.1:{bound} -> port {port} in the sandbox at {} (Ctrl-C to stop)",
        api.endpoint().server
    );
    let stats = Arc::new(ForwardStats::default());
    let stop = forward::CancellationToken::new();
    let serving = forward::serve(listener, api, port, stats, stop.clone());
    tokio::pin!(serving);
    tokio::select! {
        _ = &mut serving => {}
        _ = tokio::signal::ctrl_c() => {
            // Each open tunnel tells the pod it is over (else v2 holds it for a resume).
            stop.cancel();
            serving.await;
            eprintln!("Stopped.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the ProxyCommand to its end. ssh sends SIGHUP to its ProxyCommand as it exits, right
/// after closing our stdin; dying on the spot would reset the WebSocket mid close handshake, so
/// a hangup only gives the tunnel a moment to finish its clean close.
async fn until_hangup_settles<T>(run: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(run);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            tokio::select! {
                r = &mut run => return r,
                _ = hangup.recv() => {}
            }
            if let Ok(r) = tokio::time::timeout(std::time::Duration::from_secs(2), &mut run).await {
                return r;
            }
            std::process::exit(0);
        }
    }
    run.await
}

/// `ports NAME`: the table (or `--json`) on stdout; how to forward one and where the list came
/// from on stderr, so stdout stays the list alone.
async fn ports(name: &str, json: bool) -> anyhow::Result<ExitCode> {
    use sandbox_core::ports::{detect, PortsSource};
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let api = install.client(&name).await?;
    let found = detect(&api, &environment::ssh_binary(), &install.paths.ssh_config, &name).await?;
    if found.source == PortsSource::Ssh {
        eprintln!(
            "note: {} has no /api/listening-ports (the original server): read /proc/net/tcp over `ssh {name}`, which names no processes",
            api.endpoint().server
        );
    }
    if json {
        let body = sandbox_core::ports::to_json(&found.ports);
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(first) = found.ports.first() else {
        println!("No TCP port from 1024 up listens on loopback or all addresses in {name}.");
        return Ok(ExitCode::SUCCESS);
    };
    println!("{:<7} PROCESS", "PORT");
    for p in &found.ports {
        // The pod's text: a process names itself.
        let process = p.process.as_deref().map(printable).unwrap_or_else(|| "-".into());
        println!("{:<7} {process}", p.port);
    }
    // On a sandbox on this machine (the demo) the same local port is the pod's own listener.
    let on_this_machine = sandbox_core::net::is_loopback(&api.endpoint().server.endpoint("/"));
    let local = if on_this_machine { " --local-port 0" } else { "" };
    eprintln!(
        "Forward one: sandbox-forward proxy --sandbox {name} --port {0}{local}; keep it: sandbox-forward forward add {name} --port {0}{local}",
        first.port
    );
    Ok(ExitCode::SUCCESS)
}

/// The app's words for a sandbox with settings but no key or Host block yet.
fn not_connected(name: &SandboxName) -> String {
    format!(
        "not connected — run `sandbox-forward ssh-setup {name}` (or `open {name}`), or Connect in the app"
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

async fn status(only: Option<&str>, offline: bool) -> anyhow::Result<ExitCode> {
    let install = environment::installation()?;
    let only = only.map(SandboxName::new).transpose()?;
    let sandboxes: Vec<_> =
        install.list()?.into_iter().filter(|s| only.as_ref().is_none_or(|n| *n == s.name)).collect();
    if let Some(name) = &only {
        if sandboxes.is_empty() {
            anyhow::bail!("no sandbox named {name} is set up here; run `sandbox-forward ssh-setup {name} --server URL …`");
        }
    }
    if sandboxes.is_empty() {
        println!(
            "No sandboxes set up. Start with: sandbox-forward ssh-setup NAME --server URL --bearer-file FILE"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut healthy = true;
    for s in sandboxes {
        println!("{}", s.name);
        match &s.settings_error {
            Some(e) => println!("  settings:      {e}"),
            None => {
                println!("  server:        {}", s.server.as_deref().unwrap_or("(no settings: run ssh-setup)"))
            }
        }
        println!("  key present:   {}", yes_no(s.key_present));
        println!("  Host block:    {}", yes_no(s.block_present));
        println!("  host key:      {}", if s.host_key_pinned { "pinned" } else { "not pinned" });
        if s.server.is_some() && !(s.key_present && s.block_present) {
            println!("  state:         {}", not_connected(&s.name));
        }
        if offline || s.server.is_none() {
            healthy &= s.key_present && s.block_present;
            continue;
        }
        if let Ok(profile) = install.profiles().load(&s.name) {
            if let Some(session) = install.session(&s.name, &profile).await {
                let stored = session.stored();
                let state = match &stored {
                    Ok(Some(t)) if t.usable() => format!("signed in as {}", printable(&t.subject)),
                    Ok(Some(t)) if t.refresh_token.is_some() => {
                        format!("signed in as {} (token renews on use)", printable(&t.subject))
                    }
                    Ok(_) => format!("not signed in — run `sandbox-forward login {}`", s.name),
                    Err(e) => e.to_string(),
                };
                println!("  sign-in:       {state}");
                if matches!(stored, Ok(Some(_))) {
                    println!("  tokens in:     {}", session.store_description());
                }
            }
        }
        let reachable = match install.client(&s.name).await {
            Ok(api) => api.ssh_port().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &reachable {
            Ok(info) => println!("  server reachable: yes (SSH port {})", info.port),
            Err(e) => println!("  server reachable: no — {e}"),
        }
        let accepted = if reachable.is_ok() && s.key_present && s.block_present {
            probe_ssh(&environment::ssh_binary(), &install.paths.ssh_config, &s.name).await
        } else {
            Err("not checked".into())
        };
        match &accepted {
            Ok(()) => println!("  key accepted:  yes (`ssh {} true` works)", s.name),
            Err(e) if reachable.is_ok() && s.key_present && s.block_present => {
                println!("  key accepted:  no — {e}; {}", access_fix(&s.name))
            }
            Err(e) => println!("  key accepted:  no — {e}"),
        }
        healthy &= reachable.is_ok() && accepted.is_ok();
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What a link fills in, then the one command that sets it up: as in the app, a link only fills
/// the form; the user reads it and acts.
fn add_link(link: &str) -> anyhow::Result<ExitCode> {
    let link = sandbox_core::add_link::parse(link)?;
    let quote =
        |w: &str| if cfg!(windows) { sandbox_core::ide::msvc_arg(w) } else { sandbox_core::ide::sh_word(w) };
    let mut args: Vec<String> =
        vec!["ssh-setup".into(), link.name.to_string(), "--server".into(), link.server.to_string()];
    println!("This link sets up a sandbox; nothing has been done yet.");
    println!("  name:     {}", link.name);
    println!("  server:   {}", link.server);
    match &link.oidc {
        Some((issuer, client_id)) => {
            println!("  sign-in:  OpenID, issuer {issuer}, client id {client_id}");
            args.extend(["--oidc-issuer".into(), issuer.clone(), "--client-id".into(), client_id.clone()]);
            for scope in &link.scopes {
                args.extend(["--scope".into(), scope.clone()]);
            }
            if let Some(audience) = &link.audience {
                println!("  audience: {audience}");
                args.extend(["--audience".into(), audience.clone()]);
            }
        }
        None => {
            println!("  sign-in:  none in the link (add --bearer-file or a cookie if the server needs one)")
        }
    }
    if let Some(folder) = &link.folder {
        println!("  folder:   {folder}");
        args.extend(["--folder".into(), folder.clone()]);
    }
    println!("To set it up, run:");
    let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
    println!("  sandbox-forward {}", words.join(" "));
    Ok(ExitCode::SUCCESS)
}

fn list() -> anyhow::Result<ExitCode> {
    let install = environment::installation()?;
    for s in install.list()? {
        println!("{}\t{}", s.name, s.server.as_deref().unwrap_or("-"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn login(name: &str) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let profile = install.profiles().load(&name)?;
    let session = install.session(&name, &profile).await.with_context(|| {
        format!("{name} does not use browser sign-in; run `sandbox-forward ssh-setup {name} --server URL --oidc-issuer ISSUER --client-id ID`")
    })?;
    let tokens = session.login(&environment::open_browser, LOGIN_TIMEOUT).await?;
    println!("Signed in to {name} as {}", tokens.subject);
    Ok(ExitCode::SUCCESS)
}

async fn logout(name: &str) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let profile = install.profiles().load(&name)?;
    let session = install
        .session(&name, &profile)
        .await
        .with_context(|| format!("{name} does not use browser sign-in"))?;
    let done = session.logout().await?;
    match (done.had_tokens, done.revoked) {
        (false, _) => println!("Not signed in to {name}."),
        (true, true) => println!("Signed out of {name}; the refresh token was revoked at the provider."),
        (true, false) => {
            println!("Signed out of {name} (the provider offers no revocation; stored tokens deleted).")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn forget(name: &str) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    if install.forget(&name).await? {
        println!("Removed {name}: key files, settings and Host block");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("nothing is set up for {name}; `sandbox-forward list` shows what is")
    }
}

async fn doctor(check: bool, offline: bool) -> anyhow::Result<ExitCode> {
    let install = environment::installation()?;
    let findings = install.doctor(!check)?;
    let mut unresolved = false;
    for f in &findings {
        let tag = if f.repaired { "repaired" } else { "found" };
        unresolved |= !f.repaired;
        println!("{tag}: {}", f.problem);
    }
    // The network check: a sandbox whose files are all in place may still be refused (the pod
    // restarted, the key was registered elsewhere). A server that cannot be reached is noted,
    // not counted: that is the network's state, not the setup's.
    let mut notes = 0;
    if !offline {
        for s in install.list()? {
            if s.server.is_none() || !s.key_present || !s.block_present {
                continue;
            }
            let reachable = match install.client(&s.name).await {
                Ok(api) => api.ssh_port().await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = reachable {
                println!("note: sandbox {}: not checked, its server cannot be reached ({e})", s.name);
                notes += 1;
                continue;
            }
            if let Err(detail) =
                probe_ssh(&environment::ssh_binary(), &install.paths.ssh_config, &s.name).await
            {
                println!("found: {}", Problem::KeyNotAccepted { name: s.name.clone(), detail });
                unresolved = true;
            }
        }
    }
    if findings.is_empty() && !unresolved && notes == 0 {
        println!("Everything is in order.");
    }
    Ok(if unresolved { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn forward_config(cmd: ForwardCommand) -> anyhow::Result<ExitCode> {
    let install = environment::installation()?;
    match cmd {
        ForwardCommand::Add { name, port, local_port, label, auto_start } => {
            let name = SandboxName::new(&name)?;
            let spec =
                PortForward { remote_port: port, local_port: local_port.unwrap_or(port), label, auto_start };
            install.save_forward(&name, spec)?;
            println!("Saved: {name} 127.0.0.1:{} -> :{port}", local_port.unwrap_or(port));
        }
        ForwardCommand::Rm { name, port } => {
            let name = SandboxName::new(&name)?;
            if !install.remove_forward(&name, port)? {
                anyhow::bail!("{name} has no saved forward to port {port}; `sandbox-forward forward list {name}` shows them");
            }
            println!("Removed {name} :{port}");
        }
        ForwardCommand::List { name } => {
            let only = name.as_deref().map(SandboxName::new).transpose()?;
            for sandbox in install.profiles().names() {
                if only.as_ref().is_some_and(|n| *n != sandbox) {
                    continue;
                }
                for f in install.profiles().load(&sandbox)?.forwards {
                    let auto = if f.auto_start { "\tauto-start" } else { "" };
                    println!(
                        "{sandbox}\t127.0.0.1:{} -> :{}\t{}{auto}",
                        f.local_port, f.remote_port, f.label
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn up(name: &str, all: bool) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let profile = install.profiles().load(&name)?;
    let specs: Vec<_> = profile.forwards.iter().filter(|f| all || f.auto_start).cloned().collect();
    if specs.is_empty() {
        anyhow::bail!(
            "{name} has no {}forwards; add one with `sandbox-forward forward add {name} --port N --auto-start`",
            if all { "" } else { "auto-start " }
        );
    }
    let api = install.client(&name).await?;
    let forwards = Forwards::new();
    for spec in &specs {
        let local = forwards.start(&name, api.clone(), spec).await?;
        let label = if spec.label.is_empty() { String::new() } else { format!(" ({})", spec.label) };
        eprintln!("Forwarding 127.0.0.1:{local} -> port {}{label}", spec.remote_port);
    }
    eprintln!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    forwards.stop_all(None).await;
    Ok(ExitCode::SUCCESS)
}

/// The editor chosen in the app's preferences (`app.toml`, read only), else VS Code.
fn default_ide(install: &sandbox_core::setup::Installation) -> Ide {
    use sandbox_desk::protocol::IdeChoice;
    let file = sandbox_desk::settings::SettingsFile::new(install.paths.app_settings());
    match file.load() {
        Ok(settings) => match settings.preferences.default_ide {
            IdeChoice::VsCode => Ide::VsCode,
            IdeChoice::Cursor => Ide::Cursor,
            IdeChoice::Gateway => Ide::Gateway,
            IdeChoice::Zed => Ide::Zed,
            IdeChoice::Terminal => Ide::Terminal,
        },
        Err(e) => {
            eprintln!("sandbox-forward: warning: {e}; opening VS Code (or pass --ide)");
            Ide::VsCode
        }
    }
}

async fn open_in_ide(
    name: &str,
    ide: Option<Ide>,
    folder: Option<String>,
    print: bool,
) -> anyhow::Result<ExitCode> {
    let name = SandboxName::new(name)?;
    let install = environment::installation()?;
    let profile = install.profiles().load(&name)?;
    let ide = ide.unwrap_or_else(|| default_ide(&install));
    let folder = folder.unwrap_or_else(|| profile.remote_folder().to_owned());
    let os = Os::current();
    let finder = environment::executable_finder()?;
    let plan = match ide::launch_plan(ide, os, &name, &folder, &finder) {
        // --print answers "what would run": where the program is not installed here, the line
        // names it as it would be found on PATH.
        Err(e @ (ide::IdeError::NotInstalled { .. } | ide::IdeError::NoSsh(_))) if print => {
            eprintln!("note: {e}; the line below assumes it is on PATH");
            let on_path = |program: &str| Some(finder(program).unwrap_or_else(|| program.into()));
            ide::launch_plan(ide, os, &name, &folder, &on_path)?
        }
        plan => plan?,
    };
    if print {
        println!("{}", plan.command_line(os));
        return Ok(ExitCode::SUCCESS);
    }
    // What the app's Connect does: the key registered (again, after a pod restart) and the
    // Host block written, so the IDE's ssh lands.
    install.connect(&name, &environment::key_comment()).await?;
    ide::launch(ide, &plan, &environment::open_url)?;
    println!("Opening {folder} in {name} with {ide}");
    Ok(ExitCode::SUCCESS)
}
