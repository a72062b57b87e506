//! Text that came from elsewhere (a server's error body, a JSON field, a provider's
//! `error_description`, a `Location` header) made safe to print: a terminal interprets ESC, CSI
//! and OSC sequences, so a hostile body could retitle, clear or rewrite the user's terminal.
//! Every message that quotes such text goes through [`printable`] or [`one_line`].

/// `text` with every control character removed: C0 (ESC, BEL, BS, CR …), DEL, C1 (the 8-bit
/// CSI and OSC introducers) and the Unicode bidirectional overrides that reorder what is shown.
/// Tabs and line breaks become spaces, so the result is one line.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() || is_bidi_control(c) => None,
            c => Some(c),
        })
        .collect()
}

/// The first line of `text`, [`printable`], trimmed and cut to `max` characters (with `…`);
/// `(no details)` when nothing is left. For a server's error body quoted in a one-line message.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let clean = printable(first);
    let clean = clean.trim();
    if clean.is_empty() {
        return "(no details)".into();
    }
    let mut out: String = clean.chars().take(max).collect();
    if clean.chars().count() > max {
        out.push('…');
    }
    out
}

/// U+200E/F marks, U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_lose_their_introducers() {
        // OSC 0 (set title) ended by BEL, CSI 2J (clear screen), an 8-bit CSI, a bidi override.
        let hostile = "\x1b]0;pwned\x07denied\x1b[2J \u{9b}31m red \u{202e}txt\x7f";
        let shown = printable(hostile);
        assert_eq!(shown, "]0;pwneddenied[2J 31m red txt");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }

    #[test]
    fn one_line_takes_the_first_nonblank_line_bounded() {
        assert_eq!(one_line("\n  \nfirst\tline\r\nsecond", 100), "first line");
        assert_eq!(one_line("\x1b\x07\n", 100), "(no details)");
        assert_eq!(one_line(&"é".repeat(300), 200).chars().count(), 201);
        assert_eq!(one_line("unicode ünïcödé stays", 100), "unicode ünïcödé stays");
    }
}
