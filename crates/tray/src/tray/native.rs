//! The tray icon on macOS and Windows: Tauri's own tray library (`tray-icon` with `muda` menus)
//! on a `tao` event loop. Links no WebView. Renders [`crate::menu`] and sends clicks to the
//! dispatcher.
//!
//! Both OSes want their tray on the main thread with a running event loop, so the main thread
//! runs the loop ([`run_main`]) and the app (tokio, the service, the control socket) runs on a
//! thread of its own; the two talk through the loop's proxy ([`UiEvent`]).
//!
//! Conventions: macOS shows a menu-bar extra (a template icon while idle, so it follows the menu
//! bar's light/dark look; the state colour when forwarding or when a sandbox needs you) and no
//! Dock icon — the process is an accessory app. Windows shows a notification-area icon in the
//! state colour: left click opens the window, right click the menu.

use std::collections::HashMap;

use sandbox_desk::protocol::Snapshot;
use tao::event::Event;
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tao::platform::run_return::EventLoopExtRunReturn;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use tray_icon::menu::{
    CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem, Submenu,
};
use tray_icon::{Icon, MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};

use crate::icon;
use crate::menu::{self, Action, Entry, Mood};

/// What the app thread and the menu/icon callbacks tell the UI thread.
enum UiEvent {
    /// Create the icon.
    Show { snapshot: Snapshot, actions: UnboundedSender<Action>, shown: oneshot::Sender<Result<(), String>> },
    /// Render a new state.
    Update(Snapshot),
    /// Remove the icon.
    Hide(oneshot::Sender<()>),
    /// A menu entry was clicked.
    Menu(MenuId),
    /// The icon was clicked.
    Icon(TrayIconEvent),
    /// The app thread has ended: leave the loop.
    Exit,
}

/// The UI thread, as the app thread sees it.
pub struct Host {
    proxy: EventLoopProxy<UiEvent>,
}

/// Runs the event loop on this (the main) thread and `app` on a thread of its own; returns when
/// `app` has returned.
pub fn run_main<F>(app: F) -> anyhow::Result<()>
where
    F: FnOnce(Host) -> anyhow::Result<()> + Send + 'static,
{
    let mut event_loop = EventLoopBuilder::<UiEvent>::with_user_event().build();
    #[cfg(target_os = "macos")]
    {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
        // A menu-bar extra: no Dock icon and no menu bar of its own.
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
    }
    let proxy = event_loop.create_proxy();
    // The libraries call these on the UI thread; the loop handles them like any other event.
    let to_loop = proxy.clone();
    MenuEvent::set_event_handler(Some(move |e: MenuEvent| {
        let _ = to_loop.send_event(UiEvent::Menu(e.id));
    }));
    let to_loop = proxy.clone();
    TrayIconEvent::set_event_handler(Some(move |e: TrayIconEvent| {
        let _ = to_loop.send_event(UiEvent::Icon(e));
    }));

    let exit = proxy.clone();
    let app_thread = std::thread::Builder::new().name("app".into()).spawn(move || {
        let result = app(Host { proxy });
        let _ = exit.send_event(UiEvent::Exit);
        result
    })?;

    let mut shown: Option<Shown> = None;
    event_loop.run_return(|event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        let Event::UserEvent(event) = event else { return };
        match event {
            UiEvent::Show { snapshot, actions, shown: reply } => {
                let result = Shown::new(snapshot, actions);
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
                shown = result.ok();
            }
            UiEvent::Update(snapshot) => {
                if let Some(tray) = &mut shown {
                    tray.render(snapshot);
                }
            }
            UiEvent::Hide(done) => {
                shown = None;
                let _ = done.send(());
            }
            UiEvent::Menu(id) => {
                if let Some(tray) = &shown {
                    tray.clicked(&id);
                }
            }
            UiEvent::Icon(event) => {
                if let (Some(tray), Some(action)) = (&shown, icon_click(&event)) {
                    let _ = tray.actions.send(action);
                }
            }
            UiEvent::Exit => *control_flow = ControlFlow::Exit,
        }
    });
    drop(shown);
    app_thread.join().map_err(|_| anyhow::anyhow!("the app thread panicked"))?
}

/// Windows: a left click opens the window (the menu is on the right button). macOS shows the
/// menu on any click, as menu-bar extras do.
fn icon_click(event: &TrayIconEvent) -> Option<Action> {
    match event {
        TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. }
            if cfg!(windows) =>
        {
            Some(Action::OpenWindow)
        }
        _ => None,
    }
}

/// The icon while it is shown (UI thread only).
struct Shown {
    icon: TrayIcon,
    actions: UnboundedSender<Action>,
    /// What each menu id does, for the menu currently shown.
    ids: HashMap<MenuId, Action>,
    /// What is shown, so that an unchanged menu is not rebuilt (an open menu would close).
    mood: Option<Mood>,
    entries: Vec<Entry>,
}

