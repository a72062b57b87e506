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

use crate::protocol::{AuthSettings, ForwardSpec, ForwardView, IdeChoice, SandboxSettings};

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
    }
}

/// Applies edited settings to a profile (a new one, or the stored one being edited: its
/// forwards, CA file and unchanged secrets are kept). Every field is validated; the error is
/// one sentence naming the field.
pub fn apply_settings(
    settings: &SandboxSettings,
    stored: Option<Profile>,
) -> Result<(SandboxName, Profile), String> {
    let name = SandboxName::new(settings.name.trim()).map_err(|e| e.to_string())?;
    let server = settings.server.trim();
    ServerUrl::parse(server).map_err(|e| e.to_string())?;
    let folder = settings.remote_folder.trim();
    let folder = if folder.is_empty() { ide::DEFAULT_REMOTE_FOLDER } else { folder };
    ide::validate_folder(folder).map_err(|e| e.to_string())?;

    let mut profile = stored.unwrap_or_default();
    let old_cookie = std::mem::take(&mut profile.credentials.cookies).into_iter().next();
    profile.server = server.to_owned();
    profile.remote_folder = (folder != ide::DEFAULT_REMOTE_FOLDER).then(|| folder.to_owned());
    profile.oidc = None;
    profile.credentials =
        Credentials { headers: std::mem::take(&mut profile.credentials.headers), ..Default::default() };
    match &settings.auth {
        AuthSettings::None => {}
        AuthSettings::Oidc { issuer, client_id, scopes, audience } => {
            let issuer = issuer.trim();
            url_like(issuer).map_err(|why| format!("OpenID issuer: {why}"))?;
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
                ("", Some((old_name, old_value))) if old_name == cookie => old_value,
                ("", _) => return Err("Cookie value: required".into()),
                (v, _) => v.to_owned(),
            };
            profile.credentials.cookies = vec![(cookie.to_owned(), value)];
        }
    }
    // Header-safety of every credential, checked now rather than at the first connection.
    profile.credentials.headers().map_err(|e| e.to_string())?;
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
pub fn forward_view(
    spec: &PortForward,
    live: Option<&ForwardStatus>,
    stopped_by: Option<&String>,
) -> ForwardView {
    ForwardView {
        spec: spec_view(spec),
        on: live.is_some(),
        bound_port: live.map(|l| l.local_port),
        active: live.map_or(0, |l| l.active),
        total: live.map_or(0, |l| l.total),
        bytes_sent: live.map_or(0, |l| l.bytes_sent),
        bytes_received: live.map_or(0, |l| l.bytes_received),
        last_error: live.and_then(|l| l.last_error.clone()).or_else(|| stopped_by.cloned()),
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
