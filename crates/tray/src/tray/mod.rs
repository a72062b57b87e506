//! The tray icon, per platform, behind one small interface: [`run_main`] (what the platform's UI
//! thread needs), [`spawn`] and [`TrayHandle`]. Linux and the BSDs speak StatusNotifierItem over
//! D-Bus (`sni`: ksni, no GTK); macOS and Windows use Tauri's own tray library (`native`:
//! tray-icon on a tao event loop, muda menus). Both render the same [`crate::menu`] model, and
//! neither links a WebView.

#[cfg(any(target_os = "macos", windows))]
mod native;
#[cfg(all(unix, not(target_os = "macos")))]
mod sni;

#[cfg(any(target_os = "macos", windows))]
pub use native::{run_main, spawn, Host};
#[cfg(all(unix, not(target_os = "macos")))]
pub use sni::{run_main, spawn, Host};
