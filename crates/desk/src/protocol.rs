//! The one protocol between the app's resident part (the tray host, which owns all state) and
//! its faces (the window, the tray menu). Every request is an action the core can do; every
//! answer carries the whole [`Snapshot`], so a face never holds state of its own.
//!
//! The window's TypeScript types are generated from these definitions (`ts-rs`, see
//! `ui/src/bindings/`), never written by hand.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Something the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Request {
    /// Just the current state.
    Snapshot,
    /// Probe every sandbox, and scan the ready ones for listening ports, now instead of at the
    /// next tick.
    Refresh,
    /// Add a sandbox (`original` absent) or change one (`original` = its current name).
    SaveSandbox { original: Option<String>, settings: SandboxSettings },
    /// Forget a sandbox: stop its forwards, remove key, sign-in, settings and Host block.
    RemoveSandbox { name: String },
    /// Register the key, write the ssh-config block, then open the default IDE.
    Connect { name: String },
    /// Open the sandbox in an IDE or a terminal (connecting first).
    OpenIn { name: String, ide: IdeChoice },
    /// Browser sign-in (OpenID sandboxes).
    SignIn { name: String },
    /// Sign out: revoke and delete the stored tokens.
    SignOut { name: String },
    /// Add a forward, or replace the one with the same remote port.
    SaveForward { name: String, forward: ForwardSpec },
    /// Remove a configured forward (stopping it).
    RemoveForward { name: String, remote_port: u16 },
    /// Turn a configured forward on or off.
    SetForward { name: String, remote_port: u16, on: bool },
    /// Settings of the app itself.
    SetPreferences { preferences: Preferences },
    /// Open a running forward's `http://localhost:PORT` in the browser.
    OpenForward { name: String, remote_port: u16 },
    /// Turn every running forward of every sandbox off (the tray's "Stop all forwards").
    StopAllForwards,
    /// Run the local demo sandbox again (after the user removed it, or beside other sandboxes).
    AddDemo,
    /// The TCP ports listening in a sandbox; the answer's `listening_ports`.
    ListeningPorts { name: String },
    /// Forward a port found listening in the sandbox ("5173 node — Forward"): saved on the same
    /// local port, or a free one where that is taken (always a free one on a sandbox served from
    /// this computer), and started.
    ForwardPort { name: String, remote_port: u16 },
    /// Forward every port that starts listening in the sandbox from now on, as it is found
    /// (off by default).
    SetAutoForward { name: String, on: bool },
}

/// The answer to every request: the state after it, and a sentence about what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub snapshot: Snapshot,
    /// "Forwarding 127.0.0.1:5173 → :5173", shown where the user acted.
    pub notice: Option<String>,
    /// The answer to [`Request::ListeningPorts`]; absent for every other request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub listening_ports: Option<ListeningPortsView>,
}

/// The TCP ports listening in a sandbox that a forward can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ListeningPortsView {
    /// Sorted by port.
    pub ports: Vec<DetectedPort>,
    /// Read over `ssh NAME` (the original server lacks the API for it): no process names.
    pub over_ssh: bool,
}

/// One listening port in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DetectedPort {
    pub port: u16,
    /// The listening process ("node"), made printable; null where the pod does not say.
    pub process: Option<String>,
    /// A saved forward of this sandbox already reaches it.
    pub forwarded: bool,
}

/// Everything a face shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub sandboxes: Vec<SandboxView>,
    pub preferences: Preferences,
    /// Most recent last.
    pub log: Vec<LogEntry>,
    /// Bumped on every change, so a face can skip redrawing an unchanged state.
    pub generation: u64,
    /// The app can run a demo sandbox and none exists: the faces offer [`Request::AddDemo`].
    pub demo_available: bool,
    /// This build's version, for the About panel.
    pub version: String,
}

/// One sandbox as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SandboxView {
    pub settings: SandboxSettings,
    /// The local demo sandbox the app runs itself.
    pub demo: bool,
    pub status: SandboxStatus,
    pub forwards: Vec<ForwardView>,
    /// New listening ports are forwarded as they are found ([`Request::SetAutoForward`]).
    pub auto_forward: bool,
    /// The ports the last background scan found listening (sandboxes that are ready are scanned
    /// every 30 s), each marked when a saved forward reaches it; empty until scanned.
    pub detected_ports: Vec<DetectedPort>,
}

/// A sandbox's editable settings. Secrets are never sent to a face: a stored cookie value comes
/// back empty, and an empty value on save keeps the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSettings {
    pub name: String,
    pub server: String,
    pub auth: AuthSettings,
    /// Folder "Open in IDE" opens (default `/workspace`).
    pub remote_folder: String,
    /// Credentials may go in cleartext to an `http://` server or issuer that is not on this
    /// machine (the CLI's `--allow-insecure-http`); refused otherwise. Loopback needs no
    /// allowance. Absent in older faces' requests: false.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// How the app authenticates to a sandbox's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "mode", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum AuthSettings {
    /// No credentials (a server on loopback, or one behind a VPN that needs none).
    None,
    /// OpenID Connect browser sign-in (public client).
    Oidc { issuer: String, client_id: String, scopes: Vec<String>, audience: Option<String> },
    /// A file holding a bearer token, re-read for every connection.
    BearerFile { path: String },
    /// A session cookie.
    Cookie { name: String, value: String },
}

