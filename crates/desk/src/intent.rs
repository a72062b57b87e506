//! What the window process is asked to show: a `sandbox-forward://add?…` link (from the system,
//! through `tauri-plugin-deep-link`) or `--add` (the tray's "Add sandbox…") becomes an
//! [`Intent`] for the window. A link only fills the Add form; it is parsed and checked by
//! [`sandbox_core::add_link::parse`], as `sandbox-forward add-link` does.

use sandbox_core::add_link;
use sandbox_core::oidc::DEFAULT_SCOPES;

use crate::protocol::{AuthSettings, Intent, SandboxSettings};

/// The argument that opens the window on an empty Add form.
pub const ADD_ARG: &str = "--add";

/// The Add form filled from a link, or why the link is refused.
pub fn from_link(link: &str) -> Intent {
    match add_link::parse(link) {
        Ok(parsed) => {
            Intent::AddSandbox { settings: Some(settings(&parsed)), link: Some(link.trim().to_owned()) }
        }
        Err(e) => Intent::BadLink { message: format!("This link cannot add a sandbox: {e}.") },
    }
}

/// What a command line asks of the window (the program's name first, as `std::env::args`):
/// `--add` opens the Add form. Links are not read here: the deep-link plugin reads them (and
/// hands a second launch's to the running window).
pub fn from_args<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> Vec<Intent> {
    let add = args.into_iter().skip(1).any(|a| a.as_ref() == ADD_ARG);
    if add {
        vec![Intent::AddSandbox { settings: None, link: None }]
    } else {
        Vec::new()
    }
}

/// A link's values as the settings form shows them; what the link does not give stays at the
/// form's defaults (no sign-in, `/workspace`, the default scopes).
fn settings(link: &add_link::AddLink) -> SandboxSettings {
    let auth = match &link.oidc {
        Some((issuer, client_id)) => AuthSettings::Oidc {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            scopes: if link.scopes.is_empty() {
                DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
            } else {
                link.scopes.clone()
            },
            audience: link.audience.clone(),
        },
        None => AuthSettings::None,
    };
    SandboxSettings {
        name: link.name.to_string(),
        server: link.server.to_string(),
        auth,
        remote_folder: link.folder.clone().unwrap_or_else(|| sandbox_core::ide::DEFAULT_REMOTE_FOLDER.into()),
        allow_insecure_http: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_fills_the_add_form_with_every_value() {
        let link = "sandbox-forward://add?name=dev&server=https%3A%2F%2Fsandboxes.example.com\
                    &issuer=https%3A%2F%2Flogin.example.com&client_id=sandbox-forward&audience=api&folder=%2Fsrc";
        let Intent::AddSandbox { settings: Some(settings), link: Some(shown) } = from_link(link) else {
            panic!("not an Add form");
        };
        assert_eq!(shown, link);
        assert_eq!(
            settings,
            SandboxSettings {
                name: "dev".into(),
                server: "https://sandboxes.example.com".into(),
                auth: AuthSettings::Oidc {
                    issuer: "https://login.example.com".into(),
                    client_id: "sandbox-forward".into(),
                    scopes: vec!["openid".into(), "offline_access".into()],
                    audience: Some("api".into()),
                },
                remote_folder: "/src".into(),
                allow_insecure_http: false,
            }
        );
        let Intent::AddSandbox { settings: Some(plain), .. } =
            from_link("sandbox-forward://add?name=box&server=box.example.com")
        else {
            panic!("not an Add form");
        };
        assert_eq!((plain.auth, plain.remote_folder.as_str()), (AuthSettings::None, "/workspace"));
    }

    #[test]
    fn a_bad_link_is_a_sentence_saying_why() {
        assert_eq!(
            from_link("sandbox-forward://add?name=dev&server=s.example.com&token=abc"),
            Intent::BadLink {
                message: "This link cannot add a sandbox: the link carries token, which a link never may: \
                          credentials are entered in the app or the CLI, never taken from a link."
                    .into()
            }
        );
        assert!(matches!(from_link("sandbox-forward://remove?name=x"), Intent::BadLink { .. }));
    }

    #[test]
    fn add_on_the_command_line_opens_an_empty_form() {
        assert_eq!(from_args(["app", "--add"]), [Intent::AddSandbox { settings: None, link: None }]);
        assert_eq!(from_args(["app"]), []);
        assert_eq!(from_args(["--add"]), [], "the program's own name is not an argument");
    }
}
