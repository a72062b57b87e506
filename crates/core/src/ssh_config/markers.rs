//! The managed block in the user's `~/.ssh/config`, handled as bytes.
//!
//! The user's file is never parsed into a model and written back: we find our two marker lines,
//! and insert, replace or cut out exactly the bytes between them, so comments, `Match` blocks,
//! CRLF line endings, a missing final newline and non-UTF-8 bytes all survive untouched.

use std::ops::Range;

use super::render::Platform;

/// First line of the managed block; matched as a whole line, byte for byte.
pub const BEGIN_MARKER: &str =
    "# BEGIN sandbox-forward managed block (edit with sandbox-forward; do not edit by hand)";
/// Last line of the managed block; matched as a whole line, byte for byte.
pub const END_MARKER: &str = "# END sandbox-forward managed block";

/// A UTF-8 byte-order mark: ssh would read it as part of the first keyword, so we insert after it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Marker lines that are duplicated, unbalanced or out of order; `detail` names the line numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerError {
    /// One clause such as `BEGIN marker at line 3 has no END marker`.
    pub detail: String,
}

/// One line of the file: `content` excludes the `\n` and a `\r` before it, `whole` includes them.
struct Line {
    number: usize,
    content: Range<usize>,
    whole: Range<usize>,
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = Line> + '_ {
    let mut start = 0;
    let mut number = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        number += 1;
        let (content_end, end) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let nl = start + i;
                let content_end = if nl > start && bytes[nl - 1] == b'\r' { nl - 1 } else { nl };
                (content_end, nl + 1)
            }
            None => (bytes.len(), bytes.len()),
        };
        let line = Line { number, content: start..content_end, whole: start..end };
        start = end;
        Some(line)
    })
}

/// Finds the managed block: the byte range from the start of the BEGIN line to the end of the
/// END line (its line ending included). `Ok(None)` when there are no markers at all.
pub fn find_block(bytes: &[u8]) -> Result<Option<Range<usize>>, MarkerError> {
    let mut begins: Vec<(usize, usize)> = Vec::new(); // (line number, byte offset of line start)
    let mut ends: Vec<(usize, usize)> = Vec::new(); // (line number, byte offset after the line)
    for line in lines(bytes) {
        let mut content = &bytes[line.content];
        let mut start = line.whole.start;
        // We insert after a byte-order mark, so the first line is ours without it.
        if line.number == 1 && content.starts_with(BOM) {
            content = &content[BOM.len()..];
            start += BOM.len();
        }
        if content == BEGIN_MARKER.as_bytes() {
            begins.push((line.number, start));
        } else if content == END_MARKER.as_bytes() {
            ends.push((line.number, line.whole.end));
        }
    }
    let numbers = |v: &[(usize, usize)]| v.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>().join(", ");
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => Ok(None),
        ([(b, start)], [(e, end)]) if b < e => Ok(Some(*start..*end)),
        ([(b, _)], [(e, _)]) => Err(MarkerError {
            detail: format!("END marker at line {e} comes before BEGIN marker at line {b}"),
        }),
        ([(b, _)], []) => Err(MarkerError { detail: format!("BEGIN marker at line {b} has no END marker") }),
        ([], [(e, _)]) => Err(MarkerError { detail: format!("END marker at line {e} has no BEGIN marker") }),
        _ => Err(MarkerError {
            detail: format!(
                "sandbox-forward markers are duplicated (BEGIN at lines [{}], END at lines [{}])",
                numbers(&begins),
                numbers(&ends)
            ),
        }),
    }
}

/// The line ending to use for our lines: CRLF when the user's own lines (outside `block`) use
/// it, else whatever the existing block uses, else LF.
pub fn line_ending(bytes: &[u8], block: Option<&Range<usize>>) -> &'static str {
    let outside_first_eol = lines(bytes)
        .filter(|l| block.is_none_or(|b| !b.contains(&l.whole.start)))
        .find(|l| l.content.end < l.whole.end)
        .or_else(|| lines(bytes).find(|l| l.content.end < l.whole.end));
    match outside_first_eol {
        Some(l) if l.whole.end - l.content.end == 2 => "\r\n",
        _ => "\n",
    }
}

/// The bytes of the managed block holding `include_line`, each line ended by `eol`.
pub fn render_block(include_line: &str, eol: &str) -> Vec<u8> {
    format!("{BEGIN_MARKER}{eol}{include_line}{eol}{END_MARKER}{eol}").into_bytes()
}

