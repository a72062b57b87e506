//! Tests of the editor as a whole: real files in a temp dir, and `ssh -G` where installed.

use super::*;
use proptest::prelude::*;
#[cfg(unix)]
use std::process::Command;

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    fn new() -> Self {
        Self::with_subdir("home")
    }

    fn with_subdir(sub: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join(sub);
        fs::create_dir_all(&home).unwrap();
        Home { _dir: dir, home }
    }

    fn ssh_config(&self) -> PathBuf {
        self.home.join(".ssh/config")
    }

    fn ours(&self) -> PathBuf {
        self.home.join(".config/sandbox/ssh_config")
    }

    fn editor(&self) -> SshConfigEditor {
        SshConfigEditor::new(self.ssh_config(), self.ours())
    }

    fn write_user(&self, bytes: &[u8]) {
        fs::create_dir_all(self.home.join(".ssh")).unwrap();
        fs::write(self.ssh_config(), bytes).unwrap();
    }

    fn host(&self, name: &str) -> HostBlock {
        host_in(&self.home, name)
    }
}

fn host_in(home: &Path, name: &str) -> HostBlock {
    HostBlock {
        name: SandboxName::new(name).unwrap(),
        proxy_command: proxy_command(
            &home.join("bin/sandbox-forward"),
            &["proxy", "--ssh", "--server", "https://sandbox.example.com"],
            Platform::current(),
        )
        .unwrap(),
        identity_file: home.join(".config/sandbox/keys").join(name),
        host_key: HostKeyPolicy::Pinned { known_hosts: home.join(".config/sandbox/known_hosts") },
        server_alive_interval: 30,
    }
}

fn managed_block(editor: &SshConfigEditor, eol: &str) -> Vec<u8> {
    markers::render_block(&editor.include_line().unwrap(), eol)
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&fs::metadata(path).unwrap().permissions()) & 0o777
}

#[test]
fn first_upsert_creates_both_files_privately() {
    let h = Home::new();
    let ed = h.editor();
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Missing));
    assert_eq!(ed.upsert(&h.host("a")).unwrap(), IncludeStatus::Added);
    assert_eq!(fs::read(h.ssh_config()).unwrap(), managed_block(&ed, "\n"));
    let ours = fs::read_to_string(h.ours()).unwrap();
    let block = render::render_host(&h.host("a"), Platform::current()).unwrap();
    assert_eq!(ours, format!("{}\n{block}", hosts_file::HEADER));
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Present));
    #[cfg(unix)]
    {
        assert_eq!(mode(&h.home.join(".ssh")), 0o700);
        assert_eq!(mode(&h.ssh_config()), 0o600);
        assert_eq!(mode(&h.ours()), 0o600);
    }
}

#[test]
fn upsert_is_idempotent() {
    let h = Home::new();
    h.write_user(b"# mine\r\nHost *\r\n    ForwardAgent no\r\n");
    let ed = h.editor();
    ed.upsert(&h.host("a")).unwrap();
    let (user, ours) = (fs::read(h.ssh_config()).unwrap(), fs::read(h.ours()).unwrap());
    #[cfg(unix)]
    let inodes = (inode(&h.ssh_config()), inode(&h.ours()));
    assert_eq!(ed.upsert(&h.host("a")).unwrap(), IncludeStatus::AlreadyPresent);
    assert_eq!(fs::read(h.ssh_config()).unwrap(), user);
    assert_eq!(fs::read(h.ours()).unwrap(), ours);
    // Not even rewritten with the same bytes: the atomic rename would change the inode.
    #[cfg(unix)]
    assert_eq!((inode(&h.ssh_config()), inode(&h.ours())), inodes);
}

#[test]
fn crlf_files_get_crlf_lines() {
    let h = Home::new();
    let original = b"# mine\r\nHost *\r\n    ForwardAgent no".to_vec();
    h.write_user(&original);
    let ed = h.editor();
    ed.upsert(&h.host("a")).unwrap();
    let mut want = managed_block(&ed, "\r\n");
    want.extend_from_slice(&original);
    assert_eq!(fs::read(h.ssh_config()).unwrap(), want);
}

