//! The original Go `sandbox-forward`'s command line, mapped onto ours before clap sees it.
//!
//! Go's `flag` package takes `-flag` as well as `--flag`, `-flag=value` and `-flag value`, and
//! `-ssh=true` for a boolean; Host blocks the original wrote call `sandbox-forward proxy -ssh
//! -server URL -bearer-file F`. Once this binary is on PATH under that name those lines must
//! keep working, so each single-dash long flag the original had becomes its `--` form here.
//! Nothing else is rewritten: our own short flags (`-v` for more logging) keep their meaning,
//! except `-v` alone, which the original answered with its version.

use std::ffi::OsString;

/// The original's flags that take a value (`-flag value` or `-flag=value`).
const VALUE_FLAGS: &[&str] = &["server", "port", "local-port", "bearer", "bearer-file", "cookie", "header"];
/// The original's boolean flags (Go also takes `-flag=true` / `-flag=false`).
const BOOL_FLAGS: &[&str] = &["ssh", "stdio", "help", "version"];
/// Our flags that take a value, so the argument after them is never rewritten.
const OUR_VALUE_FLAGS: &[&str] =
    &["sandbox", "ca-file", "oidc-issuer", "client-id", "scope", "audience", "folder", "ide", "label"];

/// Rewrites the original's flag spellings into ours. `args` includes the program name.
pub fn normalise_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let rest: Vec<OsString> = args.collect();
    // `sandbox-forward -v` and `-version`: the original printed its version.
    if rest.len() == 1 && (rest[0] == "-v" || rest[0] == "-version") {
        out.push("--version".into());
        return out;
    }
    let mut value_next = false;
    let mut iter = rest.into_iter();
    while let Some(arg) = iter.next() {
        if std::mem::take(&mut value_next) {
            out.push(arg);
            continue;
        }
        // Not UTF-8: not a flag of ours either; clap reports it.
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter);
            break;
        }
        let (double, body) = match text.strip_prefix("--") {
            Some(body) => (true, body),
            None => match text.strip_prefix('-') {
                Some(body) if body.len() > 1 => (false, body),
                _ => {
                    out.push(arg);
                    continue;
                }
            },
        };
        let (flag, value) = match body.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (body, None),
        };
        if BOOL_FLAGS.contains(&flag) {
            match value {
                None => out.push(format!("--{flag}").into()),
                Some(v) => match go_bool(v) {
                    Some(true) => out.push(format!("--{flag}").into()),
                    Some(false) => {}              // `-ssh=false`: the flag's default
                    None => out.push(arg.clone()), // clap reports the bad value
                },
            }
        } else if VALUE_FLAGS.contains(&flag) {
            value_next = value.is_none();
            out.push(if double { arg.clone() } else { format!("-{text}").into() });
        } else {
            value_next = double && value.is_none() && OUR_VALUE_FLAGS.contains(&flag);
            out.push(arg);
        }
    }
    out
}

/// A boolean as Go's `strconv.ParseBool` reads it.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        let argv = std::iter::once("sandbox-forward").chain(args.iter().copied()).map(OsString::from);
        normalise_args(argv).into_iter().skip(1).map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn the_originals_single_dash_flags_become_double_dash() {
        assert_eq!(
            n(&["proxy", "-ssh", "-server", "https://s.example", "-bearer-file", "/t"]),
            ["proxy", "--ssh", "--server", "https://s.example", "--bearer-file", "/t"]
        );
        assert_eq!(
            n(&["proxy", "-server=http://h:1", "-port=2345", "-local-port", "8080", "-stdio"]),
            ["proxy", "--server=http://h:1", "--port=2345", "--local-port", "8080", "--stdio"]
        );
        assert_eq!(
            n(&["ssh-setup", "-server", "h", "-bearer", "tok", "-cookie", "a=b", "-header=K=V", "box"]),
            ["ssh-setup", "--server", "h", "--bearer", "tok", "--cookie", "a=b", "--header=K=V", "box"]
        );
        assert_eq!(n(&["-help"]), ["--help"]);
        assert_eq!(
            n(&["proxy", "-ssh=true", "-stdio=false", "-ssh=maybe"]),
            ["proxy", "--ssh", "-ssh=maybe"]
        );
    }

    #[test]
    fn values_and_our_own_flags_are_left_alone() {
        // A value that looks like one of the original's flags stays a value.
        assert_eq!(
            n(&["proxy", "-bearer", "-ssh", "--port", "2000"]),
            ["proxy", "--bearer", "-ssh", "--port", "2000"]
        );
        assert_eq!(n(&["proxy", "--sandbox", "-server"]), ["proxy", "--sandbox", "-server"]);
        assert_eq!(n(&["proxy", "--", "-ssh"]), ["proxy", "--", "-ssh"]);
        // Our -v (more logging) and -vv stay ours when a command follows.
        assert_eq!(n(&["-v", "status"]), ["-v", "status"]);
        assert_eq!(n(&["-vv", "proxy", "-ssh"]), ["-vv", "proxy", "--ssh"]);
        assert_eq!(n(&["status", "-"]), ["status", "-"]);
        assert_eq!(n(&["-sandbox", "x"]), ["-sandbox", "x"]);
    }

    #[test]
    fn dash_v_alone_and_dash_version_print_the_version() {
        assert_eq!(n(&["-v"]), ["--version"]);
        assert_eq!(n(&["-version"]), ["--version"]);
        assert_eq!(n(&["--version"]), ["--version"]);
        assert_eq!(n(&["version"]), ["version"]);
    }
}
