//! In-memory store of the SSH public keys users registered through the HTTP API.
//!
//! Keys live only as long as the agent process: a pod restart forgets them, and
//! users re-register with `sandbox-forward ssh-setup`.
//!
//! Each key remembers who registered it, and the store remembers each such subject's groups as
//! last seen on a request. The SSH server accepts a key only while the [`AccessPolicy`] still
//! admits that owner; a request the policy refuses drops the subject's keys ([`AuthorizedKeys::forget`]).
//! What a registration may cost is bounded ([`KeyLimits`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

use crate::access::{AccessPolicy, Untrusted};

/// Why a submitted public key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    /// The line was empty or only whitespace.
    #[error("empty public key")]
    Empty,
    /// The line held more than one line of text; exactly one key is expected.
    #[error("public key must be a single line")]
    MultipleLines,
    /// The line is longer than any key we accept.
    #[error("public key line longer than {0} bytes")]
    LineTooLong(usize),
    /// The line is not an OpenSSH public key (`<type> <base64> [comment]`).
    #[error("unparseable public key: {0}")]
    Unparseable(String),
    /// A key type the SSH server does not accept (DSA, certificates, unknown algorithms).
    #[error("unsupported key type {0}; use ssh-ed25519, ecdsa-sha2-* or ssh-rsa")]
    UnsupportedType(String),
    /// An RSA modulus beyond [`KeyLimits::max_rsa_bits`].
    #[error("RSA key of {bits} bits is larger than the {max} bits accepted; use an ed25519 key")]
    RsaTooLarge {
        /// The key's size.
        bits: u32,
        /// The limit.
        max: u32,
    },
}

/// Why a key was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// The key itself was refused.
    #[error(transparent)]
    Invalid(#[from] InvalidKey),
    /// The store holds [`KeyLimits::total`] keys already.
    #[error("this sandbox holds {0} SSH keys already (the limit); restart it to clear them")]
    Full(usize),
}

/// What registrations may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Keys kept per subject; registering one more evicts that subject's oldest key (clients
    /// rotate keys with every `ssh-setup`, and keys are never deleted otherwise).
    pub per_subject: usize,
    /// Keys kept in all; beyond it a registration of a new key is refused.
    pub total: usize,
    /// Largest RSA modulus accepted, in bits.
    pub max_rsa_bits: u32,
}

impl KeyLimits {
    /// Longest key line accepted, in bytes: a 16384-bit RSA key is about 2.8 KB of text.
    pub const MAX_LINE: usize = 8 * 1024;
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits { per_subject: 32, total: 1024, max_rsa_bits: 16384 }
    }
}

/// One registration: the key material (comment dropped) and who registered it.
struct Entry {
    subject: String,
    key: KeyData,
}

#[derive(Default)]
struct Store {
    /// Oldest first.
    entries: Vec<Entry>,
    /// Each key owner's groups as last seen on a request.
    groups: HashMap<String, Vec<String>>,
}

/// The set of public keys allowed to log in to the embedded SSH server.
///
/// Cheap to clone: clones share the same underlying store.
#[derive(Clone, Default)]
pub struct AuthorizedKeys {
    // A std mutex is enough: it is never held across an await point.
    inner: Arc<Mutex<Store>>,
    policy: Arc<AccessPolicy>,
    limits: KeyLimits,
}

impl AuthorizedKeys {
    /// An empty store that admits every key owner, with the default [`KeyLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose keys log in only while `policy` admits their owner.
    pub fn with_policy(policy: AccessPolicy, limits: KeyLimits) -> Self {
        AuthorizedKeys { inner: Arc::default(), policy: Arc::new(policy), limits }
    }

    /// Parses an OpenSSH public key line (`"ssh-ed25519 AAAA… comment"`) and
    /// stores it under `subject` (with no groups).
    ///
    /// The same key (ignoring its comment) for the same subject is stored once.
    /// Returns `Ok(true)` if the key was newly added.
    pub fn add(&self, subject: &str, openssh_line: &str) -> Result<bool, AddError> {
        self.register(subject, &[], openssh_line)
    }