#[test]
fn second_host_keeps_the_first_and_reupsert_replaces_in_place() {
    let h = Home::new();
    let ed = h.editor();
    ed.upsert(&h.host("a")).unwrap();
    ed.upsert(&h.host("b")).unwrap();
    let mut a2 = h.host("a");
    a2.host_key = HostKeyPolicy::Unpinned;
    a2.proxy_command = proxy_command(Path::new("/usr/bin/sf"), &["proxy", "--ssh"], Platform::Posix).unwrap();
    ed.upsert(&a2).unwrap();
    let hosts = ed.hosts().unwrap();
    let names: Vec<_> = hosts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(hosts[0].proxy_command, "/usr/bin/sf proxy --ssh");
    assert_eq!(hosts[1].proxy_command, h.host("b").proxy_command);
    let ours = fs::read_to_string(h.ours()).unwrap();
    assert_eq!(ours.lines().filter(|l| l.starts_with("Host ")).count(), 2);
    assert!(ours.contains("StrictHostKeyChecking no") && ours.contains("StrictHostKeyChecking yes"));
}

#[test]
fn removing_the_last_host_restores_the_users_bytes() {
    let h = Home::new();
    let original = b"\xEF\xBB\xBF# header\nInclude ~/.ssh/other\nMatch host x exec \"true\"\n  User y\nHost *\r\n  User z\n\xff\xfe".to_vec();
    h.write_user(&original);
    let ed = h.editor();
    ed.upsert(&h.host("a")).unwrap();
    ed.upsert(&h.host("b")).unwrap();
    assert!(ed.remove(&SandboxName::new("a").unwrap()).unwrap());
    assert!(!ed.remove(&SandboxName::new("a").unwrap()).unwrap());
    assert!(h.ours().exists());
    assert!(ed.remove(&SandboxName::new("b").unwrap()).unwrap());
    assert!(!h.ours().exists());
    assert_eq!(fs::read(h.ssh_config()).unwrap(), original);
    assert!(ed.hosts().unwrap().is_empty());
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Missing));
}

#[test]
fn a_config_we_created_ends_empty() {
    let h = Home::new();
    let ed = h.editor();
    ed.upsert(&h.host("a")).unwrap();
    assert!(ed.remove(&SandboxName::new("a").unwrap()).unwrap());
    assert_eq!(fs::read(h.ssh_config()).unwrap(), b"");
    assert!(!h.ours().exists());
}

#[cfg(unix)]
#[test]
fn a_symlinked_config_keeps_its_link() {
    use std::os::unix::fs::symlink;
    let h = Home::new();
    fs::create_dir_all(h.home.join("dotfiles/ssh")).unwrap();
    fs::create_dir_all(h.home.join(".ssh")).unwrap();
    let real = h.home.join("dotfiles/ssh/config");
    fs::write(&real, "Host old\n    User me\n").unwrap();
    // A chain: ~/.ssh/config -> ~/dotfiles/current (absolute) -> ssh/config (relative).
    symlink("ssh/config", h.home.join("dotfiles/current")).unwrap();
    symlink(h.home.join("dotfiles/current"), h.ssh_config()).unwrap();
    let ed = h.editor();
    assert_eq!(ed.upsert(&h.host("a")).unwrap(), IncludeStatus::Added);
    assert!(fs::symlink_metadata(h.ssh_config()).unwrap().file_type().is_symlink());
    assert!(fs::symlink_metadata(h.home.join("dotfiles/current")).unwrap().file_type().is_symlink());
    let mut want = managed_block(&ed, "\n");
    want.extend_from_slice(b"Host old\n    User me\n");
    assert_eq!(fs::read(&real).unwrap(), want);
    ed.remove(&SandboxName::new("a").unwrap()).unwrap();
    assert!(fs::symlink_metadata(h.ssh_config()).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"Host old\n    User me\n");
    // The temp file went to the target's directory, and nothing was left there.
    assert_eq!(fs::read_dir(h.home.join("dotfiles/ssh")).unwrap().count(), 1);
}