/// Live status of a sandbox, from the last probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    pub health: Health,
    /// One sentence: what is wrong and what to do, or what is fine.
    pub detail: String,
    /// Our key pair exists and the `Host` block is written.
    pub key_registered: bool,
    /// Signed in (OpenID sandboxes only).
    pub signed_in: Option<bool>,
    /// Seconds since the Unix epoch of the last probe.
    pub checked_at: Option<u64>,
}

/// The state a sandbox is in, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Not probed yet.
    Unknown,
    /// The server does not answer, or answers wrongly.
    Unreachable,
    /// The sign-in is missing or expired, or the credentials are refused.
    NeedsSignIn,
    /// Reachable, not connected yet (no key or Host block).
    NotConnected,
    /// Not connected for ssh, but forwards of it are on (they need no key): not "Not
    /// connected", which read as "nothing works" while traffic flowed.
    Forwarding,
    /// Reachable and `ssh NAME` is set up.
    Ready,
}

/// A configured forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ForwardSpec {
    /// Port in the pod (1024–65535).
    pub remote_port: u16,
    /// Port on 127.0.0.1 (0: any free port).
    pub local_port: u16,
    /// What runs there ("vite", "debugpy").
    pub label: String,
    /// Starts with the app.
    pub auto_start: bool,
}

/// A configured forward and, while on, its live numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ForwardView {
    pub spec: ForwardSpec,
    /// Listening now.
    pub on: bool,
    /// The bound local port while on.
    pub bound_port: Option<u16>,
    pub active: u64,
    pub total: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Why it stopped or why its last connection failed.
    pub last_error: Option<String>,
    /// It stopped because its local port is taken: a free port to use instead.
    pub suggested_port: Option<u16>,
    /// A connection's tunnel is resuming after the network dropped it: for how many seconds.
    pub reconnecting_secs: Option<u64>,
}

/// Where a sandbox can be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum IdeChoice {
    VsCode,
    Cursor,
    Gateway,
    Zed,
    Terminal,
}

/// The app's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// What Connect opens.
    pub default_ide: IdeChoice,
    /// Start (in the tray) at login.
    pub start_at_login: bool,
    /// Desktop notifications when a forward fails or a sign-in expires.
    pub notifications: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences { default_ide: IdeChoice::VsCode, start_at_login: false, notifications: true }
    }
}

/// One line of the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub level: LogLevel,
    pub sandbox: Option<String>,
    pub message: String,
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// A request that failed: what kind of failure (faces and tests branch on it) and one sentence
/// naming the cause and the fix (what the user reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, thiserror::Error)]
#[error("{message}")]
#[serde(rename_all = "camelCase")]
pub struct ActionError {
    /// Absent in an older tray process's answers: `failed`.
    #[serde(default)]
    pub code: ErrorCode,
    pub message: String,
}

impl ActionError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ActionError { code, message: message.into() }
    }
}

/// The kinds of [`ActionError`]. A face decides what to offer by the code, never by the words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// Anything not below (a file that cannot be written, a setup step that failed).
    #[default]
    Failed,
    /// A name, address, folder, port or setting refused before anything was done.
    InvalidInput,
    /// No sandbox or forward of that name or port.
    NotFound,
    /// A sandbox of that name (or the demo) is there already.
    AlreadyExists,
    /// The forward is off; turn it on first.
    ForwardOff,
    /// The local port is taken by another program (the forward's view offers a free one).
    PortInUse,
    /// The sign-in is missing, expired or refused: sign in.
    SignInNeeded,
    /// The server or the network failed (unreachable, refused access, not a sandbox).
    Unreachable,
    /// The sandbox does not use that (browser sign-in on a sandbox without OpenID).
    NotSupported,
    /// The desktop could not do it (no program for a link, start at login refused).
    Desktop,
    /// The window: no tray process answers on the control socket.
    TrayNotRunning,
    /// A request or answer the other side cannot read (a newer or older app).
    Protocol,
}

/// What travels back over the control socket and the window's IPC.
pub type Outcome = Result<Reply, ActionError>;

/// What the window is asked to show when it opens or comes forward: the tray's "Add sandbox…",
/// or a `sandbox-forward://add?…` link the system handed to the app. The window takes these from
/// the window process (its `take_intents` command), never from the tray process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Intent {
    /// Open the Add form: empty, or filled from a link (every value shown; nothing is saved,
    /// connected or signed in until the user saves).
    AddSandbox { settings: Option<SandboxSettings>, link: Option<String> },
    /// A link that cannot be used, and why (one sentence).
    BadLink { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted pod is healed by the next connection and shows as ready: no face is sent a
    /// "pod restarted" state to show in amber.
    #[test]
    fn there_is_no_pod_restarted_health() {
        assert!(serde_json::from_str::<Health>("\"podRestarted\"").is_err());
        assert_eq!(serde_json::to_string(&Health::Ready).unwrap(), "\"ready\"");
    }
}
