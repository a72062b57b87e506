//! `sandbox-forward://add?name=…&server=…&issuer=…&client_id=…`: a link a team's dashboard hands
//! out so that someone can add a sandbox in one click. A link only ever *fills in* settings for
//! the user to read and confirm; nothing here connects or signs in, and a link can never carry a
//! credential.

use url::Url;

use crate::name::SandboxName;
use crate::server::ServerUrl;

/// The link's scheme, registered by the desktop app.
pub const SCHEME: &str = "sandbox-forward";

/// What a link fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddLink {
    pub name: SandboxName,
    pub server: ServerUrl,
    /// OpenID sign-in: issuer URL and client id (both or neither).
    pub oidc: Option<(String, String)>,
    /// Scopes to request (empty: the default).
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// The folder `open` and the app open in the pod.
    pub folder: Option<String>,
}

/// Why a link was refused; the message names the parameter and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddLinkError {
    #[error("not a sandbox-forward link: expected sandbox-forward://add?name=…&server=…")]
    NotALink,
    #[error("the link is missing its {0} parameter")]
    Missing(&'static str),
    #[error("the link's {field} is not usable: {reason}")]
    Invalid { field: String, reason: String },
    #[error("the link gives {0} more than once")]
    Repeated(String),
    #[error("the link carries {0}, which a link never may: credentials are entered in the app or the CLI, never taken from a link")]
    Credential(String),
    #[error(
        "the link has a parameter this version does not know ({0}); update Sandbox Forward or fix the link"
    )]
    Unknown(String),
}

/// Parses and validates a link; every value is checked as the settings form would check it.
pub fn parse(link: &str) -> Result<AddLink, AddLinkError> {
    let url = Url::parse(link.trim()).map_err(|_| AddLinkError::NotALink)?;
    if url.scheme() != SCHEME || url.host_str() != Some("add") || !matches!(url.path(), "" | "/") {
        return Err(AddLinkError::NotALink);
    }
    let invalid = |field: &str, reason: String| AddLinkError::Invalid { field: field.to_owned(), reason };
    let (mut name, mut server, mut issuer, mut client_id, mut audience, mut folder) =
        (None, None, None, None, None, None);
    let mut scopes = Vec::new();
    for (key, value) in url.query_pairs() {
        let once = |slot: &mut Option<String>| match slot {
            Some(_) => Err(AddLinkError::Repeated(key.to_string())),
            None => {
                *slot = Some(value.to_string());
                Ok(())
            }
        };
        match key.as_ref() {
            "name" => once(&mut name)?,
            "server" => once(&mut server)?,
            "issuer" => once(&mut issuer)?,
            "client_id" => once(&mut client_id)?,
            "audience" => once(&mut audience)?,
            "folder" => once(&mut folder)?,
            "scope" | "scopes" => scopes.extend(value.split_whitespace().map(str::to_owned)),
            "bearer" | "token" | "bearer_file" | "cookie" | "header" | "password" | "client_secret"
            | "access_token" | "refresh_token" => return Err(AddLinkError::Credential(key.to_string())),
            _ => return Err(AddLinkError::Unknown(printable(&key))),
        }
    }
    let name = name.ok_or(AddLinkError::Missing("name"))?;
    let name = SandboxName::new(&name).map_err(|e| invalid("name", e.to_string()))?;
    let server = server.ok_or(AddLinkError::Missing("server"))?;
    let server = ServerUrl::parse(&server).map_err(|e| invalid("server", e.to_string()))?;
    let oidc = match (issuer, client_id) {
        (None, None) => None,
        (Some(_), None) => return Err(AddLinkError::Missing("client_id (it comes with issuer)")),
        (None, Some(_)) => return Err(AddLinkError::Missing("issuer (it comes with client_id)")),
        (Some(issuer), Some(client_id)) => {
            let parsed = Url::parse(&issuer).map_err(|e| invalid("issuer", e.to_string()))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
                return Err(invalid("issuer", "it must be an https:// URL".into()));
            }
            Some((issuer, word("client_id", client_id)?))
        }
    };
    if (!scopes.is_empty() || audience.is_some()) && oidc.is_none() {
        return Err(invalid("scope or audience", "they need issuer and client_id".into()));
    }
    let scopes = scopes.into_iter().map(|s| word("scope", s)).collect::<Result<_, _>>()?;
    let audience = audience.map(|a| word("audience", a)).transpose()?;
    if let Some(f) = &folder {
        if !f.starts_with('/') || f.chars().any(char::is_control) {
            return Err(invalid("folder", "it must be an absolute path in the pod, e.g. /workspace".into()));
        }
    }
    Ok(AddLink { name, server, oidc, scopes, audience, folder })
}

