//! What can go wrong editing ssh config; every message is one line naming cause and fix.

use std::io;
use std::path::PathBuf;

/// An ssh-config edit that could not be made. Paths print in `{:?}` form so that a newline in
/// one cannot break the message over lines; ProxyCommand arguments (which may hold a token) are
/// never printed.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    /// The user's config holds our marker lines duplicated, unbalanced or out of order.
    #[error("{path:?}: {detail}; remove the stray sandbox-forward marker lines, then rerun")]
    Markers {
        /// The user's config, as the caller named it.
        path: PathBuf,
        /// Which markers, at which lines.
        detail: String,
    },
    /// A file could not be read.
    #[error("cannot read {path:?}: {source}; check that it exists and is readable, then rerun")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file could not be written (for a reason other than being read-only, which is answered
    /// with [`IncludeStatus::ManualLineNeeded`](super::IncludeStatus::ManualLineNeeded)).
    #[error("cannot write {path:?}: {source}; check the file, its directory and free space, then rerun")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The original tool's `Host` block is in a config we may not write.
    #[error("{path:?} holds a `Host {name}` block written by the original sandbox-forward, which shadows ours, and the file cannot be written; delete that block by hand")]
    LegacyBlock {
        /// The user's config.
        path: PathBuf,
        /// The alias.
        name: crate::name::SandboxName,
    },
    /// A value would change the meaning of the config (a newline, a quote, a `%` token …).
    #[error("{what} cannot go into an ssh config: it {reason}")]
    Unsafe {
        /// Which value: a path is shown, a ProxyCommand argument only by position.
        what: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
}
