//! Opening a sign-in page with the user's `$BROWSER` (the caller reads the variable).

/// Runs `$BROWSER`: a colon-separated list of commands, the first that starts wins; `%s` is
/// replaced by the URL, else the URL is the last argument. No shell: the URL is one argument.
pub fn open_with(browser: &str, url: &str) -> std::io::Result<()> {
    let mut last = std::io::Error::other("empty $BROWSER");
    for candidate in browser.split(':').filter(|c| !c.trim().is_empty()) {
        let mut words: Vec<String> = candidate.split_whitespace().map(str::to_owned).collect();
        if words.iter().any(|w| w.contains("%s")) {
            words.iter_mut().for_each(|w| *w = w.replace("%s", url));
        } else {
            words.push(url.to_owned());
        }
        match std::process::Command::new(&words[0])
            .args(&words[1..])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}
