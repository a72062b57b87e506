//! `list`, `status` and `doctor`: what is set up locally, whether it works, and repairs.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::keys;
use crate::name::SandboxName;
use crate::profile::ProfileError;
use crate::setup::{Installation, SetupError};
use crate::ssh_config::{IncludeState, ManagedHost};

/// What exists on this machine for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    /// The sandbox.
    pub name: SandboxName,
    /// Server URL from its profile, if the profile is readable.
    pub server: Option<String>,
    /// Both key files exist.
    pub key_present: bool,
    /// Our file has its `Host` block.
    pub block_present: bool,
    /// A host key is pinned for it.
    pub host_key_pinned: bool,
    /// Its settings file exists but cannot be read (corrupt TOML…): the message. Such a
    /// sandbox is reported, never taken for an orphan.
    pub settings_error: Option<String>,
}

/// One problem `doctor` found, and whether it was repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub problem: Problem,
    /// It was fixed in this run.
    pub repaired: bool,
}

/// A kind of drift between our files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `~/.ssh/config` does not include our file.
    MissingInclude,
    /// `~/.ssh/config` cannot be written: the user must add the line.
    ManualInclude { line: String, reason: String },
    /// The managed block's markers are damaged; the message says how to fix them.
    BrokenMarkers(String),
    /// A block's ProxyCommand names another binary (moved or reinstalled).
    StaleBlock(SandboxName),
    /// A block without profile or key: nothing can make it work.
    OrphanBlock(SandboxName),
    /// A key without profile or block.
    OrphanKey(SandboxName),
    /// A set-up sandbox whose block is missing.
    MissingBlock(SandboxName),
    /// A profile without key: needs `ssh-setup` again.
    MissingKey(SandboxName),
    /// A sandbox's settings file cannot be read; nothing of it is touched.
    UnreadableSettings { name: SandboxName, detail: String },
    /// A `Host` block the original tool wrote into the user's config.
    LegacyBlock(SandboxName),
    /// Everything is in place but `ssh NAME` is refused (a network check): ssh's reason.
    KeyNotAccepted { name: SandboxName, detail: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingInclude => write!(f, "~/.ssh/config does not include our host file"),
            Problem::ManualInclude { line, reason } => {
                write!(f, "{reason}; add this line near the top of your ssh config by hand: {line}")
            }
            Problem::BrokenMarkers(e) => write!(f, "{e}"),
            Problem::StaleBlock(n) => {
                write!(f, "Host {n}: its ProxyCommand runs a sandbox-forward binary that moved")
            }
            Problem::OrphanBlock(n) => write!(f, "Host {n}: no key or settings left for it"),
            Problem::OrphanKey(n) => write!(f, "key {n}: no sandbox settings or Host block use it"),
            Problem::MissingBlock(n) => write!(f, "sandbox {n}: its Host block is missing"),
            Problem::UnreadableSettings { name, detail } => {
                write!(f, "sandbox {name}: {detail} (its key and Host block are left as they are)")
            }
            Problem::LegacyBlock(n) => write!(
                f,
                "~/.ssh/config still has the original sandbox-forward's `Host {n}` block; run `sandbox-forward ssh-setup {n} --server URL …` to move it out and set {n} up here"
            ),
            Problem::KeyNotAccepted { name, detail } => {
                write!(f, "sandbox {name}: `ssh {name}` is refused ({detail}); {}", access_fix(name))
            }
            Problem::MissingKey(n) => write!(
                f,
                "sandbox {n}: not connected — run `sandbox-forward ssh-setup {n}` (or `open {n}`), or Connect in the app"
            ),
        }
    }
}

/// What makes a refused `ssh NAME` work again: a new key registered from the command line, or
/// the app's Connect (which re-registers the key it has).
pub fn access_fix(name: &SandboxName) -> String {
    format!("run `sandbox-forward ssh-setup {name}` (or Connect in the app)")
}

impl Installation {
    /// Every sandbox known from any of our files, with what exists for it.
    pub fn list(&self) -> Result<Vec<LocalState>, SetupError> {
        Ok(self.list_with(&self.ssh_config().hosts()?))
    }

