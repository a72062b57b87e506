//! `sandbox-forward-app`: the window of the Sandbox Forward desktop app. It keeps no state: the
//! UI's one command, `rpc`, goes over the control socket to the resident tray process
//! (`sandbox-forward-tray`), which owns the app model. The process exits when its window closes,
//! so no WebView stays in memory while the app sits in the tray.

pub mod tray_process;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use sandbox_core::paths::Paths;
use sandbox_desk::control::ControlClient;
use sandbox_desk::intent;
use sandbox_desk::protocol::{ActionError, Intent, Reply, Request};
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_deep_link::DeepLinkExt;

/// The label of the one window.
pub const MAIN_WINDOW: &str = "main";

/// The event that tells the window an [`Intent`] waits in the [`Inbox`] (no payload: the
/// window takes them with `take_intents`, so one that arrives before the page listens is kept).
pub const INTENT_EVENT: &str = "intent";

/// What the window is asked to show and has not taken yet: the Add form from a link or the
/// tray's "Add sandbox…".
#[derive(Default)]
pub struct Inbox(Mutex<Vec<Intent>>);

/// The window's second command: the intents that arrived since it last asked, oldest first.
#[tauri::command]
fn take_intents(inbox: tauri::State<'_, Inbox>) -> Vec<Intent> {
    std::mem::take(&mut *inbox.0.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Queues intents for the window and tells it.
pub fn deliver<R: Runtime>(app: &AppHandle<R>, intents: Vec<Intent>) {
    if intents.is_empty() {
        return;
    }
    app.state::<Inbox>().0.lock().unwrap_or_else(|e| e.into_inner()).extend(intents);
    if let Err(e) = app.emit(INTENT_EVENT, ()) {
        tracing::warn!("cannot tell the window about a link: {e}");
    }
}

/// `sandbox-forward://` links, which `tauri-plugin-deep-link` reads: the one this process was
/// started with (Linux and Windows: its only argument), and those handed over later (a second
/// launch's, through the single-instance plugin; macOS's open-URL events). Each fills the Add
/// form (or says why it cannot) and brings the window forward.
pub fn receive_links<R: Runtime>(app: &AppHandle<R>) {
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        let intents = event.urls().iter().map(|url| intent::from_link(url.as_str())).collect();
        deliver(&handle, intents);
        if let Err(e) = show_main_window(&handle) {
            tracing::warn!("cannot bring the window forward: {e}");
        }
    });
    if let Ok(Some(urls)) = app.deep_link().get_current() {
        deliver(app, urls.iter().map(|url| intent::from_link(url.as_str())).collect());
    }
}

/// A second launch of the app (its arguments, program name first): `--add` (the tray's "Add
/// sandbox…") opens the Add form; the window comes forward. Its link, if any, has already gone
/// to [`receive_links`] through the deep-link plugin.
pub fn on_second_launch<R: Runtime>(app: &AppHandle<R>, argv: &[String]) {
    deliver(app, intent::from_args(argv));
    if let Err(e) = show_main_window(app) {
        tracing::warn!("cannot bring the window forward: {e}");
    }
}

/// The window's only command: one action for the tray process, answered with the state after it.
#[tauri::command]
async fn rpc(client: tauri::State<'_, ControlClient>, request: Request) -> Result<Reply, ActionError> {
    client.call(&request).await
}

/// Registers what the window can call, and the client it goes through. Shared by [`run`] and
/// the tests (which use Tauri's mock runtime).
pub fn builder<R: Runtime>(builder: tauri::Builder<R>, client: ControlClient) -> tauri::Builder<R> {
    builder
        .manage(client)
        .manage(Inbox::default())
        .invoke_handler(tauri::generate_handler![rpc, take_intents])
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

    // Single-instance first: a second launch hands over to this one (its link to the deep-link
    // plugin, then its arguments to `on_second_launch`) and exits before anything else is set
    // up. The deep-link plugin reads this launch's link.
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| on_second_launch(app, &argv)))
        .plugin(tauri_plugin_deep_link::init());
    let app = builder(app, client).setup(|app| {
        let handle = app.handle();
        deliver(handle, intent::from_args(std::env::args()));
        receive_links(handle);
        open_main_window(handle)?;
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

/// Shows, unminimises and focuses the window, opening it if it is closed.
pub fn show_main_window<R: Runtime>(app: &tauri::AppHandle<R>) -> tauri::Result<()> {
    match app.get_webview_window(MAIN_WINDOW) {
        Some(window) => {
            window.unminimize()?;
            window.show()?;
            window.set_focus()
        }
        None => open_main_window(app),
    }
}
