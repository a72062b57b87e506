//! Rendering what we write into ssh config: `Host` blocks, the `Include` line, quoted paths and
//! the quoted `ProxyCommand`.
//!
//! Two readers see every byte: OpenSSH's config parser (which splits each line with its own
//! quote and backslash rules, expands `%` tokens and `${VAR}`s, and globs `Include` paths) and,
//! for `ProxyCommand`, the shell that ssh runs it with (`$SHELL -c "exec …"` on POSIX). The
//! checks here make sure neither can be made to read a directive or a command we did not mean.

use std::path::Path;

use super::SshConfigError;
use crate::name::SandboxName;

/// Which shell will run the `ProxyCommand`, so which quoting its words need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// `sh`-style quoting: single quotes; `'` and `\` spliced in outside them.
    Posix,
    /// Windows command-line quoting: double quotes (a `"` inside a word is refused).
    Windows,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Self {
        if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Posix
        }
    }
}

/// How ssh should check the sandbox's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Check against our own known-hosts file, under the sandbox's name as `HostKeyAlias`.
    Pinned {
        /// Absolute path of the known-hosts file holding the sandbox's key.
        known_hosts: std::path::PathBuf,
    },
    /// Accept any host key and remember none (the original tool's behaviour, for pods whose
    /// host key changes at every start).
    Unpinned,
}

/// One sandbox's `Host` block, as the caller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBlock {
    /// The `Host` alias the user types (`ssh NAME`).
    pub name: SandboxName,
    /// The command line, already rendered by [`proxy_command`].
    pub proxy_command: String,
    /// Absolute path of the private key.
    pub identity_file: std::path::PathBuf,
    /// How to check the host key.
    pub host_key: HostKeyPolicy,
    /// Seconds between keepalives (`ServerAliveInterval`); 0 disables them.
    pub server_alive_interval: u32,
}

/// The value of a `ProxyCommand` line: `binary` and `args` quoted for `platform`'s shell, then
/// every `%` doubled because ssh expands `%` tokens in `ProxyCommand`.
///
/// Words made only of safe characters stay bare. Control characters (newline, CR, NUL, …) are
/// refused everywhere, and `"` on Windows. Errors never quote an argument, which may be a secret.
pub fn proxy_command(binary: &Path, args: &[&str], platform: Platform) -> Result<String, SshConfigError> {
    let bin = binary.to_str().ok_or_else(|| SshConfigError::Unsafe {
        what: format!("the sandbox-forward binary path {binary:?}"),
        reason: "is not valid UTF-8; install the binary under a UTF-8 path",
    })?;
    if bin.is_empty() {
        return Err(SshConfigError::Unsafe {
            what: "the sandbox-forward binary path".to_owned(),
            reason: "is empty; pass the binary's absolute path",
        });
    }
    let mut words = Vec::with_capacity(args.len() + 1);
    words.push(quote_word(bin, platform).map_err(|reason| SshConfigError::Unsafe {
        what: format!("the sandbox-forward binary path {binary:?}"),
        reason,
    })?);
    for (i, arg) in args.iter().enumerate() {
        words.push(quote_word(arg, platform).map_err(|reason| SshConfigError::Unsafe {
            what: format!("ProxyCommand argument {}", i + 1),
            reason,
        })?);
    }
    Ok(words.join(" ").replace('%', "%%"))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

const CONTROL: &str = "contains a control character (newline, CR, NUL, tab, …); remove it";

/// One word quoted for `platform`; the error is a reason phrase.
fn quote_word(word: &str, platform: Platform) -> Result<String, &'static str> {
    if has_control(word) {
        return Err(CONTROL);
    }
    match platform {
        Platform::Posix => Ok(quote_posix(word)),
        Platform::Windows => quote_windows(word),
    }
}

/// Characters that mean nothing to `sh` nor to ssh's line splitter. A leading `=` is excluded
/// because ssh strips `=` after the keyword.
fn bare_ok(word: &str, extra: &[u8]) -> bool {
    !word.is_empty()
        && !word.starts_with('=')
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.,:/@+=".contains(&b) || extra.contains(&b))
}

