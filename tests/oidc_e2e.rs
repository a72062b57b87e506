//! Sign-in end to end on the real topology: node `oidc-provider` issues tokens, Apache with
//! mod_auth_openidc guards `sandbox-agent`, our CLI signs in through a stand-in browser
//! (`$BROWSER` + the provider's devInteractions forms), and the real `ssh` runs our
//! ProxyCommand, which takes (and refreshes) its token from the token store.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and Unix peers.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sandbox_tests::sign_in::SignIn;
use sandbox_tests::{ok, stderr, stdout, wait, Guard};

const T: Duration = Duration::from_secs(90);

struct World {
    sign_in: SignIn,
    /// Everything the client side printed, for the no-token-leaks check.
    transcript: std::cell::RefCell<String>,
}

impl std::ops::Deref for World {
    type Target = SignIn;
    fn deref(&self) -> &SignIn {
        &self.sign_in
    }
}

impl World {
    fn new(access_token_ttl: u64) -> World {
        World { sign_in: SignIn::gated(access_token_ttl), transcript: Default::default() }
    }

    /// No gateway: the agent validates the provider's JWTs itself; dave owns the sandbox.
    fn standalone(access_token_ttl: u64) -> World {
        World { sign_in: SignIn::standalone(access_token_ttl, "dave"), transcript: Default::default() }
    }

    fn env(&self, mut c: Command) -> Command {
        c.env("SANDBOX_FORWARD_TOKEN_STORE", "file");
        self.client_env(&mut c);
        c
    }

    fn cli(&self, args: &[&str]) -> Command {
        self.env(self.home.cli(args))
    }

    fn ssh(&self, args: &[&str]) -> Command {
        self.env(self.home.ssh("ssh", args))
    }

    fn record(&self, o: &Output) {
        let mut t = self.transcript.borrow_mut();
        t.push_str(&stdout(o));
        t.push_str(&stderr(o));
    }

    fn spawn(&self, mut c: Command) -> Child {
        let _ = std::fs::remove_file(&self.browser.url_file);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// `ssh-setup` with browser sign-in, the user logging in as `login`.
    fn setup(&self, name: &str, login: &str) -> Output {
        let child = self.spawn(self.cli(&self.ssh_setup_args(name)));
        let guard = Guard { child, name: "ssh-setup" };
        let (status, body) = self.provider.complete_login(&self.browser_url(T), login);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("Signed in as {login}")), "{body}");
        let o = guard.finish(T);
        self.record(&o);
        o
    }

    fn run(&self, c: Command) -> Output {
        let o = sandbox_tests::run(c, T);
        self.record(&o);
        o
    }

    /// The stored tokens of `name`: the one file `NAME.<issuer and client hash>.json`.
    fn tokens(&self, name: &str) -> serde_json::Value {
        let files: Vec<_> = std::fs::read_dir(self.tokens_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let file = p.file_name().unwrap().to_string_lossy().into_owned();
                file.starts_with(&format!("{name}.")) && file.ends_with(".json")
            })
            .collect();
        assert_eq!(files.len(), 1, "one token file for {name}: {files:?}");
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out)
        } else {
            out.push(p)
        }
    }
}