    /// Like [`add`](Self::add), recording `groups` as the subject's groups as last seen.
    ///
    /// A subject's oldest key is evicted when it holds [`KeyLimits::per_subject`] keys; a new key
    /// is refused when the store holds [`KeyLimits::total`].
    pub fn register(&self, subject: &str, groups: &[String], openssh_line: &str) -> Result<bool, AddError> {
        let key = parse_key_line(openssh_line, &self.limits)?;
        let mut store = self.lock();
        store.groups.insert(subject.to_owned(), groups.to_vec());
        if store.entries.iter().any(|e| e.subject == subject && e.key == *key.key_data()) {
            return Ok(false);
        }
        let own = store.entries.iter().filter(|e| e.subject == subject).count();
        if own >= self.limits.per_subject {
            let oldest = store.entries.iter().position(|e| e.subject == subject).expect("counted above");
            let evicted = store.entries.remove(oldest);
            tracing::info!(
                subject = %Untrusted(subject),
                fingerprint = %PublicKey::from(evicted.key).fingerprint(HashAlg::Sha256),
                "evicted the subject's oldest SSH key (per-subject limit)"
            );
        } else if store.entries.len() >= self.limits.total {
            return Err(AddError::Full(self.limits.total));
        }
        tracing::info!(
            subject = %Untrusted(subject),
            fingerprint = %key.fingerprint(HashAlg::Sha256),
            "registered SSH public key"
        );
        store.entries.push(Entry { subject: subject.to_owned(), key: key.key_data().clone() });
        Ok(true)
    }

    /// Records `subject`'s groups as seen on an admitted request, if it holds keys.
    pub fn seen(&self, subject: &str, groups: &[String]) {
        let mut store = self.lock();
        if let Some(known) = store.groups.get_mut(subject) {
            if known.as_slice() != groups {
                *known = groups.to_vec();
            }
        }
    }

    /// Drops every key `subject` registered; returns how many.
    pub fn forget(&self, subject: &str) -> usize {
        let mut store = self.lock();
        let before = store.entries.len();
        store.entries.retain(|e| e.subject != subject);
        store.groups.remove(subject);
        before - store.entries.len()
    }

    /// The subject that registered this key, if any, and only while the policy admits it.
    ///
    /// When several subjects registered the same key, the most recent
    /// registration wins: re-registering under a new identity is how users
    /// recover after their identity changed.
    pub fn subject_for(&self, key: &PublicKey) -> Option<String> {
        let store = self.lock();
        let entry = store.entries.iter().rev().find(|e| e.key == *key.key_data())?;
        let groups = store.groups.get(&entry.subject).map(Vec::as_slice).unwrap_or_default();
        match self.policy.check(&entry.subject, groups) {
            Ok(()) => Some(entry.subject.clone()),
            Err(_) => {
                tracing::info!(subject = %Untrusted(&entry.subject), "SSH key's owner is no longer allowed");
                None
            }
        }
    }