    /// [`Installation::list`] given the blocks of our host file, read once by the caller.
    fn list_with(&self, blocks: &[ManagedHost]) -> Vec<LocalState> {
        let blocks: Vec<&SandboxName> = blocks.iter().map(|h| &h.name).collect();
        let mut names = self.profiles().names();
        names.extend(blocks.iter().map(|&n| n.clone()));
        names.extend(key_names(&self.paths.keys_dir()));
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let (server, settings_error) = match self.profiles().load(&name) {
                    Ok(profile) => (Some(profile.server), None),
                    Err(ProfileError::Missing(_)) => (None, None),
                    Err(e) => (None, Some(e.to_string())),
                };
                LocalState {
                    server,
                    settings_error,
                    key_present: keys::exists(&self.paths, &name),
                    block_present: blocks.contains(&&name),
                    host_key_pinned: self.paths.known_hosts(&name).is_file(),
                    name,
                }
            })
            .collect()
    }

    /// Finds drift between profiles, keys, blocks and the Include; repairs what can be repaired
    /// without the network when `repair` is set.
    pub fn doctor(&self, repair: bool) -> Result<Vec<Finding>, SetupError> {
        let mut findings = Vec::new();
        let editor = self.ssh_config();
        // Read once: the repairs below rewrite single blocks, never the set of names.
        let blocks = editor.hosts()?;
        let mut note = |problem, repaired| findings.push(Finding { problem, repaired });
        match editor.include_state()? {
            IncludeState::Present => {}
            IncludeState::Missing => {
                if !blocks.is_empty() {
                    let repaired = repair && editor.ensure_include().is_ok();
                    note(Problem::MissingInclude, repaired);
                }
            }
            IncludeState::Unwritable { line, reason } => note(Problem::ManualInclude { line, reason }, false),
            IncludeState::Broken(e) => {
                note(Problem::BrokenMarkers(e.to_string()), false);
                return Ok(findings);
            }
        }
        // Reported, never moved here: the user may still rely on it, and moving it is ssh-setup's.
        for name in editor.legacy_hosts()? {
            note(Problem::LegacyBlock(name), false);
        }
        for state in self.list_with(&blocks) {
            let name = state.name.clone();
            if let Some(detail) = state.settings_error {
                // Unreadable is not absent: deleting its key and block would lose the sandbox.
                note(Problem::UnreadableSettings { name, detail }, false);
                continue;
            }
            let has_profile = state.server.is_some();
            match (has_profile, state.key_present, state.block_present) {
                (true, true, true) => {
                    let expected = self.host_block(&name, state.host_key_pinned)?;
                    let written = blocks.iter().find(|b| b.name == name).map(|b| b.proxy_command.as_str());
                    if written != Some(expected.proxy_command.as_str()) {
                        let repaired = repair && editor.upsert(&expected).is_ok();
                        note(Problem::StaleBlock(name), repaired);
                    }
                }
                (true, true, false) => {
                    let repaired =
                        repair && editor.upsert(&self.host_block(&name, state.host_key_pinned)?).is_ok();
                    note(Problem::MissingBlock(name), repaired);
                }
                (true, false, _) => note(Problem::MissingKey(name), false),
                (false, _, true) => {
                    let repaired = repair && editor.remove(&name).is_ok() && {
                        let _ = keys::remove(&self.paths, &name);
                        true
                    };
                    note(Problem::OrphanBlock(name), repaired);
                }
                (false, true, false) => {
                    let repaired = repair && keys::remove(&self.paths, &name).is_ok();
                    note(Problem::OrphanKey(name), repaired);
                }
                (false, false, false) => {}
            }
        }
        Ok(findings)
    }
}

fn key_names(dir: &Path) -> Vec<SandboxName> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            SandboxName::new(file.strip_suffix(".pub").unwrap_or(&file)).ok()
        })
        .collect()
}