#[test]
fn sign_in_then_ssh_refreshes_once_for_twenty_parallel_connections() {
    let w = World::new(4);
    let o = w.setup("oidc-box", "alice");
    let out = ok(&o);
    assert!(out.contains("Signed in as alice"), "{out}");
    assert_eq!(ok(&w.run(w.ssh(&["oidc-box", "echo ok"]))), "ok\n");

    // The block names the sandbox only; the token lives in the store.
    let first = w.tokens("oidc-box");
    let at = first["access_token"].as_str().unwrap().to_owned();
    let block = std::fs::read_to_string(w.home.path().join(".config/sandbox/ssh_config")).unwrap();
    assert!(block.contains("proxy --ssh --sandbox oidc-box") && !block.contains(&at), "{block}");

    // The access token expires; twenty ssh at once: all succeed, exactly one refresh, no login.
    std::thread::sleep(Duration::from_secs(5));
    let children: Vec<_> = (0..20).map(|i| w.spawn(w.ssh(&["oidc-box", &format!("echo n{i}")]))).collect();
    let outs: Vec<_> = children.into_iter().map(|c| wait(c, T)).collect();
    let mut refreshes = 0;
    for (i, o) in outs.iter().enumerate() {
        w.record(o);
        assert_eq!(ok(o), format!("n{i}\n"));
        refreshes += stderr(o).matches("refreshed the sign-in").count();
    }
    assert_eq!(refreshes, 1, "expected exactly one refresh across 20 ProxyCommands");
    assert!(!w.browser.url_file.exists(), "a ProxyCommand asked for a new browser login");
    let second = w.tokens("oidc-box");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"], "the provider rotates refresh tokens");

    // status knows the sign-in; logout revokes and deletes.
    let st = ok(&w.run(w.cli(&["status", "oidc-box"])));
    assert!(st.contains("signed in as alice"), "{st}");
    let lo = ok(&w.run(w.cli(&["logout", "oidc-box"])));
    assert!(lo.contains("revoked"), "{lo}\n{}", w.transcript.borrow());
    let o = w.run(w.ssh(&["oidc-box", "echo after-logout"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("run `sandbox-forward login oidc-box`"), "{}", stderr(&o));

    // Nowhere the client writes or prints is there a token.
    let tokens = [&first, &second]
        .iter()
        .flat_map(|t| {
            ["access_token", "refresh_token", "id_token"].map(|k| t[k].as_str().unwrap_or("").to_owned())
        })
        .filter(|t| t.len() > 8)
        .collect::<Vec<_>>();
    let mut files = Vec::new();
    all_files(w.home.path(), &mut files);
    files.retain(|p| !p.starts_with(w.home.path().join(".config/sandbox/tokens")));
    let transcript = w.transcript.borrow();
    for t in &tokens {
        assert!(!transcript.contains(t.as_str()), "a token was printed");
        for f in &files {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            assert!(!text.contains(t.as_str()), "a token is in {}", f.display());
        }
    }
}

#[test]
fn a_revoked_grant_asks_for_login_again_and_login_fixes_it() {
    let w = World::new(3);
    ok(&w.setup("rv", "bob"));
    assert!(w.provider.revoke_all("bob") >= 1);
    std::thread::sleep(Duration::from_secs(4));
    let o = w.run(w.ssh(&["rv", "echo no"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("not signed in to rv") && err.contains("run `sandbox-forward login rv`"), "{err}");

    let child = w.spawn(w.cli(&["login", "rv"]));
    let guard = Guard { child, name: "login" };
    let (status, _) = w.provider.complete_login(&w.browser_url(T), "bob");
    assert_eq!(status, 200);
    assert!(ok(&guard.finish(T)).contains("Signed in to rv as bob"));
    assert_eq!(ok(&w.run(w.ssh(&["rv", "echo yes"]))), "yes\n");
}

/// `url` with query parameter `key` replaced by `value`.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

#[test]
fn tampered_state_iss_and_nonce_are_rejected() {
    let w = World::new(60);
    ok(&w.setup("tp", "carol"));

    // Callbacks the provider did not send for this sign-in: a foreign state (CSRF), another
    // issuer (RFC 9207 mix-up). Each is refused, and the browser is told.
    for (key, value, complaint) in
        [("state", "forged", "state does not match"), ("iss", "https://evil.example", "mix-up")]
    {
        let child = w.spawn(w.cli(&["login", "tp"]));
        let guard = Guard { child, name: "login" };
        let callback = w.provider.authorize_until_callback(&w.browser_url(T), "carol");
        let resp = sandbox_tests::oidc::http().get(&with_param(&callback, key, value)).call().unwrap();
        assert_eq!(resp.status(), 400, "{key}");
        let o = guard.finish(T);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(complaint), "{key}: {}", stderr(&o));
    }

    // An authorization request whose nonce was swapped on the way: the id_token carries the
    // wrong nonce and is refused.
    let child = w.spawn(w.cli(&["login", "tp"]));
    let guard = Guard { child, name: "login" };
    let (status, body) =
        w.provider.complete_login(&with_param(&w.browser_url(T), "nonce", "swapped"), "carol");
    assert_eq!(status, 400, "{body}");
    let o = guard.finish(T);
    assert!(!o.status.success());
    assert!(stderr(&o).to_lowercase().contains("nonce"), "{}", stderr(&o));
}

#[test]
fn the_agent_standing_alone_validates_the_providers_tokens() {
    let w = World::standalone(60);
    ok(&w.setup("alone", "dave"));
    assert_eq!(ok(&w.run(w.ssh(&["alone", "echo alone-ok"]))), "alone-ok\n");
    // A forged identity header without a token gets nowhere.
    let o = w.run(w.cli(&["proxy", "--server", &w.server, "--ssh", "--header", "X-Forwarded-Sub=dave"]));
    assert!(stderr(&o).contains("401 Unauthorized"), "{}", stderr(&o));
    // A valid token for the audience is not enough: erin is not the owner.
    let o = w.setup("erin", "erin");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("403 Forbidden"), "{}", stderr(&o));
}