/// A single printable word of at most 256 characters (client ids, scopes, audiences).
fn word(field: &str, value: String) -> Result<String, AddLinkError> {
    let ok = !value.is_empty() && value.len() <= 256 && value.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(value)
    } else {
        Err(AddLinkError::Invalid {
            field: field.to_owned(),
            reason: "it must be one word of visible characters".into(),
        })
    }
}

fn printable(s: &str) -> String {
    crate::untrusted::one_line(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "sandbox-forward://add?name=dev&server=https%3A%2F%2Fsandboxes.example.com\
                        &issuer=https%3A%2F%2Flogin.example.com%2Frealms%2Fdev&client_id=sandbox-forward\
                        &scope=openid%20offline_access&folder=%2Fworkspace%2Fapp";

    #[test]
    fn a_full_link_fills_every_setting() {
        let link = parse(FULL).unwrap();
        assert_eq!(link.name.as_str(), "dev");
        assert_eq!(link.server.as_str(), "https://sandboxes.example.com");
        assert_eq!(
            link.oidc,
            Some(("https://login.example.com/realms/dev".into(), "sandbox-forward".into()))
        );
        assert_eq!(link.scopes, ["openid", "offline_access"]);
        assert_eq!(link.folder.as_deref(), Some("/workspace/app"));
        let plain = parse("sandbox-forward://add?name=box&server=sandboxes.example.com").unwrap();
        assert_eq!((plain.oidc, plain.scopes, plain.audience, plain.folder), (None, vec![], None, None));
    }

    #[test]
    fn a_link_never_carries_credentials_or_unknown_or_bad_values() {
        let base = "sandbox-forward://add?name=dev&server=https://s.example.com";
        let err = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err();
        assert!(matches!(err("&bearer=abc"), AddLinkError::Credential(k) if k == "bearer"));
        assert!(matches!(err("&cookie=sid%3Dx"), AddLinkError::Credential(_)));
        assert!(matches!(err("&colour=red"), AddLinkError::Unknown(_)));
        assert!(matches!(err("&name=other"), AddLinkError::Repeated(_)));
        assert!(matches!(err("&issuer=https://login.example.com"), AddLinkError::Missing(_)));
        assert!(matches!(err("&issuer=https://l.example.com&client_id=a%20b"), AddLinkError::Invalid { .. }));
        assert!(matches!(err("&folder=relative"), AddLinkError::Invalid { .. }));
        assert!(matches!(err("&scope=openid"), AddLinkError::Invalid { .. }));
        let bad = |link: &str| parse(link).unwrap_err();
        assert!(matches!(
            bad("sandbox-forward://add?name=-x&server=s.example.com"),
            AddLinkError::Invalid { .. }
        ));
        assert!(matches!(
            bad("sandbox-forward://add?name=x&server=ftp://s.example.com"),
            AddLinkError::Invalid { .. }
        ));
        assert!(matches!(bad("sandbox-forward://add?name=x"), AddLinkError::Missing("server")));
        assert!(matches!(bad("sandbox-forward://remove?name=x"), AddLinkError::NotALink));
        assert!(matches!(bad("https://add?name=x&server=s"), AddLinkError::NotALink));
        // A newline in a name cannot reach a message or a config file.
        assert!(matches!(
            bad("sandbox-forward://add?name=a%0AHost%20*&server=s.example.com"),
            AddLinkError::Invalid { .. }
        ));
    }
}
