//! In-memory store of the SSH public keys users registered through the HTTP API.
//!
//! Keys live only as long as the agent process: a pod restart forgets them, and
//! users re-register with `sandbox-forward ssh-setup`.

use std::sync::{Arc, Mutex, MutexGuard};

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

/// Why a submitted public key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    /// The line was empty or only whitespace.
    #[error("empty public key")]
    Empty,
    /// The line held more than one line of text; exactly one key is expected.
    #[error("public key must be a single line")]
    MultipleLines,
    /// The line is not an OpenSSH public key (`<type> <base64> [comment]`).
    #[error("unparseable public key: {0}")]
    Unparseable(String),
}

/// One registration: the key material (comment dropped) and who registered it.
struct Entry {
    subject: String,
    key: KeyData,
}

/// The set of public keys allowed to log in to the embedded SSH server.
///
/// Cheap to clone: clones share the same underlying store.
#[derive(Clone, Default)]
pub struct AuthorizedKeys {
    // A std mutex is enough: it is never held across an await point.
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl AuthorizedKeys {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses an OpenSSH public key line (`"ssh-ed25519 AAAA… comment"`) and
    /// stores it under `subject`.
    ///
    /// The same key (ignoring its comment) for the same subject is stored once.
    /// Returns `Ok(true)` if the key was newly added.
    pub fn add(&self, subject: &str, openssh_line: &str) -> Result<bool, InvalidKey> {
        let key = parse_key_line(openssh_line)?;
        let mut entries = self.lock();
        if entries.iter().any(|e| e.subject == subject && e.key == *key.key_data()) {
            return Ok(false);
        }
        tracing::info!(
            subject,
            fingerprint = %key.fingerprint(HashAlg::Sha256),
            "registered SSH public key"
        );
        entries.push(Entry { subject: subject.to_owned(), key: key.key_data().clone() });
        Ok(true)
    }

    /// The subject that registered this key, if any.
    ///
    /// When several subjects registered the same key, the most recent
    /// registration wins: re-registering under a new identity is how users
    /// recover after their identity changed.
    pub fn subject_for(&self, key: &PublicKey) -> Option<String> {
        self.lock().iter().rev().find(|e| e.key == *key.key_data()).map(|e| e.subject.clone())
    }

    /// Number of stored registrations.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key has been registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock cannot leave the Vec half-updated
        // (push is the only mutation), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_key_line(line: &str) -> Result<PublicKey, InvalidKey> {
    let line = line.trim();
    if line.is_empty() {
        return Err(InvalidKey::Empty);
    }
    if line.contains(['\n', '\r']) {
        return Err(InvalidKey::MultipleLines);
    }
    PublicKey::from_openssh(line).map_err(|e| {
        // Keep the message on one line whatever the parser says.
        let reason = e.to_string().replace(['\n', '\r'], " ");
        InvalidKey::Unparseable(reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIxW9pQgz6FpIcX1nzx2LQ/jXpuo1Fe2qsjFHQvMwhoW alice@laptop";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDkLxWQKHLrgwlX9LvqXI6k/5578X5OCFPRXJgIHfkwf";

    #[test]
    fn add_dedups_same_key_for_same_subject_ignoring_comment() {
        let keys = AuthorizedKeys::new();
        assert!(keys.is_empty());
        assert_eq!(keys.add("alice", KEY_A), Ok(true));
        let recommented = KEY_A.replace("alice@laptop", "other comment");
        assert_eq!(keys.add("alice", &recommented), Ok(false));
        assert_eq!(keys.add("alice", &format!("  {KEY_A}\n")), Ok(false));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.add("alice", KEY_B), Ok(true));
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn subject_for_returns_latest_registrant() {
        let keys = AuthorizedKeys::new();
        keys.add("alice", KEY_A).unwrap();
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        let b = PublicKey::from_openssh(KEY_B).unwrap();
        assert_eq!(keys.subject_for(&a).as_deref(), Some("alice"));
        assert_eq!(keys.subject_for(&b), None);
        assert_eq!(keys.add("bob", KEY_A), Ok(true));
        assert_eq!(keys.subject_for(&a).as_deref(), Some("bob"));
    }

    #[test]
    fn rejects_garbage() {
        let keys = AuthorizedKeys::new();
        assert_eq!(keys.add("a", "   "), Err(InvalidKey::Empty));
        assert_eq!(keys.add("a", &format!("{KEY_A}\n{KEY_B}")), Err(InvalidKey::MultipleLines));
        let err = keys.add("a", "ssh-ed25519 not-base64!").unwrap_err();
        assert!(matches!(err, InvalidKey::Unparseable(_)));
        assert!(!err.to_string().contains('\n'));
        assert!(keys.add("a", "hello").is_err());
        assert!(keys.is_empty());
    }
}
