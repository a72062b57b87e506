//! `sandbox-forward open` (the command line or URL it would run) and shell completion, through
//! the real binary, with a fake `zed` on PATH and profiles written by hand (no server needed).
//!
//! Unix only: the stand-in `zed` is a shell script.
#![cfg(unix)]

use std::path::Path;
use std::time::Duration;

use sandbox_tests::{ok, run, stderr, stdout, Agent, Home};

const T: Duration = Duration::from_secs(30);

fn home_with_profile(name: &str, extra: &str) -> Home {
    let home = Home::new();
    let dir = home.path().join(".config/sandbox/sandboxes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!("server = \"https://sandbox.invalid\"\n{extra}"),
    )
    .unwrap();
    home
}

fn fake_zed(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let zed = dir.join("zed");
    std::fs::write(&zed, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&zed, std::fs::Permissions::from_mode(0o755)).unwrap();
    zed
}

#[test]
fn open_prints_the_exact_command_line_or_url() {
    let home = home_with_profile("box", "");
    let bin = home.path().join("fake-bin");
    let zed = fake_zed(&bin);
    let open = |args: &[&str]| {
        let mut all = vec!["open", "box", "--print"];
        all.extend_from_slice(args);
        let mut cmd = home.cli(&all);
        cmd.env("PATH", &bin);
        run(cmd, T)
    };

    let out = ok(&open(&["--ide", "zed"]));
    assert_eq!(out, format!("{} ssh://sandbox@box/workspace\n", zed.display()));
    let out = ok(&open(&["--ide", "zed", "--folder", "/srv/my app #2"]));
    assert_eq!(out, format!("{} ssh://sandbox@box/srv/my%20app%20%232\n", zed.display()));
    let out = ok(&open(&["--ide", "jetbrains"]));
    assert_eq!(
        out,
        "jetbrains-gateway://connect#type=ssh&deploy=false&host=box&port=22&user=sandbox&projectPath=%2Fworkspace\n"
    );

    let bad = open(&["--ide", "zed", "--folder", "workspace"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("must be an absolute path in the sandbox"), "{}", stderr(&bad));
    let unknown = open(&["--ide", "vim"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("unknown IDE"), "{}", stderr(&unknown));
}

#[test]
fn open_uses_the_folder_saved_in_the_profile() {
    let home = home_with_profile("box", "remote_folder = \"/home/sandbox/app\"\n");
    let zed = fake_zed(&home.path().join("fake-bin"));
    let mut cmd = home.cli(&["open", "box", "--ide", "zed", "--print"]);
    cmd.env("PATH", zed.parent().unwrap());
    assert_eq!(ok(&run(cmd, T)), format!("{} ssh://sandbox@box/home/sandbox/app\n", zed.display()));

    let missing = run(home.cli(&["open", "other", "--print"]), T);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no sandbox named \"other\" is set up here"), "{}", stderr(&missing));
}

/// `--print` says what would run even where the IDE or terminal is not installed here (the
/// line names the program as found on PATH elsewhere), with a note on stderr.
#[test]
fn print_works_without_the_ide_installed() {
    let home = home_with_profile("box", "");
    let empty = home.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let open = |ide: &str| {
        let mut cmd = home.cli(&["open", "box", "--ide", ide, "--print"]);
        cmd.env("PATH", &empty);
        run(cmd, T)
    };
    let o = open("zed");
    assert_eq!(ok(&o), "zed ssh://sandbox@box/workspace\n");
    assert!(stderr(&o).contains("Zed was not found"), "{}", stderr(&o));
    let o = open("terminal");
    let line = ok(&o);
    assert!(line.ends_with(" ssh box\n") && line.lines().count() == 1, "{line}");
}

