//! The desktop facilities of this OS, for the app model: the URL opener, `$BROWSER`, the
//! executable search, notifications and start-at-login. The only reader of the environment.

use std::path::{Path, PathBuf};

use sandbox_core::ide::{find_executable, Os};
use sandbox_desk::desktop::AutostartError;

/// This machine's desktop.
pub struct OsDesktop {
    /// Home directory (for IDE install locations).
    pub home: PathBuf,
    /// The app binary that start-at-login runs with `--background`.
    pub app_binary: PathBuf,
}

impl sandbox_desk::Desktop for OsDesktop {
    fn open_url(&self, url: &str) -> std::io::Result<()> {
        // What the opener answered is checked: xdg-open exits 3 when nothing handles the scheme.
        #[cfg(unix)]
        {
            sandbox_core::browser::open_url(url)
        }
        #[cfg(windows)]
        {
            open::that_detached(url)
        }
    }

    fn open_browser(&self, url: &str) {
        let result = match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
            Some(browser) => sandbox_core::browser::open_with(&browser, url),
            None => open::that_detached(url),
        };
        if let Err(e) = result {
            tracing::warn!("could not open a browser for sign-in: {e}");
        }
    }

    fn find_executable(&self, name: &str) -> Option<PathBuf> {
        find_executable(name, Os::current(), std::env::var_os("PATH").as_deref(), &self.home)
    }

    fn notify(&self, title: &str, body: &str) {
        let shown = notify_rust::Notification::new()
            .appname("Sandbox Forward")
            .summary(title)
            .body(body)
            .icon("network-transmit-receive")
            .show();
        if let Err(e) = shown {
            tracing::debug!("notification not shown: {e}");
        }
    }

    fn set_start_at_login(&self, on: bool) -> Result<(), AutostartError> {
        let launcher = autostart(&self.app_binary)?;
        let result = if on { launcher.enable() } else { launcher.disable() };
        result.map_err(|e| AutostartError(format!("cannot change start at login: {e}")))
    }

    fn key_comment(&self) -> String {
        sandbox_core::keys::default_comment(
            Os::current(),
            |name| std::env::var(name).ok(),
            || std::fs::read_to_string("/etc/hostname").ok(),
        )
    }
}

/// The login item: the app with `--background` (it starts this tray process, no window).
fn autostart(app: &Path) -> Result<auto_launch::AutoLaunch, AutostartError> {
    auto_launch::AutoLaunchBuilder::new()
        .set_app_name("Sandbox Forward")
        .set_app_path(&app.to_string_lossy())
        .set_args(&["--background"])
        // Per user, like the rest of the app: never the machine-wide Run key (which an elevated
        // process would otherwise pick), and a launch agent on macOS.
        .set_windows_enable_mode(auto_launch::WindowsEnableMode::CurrentUser)
        .set_macos_launch_mode(auto_launch::MacOSLaunchMode::LaunchAgent)
        .build()
        .map_err(|e| AutostartError(format!("cannot set up start at login: {e}")))
}
