//! The exact command line or URL for every IDE × OS, with the launcher found or not.

use std::cell::RefCell;
use std::path::PathBuf;

use super::*;

fn name() -> SandboxName {
    SandboxName::new("my-box").unwrap()
}

/// A `found` that knows exactly these executables.
fn installed(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
    let list: Vec<(String, PathBuf)> = list.iter().map(|(n, p)| (n.to_string(), PathBuf::from(p))).collect();
    move |n| list.iter().find(|(k, _)| k == n).map(|(_, p)| p.clone())
}

fn cmd(program: &str, args: &[&str]) -> LaunchPlan {
    LaunchPlan::Command { program: program.into(), args: args.iter().map(|a| a.to_string()).collect() }
}

fn url(u: &str) -> LaunchPlan {
    LaunchPlan::Url(u.into())
}

enum Want {
    Plan(LaunchPlan),
    NotInstalled,
    NoSsh,
}

/// IDE, OS, the executables `found` knows, the expected outcome.
type Case = (Ide, Os, Vec<(&'static str, &'static str)>, Want);

const GATEWAY: &str =
    "jetbrains-gateway://connect#type=ssh&deploy=false&host=my-box&port=22&user=sandbox&projectPath=%2Fworkspace";
const WIN_CODE: &str = r"C:\Users\me\AppData\Local\Programs\Microsoft VS Code\bin\code.cmd";
const WIN_CURSOR: &str = r"C:\Users\me\AppData\Local\Programs\cursor\resources\app\bin\cursor.cmd";
const WIN_ZED: &str = r"C:\Users\me\AppData\Local\Programs\Zed\bin\zed.exe";
const MAC_CODE: &str = "/Applications/Visual Studio Code.app/Contents/Resources/app/bin/code";
const MAC_CURSOR: &str = "/Applications/Cursor.app/Contents/Resources/app/bin/cursor";
const MAC_ZED: &str = "/Applications/Zed.app/Contents/MacOS/cli";
const OSA_SCRIPT: &str = "tell application \"Terminal\" to do script \"ssh my-box\"";
const OSA_ACTIVATE: &str = "tell application \"Terminal\" to activate";

