//! The TCP ports listening in a sandbox, for `sandbox-forward ports NAME` and the app:
//! `GET /api/listening-ports` from our agent; from a server without it (the original answers
//! 404) the kernel's tables read over `ssh NAME cat /proc/net/tcp /proc/net/tcp6` through the
//! user's ssh config, parsed by the same `sandbox_wire::proc_net` as the agent uses.

use std::path::Path;
use std::time::Duration;

pub use sandbox_wire::api::ListeningPort;
use sandbox_wire::proc_net::{self, ByteOrder};

use crate::api::{ApiClient, ApiError};
use crate::name::SandboxName;
use crate::untrusted;

/// Where the list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortsSource {
    /// Our agent's `/api/listening-ports`, with process names.
    Agent,
    /// `/proc/net/tcp{,6}` over `ssh NAME`: no process names.
    Ssh,
}

/// The ports listening in one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedPorts {
    /// Sorted by port, one entry per port.
    pub ports: Vec<ListeningPort>,
    /// How they were found.
    pub source: PortsSource,
}

/// Why the ports could not be listed; one line with cause and fix.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    /// The API failed (other than 404).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server lacks the endpoint and the SSH fallback failed.
    #[error("the sandbox's server cannot list ports (no /api/listening-ports: the original server), and reading /proc/net/tcp over `ssh {name}` failed: {detail}; check that `ssh {name} true` works (`sandbox-forward status {name}`)")]
    Ssh {
        /// The sandbox.
        name: SandboxName,
        /// ssh's last line, or what was wrong with its answer.
        detail: String,
    },
}

/// `{"ports":[…]}`, the API's answer, for scripts (`ports NAME --json`).
pub fn to_json(ports: &[ListeningPort]) -> String {
    let body = sandbox_wire::api::ListeningPortsResponse { ports: ports.to_vec() };
    serde_json::to_string(&body).expect("plain data serialises")
}

/// How long the fallback's `ssh` may take (a ProxyCommand that sets up, then one `cat`).
const SSH_TIMEOUT: Duration = Duration::from_secs(40);

/// The sandbox's listening ports: from the API, else (404) over `ssh` (program `ssh`, config
/// `ssh_config` passed with `-F` as OpenSSH takes `~` from the password database).
pub async fn detect(
    api: &ApiClient,
    ssh: &Path,
    ssh_config: &Path,
    name: &SandboxName,
) -> Result<DetectedPorts, PortsError> {
    match api.listening_ports().await {
        Ok(ports) => Ok(DetectedPorts { ports, source: PortsSource::Agent }),
        Err(ApiError::NotFound { .. }) => {
            // The server's own SSH listener is no port to forward (the agent leaves it out too).
            let exclude: Vec<u16> = api.ssh_port().await.map(|r| vec![r.port]).unwrap_or_default();
            let ports = over_ssh(ssh, ssh_config, name, &exclude).await?;
            Ok(DetectedPorts { ports, source: PortsSource::Ssh })
        }
        Err(e) => Err(e.into()),
    }
}

/// `ssh NAME cat /proc/net/tcp /proc/net/tcp6`, parsed; ports in `exclude` left out.
pub async fn over_ssh(
    ssh: &Path,
    ssh_config: &Path,
    name: &SandboxName,
    exclude: &[u16],
) -> Result<Vec<ListeningPort>, PortsError> {
    let failed = |detail: String| PortsError::Ssh { name: name.clone(), detail };
    let mut cmd = tokio::process::Command::new(ssh);
    cmd.arg("-F")
        .arg(ssh_config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-T", name.as_str()])
        .args(["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SSH_TIMEOUT, cmd.output())
        .await
        .map_err(|_| failed(format!("ssh did not finish within {} s", SSH_TIMEOUT.as_secs())))?
        .map_err(|e| failed(format!("cannot run {}: {e}", ssh.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `cat` fails on a missing tcp6 (IPv6 off) after printing tcp: what it printed counts.
    match proc_net::parse(&stdout, ByteOrder::Little) {
        Ok(sockets) => Ok(proc_net::listening_ports(&sockets, exclude, |_| None)),
        Err(_) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("ssh failed");
            Err(failed(untrusted::one_line(last.trim().trim_end_matches('.'), 300)))
        }
        Err(e) => Err(failed(format!("its answer was not the pod's TCP table ({e})"))),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stand-in `ssh` (a shell script) that checks its arguments and prints `answer`.
    fn fake_ssh(dir: &Path, script_body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("ssh");
        std::fs::write(&path, format!("#!/bin/sh\n{script_body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    const TABLE: &str =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11 1 0 100 0 0 10 0
   1: 0100007F:8AE7 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12 1 0 100 0 0 10 0
";

    #[tokio::test]
    async fn over_ssh_runs_cat_through_the_config_and_parses_what_it_printed() {
        let dir = tempfile::tempdir().unwrap();
        let name = SandboxName::new("box").unwrap();
        let config = dir.path().join("config");
        // Checks the exact argv; prints tcp, then fails as cat does without tcp6.
        let expected = format!(
            "-F {} -o BatchMode=yes -o ConnectTimeout=20 -T box cat /proc/net/tcp /proc/net/tcp6",
            config.display()
        );
        let ssh = fake_ssh(
            dir.path(),
            &format!("[ \"$*\" = \"{expected}\" ] || {{ echo \"argv: $*\" >&2; exit 255; }}\ncat <<'EOF'\n{TABLE}EOF\necho 'cat: /proc/net/tcp6: No such file or directory' >&2\nexit 1"),
        );
        let ports = over_ssh(&ssh, &config, &name, &[35559]).await.unwrap();
        assert_eq!(ports, [ListeningPort { port: 5173, process: None }], "35559 excluded");
    }

    #[tokio::test]
    async fn a_failing_ssh_is_one_line_naming_ssh_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let name = SandboxName::new("box").unwrap();
        let ssh = fake_ssh(
            dir.path(),
            "echo 'debug noise' >&2\necho 'box: Permission denied (publickey).' >&2\nexit 255",
        );
        let msg = over_ssh(&ssh, Path::new("/nonexistent"), &name, &[]).await.unwrap_err().to_string();
        assert!(
            msg.contains(
                "over `ssh box` failed: box: Permission denied (publickey); check that `ssh box true` works"
            ),
            "{msg}"
        );
        assert!(!msg.contains('\n') && !msg.contains("debug noise"), "{msg}");
        let ssh = fake_ssh(dir.path(), "echo 'Welcome!'");
        let msg = over_ssh(&ssh, Path::new("/nonexistent"), &name, &[]).await.unwrap_err().to_string();
        assert!(msg.contains("its answer was not the pod's TCP table"), "{msg}");
        let msg =
            over_ssh(&dir.path().join("no-ssh"), Path::new("/x"), &name, &[]).await.unwrap_err().to_string();
        assert!(msg.contains("cannot run"), "{msg}");
    }
}
