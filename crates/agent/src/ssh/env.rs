//! The environment a session's process starts with, and which client-sent
//! (`env` request) variables are accepted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default `PATH` when the agent itself has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this many client `env` requests are honoured per channel.
pub(crate) const MAX_CLIENT_VARS: usize = 256;

/// The part of a session's environment that is the same for every session,
/// computed once from the agent's own environment.
#[derive(Debug, Clone)]
pub(crate) struct BaseEnv {
    /// The shell used for `shell` and `exec` requests.
    pub(crate) shell: PathBuf,
    vars: Vec<(OsString, OsString)>,
}

impl BaseEnv {
    /// Builds the base environment: `HOME` is the workspace; `PATH`, `USER`,
    /// `LOGNAME`, locale and time zone come from the agent; `SHELL` is the
    /// login shell.
    pub(crate) fn from_agent_env(workspace: &Path) -> Self {
        let shell = login_shell(std::env::var_os("SHELL"), Path::exists);
        let mut vars: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), workspace.as_os_str().to_owned()),
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into())),
            ("SHELL".into(), shell.as_os_str().to_owned()),
        ];
        for (name, value) in std::env::vars_os() {
            let inherit = name
                .to_str()
                .is_some_and(|n| matches!(n, "USER" | "LOGNAME" | "LANG" | "TZ") || n.starts_with("LC_"));
            if inherit {
                vars.push((name, value));
            }
        }
        Self { shell, vars }
    }

    /// The variables every session starts with.
    pub(crate) fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

/// `$SHELL` of the agent if set and present, else `/bin/bash` if it exists, else `/bin/sh`.
fn login_shell(env_shell: Option<OsString>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    if let Some(shell) = env_shell.filter(|s| !s.is_empty()).map(PathBuf::from) {
        if shell.is_absolute() && exists(&shell) {
            return shell;
        }
    }
    let bash = PathBuf::from("/bin/bash");
    if exists(&bash) {
        bash
    } else {
        PathBuf::from("/bin/sh")
    }
}

/// Whether a client-requested variable may be set in the session.
///
/// Names must be portable shell identifiers; dynamic-linker variables are
/// refused because they would alter how every program in the session loads.
pub(crate) fn accept_client_var(name: &str, value: &str) -> bool {
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid_name && !name.starts_with("LD_") && !name.starts_with("DYLD_") && !value.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_var_filter() {
        assert!(accept_client_var("FOO", "bar"));
        assert!(accept_client_var("LC_ALL", "C.UTF-8"));
        assert!(accept_client_var("_x1", ""));
        assert!(!accept_client_var("LD_PRELOAD", "/x.so"));
        assert!(!accept_client_var("DYLD_INSERT_LIBRARIES", "x"));
        assert!(!accept_client_var("", "x"));
        assert!(!accept_client_var("1A", "x"));
        assert!(!accept_client_var("A=B", "x"));
        assert!(!accept_client_var("BASH_FUNC_x%%", "() { :; }"));
        assert!(!accept_client_var("A", "a\0b"));
    }

    #[test]
    fn shell_choice() {
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        assert_eq!(login_shell(Some("/bin/zsh".into()), all), PathBuf::from("/bin/zsh"));
        assert_eq!(login_shell(Some("zsh".into()), all), PathBuf::from("/bin/bash"));
        assert_eq!(login_shell(None, all), PathBuf::from("/bin/bash"));
        assert_eq!(login_shell(Some("/bin/zsh".into()), none), PathBuf::from("/bin/sh"));
    }
}
