//! Text encodings for launch plans: URL percent-encoding, `sh` quoting (for printing a plan) and
//! the Windows command-line rules (MSVC argument quoting, and `cmd.exe` caret escaping for
//! running a `.cmd` shim).

use std::fmt::Write;

/// RFC 3986 unreserved characters: the only bytes never percent-encoded.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An absolute path as a URL path: every segment percent-encoded (UTF-8), the `/` kept.
pub fn url_path(path: &str) -> String {
    encode(path, |b| unreserved(b) || b == b'/')
}

/// A query/fragment parameter value: everything but the unreserved set encoded (`/` too, as
/// `application/x-www-form-urlencoded` encoders do; a space is `%20`, never `+`).
pub fn url_component(value: &str) -> String {
    encode(value, unreserved)
}

/// One word as `sh` reads it: bare when it holds nothing special, else in single quotes.
pub fn sh_word(word: &str) -> String {
    let bare =
        !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.,:/@+=%".contains(&b));
    if bare {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// One argument quoted for the Microsoft C runtime's command-line parser (what nearly every
/// Windows program uses to split its command line): bare when it holds no space, tab or `"`;
/// else in double quotes with `\` doubled before a `"` and before the closing quote.
pub fn msvc_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    msvc_quoted(arg)
}

/// `arg` in double quotes for the MSVC parser: `\` doubled before a `"` (which becomes `\"`)
/// and before the closing quote; other backslashes are literal.
fn msvc_quoted(arg: &str) -> String {
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}

/// Characters `cmd.exe` gives a meaning to (separators, redirection, variables, wildcards,
/// quoting): each is escaped with `^`. The set is cross-spawn's (node's de-facto standard for
/// running `.cmd` shims).
fn cmd_meta(c: char) -> bool {
    "()[]%!^\"`<>&|;, *?".contains(c)
}

fn caret_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if cmd_meta(c) {
            out.push('^');
        }
        out.push(c);
    }
    out
}

/// The program path of a `cmd.exe /c` line: metacharacters (spaces, parentheses, `&`, `%`…)
/// caret-escaped rather than quoted, so that no quote can end up unbalanced.
pub fn cmd_program(path: &str) -> String {
    caret_escape(path)
}

/// One argument of a `.cmd` shim run by `cmd.exe /d /s /c "…"`.
///
/// First quoted for the program the shim finally starts (MSVC rules, always in quotes), then
/// every `cmd.exe` metacharacter — the quotes included — caret-escaped twice: once for the outer
/// `cmd.exe /c` line, and once more because the shim passes its arguments on with `%*`, which
/// `cmd.exe` parses again (VS Code's and Cursor's `bin\code.cmd` / `cursor.cmd` do
/// `"%~dp0..\Code.exe" "%~dp0..\resources\app\out\cli.js" %*`). A `%` escaped as `^%` cannot
/// form a `%VAR%` reference, and an escaped `"` never toggles cmd's quote mode, so `&`, `|`,
/// `%PATH%`, `!` and `"` in a folder reach the program literally.
pub fn cmd_shim_arg(arg: &str) -> String {
    caret_escape(&caret_escape(&msvc_quoted(arg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(url_path("/workspace"), "/workspace");
        assert_eq!(url_path("/my dir/naïve/#1/100%/a+b?"), "/my%20dir/na%C3%AFve/%231/100%25/a%2Bb%3F");
        assert_eq!(url_component("/my dir/#1"), "%2Fmy%20dir%2F%231");
    }

    #[test]
    fn sh_words() {
        assert_eq!(sh_word("ssh-remote+a_b"), "ssh-remote+a_b");
        assert_eq!(sh_word("/a b"), "'/a b'");
        assert_eq!(sh_word("it's"), r"'it'\''s'");
        assert_eq!(sh_word(""), "''");
    }

    #[test]
    fn msvc_quoting() {
        assert_eq!(msvc_arg("ssh"), "ssh");
        assert_eq!(msvc_arg("a b"), "\"a b\"");
        assert_eq!(msvc_arg(r"a\b c\"), r#""a\b c\\""#);
        assert_eq!(msvc_arg(r#"say "hi"\"#), r#""say \"hi\"\\""#);
        assert_eq!(msvc_arg(r#"x\"y"#), r#""x\\\"y""#);
        assert_eq!(msvc_arg(""), "\"\"");
    }

    #[test]
    fn cmd_escaping() {
        assert_eq!(
            cmd_program(r"C:\Program Files (x86)\a&b\code.cmd"),
            r"C:\Program^ Files^ ^(x86^)\a^&b\code.cmd"
        );
        assert_eq!(cmd_shim_arg("--remote"), r#"^^^"--remote^^^""#);
        assert_eq!(cmd_shim_arg("/a b"), r#"^^^"/a^^^ b^^^""#);
        assert_eq!(cmd_shim_arg("%PATH%"), r#"^^^"^^^%PATH^^^%^^^""#);
        assert_eq!(cmd_shim_arg(r#"a"b"#), r#"^^^"a\^^^"b^^^""#);
    }
}
