//! Where tokens live: the OS keychain (Secret Service, macOS Keychain, Windows Credential
//! Manager) through `keyring`, or — where none is reachable (headless Linux, CI) — a 0600 file
//! under the config dir. Tokens never go anywhere else: no log line, argument or ssh config.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::name::SandboxName;

/// Keychain service name of every entry we store.
const SERVICE: &str = "sandbox-forward";

/// The tokens of one sandbox's sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// Bearer for the sandbox server.
    pub access_token: String,
    /// For silent renewal; rotated by most providers on each use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Kept for `logout` (`id_token_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// When the access token was issued, seconds since the Unix epoch.
    #[serde(default)]
    pub issued_at: u64,
    /// Access-token expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The signed-in subject, for display.
    #[serde(default)]
    pub subject: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// Whether the access token is still good for at least `margin`.
    pub fn fresh_for(&self, margin: Duration) -> bool {
        now_secs() + margin.as_secs() < self.expires_at
    }

    /// Whether the access token should be used as is: renewal starts a fifth of the token's
    /// life (at most a minute) before expiry, so a request never leaves with a token that dies
    /// on the way, and short-lived tokens are not refreshed on every use.
    pub fn usable(&self) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        self.fresh_for(Duration::from_secs((lifetime / 5).min(60)))
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Why tokens could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Keychain failure other than "no entry".
    #[error("the OS keychain failed: {0}")]
    Keychain(String),
    /// File failure.
    #[error("cannot {action} the token file {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// Stored data unreadable.
    #[error("the stored sign-in for {0} is unreadable; run `sandbox-forward login {0}`")]
    Corrupt(String),
}

/// Whose tokens: a sandbox's sign-in at one provider with one client. A sandbox that moves to
/// another issuer or client id finds nothing under its new key, so a token is only ever sent
/// where it was obtained for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    name: SandboxName,
    issuer: String,
    client_id: String,
}

impl TokenKey {
    /// The key of `name`'s sign-in with these provider settings.
    pub fn new(name: &SandboxName, issuer: &str, client_id: &str) -> TokenKey {
        TokenKey {
            name: name.clone(),
            issuer: issuer.trim().trim_end_matches('/').to_owned(),
            client_id: client_id.trim().to_owned(),
        }
    }

    /// The sandbox.
    pub fn name(&self) -> &SandboxName {
        &self.name
    }

    /// The keychain entry's account: readable in a keychain browser.
    fn account(&self) -> String {
        format!("{} ({} as {})", self.name, self.issuer, self.client_id)
    }

    /// `NAME.HASH.json`: the hash (FNV-1a, stable across builds) of issuer and client id keeps
    /// the file name safe whatever the URL holds.
    fn file_name(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.issuer.bytes().chain([0]).chain(self.client_id.bytes()) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{}.{hash:016x}.json", self.name)
    }
}

/// Which backend holds the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The OS keychain.
    Keychain,
    /// `DIR/NAME.json`, mode 0600.
    File(PathBuf),
}

/// Token storage for all sandboxes.
#[derive(Debug, Clone)]
pub struct TokenStore {
    backend: Backend,
}

static FALLBACK_SAID: AtomicBool = AtomicBool::new(false);

impl TokenStore {
    /// The keychain when it answers, else files in `dir` (said once in the log).
    pub async fn open(dir: PathBuf, prefer_keychain: bool) -> TokenStore {
        if prefer_keychain && keychain_works().await {
            return TokenStore { backend: Backend::Keychain };
        }
        if prefer_keychain && !FALLBACK_SAID.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "no OS keychain reachable; keeping sign-in tokens in {} (mode 0600)",
                dir.display()
            );
        }
        TokenStore { backend: Backend::File(dir) }
    }

    /// A store on a fixed backend.
    pub fn with_backend(backend: Backend) -> TokenStore {
        TokenStore { backend }
    }

    /// The backend in use.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The stored tokens of a sign-in, if any.
    pub fn load(&self, key: &TokenKey) -> Result<Option<TokenSet>, StoreError> {
        let raw = match &self.backend {
            Backend::Keychain => {
                let account = key.account();
                blocking(move || match keyring::Entry::new(SERVICE, &account)?.get_password() {
                    Ok(s) => Ok(Some(s)),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(e),
                })
                .await_sync()?
            }
            Backend::File(dir) => {
                let path = dir.join(key.file_name());
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(s),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => return Err(StoreError::Io { action: "read", path, source }),
                }
            }
        };
        raw.map(|s| serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(key.name.to_string())))
            .transpose()
    }

    /// Stores (replaces) a sign-in's tokens.
    pub fn save(&self, key: &TokenKey, tokens: &TokenSet) -> Result<(), StoreError> {
        let json = serde_json::to_string(tokens).expect("token sets serialise");
        match &self.backend {
            Backend::Keychain => {
                let account = key.account();
                blocking(move || keyring::Entry::new(SERVICE, &account)?.set_password(&json)).await_sync()
            }
            Backend::File(dir) => {
                let path = dir.join(key.file_name());
                let io = |action, source| StoreError::Io { action, path: path.clone(), source };
                fsutil::create_private_dir(dir).map_err(|e| io("create the directory of", e))?;
                fsutil::write_private(&path, json.as_bytes()).map_err(|e| io("write", e))
            }
        }
    }

    /// Deletes a sign-in's tokens; true if there were any.
    pub fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Keychain => {
                let account = key.account();
                blocking(move || match keyring::Entry::new(SERVICE, &account)?.delete_credential() {
                    Ok(()) => Ok(true),
                    Err(keyring::Error::NoEntry) => Ok(false),
                    Err(e) => Err(e),
                })
                .await_sync()
            }
            Backend::File(dir) => {
                let path = dir.join(key.file_name());
                fsutil::remove_file(&path).map_err(|source| StoreError::Io { action: "remove", path, source })
            }
        }
    }

    /// Deletes what versions before [`TokenKey`] stored under the sandbox name alone (keychain
    /// account `NAME`, file `NAME.json`): such tokens cannot say which provider they came from,
    /// so they are never used, only removed. True if there was any.
    pub fn delete_unkeyed(&self, name: &SandboxName) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Keychain => {
                let account = name.to_string();
                blocking(move || match keyring::Entry::new(SERVICE, &account)?.delete_credential() {
                    Ok(()) => Ok(true),
                    Err(keyring::Error::NoEntry) => Ok(false),
                    Err(e) => Err(e),
                })
                .await_sync()
            }
            Backend::File(dir) => {
                let path = dir.join(format!("{name}.json"));
                fsutil::remove_file(&path).map_err(|source| StoreError::Io { action: "remove", path, source })
            }
        }
    }

    /// Where this store keeps a sign-in's tokens, for `status`: the keychain entry or the file.
    pub fn describe(&self, key: &TokenKey) -> String {
        match &self.backend {
            Backend::Keychain => {
                format!("the OS keychain (service {SERVICE:?}, account {:?})", key.account())
            }
            Backend::File(dir) => format!("the file {} (mode 0600)", dir.join(key.file_name()).display()),
        }
    }
}

