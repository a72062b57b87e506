//! The client keeps secrets with their server, through the real CLI binary: no credential in
//! cleartext to a host off loopback unless `--allow-insecure-http` says so.
//!
//! The "remote" host is `0.0.0.0`: not loopback by our rule (so it stands for a host on the
//! network), yet on Linux a connection to it stays on this machine, so nothing leaves it even
//! when the client does try.
#![cfg(unix)]

use std::time::Duration;

use sandbox_tests::{free_port, run, stderr, Home};

const T: Duration = Duration::from_secs(30);

#[test]
fn cleartext_off_loopback_needs_allow_insecure_http() {
    let home = Home::new();
    let token = home.path().join("token");
    std::fs::write(&token, "tok-secret\n").unwrap();
    let server = format!("http://0.0.0.0:{}", free_port());
    let token = token.to_str().unwrap();

    // ssh-setup: refused before any request, nothing saved.
    let o = run(home.cli(&["ssh-setup", "lan", "--server", &server, "--bearer-file", token]), T);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("cleartext") && err.contains("--allow-insecure-http"), "{err}");
    assert!(!home.path().join(".config/sandbox/sandboxes/lan.toml").exists());
    // So is an issuer off loopback, even with an https server.
    let o = run(
        home.cli(&[
            "ssh-setup",
            "lan",
            "--server",
            "https://127.0.0.1:1",
            "--oidc-issuer",
            "http://0.0.0.0:1/realm",
            "--client-id",
            "c",
        ]),
        T,
    );
    assert!(
        stderr(&o).contains("the OpenID issuer") && stderr(&o).contains("--allow-insecure-http"),
        "{}",
        stderr(&o)
    );
    // proxy: the same.
    let o = run(
        home.cli(&["proxy", "--server", &server, "--port", "8080", "--stdio", "--bearer-file", token]),
        T,
    );
    assert!(stderr(&o).contains("--allow-insecure-http"), "{}", stderr(&o));

    // Allowed: a warning, then the attempt (refused here: nothing listens).
    let o = run(
        home.cli(&["ssh-setup", "lan", "--server", &server, "--bearer-file", token, "--allow-insecure-http"]),
        T,
    );
    let err = stderr(&o);
    assert!(err.contains("Warning: credentials for 0.0.0.0 travel in cleartext"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(!err.contains("tok-secret"), "{err}");
}
