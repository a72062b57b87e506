//! End to end, as a user would: a real `sandbox-agent` behind a real routing service (nginx),
//! `sandbox-forward ssh-setup`, then the real OpenSSH `ssh`, `scp` and `sftp` through the
//! written `~/.ssh/config` and our ProxyCommand.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and Unix peers.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use sandbox_tests::gateway::Gateway;
use sandbox_tests::{
    eventually, free_port, ok, python_listener, run, stderr, stdout, wait, Agent, Guard, Home,
};

const TOKEN: &str = "good-token-7f3a";
const T: Duration = Duration::from_secs(60);

/// Agent behind nginx, a home, and a token file: the seed guide's setup.
struct Setup {
    home: Home,
    agent: Agent,
    gateway: Gateway,
    _workspace: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let workspace = tempfile::tempdir().unwrap();
        let agent = Agent::start(workspace.path(), 0, &[]);
        let gateway = Gateway::start(agent.port, TOKEN, "alice");
        let home = Home::new();
        std::fs::create_dir_all(home.path().join(".config/sandbox")).unwrap();
        std::fs::write(home.path().join(".config/sandbox/token"), format!("{TOKEN}\n")).unwrap();
        Setup { home, agent, gateway, _workspace: workspace }
    }

    fn token_file(&self) -> String {
        self.home.path().join(".config/sandbox/token").display().to_string()
    }

    fn ssh_setup(&self, name: &str) -> std::process::Output {
        let url = self.gateway.url();
        let tf = self.token_file();
        run(self.home.cli(&["ssh-setup", name, "--server", &url, "--bearer-file", &tf]), T)
    }

    fn ssh(&self, args: &[&str]) -> std::process::Output {
        run(self.home.ssh("ssh", args), T)
    }
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

fn random_file(path: &std::path::Path, mib: usize) {
    let out = Command::new("head").args(["-c", &format!("{}", mib << 20), "/dev/urandom"]).output().unwrap();
    std::fs::write(path, out.stdout).unwrap();
}