#[test]
fn broken_markers_are_refused_before_anything_is_written() {
    let b = markers::BEGIN_MARKER;
    let e = markers::END_MARKER;
    let cases = [
        (format!("Host x\n{b}\nInclude y\n{e}\n{b}\n{e}\n"), "lines [2, 5]"),
        (format!("{e}\nHost x\n{b}\n"), "END marker at line 1 comes before BEGIN marker at line 3"),
        (format!("Host x\n\n{b}\n"), "BEGIN marker at line 3 has no END marker"),
        (format!("Host x\n{e}\n"), "END marker at line 2 has no BEGIN marker"),
    ];
    for (text, want) in cases {
        let h = Home::new();
        h.write_user(text.as_bytes());
        let ed = h.editor();
        let err = ed.upsert(&h.host("a")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(
            msg.contains(".ssh/config") && msg.contains("remove the stray") && !msg.contains('\n'),
            "{msg}"
        );
        assert!(!h.ours().exists());
        assert_eq!(fs::read(h.ssh_config()).unwrap(), text.as_bytes());
        assert!(matches!(ed.include_state().unwrap(), IncludeState::Broken(SshConfigError::Markers { .. })));
        assert!(ed.ensure_include().is_err());
    }
}

#[test]
fn a_hand_edited_block_is_repaired_in_place() {
    let h = Home::new();
    let b = markers::BEGIN_MARKER;
    let e = markers::END_MARKER;
    h.write_user(format!("Host x\n    User y\n{b}\nInclude /old/path\n{e}\n# tail\n").as_bytes());
    let ed = h.editor();
    assert_eq!(ed.ensure_include().unwrap(), IncludeStatus::Added);
    let mut want = b"Host x\n    User y\n".to_vec();
    want.extend_from_slice(&managed_block(&ed, "\n"));
    want.extend_from_slice(b"# tail\n");
    assert_eq!(fs::read(h.ssh_config()).unwrap(), want);
}

#[test]
fn a_hand_added_include_counts_as_present() {
    let h = Home::new();
    let line = format!("Include {}\nHost *\n    User me\n", h.ours().display());
    h.write_user(line.as_bytes());
    let ed = h.editor();
    assert_eq!(ed.upsert(&h.host("a")).unwrap(), IncludeStatus::AlreadyPresent);
    assert_eq!(fs::read(h.ssh_config()).unwrap(), line.as_bytes());
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Present));
}

