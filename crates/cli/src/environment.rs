//! The only place that reads the process environment: home directory, binary path, ssh, PATH.

use std::path::PathBuf;

use anyhow::Context;
use sandbox_core::ide::{find_executable, Os};
use sandbox_core::paths::Paths;
use sandbox_core::setup::{stable_binary_path, Installation};
use sandbox_core::ssh_config::Platform;

/// The installation as seen from this process.
pub fn installation() -> anyhow::Result<Installation> {
    #[allow(deprecated)] // std::env::home_dir is correct on every platform since Rust 1.85
    let home = std::env::home_dir().context("cannot find your home directory; set HOME")?;
    let exe = std::env::current_exe().context("cannot find the sandbox-forward binary's own path")?;
    let appimage = std::env::var_os("APPIMAGE").map(PathBuf::from);
    Ok(Installation {
        paths: Paths::from_home(&home),
        binary: stable_binary_path(&exe, appimage.as_deref()),
        platform: Platform::current(),
        // `file` keeps tokens in 0600 files even where a keychain exists (headless boxes, CI).
        prefer_keychain: std::env::var("SANDBOX_FORWARD_TOKEN_STORE").map_or(true, |v| v != "file"),
    })
}

/// The OpenSSH client to probe with.
pub fn ssh_binary() -> PathBuf {
    std::env::var_os("SANDBOX_FORWARD_SSH").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("ssh"))
}

/// `user@host` for key comments, so the pod's key list says whose laptop a key is on.
pub fn key_comment() -> String {
    sandbox_core::keys::default_comment(
        Os::current(),
        |name| std::env::var(name).ok(),
        || std::fs::read_to_string("/etc/hostname").ok(),
    )
}

/// Opens a URL for the user: `$BROWSER` where set (how a headless shell or a test substitutes
/// its own), else the platform's opener. The URL is always printed too.
pub fn open_browser(url: &str) {
    eprintln!("Opening your browser to sign in. If it does not open, visit:\n  {url}");
    let result = match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
        Some(browser) => sandbox_core::browser::open_with(&browser, url),
        None => open::that_detached(url),
    };
    if let Err(e) = result {
        eprintln!("(could not open a browser: {e})");
    }
}

/// Where an executable is, for "Open in IDE": `$PATH`, then the OS's usual install locations
/// under the home directory and elsewhere (see `sandbox_core::ide::find_executable`).
pub fn executable_finder() -> anyhow::Result<impl Fn(&str) -> Option<PathBuf>> {
    #[allow(deprecated)] // std::env::home_dir is correct on every platform since Rust 1.85
    let home = std::env::home_dir().context("cannot find your home directory; set HOME")?;
    let path = std::env::var_os("PATH");
    Ok(move |name: &str| find_executable(name, Os::current(), path.as_deref(), &home))
}

/// Opens an IDE's link (vscode://, jetbrains-gateway://…) with the OS's handler for its scheme.
/// A launcher that fails at once (no handler registered) is reported; one still running after a
/// moment is left to finish on its own.
pub fn open_url(url: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        sandbox_core::browser::open_url(url)
    }
    #[cfg(windows)]
    {
        open::that_detached(url)
    }
}

/// The sandboxes set up here, for shell completion (nothing when the home is unknown).
pub fn sandbox_names() -> Vec<clap_complete::engine::CompletionCandidate> {
    let Ok(install) = installation() else { return Vec::new() };
    install
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let candidate = clap_complete::engine::CompletionCandidate::new(s.name.as_str());
            match s.server {
                Some(server) => candidate.help(Some(server.into())),
                None => candidate,
            }
        })
        .collect()
}

/// `SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1`: tunnels offer protocol v1 only (benchmarks, tests, a
/// gateway that mangles subprotocols).
pub fn tunnel_protocol_v1() -> bool {
    std::env::var(sandbox_core::tunnel::PROTOCOL_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("v1"))
}

/// The ProxyCommand's log file, opened for appending (0600), or `None` when it cannot be: a
/// log is never a reason for the tunnel to fail.
pub fn proxy_log() -> Option<std::fs::File> {
    let paths = installation().ok()?.paths;
    sandbox_core::fsutil::open_log(&paths.proxy_log()).ok()
}

/// Whether log lines on stderr may carry ANSI colour: only on a terminal, and not when
/// `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
pub fn log_colour() -> bool {
    use std::io::IsTerminal;
    colour_wanted(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))
}

fn colour_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".into())));
        assert!(!colour_wanted(true, Some("1".into())));
        assert!(!colour_wanted(false, None));
    }
}