#[test]
fn ssh_setup_writes_a_working_host_and_ssh_runs_commands() {
    let s = Setup::new();
    let out = ok(&s.ssh_setup("my-sandbox"));
    assert!(out.contains("Pinned the sandbox's SSH host key"), "{out}");
    assert!(out.contains("Checked with `ssh -G my-sandbox`"), "{out}");

    // Files: private key 0600 in a 0700 dir; the user's config includes ours.
    use std::os::unix::fs::PermissionsExt;
    let keys = s.home.path().join(".config/sandbox/keys");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys.join("my-sandbox")), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let user_config = std::fs::read_to_string(s.home.ssh_config()).unwrap();
    assert!(user_config.starts_with("# BEGIN sandbox-forward"), "{user_config}");
    assert!(!user_config.contains(TOKEN));

    // `ssh -G` resolves our block.
    let g = ok(&run(s.home.ssh("ssh", &["-G", "my-sandbox"]), T));
    assert!(g.contains("user sandbox"), "{g}");
    assert!(g.contains("hostkeyalias my-sandbox"), "{g}");
    assert!(g.contains("stricthostkeychecking true"), "{g}");
    assert!(g.contains("proxy --ssh --sandbox my-sandbox"), "{g}");

    let o = s.ssh(&["my-sandbox", "echo ok"]);
    assert_eq!(ok(&o), "ok\n");
    let o = s.ssh(&["my-sandbox", "echo to-stderr >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("to-stderr"));
    let o = s.ssh(&["my-sandbox", "pwd; echo $HOME"]);
    let ws = std::fs::canonicalize(&s.agent.workspace).unwrap();
    assert_eq!(ok(&o), format!("{0}\n{0}\n", ws.display()));

    // Re-running rotates the key and ssh still works.
    let before = std::fs::read(keys.join("my-sandbox.pub")).unwrap();
    assert!(ok(&s.ssh_setup("my-sandbox")).contains("Rotated"));
    assert_ne!(std::fs::read(keys.join("my-sandbox.pub")).unwrap(), before);
    assert_eq!(ok(&s.ssh(&["my-sandbox", "echo again"])), "again\n");

    // status sees everything working; forget removes it all.
    let st = ok(&run(s.home.cli(&["status", "my-sandbox"]), T));
    assert!(st.contains("key accepted:  yes"), "{st}");
    let list = ok(&run(s.home.cli(&["list"]), T));
    assert_eq!(list, format!("my-sandbox\t{}\n", s.gateway.url()));
    ok(&run(s.home.cli(&["forget", "my-sandbox"]), T));
    assert_eq!(ok(&run(s.home.cli(&["list"]), T)), "");
    assert!(!keys.join("my-sandbox").exists());
    assert_eq!(std::fs::read_to_string(s.home.ssh_config()).unwrap(), "");
}

#[test]
fn interactive_pty_session() {
    let s = Setup::new();
    ok(&s.ssh_setup("pty"));
    let mut child = s
        .home
        .ssh("ssh", &["-tt", "pty"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"tty; echo marker-$((6*7)); exit 5\n").unwrap();
    let o = wait(child, T);
    drop(stdin);
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("marker-42"), "{out}");
    assert_eq!(o.status.code(), Some(5));
}

#[test]
fn scp_and_sftp_move_64_mib_both_ways_intact() {
    let s = Setup::new();
    ok(&s.ssh_setup("files"));
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src.bin");
    random_file(&src, 64);
    let want = sha256(&src);

    // scp (SFTP protocol in OpenSSH 9) up and down.
    ok(&run(s.home.ssh("scp", &[src.to_str().unwrap(), "files:up-scp.bin"]), T));
    assert_eq!(sha256(&s.agent.workspace.join("up-scp.bin")), want);
    let back = local.path().join("down-scp.bin");
    ok(&run(s.home.ssh("scp", &["files:up-scp.bin", back.to_str().unwrap()]), T));
    assert_eq!(sha256(&back), want);

    // sftp in batch mode.
    let batch = local.path().join("batch");
    let back2 = local.path().join("down-sftp.bin");
    std::fs::write(
        &batch,
        format!("put {} up-sftp.bin\nget up-sftp.bin {}\nmkdir d\nls\n", src.display(), back2.display()),
    )
    .unwrap();
    let o = ok(&run(s.home.ssh("sftp", &["-b", batch.to_str().unwrap(), "files"]), T));
    assert!(o.contains("up-sftp.bin"), "{o}");
    assert_eq!(sha256(&s.agent.workspace.join("up-sftp.bin")), want);
    assert_eq!(sha256(&back2), want);
    assert!(s.agent.workspace.join("d").is_dir());
}

/// A TCP server "in the pod": answers every connection with a fixed HTTP response.
fn http_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let path = String::from_utf8_lossy(&seen).split_whitespace().nth(1).unwrap_or("").to_owned();
                let body = format!("hello from the pod: {path}");
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, handle)
}

