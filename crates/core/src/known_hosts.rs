//! The per-sandbox `known_hosts` file that pins the pod's SSH host key.
//!
//! The pod makes a fresh host key at every start, so there is nothing to pin across restarts;
//! instead our agent hands its current key out over the authenticated TLS channel
//! (`/api/ssh-port`), and `proxy --ssh` writes it here before ssh sees a byte. ssh then checks
//! it strictly under `HostKeyAlias NAME`.

use std::path::Path;

use crate::fsutil;
use crate::name::SandboxName;

/// Why a host key could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// The server sent something that is not an OpenSSH public key.
    #[error("the sandbox sent an invalid SSH host key ({0}); is this a sandbox server?")]
    InvalidKey(String),
    /// The file could not be written.
    #[error("cannot write the pinned host key {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// Normalises a host key from the server to `algorithm base64` (comment dropped), rejecting
/// anything that is not a well-formed key: the line is written into a file ssh parses.
pub fn normalise(host_key: &str) -> Result<String, KnownHostsError> {
    let key = ssh_key::PublicKey::from_openssh(host_key.trim())
        .map_err(|e| KnownHostsError::InvalidKey(e.to_string()))?;
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh().map(|s| s.trim().to_owned()).map_err(|e| KnownHostsError::InvalidKey(e.to_string()))
}

/// The host key currently pinned for `alias`, if any (normalised).
pub fn pinned(path: &Path, alias: &SandboxName) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (host, key) = line.split_once(' ')?;
        (host == alias.as_str()).then(|| normalise(key).ok()).flatten()
    })
}

/// Replaces the file with the single line `alias key` (mode 0600).
pub fn pin(path: &Path, alias: &SandboxName, host_key: &str) -> Result<(), KnownHostsError> {
    let key = normalise(host_key)?;
    let io = |source| KnownHostsError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir).map_err(io)?;
    }
    fsutil::write_atomic(path, format!("{alias} {key}\n").as_bytes(), 0o600).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ8fBLAmfJ3oKbxLbYx0ixJ0KCb8whrMPmBthzdvHKX";

    #[test]
    fn pin_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kh").join("box");
        let name = SandboxName::new("box").unwrap();
        assert_eq!(pinned(&p, &name), None);
        pin(&p, &name, &format!("{KEY} root@pod")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("box {KEY}\n"));
        assert_eq!(pinned(&p, &name).as_deref(), Some(KEY));
    }

    #[test]
    fn refuses_lines_that_could_inject() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box");
        let name = SandboxName::new("box").unwrap();
        assert!(pin(&p, &name, &format!("{KEY}\n* ssh-ed25519 AAAA")).is_err());
        assert!(pin(&p, &name, "not a key").is_err());
        assert!(!p.exists());
    }
}
