//! Editing ssh config without clobbering it.
//!
//! Our `Host` blocks live in a file we own (say `~/.config/sandbox/ssh_config`). The user's
//! `~/.ssh/config` gets exactly one managed block at its top, between two marker lines, holding
//! one `Include` of our file; every byte outside the markers is left exactly as it was. Both
//! files are written atomically (temp file, fsync, rename) and a symlinked config keeps its
//! link. When the user's config cannot be written (read-only, or generated under `/nix/store`)
//! our file is still written and the caller gets the one line to add by hand.
//!
//! Inside: `markers` finds and splices the managed block, as bytes; `render` renders `Host`
//! blocks and quotes the `ProxyCommand`, refusing anything that could inject; `hosts_file`
//! reads and writes our own file's blocks; `legacy` finds the original tool's unmanaged blocks.
//! Atomic writes and symlink resolution are `crate::fsutil`'s.

mod error;
mod hosts_file;
pub mod legacy;
mod markers;
mod render;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use error::SshConfigError;
pub use markers::{BEGIN_MARKER, END_MARKER};
pub use render::{proxy_command, HostBlock, HostKeyPolicy, Platform};

use crate::fsutil;
use crate::name::SandboxName;
use hosts_file::HostsFile;

/// Where generated, read-only configurations live (NixOS, home-manager).
const GENERATED_ROOT: &str = "/nix/store";

/// What [`SshConfigEditor::ensure_include`] (and so [`SshConfigEditor::upsert`]) did to the
/// user's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeStatus {
    /// The `Include` was already there (in our block, or added by hand); nothing was written.
    AlreadyPresent,
    /// The managed block was added (or repaired).
    Added,
    /// The user's config cannot be written; our own file was. The user must add `line` near the
    /// top of their config (before any `Host` or `Match`) themselves.
    ManualLineNeeded {
        /// The exact line to add, e.g. `Include "/home/me/.config/sandbox/ssh_config"`.
        line: String,
        /// Why we could not add it, naming the file.
        reason: String,
    },
}

/// How the user's config stands, for `doctor`.
#[derive(Debug)]
pub enum IncludeState {
    /// Our file is included (by our block, or by a line added by hand).
    Present,
    /// Not included yet; [`SshConfigEditor::ensure_include`] would add it.
    Missing,
    /// Not included, and the file cannot be written: the user must add `line` by hand.
    Unwritable {
        /// The exact line to add.
        line: String,
        /// Why we cannot add it.
        reason: String,
    },
    /// The markers are broken (or our include path cannot be written into a config); the error
    /// says how to fix it.
    Broken(SshConfigError),
}

/// One host in our file, as `list` and `doctor` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedHost {
    /// The `Host` alias.
    pub name: SandboxName,
    /// The `ProxyCommand` value as written (with `%` doubled, as [`proxy_command`] renders it).
    pub proxy_command: String,
}

/// The original tool's `Host` blocks moved out of the user's config (see [`legacy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMoved {
    /// The aliases whose blocks were moved.
    pub names: Vec<SandboxName>,
    /// The dated backup beside the user's config that now holds them (mode 0600: the original
    /// put `--bearer` tokens into its ProxyCommands).
    pub backup: PathBuf,
}

/// What the user's config needs, worked out before anything is written.
enum IncludePlan {
    Present,
    Write { target: PathBuf, bytes: Vec<u8> },
    Manual { reason: String },
}

/// Edits the user's ssh config (only its managed block) and our own included file.
#[derive(Debug, Clone)]
pub struct SshConfigEditor {
    user_config: PathBuf,
    include_file: PathBuf,
    platform: Platform,
}

impl SshConfigEditor {
    /// An editor for the user's config at `user_config` (normally `~/.ssh/config`) and our file
    /// at `include_file`; both absolute. Nothing is touched until a method is called.
    pub fn new(user_config: PathBuf, include_file: PathBuf) -> Self {
        SshConfigEditor { user_config, include_file, platform: Platform::current() }
    }

    /// The same editor writing paths as `platform`'s ssh expects them (tests; cross-rendering).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The user's config this editor edits.
    pub fn user_config(&self) -> &Path {
        &self.user_config
    }