fn http_get(port: u16, path: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn ssh_dash_l_reaches_a_server_in_the_pod() {
    let s = Setup::new();
    ok(&s.ssh_setup("fwd"));
    let (pod_port, _srv) = http_server();
    let local = free_port();
    let spec = format!("{local}:127.0.0.1:{pod_port}");
    let child = s.home.ssh("ssh", &["-N", "-L", &spec, "fwd"]).stdin(Stdio::null()).spawn().unwrap();
    let _guard = Guard { child, name: "ssh -L" };
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", local)).is_ok()));
    let resp = http_get(local, "/via-ssh-L");
    assert!(resp.ends_with("hello from the pod: /via-ssh-L"), "{resp}");
}

#[test]
fn proxy_port_serves_100_concurrent_requests() {
    let s = Setup::new();
    let (pod_port, _srv) = http_server();
    let local = free_port();
    let child = s
        .home
        .cli(&[
            "proxy",
            "--server",
            &s.gateway.url(),
            "--port",
            &pod_port.to_string(),
            "--local-port",
            &local.to_string(),
            "--bearer-file",
            &s.token_file(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Guard { child, name: "proxy --port" };
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", local)).is_ok()));
    let handles: Vec<_> =
        (0..100).map(|i| std::thread::spawn(move || http_get(local, &format!("/r{i}")))).collect();
    for (i, h) in handles.into_iter().enumerate() {
        let resp = h.join().unwrap();
        assert!(resp.ends_with(&format!("hello from the pod: /r{i}")), "{i}: {resp}");
    }
}

#[test]
fn agent_restart_heals_keys_and_a_foreign_host_key_is_refused() {
    let mut s = Setup::new();
    ok(&s.ssh_setup("heal"));
    assert_eq!(ok(&s.ssh(&["heal", "echo one"])), "one\n");

    // The pod restarts: new host key, registered keys gone. The ProxyCommand notices the new
    // host key over the authenticated API, re-registers our key and re-pins: ssh just works.
    let port = s.agent.port;
    let workspace = s.agent.workspace.clone();
    drop(std::mem::replace(&mut s.agent, Agent::start(&workspace, 0, &[])));
    s.agent = Agent::start(&workspace, port, &[]);
    assert_eq!(ok(&s.ssh(&["heal", "echo two"])), "two\n");

    // Another restart, but reached through a ProxyCommand that does not re-pin (the original
    // tool's form): ssh itself must refuse the unknown host key.
    drop(std::mem::replace(&mut s.agent, Agent::start(&workspace, 0, &[])));
    s.agent = Agent::start(&workspace, port, &[]);
    let legacy = format!(
        "ProxyCommand={} proxy --ssh --server {} --bearer-file {}",
        sandbox_tests::bin("sandbox-forward").display(),
        s.gateway.url(),
        s.token_file()
    );
    let o = s.ssh(&["-o", &legacy, "heal", "echo three"]);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || err.contains("Host key verification failed"),
        "{err}"
    );
}

#[test]
fn wrong_token_and_busy_port_give_one_clear_line() {
    let s = Setup::new();
    std::fs::write(s.token_file(), "expired-token\n").unwrap();
    let o = s.ssh_setup("bad");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("401 Unauthorized") && err.contains("fresh token"), "{err}");
    assert!(!err.contains("expired-token"), "token leaked: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!s.home.path().join(".config/sandbox/keys/bad").exists(), "half-written key left");
    assert!(!s.home.ssh_config().exists(), "ssh config written on failure");

    std::fs::write(s.token_file(), format!("{TOKEN}\n")).unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = run(
        s.home.cli(&[
            "proxy",
            "--server",
            &s.gateway.url(),
            "--port",
            "8080",
            "--local-port",
            &port,
            "--bearer-file",
            &s.token_file(),
        ]),
        T,
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains(&format!("local port {port} is already in use")), "{err}");

    // Nothing listens on the target: the tunnel says so.
    let o = run(s.home.cli(&["proxy", "--server", "http://127.0.0.1:1", "--ssh"]), T);
    assert!(stderr(&o).contains("connection refused"), "{}", stderr(&o));
}

#[test]
fn saved_forwards_come_up_with_up() {
    let s = Setup::new();
    ok(&s.ssh_setup("fw"));
    let (pod_port, _srv) = http_server();
    let local = free_port();
    let (p, l) = (pod_port.to_string(), local.to_string());
    ok(&run(
        s.home.cli(&[
            "forward",
            "add",
            "fw",
            "--port",
            &p,
            "--local-port",
            &l,
            "--label",
            "web",
            "--auto-start",
        ]),
        T,
    ));
    ok(&run(s.home.cli(&["forward", "add", "fw", "--port", "9229", "--label", "node"]), T));
    let list = ok(&run(s.home.cli(&["forward", "list", "fw"]), T));
    // Sorted by remote port (the pod's ephemeral port is above 9229).
    assert_eq!(
        list,
        format!("fw\t127.0.0.1:9229 -> :9229\tnode\nfw\t127.0.0.1:{l} -> :{p}\tweb\tauto-start\n")
    );
    let o = run(s.home.cli(&["forward", "add", "fw", "--port", "80"]), T);
    assert!(stderr(&o).contains("the sandbox allows ports 1024-65535"), "{}", stderr(&o));

    // Re-running ssh-setup keeps the saved forwards.
    ok(&s.ssh_setup("fw"));
    let child = s.home.cli(&["up", "fw"]).stdin(Stdio::null()).spawn().unwrap();
    let _up = Guard { child, name: "up" };
    assert!(eventually(T, || TcpStream::connect(("127.0.0.1", local)).is_ok()));
    assert!(http_get(local, "/up").ends_with("hello from the pod: /up"));
    // Only the auto-start forward runs.
    assert!(TcpStream::connect(("127.0.0.1", 9229)).is_err());

    ok(&run(s.home.cli(&["forward", "rm", "fw", "--port", "9229"]), T));
    assert!(!ok(&run(s.home.cli(&["forward", "list"]), T)).contains("9229"));
}

#[test]
fn https_with_a_private_ca_needs_ca_file_and_then_works() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let gateway = Gateway::start_tls(agent.port, TOKEN, "alice");
    let home = Home::new();
    let token = home.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let (url, tf) = (gateway.url(), token.display().to_string());

    // Untrusted certificate: one line naming TLS and the fix; nothing written.
    let o = run(home.cli(&["ssh-setup", "tls", "--server", &url, "--bearer-file", &tf]), T);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("TLS handshake") && err.contains("--ca-file"), "{err}");
    assert!(!home.ssh_config().exists());

    let ca = gateway.ca.as_ref().unwrap().display().to_string();
    ok(&run(home.cli(&["ssh-setup", "tls", "--server", &url, "--bearer-file", &tf, "--ca-file", &ca]), T));
    assert_eq!(ok(&run(home.ssh("ssh", &["tls", "echo over-wss"]), T)), "over-wss\n");
}

#[test]
fn proxy_stdio_carries_one_connection_on_stdin_and_stdout() {
    let s = Setup::new();
    let (pod_port, _srv) = http_server();
    let mut child = s
        .home
        .cli(&["proxy", "--server", &s.gateway.url(), "--port", &pod_port.to_string(), "--stdio"])
        .args(["--bearer-file", &s.token_file()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"GET /via-stdio HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The pod's server answers and closes; the proxy ends without us closing stdin.
    let o = wait(child, T);
    drop(stdin);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("hello from the pod: /via-stdio"), "{}", stdout(&o));
}

/// Host blocks the original Go tool wrote call us with Go-flag spellings: single-dash long
/// flags, `-flag=value`, and `proxy --ssh --port N` (where --ssh wins). ssh must still get in,
/// and stdout must carry nothing but the tunnel.
#[test]
fn the_original_tools_command_line_keeps_working() {
    let s = Setup::new();
    ok(&s.ssh_setup("orig"));
    let bin = sandbox_tests::bin("sandbox-forward").display().to_string();
    let (url, tf) = (s.gateway.url(), s.token_file());
    for form in [
        format!("ProxyCommand={bin} proxy -ssh -server {url} -bearer-file {tf}"),
        format!("ProxyCommand={bin} proxy -server={url} -bearer-file={tf} -ssh=true"),
        format!("ProxyCommand={bin} proxy --ssh --port 2222 --server {url} --bearer-file {tf}"),
    ] {
        assert_eq!(ok(&s.ssh(&["-o", &form, "orig", "echo via-original"])), "via-original\n", "{form}");
    }
    // --ssh wins over --port, with a warning on stderr; stdout is the tunnel alone (ssh's banner).
    let o = run(s.home.cli(&["proxy", "--ssh", "--port", "2222", "--server", &url, "--bearer-file", &tf]), T);
    assert!(stdout(&o).starts_with("SSH-2.0-"), "{:?}", stdout(&o));
    assert!(stderr(&o).contains("--port is ignored with --ssh"), "{}", stderr(&o));
    // The original's version spellings.
    let version = ok(&run(s.home.cli(&["version"]), T));
    assert!(version.starts_with("sandbox-forward ") && version.lines().count() == 1, "{version}");
    for flag in ["-v", "-version", "--version"] {
        assert_eq!(ok(&run(s.home.cli(&[flag]), T)), version, "{flag}");
    }
}

/// The original sandbox server, as far as the client can tell: the API of `upstream` (an agent
/// trusting `X-Forwarded-Sub`) with the subject set as a routing service would, and
/// `/api/ssh-port` answering `{"port": N}` alone — no `host_key` — and no
/// `/api/listening-ports` (404). One request per connection
/// (`Connection: close`); a WebSocket upgrade is relayed byte for byte. Counts key
/// registrations. Its threads end with the test process.
struct OriginalServer {
    port: u16,
    registrations: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl OriginalServer {
    fn start(upstream: u16) -> OriginalServer {
        OriginalServer::launch(upstream, false)
    }

    /// The same behind a proxy that answers every WebSocket upgrade with 502.
    fn refusing_upgrades(upstream: u16) -> OriginalServer {
        OriginalServer::launch(upstream, true)
    }

    fn launch(upstream: u16, refuse_upgrades: bool) -> OriginalServer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let registrations = Arc::new(AtomicUsize::new(0));
        let counter = registrations.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut lines: Vec<&str> = text.trim_end().split("\r\n").collect();
                    let request_line = lines.remove(0).to_owned();
                    let length: usize = lines
                        .iter()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    client.read_exact(&mut body).unwrap();
                    let upgrade = lines.iter().any(|l| l.to_ascii_lowercase().starts_with("upgrade:"));
                    let mut headers: Vec<String> = lines
                        .iter()
                        .filter(|l| {
                            let l = l.to_ascii_lowercase();
                            !l.starts_with("x-forwarded-") && (upgrade || !l.starts_with("connection:"))
                        })
                        .map(|l| l.to_string())
                        .collect();
                    headers.push("X-Forwarded-Sub: alice".into());
                    if !upgrade {
                        headers.push("Connection: close".into());
                    }
                    if request_line.starts_with("POST /api/ssh-authorized-keys") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    // Ours alone: the original's mux answers Go's 404.
                    if request_line.starts_with("GET /api/listening-ports") {
                        let _ = client.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n",
                        );
                        return;
                    }
                    if upgrade && refuse_upgrades {
                        let _ = client.write_all(
                            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway",
                        );
                        return;
                    }
                    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    up.write_all(format!("{request_line}\r\n{}\r\n\r\n", headers.join("\r\n")).as_bytes())
                        .unwrap();
                    up.write_all(&body).unwrap();
                    if upgrade {
                        let (mut a, mut b) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut a, &mut b);
                            let _ = b.shutdown(std::net::Shutdown::Write);
                        });
                        let _ = std::io::copy(&mut up, &mut client);
                        let _ = client.shutdown(std::net::Shutdown::Write);
                        return;
                    }
                    let mut answer = Vec::new();
                    up.read_to_end(&mut answer).unwrap();
                    if request_line.starts_with("GET /api/ssh-port") {
                        let text = String::from_utf8_lossy(&answer);
                        let json: serde_json::Value =
                            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
                        let body = format!("{{\"port\":{}}}", json["port"]);
                        answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes();
                    }
                    let _ = client.write_all(&answer);
                });
            }
        });
        OriginalServer { port, registrations }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn registrations(&self) -> usize {
        self.registrations.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Restarts the agent on its port, as a pod restart does: new SSH port, registered keys gone.
fn restart(agent: &mut Agent) {
    let (port, workspace) = (agent.port, agent.workspace.clone());
    drop(std::mem::replace(agent, Agent::start(&workspace, 0, &[])));
    *agent = Agent::start(&workspace, port, &[]);
}

#[test]
fn without_host_keys_a_pod_restart_is_noticed_by_its_new_ssh_port() {
    let workspace = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(workspace.path(), 0, &[]);
    let server = OriginalServer::start(agent.port);
    let home = Home::new();
    let out = ok(&run(home.cli(&["ssh-setup", "orig", "--server", &server.url()]), T));
    assert!(out.contains("does not publish its SSH host key"), "{out}");
    assert_eq!(server.registrations(), 1);
    let ssh = |cmd: &str| run(home.ssh("ssh", &["orig", cmd]), T);
    assert_eq!(ok(&ssh("echo one")), "one\n");
    assert_eq!(server.registrations(), 1, "a connection to the same pod registers nothing");

    restart(&mut agent);
    assert_eq!(ok(&ssh("echo two")), "two\n");
    assert_eq!(server.registrations(), 2, "re-registered once after the restart");
    assert_eq!(ok(&ssh("echo three")), "three\n");
    assert_eq!(server.registrations(), 2, "and not again");
    assert!(ok(&run(home.cli(&["status", "orig"]), T)).contains("key accepted:  yes"));
}

#[test]
fn status_and_doctor_name_the_fix_when_the_key_is_refused() {
    let workspace = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(workspace.path(), 0, &[]);
    let server = OriginalServer::start(agent.port);
    let home = Home::new();
    ok(&run(home.cli(&["ssh-setup", "gone", "--server", &server.url()]), T));
    assert_eq!(ok(&run(home.cli(&["doctor", "--check"]), T)), "Everything is in order.\n");
    // The pod restarts and the port recorded at registration matches it anyway (the key is
    // gone but nothing can tell): ssh is refused, and both commands say what to run.
    restart(&mut agent);
    let answer = http_get(server.port, "/api/ssh-port");
    let json: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    std::fs::write(home.path().join(".config/sandbox/known_hosts/gone.port"), format!("{}\n", json["port"]))
        .unwrap();
    let o = run(home.cli(&["status", "gone"]), T);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("key accepted:  no") && out.contains("Permission denied"), "{out}");
    assert!(out.contains("run `sandbox-forward ssh-setup gone` (or Connect in the app)"), "{out}");
    let o = run(home.cli(&["doctor", "--check"]), T);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(!out.contains("Everything is in order"), "{out}");
    assert!(out.contains("sandbox gone: `ssh gone` is refused") && out.contains("ssh-setup gone"), "{out}");
}

