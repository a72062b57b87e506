//! Conversions between the core's stored settings and the protocol's views. Secrets stay on
//! this side: a cookie's value never leaves, and an empty value on save keeps the stored one.

use std::path::PathBuf;

use sandbox_core::auth::Credentials;
use sandbox_core::forwards::{ForwardStatus, PortForward};
use sandbox_core::ide::{self, Ide};
use sandbox_core::name::SandboxName;
use sandbox_core::oidc::OidcSettings;
use sandbox_core::profile::Profile;
use sandbox_core::server::ServerUrl;

use crate::protocol::{
    AuthSettings, ForwardSpec, ForwardView, Health, IdeChoice, SandboxSettings, SandboxStatus,
};

/// The settings a face may see.
pub fn settings_view(name: &SandboxName, profile: &Profile) -> SandboxSettings {
    let auth = if let Some(oidc) = &profile.oidc {
        AuthSettings::Oidc {
            issuer: oidc.issuer.clone(),
            client_id: oidc.client_id.clone(),
            scopes: oidc.scopes.clone(),
            audience: oidc.audience.clone(),
        }
    } else if let Some(path) = &profile.credentials.bearer_file {
        AuthSettings::BearerFile { path: path.display().to_string() }
    } else if let Some((name, _)) = profile.credentials.cookies.first() {
        AuthSettings::Cookie { name: name.clone(), value: String::new() }
    } else {
        AuthSettings::None
    };
    SandboxSettings {
        name: name.to_string(),
        server: profile.server.clone(),
        auth,
        remote_folder: profile.remote_folder().to_owned(),
        allow_insecure_http: profile.allow_insecure_http,
    }
}

/// Settings the app refuses, as one sentence naming the field (nothing was saved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSettings(pub String);

impl InvalidSettings {
    fn from_error(e: impl std::fmt::Display) -> Self {
        InvalidSettings(e.to_string())
    }
}

impl From<&str> for InvalidSettings {
    fn from(message: &str) -> Self {
        InvalidSettings(message.to_owned())
    }
}

impl From<String> for InvalidSettings {
    fn from(message: String) -> Self {
        InvalidSettings(message)
    }
}

/// Applies edited settings to a profile (a new one, or the stored one being edited: its
/// forwards, CA file and unchanged secrets are kept). Every field is validated; the error is
/// one sentence naming the field.
pub fn apply_settings(
    settings: &SandboxSettings,
    stored: Option<Profile>,
) -> Result<(SandboxName, Profile), InvalidSettings> {
    let name = SandboxName::new(settings.name.trim()).map_err(InvalidSettings::from_error)?;
    let server = settings.server.trim();
    ServerUrl::parse(server).map_err(InvalidSettings::from_error)?;
    let folder = settings.remote_folder.trim();
    let folder = if folder.is_empty() { ide::DEFAULT_REMOTE_FOLDER } else { folder };
    ide::validate_folder(folder).map_err(InvalidSettings::from_error)?;

    let mut profile = stored.unwrap_or_default();
    let old_cookie = std::mem::take(&mut profile.credentials.cookies).into_iter().next();
    let before = profile.clone();
    profile.server = server.to_owned();
    // A stored cookie belongs to the server it was given for: kept only while that stays.
    let same_server = before.same_server(&profile);
    profile.allow_insecure_http = settings.allow_insecure_http;
    profile.remote_folder = (folder != ide::DEFAULT_REMOTE_FOLDER).then(|| folder.to_owned());
    profile.oidc = None;
    // Extra headers (set with the CLI's --header, often an API key) are credentials too: they
    // stay only with the server they were given for.
    let headers = std::mem::take(&mut profile.credentials.headers);
    profile.credentials =
        Credentials { headers: if same_server { headers } else { Vec::new() }, ..Default::default() };
    match &settings.auth {
        AuthSettings::None => {}
        AuthSettings::Oidc { issuer, client_id, scopes, audience } => {
            let issuer = issuer.trim();
            url_like(issuer).map_err(|why| InvalidSettings(format!("OpenID issuer: {why}")))?;
            if client_id.trim().is_empty() {
                return Err(
                    "OpenID client id: required (ask your administrator for the app's client id)".into()
                );
            }
            let scopes: Vec<String> =
                scopes.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            profile.oidc = Some(OidcSettings {
                issuer: issuer.to_owned(),
                client_id: client_id.trim().to_owned(),
                scopes: if scopes.is_empty() {
                    sandbox_core::oidc::DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
                } else {
                    scopes
                },
                audience: audience.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned),
            });
        }
        AuthSettings::BearerFile { path } => {
            let path = PathBuf::from(path.trim());
            if !path.is_absolute() {
                return Err("Bearer token file: give an absolute path".into());
            }
            profile.credentials.bearer_file = Some(path);
        }
        AuthSettings::Cookie { name: cookie, value } => {
            let cookie = cookie.trim();
            if cookie.is_empty() || !cookie.bytes().all(|b| b.is_ascii_graphic() && !b";=,".contains(&b)) {
                return Err("Cookie name: letters, digits and punctuation other than ; = , only".into());
            }
            let value = match (value.as_str(), old_cookie) {
                ("", Some((old_name, old_value))) if old_name == cookie && same_server => old_value,
                ("", Some(_)) if !same_server => {
                    return Err("Cookie value: required again, since the server changed (the stored cookie was for the old server)".into())
                }
                ("", _) => return Err("Cookie value: required".into()),
                (v, _) => v.to_owned(),
            };
            profile.credentials.cookies = vec![(cookie.to_owned(), value)];
        }
    }
    // No credential in cleartext off loopback unless the user allowed it.
    profile.check_cleartext().map_err(InvalidSettings::from_error)?;
    // Header-safety of every credential, checked now rather than at the first connection.
    profile.credentials.headers().map_err(InvalidSettings::from_error)?;
    Ok((name, profile))
}

