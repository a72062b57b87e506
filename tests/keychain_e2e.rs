//! The OS keychain path of the sign-in, against a real Secret Service: gnome-keyring-daemon,
//! unlocked, on a private D-Bus session bus (`support::keychain`). The rest is the real
//! topology of `oidc_e2e.rs`: node `oidc-provider`, Apache with mod_auth_openidc in front of
//! `sandbox-agent`, our CLI signing in through a stand-in browser, and the real `ssh`.
//!
//! Unix only: the pod side and the Secret Service are Unix programs.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sandbox_tests::keychain::SecretService;
use sandbox_tests::oidc::CLIENT_ID;
use sandbox_tests::sign_in::SignIn;
use sandbox_tests::{ok, stderr, stdout, wait, Guard};

const T: Duration = Duration::from_secs(90);

/// The keychain service name our entries carry (`token_store::SERVICE`).
const SERVICE: &str = "sandbox-forward";

/// A provider, a gated agent and a home whose CLI talks to `bus`.
struct World {
    sign_in: SignIn,
    bus: SecretService,
}

impl std::ops::Deref for World {
    type Target = SignIn;
    fn deref(&self) -> &SignIn {
        &self.sign_in
    }
}

impl World {
    fn new(bus: SecretService, access_token_ttl: u64) -> World {
        World { sign_in: SignIn::gated(access_token_ttl), bus }
    }

    /// The keychain is preferred (no SANDBOX_FORWARD_TOKEN_STORE) and reached on our bus only.
    fn env(&self, mut c: Command) -> Command {
        c.env_remove("SANDBOX_FORWARD_TOKEN_STORE").env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address);
        self.client_env(&mut c);
        c
    }

    fn cli(&self, args: &[&str]) -> Command {
        self.env(self.home.cli(args))
    }

    fn ssh(&self, args: &[&str]) -> Command {
        self.env(self.home.ssh("ssh", args))
    }

    fn run(&self, c: Command) -> Output {
        sandbox_tests::run(c, T)
    }

    /// `ssh-setup NAME` with browser sign-in as `login`.
    fn setup(&self, name: &str, login: &str) -> Output {
        let _ = std::fs::remove_file(&self.browser.url_file);
        let mut c = self.cli(&self.ssh_setup_args(name));
        let child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let guard = Guard { child, name: "ssh-setup" };
        let url = self.browser_url(T);
        let (status, body) = self.provider.complete_login(&url, login);
        assert_eq!(status, 200, "{body}");
        let out = guard.finish(T);
        // From here on the file appears only if something asks for a browser login again.
        std::fs::remove_file(&self.browser.url_file).unwrap();
        out
    }
}

/// Files in `dir` other than the refresh locks.
fn token_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_none_or(|e| e != "lock"));
    files
}

#[test]
fn sign_in_lives_in_the_keychain_twenty_proxies_refresh_once_and_logout_deletes_it() {
    let w = World::new(SecretService::start(), 4);
    let o = w.setup("kc-box", "alice");
    let out = ok(&o);
    assert!(out.contains("Signed in as alice"), "{out}");
    assert_eq!(ok(&w.run(w.ssh(&["kc-box", "echo ok"]))), "ok\n");

    // Stored in the Secret Service, keyed by sandbox, issuer and client; no token file.
    let accounts = w.bus.accounts(SERVICE);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert!(accounts[0].starts_with("kc-box (") && accounts[0].contains(CLIENT_ID), "{accounts:?}");
    assert!(token_files(&w.tokens_dir()).is_empty(), "{:?}", token_files(&w.tokens_dir()));
    let st = ok(&w.run(w.cli(&["status", "kc-box"])));
    assert!(st.contains("signed in as alice") && st.contains("tokens in:     the OS keychain"), "{st}");

    // The access token expires; twenty ssh at once: all succeed, exactly one refresh.
    std::thread::sleep(Duration::from_secs(5));
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = w.ssh(&["kc-box", &format!("echo n{i}")]);
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| wait(c, T)).collect();
    let mut refreshes = 0;
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(ok(o), format!("n{i}\n"), "{}", stderr(o));
        refreshes += stderr(o).matches("refreshed the sign-in").count();
    }
    assert_eq!(refreshes, 1, "expected exactly one refresh across 20 ProxyCommands");
    assert!(!w.browser.url_file.exists(), "a ProxyCommand asked for a new browser login");
    assert!(token_files(&w.tokens_dir()).is_empty(), "a refresh fell back to a file");

    // logout deletes the entry.
    let lo = ok(&w.run(w.cli(&["logout", "kc-box"])));
    assert!(lo.contains("revoked"), "{lo}");
    assert!(w.bus.accounts(SERVICE).is_empty(), "{:?}", w.bus.accounts(SERVICE));
    // (status exits 1 now: the server refuses a sandbox nobody is signed in to.)
    let st = stdout(&w.run(w.cli(&["status", "kc-box"])));
    assert!(st.contains("not signed in") && !st.contains("tokens in:"), "{st}");
}

#[test]
fn with_no_secret_service_on_the_bus_tokens_go_to_a_private_file() {
    let w = World::new(SecretService::bus_only(), 60);
    let o = w.setup("file-box", "bob");
    assert!(ok(&o).contains("Signed in as bob"), "{}", stdout(&o));
    assert!(stderr(&o).contains("no OS keychain reachable"), "{}", stderr(&o));
    let files = token_files(&w.tokens_dir());
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    let st = ok(&w.run(w.cli(&["status", "file-box"])));
    assert!(st.contains("tokens in:     the file ") && st.contains("(mode 0600)"), "{st}");
    assert_eq!(ok(&w.run(w.ssh(&["file-box", "echo ok"]))), "ok\n");
}