#[test]
fn every_ide_on_every_os() {
    use Ide::*;
    use Os::*;
    use Want::*;
    let ssh = ("ssh", "/usr/bin/ssh");
    let table: Vec<Case> = vec![
        // Linux
        (
            VsCode,
            Linux,
            vec![("code", "/usr/bin/code")],
            Plan(cmd("/usr/bin/code", &["--remote", "ssh-remote+my-box", "/workspace"])),
        ),
        (VsCode, Linux, vec![], Plan(url("vscode://vscode-remote/ssh-remote+my-box/workspace"))),
        (
            Cursor,
            Linux,
            vec![("cursor", "/home/me/.local/bin/cursor")],
            Plan(cmd("/home/me/.local/bin/cursor", &["--remote", "ssh-remote+my-box", "/workspace"])),
        ),
        (Cursor, Linux, vec![], Plan(url("cursor://vscode-remote/ssh-remote+my-box/workspace"))),
        (Gateway, Linux, vec![], Plan(url(GATEWAY))),
        (
            Zed,
            Linux,
            vec![("zed", "/home/me/.local/bin/zed")],
            Plan(cmd("/home/me/.local/bin/zed", &["ssh://sandbox@my-box/workspace"])),
        ),
        (
            Zed,
            Linux,
            vec![("zeditor", "/usr/bin/zeditor")],
            Plan(cmd("/usr/bin/zeditor", &["ssh://sandbox@my-box/workspace"])),
        ),
        (Zed, Linux, vec![], NotInstalled),
        (
            Terminal,
            Linux,
            vec![ssh, ("x-terminal-emulator", "/usr/bin/x-terminal-emulator"), ("xterm", "/usr/bin/xterm")],
            Plan(cmd("/usr/bin/x-terminal-emulator", &["-e", "ssh", "my-box"])),
        ),
        (
            Terminal,
            Linux,
            vec![ssh, ("gnome-terminal", "/usr/bin/gnome-terminal"), ("xterm", "/usr/bin/xterm")],
            Plan(cmd("/usr/bin/gnome-terminal", &["--", "ssh", "my-box"])),
        ),
        (
            Terminal,
            Linux,
            vec![ssh, ("konsole", "/usr/bin/konsole")],
            Plan(cmd("/usr/bin/konsole", &["-e", "ssh", "my-box"])),
        ),
        (
            Terminal,
            Linux,
            vec![ssh, ("xterm", "/usr/bin/xterm")],
            Plan(cmd("/usr/bin/xterm", &["-e", "ssh", "my-box"])),
        ),
        (Terminal, Linux, vec![ssh], NotInstalled),
        (Terminal, Linux, vec![("xterm", "/usr/bin/xterm")], NoSsh),
        // macOS
        (
            VsCode,
            MacOs,
            vec![("code", MAC_CODE)],
            Plan(cmd(MAC_CODE, &["--remote", "ssh-remote+my-box", "/workspace"])),
        ),
        (VsCode, MacOs, vec![], Plan(url("vscode://vscode-remote/ssh-remote+my-box/workspace"))),
        (
            Cursor,
            MacOs,
            vec![("cursor", MAC_CURSOR)],
            Plan(cmd(MAC_CURSOR, &["--remote", "ssh-remote+my-box", "/workspace"])),
        ),
        (Cursor, MacOs, vec![], Plan(url("cursor://vscode-remote/ssh-remote+my-box/workspace"))),
        (Gateway, MacOs, vec![], Plan(url(GATEWAY))),
        (Zed, MacOs, vec![("zed", MAC_ZED)], Plan(cmd(MAC_ZED, &["ssh://sandbox@my-box/workspace"]))),
        (Zed, MacOs, vec![("zeditor", "/usr/local/bin/zeditor")], NotInstalled),
        (
            Terminal,
            MacOs,
            vec![ssh],
            Plan(cmd("/usr/bin/osascript", &["-e", OSA_SCRIPT, "-e", OSA_ACTIVATE])),
        ),
        (Terminal, MacOs, vec![], NoSsh),
        // Windows
        (
            VsCode,
            Windows,
            vec![("code", WIN_CODE)],
            Plan(cmd(
                "cmd.exe",
                &[
                    "/d",
                    "/s",
                    "/c",
                    r#""C:\Users\me\AppData\Local\Programs\Microsoft^ VS^ Code\bin\code.cmd ^^^"--remote^^^" ^^^"ssh-remote+my-box^^^" ^^^"/workspace^^^"""#,
                ],
            )),
        ),
        (
            VsCode,
            Windows,
            vec![("code", r"C:\tools\code.exe")],
            Plan(cmd(r"C:\tools\code.exe", &["--remote", "ssh-remote+my-box", "/workspace"])),
        ),
        (VsCode, Windows, vec![], Plan(url("vscode://vscode-remote/ssh-remote+my-box/workspace"))),
        (
            Cursor,
            Windows,
            vec![("cursor", WIN_CURSOR)],
            Plan(cmd(
                "cmd.exe",
                &[
                    "/d",
                    "/s",
                    "/c",
                    r#""C:\Users\me\AppData\Local\Programs\cursor\resources\app\bin\cursor.cmd ^^^"--remote^^^" ^^^"ssh-remote+my-box^^^" ^^^"/workspace^^^"""#,
                ],
            )),
        ),
        (Cursor, Windows, vec![], Plan(url("cursor://vscode-remote/ssh-remote+my-box/workspace"))),
        (Gateway, Windows, vec![], Plan(url(GATEWAY))),
        (Zed, Windows, vec![("zed", WIN_ZED)], Plan(cmd(WIN_ZED, &["ssh://sandbox@my-box/workspace"]))),
        (Zed, Windows, vec![("zeditor", r"C:\x\zeditor.exe")], NotInstalled),
        (
            Terminal,
            Windows,
            vec![
                ("ssh", r"C:\Windows\System32\OpenSSH\ssh.exe"),
                ("wt", r"C:\Users\me\AppData\Local\Microsoft\WindowsApps\wt.exe"),
            ],
            Plan(cmd(r"C:\Users\me\AppData\Local\Microsoft\WindowsApps\wt.exe", &["ssh", "my-box"])),
        ),
        (
            Terminal,
            Windows,
            vec![("ssh", r"C:\Windows\System32\OpenSSH\ssh.exe")],
            Plan(cmd("cmd.exe", &["/d", "/c", "start", "ssh", "my-box"])),
        ),
        (Terminal, Windows, vec![("wt", r"C:\wt.exe")], NoSsh),
    ];
    for (ide, os, found, want) in table {
        let got = launch_plan(ide, os, &name(), "/workspace", &installed(&found));
        match (want, got) {
            (Plan(want), Ok(got)) => assert_eq!(got, want, "{ide} on {os:?} with {found:?}"),
            (NotInstalled, Err(IdeError::NotInstalled { ide: i, hint })) => {
                assert_eq!(i, ide);
                assert_eq!(hint, ide.install_hint(os));
            }
            (NoSsh, Err(IdeError::NoSsh(hint))) => assert_eq!(hint, ssh_hint(os)),
            (_, got) => panic!("{ide} on {os:?} with {found:?}: unexpected {got:?}"),
        }
    }
}