/// A `Host NAME` block the original tool wrote into ~/.ssh/config: doctor reports it, ssh-setup
/// moves it into a dated backup (the rest of the file byte for byte as it was), and forget
/// never brings it back.
#[test]
fn the_original_tools_host_block_is_moved_out_and_stays_out() {
    let s = Setup::new();
    let key = s.home.path().join(".config/sandbox/keys/mig");
    let original = format!(
        "Host mig\n    ProxyCommand sandbox-forward proxy --ssh --server {} --bearer-file {}\n    User sandbox\n    IdentityFile {}\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n",
        s.gateway.url(),
        s.token_file(),
        key.display()
    );
    let (before, after) = ("# my hosts\r\nHost work\r\n  User me\r\n\r\n", "\n# kept\nHost later\n  User x");
    std::fs::create_dir_all(s.home.path().join(".ssh")).unwrap();
    std::fs::write(s.home.ssh_config(), format!("{before}{original}{after}")).unwrap();

    let o = run(s.home.cli(&["doctor", "--check"]), T);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("original sandbox-forward's `Host mig` block"), "{}", stdout(&o));

    let out = ok(&s.ssh_setup("mig"));
    assert!(out.contains("Moved the original sandbox-forward's Host mig block out of"), "{out}");
    let backups: Vec<_> = std::fs::read_dir(s.home.path().join(".ssh"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("config.sandbox-forward-backup-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(out.contains(&backups[0].display().to_string()), "{out}");
    assert!(std::fs::read_to_string(&backups[0]).unwrap().ends_with(&original));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backups[0]).unwrap().permissions().mode() & 0o777, 0o600);
    let config = std::fs::read_to_string(s.home.ssh_config()).unwrap();
    let end = "# END sandbox-forward managed block\r\n";
    let user_part = &config[config.find(end).unwrap() + end.len()..];
    assert_eq!(user_part, format!("{before}{after}"), "the rest of the file is unchanged");
    assert_eq!(ok(&s.ssh(&["mig", "echo migrated"])), "migrated\n");
    assert_eq!(ok(&run(s.home.cli(&["doctor", "--check"]), T)), "Everything is in order.\n");

    ok(&run(s.home.cli(&["forget", "mig"]), T));
    assert_eq!(std::fs::read_to_string(s.home.ssh_config()).unwrap(), format!("{before}{after}"));
    let g = stdout(&s.ssh(&["-G", "mig"]));
    assert!(!g.contains("sandbox-forward"), "{g}");
}