/// Asks the real `ssh` whether `ssh NAME true` works with the written config: the one check
/// that proves key, block, tunnel and host key together.
pub async fn probe_ssh(ssh: &Path, ssh_config: &Path, name: &SandboxName) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(ssh);
    cmd.arg("-F")
        .arg(ssh_config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-T", name.as_str(), "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .map_err(|_| "ssh did not finish within 40 s".to_owned())?
        .map_err(|e| format!("cannot run {}: {e}", ssh.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("ssh failed");
    Err(last.trim().to_owned())
}

/// What `ssh -G NAME` says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshView {
    /// ssh read its config; this is the ProxyCommand it would run (empty: none).
    ProxyCommand(String),
    /// ssh refused its config (a byte-order mark, a bad option, an Include loop): its message.
    Rejected(String),
}

/// Asks `ssh -G NAME` which ProxyCommand ssh will really use, so `ssh-setup` can warn when an
/// earlier `Host` entry of the user's shadows ours — or when ssh refuses the config outright,
/// with ssh's own words. `None` when ssh cannot be run.
pub async fn effective_proxy_command(ssh: &Path, ssh_config: &Path, name: &SandboxName) -> Option<SshView> {
    let out = tokio::process::Command::new(ssh)
        .arg("-F")
        .arg(ssh_config)
        .args(["-G", name.as_str()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // ssh's first complaint names the file and line; "terminating, N bad options" follows.
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("ssh -G failed");
        return Some(SshView::Rejected(crate::untrusted::one_line(first, 300)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(SshView::ProxyCommand(
        text.lines().find_map(|l| l.strip_prefix("proxycommand ")).unwrap_or("").to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StagedKey;
    use crate::paths::Paths;
    use crate::profile::Profile;
    use crate::ssh_config::Platform;

    fn install(home: &Path, binary: &str) -> Installation {
        Installation {
            paths: Paths::from_home(home),
            binary: binary.into(),
            platform: Platform::current(),
            prefer_keychain: false,
        }
    }

    #[test]
    fn doctor_repairs_a_moved_binary_a_missing_include_and_orphans() {
        let home = tempfile::tempdir().unwrap();
        let old = install(home.path(), "/old/bin/sandbox-forward");
        let a = SandboxName::new("a").unwrap();
        let b = SandboxName::new("b").unwrap();
        let profile = Profile { server: "http://127.0.0.1:1".into(), ..Default::default() };
        old.profiles().save(&a, &profile).unwrap();
        StagedKey::generate(&old.paths, &a, "t").unwrap().commit().unwrap();
        old.ssh_config().upsert(&old.host_block(&a, false).unwrap()).unwrap();
        StagedKey::generate(&old.paths, &b, "t").unwrap().commit().unwrap(); // key of nothing
        std::fs::write(&old.paths.ssh_config, "Host other\n    User me\n").unwrap(); // Include lost

        let new = install(home.path(), "/new/bin/sandbox-forward");
        let report = new.doctor(false).unwrap();
        assert!(report.iter().all(|f| !f.repaired), "--check repairs nothing");
        let problems: Vec<_> = report.iter().map(|f| f.problem.clone()).collect();
        assert_eq!(
            problems,
            vec![Problem::MissingInclude, Problem::StaleBlock(a.clone()), Problem::OrphanKey(b.clone())]
        );

        let fixed = new.doctor(true).unwrap();
        assert!(fixed.iter().all(|f| f.repaired), "{fixed:?}");
        let hosts = new.ssh_config().hosts().unwrap();
        assert!(
            hosts[0].proxy_command.starts_with("/new/bin/sandbox-forward proxy --ssh --sandbox a"),
            "{hosts:?}"
        );
        assert!(!keys::exists(&new.paths, &b));
        assert!(keys::exists(&new.paths, &a));
        let config = std::fs::read_to_string(&new.paths.ssh_config).unwrap();
        assert!(config.ends_with("Host other\n    User me\n") && config.contains("Include"), "{config}");
        assert!(new.doctor(false).unwrap().is_empty(), "a second run finds nothing");
    }

    #[test]
    fn doctor_reports_a_corrupt_profile_and_deletes_nothing() {
        let home = tempfile::tempdir().unwrap();
        let install = install(home.path(), "/bin/sandbox-forward");
        let pd = SandboxName::new("pd").unwrap();
        install
            .profiles()
            .save(&pd, &Profile { server: "http://127.0.0.1:1".into(), ..Default::default() })
            .unwrap();
        StagedKey::generate(&install.paths, &pd, "t").unwrap().commit().unwrap();
        install.ssh_config().upsert(&install.host_block(&pd, false).unwrap()).unwrap();
        std::fs::write(install.paths.profiles_dir().join("pd.toml"), "server = [").unwrap();
        let config = std::fs::read(&install.paths.ssh_config).unwrap();

        let found = install.doctor(true).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].repaired);
        let text = found[0].problem.to_string();
        assert!(
            text.contains("pd.toml") && text.contains("corrupt") && text.contains("left as they are"),
            "{text}"
        );
        assert!(keys::exists(&install.paths, &pd), "key kept");
        assert_eq!(install.ssh_config().hosts().unwrap().len(), 1, "Host block kept");
        assert_eq!(std::fs::read(&install.paths.ssh_config).unwrap(), config, "Include kept");
    }
}
