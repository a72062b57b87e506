//! Sandbox profiles: what `ssh-setup` learnt about a sandbox (server URL, auth settings), kept
//! so that the ProxyCommand in `~/.ssh/config` names only the sandbox and carries no secret.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::Endpoint;
use crate::auth::Credentials;
use crate::forwards::PortForward;
use crate::fsutil;
use crate::ide::DEFAULT_REMOTE_FOLDER;
use crate::name::SandboxName;
use crate::net::TlsSettings;
use crate::oidc::OidcSettings;
use crate::server::{ServerUrl, ServerUrlError};

/// One sandbox's settings, stored as TOML (mode 0600: it may hold a token or cookie).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Base URL of the sandbox server.
    pub server: String,
    /// Extra trusted CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// How to authenticate.
    #[serde(default)]
    pub credentials: Credentials,
    /// OpenID sign-in, when the sandbox uses it (the token comes from the token store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
    /// Port forwards the user configured for this sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<PortForward>,
    /// `--allow-insecure-http`: an `http://` server or issuer off loopback may see the
    /// credentials in cleartext (refused otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// The folder in the sandbox that "Open in IDE" opens (absolute; default `/workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_folder: Option<String>,
}

impl Profile {
    /// The endpoint these settings describe, without a sign-in attached
    /// (see [`crate::setup::Installation::endpoint`]).
    pub fn endpoint(&self) -> Result<Endpoint, ServerUrlError> {
        Ok(Endpoint {
            server: ServerUrl::parse(&self.server)?,
            credentials: self.credentials.clone(),
            tls: self.tls(),
            bearer: None,
        })
    }

    /// Whether `other` names the same server (compared as parsed URLs, so `host` and
    /// `https://host/` are the same): a secret stored for one server may only be kept for it.
    pub fn same_server(&self, other: &Profile) -> bool {
        match (ServerUrl::parse(&self.server), ServerUrl::parse(&other.server)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// The hosts off this machine that these settings reach over plain `http://` (server,
    /// issuer): each would see the credentials in cleartext.
    pub fn cleartext_hosts(&self) -> Vec<String> {
        let server = ServerUrl::parse(&self.server).ok().map(|s| s.endpoint("/"));
        let issuer = self.oidc.as_ref().and_then(|o| url::Url::parse(&o.issuer).ok());
        let mut hosts: Vec<String> = [server, issuer]
            .into_iter()
            .flatten()
            .filter(|u| crate::net::is_cleartext(u) && !crate::net::is_loopback(u))
            .filter_map(|u| u.host_str().map(str::to_owned))
            .collect();
        hosts.dedup();
        hosts
    }

    /// Refuses settings that would send credentials in cleartext off loopback, unless
    /// `allow_insecure_http` is set: checked before anything is saved or signed in.
    pub fn check_cleartext(&self) -> Result<(), crate::net::NetError> {
        let tls = self.tls();
        let server = ServerUrl::parse(&self.server).ok().map(|s| s.endpoint("/"));
        if let Some(url) = server {
            tls.check_cleartext(&url, "the sandbox server")?;
        }
        if let Some(url) = self.oidc.as_ref().and_then(|o| url::Url::parse(&o.issuer).ok()) {
            tls.check_cleartext(&url, "the OpenID issuer")?;
        }
        Ok(())
    }

    /// The folder "Open in IDE" opens: the stored one, else [`DEFAULT_REMOTE_FOLDER`].
    pub fn remote_folder(&self) -> &str {
        self.remote_folder.as_deref().unwrap_or(DEFAULT_REMOTE_FOLDER)
    }

    /// TLS trust settings.
    pub fn tls(&self) -> TlsSettings {
        TlsSettings { ca_file: self.ca_file.clone(), allow_insecure_http: self.allow_insecure_http }
    }
}

/// Why a profile could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile for that name.
    #[error(
        "no sandbox named {0:?} is set up here; run `sandbox-forward ssh-setup {0} --server URL …` first"
    )]
    Missing(String),
    /// The TOML is broken.
    #[error(
        "the settings file {path} is corrupt ({detail}); fix it or run `sandbox-forward ssh-setup` again"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// File system failure.
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

/// The directory of profiles, one `NAME.toml` each (one file per sandbox: no write races
/// between sandboxes).
#[derive(Debug, Clone)]
pub struct ProfileStore {
    dir: PathBuf,
}

impl ProfileStore {
    /// A store in `dir` (see [`crate::paths::Paths::profiles_dir`]).
    pub fn new(dir: PathBuf) -> Self {
        ProfileStore { dir }
    }