#[test]
fn command_lines_as_printed() {
    let code = installed(&[("code", MAC_CODE)]);
    let plan = launch_plan(Ide::VsCode, Os::MacOs, &name(), "/home/sandbox/my proj", &code).unwrap();
    assert_eq!(
        plan.command_line(Os::MacOs),
        "'/Applications/Visual Studio Code.app/Contents/Resources/app/bin/code' --remote ssh-remote+my-box '/home/sandbox/my proj'"
    );
    let terminal =
        launch_plan(Ide::Terminal, Os::MacOs, &name(), "/workspace", &installed(&[("ssh", "/usr/bin/ssh")]));
    assert_eq!(
        terminal.unwrap().command_line(Os::MacOs),
        r#"/usr/bin/osascript -e 'tell application "Terminal" to do script "ssh my-box"' -e 'tell application "Terminal" to activate'"#
    );
    let win = launch_plan(Ide::VsCode, Os::Windows, &name(), "/workspace", &installed(&[("code", WIN_CODE)]))
        .unwrap();
    assert_eq!(
        win.command_line(Os::Windows),
        r#"cmd.exe /d /s /c "C:\Users\me\AppData\Local\Programs\Microsoft^ VS^ Code\bin\code.cmd ^^^"--remote^^^" ^^^"ssh-remote+my-box^^^" ^^^"/workspace^^^"""#
    );
    let zed = installed(&[("zed", r"C:\Program Files\Zed\bin\zed.exe")]);
    let win_zed = launch_plan(Ide::Zed, Os::Windows, &name(), "/workspace", &zed).unwrap();
    assert_eq!(
        win_zed.command_line(Os::Windows),
        r#""C:\Program Files\Zed\bin\zed.exe" ssh://sandbox@my-box/workspace"#
    );
    assert_eq!(url(GATEWAY).command_line(Os::Linux), GATEWAY);
}

#[test]
fn folders_with_spaces_unicode_hash_and_percent() {
    let folder = "/home/sandbox/my proj/naïve #1/100%";
    let none = installed(&[]);
    let plan = |ide, os, found: &dyn Fn(&str) -> Option<PathBuf>| {
        launch_plan(ide, os, &name(), folder, found).unwrap()
    };
    assert_eq!(
        plan(Ide::VsCode, Os::Linux, &none),
        url("vscode://vscode-remote/ssh-remote+my-box/home/sandbox/my%20proj/na%C3%AFve%20%231/100%25")
    );
    assert_eq!(
        plan(Ide::Cursor, Os::Windows, &none),
        url("cursor://vscode-remote/ssh-remote+my-box/home/sandbox/my%20proj/na%C3%AFve%20%231/100%25")
    );
    assert_eq!(
        plan(Ide::Gateway, Os::MacOs, &none),
        url("jetbrains-gateway://connect#type=ssh&deploy=false&host=my-box&port=22&user=sandbox&projectPath=%2Fhome%2Fsandbox%2Fmy%20proj%2Fna%C3%AFve%20%231%2F100%25")
    );
    let zed = installed(&[("zed", "/usr/bin/zed")]);
    assert_eq!(
        plan(Ide::Zed, Os::Linux, &zed),
        cmd("/usr/bin/zed", &["ssh://sandbox@my-box/home/sandbox/my%20proj/na%C3%AFve%20%231/100%25"])
    );
    // An argv carries the folder verbatim: no shell, no quoting.
    let code = installed(&[("code", "/usr/bin/code")]);
    assert_eq!(
        plan(Ide::VsCode, Os::Linux, &code),
        cmd("/usr/bin/code", &["--remote", "ssh-remote+my-box", folder])
    );
}