#[cfg(unix)]
#[test]
fn a_read_only_config_gets_a_manual_line_and_our_file_is_written() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    h.write_user(b"Host *\n    User me\n");
    fs::set_permissions(h.ssh_config(), fs::Permissions::from_mode(0o444)).unwrap();
    let ed = h.editor();
    let want_line = format!("Include \"{}\"", h.ours().display());
    match ed.include_state().unwrap() {
        IncludeState::Unwritable { line, reason } => {
            assert_eq!(line, want_line);
            assert!(reason.contains("read-only"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match ed.upsert(&h.host("a")).unwrap() {
        IncludeStatus::ManualLineNeeded { line, reason } => {
            assert_eq!(line, want_line);
            assert!(reason.contains(".ssh/config") && reason.contains("read-only"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(h.ssh_config()).unwrap(), b"Host *\n    User me\n");
    assert_eq!(mode(&h.ssh_config()), 0o444);
    assert!(fs::read_to_string(h.ours()).unwrap().contains("Host a\n"));
    // Removing the last host cannot touch it either, and does not fail.
    assert!(ed.remove(&SandboxName::new("a").unwrap()).unwrap());
    assert!(!h.ours().exists());
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_gets_a_manual_line_and_our_file_is_written() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    fs::create_dir_all(h.home.join(".ssh")).unwrap();
    fs::set_permissions(h.home.join(".ssh"), fs::Permissions::from_mode(0o555)).unwrap();
    if crate::fsutil::dir_accepts_files(&h.home.join(".ssh")).unwrap() {
        eprintln!("skipped: running as a user (root?) who can write a 0555 directory");
        return;
    }
    let ed = h.editor();
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Unwritable { .. }));
    match ed.upsert(&h.host("a")).unwrap() {
        IncludeStatus::ManualLineNeeded { line, reason } => {
            assert_eq!(line, format!("Include \"{}\"", h.ours().display()));
            assert!(reason.contains("ermission denied"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(h.ours().exists());
    fs::set_permissions(h.home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn generated_configs_are_recognised() {
    assert!(is_generated(Path::new("/nix/store/abc-home-manager-files/.ssh/config")));
    assert!(!is_generated(Path::new("/home/u/nix/store/config")));
    assert!(!is_generated(Path::new("/nix/storex/config")));
}

#[test]
fn unsafe_values_are_refused_before_anything_is_written() {
    let h = Home::new();
    let ed = h.editor();
    let mut bad = h.host("a");
    bad.identity_file = PathBuf::from("/keys/a\nProxyCommand touch /tmp/pwned");
    assert!(matches!(ed.upsert(&bad), Err(SshConfigError::Unsafe { .. })));
    let mut bad = h.host("a");
    bad.proxy_command = "/bin/sf %h\nHost *".to_owned();
    assert!(matches!(ed.upsert(&bad), Err(SshConfigError::Unsafe { .. })));
    let mut bad = h.host("a");
    bad.host_key = HostKeyPolicy::Pinned { known_hosts: PathBuf::from("/k/\"x\" y") };
    assert!(matches!(ed.upsert(&bad), Err(SshConfigError::Unsafe { .. })));
    let ed = SshConfigEditor::new(h.ssh_config(), h.home.join("our*file"));
    // Refused as unsafe, not failed on the lock file named after it (`*` is no Windows file name).
    assert!(matches!(ed.upsert(&h.host("a")), Err(SshConfigError::Unsafe { .. })));
    assert!(matches!(ed.ensure_include(), Err(SshConfigError::Unsafe { .. })));
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Broken(SshConfigError::Unsafe { .. })));
    assert!(!h.ssh_config().exists() && !h.ours().exists());
    // Not even the lock file.
    let left: Vec<_> = fs::read_dir(&h.home).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_hand_added_windows_include_in_backslashes_counts_as_present() {
    let h = Home::new();
    let text = "Include C:\\Users\\me\\.config\\sandbox\\ssh_config\r\nHost *\r\n    User me\r\n";
    h.write_user(text.as_bytes());
    let ours = PathBuf::from(r"C:\Users\me\.config\sandbox\ssh_config");
    let ed = SshConfigEditor::new(h.ssh_config(), ours).with_platform(Platform::Windows);
    assert_eq!(ed.include_line().unwrap(), "Include \"C:/Users/me/.config/sandbox/ssh_config\"");
    assert!(matches!(ed.include_state().unwrap(), IncludeState::Present));
    assert_eq!(fs::read(h.ssh_config()).unwrap(), text.as_bytes());
}

/// A user's config made of lines of every sort, some random bytes, LF or CRLF, with or
/// without a final newline.
fn user_config_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"Host *".to_vec()),
        Just(b"Host other !bad".to_vec()),
        Just(b"    User me".to_vec()),
        Just(b"\tProxyCommand nc %h %p".to_vec()),
        Just(b"Match host x exec \"test -e /x\"".to_vec()),
        Just(b"Include ~/.ssh/conf.d/*".to_vec()),
        Just(b"# a comment".to_vec()),
        Just(b"# BEGIN something else".to_vec()),
        Just(Vec::new()),
        Just(b"   ".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    (proptest::collection::vec(line, 0..12), any::<bool>(), any::<bool>()).prop_map(
        |(lines, crlf, final_eol)| {
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut out = lines.join(eol);
            if final_eol && !out.is_empty() {
                out.extend_from_slice(eol);
            }
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn bytes_outside_the_block_survive_upsert_and_remove(original in user_config_bytes()) {
        let h = Home::new();
        h.write_user(&original);
        let ed = h.editor();
        ed.upsert(&h.host("a")).unwrap();
        ed.upsert(&h.host("b")).unwrap();
        let edited = fs::read(h.ssh_config()).unwrap();
        let span = markers::find_block(&edited).unwrap().unwrap();
        // Outside the markers: the original, byte for byte.
        let mut outside = edited[..span.start].to_vec();
        outside.extend_from_slice(&edited[span.end..]);
        prop_assert_eq!(&outside, &original);
        // The block is at the top (after a byte-order mark, if any).
        let bom = if original.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        prop_assert_eq!(span.start, bom);
        let twice = fs::read(h.ssh_config()).unwrap();
        ed.upsert(&h.host("b")).unwrap();
        prop_assert_eq!(&fs::read(h.ssh_config()).unwrap(), &twice);
        ed.remove(&SandboxName::new("a").unwrap()).unwrap();
        ed.remove(&SandboxName::new("b").unwrap()).unwrap();
        prop_assert_eq!(&fs::read(h.ssh_config()).unwrap(), &original);
        prop_assert!(!h.ours().exists());
    }
}

// What OpenSSH and `sh` make of our POSIX rendering: Unix only (a Windows build renders for
// Windows OpenSSH, and under Wine a Linux ssh cannot be started with pipes).

/// `ssh -F config -G name`, as `key value` pairs; `None` where ssh is not installed.
#[cfg(unix)]
fn ssh_g(config: &Path, name: &str) -> Option<Vec<(String, String)>> {
    let ssh = Path::new("/usr/bin/ssh");
    if !ssh.exists() {
        eprintln!("skipped: no /usr/bin/ssh");
        return None;
    }
    let out = Command::new(ssh).arg("-F").arg(config).arg("-G").arg(name).output().unwrap();
    assert!(out.status.success(), "ssh -G failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(text.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

#[cfg(unix)]
fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

#[cfg(unix)]
fn check_ssh_resolves(h: &Home, user_tail: &[u8]) {
    h.write_user(user_tail);
    let ed = h.editor();
    let mut host = h.host("my-sandbox");
    host.proxy_command = proxy_command(
        &h.home.join("bin dir/sandbox-forward"),
        &["proxy", "--ssh", "--bearer-file", &format!("{}/50% token $(x)", h.home.display())],
        Platform::Posix,
    )
    .unwrap();
    assert!(matches!(ed.upsert(&host).unwrap(), IncludeStatus::Added));
    ed.upsert(&h.host("other")).unwrap();
    let Some(pairs) = ssh_g(&h.ssh_config(), "my-sandbox") else {
        return;
    };
    let home = h.home.display().to_string();
    // ssh -G prints ProxyCommand and IdentityFile before %-expansion, so as we wrote them.
    let escaped = home.replace('%', "%%");
    assert_eq!(get(&pairs, "proxycommand"), [host.proxy_command.as_str()]);
    assert_eq!(get(&pairs, "user"), ["sandbox"]);
    assert_eq!(get(&pairs, "hostkeyalias"), ["my-sandbox"]);
    assert_eq!(get(&pairs, "stricthostkeychecking"), ["true"]);
    assert_eq!(get(&pairs, "identitiesonly"), ["yes"]);
    assert_eq!(get(&pairs, "serveraliveinterval"), ["30"]);
    let key = format!("{escaped}/.config/sandbox/keys/my-sandbox");
    assert_eq!(get(&pairs, "identityfile").first().copied(), Some(key.as_str()));
    // UserKnownHostsFile, though, ssh -G prints expanded: `%%` must have become a plain `%`.
    let known = format!("{home}/.config/sandbox/known_hosts");
    assert_eq!(get(&pairs, "userknownhostsfile"), [known.as_str()]);
    // And what the shell makes of the ProxyCommand once ssh has expanded `%%`.
    let script = format!("printf '%s\\0' {}", host.proxy_command.replace("%%", "%"));
    let out = Command::new("/bin/sh").arg("-c").arg(script).output().unwrap();
    let words: Vec<String> =
        String::from_utf8(out.stdout).unwrap().split_terminator('\0').map(str::to_owned).collect();
    assert_eq!(words[0], format!("{home}/bin dir/sandbox-forward"));
    assert_eq!(words[4], format!("{home}/50% token $(x)"));
    // Other hosts are untouched by our blocks.
    if let Some(pairs) = ssh_g(&h.ssh_config(), "elsewhere") {
        assert!(get(&pairs, "hostkeyalias").is_empty());
        assert_ne!(get(&pairs, "user"), ["sandbox"]);
    }
}

#[cfg(unix)]
#[test]
fn ssh_resolves_our_block_in_a_plain_config() {
    check_ssh_resolves(&Home::new(), b"");
}

#[cfg(unix)]
#[test]
fn ssh_resolves_our_block_ahead_of_host_star_and_match() {
    let tail = b"Host *\n    User someone\n    ProxyCommand none\n    StrictHostKeyChecking ask\n\
                 Match all\n    UserKnownHostsFile /tmp/elsewhere\n    IdentityFile /tmp/other_key\n";
    check_ssh_resolves(&Home::new(), tail);
}

#[cfg(unix)]
#[test]
fn ssh_resolves_our_block_with_spaces_and_percent_in_paths() {
    let h = Home::with_subdir("home dir %h 100%");
    check_ssh_resolves(&h, b"Host *\r\n    User someone\r\n");
    let ours = fs::read_to_string(h.ours()).unwrap();
    assert!(ours.contains("home dir %%h 100%%/.config/sandbox/keys/my-sandbox\""), "{ours}");
    // The Include line takes no %-tokens, so its path is written as is.
    let user = fs::read_to_string(h.ssh_config()).unwrap();
    assert!(user.contains("Include \"") && user.contains("home dir %h 100%/.config"), "{user}");
}

#[cfg(unix)]
#[test]
fn ssh_resolves_an_unpinned_block() {
    let h = Home::new();
    let ed = h.editor();
    let mut host = h.host("loose");
    host.host_key = HostKeyPolicy::Unpinned;
    ed.upsert(&host).unwrap();
    let Some(pairs) = ssh_g(&h.ssh_config(), "loose") else {
        return;
    };
    assert_eq!(get(&pairs, "stricthostkeychecking"), ["false"]);
    assert_eq!(get(&pairs, "userknownhostsfile"), ["/dev/null"]);
    assert_eq!(get(&pairs, "loglevel"), ["ERROR"]);
    assert!(get(&pairs, "hostkeyalias").is_empty());
}

#[test]
fn concurrent_editors_lose_no_host() {
    let h = Home::new();
    let names: Vec<String> = (0..12).map(|i| format!("box{i}")).collect();
    std::thread::scope(|scope| {
        for name in &names {
            let (editor, host) = (h.editor(), h.host(name));
            scope.spawn(move || editor.upsert(&host).unwrap());
        }
    });
    let mut got: Vec<String> = h.editor().hosts().unwrap().into_iter().map(|m| m.name.to_string()).collect();
    got.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(got, want);
    let user = fs::read_to_string(h.ssh_config()).unwrap();
    assert_eq!(user.matches("# BEGIN sandbox-forward").count(), 1, "{user}");
}
