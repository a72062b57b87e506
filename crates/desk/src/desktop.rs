//! What the app model needs from the desktop it runs on. The tray binary implements it with the
//! OS's facilities (opener, notifications, autostart); tests implement it with a recorder.

use std::io;
use std::path::PathBuf;

/// The desktop around the app.
pub trait Desktop: Send + Sync + 'static {
    /// Opens a link with the OS's handler for its scheme (`vscode://`, `jetbrains-gateway://`).
    fn open_url(&self, url: &str) -> io::Result<()>;
    /// Opens the user's browser on a sign-in page (`$BROWSER` honoured where set).
    fn open_browser(&self, url: &str);
    /// Where an executable is (`PATH`, then the OS's usual install places).
    fn find_executable(&self, name: &str) -> Option<PathBuf>;
    /// A desktop notification; best effort.
    fn notify(&self, title: &str, body: &str);
    /// Turns "start at login" on or off.
    fn set_start_at_login(&self, on: bool) -> Result<(), AutostartError>;
    /// `user@host`, for the comment of generated keys.
    fn key_comment(&self) -> String;
}

/// "Start at login" could not be changed: the desktop's sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AutostartError(pub String);
