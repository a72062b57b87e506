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
    /// Builds the base environment from the agent's own, as the original server did: every
    /// variable the pod set (PATH, toolchains, proxies…) except the agent's own settings and
    /// what sshd sets per connection; `HOME` is the workspace and `SHELL` the login shell.
    pub(crate) fn from_agent_env(workspace: &Path) -> Self {
        let shell = login_shell(std::env::var_os("SHELL"), Path::exists);
        Self::from_vars(workspace, shell, std::env::vars_os())
    }

    fn from_vars(
        workspace: &Path,
        shell: PathBuf,
        agent: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Self {
        let mut vars: Vec<(OsString, OsString)> =
            agent.into_iter().filter(|(name, _)| name.to_str().is_some_and(inherited)).collect();
        if !vars.iter().any(|(name, _)| name == "PATH") {
            vars.push(("PATH".into(), FALLBACK_PATH.into()));
        }
        vars.push(("HOME".into(), workspace.as_os_str().to_owned()));
        vars.push(("SHELL".into(), shell.as_os_str().to_owned()));
        Self { shell, vars }
    }

    /// The variables every session starts with.
    pub(crate) fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

/// Whether a variable of the agent's environment passes to sessions. Not: what we set
/// ourselves (`HOME`, `SHELL`, `SANDBOX_USER`), what sshd sets per connection (`SSH_*`; `TERM`
/// comes with a pty, and without one there is none), the agent's own settings
/// (`SANDBOX_AGENT_*`), a service manager's handles (`NOTIFY_SOCKET`, `LISTEN_*`, …) and a
/// shell's bookkeeping (`PWD`, `SHLVL`, `_`).
fn inherited(name: &str) -> bool {
    const SET_HERE: &[&str] = &["HOME", "SHELL", SANDBOX_USER, "TERM", "MAIL"];
    const PER_PROCESS: &[&str] = &[
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "WATCHDOG_PID",
        "WATCHDOG_USEC",
    ];
    !name.is_empty()
        && !SET_HERE.contains(&name)
        && !PER_PROCESS.contains(&name)
        && !name.starts_with("SSH_")
        && !name.starts_with("SANDBOX_AGENT_")
}

/// The subject whose key opened the session, as the original server named it.
pub(crate) const SANDBOX_USER: &str = "SANDBOX_USER";

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
/// refused because they would alter how every program in the session loads, and
/// `SANDBOX_USER` because it names who the agent let in.
pub(crate) fn accept_client_var(name: &str, value: &str) -> bool {
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid_name
        && !name.starts_with("LD_")
        && !name.starts_with("DYLD_")
        && name != SANDBOX_USER
        && !value.contains('\0')
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
        assert!(!accept_client_var("SANDBOX_USER", "someone-else"));
    }

    #[test]
    fn sessions_get_the_agents_environment_but_not_its_own_settings() {
        let agent = [
            ("PATH", "/opt/go/bin:/usr/bin"),
            ("GOPATH", "/go"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("LANG", "C.UTF-8"),
            ("HOME", "/root"),
            ("SHELL", "/bin/zsh"),
            ("TERM", "xterm"),
            ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
            ("SSH_CONNECTION", "1 2 3 4"),
            ("SANDBOX_AGENT_LOG", "debug"),
            ("SANDBOX_USER", "forged"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("PWD", "/"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = BaseEnv::from_vars(Path::new("/ws"), PathBuf::from("/bin/bash"), agent);
        let get = |name: &str| {
            let found: Vec<_> =
                env.vars().iter().filter(|(k, _)| k == name).map(|(_, v)| v.to_str().unwrap()).collect();
            assert!(found.len() <= 1, "{name} set twice: {found:?}");
            found.first().copied()
        };
        assert_eq!(get("PATH"), Some("/opt/go/bin:/usr/bin"));
        assert_eq!(get("GOPATH"), Some("/go"));
        assert_eq!(get("HTTPS_PROXY"), Some("http://proxy:3128"));
        assert_eq!(get("LANG"), Some("C.UTF-8"));
        assert_eq!(get("HOME"), Some("/ws"));
        assert_eq!(get("SHELL"), Some("/bin/bash"));
        for gone in [
            "TERM",
            "SSH_AUTH_SOCK",
            "SSH_CONNECTION",
            "SANDBOX_AGENT_LOG",
            "SANDBOX_USER",
            "NOTIFY_SOCKET",
            "PWD",
        ] {
            assert_eq!(get(gone), None, "{gone} leaked into sessions");
        }
    }

    #[test]
    fn a_missing_path_gets_the_default() {
        let env = BaseEnv::from_vars(Path::new("/ws"), PathBuf::from("/bin/sh"), Vec::new());
        assert!(env.vars().iter().any(|(k, v)| k == "PATH" && v == FALLBACK_PATH));
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