/// `bytes` with `block` put in place of `existing` (or at the very top, after a byte-order
/// mark, when there is none), or with `existing` cut out when `block` is `None`.
pub fn splice(bytes: &[u8], existing: Option<Range<usize>>, block: Option<&[u8]>) -> Vec<u8> {
    let range = existing.unwrap_or_else(|| {
        let top = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
        top..top
    });
    let mut out = Vec::with_capacity(bytes.len() + block.map_or(0, <[u8]>::len));
    out.extend_from_slice(&bytes[..range.start]);
    out.extend_from_slice(block.unwrap_or_default());
    out.extend_from_slice(&bytes[range.end..]);
    out
}

/// Whether the user already includes `path` by hand outside our block (for example in a
/// home-manager-generated config), before any `Host` or `Match` line so it applies to all hosts.
/// On Windows, where we write `path` with `/`, the user's `C:\Users\…` spelling (and any letter
/// case: Windows file names ignore it) names the same file.
pub fn has_manual_include(
    bytes: &[u8],
    block: Option<&Range<usize>>,
    path: &str,
    platform: Platform,
) -> bool {
    for line in lines(bytes) {
        if block.is_some_and(|b| b.contains(&line.whole.start)) {
            continue;
        }
        let content = bytes[line.content].trim_ascii();
        if content.is_empty() || content.starts_with(b"#") {
            continue;
        }
        let key_end =
            content.iter().position(|&b| b == b' ' || b == b'\t' || b == b'=').unwrap_or(content.len());
        let (keyword, rest) = content.split_at(key_end);
        if keyword.eq_ignore_ascii_case(b"host") || keyword.eq_ignore_ascii_case(b"match") {
            return false;
        }
        if keyword.eq_ignore_ascii_case(b"include") {
            let rest = rest.trim_ascii();
            let rest = rest.strip_prefix(b"=").unwrap_or(rest).trim_ascii();
            let value = rest.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")).unwrap_or(rest);
            if same_path(value, path.as_bytes(), platform) {
                return true;
            }
        }
    }
    false
}

