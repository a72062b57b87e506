//! The tray icon on Linux and the BSDs: a StatusNotifierItem (what AppIndicator speaks) over
//! D-Bus via `ksni`, so this process links no GTK. Renders [`crate::menu`] and sends clicks to the
//! dispatcher. ksni runs on the caller's tokio runtime: the main thread needs no event loop.

use ksni::menu::{CheckmarkItem, StandardItem, SubMenu};
use ksni::{MenuItem, TrayMethods};
use sandbox_desk::protocol::Snapshot;
use tokio::sync::mpsc::UnboundedSender;

use crate::icon;
use crate::menu::{self, Action, Entry};

/// What the tray shows.
pub struct Tray {
    /// The state rendered.
    pub snapshot: Snapshot,
    /// Where clicks go.
    pub actions: UnboundedSender<Action>,
}

impl ksni::Tray for Tray {
    fn id(&self) -> String {
        "sandbox-forward".into()
    }

    fn title(&self) -> String {
        "Sandbox Forward".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        let mood = menu::mood(&self.snapshot);
        [22, 32, 64]
            .into_iter()
            .map(|size| ksni::Icon { width: size, height: size, data: icon::pixmap(mood, size as u32) })
            .collect()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "Sandbox Forward".into(),
            description: menu::tooltip(&self.snapshot),
            ..Default::default()
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        let _ = self.actions.send(Action::OpenWindow);
    }

    fn menu(&self) -> Vec<MenuItem<Self>> {
        menu::menu(&self.snapshot).into_iter().map(render).collect()
    }
}

fn render(entry: Entry) -> MenuItem<Tray> {
    match entry {
        Entry::Separator => MenuItem::Separator,
        Entry::Item { label, action } => StandardItem {
            label,
            enabled: action.is_some(),
            activate: Box::new(move |tray: &mut Tray| {
                if let Some(action) = &action {
                    let _ = tray.actions.send(action.clone());
                }
            }),
            ..Default::default()
        }
        .into(),
        Entry::Check { label, checked, action } => CheckmarkItem {
            label,
            checked,
            activate: Box::new(move |tray: &mut Tray| {
                let _ = tray.actions.send(action.clone());
            }),
            ..Default::default()
        }
        .into(),
        Entry::Sub { label, entries } => {
            SubMenu { label, submenu: entries.into_iter().map(render).collect(), ..Default::default() }.into()
        }
    }
}

/// Nothing to hand over: ksni needs no UI thread.
pub struct Host;

/// Runs the app on this thread.
pub fn run_main<F>(app: F) -> anyhow::Result<()>
where
    F: FnOnce(Host) -> anyhow::Result<()>,
{
    app(Host)
}

/// The shown tray.
pub struct TrayHandle(ksni::Handle<Tray>);

impl TrayHandle {
    /// Shows a new state; false once the tray is gone.
    pub async fn update(&self, snapshot: Snapshot) -> bool {
        self.0.update(|t: &mut Tray| t.snapshot = snapshot).await.is_some()
    }

    /// Removes the icon.
    pub async fn shutdown(&self) {
        self.0.shutdown().await;
    }
}

/// Shows the tray; keeps working when no tray host is running yet (it appears when one starts).
pub async fn spawn(
    _host: &Host,
    snapshot: Snapshot,
    actions: UnboundedSender<Action>,
) -> Result<TrayHandle, String> {
    let handle = Tray { snapshot, actions }.assume_sni_available(true).spawn().await;
    handle.map(TrayHandle).map_err(|e| e.to_string())
}