fn url_like(s: &str) -> Result<(), &'static str> {
    match s.split_once("://") {
        Some(("https", rest)) | Some(("http", rest)) if !rest.is_empty() => Ok(()),
        _ => Err("give the full URL, e.g. https://login.example.com/realms/dev"),
    }
}

/// A stored forward as the protocol's spec.
pub fn spec_view(f: &PortForward) -> ForwardSpec {
    ForwardSpec {
        remote_port: f.remote_port,
        local_port: f.local_port,
        label: f.label.clone(),
        auto_start: f.auto_start,
    }
}

/// A protocol spec as the core's forward.
pub fn spec_from(f: &ForwardSpec) -> PortForward {
    PortForward {
        remote_port: f.remote_port,
        local_port: f.local_port,
        label: f.label.trim().to_owned(),
        auto_start: f.auto_start,
    }
}

/// A configured forward with its live numbers, if running, or the error that stopped it.
/// Why a forward is off after it failed to start, and (local port taken) a free one to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub message: String,
    pub suggested_port: Option<u16>,
}

pub fn forward_view(
    spec: &PortForward,
    live: Option<&ForwardStatus>,
    stopped_by: Option<&Stopped>,
) -> ForwardView {
    ForwardView {
        spec: spec_view(spec),
        on: live.is_some(),
        bound_port: live.map(|l| l.local_port),
        active: live.map_or(0, |l| l.active),
        total: live.map_or(0, |l| l.total),
        bytes_sent: live.map_or(0, |l| l.bytes_sent),
        bytes_received: live.map_or(0, |l| l.bytes_received),
        last_error: live.and_then(|l| l.last_error.clone()).or_else(|| stopped_by.map(|s| s.message.clone())),
        suggested_port: if live.is_some() { None } else { stopped_by.and_then(|s| s.suggested_port) },
        reconnecting_secs: live.and_then(|l| l.reconnecting_for).map(|d| d.as_secs()),
    }
}

/// The status a face shows: a sandbox that is reachable but not set up for ssh while some of
/// its forwards are on is `Forwarding`, not `NotConnected`.
pub fn status_view(probed: SandboxStatus, forwards: &[ForwardView], name: &SandboxName) -> SandboxStatus {
    let on = forwards.iter().filter(|f| f.on).count();
    if probed.health != Health::NotConnected || on == 0 {
        return probed;
    }
    let ports = if on == 1 { "1 port" } else { "ports" };
    SandboxStatus {
        health: Health::Forwarding,
        detail: format!("Forwarding {ports}; Connect to set up `ssh {name}` as well."),
        ..probed
    }
}