/// Whether an `Include` value names `path`: byte for byte, or on Windows with `\` and `/` alike
/// and letter case ignored.
fn same_path(value: &[u8], path: &[u8], platform: Platform) -> bool {
    let fold = |b: u8| if b == b'\\' { b'/' } else { b.to_ascii_lowercase() };
    match platform {
        Platform::Posix => value == path,
        Platform::Windows => {
            value.len() == path.len() && value.iter().zip(path).all(|(&a, &b)| fold(a) == fold(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INCLUDE: &str = "Include \"/home/u/.config/sandbox/ssh_config\"";

    fn block(eol: &str) -> Vec<u8> {
        render_block(INCLUDE, eol)
    }

    #[test]
    fn managed_block_snapshot() {
        assert_eq!(
            String::from_utf8(block("\n")).unwrap(),
            "# BEGIN sandbox-forward managed block (edit with sandbox-forward; do not edit by hand)\n\
             Include \"/home/u/.config/sandbox/ssh_config\"\n\
             # END sandbox-forward managed block\n"
        );
        assert_eq!(
            String::from_utf8(block("\r\n")).unwrap(),
            "# BEGIN sandbox-forward managed block (edit with sandbox-forward; do not edit by hand)\r\n\
             Include \"/home/u/.config/sandbox/ssh_config\"\r\n\
             # END sandbox-forward managed block\r\n"
        );
    }

    #[test]
    fn inserts_at_top_and_cuts_back_out() {
        let original = b"# my header\nHost *\n    User me".to_vec(); // no final newline
        let inserted = splice(&original, None, Some(&block("\n")));
        assert!(inserted.starts_with(BEGIN_MARKER.as_bytes()));
        assert!(inserted.ends_with(&original));
        let span = find_block(&inserted).unwrap().unwrap();
        assert_eq!(span, 0..block("\n").len());
        assert_eq!(splice(&inserted, Some(span), None), original);
    }

    #[test]
    fn inserts_after_a_byte_order_mark() {
        let original = b"\xEF\xBB\xBFHost a\n".to_vec();
        let inserted = splice(&original, None, Some(&block("\n")));
        assert!(inserted[3..].starts_with(BEGIN_MARKER.as_bytes()));
        let span = find_block(&inserted).unwrap().unwrap();
        assert_eq!(splice(&inserted, Some(span), None), original);
    }

    #[test]
    fn line_ending_follows_the_users_lines() {
        assert_eq!(line_ending(b"Host a\r\n  User b\r\n", None), "\r\n");
        assert_eq!(line_ending(b"Host a\n", None), "\n");
        assert_eq!(line_ending(b"", None), "\n");
        assert_eq!(line_ending(b"Host a", None), "\n");
        // Our own LF block on top of a CRLF file does not decide the ending: the user's lines do.
        let mut mixed = block("\n");
        mixed.extend_from_slice(b"Host a\r\n");
        let span = find_block(&mixed).unwrap();
        assert_eq!(line_ending(&mixed, span.as_ref()), "\r\n");
        // A file holding only our CRLF block keeps CRLF.
        let only = block("\r\n");
        let span = find_block(&only).unwrap();
        assert_eq!(line_ending(&only, span.as_ref()), "\r\n");
    }

    #[test]
    fn markers_match_whole_lines_only() {
        let text = format!(" {BEGIN_MARKER}\n{END_MARKER} trailing\n#{BEGIN_MARKER}\n");
        assert_eq!(find_block(text.as_bytes()).unwrap(), None);
        // A CRLF marker line still matches.
        let crlf = format!("{BEGIN_MARKER}\r\nx\r\n{END_MARKER}\r\n");
        assert_eq!(find_block(crlf.as_bytes()).unwrap(), Some(0..crlf.len()));
        // An END marker without final newline still closes the block.
        let nofinal = format!("a\n{BEGIN_MARKER}\nx\n{END_MARKER}");
        assert_eq!(find_block(nofinal.as_bytes()).unwrap(), Some(2..nofinal.len()));
    }

    #[test]
    fn refuses_broken_markers_with_line_numbers() {
        let b = BEGIN_MARKER;
        let e = END_MARKER;
        let cases = [
            (format!("{b}\nx\n{e}\n{b}\n{e}\n"), "BEGIN at lines [1, 4], END at lines [3, 5]"),
            (format!("{b}\n{b}\n{e}\n"), "BEGIN at lines [1, 2], END at lines [3]"),
            (format!("a\n{e}\nb\n{b}\n"), "END marker at line 2 comes before BEGIN marker at line 4"),
            (format!("a\n{b}\nb\n"), "BEGIN marker at line 2 has no END marker"),
            (format!("a\nb\n{e}"), "END marker at line 3 has no BEGIN marker"),
        ];
        for (text, want) in cases {
            let err = find_block(text.as_bytes()).unwrap_err();
            assert!(err.detail.contains(want), "{:?} -> {:?}", text, err.detail);
        }
    }

    #[test]
    fn finds_a_manual_include_before_the_first_host() {
        let path = "/home/u/.config/sandbox/ssh_config";
        let has = |text: String| has_manual_include(text.as_bytes(), None, path, Platform::Posix);
        assert!(has(format!("# x\nInclude {path}\n")));
        assert!(has(format!("  include = \"{path}\"\r\n")));
        assert!(!has(format!("Host a\nInclude {path}\n")));
        assert!(!has(format!("Include {path}x\n")));
        assert!(!has(format!("Include \"{path}\n")));
        // Other spellings are other files on POSIX.
        assert!(!has(format!("Include {}\n", path.to_uppercase())));
        // Our own block's line does not count as a manual one.
        let ours = render_block(&format!("Include \"{path}\""), "\n");
        let span = find_block(&ours).unwrap();
        assert!(!has_manual_include(&ours, span.as_ref(), path, Platform::Posix));
    }

    #[test]
    fn a_windows_include_matches_in_either_spelling() {
        // We write `C:/…`; a Windows user types `C:\…`, quoted or not, in any case.
        let path = "C:/Users/me/.config/sandbox/ssh_config";
        let has = |text: &str| has_manual_include(text.as_bytes(), None, path, Platform::Windows);
        assert!(has("Include C:\\Users\\me\\.config\\sandbox\\ssh_config\r\n"));
        assert!(has("Include \"C:\\Users\\me\\.config\\sandbox\\ssh_config\"\r\n"));
        assert!(has("include c:\\users\\ME\\.config/sandbox\\ssh_config\n"));
        assert!(has("Include C:/Users/me/.config/sandbox/ssh_config\n"));
        assert!(!has("Include C:\\Users\\me\\.config\\sandbox\\ssh_config2\n"));
        assert!(!has("Include D:\\Users\\me\\.config\\sandbox\\ssh_config\n"));
        assert!(!has("Host x\nInclude C:\\Users\\me\\.config\\sandbox\\ssh_config\n"));
    }
}