#[test]
fn windows_cmd_shim_escapes_everything_cmd_would_interpret() {
    let folder = r#"/srv/a b&c/%PATH%/x"y!(z)^"#;
    let code = installed(&[("code", r"C:\Program Files (x86)\VS Code\bin\code.cmd")]);
    let plan = launch_plan(Ide::VsCode, Os::Windows, &name(), folder, &code).unwrap();
    let LaunchPlan::Command { program, args } = plan else { panic!("{plan:?}") };
    assert_eq!(program, PathBuf::from("cmd.exe"));
    assert_eq!(args[..3], ["/d", "/s", "/c"]);
    assert_eq!(
        args[3],
        r#""C:\Program^ Files^ ^(x86^)\VS^ Code\bin\code.cmd ^^^"--remote^^^" ^^^"ssh-remote+my-box^^^" ^^^"/srv/a^^^ b^^^&c/^^^%PATH^^^%/x\^^^"y^^^!^^^(z^^^)^^^^^^^"""#
    );
    // Model of what happens next: cmd strips the outer quotes (/s) and removes one level of
    // carets; code.cmd's `%*` line removes the second; Code.exe splits by the MSVC rules.
    // The program is the line's first word (its spaces are escaped); the shim gets the rest.
    let line = &args[3][1..args[3].len() - 1];
    let split = line.match_indices(' ').find(|(i, _)| !line[..*i].ends_with('^')).unwrap().0;
    assert_eq!(caret_unescape(&line[..split]), r"C:\Program Files (x86)\VS Code\bin\code.cmd");
    let words = msvc_split(&caret_unescape(&caret_unescape(&line[split..])));
    assert_eq!(words, ["--remote", "ssh-remote+my-box", folder]);
}

/// One pass of cmd.exe's phase-2 caret handling, for lines whose every `"` is escaped (so the
/// quote state never turns on): `^x` → `x`.
fn caret_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '^' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// The MSVC runtime's command-line splitter.
fn msvc_split(s: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word, mut quoted) = (vec![], String::new(), false, false);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let n = chars[i..].iter().take_while(|&&c| c == '\\').count();
            i += n;
            if chars.get(i) == Some(&'"') {
                word.push_str(&"\\".repeat(n / 2));
                if n % 2 == 1 {
                    word.push('"');
                    i += 1;
                }
            } else {
                word.push_str(&"\\".repeat(n));
            }
            in_word = true;
            continue;
        }
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    if in_word {
        words.push(word);
    }
    words
}

proptest::proptest! {
    #[test]
    fn cmd_shim_arguments_survive_both_cmd_passes(tail in "[ -~é€]{0,24}") {
        let folder = format!("/{tail}");
        let escaped = quote::cmd_shim_arg(&folder);
        // No `%…%` can form a variable reference at either pass: every % is caret-escaped.
        proptest::prop_assert!(!caret_unescape(&escaped).replace("^%", "").contains('%'));
        proptest::prop_assert_eq!(msvc_split(&caret_unescape(&caret_unescape(&escaped))), vec![folder]);
    }
}