/// Without --ide, `open` uses the editor chosen in the app's preferences.
#[test]
fn open_uses_the_apps_default_editor() {
    let home = home_with_profile("box", "");
    let zed = fake_zed(&home.path().join("fake-bin"));
    std::fs::write(
        home.path().join(".config/sandbox/app.toml"),
        "[preferences]\ndefaultIde = \"zed\"\nstartAtLogin = false\nnotifications = true\n",
    )
    .unwrap();
    let mut cmd = home.cli(&["open", "box", "--print"]);
    cmd.env("PATH", zed.parent().unwrap());
    assert_eq!(ok(&run(cmd, T)), format!("{} ssh://sandbox@box/workspace\n", zed.display()));
    // --ide still decides.
    let mut cmd = home.cli(&["open", "box", "--print", "--ide", "gateway"]);
    cmd.env("PATH", zed.parent().unwrap());
    assert!(ok(&run(cmd, T)).starts_with("jetbrains-gateway://"));
}

/// Shell completion offers the sandboxes set up here wherever a command takes a sandbox name
/// (clap's dynamic completion: the shell asks the binary).
#[test]
fn completions_offer_sandbox_names() {
    let home = home_with_profile("alpha", "");
    std::fs::write(
        home.path().join(".config/sandbox/sandboxes/beta.toml"),
        "server = \"https://b.invalid\"\n",
    )
    .unwrap();
    let complete = |words: &[&str]| {
        let mut cmd = home.cli(&["--", "sandbox-forward"]);
        cmd.args(words).env("SANDBOX_FORWARD_COMPLETE", "fish");
        ok(&run(cmd, T))
    };
    for words in
        [&["open", ""][..], &["status", ""], &["forget", "a"], &["proxy", "--sandbox", ""], &["ports", ""]]
    {
        let out = complete(words);
        let names: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
        assert!(names.contains(&"alpha"), "{words:?}: {out}");
        if words.last() == Some(&"") {
            assert!(names.contains(&"beta"), "{words:?}: {out}");
        }
    }
    // `completions SHELL` prints the script that hooks the shell up to that.
    let script = ok(&run(home.cli(&["completions", "bash"]), T));
    assert!(script.contains("SANDBOX_FORWARD_COMPLETE=\"bash\""), "{script}");
    // Another tool's COMPLETE in the environment (which ssh passes to the ProxyCommand) is not
    // taken for a completion request.
    let mut cmd = home.cli(&["version"]);
    cmd.env("COMPLETE", "yes");
    assert!(ok(&run(cmd, T)).starts_with("sandbox-forward "));
}

/// A stand-in for the system's link opener (`xdg-open`, and `open` on macOS) that records the
/// link and exits with `code` (xdg-open exits 3 when nothing handles the scheme).
fn fake_opener(dir: &Path, code: i32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let record = dir.join("opened");
    for name in ["xdg-open", "open"] {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\nexit {code}\n", record.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    record
}

/// `open` through a link (VS Code, Cursor without their command; Gateway always) fails when the
/// opener says nothing took it, naming what to install, instead of "Opening…" and exit 0.
#[test]
fn open_fails_when_nothing_handles_the_link() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let home = Home::new();
    let dir = home.path().join(".config/sandbox/sandboxes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("box.toml"), format!("server = \"{}\"\n", agent.url())).unwrap();
    let bin = home.path().join("fake-bin");
    let record = fake_opener(&bin, 3);
    for (ide, scheme, what) in [
        ("vscode", "vscode://", "Remote - SSH extension"),
        ("cursor", "cursor://", "install Cursor"),
        ("gateway", "jetbrains-gateway://", "install JetBrains Gateway"),
    ] {
        let mut cmd = home.cli(&["open", "box", "--ide", ide]);
        cmd.env("PATH", &bin);
        let o = run(cmd, T);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(!o.status.success(), "{ide}: exit 0 although nothing opened: {out}{err}");
        assert!(!out.contains("Opening"), "{ide}: {out}");
        assert!(err.contains("exited with status 3") && err.contains(what), "{ide}: {err}");
        assert_eq!(err.lines().count(), 1, "{ide}: {err}");
        let opened = std::fs::read_to_string(&record).unwrap();
        assert!(opened.lines().last().unwrap().starts_with(scheme), "{ide}: {opened}");
    }
    // An opener that takes the link: success, as before.
    fake_opener(&bin, 0);
    let mut cmd = home.cli(&["open", "box", "--ide", "vscode"]);
    cmd.env("PATH", &bin);
    assert!(ok(&run(cmd, T)).contains("Opening /workspace in box with VS Code"));
}
