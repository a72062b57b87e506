//! `Host NAME` blocks that the original Go `sandbox-forward ssh-setup` wrote straight into the
//! user's `~/.ssh/config` (no markers; `ProxyCommand sandbox-forward proxy --ssh --server …`).
//!
//! Left in place, such a block is shadowed by ours while we manage `NAME`, and comes back to life
//! — with a key we deleted — once `forget NAME` removes ours. So `ssh-setup NAME` moves it out of
//! the user's file into a dated backup beside it. Found as bytes, like the managed block: the
//! rest of the file is never re-rendered.

use std::ops::Range;

use crate::name::SandboxName;

/// One block of the original tool's in the user's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyBlock {
    /// The `Host` alias.
    pub name: SandboxName,
    /// From the start of its `Host` line to the end of its last setting line (trailing blank
    /// and comment lines stay: they may belong to what follows).
    pub range: Range<usize>,
}

/// The first keyword of a config line, lower-cased, and the rest (after spaces or one `=`).
fn keyword(line: &[u8]) -> Option<(String, &[u8])> {
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return None;
    }
    let end = line.iter().position(|&b| b == b'=' || b.is_ascii_whitespace()).unwrap_or(line.len());
    let rest = line[end..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=").unwrap_or(rest).trim_ascii_start();
    Some((String::from_utf8_lossy(&line[..end]).to_ascii_lowercase(), rest))
}

/// Whether a ProxyCommand value runs the original's `sandbox-forward proxy` (ours always names
/// `--sandbox`, and lives in our own file, not here).
fn is_original_proxy(value: &[u8]) -> bool {
    let value = String::from_utf8_lossy(value);
    let mut words = value.split_ascii_whitespace();
    let runs_us = words.next().is_some_and(|program| {
        let program = program.trim_matches(['"', '\'']);
        let base = program.rsplit(['/', '\\']).next().unwrap_or(program);
        base == "sandbox-forward" || base == "sandbox-forward.exe"
    });
    runs_us && value.split_ascii_whitespace().any(|w| w == "proxy") && !value.contains("--sandbox")
}

/// The original tool's blocks in `bytes` (the user's config), outside `skip` (our managed block).
pub fn find(bytes: &[u8], skip: Option<&Range<usize>>) -> Vec<LegacyBlock> {
    struct Open {
        name: Option<SandboxName>,
        start: usize,
        end: usize,
        original: bool,
    }
    let mut found = Vec::new();
    let mut current: Option<Open> = None;
    let close = |open: Option<Open>, found: &mut Vec<LegacyBlock>| {
        if let Some(Open { name: Some(name), start, end, original: true }) = open {
            found.push(LegacyBlock { name, range: start..end });
        }
    };
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| start + i + 1);
        let line = &bytes[start..end];
        let inside_ours = skip.is_some_and(|s| s.contains(&start));
        match keyword(line) {
            _ if inside_ours => close(current.take(), &mut found),
            Some((k, rest)) if k == "host" || k == "match" => {
                close(current.take(), &mut found);
                // Only a block for exactly one alias (the original wrote `Host NAME`).
                let mut patterns = rest.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
                let name = match (k.as_str(), patterns.next(), patterns.next()) {
                    ("host", Some(only), None) => {
                        std::str::from_utf8(only).ok().and_then(|n| SandboxName::new(n).ok())
                    }
                    _ => None,
                };
                current = Some(Open { name, start, end, original: false });
            }
            Some((k, rest)) => {
                if let Some(open) = current.as_mut() {
                    open.end = end;
                    open.original |= k == "proxycommand" && is_original_proxy(rest);
                }
            }
            None => {}
        }
        start = end;
    }
    close(current.take(), &mut found);
    found
}

/// `bytes` without `blocks`, and the removed bytes, each block ending with a newline.
pub fn cut(bytes: &[u8], blocks: &[LegacyBlock]) -> (Vec<u8>, Vec<u8>) {
    let mut kept = Vec::with_capacity(bytes.len());
    let mut removed = Vec::new();
    let mut at = 0;
    for block in blocks {
        kept.extend_from_slice(&bytes[at..block.range.start]);
        removed.extend_from_slice(&bytes[block.range.clone()]);
        if !removed.ends_with(b"\n") {
            removed.push(b'\n');
        }
        at = block.range.end;
    }
    kept.extend_from_slice(&bytes[at..]);
    (kept, removed)
}

/// `YYYYMMDD-HHMMSS` (UTC) for a time in seconds since the Unix epoch: the backup's date.
pub fn timestamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "Host box\n  ProxyCommand sandbox-forward proxy --ssh --server https://s.example --bearer-file /t\n  User sandbox\n  IdentityFile ~/.config/sandbox/keys/box\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n";

    #[test]
    fn finds_the_originals_blocks_and_cuts_only_them() {
        let config = format!(
            "# mine\nHost work\n  User me\n\n{ORIGINAL}\n# about other\nHost other\n  ProxyCommand /usr/local/bin/sandbox-forward proxy -ssh -server h\n"
        );
        let found = find(config.as_bytes(), None);
        let names: Vec<_> = found.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["box", "other"]);
        assert_eq!(&config[found[0].range.clone()], ORIGINAL);
        let (kept, removed) = cut(config.as_bytes(), &found[..1]);
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "# mine\nHost work\n  User me\n\n\n# about other\nHost other\n  ProxyCommand /usr/local/bin/sandbox-forward proxy -ssh -server h\n"
        );
        assert_eq!(String::from_utf8(removed).unwrap(), ORIGINAL);
    }

    #[test]
    fn leaves_everything_else_alone() {
        for config in [
            // Ours (names --sandbox), another tool, several aliases, a Match, no final newline.
            "Host box\n  ProxyCommand '/usr/bin/sandbox-forward' proxy --ssh --sandbox box\n",
            "Host box\n  ProxyCommand nc %h %p\n",
            "Host box other\n  ProxyCommand sandbox-forward proxy --ssh --server h\n",
            "Match host box\n  ProxyCommand sandbox-forward proxy --ssh --server h\n",
            "Host *\n  ProxyCommand sandbox-forward proxy --ssh --server h",
            "Host box\n  ProxyCommand my-sandbox-forward-wrapper proxy\n",
        ] {
            assert_eq!(find(config.as_bytes(), None), vec![], "{config}");
        }
        // Inside our managed block: skipped.
        assert_eq!(find(ORIGINAL.as_bytes(), Some(&(0..ORIGINAL.len()))), vec![]);
        // CRLF and `Host=` spellings are the same block.
        let crlf = "host=box\r\n\tProxyCommand=\"C:\\bin\\sandbox-forward.exe\" proxy --ssh --server h\r\n";
        assert_eq!(find(crlf.as_bytes(), None)[0].range, 0..crlf.len());
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_827_696), "20000229-123456");
        assert_eq!(timestamp(1_795_910_400 + 3_723), "20261129-010203");
    }
}
