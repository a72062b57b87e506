//! Finding an IDE's command-line launcher: `PATH` first, then where each OS's installers put it
//! (a GUI app started from the dock or a tray gets a minimal `PATH` that often lacks these).
//! The caller passes `PATH` and the home directory: the core never reads the environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::Os;

/// Where `name` (`code`, `cursor`, `zed`, `ssh`, `xterm`, `wt`…) is: the first executable file
/// found on `path_var` (split by the OS's separator; empty and relative entries skipped), else in
/// the OS's usual install locations. On Windows a name without an extension is tried as
/// `.com`, `.exe`, `.bat`, `.cmd` (the default `PATHEXT` order).
///
/// Usual locations: Linux `/usr/local/bin`, `/usr/bin`, `/bin`, `/snap/bin`, `~/.local/bin`;
/// macOS `/usr/local/bin`, `/opt/homebrew/bin`, `/usr/bin`, and the CLIs inside the app bundles
/// in `/Applications` and `~/Applications` (`Visual Studio Code.app/Contents/Resources/app/bin/code`,
/// `Cursor.app/Contents/Resources/app/bin/cursor`, `Zed.app/Contents/MacOS/cli`); Windows the
/// per-user installs under `~\AppData\Local` (`Programs\Microsoft VS Code\bin\code.cmd`,
/// `Programs\cursor\resources\app\bin\cursor.cmd`, `Programs\Zed\bin\zed.exe`,
/// `Microsoft\WindowsApps\wt.exe`), the machine-wide VS Code in `C:\Program Files` and
/// `C:\Windows\System32\OpenSSH\ssh.exe`.
pub fn find_executable(name: &str, os: Os, path_var: Option<&OsStr>, home: &Path) -> Option<PathBuf> {
    let names = file_names(name, os);
    let on_path = path_var.into_iter().flat_map(|p| split_path(p, os)).filter(|d| d.is_absolute());
    let dirs = on_path.chain(usual_dirs(os, home));
    dirs.flat_map(|dir| names.iter().map(move |n| dir.join(n)).collect::<Vec<_>>())
        .chain(app_launchers(name, os, home))
        .find(|candidate| is_executable(candidate, os))
}

fn file_names(name: &str, os: Os) -> Vec<String> {
    if os == Os::Windows && Path::new(name).extension().is_none() {
        ["com", "exe", "bat", "cmd"].iter().map(|ext| format!("{name}.{ext}")).collect()
    } else {
        vec![name.to_owned()]
    }
}