/// A keychain call. Secret Service calls block on D-Bus: run them where blocking is allowed.
struct Blocking<T>(std::thread::JoinHandle<Result<T, keyring::Error>>);

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, keyring::Error> + Send + 'static,
) -> Blocking<T> {
    let handle = tokio::runtime::Handle::try_current().ok();
    Blocking(std::thread::spawn(move || {
        // zbus (tokio flavour) needs a runtime context even for its blocking API.
        let _guard = handle.as_ref().map(|h| h.enter());
        f()
    }))
}

impl<T> Blocking<T> {
    fn await_sync(self) -> Result<T, StoreError> {
        self.0
            .join()
            .map_err(|_| StoreError::Keychain("keychain thread panicked".into()))?
            .map_err(|e| StoreError::Keychain(e.to_string()))
    }
}

/// Whether the OS keychain answers at all (a lookup of an entry that does not exist).
async fn keychain_works() -> bool {
    let probe = tokio::task::spawn_blocking(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = tokio::runtime::Handle::try_current().ok();
        std::thread::spawn(move || {
            let _guard = handle.as_ref().map(|h| h.enter());
            let r = keyring::Entry::new(SERVICE, "__probe__").and_then(|e| e.get_password());
            let _ = tx.send(matches!(r, Ok(_) | Err(keyring::Error::NoEntry)));
        });
        // A Secret Service that never answers must not hang every ProxyCommand.
        rx.recv_timeout(Duration::from_secs(3)).unwrap_or(false)
    });
    probe.await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&SandboxName::new("sb").unwrap(), "https://id.example.com/", "cli")
    }

    #[test]
    fn unkeyed_tokens_of_older_versions_are_never_used_only_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::with_backend(Backend::File(dir.path().to_owned()));
        let old = dir.path().join("sb.json");
        std::fs::write(&old, serde_json::to_string(&tokens()).unwrap()).unwrap();
        assert_eq!(store.load(&key()).unwrap(), None);
        assert!(store.delete_unkeyed(key().name()).unwrap());
        assert!(!old.exists());
    }

    #[test]
    fn tokens_are_keyed_by_issuer_and_client_as_well_as_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::with_backend(Backend::File(dir.path().to_owned()));
        let sb = SandboxName::new("sb").unwrap();
        store.save(&key(), &tokens()).unwrap();
        // The same provider written differently is the same sign-in.
        assert!(store.load(&TokenKey::new(&sb, " https://id.example.com", "cli")).unwrap().is_some());
        for other in [
            TokenKey::new(&sb, "https://evil.example.com", "cli"),
            TokenKey::new(&sb, "https://id.example.com", "other-client"),
            TokenKey::new(&SandboxName::new("sb2").unwrap(), "https://id.example.com", "cli"),
        ] {
            assert_eq!(store.load(&other).unwrap(), None, "{other:?}");
            assert_ne!(other.file_name(), key().file_name());
        }
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "at-secret".into(),
            refresh_token: Some("rt-secret".into()),
            id_token: None,
            issued_at: now_secs(),
            expires_at: now_secs() + 100,
            subject: "alice".into(),
        }
    }

    #[test]
    fn file_backend_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::with_backend(Backend::File(dir.path().join("tokens")));
        let name = key();
        assert_eq!(store.load(&name).unwrap(), None);
        store.save(&name, &tokens()).unwrap();
        assert_eq!(store.load(&name).unwrap(), Some(tokens()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("tokens").join(name.file_name());
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(store.describe(&name).contains(&name.file_name()));
        assert!(store.delete(&name).unwrap());
        assert_eq!(store.load(&name).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_is_0600_after_saving_over_a_0644_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::with_backend(Backend::File(dir.path().to_owned()));
        let name = key();
        let path = dir.path().join(name.file_name());
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&name, &tokens()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn debug_shows_no_token() {
        let s = format!("{:?}", tokens());
        assert!(!s.contains("secret"), "{s}");
    }

    #[test]
    fn freshness_uses_a_margin() {
        let t = tokens();
        assert!(t.fresh_for(Duration::from_secs(30)));
        assert!(!t.fresh_for(Duration::from_secs(300)));
        assert!(t.usable());
        let short = TokenSet { issued_at: now_secs() - 4, expires_at: now_secs() + 1, ..t };
        assert!(!short.usable(), "within the last fifth of its life");
    }
}
