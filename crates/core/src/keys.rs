//! Per-sandbox SSH keypairs: generated here, private half never leaves the machine.
//!
//! Rotation is staged: the new pair is written beside the old one under temporary names, and
//! only [`StagedKey::commit`] (called after the server accepted the public key) renames it into
//! place. A failed registration therefore leaves the old, still-working key untouched.

use std::path::{Path, PathBuf};

use ssh_key::{LineEnding, PrivateKey};

use crate::fsutil;
use crate::ide::Os;
use crate::name::SandboxName;
use crate::paths::Paths;

/// Why a keypair could not be made, read or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation or encoding failed.
    #[error("cannot generate an ed25519 key: {0}")]
    Generate(String),
    /// A file could not be written or read.
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// The stored public key is unparseable.
    #[error("the public key {path} is corrupt ({detail}); run `sandbox-forward ssh-setup NAME …` again to replace it")]
    Corrupt { path: PathBuf, detail: String },
}

/// A freshly generated keypair written under temporary names, not yet in place.
#[derive(Debug)]
pub struct StagedKey {
    private_tmp: PathBuf,
    public_tmp: PathBuf,
    private: PathBuf,
    public: PathBuf,
    public_line: String,
    committed: bool,
}

impl StagedKey {
    /// Generates an ed25519 pair for `name` and writes it beside the final location.
    pub fn generate(paths: &Paths, name: &SandboxName, comment: &str) -> Result<Self, KeyError> {
        let dir = paths.keys_dir();
        fsutil::create_private_dir(&dir).map_err(|source| KeyError::Io {
            action: "create the key directory",
            path: dir.clone(),
            source,
        })?;
        let mut key = PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        key.set_comment(comment);
        let private_pem = key.to_openssh(LineEnding::LF).map_err(|e| KeyError::Generate(e.to_string()))?;
        let public_line = key.public_key().to_openssh().map_err(|e| KeyError::Generate(e.to_string()))?;

        let private = paths.private_key(name);
        let public = paths.public_key(name);
        let private_tmp = dir.join(format!(".{name}.new"));
        let public_tmp = dir.join(format!(".{name}.pub.new"));
        write(&private_tmp, private_pem.as_bytes(), 0o600)?;
        write(&public_tmp, format!("{public_line}\n").as_bytes(), 0o644)?;
        Ok(StagedKey { private_tmp, public_tmp, private, public, public_line, committed: false })
    }

    /// The OpenSSH public key line to register (`ssh-ed25519 AAAA… comment`).
    pub fn public_line(&self) -> &str {
        &self.public_line
    }

    /// Moves the pair into place, replacing any previous key of the sandbox.
    pub fn commit(mut self) -> Result<(), KeyError> {
        rename(&self.private_tmp, &self.private)?;
        rename(&self.public_tmp, &self.public)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedKey {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fsutil::remove_file(&self.private_tmp);
            let _ = fsutil::remove_file(&self.public_tmp);
        }
    }
}

/// The comment of a new key, `sandbox-forward:USER@HOST`, so the pod's key list says whose
/// machine a key is on. The caller passes the environment: `var` looks up a variable and
/// `etc_hostname` reads `/etc/hostname`. The machine's name is `COMPUTERNAME` on Windows (a
/// Windows path `/etc/hostname` means nothing, or under Wine the Linux host's name), else
/// `/etc/hostname`, then `COMPUTERNAME`; the user is `USERNAME` on Windows, else `USER`.
pub fn default_comment(
    os: Os,
    var: impl Fn(&str) -> Option<String>,
    etc_hostname: impl FnOnce() -> Option<String>,
) -> String {
    let clean = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let var = |name: &str| clean(var(name));
    let (user, host) = match os {
        Os::Windows => (var("USERNAME").or_else(|| var("USER")), var("COMPUTERNAME")),
        Os::Linux | Os::MacOs => {
            (var("USER").or_else(|| var("USERNAME")), clean(etc_hostname()).or_else(|| var("COMPUTERNAME")))
        }
    };
    let user = user.unwrap_or_else(|| "user".into());
    let host = host.unwrap_or_else(|| "localhost".into());
    format!("sandbox-forward:{user}@{host}")
}

/// Reads a sandbox's public key line, if the pair exists.
pub fn read_public(paths: &Paths, name: &SandboxName) -> Result<Option<String>, KeyError> {
    let path = paths.public_key(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::Io { action: "read", path, source }),
    };
    let key = ssh_key::PublicKey::from_openssh(text.trim())
        .map_err(|e| KeyError::Corrupt { path: path.clone(), detail: e.to_string() })?;
    let line = key.to_openssh().map_err(|e| KeyError::Corrupt { path, detail: e.to_string() })?;
    Ok(Some(line))
}

