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

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE) is trusted when given
/// with `--ca-file`; without it, and for an https URL aimed at a plain-HTTP port, the message is
/// a sentence with its fix, never a raw rustls value.
#[test]
fn a_self_signed_ca_certificate_given_with_ca_file_is_trusted() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let text = String::from_utf8(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in", "cert.pem"])
            .current_dir(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains("CA:TRUE"), "the test needs openssl's default CA:TRUE: {text}");
    // A TLS server answering every request with a status page (not a sandbox API).
    let port = free_port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
            "cert.pem",
            "-key",
            "key.pem",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = sandbox_tests::Guard { child, name: "openssl s_server" };
    assert!(sandbox_tests::eventually(T, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));

    let home = Home::new();
    let url = format!("https://127.0.0.1:{port}");
    let cert = dir.path().join("cert.pem").display().to_string();
    let try_proxy = |extra: &[&str]| {
        let mut args = vec!["proxy", "--ssh", "--server", &url];
        args.extend_from_slice(extra);
        stderr(&run(home.cli(&args), T))
    };
    let err = try_proxy(&[]);
    assert!(err.contains("TLS handshake") && err.contains("--ca-file"), "{err}");
    // Trusted: the handshake passes, and the page is not a sandbox's answer.
    let err = try_proxy(&["--ca-file", &cert]);
    assert!(!err.contains("TLS"), "{err}");
    assert!(err.contains("did not answer like a sandbox server"), "{err}");

    // https:// aimed at a plain-HTTP port.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in plain.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let o = run(home.cli(&["proxy", "--ssh", "--server", &format!("https://127.0.0.1:{plain_port}")]), T);
    let err = stderr(&o);
    assert!(err.contains("does not speak TLS") && !err.contains("--ca-file"), "{err}");
}
