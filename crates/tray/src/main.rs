//! `sandbox-forward-tray`: the resident part of the Sandbox Forward app. It owns the app model
//! (forwards, statuses, the demo sandbox), shows the tray icon and menu, and serves the window
//! process (`sandbox-forward-app`) over the control socket. It never links a WebView, so it stays
//! small all day; the window is a separate process that exits when closed.

mod desktop;
mod environment;
mod icon;
mod menu;
mod tray;

use std::path::Path;
use std::sync::Arc;

use sandbox_core::paths::Paths;
use sandbox_core::setup::{stable_binary_path, Installation};
use sandbox_core::ssh_config::Platform;
use sandbox_desk::control::{ControlServer, ServeError};
use sandbox_desk::{Service, ServiceConfig};
use tokio::sync::mpsc;

use crate::desktop::OsDesktop;
use crate::environment::Startup;
use crate::menu::Action;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SANDBOX_FORWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // macOS and Windows keep the main thread for the tray's event loop; the app runs beside it.
    tray::run_main(|host| tokio::runtime::Runtime::new()?.block_on(run(host)))
}

async fn run(host: tray::Host) -> anyhow::Result<()> {
    let Startup { home, exe, appimage, prefer_keychain } = Startup::read()?;
    let bin_dir = stable_binary_path(&exe, None).parent().map(Path::to_path_buf).unwrap_or_default();
    let sibling = |name: &str| bin_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let paths = Paths::from_home(&home);

    let socket = paths.control_socket();
    let server = match ControlServer::bind(&socket).await {
        Ok(server) => server,
        Err(ServeError::AlreadyRunning) => {
            eprintln!("Sandbox Forward is already running.");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    // For scripts and tests that must stop us by PID.
    let pid_file = paths.tray_pid();
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));

    let install = Installation {
        paths,
        // ssh runs the CLI as ProxyCommand: the one installed beside us.
        binary: stable_binary_path(&sibling("sandbox-forward"), appimage.as_deref()),
        platform: Platform::current(),
        prefer_keychain,
    };
    let app_binary = sibling("sandbox-forward-app");
    let agent = sibling("sandbox-agent");
    let desktop = Arc::new(OsDesktop { home, app_binary: app_binary.clone() });
    let service = Service::new(ServiceConfig {
        install,
        desktop: desktop.clone(),
        agent_binary: agent.is_file().then_some(agent),
    });
    tokio::spawn(server.run(service.clone()));
    service.run().await;
    tracing::info!(socket = %socket.display(), "Sandbox Forward is running");

    let (actions, mut clicks) = mpsc::unbounded_channel();
    let tray = match tray::spawn(&host, service.snapshot(), actions.clone()).await {
        Ok(handle) => {
            let handle = Arc::new(handle);
            let (shown, service) = (handle.clone(), service.clone());
            // Supervised: a panic while drawing the menu restarts the updater instead of
            // freezing the tray on a stale state.
            sandbox_desk::service::supervise(
                move || {
                    let (shown, service) = (shown.clone(), service.clone());
                    async move {
                        let mut changes = service.subscribe();
                        if !shown.update(service.snapshot()).await {
                            return;
                        }
                        while changes.changed().await.is_ok() {
                            if !shown.update(service.snapshot()).await {
                                return;
                            }
                        }
                    }
                },
                |why| {
                    tracing::error!("the tray menu's updater panicked ({why}); restarting it");
                    true
                },
            );
            Some(handle)
        }
        Err(e) => {
            tracing::warn!("no tray icon ({e}); use the window: {}", app_binary.display());
            None
        }
    };
    // `actions` stays alive: without a tray icon the process still serves the window until
    // it is told to stop.

    loop {
        tokio::select! {
            click = clicks.recv() => match click {
                Some(Action::Request(request)) => {
                    let (service, desktop) = (service.clone(), desktop.clone());
                    tokio::spawn(async move {
                        // The tray has nowhere to show an error but a notification.
                        if let Err(e) = service.handle(request).await {
                            sandbox_desk::Desktop::notify(&*desktop, "Sandbox Forward", &e.message);
                        }
                    });
                }
                Some(Action::OpenWindow) => open_window(&app_binary, &[]),
                // The window opens on the Add form (a running one is brought forward with it).
                Some(Action::AddSandbox) => open_window(&app_binary, &[sandbox_desk::intent::ADD_ARG]),
                Some(Action::Quit) | None => break,
            },
            _ = shutdown_signal() => break,
        }
    }
    tracing::info!("stopping");
    if let Some(tray) = &tray {
        tray.shutdown().await;
    }
    service.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

/// Starts the window process (it focuses an existing window if one is open).
fn open_window(app: &Path, args: &[&str]) {
    match sandbox_core::detached::spawn_with(app, args) {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::error!("cannot open the window ({}): {e}", app.display()),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
