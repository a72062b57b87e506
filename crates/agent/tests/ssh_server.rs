//! End-to-end tests of the embedded SSH server against the real OpenSSH
//! client tools (`ssh`, `sftp`, `scp`).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sandbox_agent::authorized_keys::AuthorizedKeys;
use sandbox_agent::ssh::{HostKey, SshServer};
use sandbox_test_support::aio::echo_server;
use sandbox_test_support::{free_port, PidGuard};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const SHORT: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(60);
const BIG: usize = 64 * 1024 * 1024;

/// A running server with a registered client key, in its own temp dir.
struct Fixture {
    dir: TempDir,
    workspace: PathBuf,
    key: PathBuf,
    port: u16,
    shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn keygen(path: &Path) -> String {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@client", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    std::fs::read_to_string(path.with_extension("pub")).expect("read public key")
}

/// Server logs on the test's output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

async fn fixture() -> Fixture {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).expect("create workspace");
    let workspace = workspace.canonicalize().expect("canonical workspace");
    let key = dir.path().join("id");
    let public = keygen(&key);
    let keys = AuthorizedKeys::new();
    assert_eq!(keys.add("tester", &public), Ok(true));

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let shutdown = CancellationToken::new();
    let server = SshServer::new(HostKey::generate(), keys, workspace.clone(), Duration::from_secs(120));
    tokio::spawn(server.serve(listener, shutdown.clone()));
    Fixture { dir, workspace, key, port, shutdown }
}

impl Fixture {
    /// Options shared by ssh, sftp and scp; `port_flag` is `-p` or `-P`.
    fn common_args(&self, port_flag: &str, key: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-F".into(),
            "/dev/null".into(),
            port_flag.into(),
            self.port.to_string(),
            "-i".into(),
            key.display().to_string(),
        ];
        // SSH_TEST_VERBOSE=1 shows the clients' debug output on failures.
        let log_level =
            if std::env::var_os("SSH_TEST_VERBOSE").is_some() { "LogLevel=DEBUG" } else { "LogLevel=ERROR" };
        for opt in [
            "IdentitiesOnly=yes",
            "BatchMode=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            log_level,
        ] {
            args.push("-o".into());
            args.push(opt.into());
        }
        args
    }

    /// `ssh [extra…] anyuser@127.0.0.1 [command]`.
    fn ssh(&self, extra: &[&str], command: Option<&str>) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.common_args("-p", &self.key)).args(extra).arg("anyuser@127.0.0.1");
        if let Some(command) = command {
            cmd.arg(command);
        }
        cmd
    }

    fn sftp_batch(&self, batch: &str) -> Command {
        let batch_file = self.dir.path().join(format!("batch-{}", rand::rng().next_u64()));
        std::fs::write(&batch_file, batch).expect("write batch file");
        let mut cmd = Command::new("sftp");
        cmd.args(self.common_args("-P", &self.key)).arg("-b").arg(batch_file).arg("anyuser@127.0.0.1");
        cmd
    }

    fn scp(&self, from: &str, to: &str) -> Command {
        let mut cmd = Command::new("scp");
        cmd.args(self.common_args("-P", &self.key)).arg(from).arg(to);
        cmd
    }
}

/// Spawns `cmd` with piped stdio, guarded by PID (killed when the test ends, even on panic).
fn spawn(mut cmd: Command) -> (Child, PidGuard) {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().expect("spawn client");
    let guard = PidGuard(child.id().expect("child pid"));
    (child, guard)
}

/// Runs `cmd` to completion, feeding `stdin` (then EOF), within `limit`.
async fn run(cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    let (mut child, _guard) = spawn(cmd);
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        // Dropping `input` closes the client's stdin.
    });
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("client timed out")
        .expect("wait for client");
    writer.abort();
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sha256_file(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).expect("read file to hash");
    Sha256::digest(&data).to_vec()
}

