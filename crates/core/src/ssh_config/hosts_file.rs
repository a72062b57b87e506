//! Our own ssh config file (included from the user's): a header and one `Host` block per
//! sandbox. We own it entirely, so it is parsed into blocks and written back whole.

use crate::name::SandboxName;

/// The file's first lines, rewritten on every save.
pub const HEADER: &str =
    "# Managed by sandbox-forward: one Host block per sandbox, included from your ssh config.\n\
                          # Edits here are overwritten; use sandbox-forward to change them.\n";

/// The blocks of our file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    /// `(alias, block text)`; the text starts with the `Host` line and ends with a newline.
    blocks: Vec<(String, String)>,
}

impl HostsFile {
    /// Splits `text` into `Host` blocks; anything before the first `Host` line (the header) is
    /// dropped, and trailing blank lines of a block are trimmed.
    pub fn parse(text: &str) -> Self {
        let mut blocks: Vec<(String, String)> = Vec::new();
        for line in text.split_inclusive('\n') {
            if let Some(alias) = line.strip_prefix("Host ") {
                blocks.push((alias.trim().to_owned(), String::new()));
            }
            if let Some((_, body)) = blocks.last_mut() {
                body.push_str(line);
            }
        }
        for (_, body) in &mut blocks {
            let kept = body.trim_end().len();
            body.truncate(kept);
            body.push('\n');
        }
        HostsFile { blocks }
    }

    /// The whole file: header, then the blocks separated by blank lines.
    pub fn render(&self) -> String {
        let mut out = HEADER.to_owned();
        for (_, body) in &self.blocks {
            out.push('\n');
            out.push_str(body);
        }
        out
    }

    /// Puts `block` (starting with `Host NAME`) in place of `name`'s block, or appends it.
    pub fn upsert(&mut self, name: &SandboxName, block: String) {
        match self.blocks.iter_mut().find(|(alias, _)| alias == name.as_str()) {
            Some((_, body)) => *body = block,
            None => self.blocks.push((name.as_str().to_owned(), block)),
        }
    }

    /// Removes `name`'s block; whether there was one.
    pub fn remove(&mut self, name: &SandboxName) -> bool {
        let before = self.blocks.len();
        self.blocks.retain(|(alias, _)| alias != name.as_str());
        self.blocks.len() != before
    }

    /// Whether no block is left.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// `(name, ProxyCommand value)` of every block whose alias is a valid sandbox name.
    pub fn hosts(&self) -> Vec<(SandboxName, String)> {
        self.blocks
            .iter()
            .filter_map(|(alias, body)| {
                let name = SandboxName::new(alias).ok()?;
                let proxy = body
                    .lines()
                    .find_map(|l| l.trim_start().strip_prefix("ProxyCommand "))
                    .unwrap_or_default();
                Some((name, proxy.to_owned()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(name: &str, proxy: &str) -> String {
        format!("Host {name}\n    ProxyCommand {proxy}\n    User sandbox\n")
    }

    #[test]
    fn upsert_replaces_in_place_and_appends_new() {
        let a = SandboxName::new("a").unwrap();
        let b = SandboxName::new("b").unwrap();
        let mut file = HostsFile::default();
        file.upsert(&a, block("a", "one"));
        file.upsert(&b, block("b", "two"));
        file.upsert(&a, block("a", "three"));
        let text = file.render();
        assert_eq!(text, format!("{HEADER}\n{}\n{}", block("a", "three"), block("b", "two")));
        let parsed = HostsFile::parse(&text);
        assert_eq!(parsed, file);
        assert_eq!(parsed.render(), text);
        let names: Vec<_> = parsed.hosts().into_iter().map(|(n, p)| (n.to_string(), p)).collect();
        assert_eq!(names, [("a".to_owned(), "three".to_owned()), ("b".to_owned(), "two".to_owned())]);
    }

    #[test]
    fn remove_reports_whether_a_block_went() {
        let a = SandboxName::new("a").unwrap();
        let mut file = HostsFile::parse(&format!("{HEADER}\n{}\n\n\n", block("a", "x")));
        assert!(!file.remove(&SandboxName::new("b").unwrap()));
        assert!(file.remove(&a));
        assert!(file.is_empty());
        assert_eq!(file.render(), HEADER);
    }
}