fn quote_posix(word: &str) -> String {
    if bare_ok(word, b"") {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        match c {
            // Close the quote, add an escaped `'`, reopen: sh's only way to quote a `'`.
            '\'' => out.push_str(r"'\''"),
            // A `\` inside '…' is literal to sh, but ssh's splitter reads `\'` as an escaped
            // quote and then finds the line's quotes unbalanced; `'\\'` reads right to both.
            '\\' => out.push_str(r"'\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn quote_windows(word: &str) -> Result<String, &'static str> {
    if word.contains('"') {
        return Err("contains a double quote, which a Windows command line cannot carry here; remove it");
    }
    if bare_ok(word, b"\\") {
        return Ok(word.to_owned());
    }
    // Backslashes before the closing quote are doubled, or `\"` would escape it (for both the
    // Windows argument parser and ssh's splitter).
    let trailing = word.len() - word.trim_end_matches('\\').len();
    Ok(format!("\"{word}{}\"", "\\".repeat(trailing)))
}

/// What ssh does with a path keyword's value, which decides how it must be escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKeyword {
    /// `Include`: globbed (`*?[` would match other files), no `%` or `${}` expansion.
    Include,
    /// `IdentityFile`, `UserKnownHostsFile`: `%` tokens and `${VAR}` expanded.
    Expanded(&'static str),
}

/// `path` as a double-quoted ssh config value for `keyword`, or why it cannot be written.
pub fn config_path(path: &Path, keyword: PathKeyword, platform: Platform) -> Result<String, SshConfigError> {
    let name = match keyword {
        PathKeyword::Include => "Include",
        PathKeyword::Expanded(k) => k,
    };
    let unsafe_path = |reason| SshConfigError::Unsafe { what: format!("{name} path {path:?}"), reason };
    let text = path.to_str().ok_or_else(|| unsafe_path("is not valid UTF-8; use a UTF-8 path"))?;
    if has_control(text) {
        return Err(unsafe_path(CONTROL));
    }
    if text.contains('"') {
        return Err(unsafe_path("contains a double quote; use a path without one"));
    }
    let text = match platform {
        // Win32-OpenSSH takes `/`, and it spares us ssh's backslash-escape rules.
        Platform::Windows => text.replace('\\', "/"),
        Platform::Posix if text.contains('\\') => {
            return Err(unsafe_path(
                "contains a backslash, which ssh reads as an escape; use a path without one",
            ))
        }
        Platform::Posix => text.to_owned(),
    };
    let absolute = match platform {
        Platform::Posix => text.starts_with('/'),
        Platform::Windows => {
            let b = text.as_bytes();
            text.starts_with("//")
                || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/')
        }
    };
    if !absolute {
        // ssh would read a relative path against ~/.ssh, and `~` with the passwd home, not $HOME.
        return Err(unsafe_path("is not absolute; pass an absolute path"));
    }
    let text = match keyword {
        PathKeyword::Include => {
            if text.contains(['*', '?', '[']) {
                return Err(unsafe_path(
                    "contains a glob character (* ? [) that ssh would expand; use a path without one",
                ));
            }
            text
        }
        PathKeyword::Expanded(_) => {
            if text.contains("${") {
                return Err(unsafe_path(
                    "contains \"${\", which ssh expands as an environment variable; use a path without it",
                ));
            }
            text.replace('%', "%%")
        }
    };
    Ok(format!("\"{text}\""))
}

/// The `Include` line that pulls our file into the user's config.
pub fn include_line(include_file: &Path, platform: Platform) -> Result<String, SshConfigError> {
    Ok(format!("Include {}", config_path(include_file, PathKeyword::Include, platform)?))
}

/// Checks a `ProxyCommand` value that did not necessarily come from [`proxy_command`]: one line,
/// `%` only as `%%`, no leading `=`/blank or trailing blank (ssh strips them), and quotes that
/// ssh's line splitter finds balanced.
pub fn check_proxy_command(command: &str) -> Result<(), SshConfigError> {
    let bad = |reason| Err(SshConfigError::Unsafe { what: "the ProxyCommand".to_owned(), reason });
    if command.is_empty() {
        return bad("is empty; render it with proxy_command()");
    }
    if has_control(command) {
        return bad(CONTROL);
    }
    if command.starts_with([' ', '=']) || command.ends_with(' ') {
        return bad("starts with a blank or '=' or ends with a blank, which ssh strips; render it with proxy_command()");
    }
    let mut bytes = command.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' && bytes.next() != Some(b'%') {
            return bad("has a '%' that ssh would expand as a token; render it with proxy_command()");
        }
    }
    if !ssh_quotes_balanced(command) {
        return bad("has quotes ssh cannot pair; render it with proxy_command()");
    }
    Ok(())
}

/// Whether OpenSSH's `argv_split` (which every config line goes through, since 8.7) accepts
/// `s`: it fails the whole line with "invalid quotes" on an unclosed quote.
pub fn ssh_quotes_balanced(s: &str) -> bool {
    let s = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b' ' || s[i] == b'\t' {
            i += 1;
            continue;
        }
        if s[i] == b'#' {
            return true; // the rest is a comment to the splitter
        }
        let mut quote = 0u8;
        while i < s.len() {
            let c = s[i];
            if c == b'\\' {
                let next = s.get(i + 1).copied();
                if matches!(next, Some(b'\'' | b'"' | b'\\')) || (quote == 0 && next == Some(b' ')) {
                    i += 1;
                }
            } else if quote == 0 && (c == b' ' || c == b'\t') {
                break;
            } else if quote == 0 && (c == b'"' || c == b'\'') {
                quote = c;
            } else if quote != 0 && c == quote {
                quote = 0;
            }
            i += 1;
        }
        if i >= s.len() && quote != 0 {
            return false;
        }
    }
    true
}