fn random_file(path: &Path, len: usize) {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(path, data).expect("write random file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_echo_prints_ok_and_exits_zero() {
    let f = fixture().await;
    let out = run(f.ssh(&[], Some("echo ok")), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_code_is_propagated() {
    let f = fixture().await;
    let out = run(f.ssh(&[], Some("exit 7")), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_killed_by_signal_reports_exit_signal() {
    let f = fixture().await;
    // ssh keeps the first LogLevel given, so debug output must come first;
    // it shows which channel requests arrived.
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "LogLevel=DEBUG"])
        .args(f.common_args("-p", &f.key))
        .arg("anyuser@127.0.0.1")
        .arg("echo before; kill -TERM $$");
    let out = run(cmd, b"", SHORT).await;
    assert_eq!(stdout(&out), "before\n");
    // OpenSSH exits 255 when the remote command died of a signal.
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("rtype exit-signal"), "stderr: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stderr_arrives_on_stderr() {
    let f = fixture().await;
    let out = run(f.ssh(&[], Some("echo out; echo err >&2")), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_starts_in_workspace_with_home() {
    let f = fixture().await;
    let out = run(f.ssh(&[], Some("pwd; echo $HOME")), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let ws = f.workspace.display().to_string();
    assert_eq!(stdout(&out), format!("{ws}\n{ws}\n"));
}

/// As the original server: the agent's environment (here the test process's, which cargo gave
/// `CARGO_MANIFEST_DIR`), `SANDBOX_USER` naming whose key opened the session, ssh's own
/// `SSH_CONNECTION`; no `TERM` without a pty, the pty's with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_env_is_the_agents_plus_sandbox_user() {
    let f = fixture().await;
    // printenv, not $TERM: bash gives itself an unexported TERM=dumb when none was passed.
    let script =
        "echo \"$SANDBOX_USER|$CARGO_MANIFEST_DIR|${SSH_CONNECTION:+set}|$(printenv TERM || echo none)\"";
    let out = run(f.ssh(&["-T"], Some(script)), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), format!("tester|{}|set|none\n", env!("CARGO_MANIFEST_DIR")), "{}", stderr(&out));
    let mut with_pty = f.ssh(&["-tt"], Some("printenv TERM"));
    with_pty.env("TERM", "vt220");
    let out = run(with_pty, b"", SHORT).await;
    assert_eq!(stdout(&out).trim_end(), "vt220");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_piped_through_cat() {
    let f = fixture().await;
    let mut data = vec![0u8; 1024 * 1024];
    rand::rng().fill_bytes(&mut data);
    let out = run(f.ssh(&[], Some("cat")), &data, SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat output differs from input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_pty_has_a_tty() {
    let f = fixture().await;
    let out = run(f.ssh(&["-tt"], Some("tty")), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("/dev/pts/"), "tty printed {:?}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_pty_has_no_tty() {
    let f = fixture().await;
    let out = run(f.ssh(&["-T"], Some("tty")), b"", SHORT).await;
    assert_eq!(stdout(&out), "not a tty\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_with_pty_runs_commands_from_stdin() {
    let f = fixture().await;
    let out = run(f.ssh(&["-tt"], None), b"echo hi; exit\n", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        // Split on CR too: the shell's bracketed-paste toggles end in "\r".
        text.split(['\r', '\n']).any(|l| l == "hi"),
        "no 'hi' line in {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_without_pty_reads_commands_from_stdin() {
    let f = fixture().await;
    let out = run(f.ssh(&["-T"], None), b"echo hi\nexit 3\n", SHORT).await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_env_is_accepted_but_not_ld_vars() {
    let f = fixture().await;
    let mut cmd = f.ssh(
        &["-o", "SetEnv=FOO=bar LD_PRELOAD=/nonexistent.so", "-o", "SendEnv=SENT_VAR"],
        Some("echo $FOO $SENT_VAR ${LD_PRELOAD:-unset}"),
    );
    cmd.env("SENT_VAR", "sent");
    let out = run(cmd, b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "bar sent unset\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_forward_w_carries_bytes_both_ways() {
    let f = fixture().await;
    let port = echo_server().await;
    let target = format!("127.0.0.1:{port}");
    let payload = b"hello through -W\n".repeat(1000);
    let out = run(f.ssh(&["-W", &target], None), &payload, SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stdout == payload, "echo mismatch ({} bytes)", out.stdout.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_forward_w_survives_heavy_traffic_both_ways() {
    // Enough data in both directions at once to fill every buffer on the way.
    let f = fixture().await;
    let port = echo_server().await;
    let target = format!("127.0.0.1:{port}");
    let mut payload = vec![0u8; 16 * 1024 * 1024];
    rand::rng().fill_bytes(&mut payload);
    let out = run(f.ssh(&["-W", &target], None), &payload, LONG).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stdout == payload, "echo mismatch ({} bytes)", out.stdout.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_l_reaches_echo_server() {
    let f = fixture().await;
    let echo_port = echo_server().await;
    let local_port = free_port();
    let spec = format!("127.0.0.1:{local_port}:127.0.0.1:{echo_port}");
    let (_child, _guard) = spawn(f.ssh(&["-N", "-o", "ExitOnForwardFailure=yes", "-L", &spec], None));
    let deadline = Instant::now() + SHORT;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", local_port)).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("forward never came up: {e}"),
        }
    };
    tokio::time::timeout(SHORT, async {
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
    .await
    .expect("forwarded echo timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_r_reaches_client_side() {
    let f = fixture().await;
    let echo_port = echo_server().await;
    let remote_port = free_port();
    let spec = format!("127.0.0.1:{remote_port}:127.0.0.1:{echo_port}");
    let (_child, _guard) = spawn(f.ssh(&["-N", "-o", "ExitOnForwardFailure=yes", "-R", &spec], None));
    // The server-side listener is in this process; the echo server is on the
    // "client side". Both are loopback here, which is fine for the test.
    let deadline = Instant::now() + SHORT;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", remote_port)).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("remote forward never came up: {e}"),
        }
    };
    tokio::time::timeout(SHORT, async {
        stream.write_all(b"pong").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    })
    .await
    .expect("remote forwarded echo timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_put_and_get_64_mib() {
    let f = fixture().await;
    let local = f.dir.path().join("big.bin");
    let back = f.dir.path().join("big.back");
    random_file(&local, BIG);
    let batch = format!("put {} big.bin\nget big.bin {}\n", local.display(), back.display());
    let started = Instant::now();
    let out = run(f.sftp_batch(&batch), b"", LONG).await;
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    eprintln!("sftp put+get of 64 MiB took {elapsed:?}");
    let expected = sha256_file(&local);
    assert_eq!(sha256_file(&f.workspace.join("big.bin")), expected);
    assert_eq!(sha256_file(&back), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_64_mib_both_ways() {
    let f = fixture().await;
    let local = f.dir.path().join("big.bin");
    let back = f.dir.path().join("big.back");
    random_file(&local, BIG);
    let expected = sha256_file(&local);

    let started = Instant::now();
    let up = run(f.scp(&local.display().to_string(), "anyuser@127.0.0.1:up.bin"), b"", LONG).await;
    let up_time = started.elapsed();
    assert_eq!(up.status.code(), Some(0), "stderr: {}", stderr(&up));
    assert_eq!(sha256_file(&f.workspace.join("up.bin")), expected);

    let started = Instant::now();
    let down = run(f.scp("anyuser@127.0.0.1:up.bin", &back.display().to_string()), b"", LONG).await;
    let down_time = started.elapsed();
    assert_eq!(down.status.code(), Some(0), "stderr: {}", stderr(&down));
    assert_eq!(sha256_file(&back), expected);
    eprintln!("scp 64 MiB upload took {up_time:?}, download took {down_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_mkdir_ls_rename_rm() {
    let f = fixture().await;
    let local = f.dir.path().join("small.txt");
    std::fs::write(&local, "small file\n").unwrap();
    let batch =
        format!("mkdir d1\nput {} d1/f.txt\nls d1\nrename d1/f.txt d1/g.txt\nls -l d1\n", local.display());
    let out = run(f.sftp_batch(&batch), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("d1/f.txt"), "ls output: {text}");
    assert!(text.contains("g.txt"), "ls -l output: {text}");
    assert_eq!(std::fs::read_to_string(f.workspace.join("d1/g.txt")).unwrap(), "small file\n");

    let out = run(f.sftp_batch("rm d1/g.txt\nrmdir d1\n"), b"", SHORT).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!f.workspace.join("d1").exists());

    // A failing command fails the batch with a sensible message.
    let out = run(f.sftp_batch("rm does-not-exist\n"), b"", SHORT).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("No such file"), "stderr: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_key_is_refused() {
    let f = fixture().await;
    let other = f.dir.path().join("other");
    keygen(&other);
    let mut cmd = Command::new("ssh");
    cmd.args(f.common_args("-p", &other)).arg("anyuser@127.0.0.1").arg("echo should-not-run");
    let out = run(cmd, b"", SHORT).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("Permission denied"), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_kills_the_session_process_group() {
    let f = fixture().await;
    // A background child in the same process group, plus the shell itself.
    let (mut child, guard) = spawn(f.ssh(&[], Some("sleep 60 & echo $! $$; wait")));
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(SHORT, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("no pid line")
        .unwrap();
    let pids: Vec<u32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "line: {line:?}");
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    drop(guard); // SIGKILL the client: the connection drops without a goodbye.
    let _ = child.wait().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in pids {
        while is_alive(pid) {
            assert!(Instant::now() < deadline, "process {pid} outlived the session");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Alive and not a zombie (zombies of the test's own runtime are reaped lazily).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