impl Shown {
    fn new(snapshot: Snapshot, actions: UnboundedSender<Action>) -> Result<Shown, String> {
        let icon = TrayIconBuilder::new()
            .with_id("sandbox-forward")
            .with_menu_on_left_click(!cfg!(windows))
            .build()
            .map_err(|e| format!("cannot show the tray icon: {e}"))?;
        let mut shown = Shown { icon, actions, ids: HashMap::new(), mood: None, entries: Vec::new() };
        shown.render(snapshot);
        Ok(shown)
    }

    fn render(&mut self, snapshot: Snapshot) {
        let mood = menu::mood(&snapshot);
        if self.mood != Some(mood) {
            let (pixels, size, template) = image(mood);
            match Icon::from_rgba(pixels, size, size) {
                Ok(image) => {
                    if let Err(e) = self.icon.set_icon_with_as_template(Some(image), template) {
                        tracing::warn!("cannot change the tray icon: {e}");
                    }
                }
                Err(e) => tracing::warn!("bad tray icon image: {e}"),
            }
            self.mood = Some(mood);
        }
        let _ = self.icon.set_tooltip(Some(menu::tooltip(&snapshot)));
        let entries = menu::menu(&snapshot);
        if entries == self.entries {
            return;
        }
        self.entries = entries.clone();
        let mut ids = HashMap::new();
        let items = items(entries, &mut ids);
        let menu = Menu::new();
        for item in &items {
            if let Err(e) = menu.append(item.as_ref()) {
                tracing::warn!("cannot build the tray menu: {e}");
            }
        }
        self.icon.set_menu(Some(Box::new(menu)));
        self.ids = ids;
    }

    fn clicked(&self, id: &MenuId) {
        if let Some(action) = self.ids.get(id) {
            let _ = self.actions.send(action.clone());
        }
    }
}

/// The icon image for a mood: RGBA pixels, size, and whether it is a macOS template image.
fn image(mood: Mood) -> (Vec<u8>, u32, bool) {
    if cfg!(target_os = "macos") {
        // 22 pt menu bar at 2x.
        match mood {
            Mood::Idle => (icon::template_rgba(36), 36, true),
            _ => (icon::rgba(mood, 36), 36, false),
        }
    } else {
        (icon::rgba(mood, 32), 32, false)
    }
}

/// The menu entries as muda items; records what each clickable id does.
fn items(entries: Vec<Entry>, ids: &mut HashMap<MenuId, Action>) -> Vec<Box<dyn IsMenuItem>> {
    entries
        .into_iter()
        .map(|entry| -> Box<dyn IsMenuItem> {
            match entry {
                Entry::Separator => Box::new(PredefinedMenuItem::separator()),
                Entry::Item { label, action } => {
                    let item = MenuItem::new(menu_text(&label), action.is_some(), None);
                    if let Some(action) = action {
                        ids.insert(item.id().clone(), action);
                    }
                    Box::new(item)
                }
                Entry::Check { label, checked, action } => {
                    let item = CheckMenuItem::new(menu_text(&label), true, checked, None);
                    ids.insert(item.id().clone(), action);
                    Box::new(item)
                }
                Entry::Sub { label, entries } => {
                    let submenu = Submenu::new(menu_text(&label), true);
                    for child in items(entries, ids) {
                        if let Err(e) = submenu.append(child.as_ref()) {
                            tracing::warn!("cannot build the tray menu: {e}");
                        }
                    }
                    Box::new(submenu)
                }
            }
        })
        .collect()
}

/// muda reads `&` as a mnemonic marker; labels are plain text.
fn menu_text(label: &str) -> String {
    label.replace('&', "&&")
}

/// The shown tray, as the app thread holds it.
pub struct TrayHandle {
    proxy: EventLoopProxy<UiEvent>,
}

impl TrayHandle {
    /// Shows a new state; false once the UI thread is gone.
    pub async fn update(&self, snapshot: Snapshot) -> bool {
        self.proxy.send_event(UiEvent::Update(snapshot)).is_ok()
    }

    /// Removes the icon.
    pub async fn shutdown(&self) {
        let (done, removed) = oneshot::channel();
        if self.proxy.send_event(UiEvent::Hide(done)).is_ok() {
            let _ = removed.await;
        }
    }
}

/// Shows the tray icon on the UI thread.
pub async fn spawn(
    host: &Host,
    snapshot: Snapshot,
    actions: UnboundedSender<Action>,
) -> Result<TrayHandle, String> {
    let (shown, result) = oneshot::channel();
    host.proxy
        .send_event(UiEvent::Show { snapshot, actions, shown })
        .map_err(|_| "the UI thread has stopped".to_owned())?;
    result.await.map_err(|_| "the UI thread has stopped".to_owned())??;
    Ok(TrayHandle { proxy: host.proxy.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ampersands_stay_text_not_mnemonics() {
        assert_eq!(menu_text("Tom & Jerry"), "Tom && Jerry");
        assert_eq!(menu_text("Open Sandbox Forward…"), "Open Sandbox Forward…");
    }
}
