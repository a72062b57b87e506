//! The `~/.ssh/config` editor on whatever the user's file holds: it refuses (and writes nothing)
//! or adds its block, and taking the block out again gives back the user's bytes exactly.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandbox_core::name::SandboxName;
use sandbox_core::ssh_config::{proxy_command, HostBlock, HostKeyPolicy, Platform, SshConfigEditor};

struct Files {
    _dir: tempfile::TempDir,
    user: PathBuf,
    ours: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        // Memory-backed when there is one: the editor syncs every write.
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("a temp dir");
        let user = dir.path().join("ssh").join("config");
        let ours = dir.path().join("sandbox").join("ssh_config");
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        Files { user, ours, _dir: dir }
    })
}

fuzz_target!(|input: &[u8]| {
    let f = files();
    let _ = std::fs::remove_file(&f.ours);
    std::fs::write(&f.user, input).unwrap();
    let editor = SshConfigEditor::new(f.user.clone(), f.ours.clone()).with_platform(Platform::Posix);
    let name = SandboxName::new("fuzzbox").unwrap();
    let bin = std::path::Path::new("/usr/bin/sandbox-forward");
    let host = HostBlock {
        name: name.clone(),
        proxy_command: proxy_command(bin, &["proxy", "--ssh", "fuzzbox"], Platform::Posix).unwrap(),
        identity_file: f.ours.with_file_name("id_fuzzbox"),
        host_key: HostKeyPolicy::Pinned { known_hosts: f.ours.with_file_name("known_hosts") },
        server_alive_interval: 30,
    };
    match editor.upsert(&host) {
        Err(_) => assert_eq!(std::fs::read(&f.user).unwrap(), input, "a refused edit wrote the file"),
        Ok(_) => {
            let once = std::fs::read(&f.user).unwrap();
            editor.upsert(&host).unwrap();
            assert_eq!(std::fs::read(&f.user).unwrap(), once, "a second identical edit wrote again");
            editor.remove(&name).unwrap();
            let has_markers = |b: &[u8]| b.windows(11).any(|w| w == b"sandbox-for");
            if !has_markers(input) {
                assert_eq!(std::fs::read(&f.user).unwrap(), input, "removing the block lost user bytes");
            }
        }
    }
});
