//! The tray menu as data, from a snapshot: what every platform's tray adapter renders. Pure, so
//! the labels and the actions behind them are unit-tested without a desktop.

use sandbox_desk::protocol::{ForwardView, Health, IdeChoice, Request, SandboxView, Snapshot};

/// At most this many detected ports are offered in a sandbox's submenu.
const MAX_OFFERS: usize = 10;

/// What clicking an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A request to the app model.
    Request(Request),
    /// Open (or focus) the window.
    OpenWindow,
    /// Open (or focus) the window on the Add form.
    AddSandbox,
    /// Stop the app.
    Quit,
}

/// One menu entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line; no action means disabled (a status line).
    Item { label: String, action: Option<Action> },
    /// A check item.
    Check { label: String, checked: bool, action: Action },
    /// A submenu.
    Sub { label: String, entries: Vec<Entry> },
    /// A separator.
    Separator,
}

/// The overall state the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    /// Nothing needs the user and nothing is forwarded.
    Idle,
    /// At least one forward is on.
    Active,
    /// A sandbox needs the user (sign-in, unreachable, failed forward).
    Attention,
}

/// The icon state for a snapshot.
pub fn mood(snapshot: &Snapshot) -> Mood {
    let attention = snapshot.sandboxes.iter().any(|s| {
        matches!(s.status.health, Health::NeedsSignIn | Health::Unreachable)
            || s.forwards.iter().any(|f| !f.on && f.last_error.is_some())
    });
    if attention {
        Mood::Attention
    } else if snapshot.sandboxes.iter().any(|s| s.forwards.iter().any(|f| f.on)) {
        Mood::Active
    } else {
        Mood::Idle
    }
}

