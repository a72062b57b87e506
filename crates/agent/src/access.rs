//! Who may use the sandbox once a request is authenticated: the owner allow-list
//! (`--allow-sub`, `--allow-group`), applied the same way in every auth mode, and the one
//! escaping wrapper for client-controlled text on its way into a log line or an error body.
//!
//! Authentication answers "who is this" (the gateway's `X-Forwarded-Sub`, a JWT's `sub`, the
//! token holder); this module answers "is that the owner". A valid token for the audience is not
//! an owner: any user of the identity provider can get one.

use std::collections::BTreeSet;
use std::fmt;

/// The allow rules. Without any rule every authenticated caller is admitted (header mode: the
/// gateway decides; token mode: the token does); OIDC mode refuses to start that way unless the
/// operator says `--allow-any-subject` ([`crate::AgentConfig::check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    subjects: BTreeSet<String>,
    groups: BTreeSet<String>,
}

impl AccessPolicy {
    /// Admits a caller whose subject is one of `subjects` or who is in one of `groups`.
    pub fn new(
        subjects: impl IntoIterator<Item = impl Into<String>>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        AccessPolicy {
            subjects: subjects.into_iter().map(Into::into).collect(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether any allow rule is set (else everyone authenticated is admitted).
    pub fn has_rules(&self) -> bool {
        !self.subjects.is_empty() || !self.groups.is_empty()
    }

    /// Whether `sub`, a member of `groups`, may use the sandbox.
    pub fn check(&self, sub: &str, groups: &[String]) -> Result<(), Denied> {
        if !self.has_rules() || self.subjects.contains(sub) || groups.iter().any(|g| self.groups.contains(g))
        {
            Ok(())
        } else {
            Err(Denied { sub: sub.to_owned() })
        }
    }
}

/// A caller the allow-list refuses; its message is the 403 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "subject \"{}\" may not use this sandbox (not allowed by --allow-sub or --allow-group); ask its operator to allow it",
    Untrusted(sub)
)]
pub struct Denied {
    /// The refused subject.
    pub sub: String,
}

/// Client-controlled text made safe for one log line or error line: control characters,
/// quotes and backslashes escaped (`str::escape_debug`), cut at [`Untrusted::MAX_CHARS`].
///
/// tracing's `%` prints `Display` raw, so a newline in a JWT's `sub` would otherwise forge a
/// log line; log such text as `%Untrusted(&s)` (or `?s`).
pub struct Untrusted<'a>(pub &'a str);

impl Untrusted<'_> {
    /// Characters kept before the text is cut (a header or claim may be kilobytes long).
    pub const MAX_CHARS: usize = 200;
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(Self::MAX_CHARS) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rule_admits_everyone_else_subject_or_group() {
        assert_eq!(AccessPolicy::default().check("anyone", &[]), Ok(()));
        let p = AccessPolicy::new(["alice"], ["devs"]);
        assert!(p.has_rules());
        assert_eq!(p.check("alice", &[]), Ok(()));
        assert_eq!(p.check("bob", &["ops".into(), "devs".into()]), Ok(()));
        let denied = p.check("bob", &["ops".into()]).unwrap_err();
        assert_eq!(denied.sub, "bob");
        // Exact matches only: no prefixes, no case folding.
        assert!(p.check("Alice", &["Devs".into()]).is_err());
        assert!(p.check("alice2", &["devs2".into()]).is_err());
    }

    #[test]
    fn untrusted_text_stays_on_one_line() {
        let forged = "alice\n2026-11-29T00:00:00Z  INFO forged line\r\u{1b}[2J\"";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains(['\n', '\r', '\u{1b}']), "{shown}");
        assert_eq!(shown, r#"alice\n2026-11-29T00:00:00Z  INFO forged line\r\u{1b}[2J\""#);
        let long = "x".repeat(1000);
        assert_eq!(Untrusted(&long).to_string().chars().count(), Untrusted::MAX_CHARS + 1);
        let message = Denied { sub: forged.into() }.to_string();
        assert!(!message.contains('\n') && message.starts_with("subject \"alice\\n"), "{message}");
    }
}
