//! The user-level operations on a sandbox — set up, forget, list, status, doctor — composed
//! from the single-purpose modules. Both faces (CLI and app) call these and nothing below.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::api::{ApiClient, ApiError, Endpoint};
use crate::forwards::{PortForward, SpecError};
use crate::keys::{self, KeyError, StagedKey};
use crate::known_hosts::{self, KnownHostsError};
use crate::name::SandboxName;
use crate::oidc::token_store::TokenStore;
use crate::oidc::{OidcError, Session};
use crate::paths::Paths;
use crate::profile::{Profile, ProfileError, ProfileStore};
use crate::server::ServerUrlError;
use crate::ssh_config::{
    proxy_command, HostBlock, HostKeyPolicy, IncludeState, IncludeStatus, LegacyMoved, Platform,
    SshConfigEditor, SshConfigError,
};
use crate::ssh_proxy::HostPin;

/// `ServerAliveInterval` written into every block: ssh notices a dead tunnel within ~90 s.
pub const SERVER_ALIVE_INTERVAL: u32 = 30;

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Bad server URL.
    #[error(transparent)]
    Server(#[from] ServerUrlError),
    /// The API refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Key files.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Pinned host key.
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    /// Profile files.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// `~/.ssh/config` or our included file.
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    /// Signing in or out.
    #[error(transparent)]
    SignIn(#[from] OidcError),
    /// A forward's settings.
    #[error(transparent)]
    Forward(#[from] SpecError),
    /// The end-to-end check of the tunnel failed.
    #[error("the SSH tunnel does not work: {0}")]
    Tunnel(#[from] crate::ssh_proxy::SshProxyError),
}

/// The local installation: where files are, and the binary ssh should run as ProxyCommand.
#[derive(Debug, Clone)]
pub struct Installation {
    /// File locations.
    pub paths: Paths,
    /// Absolute path of the `sandbox-forward` binary (see [`stable_binary_path`]).
    pub binary: PathBuf,
    /// Quoting rules for the ProxyCommand.
    pub platform: Platform,
    /// Keep sign-in tokens in the OS keychain when one answers (else in 0600 files).
    pub prefer_keychain: bool,
}

/// What `ssh-setup` did.
#[derive(Debug, Clone)]
pub struct SetupReport {
    /// An existing key was replaced.
    pub rotated: bool,
    /// The pod's host key is pinned (`StrictHostKeyChecking yes`); false against servers that do
    /// not publish it.
    pub host_key_pinned: bool,
    /// What happened to the user's ssh config.
    pub include: IncludeStatus,
    /// The original tool's `Host NAME` block, moved out of the user's config (it would shadow
    /// ours, and come back to life with a deleted key on `forget`).
    pub legacy_moved: Option<LegacyMoved>,
    /// Why such a block could not be moved (the user must delete it by hand).
    pub legacy_left: Option<String>,
}

impl Installation {
    /// The ssh-config editor for this installation.
    pub fn ssh_config(&self) -> SshConfigEditor {
        SshConfigEditor::new(self.paths.ssh_config.clone(), self.paths.ssh_include())
            .with_platform(self.platform)
    }

    /// The profile store.
    pub fn profiles(&self) -> ProfileStore {
        ProfileStore::new(self.paths.profiles_dir())
    }

    /// Where sign-in tokens are kept.
    pub async fn token_store(&self) -> TokenStore {
        TokenStore::open(self.paths.tokens_dir(), self.prefer_keychain).await
    }

    /// The sign-in of a sandbox whose profile uses OpenID Connect.
    pub async fn session(&self, name: &SandboxName, profile: &Profile) -> Option<Session> {
        let settings = profile.oidc.clone()?;
        let store = self.token_store().await;
        Some(Session::new(name.clone(), settings, profile.tls(), store, self.paths.tokens_dir()))
    }

    /// The endpoint of a sandbox, with its sign-in supplying the bearer token when it has one.
    pub async fn endpoint(&self, name: &SandboxName, profile: &Profile) -> Result<Endpoint, SetupError> {
        let mut endpoint = profile.endpoint()?;
        if let Some(session) = self.session(name, profile).await {
            endpoint.bearer = Some(Arc::new(session));
        }
        Ok(endpoint)
    }

    /// Call before `new` replaces the stored profile of `name`: when the server, the issuer or
    /// the client id changes, the stored sign-in is deleted (locally: the old provider is not
    /// contacted), so no token follows the sandbox to another server. True if tokens were
    /// dropped. Cookies are the caller's to carry over or not (see [`Profile::same_server`]).
    pub async fn drop_sign_in_if_moved(&self, name: &SandboxName, new: &Profile) -> Result<bool, SetupError> {
        let old = match self.profiles().load(name) {
            Ok(old) => old,
            Err(ProfileError::Missing(_)) => return Ok(false),
            // Rewriting a corrupt profile must stay possible; its old issuer is unknown, and
            // tokens are keyed by issuer and client, so none reach another provider anyway.
            Err(e @ ProfileError::Corrupt { .. }) => {
                tracing::warn!("{e}");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let same_provider = match (&old.oidc, &new.oidc) {
            (Some(a), Some(b)) => {
                a.issuer.trim_end_matches('/') == b.issuer.trim_end_matches('/') && a.client_id == b.client_id
            }
            _ => false,
        };
        if old.same_server(new) && same_provider {
            return Ok(false);
        }
        match self.session(name, &old).await {
            Some(session) => Ok(session.forget_tokens()?),
            None => Ok(false),
        }
    }

    /// An API client for a stored sandbox.
    pub async fn client(&self, name: &SandboxName) -> Result<ApiClient, SetupError> {
        let profile = self.profiles().load(name)?;
        Ok(ApiClient::new(self.endpoint(name, &profile).await?)?)
    }

    /// The host-key pin of a stored sandbox, for `proxy --ssh --sandbox NAME`.
    pub fn host_pin(&self, name: &SandboxName) -> Result<HostPin, SetupError> {
        Ok(HostPin {
            alias: name.clone(),
            known_hosts: self.paths.known_hosts(name),
            public_key: keys::read_public(&self.paths, name)?,
            registered_port: self.paths.registered_ssh_port(name),
        })
    }

    /// Registers a fresh keypair with the sandbox and writes its `Host` block.
    ///
    /// Everything that can be checked is checked before anything is written (the ssh config's
    /// markers, the ProxyCommand, the server answering with our credentials); the new key
    /// replaces the old one only once the server has accepted it.
    pub async fn ssh_setup(
        &self,
        name: &SandboxName,
        profile: Profile,
        comment: &str,
    ) -> Result<SetupReport, SetupError> {
        let _lock = self.setup_lock(name).await?;
        self.ssh_setup_locked(name, profile, comment).await
    }

    /// Waits for (and takes) the per-sandbox lock of [`crate::paths::Paths::setup_lock`]; the
    /// wait runs on the blocking pool. Released when the returned file is dropped.
    async fn setup_lock(&self, name: &SandboxName) -> Result<std::fs::File, SetupError> {
        let path = self.paths.setup_lock(name);
        let io = |source| ProfileError::Io { action: "lock", path: path.clone(), source };
        if let Some(dir) = path.parent() {
            crate::fsutil::create_private_dir(dir).map_err(io)?;
        }
        let file =
            std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        Ok(file)
    }

    async fn ssh_setup_locked(
        &self,
        name: &SandboxName,
        profile: Profile,
        comment: &str,
    ) -> Result<SetupReport, SetupError> {
        let editor = self.ssh_config();
        if let IncludeState::Broken(e) = editor.include_state()? {
            return Err(e.into());
        }
        self.host_block(name, false)?; // validates paths before any network or disk work

        let api = ApiClient::new(self.endpoint(name, &profile).await?)?;
        let info = api.ssh_port().await?;
        let host_key = info.host_key.as_deref().map(known_hosts::normalise).transpose()?;
        crate::ssh_proxy::check_tunnel(&api, info.port).await?;

        let rotated = keys::exists(&self.paths, name);
        let staged = StagedKey::generate(&self.paths, name, comment)?;
        api.register_key(staged.public_line()).await?;
        staged.commit()?;
        self.profiles().save(name, &profile)?;
        self.pin_and_write_block(&editor, name, host_key.as_deref(), info.port, rotated)
    }

    /// Makes `ssh NAME` work for a stored sandbox, keeping its key: registers the existing
    /// public key again (a restarted pod has forgotten it), pins the current host key and writes
    /// the `Host` block. Without a key it does a full [`Installation::ssh_setup`]. This is the
    /// app's Connect and the CLI's `open`.
    pub async fn connect(&self, name: &SandboxName, comment: &str) -> Result<SetupReport, SetupError> {
        let _lock = self.setup_lock(name).await?;
        let profile = self.profiles().load(name)?;
        let public_key = match keys::read_public(&self.paths, name)? {
            Some(key) if keys::exists(&self.paths, name) => key,
            _ => return self.ssh_setup_locked(name, profile, comment).await,
        };
        let editor = self.ssh_config();
        if let IncludeState::Broken(e) = editor.include_state()? {
            return Err(e.into());
        }
        self.host_block(name, false)?;
        let api = ApiClient::new(self.endpoint(name, &profile).await?)?;
        let info = api.ssh_port().await?;
        let host_key = info.host_key.as_deref().map(known_hosts::normalise).transpose()?;
        crate::ssh_proxy::check_tunnel(&api, info.port).await?;
        api.register_key(&public_key).await?;
        self.pin_and_write_block(&editor, name, host_key.as_deref(), info.port, false)
    }

    /// The last steps of a setup, once the server holds our key: pin (or unpin) the host key,
    /// record the SSH port it was registered at, and write the block to match.
    fn pin_and_write_block(
        &self,
        editor: &SshConfigEditor,
        name: &SandboxName,
        host_key: Option<&str>,
        ssh_port: u16,
        rotated: bool,
    ) -> Result<SetupReport, SetupError> {
        let port_file = self.paths.registered_ssh_port(name);
        crate::ssh_proxy::record_registered_port(&port_file, ssh_port)
            .map_err(|source| ProfileError::Io { action: "write", path: port_file, source })?;
        let known_hosts = self.paths.known_hosts(name);
        match host_key {
            Some(key) => known_hosts::pin(&known_hosts, name, key)?,
            None => {
                let _ = crate::fsutil::remove_file(&known_hosts);
            }
        }
        let (legacy_moved, legacy_left) = match editor.move_out_legacy(name) {
            Ok(moved) => (moved, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let include = editor.upsert(&self.host_block(name, host_key.is_some())?)?;
        Ok(SetupReport { rotated, host_key_pinned: host_key.is_some(), include, legacy_moved, legacy_left })
    }

    /// Removes a sandbox's key files, pinned host key, sign-in (revoked where possible),
    /// profile and `Host` block. The managed block leaves `~/.ssh/config` with the last host.
    /// Returns whether anything existed.
    pub async fn forget(&self, name: &SandboxName) -> Result<bool, SetupError> {
        let _lock = self.setup_lock(name).await?;
        let mut found = false;
        if let Ok(profile) = self.profiles().load(name) {
            if let Some(session) = self.session(name, &profile).await {
                found |= session.logout().await?.had_tokens;
            }
        }
        found |= self.ssh_config().remove(name)?;
        found |= keys::remove(&self.paths, name)?;
        found |= crate::fsutil::remove_file(&self.paths.known_hosts(name)).unwrap_or(false);
        let _ = crate::fsutil::remove_file(&self.paths.registered_ssh_port(name));
        found |= self.profiles().remove(name)?;
        Ok(found)
    }

    /// Adds (or replaces, by remote port) a configured forward of a sandbox.
    pub fn save_forward(&self, name: &SandboxName, spec: PortForward) -> Result<(), SetupError> {
        spec.validate()?;
        let store = self.profiles();
        let mut profile = store.load(name)?;
        match profile.forwards.iter_mut().find(|f| f.remote_port == spec.remote_port) {
            Some(existing) => *existing = spec,
            None => profile.forwards.push(spec),
        }
        profile.forwards.sort_by_key(|f| f.remote_port);
        Ok(store.save(name, &profile)?)
    }

    /// Removes a configured forward; true if it existed.
    pub fn remove_forward(&self, name: &SandboxName, remote_port: u16) -> Result<bool, SetupError> {
        let store = self.profiles();
        let mut profile = store.load(name)?;
        let before = profile.forwards.len();
        profile.forwards.retain(|f| f.remote_port != remote_port);
        let removed = profile.forwards.len() != before;
        if removed {
            store.save(name, &profile)?;
        }
        Ok(removed)
    }

    /// The `Host` block this installation writes for `name`.
    pub fn host_block(&self, name: &SandboxName, pinned: bool) -> Result<HostBlock, SetupError> {
        let command =
            proxy_command(&self.binary, &["proxy", "--ssh", "--sandbox", name.as_str()], self.platform)?;
        Ok(HostBlock {
            name: name.clone(),
            proxy_command: command,
            identity_file: self.paths.private_key(name),
            host_key: if pinned {
                HostKeyPolicy::Pinned { known_hosts: self.paths.known_hosts(name) }
            } else {
                HostKeyPolicy::Unpinned
            },
            server_alive_interval: SERVER_ALIVE_INTERVAL,
        })
    }
}

/// The path ssh should run us by: the canonical path of the running binary, except inside an
/// AppImage, whose mount point (`/tmp/.mount_*`) vanishes when the app exits — there the
/// AppImage file itself (`$APPIMAGE`, passed in by the caller) is the stable path. On Windows
/// the path is a plain `C:\…` one (see [`without_verbatim_prefix`]).
pub fn stable_binary_path(current_exe: &Path, appimage: Option<&Path>) -> PathBuf {
    let exe = std::fs::canonicalize(current_exe)
        .map(|p| without_verbatim_prefix(&p))
        .unwrap_or_else(|_| current_exe.to_owned());
    match appimage {
        // The core reads no environment: the mount is recognised by its name alone.
        Some(image) if exe.to_string_lossy().contains("/.mount_") => image.to_owned(),
        _ => exe,
    }
}

/// The longest path Windows takes without the verbatim prefix (`MAX_PATH` less the final NUL).
const MAX_PLAIN_PATH: usize = 259;

/// `path` without the verbatim prefix that `canonicalize` gives every path on Windows:
/// `\\?\C:\dir\x.exe` becomes `C:\dir\x.exe` and `\\?\UNC\server\share\x` becomes
/// `\\server\share\x`. ssh runs the ProxyCommand through a command line, and Windows OpenSSH
/// (like `cmd.exe`) does not take the verbatim form. A path that needs the prefix — longer than
/// `MAX_PATH`, or with a name that plain parsing would change (`.`/`..`, a trailing dot or
/// space, `/`, a device name such as `NUL` or `COM1`) — is returned as it is, and so is any
/// other path. Pure string work, so it behaves the same on every OS.
pub fn without_verbatim_prefix(path: &Path) -> PathBuf {
    let Some(text) = path.to_str() else { return path.to_owned() };
    let plain = if let Some(rest) = text.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{rest}")
    } else if let Some(rest) = text.strip_prefix(r"\\?\") {
        let b = rest.as_bytes();
        if !(b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\') {
            return path.to_owned();
        }
        rest.to_owned()
    } else {
        return path.to_owned();
    };
    let names_survive = plain.trim_start_matches('\\').split('\\').skip(1).all(|name| {
        let stem = name.split('.').next().unwrap_or_default().trim_end_matches(' ');
        let device = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
            .iter()
            .any(|d| stem.eq_ignore_ascii_case(d))
            || (stem.len() == 4
                && ["COM", "LPT"].iter().any(|d| stem.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(d)))
                && stem.as_bytes()[3].is_ascii_digit());
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.ends_with(['.', ' '])
            && !name.contains('/')
            && !device
    });
    if plain.len() <= MAX_PLAIN_PATH && names_survive {
        PathBuf::from(plain)
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn moving_a_sandbox_to_another_server_or_issuer_drops_its_tokens() {
        use crate::oidc::token_store::{now_secs, TokenSet};
        use crate::oidc::OidcSettings;
        let home = tempfile::tempdir().unwrap();
        let install = Installation {
            paths: Paths::from_home(home.path()),
            binary: PathBuf::from("/usr/bin/sandbox-forward"),
            platform: Platform::Posix,
            prefer_keychain: false,
        };
        let name = SandboxName::new("box").unwrap();
        let oidc = |issuer: &str| OidcSettings {
            issuer: issuer.into(),
            client_id: "cli".into(),
            scopes: vec!["openid".into()],
            audience: None,
        };
        let stored = Profile {
            server: "https://sandbox.example.com".into(),
            oidc: Some(oidc("https://id.example.com")),
            ..Default::default()
        };
        let sign_in = |profile: Profile| {
            let install = install.clone();
            let name = name.clone();
            async move {
                install.profiles().save(&name, &profile).unwrap();
                let session = install.session(&name, &profile).await.unwrap();
                let tokens = TokenSet {
                    access_token: "at".into(),
                    refresh_token: None,
                    id_token: None,
                    issued_at: now_secs(),
                    expires_at: now_secs() + 600,
                    subject: "alice".into(),
                };
                session.store_for_test(&tokens);
                session
            }
        };
        // Unchanged (a trailing slash is no change): the sign-in stays.
        let session = sign_in(stored.clone()).await;
        let same = Profile { oidc: Some(oidc("https://id.example.com/")), ..stored.clone() };
        assert!(!install.drop_sign_in_if_moved(&name, &same).await.unwrap());
        assert!(session.signed_in());
        // Another server with the same issuer, another issuer, another client: dropped.
        let moved = [
            Profile { server: "https://elsewhere.example.com".into(), ..stored.clone() },
            Profile { oidc: Some(oidc("https://evil.example.com")), ..stored.clone() },
            Profile {
                oidc: Some(OidcSettings { client_id: "other".into(), ..oidc("https://id.example.com") }),
                ..stored.clone()
            },
        ];
        for new in moved {
            let session = sign_in(stored.clone()).await;
            assert!(install.drop_sign_in_if_moved(&name, &new).await.unwrap(), "{new:?}");
            assert!(!session.signed_in(), "{new:?}");
        }
        // A corrupt profile can still be replaced (ssh-setup repairs it).
        std::fs::write(install.paths.profiles_dir().join("box.toml"), "server = [").unwrap();
        assert!(!install.drop_sign_in_if_moved(&name, &stored).await.unwrap());
    }

    #[test]
    fn appimage_mounts_are_replaced_by_the_image() {
        let image = Path::new("/home/me/Apps/SandboxForward.AppImage");
        let mounted = Path::new("/tmp/.mount_SandbXYZ/usr/bin/sandbox-forward");
        assert_eq!(stable_binary_path(mounted, Some(image)), image);
        let installed = Path::new("/usr/bin/sandbox-forward-does-not-exist");
        assert_eq!(stable_binary_path(installed, None), installed);
    }

    #[test]
    fn verbatim_windows_paths_become_plain() {
        let plain = |s: &str| without_verbatim_prefix(Path::new(s)).to_str().unwrap().to_owned();
        assert_eq!(
            plain(r"\\?\C:\Program Files\sf\sandbox-forward.exe"),
            r"C:\Program Files\sf\sandbox-forward.exe"
        );
        assert_eq!(plain(r"\\?\Z:\work\target\sandbox-forward.exe"), r"Z:\work\target\sandbox-forward.exe");
        assert_eq!(plain(r"\\?\UNC\server\share\sf.exe"), r"\\server\share\sf.exe");
        // Already plain, or not Windows at all: unchanged.
        for same in [r"C:\sf.exe", "/usr/bin/sandbox-forward", r"\\server\share\sf.exe"] {
            assert_eq!(plain(same), same);
        }
        // Paths that only the verbatim form can name keep it.
        let long = format!(r"\\?\C:\{}\sf.exe", "d".repeat(260));
        for keep in [
            long.as_str(),
            r"\\?\C:\dir.\sf.exe",
            r"\\?\C:\dir \sf.exe",
            r"\\?\C:\a\..\sf.exe",
            r"\\?\C:\a/b\sf.exe",
            r"\\?\C:\NUL\sf.exe",
            r"\\?\C:\com1.txt\sf.exe",
            r"\\?\Volume{0b1c}\sf.exe",
            r"\\?\GLOBALROOT\Device\sf.exe",
        ] {
            assert_eq!(plain(keep), keep);
        }
        assert_eq!(plain(r"\\?\C:\computer\sf.exe"), r"C:\computer\sf.exe");
    }

    #[test]
    fn the_running_binary_is_named_by_a_plain_path() {
        let exe = std::env::current_exe().unwrap();
        let stable = stable_binary_path(&exe, None);
        assert!(stable.is_absolute(), "{stable:?}");
        assert!(!stable.to_string_lossy().starts_with(r"\\?\"), "{stable:?}");
        assert_eq!(std::fs::canonicalize(&stable).unwrap(), std::fs::canonicalize(&exe).unwrap());
    }
}
