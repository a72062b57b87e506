//! Handing a link to another program: the user's `$BROWSER` for a sign-in page (the caller reads
//! the variable), or the system's opener (`xdg-open`, macOS `open`) for an IDE's link. Either
//! way what the program answered is checked: an opener that exits with a failure at once (no
//! application handles `vscode://`: xdg-open exits 3) is an error, not "Opening…".

use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long an opener may run before it counts as having handed the link over. Openers that
/// work answer at once (`gio`, `kde-open`, `open`) or start the application and wait for it
/// (xdg-open's generic mode); one still running after this is left to finish on its own.
pub const HAND_OVER: Duration = Duration::from_secs(2);

/// Runs `$BROWSER`: a colon-separated list of commands, the first that takes the URL wins; `%s`
/// is replaced by the URL, else the URL is the last argument. No shell: the URL is one argument.
pub fn open_with(browser: &str, url: &str) -> io::Result<()> {
    let mut last = io::Error::other("empty $BROWSER");
    for candidate in browser.split(':').filter(|c| !c.trim().is_empty()) {
        let mut words: Vec<String> = candidate.split_whitespace().map(str::to_owned).collect();
        if words.iter().any(|w| w.contains("%s")) {
            words.iter_mut().for_each(|w| *w = w.replace("%s", url));
        } else {
            words.push(url.to_owned());
        }
        match run_opener(Path::new(&words[0]), &words[1..], url) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens a link with the system's handler for its scheme (`xdg-open` on Linux and the BSDs,
/// `open` on macOS), checking what the opener answered. Not for Windows, where the shell's
/// `ShellExecute` answers directly (the caller uses it).
#[cfg(unix)]
pub fn open_url(url: &str) -> io::Result<()> {
    let opener = if cfg!(target_os = "macos") { "/usr/bin/open" } else { "xdg-open" };
    run_opener(Path::new(opener), &[url.to_owned()], url)
}

/// Runs `program args…` and waits up to [`HAND_OVER`]: a failed exit is an error naming the
/// program and its status; still running, it is reaped by a background thread.
fn run_opener(program: &Path, args: &[String], url: &str) -> io::Result<()> {
    let name = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {name}: {e}")))?;
    match wait_for(child, HAND_OVER)? {
        Some(status) if !status.success() => Err(io::Error::other(failure(&name, status, url))),
        _ => Ok(()),
    }
}

/// The child's exit status if it ends within `limit`; else it is left to a reaper thread.
fn wait_for(mut child: Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            std::thread::spawn(move || child.wait());
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// "xdg-open exited with status 3: nothing here opens vscode:// links".
fn failure(program: &str, status: ExitStatus, url: &str) -> String {
    let scheme = url.split_once("://").map_or("such", |(scheme, _)| scheme);
    match status.code() {
        Some(code) => format!("{program} exited with status {code}: nothing here opens {scheme}:// links"),
        None => format!("{program} was stopped by a signal before it opened the {scheme}:// link"),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("opener");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn an_opener_that_fails_is_an_error_and_one_that_stays_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let fails = script(dir.path(), "exit 3");
        let err = open_with(fails.to_str().unwrap(), "vscode://vscode-remote/x").unwrap_err();
        assert_eq!(err.to_string(), "opener exited with status 3: nothing here opens vscode:// links");
        // A $BROWSER list goes on to the next command.
        let list = format!("{}:true", fails.display());
        open_with(&list, "https://example.test/").unwrap();
        // Still running at the hand-over: handed over.
        let stays = script(dir.path(), "sleep 5");
        let started = Instant::now();
        open_with(stays.to_str().unwrap(), "vscode://x").unwrap();
        assert!(started.elapsed() < HAND_OVER + Duration::from_secs(1));
        let missing = dir.path().join("missing");
        let err = open_with(missing.to_str().unwrap(), "vscode://x").unwrap_err();
        assert!(err.to_string().starts_with("cannot run missing:"), "{err}");
    }
}
