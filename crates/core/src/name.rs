//! Sandbox names: the one identifier that reaches `~/.ssh/config`, file names and the CLI.

use std::fmt;
use std::str::FromStr;

/// A validated sandbox name: `[A-Za-z0-9_-]+`, at most 64 bytes, not starting with `-`.
///
/// Validation is what makes the name safe to write into `~/.ssh/config` (no whitespace, `#`,
/// `%`, quotes or newlines to inject a directive), into a file name (no `/` or `..`) and onto a
/// command line (no leading `-` to pass for a flag).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SandboxName(String);

/// Why a string is not a [`SandboxName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sandbox name {0:?}: use 1-64 letters, digits, '-' or '_' (not starting with '-')")]
pub struct InvalidName(pub String);

impl SandboxName {
    /// Validates `s` as a sandbox name.
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(SandboxName(s.to_owned()))
        } else {
            Err(InvalidName(s.to_owned()))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SandboxName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SandboxName::new(s)
    }
}

impl AsRef<str> for SandboxName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seed_alphabet() {
        for ok in ["my-sandbox", "a", "A_b-9", "x".repeat(64).as_str()] {
            assert_eq!(SandboxName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_anything_that_could_inject() {
        for bad in [
            "",
            "-oProxyCommand",
            "a b",
            "a\nHost *",
            "a#b",
            "a%h",
            "a\"b",
            "../x",
            "a/b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(SandboxName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