    /// Our own file, holding the `Host` blocks.
    pub fn include_file(&self) -> &Path {
        &self.include_file
    }

    /// The exact `Include` line that goes into the user's config.
    pub fn include_line(&self) -> Result<String, SshConfigError> {
        render::include_line(&self.include_file, self.platform)
    }

    /// Adds `host`'s block to our file, or replaces the block of the same name in place, then
    /// makes sure the user's config includes our file. Running it twice with the same input
    /// writes nothing the second time. Broken markers are refused before anything is written.
    pub fn upsert(&self, host: &HostBlock) -> Result<IncludeStatus, SshConfigError> {
        let block = render::render_host(host, self.platform)?;
        // Validated before the lock file (named after our file) is created.
        let line = self.include_line()?;
        let _lock = self.lock()?;
        let plan = self.plan_include(&line)?;
        let mut file = self.read_hosts()?;
        file.upsert(&host.name, block);
        self.write_hosts(&file)?;
        self.apply(plan, line)
    }

    /// Removes `name`'s block from our file; whether there was one. When no host is left, our
    /// file is deleted and the managed block cut out of the user's config, which gives back
    /// its bytes as they were before we inserted it. (A user's config we cannot write keeps its
    /// `Include`, which ssh ignores once our file is gone.)
    pub fn remove(&self, name: &SandboxName) -> Result<bool, SshConfigError> {
        let _lock = self.lock()?;
        let mut file = self.read_hosts()?;
        let removed = file.remove(name);
        if !file.is_empty() {
            if removed {
                self.write_hosts(&file)?;
            }
            return Ok(removed);
        }
        self.remove_include()?;
        let ours = self.include_target()?;
        fsutil::remove_file(&ours)
            .map(drop)
            .map_err(|source| SshConfigError::Write { path: ours, source })?;
        Ok(removed)
    }

    /// The hosts in our file, in file order.
    pub fn hosts(&self) -> Result<Vec<ManagedHost>, SshConfigError> {
        Ok(self
            .read_hosts()?
            .hosts()
            .into_iter()
            .map(|(name, proxy_command)| ManagedHost { name, proxy_command })
            .collect())
    }

    /// Whether the user's config includes our file, and if not whether we could fix that.
    /// Writes nothing (it may create and drop a temp file to test the directory).
    pub fn include_state(&self) -> Result<IncludeState, SshConfigError> {
        let line = match self.include_line() {
            Ok(line) => line,
            Err(e) => return Ok(IncludeState::Broken(e)),
        };
        let target = match self.plan_include(&line) {
            Err(e @ SshConfigError::Markers { .. }) => return Ok(IncludeState::Broken(e)),
            Err(e) => return Err(e),
            Ok(IncludePlan::Present) => return Ok(IncludeState::Present),
            Ok(IncludePlan::Manual { reason }) => return Ok(IncludeState::Unwritable { line, reason }),
            Ok(IncludePlan::Write { target, .. }) => target,
        };
        match target.parent().filter(|dir| dir.is_dir()) {
            Some(dir) => match fsutil::dir_accepts_files(dir) {
                Ok(true) => Ok(IncludeState::Missing),
                Ok(false) => {
                    Ok(IncludeState::Unwritable { line, reason: format!("cannot create files in {dir:?}") })
                }
                Err(source) => Err(SshConfigError::Read { path: dir.to_owned(), source }),
            },
            None => Ok(IncludeState::Missing),
        }
    }

    /// Makes sure the user's config includes our file: adds (or repairs) the managed block at
    /// its top, creating the file (0600) and its directory (0700) if missing.
    pub fn ensure_include(&self) -> Result<IncludeStatus, SshConfigError> {
        let line = self.include_line()?;
        let _lock = self.lock()?;
        let plan = self.plan_include(&line)?;
        self.apply(plan, line)
    }

