//! What the tray process takes from its environment, read once at start. With `desktop`'s
//! lookups (`BROWSER`, `PATH`, the desktop session) and the log filter, the only reads of the
//! environment in this crate.

use std::path::PathBuf;

use anyhow::Context;

/// The start-up facts the tray builds its installation from.
#[derive(Debug)]
pub struct Startup {
    /// The user's home directory (from the OS, as ssh's `~` is).
    pub home: PathBuf,
    /// This program's own path; the CLI, the window and the agent are installed beside it.
    pub exe: PathBuf,
    /// The AppImage this process runs from (`$APPIMAGE`), whose mount path changes per run.
    pub appimage: Option<PathBuf>,
    /// Tokens go to the OS keychain unless `SANDBOX_FORWARD_TOKEN_STORE=file`.
    pub prefer_keychain: bool,
}

impl Startup {
    /// Reads the environment; fails only without a home directory or an own path.
    pub fn read() -> anyhow::Result<Self> {
        #[allow(deprecated)] // std::env::home_dir is correct on every platform since Rust 1.85
        let home = std::env::home_dir().context("cannot find your home directory; set HOME")?;
        let exe = std::env::current_exe().context("cannot find this program's own path")?;
        Ok(Startup {
            home,
            exe,
            appimage: std::env::var_os("APPIMAGE").map(PathBuf::from),
            prefer_keychain: std::env::var("SANDBOX_FORWARD_TOKEN_STORE").map_or(true, |v| v != "file"),
        })
    }
}
