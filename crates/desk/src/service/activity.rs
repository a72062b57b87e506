//! The activity log: the last [`LOG_LINES`] lines of what the app did and what went wrong, shown
//! in the window (filtered and copied there) and mirrored to the tracing log.

use std::collections::VecDeque;

use sandbox_core::name::SandboxName;
use sandbox_core::oidc::token_store::now_secs;

use super::Service;
use crate::protocol::{LogEntry, LogLevel};

/// Lines of activity kept.
pub(super) const LOG_LINES: usize = 200;

/// The newest [`LOG_LINES`] lines, oldest first.
#[derive(Default)]
pub(super) struct Activity {
    lines: VecDeque<LogEntry>,
}

impl Activity {
    /// Appends a line, dropping the oldest beyond [`LOG_LINES`].
    pub(super) fn push(&mut self, entry: LogEntry) {
        if self.lines.len() == LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(entry);
    }

    /// Every line kept, oldest first.
    pub(super) fn entries(&self) -> Vec<LogEntry> {
        self.lines.iter().cloned().collect()
    }
}

impl Service {
    /// Logs a line (tracing and Activity) and bumps the generation, so every face shows it.
    pub(super) fn log(&self, level: LogLevel, sandbox: Option<&SandboxName>, message: String) {
        match level {
            LogLevel::Info => tracing::info!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
            LogLevel::Warn => tracing::warn!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
            LogLevel::Error => tracing::error!(sandbox = sandbox.map(|s| s.as_str()), "{message}"),
        }
        let entry = LogEntry { at: now_secs(), level, sandbox: sandbox.map(|s| s.to_string()), message };
        self.lock().log.push(entry);
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{service, Recorder};

    #[test]
    fn the_log_keeps_the_newest_lines_in_order() {
        let mut log = Activity::default();
        for i in 0..LOG_LINES + 5 {
            log.push(LogEntry { at: i as u64, level: LogLevel::Info, sandbox: None, message: i.to_string() });
        }
        let entries = log.entries();
        assert_eq!(entries.len(), LOG_LINES);
        assert_eq!(entries.first().unwrap().message, "5");
        assert_eq!(entries.last().unwrap().message, (LOG_LINES + 4).to_string());
    }

    #[tokio::test]
    async fn a_line_reaches_the_snapshot_and_bumps_the_generation() {
        let (_home, app) = service(Recorder::default());
        let changed = app.subscribe();
        let before = app.snapshot().generation;
        let name = SandboxName::new("dev").unwrap();
        app.log(LogLevel::Warn, Some(&name), "something happened".into());
        let snap = app.snapshot();
        assert!(snap.generation > before);
        assert!(changed.has_changed().unwrap());
        let last = snap.log.last().unwrap();
        assert_eq!(
            (last.level, last.sandbox.as_deref(), last.message.as_str()),
            (LogLevel::Warn, Some("dev"), "something happened")
        );
    }
}