    /// The aliases of the original tool's `Host` blocks still in the user's config (for
    /// `doctor`). Reads only.
    pub fn legacy_hosts(&self) -> Result<Vec<SandboxName>, SshConfigError> {
        let target = self.user_target()?;
        let bytes = match fs::read(&target) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SshConfigError::Read { path: target, source }),
        };
        let span = markers::find_block(&bytes).ok().flatten();
        Ok(legacy::find(&bytes, span.as_ref()).into_iter().map(|b| b.name).collect())
    }

    /// Moves the original tool's `Host name` block(s) out of the user's config into a dated
    /// backup beside it (`config.sandbox-forward-backup-YYYYMMDD-HHMMSS`, UTC); every other byte
    /// of the config stays as it was. `None` when there was none. A config that cannot be
    /// written is an error naming the block to remove by hand.
    pub fn move_out_legacy(&self, name: &SandboxName) -> Result<Option<LegacyMoved>, SshConfigError> {
        let _lock = self.lock()?;
        let target = self.user_target()?;
        let bytes = match fs::read(&target) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SshConfigError::Read { path: target, source }),
        };
        let span = markers::find_block(&bytes)
            .map_err(|e| SshConfigError::Markers { path: self.user_config.clone(), detail: e.detail })?;
        let blocks: Vec<_> =
            legacy::find(&bytes, span.as_ref()).into_iter().filter(|b| &b.name == name).collect();
        if blocks.is_empty() {
            return Ok(None);
        }
        let readonly = fs::metadata(&target).map(|m| m.permissions().readonly()).unwrap_or(false);
        if is_generated(&target) || readonly {
            return Err(SshConfigError::LegacyBlock { path: self.user_config.clone(), name: name.clone() });
        }
        let (kept, removed) = legacy::cut(&bytes, &blocks);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let file_name = target.file_name().map_or("config".into(), |n| n.to_string_lossy().into_owned());
        let stem = format!("{file_name}.sandbox-forward-backup-{}", legacy::timestamp(now));
        let dir = target.parent().unwrap_or(Path::new("."));
        let backup = (1..)
            .map(|n| dir.join(if n == 1 { stem.clone() } else { format!("{stem}-{n}") }))
            .find(|p| !p.exists())
            .expect("an unused backup name");
        let header = format!(
            "# Moved out of {} by sandbox-forward ssh-setup: written by the original sandbox-forward,\n# shadowed by (and replaced with) the block sandbox-forward manages now.\n",
            target.display()
        );
        let mut saved = header.into_bytes();
        saved.extend_from_slice(&removed);
        fsutil::write_private(&backup, &saved)
            .map_err(|source| SshConfigError::Write { path: backup.clone(), source })?;
        fsutil::write_atomic(&target, &kept, 0o600)
            .map_err(|source| SshConfigError::Write { path: target, source })?;
        Ok(Some(LegacyMoved { names: blocks.into_iter().map(|b| b.name).collect(), backup }))
    }

    /// Serialises edits across processes (the app and a CLI `ssh-setup` at the same moment):
    /// each edit is a read-modify-write of two files, and the last writer would otherwise drop
    /// the other's host. Released when the returned file is dropped.
    fn lock(&self) -> Result<fs::File, SshConfigError> {
        let path = self.include_file.with_extension("lock");
        let io = |source| SshConfigError::Write { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir).map_err(io)?;
        }
        let file = fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    /// The file that really holds the user's config (the symlink's target, if it is one).
    fn user_target(&self) -> Result<PathBuf, SshConfigError> {
        fsutil::resolve_symlinks(&self.user_config)
            .map_err(|source| SshConfigError::Read { path: self.user_config.clone(), source })
    }

    fn include_target(&self) -> Result<PathBuf, SshConfigError> {
        fsutil::resolve_symlinks(&self.include_file)
            .map_err(|source| SshConfigError::Read { path: self.include_file.clone(), source })
    }

    /// Works out what the user's config needs so that it includes `line`, reading only.
    fn plan_include(&self, line: &str) -> Result<IncludePlan, SshConfigError> {
        let target = self.user_target()?;
        let (bytes, exists) = match fs::read(&target) {
            Ok(bytes) => (bytes, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) if fsutil::is_unwritable(&e) => {
                return Ok(IncludePlan::Manual { reason: format!("cannot read {target:?}: {e}") })
            }
            Err(source) => return Err(SshConfigError::Read { path: target, source }),
        };
        let span = markers::find_block(&bytes)
            .map_err(|e| SshConfigError::Markers { path: self.user_config.clone(), detail: e.detail })?;
        let block = markers::render_block(line, markers::line_ending(&bytes, span.as_ref()));
        let present = match &span {
            Some(span) => bytes[span.clone()] == block[..],
            None => {
                let path = line.trim_start_matches("Include ").trim_matches('"');
                markers::has_manual_include(&bytes, None, path, self.platform)
            }
        };
        if present {
            return Ok(IncludePlan::Present);
        }
        if is_generated(&target) {
            return Ok(IncludePlan::Manual {
                reason: format!(
                    "{target:?} is generated (it lives in {GENERATED_ROOT}); add the line to the configuration that generates it"
                ),
            });
        }
        if exists {
            let meta = fs::metadata(&target)
                .map_err(|source| SshConfigError::Read { path: target.clone(), source })?;
            // Renaming over a file the user made read-only would succeed, and ignore their intent.
            if meta.permissions().readonly() {
                return Ok(IncludePlan::Manual { reason: format!("{target:?} is read-only") });
            }
        }
        Ok(IncludePlan::Write { bytes: markers::splice(&bytes, span, Some(&block)), target })
    }

    /// Carries out `plan`; a config we are not allowed to write turns into `ManualLineNeeded`.
    fn apply(&self, plan: IncludePlan, line: String) -> Result<IncludeStatus, SshConfigError> {
        let (target, bytes) = match plan {
            IncludePlan::Present => return Ok(IncludeStatus::AlreadyPresent),
            IncludePlan::Manual { reason } => return Ok(IncludeStatus::ManualLineNeeded { line, reason }),
            IncludePlan::Write { target, bytes } => (target, bytes),
        };
        let written = match target.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            Some(dir) => fsutil::create_private_dir(dir).map_err(|e| (dir.to_owned(), e)),
            None => Ok(()),
        }
        .and_then(|()| fsutil::write_atomic(&target, &bytes, 0o600).map_err(|e| (target.clone(), e)));
        match written {
            Ok(()) => Ok(IncludeStatus::Added),
            Err((path, e)) if fsutil::is_unwritable(&e) => {
                Ok(IncludeStatus::ManualLineNeeded { line, reason: format!("cannot write {path:?}: {e}") })
            }
            Err((path, source)) => Err(SshConfigError::Write { path, source }),
        }
    }

    /// Cuts the managed block out of the user's config, if it is there and we may write.
    fn remove_include(&self) -> Result<(), SshConfigError> {
        let target = self.user_target()?;
        let bytes = match fs::read(&target) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound || fsutil::is_unwritable(&e) => return Ok(()),
            Err(source) => return Err(SshConfigError::Read { path: target, source }),
        };
        let span = markers::find_block(&bytes)
            .map_err(|e| SshConfigError::Markers { path: self.user_config.clone(), detail: e.detail })?;
        let Some(span) = span else { return Ok(()) };
        let readonly = fs::metadata(&target).map(|m| m.permissions().readonly()).unwrap_or(false);
        if is_generated(&target) || readonly {
            return Ok(());
        }
        match fsutil::write_atomic(&target, &markers::splice(&bytes, Some(span), None), 0o600) {
            Err(e) if !fsutil::is_unwritable(&e) => Err(SshConfigError::Write { path: target, source: e }),
            _ => Ok(()),
        }
    }

    fn read_hosts(&self) -> Result<HostsFile, SshConfigError> {
        let path = self.include_target()?;
        match fs::read(&path) {
            Ok(bytes) => Ok(HostsFile::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HostsFile::default()),
            Err(source) => Err(SshConfigError::Read { path, source }),
        }
    }

    /// Writes our file, unless it already holds exactly these bytes.
    fn write_hosts(&self, file: &HostsFile) -> Result<(), SshConfigError> {
        let path = self.include_target()?;
        let text = file.render();
        if fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            return Ok(());
        }
        let write = |path: &Path| -> io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
                fsutil::create_private_dir(dir)?;
            }
            fsutil::write_atomic(path, text.as_bytes(), 0o600)
        };
        write(&path).map_err(|source| SshConfigError::Write { path, source })
    }
}

/// Whether `path` is a generated file that no tool should edit (NixOS / home-manager).
fn is_generated(path: &Path) -> bool {
    path.starts_with(GENERATED_ROOT)
}

#[cfg(test)]
mod tests;