fn split_path(path_var: &OsStr, os: Os) -> Vec<PathBuf> {
    let separator = if os == Os::Windows { ';' } else { ':' };
    path_var
        .to_string_lossy()
        .split(separator)
        // Windows allows quoted entries ("C:\Program Files\x";…).
        .map(|entry| entry.trim_matches('"'))
        .filter(|entry| !entry.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn usual_dirs(os: Os, home: &Path) -> Vec<PathBuf> {
    match os {
        Os::Linux => vec![
            "/usr/local/bin".into(),
            "/usr/bin".into(),
            "/bin".into(),
            "/snap/bin".into(),
            home.join(".local").join("bin"),
        ],
        Os::MacOs => vec!["/usr/local/bin".into(), "/opt/homebrew/bin".into(), "/usr/bin".into()],
        Os::Windows => vec![],
    }
}

/// Full paths of `name`'s launcher inside an app install that does not put it on `PATH`.
fn app_launchers(name: &str, os: Os, home: &Path) -> Vec<PathBuf> {
    match os {
        Os::Linux => vec![],
        Os::MacOs => {
            let inside = match name {
                "code" => "Visual Studio Code.app/Contents/Resources/app/bin/code",
                "cursor" => "Cursor.app/Contents/Resources/app/bin/cursor",
                "zed" => "Zed.app/Contents/MacOS/cli",
                _ => return vec![],
            };
            vec![Path::new("/Applications").join(inside), home.join("Applications").join(inside)]
        }
        Os::Windows => {
            let local = home.join("AppData").join("Local");
            let programs = local.join("Programs");
            match name {
                "code" => vec![
                    programs.join(r"Microsoft VS Code\bin\code.cmd"),
                    PathBuf::from(r"C:\Program Files\Microsoft VS Code\bin\code.cmd"),
                ],
                "cursor" => vec![programs.join(r"cursor\resources\app\bin\cursor.cmd")],
                "zed" => vec![programs.join(r"Zed\bin\zed.exe")],
                "wt" => vec![local.join(r"Microsoft\WindowsApps\wt.exe")],
                "ssh" => vec![PathBuf::from(r"C:\Windows\System32\OpenSSH\ssh.exe")],
                _ => vec![],
            }
        }
    }
}

fn is_executable(path: &Path, os: Os) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return false };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    if os != Os::Windows {
        use std::os::unix::fs::PermissionsExt;
        return meta.permissions().mode() & 0o111 != 0;
    }
    let _ = os;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
    }

    // `Os::Linux` splits PATH on `:`, which a Windows temp dir (`C:\…`) holds.
    #[cfg(unix)]
    #[test]
    fn path_first_then_usual_places() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, home) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("home"));
        touch(&b.join("zed"), 0o755);
        touch(&home.join(".local/bin/zed"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_executable("zed", Os::Linux, Some(&path), &home), Some(b.join("zed")));
        // Not on PATH: ~/.local/bin.
        assert_eq!(
            find_executable("zed", Os::Linux, Some(a.as_os_str()), &home),
            Some(home.join(".local/bin/zed"))
        );
        assert_eq!(find_executable("zed", Os::Linux, None, &home), Some(home.join(".local/bin/zed")));
        // Relative and empty entries are never searched.
        assert_eq!(find_executable("nope-sf", Os::Linux, Some(OsStr::new(":.:b")), &home), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_without_execute_permission_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        touch(&a.join("cursor"), 0o644);
        touch(&b.join("cursor"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_executable("cursor", Os::Linux, Some(&path), tmp.path()), Some(b.join("cursor")));
        std::fs::create_dir_all(tmp.path().join("c/xterm")).unwrap(); // a directory
        assert_eq!(
            find_executable("xterm-sf", Os::Linux, Some(tmp.path().join("c").as_os_str()), tmp.path()),
            None
        );
    }

    #[test]
    fn macos_app_bundles_under_the_home_applications_folder() {
        let home = tempfile::tempdir().unwrap();
        let cli = home.path().join("Applications/Zed.app/Contents/MacOS/cli");
        touch(&cli, 0o755);
        assert_eq!(
            find_executable("zed", Os::MacOs, Some(OsStr::new("/nonexistent-sf")), home.path()),
            Some(cli)
        );
        let code = home.path().join("Applications/Visual Studio Code.app/Contents/Resources/app/bin/code");
        touch(&code, 0o755);
        assert_eq!(find_executable("code", Os::MacOs, None, home.path()), Some(code));
    }

    #[test]
    fn windows_extensions_separator_and_per_user_installs() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, home) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("home"));
        touch(&b.join("code.cmd"), 0o644); // no execute bit needed on Windows
        let path = format!("{};\"{}\"", a.display(), b.display());
        assert_eq!(
            find_executable("code", Os::Windows, Some(OsStr::new(&path)), &home),
            Some(b.join("code.cmd"))
        );
        // .exe is preferred over .cmd in the same directory (PATHEXT order).
        touch(&b.join("code.exe"), 0o644);
        assert_eq!(
            find_executable("code", Os::Windows, Some(OsStr::new(&path)), &home),
            Some(b.join("code.exe"))
        );

        let cursor =
            home.join("AppData").join("Local").join("Programs").join(r"cursor\resources\app\bin\cursor.cmd");
        touch(&cursor, 0o644);
        assert_eq!(find_executable("cursor", Os::Windows, Some(OsStr::new(&path)), &home), Some(cursor));
        let wt = home.join("AppData").join("Local").join(r"Microsoft\WindowsApps\wt.exe");
        touch(&wt, 0o644);
        assert_eq!(find_executable("wt", Os::Windows, None, &home), Some(wt));
    }
}