/// A sandbox added in the app (settings saved, no key or Host block yet) is finished from the
/// command line with `ssh-setup NAME` alone; until then status and doctor say what the window
/// says, and how to connect.
#[test]
fn a_sandbox_added_in_the_app_is_finished_by_ssh_setup_without_server() {
    let s = Setup::new();
    let profiles = s.home.path().join(".config/sandbox/sandboxes");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("app.toml"),
        format!("server = {:?}\n\n[credentials]\nbearer_file = {:?}\n", s.gateway.url(), s.token_file()),
    )
    .unwrap();
    let o = run(s.home.cli(&["status", "app", "--offline"]), T);
    assert!(stdout(&o).contains("not connected — run `sandbox-forward ssh-setup app`"), "{}", stdout(&o));
    let o = run(s.home.cli(&["doctor", "--check"]), T);
    assert!(stdout(&o).contains("sandbox app: not connected"), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(1));

    let out = ok(&run(s.home.cli(&["ssh-setup", "app"]), T));
    assert!(out.contains(&format!("registered it with {}", s.gateway.url())), "{out}");
    assert_eq!(ok(&s.ssh(&["app", "echo from-the-app"])), "from-the-app\n");
    // Nothing saved: the message says how to start.
    let o = run(s.home.cli(&["ssh-setup", "nosuch"]), T);
    assert!(stderr(&o).contains("nosuch has no saved settings here"), "{}", stderr(&o));
}