    fn path(&self, name: &SandboxName) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Loads a profile; `Missing` when there is none.
    pub fn load(&self, name: &SandboxName) -> Result<Profile, ProfileError> {
        let path = self.path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProfileError::Missing(name.to_string()))
            }
            Err(source) => return Err(ProfileError::Io { action: "read", path, source }),
        };
        toml::from_str(&text).map_err(|e| ProfileError::Corrupt { path, detail: e.message().to_owned() })
    }

    /// Writes a profile atomically with mode 0600.
    pub fn save(&self, name: &SandboxName, profile: &Profile) -> Result<(), ProfileError> {
        let path = self.path(name);
        let io = |action, source| ProfileError::Io { action, path: self.dir.clone(), source };
        fsutil::create_private_dir(&self.dir).map_err(|e| io("create", e))?;
        let text = toml::to_string_pretty(profile).expect("profiles always serialise");
        fsutil::write_private(&path, text.as_bytes()).map_err(|e| io("write", e))
    }

    /// Deletes a profile; true if it existed.
    pub fn remove(&self, name: &SandboxName) -> Result<bool, ProfileError> {
        let path = self.path(name);
        fsutil::remove_file(&path).map_err(|source| ProfileError::Io { action: "remove", path, source })
    }

    /// Names of all stored profiles, sorted.
    pub fn names(&self) -> Vec<SandboxName> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                SandboxName::new(file.strip_suffix(".toml")?).ok()
            })
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().join("sandboxes"));
        let name = SandboxName::new("b").unwrap();
        assert!(matches!(store.load(&name), Err(ProfileError::Missing(_))));
        let p = Profile {
            server: "https://x".into(),
            ca_file: None,
            credentials: Credentials { cookies: vec![("a".into(), "b".into())], ..Default::default() },
            oidc: Some(OidcSettings {
                issuer: "https://id.example.com".into(),
                client_id: "cli".into(),
                scopes: vec!["openid".into()],
                audience: None,
            }),
            forwards: vec![PortForward {
                remote_port: 5173,
                local_port: 8080,
                label: "vite".into(),
                auto_start: true,
            }],
            remote_folder: Some("/home/sandbox/my proj".into()),
            allow_insecure_http: true,
        };
        store.save(&name, &p).unwrap();
        assert_eq!(store.load(&name).unwrap(), p);
        assert_eq!(store.names(), vec![name.clone()]);
        assert!(store.remove(&name).unwrap());
        assert!(store.names().is_empty());
    }

    #[test]
    fn cleartext_off_loopback_needs_the_explicit_allowance() {
        let oidc = |issuer: &str| OidcSettings {
            issuer: issuer.into(),
            client_id: "c".into(),
            scopes: vec![],
            audience: None,
        };
        let local = Profile { server: "http://127.0.0.1:9".into(), ..Default::default() };
        assert!(local.check_cleartext().is_ok() && local.cleartext_hosts().is_empty());
        let remote_issuer = Profile { oidc: Some(oidc("http://id.example.com/realm")), ..local.clone() };
        assert!(remote_issuer.check_cleartext().unwrap_err().to_string().contains("OpenID issuer"));
        assert_eq!(remote_issuer.cleartext_hosts(), ["id.example.com"]);
        let remote = Profile { server: "http://sandbox.example.com".into(), ..Default::default() };
        assert!(remote.check_cleartext().unwrap_err().to_string().contains("--allow-insecure-http"));
        let allowed = Profile { allow_insecure_http: true, ..remote };
        assert!(allowed.check_cleartext().is_ok());
        assert_eq!(allowed.cleartext_hosts(), ["sandbox.example.com"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_profile_is_0600_after_saving_over_a_0644_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().to_owned());
        let name = SandboxName::new("b").unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, "server = \"https://x\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cookie = Credentials { cookies: vec![("sid".into(), "secret".into())], ..Default::default() };
        store
            .save(&name, &Profile { server: "https://x".into(), credentials: cookie, ..Default::default() })
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn remote_folder_defaults_to_workspace_and_is_only_written_when_set() {
        let old: Profile = toml::from_str("server = \"https://x\"\n").unwrap();
        assert_eq!(old.remote_folder, None);
        assert_eq!(old.remote_folder(), "/workspace");
        assert!(!toml::to_string(&old).unwrap().contains("remote_folder"));
        let set = Profile { remote_folder: Some("/srv/app".into()), ..old };
        assert_eq!(set.remote_folder(), "/srv/app");
        assert!(toml::to_string(&set).unwrap().contains("remote_folder = \"/srv/app\""));
    }
}