/// Whether both halves of a sandbox's keypair exist.
pub fn exists(paths: &Paths, name: &SandboxName) -> bool {
    paths.private_key(name).is_file() && paths.public_key(name).is_file()
}

/// Deletes a sandbox's keypair; true if anything was removed.
pub fn remove(paths: &Paths, name: &SandboxName) -> Result<bool, KeyError> {
    let mut removed = false;
    for path in [paths.private_key(name), paths.public_key(name)] {
        removed |= fsutil::remove_file(&path).map_err(|source| KeyError::Io {
            action: "remove",
            path: path.clone(),
            source,
        })?;
    }
    Ok(removed)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    // The private half is forced to 0600 even over a stale staging file with looser bits.
    let written = if mode & 0o077 == 0 {
        fsutil::write_private(path, bytes)
    } else {
        fsutil::write_atomic(path, bytes, mode)
    };
    written.map_err(|source| KeyError::Io { action: "write", path: path.to_owned(), source })
}

fn rename(from: &Path, to: &Path) -> Result<(), KeyError> {
    std::fs::rename(from, to).map_err(|source| KeyError::Io {
        action: "move the new key to",
        path: to.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths, SandboxName) {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::from_home(home.path());
        (home, paths, SandboxName::new("box").unwrap())
    }

    #[test]
    fn commit_puts_a_valid_private_pair_in_place() {
        let (_home, paths, name) = setup();
        let staged = StagedKey::generate(&paths, &name, "me@laptop").unwrap();
        let line = staged.public_line().to_owned();
        assert!(line.starts_with("ssh-ed25519 ") && line.ends_with(" me@laptop"));
        staged.commit().unwrap();
        assert_eq!(read_public(&paths, &name).unwrap().unwrap(), line);
        let private = PrivateKey::read_openssh_file(&paths.private_key(&name)).unwrap();
        assert_eq!(private.public_key().to_openssh().unwrap(), line);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&paths.private_key(&name)), 0o600);
            assert_eq!(mode(&paths.keys_dir()), 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_private_key_is_0600_even_over_a_stale_0644_file() {
        use std::os::unix::fs::PermissionsExt;
        let (_home, paths, name) = setup();
        crate::fsutil::create_private_dir(&paths.keys_dir()).unwrap();
        // A stale staging file from an interrupted run, and an old key, both world-readable.
        for stale in [paths.keys_dir().join(".box.new"), paths.private_key(&name)] {
            std::fs::write(&stale, "old").unwrap();
            std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        StagedKey::generate(&paths, &name, "me").unwrap().commit().unwrap();
        let mode = std::fs::metadata(paths.private_key(&name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_comment_names_the_user_and_machine_of_each_os() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let both = env(&[("USER", "root"), ("USERNAME", "Ann"), ("COMPUTERNAME", "ANN-PC")]);
        // Windows: never /etc/hostname (under Wine it is the Linux host's file).
        let mut read = false;
        let windows = default_comment(Os::Windows, both, || {
            read = true;
            Some("linux-box\n".into())
        });
        assert_eq!(windows, "sandbox-forward:Ann@ANN-PC");
        assert!(!read);
        assert_eq!(
            default_comment(Os::Linux, both, || Some("linux-box\n".into())),
            "sandbox-forward:root@linux-box"
        );
        assert_eq!(default_comment(Os::Linux, both, || Some(" \n".into())), "sandbox-forward:root@ANN-PC");
        assert_eq!(default_comment(Os::MacOs, env(&[]), || None), "sandbox-forward:user@localhost");
        assert_eq!(
            default_comment(Os::Windows, env(&[("USER", "bob"), ("COMPUTERNAME", "")]), || None),
            "sandbox-forward:bob@localhost"
        );
    }

    #[test]
    fn an_uncommitted_rotation_leaves_the_old_key_and_no_debris() {
        let (_home, paths, name) = setup();
        StagedKey::generate(&paths, &name, "old").unwrap().commit().unwrap();
        let old = read_public(&paths, &name).unwrap();
        drop(StagedKey::generate(&paths, &name, "new").unwrap());
        assert_eq!(read_public(&paths, &name).unwrap(), old);
        assert_eq!(std::fs::read_dir(paths.keys_dir()).unwrap().count(), 2);
    }
}