/// The tooltip: one line per sandbox.
pub fn tooltip(snapshot: &Snapshot) -> String {
    if snapshot.sandboxes.is_empty() {
        return "No sandboxes yet".into();
    }
    snapshot
        .sandboxes
        .iter()
        .map(|s| format!("{}: {}", s.settings.name, health_word(s.status.health)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The whole menu.
pub fn menu(snapshot: &Snapshot) -> Vec<Entry> {
    let mut entries: Vec<Entry> = snapshot.sandboxes.iter().map(sandbox_menu).collect();
    if entries.is_empty() {
        entries.push(Entry::Item { label: "No sandboxes yet".into(), action: None });
    }
    if snapshot.sandboxes.iter().any(|s| s.forwards.iter().any(|f| f.on)) {
        entries.push(Entry::Item {
            label: "Stop all forwards".into(),
            action: Some(Action::Request(Request::StopAllForwards)),
        });
    }
    if snapshot.demo_available {
        entries.push(Entry::Item {
            label: "Add the demo sandbox".into(),
            action: Some(Action::Request(Request::AddDemo)),
        });
    }
    entries.push(Entry::Item { label: "Add sandbox…".into(), action: Some(Action::AddSandbox) });
    entries.push(Entry::Separator);
    entries.push(Entry::Item { label: "Open Sandbox Forward…".into(), action: Some(Action::OpenWindow) });
    let mut preferences = snapshot.preferences.clone();
    preferences.start_at_login = !preferences.start_at_login;
    entries.push(Entry::Check {
        label: "Start at login".into(),
        checked: snapshot.preferences.start_at_login,
        action: Action::Request(Request::SetPreferences { preferences }),
    });
    entries.push(Entry::Item { label: "Quit".into(), action: Some(Action::Quit) });
    entries
}

/// `Ready — “ssh dev” works.`: the health word once (a detail that repeats it is not prefixed)
/// and the core's `command` marks as quotes, which a menu can show.
fn status_label(word: &str, detail: &str) -> String {
    let mut plain = String::with_capacity(detail.len());
    let mut open = true;
    for c in detail.chars() {
        if c == '`' {
            plain.push(if open { '“' } else { '”' });
            open = !open;
        } else {
            plain.push(c);
        }
    }
    if plain.starts_with(word) {
        plain
    } else {
        format!("{word} — {plain}")
    }
}

fn sandbox_menu(s: &SandboxView) -> Entry {
    let name = s.settings.name.clone();
    let request = |r: Request| Some(Action::Request(r));
    let mut entries = vec![
        Entry::Item { label: status_label(health_word(s.status.health), &s.status.detail), action: None },
        Entry::Item { label: "Connect".into(), action: request(Request::Connect { name: name.clone() }) },
    ];
    for (ide, label) in [
        (IdeChoice::VsCode, "Open in VS Code"),
        (IdeChoice::Cursor, "Open in Cursor"),
        (IdeChoice::Gateway, "Open in JetBrains Gateway"),
        (IdeChoice::Zed, "Open in Zed"),
        (IdeChoice::Terminal, "Open a terminal (ssh)"),
    ] {
        entries.push(Entry::Item {
            label: label.into(),
            action: request(Request::OpenIn { name: name.clone(), ide }),
        });
    }
    if !s.forwards.is_empty() {
        entries.push(Entry::Separator);
        entries.extend(s.forwards.iter().map(|f| Entry::Check {
            label: forward_label(f),
            checked: f.on,
            action: Action::Request(Request::SetForward {
                name: name.clone(),
                remote_port: f.spec.remote_port,
                on: !f.on,
            }),
        }));
    }
    // Ports listening in the pod without a forward, one click from one (at most 10: a pod can
    // have many; the window lists them all).
    let offers: Vec<_> = s.detected_ports.iter().filter(|p| !p.forwarded).collect();
    if !offers.is_empty() {
        entries.push(Entry::Separator);
        entries.push(Entry::Item { label: "Listening in the pod:".into(), action: None });
        entries.extend(offers.iter().take(MAX_OFFERS).map(|p| Entry::Item {
            label: match &p.process {
                Some(process) => format!("{} {process} — Forward", p.port),
                None => format!("{} — Forward", p.port),
            },
            action: request(Request::ForwardPort { name: name.clone(), remote_port: p.port }),
        }));
    }
    if let Some(signed_in) = s.status.signed_in {
        entries.push(Entry::Separator);
        entries.push(if signed_in {
            Entry::Item { label: "Sign out".into(), action: request(Request::SignOut { name: name.clone() }) }
        } else {
            Entry::Item {
                label: "Sign in…".into(), action: request(Request::SignIn { name: name.clone() })
            }
        });
    }
    let demo = if s.demo { " (demo)" } else { "" };
    Entry::Sub { label: format!("{} {name}{demo}", health_dot(s.status.health)), entries }
}

/// `localhost:5173 → :5173 vite — live, 2 connections`.
pub fn forward_label(f: &ForwardView) -> String {
    let local = match (f.bound_port, f.spec.local_port) {
        (Some(p), _) | (None, p @ 1..) => format!("localhost:{p}"),
        (None, 0) => "localhost:auto".into(),
    };
    let label = if f.spec.label.is_empty() { String::new() } else { format!(" {}", f.spec.label) };
    let state = match (f.on, &f.last_error) {
        (true, _) if f.reconnecting_secs.is_some() => {
            format!(" — reconnecting ({} s)…", f.reconnecting_secs.unwrap_or_default())
        }
        (true, _) if f.active == 1 => format!(" — live, 1 connection{}", traffic(f)),
        (true, _) => format!(" — live, {} connections{}", f.active, traffic(f)),
        (false, Some(_)) => " — failed".to_owned(),
        (false, None) => String::new(),
    };
    format!("{local} → :{}{label}{state}", f.spec.remote_port)
}

/// `, ↑ 1.2 KiB ↓ 3.3 MiB` once a forward has carried anything.
fn traffic(f: &ForwardView) -> String {
    if f.bytes_sent == 0 && f.bytes_received == 0 {
        return String::new();
    }
    format!(", ↑ {} ↓ {}", human_bytes(f.bytes_sent), human_bytes(f.bytes_received))
}

/// Bytes for a menu label, as the window writes them (`ui/src/format.ts`): `999 B`, `1.2 KiB`,
/// `977 KiB`, `5.2 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if value < 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{} {}", value.round(), UNITS[unit]),
    }
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Unknown => "Checking",
        Health::Unreachable => "Unreachable",
        Health::NeedsSignIn => "Needs sign-in",
        Health::NotConnected => "Not connected",
        Health::Forwarding => "Forwarding",
        Health::Ready => "Ready",
    }
}