    /// Number of stored registrations.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key has been registered.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Every mutation leaves the store consistent before it could panic, so a poisoned lock
        // is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_key_line(line: &str, limits: &KeyLimits) -> Result<PublicKey, InvalidKey> {
    let line = line.trim();
    if line.is_empty() {
        return Err(InvalidKey::Empty);
    }
    if line.contains(['\n', '\r']) {
        return Err(InvalidKey::MultipleLines);
    }
    if line.len() > KeyLimits::MAX_LINE {
        return Err(InvalidKey::LineTooLong(KeyLimits::MAX_LINE));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        // Keep the message on one line whatever the parser says.
        let reason = e.to_string().replace(['\n', '\r'], " ");
        InvalidKey::Unparseable(reason)
    })?;
    match key.key_data() {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) | KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => {
        }
        KeyData::Rsa(rsa) if rsa.key_size() <= limits.max_rsa_bits => {}
        KeyData::Rsa(rsa) => {
            return Err(InvalidKey::RsaTooLarge { bits: rsa.key_size(), max: limits.max_rsa_bits })
        }
        other => return Err(InvalidKey::UnsupportedType(Untrusted(other.algorithm().as_str()).to_string())),
    }
    Ok(key)
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
        assert_eq!(keys.add("a", "   "), Err(InvalidKey::Empty.into()));
        assert_eq!(keys.add("a", &format!("{KEY_A}\n{KEY_B}")), Err(InvalidKey::MultipleLines.into()));
        let err = keys.add("a", "ssh-ed25519 not-base64!").unwrap_err();
        assert!(matches!(err, AddError::Invalid(InvalidKey::Unparseable(_))));
        assert!(!err.to_string().contains('\n'));
        assert!(keys.add("a", "hello").is_err());
        assert!(keys.is_empty());
    }

    fn synthetic_ed25519(seed: u8) -> String {
        let key = russh::keys::ssh_key::public::Ed25519PublicKey([seed; 32]);
        PublicKey::from(KeyData::Ed25519(key)).to_openssh().unwrap()
    }

    #[test]
    fn a_subjects_oldest_key_is_evicted_and_the_total_is_capped() {
        let limits = KeyLimits { per_subject: 2, total: 3, ..Default::default() };
        let keys = AuthorizedKeys::with_policy(AccessPolicy::default(), limits);
        let key = |seed| PublicKey::from_openssh(&synthetic_ed25519(seed)).unwrap();
        for seed in 0..3 {
            assert_eq!(keys.add("alice", &synthetic_ed25519(seed)), Ok(true));
        }
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.subject_for(&key(0)), None, "alice's oldest key was evicted");
        assert_eq!(keys.subject_for(&key(2)).as_deref(), Some("alice"));
        assert_eq!(keys.add("bob", &synthetic_ed25519(10)), Ok(true));
        assert_eq!(keys.add("carol", &synthetic_ed25519(20)), Err(AddError::Full(3)));
        assert_eq!(keys.add("bob", &synthetic_ed25519(10)), Ok(false), "a known key is no new cost");
        // A subject at its own limit still rotates: eviction makes room first.
        assert_eq!(keys.add("alice", &synthetic_ed25519(3)), Ok(true));
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn keys_log_in_only_while_their_owner_is_allowed() {
        let keys = AuthorizedKeys::with_policy(AccessPolicy::new(["root"], ["devs"]), KeyLimits::default());
        let a = PublicKey::from_openssh(KEY_A).unwrap();
        let b = PublicKey::from_openssh(KEY_B).unwrap();
        keys.register("alice", &["devs".into()], KEY_A).unwrap();
        keys.register("root", &[], KEY_B).unwrap();
        assert_eq!(keys.subject_for(&a).as_deref(), Some("alice"));
        // Alice was last seen without devs: her key stops working, root's does not.
        keys.seen("alice", &["ops".into()]);
        assert_eq!(keys.subject_for(&a), None);
        assert_eq!(keys.subject_for(&b).as_deref(), Some("root"));
        keys.seen("alice", &["devs".into()]);
        assert_eq!(keys.subject_for(&a).as_deref(), Some("alice"));
        assert_eq!(keys.forget("alice"), 1);
        assert_eq!(keys.subject_for(&a), None);
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn rsa_size_and_key_types_are_bounded() {
        let keys = AuthorizedKeys::new();
        let rsa = |bits: usize| {
            let mut n = vec![0xc5u8; bits / 8];
            n.insert(0, 0);
            let mut blob = Vec::new();
            for part in [&b"ssh-rsa"[..], &[1, 0, 1][..], &n[..]] {
                blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
                blob.extend_from_slice(part);
            }
            use base64::Engine as _;
            format!("ssh-rsa {}", base64::engine::general_purpose::STANDARD.encode(blob))
        };
        assert_eq!(keys.add("a", &rsa(16384)), Ok(true));
        assert_eq!(
            keys.add("a", &rsa(16392)),
            Err(InvalidKey::RsaTooLarge { bits: 16392, max: 16384 }.into())
        );
        assert_eq!(keys.add("a", &rsa(64 * 1024)), Err(InvalidKey::LineTooLong(KeyLimits::MAX_LINE).into()));
        let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACAZQgNtSXm+6lJvHFVA6Or6i7mjP1AHOjh4u3OvOamqDzR3j3Ff3NUH/nGdDmFxSKF5TXz5q1QUyHqt6ogn/eSFUXmiFq8u9FLhpHOdN3kSikpEfwWDjqJOIELjWqR/5fXpnkwaKOPkwuNoG6MRPTypbkVsNt0HgNTQjQjBi6Uvbs=";
        assert!(matches!(
            keys.add("a", dsa),
            Err(AddError::Invalid(InvalidKey::UnsupportedType(_)))
                | Err(AddError::Invalid(InvalidKey::Unparseable(_)))
        ));
        assert_eq!(keys.len(), 1);
    }
}
