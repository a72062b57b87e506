//! The app's own settings file (`~/.config/sandbox/app.toml`, 0600): preferences and whether the
//! local demo sandbox exists. Sandboxes themselves live in the core's profiles, shared with the CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sandbox_core::fsutil;
use serde::{Deserialize, Serialize};

use crate::protocol::Preferences;

/// Stored settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// The user's choices.
    pub preferences: Preferences,
    /// Name of the demo sandbox while it exists.
    pub demo: Option<String>,
    /// The user removed the demo: never offer it again.
    pub demo_dismissed: bool,
    /// Sandboxes whose new listening ports are forwarded as they are found.
    pub auto_forward: BTreeSet<String>,
}

/// The settings file.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    /// The file at `path`.
    pub fn new(path: PathBuf) -> Self {
        SettingsFile { path }
    }

    /// The stored settings; defaults when the file is missing. A corrupt file is reported, not
    /// overwritten (the user may want to repair it).
    pub fn load(&self) -> Result<AppSettings, SettingsFileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => toml::from_str(&text).map_err(|e| SettingsFileError::Corrupt {
                path: self.path.clone(),
                detail: e.message().to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AppSettings::default()),
            Err(source) => Err(SettingsFileError::Read { path: self.path.clone(), source }),
        }
    }

    /// Writes the settings atomically.
    pub fn save(&self, settings: &AppSettings) -> Result<(), SettingsFileError> {
        let text = toml::to_string(settings).map_err(SettingsFileError::Serialize)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fsutil::create_private_dir(dir)
            .and_then(|()| fsutil::write_private(&self.path, text.as_bytes()))
            .map_err(|source| SettingsFileError::Write { path: self.path.clone(), source })
    }
}

/// Why the settings file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    #[error("{} is corrupt ({detail}); fix or delete it", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write the settings: {0}")]
    Serialize(toml::ser::Error),
}
