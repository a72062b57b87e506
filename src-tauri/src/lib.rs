//! `sandbox-forward-app`: the window of the Sandbox Forward desktop app. It keeps no state: the
//! UI's one command, `rpc`, goes over the control socket to the resident tray process
//! (`sandbox-forward-tray`), which owns the app model. The process exits when its window closes,
//! so no WebView stays in memory while the app sits in the tray.

pub mod tray_process;

use std::path::PathBuf;
use std::process::ExitCode;

use sandbox_core::paths::Paths;
use sandbox_desk::control::ControlClient;
use sandbox_desk::protocol::{ActionError, Reply, Request};
use tauri::{Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

/// The label of the one window.
pub const MAIN_WINDOW: &str = "main";

/// The window's only command: one action for the tray process, answered with the state after it.
#[tauri::command]
async fn rpc(client: tauri::State<'_, ControlClient>, request: Request) -> Result<Reply, ActionError> {
    client.call(&request).await
}

/// Registers what the window can call, and the client it goes through. Shared by [`run`] and
/// the tests (which use Tauri's mock runtime).
pub fn builder<R: Runtime>(builder: tauri::Builder<R>, client: ControlClient) -> tauri::Builder<R> {
    builder.manage(client).invoke_handler(tauri::generate_handler![rpc])
}

/// The control socket of this user's installation.
pub fn control_socket() -> Result<PathBuf, String> {
    #[allow(deprecated)] // std::env::home_dir is correct on every platform since Rust 1.85
    let home = std::env::home_dir().ok_or("cannot find your home directory; set HOME")?;
    Ok(Paths::from_home(&home).control_socket())
}

/// Logs to stderr; `SANDBOX_FORWARD_LOG` filters (default `info`), as in the tray process.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SANDBOX_FORWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Opens the window (starting the tray process first if it is not running) and returns when the
/// window is closed.
pub fn run(context: tauri::Context<tauri::Wry>) -> ExitCode {
    let socket = match control_socket() {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let client = ControlClient::new(socket);
    if let Err(e) = tauri::async_runtime::block_on(tray_process::ensure_running(&client)) {
        // The window still opens: every action then shows why it cannot be done.
        tracing::error!("{e}");
    }

    // Single-instance first: a second launch hands over to this one and exits before anything
    // else is set up.
    let app = tauri::Builder::default().plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
        if let Err(e) = show_main_window(app) {
            tracing::warn!("cannot bring the window forward: {e}");
        }
    }));
    let app = builder(app, client).setup(|app| {
        open_main_window(app.handle())?;
        Ok(())
    });
    match app.build(context) {
        Ok(app) => {
            // Closing the window ends the process: the default exit on the last window closing
            // is never prevented.
            app.run(|_, _| {});
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("cannot open the window: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_main_window<R: Runtime>(app: &tauri::AppHandle<R>) -> tauri::Result<()> {
    WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
        .title("Sandbox Forward")
        .inner_size(960.0, 680.0)
        .min_inner_size(720.0, 520.0)
        .center()
        .build()?;
    Ok(())
}

fn show_main_window<R: Runtime>(app: &tauri::AppHandle<R>) -> tauri::Result<()> {
    match app.get_webview_window(MAIN_WINDOW) {
        Some(window) => {
            window.unminimize()?;
            window.show()?;
            window.set_focus()
        }
        None => open_main_window(app),
    }
}