/// The core's IDE for a protocol choice.
pub fn ide(choice: IdeChoice) -> Ide {
    match choice {
        IdeChoice::VsCode => Ide::VsCode,
        IdeChoice::Cursor => Ide::Cursor,
        IdeChoice::Gateway => Ide::Gateway,
        IdeChoice::Zed => Ide::Zed,
        IdeChoice::Terminal => Ide::Terminal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(server: &str, auth: AuthSettings) -> SandboxSettings {
        SandboxSettings {
            name: "box".into(),
            server: server.into(),
            auth,
            remote_folder: String::new(),
            allow_insecure_http: false,
        }
    }

    fn cookie(value: &str) -> AuthSettings {
        AuthSettings::Cookie { name: "sid".into(), value: value.into() }
    }

    #[test]
    fn a_sandbox_whose_forwards_carry_traffic_is_not_shown_as_not_connected() {
        let name = SandboxName::new("box").unwrap();
        let probed = SandboxStatus {
            health: Health::NotConnected,
            detail: "Reachable. Connect to register a key.".into(),
            key_registered: false,
            signed_in: None,
            checked_at: Some(1),
        };
        let spec =
            PortForward { remote_port: 5173, local_port: 5173, label: String::new(), auto_start: false };
        let off = forward_view(&spec, None, None);
        assert_eq!(status_view(probed.clone(), std::slice::from_ref(&off), &name), probed);
        let on = ForwardView { on: true, active: 2, ..off };
        let shown = status_view(probed.clone(), std::slice::from_ref(&on), &name);
        assert_eq!(shown.health, Health::Forwarding);
        assert_eq!(shown.detail, "Forwarding 1 port; Connect to set up `ssh box` as well.");
        assert_eq!(shown.checked_at, Some(1));
        // Any other health stays as probed: an unreachable server is not hidden by a forward.
        let down = SandboxStatus { health: Health::Unreachable, ..probed };
        assert_eq!(status_view(down.clone(), &[on], &name), down);
    }

    #[test]
    fn a_forward_resuming_its_tunnel_shows_for_how_long() {
        let spec =
            PortForward { remote_port: 5173, local_port: 5173, label: String::new(), auto_start: false };
        let mut live = ForwardStatus {
            sandbox: "box".into(),
            remote_port: 5173,
            local_port: 5173,
            active: 1,
            total: 1,
            bytes_sent: 0,
            bytes_received: 0,
            last_error: None,
            reconnecting_for: None,
        };
        assert_eq!(forward_view(&spec, Some(&live), None).reconnecting_secs, None);
        live.reconnecting_for = Some(std::time::Duration::from_millis(12_400));
        assert_eq!(forward_view(&spec, Some(&live), None).reconnecting_secs, Some(12));
        assert_eq!(forward_view(&spec, None, None).reconnecting_secs, None);
    }

    #[test]
    fn a_stored_cookie_stays_with_its_server() {
        let (_, stored) = apply_settings(&settings("https://a.example.com", cookie("secret")), None).unwrap();
        // Same server (written differently): an empty value keeps the stored cookie.
        let (_, kept) =
            apply_settings(&settings("a.example.com/", cookie("")), Some(stored.clone())).unwrap();
        assert_eq!(kept.credentials.cookies, [("sid".to_owned(), "secret".to_owned())]);
        // Another server: the cookie does not follow.
        let err =
            apply_settings(&settings("https://b.example.com", cookie("")), Some(stored.clone())).unwrap_err();
        assert!(err.0.contains("server changed"), "{err}");
        let (_, new) =
            apply_settings(&settings("https://b.example.com", cookie("fresh")), Some(stored)).unwrap();
        assert_eq!(new.credentials.cookies, [("sid".to_owned(), "fresh".to_owned())]);
    }

    #[test]
    fn extra_headers_stay_with_their_server() {
        let mut stored = Profile { server: "https://a.example.com".into(), ..Default::default() };
        stored.credentials.headers = vec![("X-Api-Key".into(), "secret".into())];
        let none = || AuthSettings::None;
        let (_, same) =
            apply_settings(&settings("https://a.example.com", none()), Some(stored.clone())).unwrap();
        assert_eq!(same.credentials.headers, stored.credentials.headers);
        let (_, moved) = apply_settings(&settings("https://b.example.com", none()), Some(stored)).unwrap();
        assert!(moved.credentials.headers.is_empty());
    }

    #[test]
    fn cleartext_off_loopback_needs_the_setting() {
        let remote = settings("http://sandbox.example.com", AuthSettings::None);
        let err = apply_settings(&remote, None).unwrap_err();
        assert!(err.0.contains("Allow insecure HTTP"), "{err}");
        let allowed = SandboxSettings { allow_insecure_http: true, ..remote };
        let (name, profile) = apply_settings(&allowed, None).unwrap();
        assert!(profile.allow_insecure_http);
        assert!(settings_view(&name, &profile).allow_insecure_http);
        let issuer = AuthSettings::Oidc {
            issuer: "http://id.example.com".into(),
            client_id: "c".into(),
            scopes: vec![],
            audience: None,
        };
        assert!(apply_settings(&settings("https://sandbox.example.com", issuer), None).is_err());
        assert!(apply_settings(&settings("http://127.0.0.1:8080", AuthSettings::None), None).is_ok());
    }
}