#[test]
fn invalid_folders_are_refused_before_anything_is_found() {
    let asked = RefCell::new(0);
    let found = |_: &str| {
        *asked.borrow_mut() += 1;
        None
    };
    let long = format!("/{}", "a".repeat(4096));
    for bad in [
        "",
        "workspace",
        "~/project",
        "./x",
        r"C:\work",
        "/a\nb",
        "/a\rb",
        "/a\tb",
        "/a\0b",
        "/a\u{7f}",
        "/a\u{85}",
        &long,
    ] {
        for ide in Ide::ALL {
            let err = launch_plan(ide, Os::Linux, &name(), bad, &found).unwrap_err();
            assert!(matches!(err, IdeError::InvalidFolder(..)), "{bad:?}: {err}");
        }
    }
    assert_eq!(*asked.borrow(), 0);
    assert!(validate_folder("/").is_ok());
    assert!(validate_folder("/home/sandbox/проект #1").is_ok());
    assert_eq!(
        validate_folder("~/x").unwrap_err().to_string(),
        "remote folder \"~/x\" must be an absolute path in the sandbox, like /workspace"
    );
}

#[test]
fn parse_and_display() {
    for (text, ide) in [
        ("vscode", Ide::VsCode),
        ("code", Ide::VsCode),
        ("VSCode", Ide::VsCode),
        ("cursor", Ide::Cursor),
        ("gateway", Ide::Gateway),
        ("jetbrains", Ide::Gateway),
        ("zed", Ide::Zed),
        ("terminal", Ide::Terminal),
    ] {
        assert_eq!(text.parse::<Ide>().unwrap(), ide);
    }
    assert!("vim".parse::<Ide>().is_err());
    for ide in Ide::ALL {
        assert_eq!(ide.id().parse::<Ide>().unwrap(), ide);
    }
    let names: Vec<String> = Ide::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["VS Code", "Cursor", "JetBrains Gateway", "Zed", "Terminal"]);
}

#[test]
fn not_installed_messages_are_one_line_and_say_what_to_do() {
    let err = launch_plan(Ide::Zed, Os::MacOs, &name(), "/workspace", &installed(&[])).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("Zed was not found: install Zed"), "{text}");
    assert!(!text.contains('\n'));
    let none =
        launch_plan(Ide::Terminal, Os::Linux, &name(), "/workspace", &installed(&[("ssh", "/usr/bin/ssh")]));
    assert_eq!(
        none.unwrap_err().to_string(),
        "no terminal emulator was found: install gnome-terminal, konsole or xterm, or point x-terminal-emulator at your terminal"
    );
    let no_ssh = launch_plan(Ide::Terminal, Os::Windows, &name(), "/workspace", &installed(&[]));
    assert_eq!(
        no_ssh.unwrap_err().to_string(),
        "the OpenSSH client (ssh) was not found: enable the OpenSSH Client (Settings → System → Optional features)"
    );
    for os in [Os::Linux, Os::MacOs, Os::Windows] {
        for ide in Ide::ALL {
            assert!(!ide.install_hint(os).contains('\n'));
        }
    }
    assert!(Ide::VsCode.install_hint(Os::Linux).contains("Shell Command: Install 'code' command in PATH"));
    assert!(Ide::VsCode.install_hint(Os::Linux).contains("Remote - SSH"));
}

#[test]
fn launch_opens_urls_with_the_callers_opener() {
    let opened = RefCell::new(Vec::new());
    let opener = |u: &str| {
        opened.borrow_mut().push(u.to_owned());
        Ok(())
    };
    launch(Ide::Gateway, &url(GATEWAY), &opener).unwrap();
    assert_eq!(*opened.borrow(), [GATEWAY]);

    let failing = |_: &str| Err(io::Error::other("no application handles vscode:"));
    let err = launch(Ide::VsCode, &url("vscode://x"), &failing).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "cannot open vscode://x for VS Code: no application handles vscode:; install VS Code"
        ),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn launch_starts_the_command_detached() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let plan = cmd("/bin/sh", &["-c", "printf '%s' \"$0\" > \"$1\"", "a b", out.to_str().unwrap()]);
    launch(Ide::Terminal, &plan, &|_| unreachable!()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&out).unwrap_or_default() != "a b" {
        assert!(std::time::Instant::now() < deadline, "the command did not run");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let missing = cmd("/nonexistent/sandbox-forward-zed", &[]);
    let err = launch(Ide::Zed, &missing, &|_| unreachable!()).unwrap_err();
    assert!(err.to_string().starts_with("cannot start /nonexistent/sandbox-forward-zed for Zed: "), "{err}");
}