/// Two `ssh-setup` of one name at once: each finishes whole, one after the other, so the key
/// pair on disk always matches (and is the one the server accepts).
#[test]
fn concurrent_ssh_setups_of_one_name_leave_a_matching_key_pair() {
    let s = Setup::new();
    let key = s.home.path().join(".config/sandbox/keys/race");
    for round in 0..10 {
        let url = s.gateway.url();
        let tf = s.token_file();
        let spawn = || {
            let mut c = s.home.cli(&["ssh-setup", "race", "--server", &url, "--bearer-file", &tf]);
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (wait(a, T), wait(b, T));
        ok(&a);
        ok(&b);
        let derived = ok(&run(
            {
                let mut c = Command::new("ssh-keygen");
                c.arg("-y").arg("-f").arg(&key);
                c
            },
            T,
        ));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let field = |s: &str| s.split_whitespace().nth(1).unwrap_or_default().to_owned();
        assert_eq!(field(&derived), field(&public), "round {round}: private and public halves differ");
    }
    assert_eq!(ok(&s.ssh(&["race", "echo settled"])), "settled\n");
}

/// Log lines on a stderr that is not a terminal (a pipe, ssh's log, a file) carry no ANSI
/// colour codes.
#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    let s = Setup::new();
    let o = run(
        s.home.cli(&[
            "-vv",
            "proxy",
            "--ssh",
            "--server",
            &s.gateway.url(),
            "--bearer-file",
            &s.token_file(),
        ]),
        T,
    );
    let err = stderr(&o);
    assert!(err.contains("INFO") || err.contains("DEBUG"), "no log lines to check: {err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// ssh-setup proves the tunnel before it says "Try it": a proxy refusing the WebSocket upgrade
/// (502) fails the setup, and nothing is written.
#[test]
fn ssh_setup_fails_when_the_tunnel_is_refused() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let server = OriginalServer::refusing_upgrades(agent.port);
    let home = Home::new();
    let o = run(home.cli(&["ssh-setup", "nows", "--server", &server.url()]), T);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Try it"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("502") && err.contains("tunnel"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!home.ssh_config().exists(), "ssh config written");
    assert!(!home.path().join(".config/sandbox/keys/nows").exists(), "key written");
    assert_eq!(server.registrations(), 0);
    let _ = &agent;
}

/// After ssh-setup, `ssh -G NAME` shows whether ssh uses the block. When ssh rejects the config
/// itself its own message is shown; a config we may not write is not blamed on a Host entry.
#[test]
fn the_ssh_g_check_tells_ssh_rejecting_the_config_from_a_shadowing_entry() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    std::fs::create_dir_all(s.home.path().join(".ssh")).unwrap();
    // A byte-order mark: ssh reads it as part of the first keyword and refuses the file.
    std::fs::write(s.home.ssh_config(), b"\xEF\xBB\xBFHost other\n  User me\n").unwrap();
    let out = ok(&s.ssh_setup("bom"));
    assert!(out.contains("Bad configuration option"), "{out}");
    assert!(!out.contains("earlier `Host"), "{out}");

    std::fs::write(s.home.ssh_config(), "Host other\n  User me\n").unwrap();
    std::fs::set_permissions(s.home.ssh_config(), std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = ok(&s.ssh_setup("ro"));
    assert!(out.contains("Add this line"), "{out}");
    assert!(!out.contains("earlier `Host"), "{out}");
    assert!(out.contains("does not use this block until"), "{out}");
}

#[test]
fn ports_lists_the_pods_listeners_through_the_gateway() {
    let s = Setup::new();
    ok(&s.ssh_setup("pp"));
    let (_python, port, _) = python_listener(false);
    let o = run(s.home.cli(&["ports", "pp"]), T);
    let table = ok(&o);
    assert!(table.starts_with("PORT    PROCESS\n"), "{table}");
    assert!(table.contains(&format!("\n{port:<7} python3\n")), "{table}");
    assert!(!table.contains(&format!("\n{} ", s.agent.port)), "the agent's API port: {table}");
    let hint = stderr(&o);
    assert!(hint.starts_with("Forward one: sandbox-forward proxy --sandbox pp --port "), "{hint}");
    assert!(!hint.contains("note:"), "our agent answered, no fallback: {hint}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(s.home.cli(&["ports", "pp", "--json"]), T))).unwrap();
    let ports = json["ports"].as_array().unwrap();
    assert!(ports.iter().any(|p| p["port"] == port && p["process"] == "python3"), "{json}");

    let o = run(s.home.cli(&["ports", "nope"]), T);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "one line: {}", stderr(&o));
}

#[test]
fn ports_from_the_original_server_are_read_over_ssh() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &[]);
    let server = OriginalServer::start(agent.port);
    let home = Home::new();
    ok(&run(home.cli(&["ssh-setup", "orig", "--server", &server.url()]), T));
    let (python, port, _) = python_listener(false);
    let answer = http_get(server.port, "/api/ssh-port");
    let json: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let ssh_port = json["port"].as_u64().unwrap();

    let o = run(home.cli(&["ports", "orig"]), T);
    let table = ok(&o);
    assert!(table.contains(&format!("\n{port:<7} -\n")), "listed, no process name over ssh: {table}");
    assert!(!table.contains(&format!("\n{ssh_port} ")), "the server's SSH port: {table}");
    assert!(
        stderr(&o).contains(
            "has no /api/listening-ports (the original server): read /proc/net/tcp over `ssh orig`"
        ),
        "{}",
        stderr(&o)
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(home.cli(&["ports", "orig", "--json"]), T))).unwrap();
    assert!(
        json["ports"].as_array().unwrap().iter().any(|p| p["port"] == port && p["process"].is_null()),
        "{json}"
    );

    // Gone once it stops: the list is the pod's, read afresh.
    drop(python);
    let table = ok(&run(home.cli(&["ports", "orig"]), T));
    assert!(!table.contains(&format!("\n{port:<7} ")), "{table}");

    // ssh refused (our key is gone): one line with ssh's reason and what to check.
    std::fs::remove_file(home.path().join(".config/sandbox/keys/orig")).unwrap();
    let o = run(home.cli(&["ports", "orig"]), T);
    assert!(!o.status.success());
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("reading /proc/net/tcp over `ssh orig` failed:") && last.contains("Permission denied"),
        "{err}"
    );
    assert!(last.contains("check that `ssh orig true` works"), "{err}");
    drop(agent);
}

