//! `sandbox-forward-app`: opens the Sandbox Forward window (see the library). With
//! `--background` (how "start at login" launches the app) it opens no window and loads no GUI
//! toolkit: it becomes the resident tray process.

// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    sandbox_forward_app::init_logging();
    if std::env::args_os().skip(1).any(|arg| arg == "--background") {
        return sandbox_forward_app::tray_process::exec_tray();
    }
    sandbox_forward_app::run(tauri::generate_context!())
}