fn health_dot(h: Health) -> &'static str {
    match h {
        Health::Ready | Health::Forwarding => "●",
        Health::NotConnected | Health::Unknown => "○",
        Health::Unreachable | Health::NeedsSignIn => "▲",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_desk::protocol::{AuthSettings, ForwardSpec, Preferences, SandboxSettings, SandboxStatus};

    fn forward(port: u16, on: bool, error: Option<&str>) -> ForwardView {
        ForwardView {
            spec: ForwardSpec {
                remote_port: port,
                local_port: port,
                label: "vite".into(),
                auto_start: false,
            },
            on,
            bound_port: on.then_some(port),
            active: if on { 2 } else { 0 },
            total: 3,
            bytes_sent: 0,
            bytes_received: 0,
            last_error: error.map(str::to_owned),
            suggested_port: None,
            reconnecting_secs: None,
        }
    }

    fn snapshot(health: Health, signed_in: Option<bool>, forwards: Vec<ForwardView>) -> Snapshot {
        Snapshot {
            sandboxes: vec![SandboxView {
                settings: SandboxSettings {
                    name: "dev".into(),
                    server: "https://x.example".into(),
                    auth: AuthSettings::None,
                    remote_folder: "/workspace".into(),
                    allow_insecure_http: false,
                },
                demo: false,
                status: SandboxStatus {
                    health,
                    detail: "`ssh dev` works.".into(),
                    key_registered: true,
                    signed_in,
                    checked_at: None,
                },
                forwards,
                auto_forward: false,
                detected_ports: vec![],
            }],
            preferences: Preferences::default(),
            log: vec![],
            generation: 1,
            demo_available: false,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn the_status_line_says_its_word_once_and_shows_commands_as_quotes() {
        assert_eq!(status_label("Ready", "`ssh dev` works."), "Ready — “ssh dev” works.");
        assert_eq!(
            status_label("Unreachable", "Unreachable: connection refused"),
            "Unreachable: connection refused"
        );
        assert_eq!(status_label("Ready", "a `b"), "Ready — a “b");
    }

    #[test]
    fn a_sandbox_submenu_has_status_connect_ides_forwards_and_sign_in() {
        let snap =
            snapshot(Health::Ready, Some(false), vec![forward(5173, true, None), forward(9229, false, None)]);
        let menu = menu(&snap);
        let Entry::Sub { label, entries } = &menu[0] else { panic!("{menu:?}") };
        assert_eq!(label, "● dev");
        assert_eq!(entries[0], Entry::Item { label: "Ready — “ssh dev” works.".into(), action: None });
        assert_eq!(
            entries[1].clone(),
            Entry::Item {
                label: "Connect".into(),
                action: Some(Action::Request(Request::Connect { name: "dev".into() }))
            }
        );
        let labels: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Entry::Item { label, .. } | Entry::Check { label, .. } | Entry::Sub { label, .. } => {
                    label.clone()
                }
                Entry::Separator => "-".into(),
            })
            .collect();
        assert_eq!(
            labels[2..7],
            [
                "Open in VS Code",
                "Open in Cursor",
                "Open in JetBrains Gateway",
                "Open in Zed",
                "Open a terminal (ssh)"
            ]
        );
        assert!(entries.contains(&Entry::Check {
            label: "localhost:5173 → :5173 vite — live, 2 connections".into(),
            checked: true,
            action: Action::Request(Request::SetForward { name: "dev".into(), remote_port: 5173, on: false }),
        }));
        assert!(entries.contains(&Entry::Check {
            label: "localhost:9229 → :9229 vite".into(),
            checked: false,
            action: Action::Request(Request::SetForward { name: "dev".into(), remote_port: 9229, on: true }),
        }));
        assert_eq!(labels.last().unwrap(), "Sign in…");
        assert_eq!(mood(&snap), Mood::Active);
    }

    #[test]
    fn the_icon_asks_for_attention_when_a_sandbox_or_forward_needs_the_user() {
        assert_eq!(mood(&snapshot(Health::Ready, None, vec![])), Mood::Idle);
        assert_eq!(mood(&snapshot(Health::NeedsSignIn, Some(false), vec![])), Mood::Attention);
        let failed = forward(5173, false, Some("port 5173 is already in use"));
        assert_eq!(forward_label(&failed), "localhost:5173 → :5173 vite — failed");
        assert_eq!(mood(&snapshot(Health::Ready, None, vec![failed])), Mood::Attention);
    }

    #[test]
    fn the_app_entries_close_the_menu() {
        let menu = menu(&Snapshot::default());
        assert_eq!(menu[0], Entry::Item { label: "No sandboxes yet".into(), action: None });
        assert!(menu.contains(&Entry::Item { label: "Quit".into(), action: Some(Action::Quit) }));
        let Some(Entry::Check {
            checked: false,
            action: Action::Request(Request::SetPreferences { preferences }),
            ..
        }) = menu.iter().find(|e| matches!(e, Entry::Check { label, .. } if label == "Start at login"))
        else {
            panic!("{menu:?}")
        };
        assert!(preferences.start_at_login);
    }

    #[test]
    fn live_forwards_show_their_bytes_and_can_all_be_stopped_at_once() {
        let stop = Entry::Item {
            label: "Stop all forwards".into(),
            action: Some(Action::Request(Request::StopAllForwards)),
        };
        let idle = snapshot(Health::Ready, None, vec![forward(5173, false, None)]);
        assert!(!menu(&idle).contains(&stop));
        let mut live = forward(5173, true, None);
        assert_eq!(forward_label(&live), "localhost:5173 → :5173 vite — live, 2 connections");
        live.bytes_sent = 1_234;
        live.bytes_received = 3_456_789;
        assert_eq!(
            forward_label(&live),
            "localhost:5173 → :5173 vite — live, 2 connections, ↑ 1.2 KiB ↓ 3.3 MiB"
        );
        assert!(menu(&snapshot(Health::Ready, None, vec![live.clone()])).contains(&stop));
        live.reconnecting_secs = Some(12);
        assert_eq!(forward_label(&live), "localhost:5173 → :5173 vite — reconnecting (12 s)…");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(999_999), "977 KiB");
        assert_eq!(human_bytes(5_600_000_000), "5.2 GiB");
    }

    #[test]
    fn a_removed_demo_can_be_added_again_from_the_menu() {
        let add = Entry::Item {
            label: "Add the demo sandbox".into(),
            action: Some(Action::Request(Request::AddDemo)),
        };
        assert!(!menu(&Snapshot::default()).contains(&add));
        assert!(menu(&Snapshot { demo_available: true, ..Snapshot::default() }).contains(&add));
    }

    /// "Add sandbox…" is always there, with or without sandboxes, before the window's entry.
    #[test]
    fn add_sandbox_opens_the_window_on_the_add_form() {
        let add = Entry::Item { label: "Add sandbox…".into(), action: Some(Action::AddSandbox) };
        for snap in [Snapshot::default(), snapshot(Health::Ready, None, vec![])] {
            let menu = menu(&snap);
            let at = menu.iter().position(|e| *e == add).unwrap_or_else(|| panic!("{menu:?}"));
            assert_eq!(menu[at + 1], Entry::Separator);
        }
    }

    /// Ports found listening in the pod without a forward are offered as one click each.
    #[test]
    fn detected_ports_without_a_forward_are_offered() {
        use sandbox_desk::protocol::DetectedPort;
        let mut snap = snapshot(Health::Ready, None, vec![]);
        let port = |port, process: Option<&str>, forwarded| DetectedPort {
            port,
            process: process.map(Into::into),
            forwarded,
        };
        snap.sandboxes[0].detected_ports =
            vec![port(5173, Some("node"), false), port(8000, Some("python3"), true), port(9229, None, false)];
        let menu = menu(&snap);
        let Entry::Sub { entries, .. } = &menu[0] else { panic!("{menu:?}") };
        let offer = |label: &str, remote_port| Entry::Item {
            label: label.into(),
            action: Some(Action::Request(Request::ForwardPort { name: "dev".into(), remote_port })),
        };
        let at = entries
            .iter()
            .position(|e| *e == offer("5173 node — Forward", 5173))
            .unwrap_or_else(|| panic!("{entries:?}"));
        assert_eq!(entries[at - 1], Entry::Item { label: "Listening in the pod:".into(), action: None });
        assert_eq!(entries[at + 1], offer("9229 — Forward", 9229));
        assert!(!entries.iter().any(|e| matches!(e, Entry::Item { label, .. } if label.starts_with("8000"))));

        snap.sandboxes[0].detected_ports = (2000..2020).map(|p| port(p, None, false)).collect();
        let menu = super::menu(&snap);
        let Entry::Sub { entries, .. } = &menu[0] else { panic!("{menu:?}") };
        let offers = entries
            .iter()
            .filter(|e| matches!(e, Entry::Item { label, .. } if label.ends_with("— Forward")))
            .count();
        assert_eq!(offers, MAX_OFFERS);
    }
}