/// `add-link`: a dashboard's `sandbox-forward://add?…` link shows what it sets up and the one
/// command that does it; that command, run as printed by a shell, gives a working `ssh NAME`.
/// A link carrying a credential is refused.
#[test]
fn an_add_link_prints_the_command_that_sets_the_sandbox_up() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let home = Home::new();
    let enc = |s: &str| s.replace('%', "%25").replace(':', "%3A").replace('/', "%2F").replace(' ', "%20");
    let link = format!(
        "sandbox-forward://add?name=linked&server={}&folder={}",
        enc(&agent.url()),
        enc(&workspace.path().display().to_string())
    );
    let out = ok(&run(home.cli(&["add-link", &link]), Duration::from_secs(10)));
    assert!(out.contains("nothing has been done yet") && out.contains("  name:     linked"), "{out}");
    assert!(!home.ssh_config().exists(), "the link did something by itself");
    let command = out.lines().last().unwrap().trim().strip_prefix("sandbox-forward ").expect(&out).to_owned();

    let script = format!("exec \"$SF\" {command}");
    let mut sh = Command::new("sh");
    sh.args(["-c", &script]).env("SF", sandbox_tests::bin("sandbox-forward")).env("HOME", home.path());
    ok(&run(sh, Duration::from_secs(30)));
    let pwd = ok(&run(home.ssh("ssh", &["linked", "pwd"]), Duration::from_secs(20)));
    assert_eq!(
        std::path::PathBuf::from(pwd.trim()).canonicalize().unwrap(),
        workspace.path().canonicalize().unwrap()
    );

    let refused = run(home.cli(&["add-link", &format!("{link}&bearer=secret")]), Duration::from_secs(10));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("never may") && !stderr(&refused).contains("secret"),
        "{}",
        stderr(&refused)
    );
}
