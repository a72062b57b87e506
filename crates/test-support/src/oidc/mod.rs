//! The OpenID providers of the tests, all here:
//!
//! - [`fake::FakeProvider`] (feature `tokio`): a tiny in-process provider the test controls
//!   (keys, outages, a token endpoint that issues bad id_tokens).
//! - [`Provider`] and [`OidcGateway`] (feature `oidc-node`): the real peers of the sign-in tests,
//!   node-oidc-provider and Apache with mod_auth_openidc, as child processes.
//! - [`StandInBrowser`] (feature `oidc-node`, Unix): the `$BROWSER` our CLI opens.

#[cfg(feature = "tokio")]
pub mod fake;
#[cfg(feature = "oidc-node")]
mod node;

#[cfg(feature = "oidc-node")]
pub use node::*;

/// A `$BROWSER` program that writes the URL it is asked to open into a file, for the test to
/// follow as the user's browser would.
#[cfg(all(unix, feature = "oidc-node"))]
pub struct StandInBrowser {
    /// The program (a shell script).
    pub program: std::path::PathBuf,
    /// Where it writes the URL (atomically, by a rename).
    pub url_file: std::path::PathBuf,
}

#[cfg(all(unix, feature = "oidc-node"))]
impl StandInBrowser {
    /// Writes the script into `dir` (`browser.sh`, writing `browser-url`).
    pub fn new(dir: &std::path::Path) -> StandInBrowser {
        use std::os::unix::fs::PermissionsExt;
        let url_file = dir.join("browser-url");
        let program = dir.join("browser.sh");
        std::fs::write(
            &program,
            format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}.tmp'\nmv '{0}.tmp' '{0}'\n", url_file.display()),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandInBrowser { program, url_file }
    }
}