/// `ServerAliveCountMax` for keepalives every `interval` seconds: ssh must not give up on a
/// tunnel before the sandbox's resume window has passed (a resuming tunnel answers nothing), so
/// the keepalives it may miss span the window and one interval more. `None` without keepalives.
pub fn server_alive_count_max(interval: u32) -> Option<u32> {
    let window = sandbox_wire::resume::DEFAULT_RESUME_WINDOW.as_secs() as u32;
    (interval > 0).then(|| window / interval + 1)
}

/// The `Host` block for `host`, lines indented by four spaces, ending with a newline.
pub fn render_host(host: &HostBlock, platform: Platform) -> Result<String, SshConfigError> {
    check_proxy_command(&host.proxy_command)?;
    let name = host.name.as_str();
    let identity = config_path(&host.identity_file, PathKeyword::Expanded("IdentityFile"), platform)?;
    let mut out = format!(
        "Host {name}\n    ProxyCommand {}\n    User sandbox\n    IdentityFile {identity}\n    \
         IdentitiesOnly yes\n    ServerAliveInterval {}\n",
        host.proxy_command, host.server_alive_interval
    );
    if let Some(count) = server_alive_count_max(host.server_alive_interval) {
        out.push_str(&format!("    ServerAliveCountMax {count}\n"));
    }
    match &host.host_key {
        HostKeyPolicy::Pinned { known_hosts } => {
            let known = config_path(known_hosts, PathKeyword::Expanded("UserKnownHostsFile"), platform)?;
            out.push_str(&format!(
                "    HostKeyAlias {name}\n    UserKnownHostsFile {known}\n    StrictHostKeyChecking yes\n"
            ));
        }
        HostKeyPolicy::Unpinned => {
            // LogLevel ERROR hides the "Permanently added … to the list of known hosts" warning
            // that /dev/null would otherwise print on every connection.
            out.push_str(
                "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n",
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;
    #[cfg(unix)]
    use std::process::Command;

    fn name(s: &str) -> SandboxName {
        SandboxName::new(s).unwrap()
    }

    fn posix(bin: &str, args: &[&str]) -> Result<String, SshConfigError> {
        proxy_command(Path::new(bin), args, Platform::Posix)
    }

    #[test]
    fn pinned_block_snapshot() {
        let host = HostBlock {
            name: name("my-sandbox"),
            proxy_command: posix(
                "/usr/local/bin/sandbox-forward",
                &["proxy", "--ssh", "--server", "https://sandbox.example.com"],
            )
            .unwrap(),
            identity_file: PathBuf::from("/home/u/.config/sandbox/keys/my-sandbox"),
            host_key: HostKeyPolicy::Pinned {
                known_hosts: PathBuf::from("/home/u/.config/sandbox/known_hosts"),
            },
            server_alive_interval: 30,
        };
        assert_eq!(
            render_host(&host, Platform::Posix).unwrap(),
            "Host my-sandbox\n\
             \x20   ProxyCommand /usr/local/bin/sandbox-forward proxy --ssh --server https://sandbox.example.com\n\
             \x20   User sandbox\n\
             \x20   IdentityFile \"/home/u/.config/sandbox/keys/my-sandbox\"\n\
             \x20   IdentitiesOnly yes\n\
             \x20   ServerAliveInterval 30\n\
             \x20   ServerAliveCountMax 5\n\
             \x20   HostKeyAlias my-sandbox\n\
             \x20   UserKnownHostsFile \"/home/u/.config/sandbox/known_hosts\"\n\
             \x20   StrictHostKeyChecking yes\n"
        );
    }

    #[test]
    fn unpinned_block_snapshot() {
        let host = HostBlock {
            name: name("dev_1"),
            proxy_command: posix(
                "/opt/My Tools/sandbox-forward",
                &[
                    "proxy",
                    "--ssh",
                    "--server",
                    "https://sb.example.com",
                    "--bearer-file",
                    "/home/u/50% token",
                ],
            )
            .unwrap(),
            identity_file: PathBuf::from("/home/u/keys %h/dev_1"),
            host_key: HostKeyPolicy::Unpinned,
            server_alive_interval: 15,
        };
        assert_eq!(
            render_host(&host, Platform::Posix).unwrap(),
            "Host dev_1\n\
             \x20   ProxyCommand '/opt/My Tools/sandbox-forward' proxy --ssh --server https://sb.example.com --bearer-file '/home/u/50%% token'\n\
             \x20   User sandbox\n\
             \x20   IdentityFile \"/home/u/keys %%h/dev_1\"\n\
             \x20   IdentitiesOnly yes\n\
             \x20   ServerAliveInterval 15\n\
             \x20   ServerAliveCountMax 9\n\
             \x20   StrictHostKeyChecking no\n\
             \x20   UserKnownHostsFile /dev/null\n\
             \x20   LogLevel ERROR\n"
        );
    }

    #[test]
    fn ssh_keepalives_outlast_the_resume_window() {
        let window = sandbox_wire::resume::DEFAULT_RESUME_WINDOW.as_secs() as u32;
        assert_eq!(server_alive_count_max(0), None);
        for interval in [1, 15, 30, 45, 60, 120, 300] {
            let count = server_alive_count_max(interval).unwrap();
            assert!(interval * count > window, "{interval} s × {count}");
        }
    }

    #[test]
    fn posix_quoting() {
        assert_eq!(
            posix("/bin/sf", &["a", "", "it's", "$(rm -rf ~)", "`x`", "a\\b", "=x", "~"]).unwrap(),
            r"/bin/sf a '' 'it'\''s' '$(rm -rf ~)' '`x`' 'a'\\'b' '=x' '~'"
        );
        assert_eq!(posix("/bin/sf", &["100%", "%h"]).unwrap(), "/bin/sf '100%%' '%%h'");
    }

    #[test]
    fn windows_quoting() {
        let w = |bin: &str, args: &[&str]| proxy_command(Path::new(bin), args, Platform::Windows);
        assert_eq!(
            w(r"C:\Program Files\sf.exe", &["proxy", "it's", "a b", r"C:\dir\", "%h", ""]).unwrap(),
            r#""C:\Program Files\sf.exe" proxy "it's" "a b" C:\dir\ "%%h" """#
        );
        assert_eq!(w(r"C:\sf.exe", &[r"C:\x\y"]).unwrap(), r"C:\sf.exe C:\x\y");
        // Backslashes before a closing quote are doubled, or they would escape it.
        assert_eq!(w(r"C:\sf.exe", &[r"C:\my dir\"]).unwrap(), r#"C:\sf.exe "C:\my dir\\""#);
        assert!(w(r"C:\sf.exe", &["a\"b"]).is_err());
        assert!(w("C:\\s\"f.exe", &[]).is_err());
    }

    #[test]
    fn refuses_control_characters_without_echoing_arguments() {
        for bad in ["a\nHost *", "a\rb", "a\0b", "a\tb", "a\x1bb"] {
            for p in [Platform::Posix, Platform::Windows] {
                let err = proxy_command(Path::new("/bin/sf"), &["--bearer", bad], p).unwrap_err();
                let msg = err.to_string();
                assert!(msg.contains("argument 2") && !msg.contains(bad) && !msg.contains('\n'), "{msg}");
                assert!(proxy_command(Path::new(bad), &[], p).is_err());
            }
        }
        assert!(posix("", &[]).is_err());
    }

    #[test]
    fn paths_are_quoted_escaped_and_validated() {
        let id = PathKeyword::Expanded("IdentityFile");
        let p = |s: &str, k| config_path(Path::new(s), k, Platform::Posix);
        assert_eq!(p("/a b/%h $(x) `y` 'z'", id).unwrap(), "\"/a b/%%h $(x) `y` 'z'\"");
        assert_eq!(p("/a b/%h", PathKeyword::Include).unwrap(), "\"/a b/%h\"");
        for bad in ["/a\nHost *", "/a\"b", "relative/x", "~/x", "/a\\b", "/a\rb"] {
            assert!(p(bad, id).is_err(), "{bad:?}");
            assert!(p(bad, PathKeyword::Include).is_err(), "{bad:?}");
        }
        assert!(p("/a/${HOME}", id).is_err());
        assert_eq!(p("/a/$HOME", id).unwrap(), "\"/a/$HOME\"");
        for glob in ["/a/*", "/a/?", "/a/[b]"] {
            assert!(p(glob, PathKeyword::Include).is_err());
            assert!(p(glob, id).is_ok());
        }
        let w = |s: &str| config_path(Path::new(s), id, Platform::Windows);
        assert_eq!(
            w(r"C:\Users\me\.config\sandbox\keys\a").unwrap(),
            "\"C:/Users/me/.config/sandbox/keys/a\""
        );
        assert!(w(r"keys\a").is_err());
    }

    #[test]
    fn proxy_command_checks_catch_hand_made_values() {
        for bad in
            ["", " /bin/x", "=x", "/bin/x ", "/bin/x %h", "/bin/x 'a", "/bin/x\nHost *", "/bin/x 'a\\'"]
        {
            assert!(check_proxy_command(bad).is_err(), "{bad:?}");
        }
        for ok in ["/bin/x %%h", "/bin/x 'a'\\''b'", "/bin/x \"a b\"", "/bin/x # 'unclosed"] {
            assert!(check_proxy_command(ok).is_ok(), "{ok:?}");
        }
    }

    /// What `sh` makes of a rendered command once ssh has turned `%%` back into `%` (Unix only,
    /// like the tests that use it: Windows has no `/bin/sh`).
    #[cfg(unix)]
    fn sh_words(command: &str) -> Vec<String> {
        let script = format!("printf '%s\\0' {}", &command.replace("%%", "%"));
        let out = Command::new("/bin/sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_terminator('\0').map(str::to_owned).collect()
    }

    #[cfg(unix)]
    #[test]
    fn sh_reads_back_injection_attempts_as_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let m = marker.to_str().unwrap();
        let args = [
            format!("$(touch {m})"),
            format!("`touch {m}`"),
            format!("; touch {m}"),
            format!("'; touch {m}; '"),
            "a\\".to_owned(),
            "%h %p".to_owned(),
            "# not a comment".to_owned(),
        ];
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let command = posix(&format!("/tmp/dir with 'quote'/$(touch {m})"), &arg_refs).unwrap();
        let words = sh_words(&command);
        assert_eq!(words[0], format!("/tmp/dir with 'quote'/$(touch {m})"));
        assert_eq!(&words[1..], &args[..]);
        assert!(!marker.exists());
        assert!(ssh_quotes_balanced(&command));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[cfg(unix)]
        #[test]
        fn posix_quoting_round_trips_through_sh(args in proptest::collection::vec("[^\\x00-\\x1f\\x7f-\\u{9f}]{0,12}", 0..5)) {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let command = posix("/bin/sf", &refs).unwrap();
            prop_assert!(check_proxy_command(&command).is_ok(), "{}", command);
            let words = sh_words(&command);
            prop_assert_eq!(&words[0], "/bin/sf");
            prop_assert_eq!(&words[1..], &args[..]);
        }

        #[test]
        fn windows_quoting_is_balanced_for_ssh(args in proptest::collection::vec("[^\\x00-\\x1f\\x7f-\\u{9f}\"]{0,12}", 0..5)) {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let command = proxy_command(Path::new(r"C:\Program Files\sf.exe"), &refs, Platform::Windows).unwrap();
            prop_assert!(check_proxy_command(&command).is_ok(), "{}", command);
        }
    }
}
