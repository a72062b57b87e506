//! File-system primitives the whole core relies on: writes are atomic (a crash or a concurrent
//! reader never sees half a file), new private files are born private, and a symlinked
//! `~/.ssh/config` (dotfiles repositories) keeps its link.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[cfg(windows)]
pub mod acl;

/// More links than this in a chain is a loop (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// Follows `path` through symlinks (chains too; relative targets read against the link's
/// directory) to the file that really holds the bytes. A missing file, or a dangling link's
/// missing target, resolves to the path that would be created.
pub fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("more than {MAX_LINKS} symbolic links in a chain (a loop?)")))
}

/// Creates `dir` and its missing parents, private to the user: 0700 on Unix, on Windows a DACL
/// admitting only the user (and SYSTEM) that what is created inside inherits. A directory that
/// exists is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    #[cfg(windows)]
    let missing: Vec<&Path> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    builder.create(dir)?;
    #[cfg(windows)]
    for created in missing.iter().rev() {
        acl::make_private(created, true)?;
    }
    Ok(())
}

/// Replaces `path` (not a symlink: resolve first) with `bytes`: a temp file in the same
/// directory, fsynced, renamed over it. An existing file keeps its permission bits; a new one
/// gets `new_mode` (the temp file is 0600 from birth, so a secret is never exposed, not even
/// for a moment). The directory must exist. On Windows a private `new_mode` (no group or other
/// bits) means the private DACL ([`acl`]), set before a byte is written, and an existing file
/// gets it too (a rename carries the new file's DACL, so it could not keep the old one anyway).
/// For a file holding a secret use [`write_private`], which never keeps looser bits.
pub fn write_atomic(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    let existing = match fs::metadata(path) {
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    replace(path, bytes, new_mode, existing)
}

/// Like [`write_atomic`] for a file holding a secret (token, cookie, private key, profile):
/// the result is 0600 (on Windows: the private DACL) on every write, also when an older file
/// had looser bits such as 0644 — keeping them would keep the secret readable by others.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, 0o600, None)
}

/// The write itself: `keep` is the existing file's permissions to carry over, if any.
fn replace(path: &Path, bytes: &[u8], new_mode: u32, keep: Option<fs::Permissions>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file 0600 on Unix, which is what a new file should be.
    let mut tmp = tempfile::Builder::new().prefix(".sandbox-forward-").suffix(".tmp").tempfile_in(dir)?;
    #[cfg(windows)]
    if new_mode & 0o077 == 0 {
        acl::make_private(tmp.path(), false)?;
    }
    tmp.write_all(bytes)?;
    match keep {
        Some(perms) => tmp.as_file().set_permissions(perms)?,
        #[cfg(unix)]
        None if new_mode != 0o600 => {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file().set_permissions(fs::Permissions::from_mode(new_mode))?
        }
        None => {}
    }
    #[cfg(not(unix))]
    let _ = new_mode;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable; not possible (nor needed) on Windows.
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Largest a log file grows before it is moved aside to `NAME.1` (one old log is kept).
const MAX_LOG: u64 = 1 << 20;

/// Opens a log file for appending, private to the user (its directory 0700, the file 0600:
/// a log names servers and ports). One beyond [`MAX_LOG`] is moved to `NAME.1` first.
pub fn open_log(path: &Path) -> io::Result<fs::File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        let _ = fs::rename(path, old);
    }
    let mut options = fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Deletes `path`; a file that is already gone is fine. Returns whether it existed.
pub fn remove_file(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `dir` accepts new files, tried by creating (and dropping) a temp file in it.
pub fn dir_accepts_files(dir: &Path) -> io::Result<bool> {
    match tempfile::Builder::new().prefix(".sandbox-forward-probe-").tempfile_in(dir) {
        Ok(_) => Ok(true),
        Err(e) if is_unwritable(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `e` means "this place is not ours to write" (permissions, read-only mount), which
/// we answer with a line for the user to add by hand rather than an error.
pub fn is_unwritable(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
}

#[cfg(all(test, windows))]
mod windows_tests {
    use super::acl::{read_dacl, Sid};
    use super::*;

    /// Whether this runs under Wine (whose ntdll exports `wine_get_version`).
    fn under_wine() -> bool {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
        // SAFETY: NUL-terminated names; ntdll is loaded in every process.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
        }
    }

    /// The private DACL: protected, the user and SYSTEM with full control, nothing else. False
    /// when it cannot be checked here (said on stderr).
    fn assert_private(path: &Path, inherit: u8) -> bool {
        let dacl = read_dacl(path).unwrap();
        let entries = dacl.entries.expect("a DACL, not none (which admits everyone)");
        let whom: Vec<_> = entries.iter().map(|e| (e.kind, e.flags, e.mask, e.sid.clone())).collect();
        if !dacl.protected && under_wine() {
            eprintln!(
                "skipped: the DACL check of {path:?}: Wine 8's SetNamedSecurityInfoW succeeds but keeps no DACL \
                 on a file or directory (it reads back the one made from the Unix mode: {whom:?}); Windows checks it"
            );
            return false;
        }
        let want = [Sid::current_user().unwrap(), Sid::system().unwrap()]
            .map(|sid| (0u8, inherit, 0x1f_01ffu32, sid));
        assert!(dacl.protected, "{path:?}: the DACL inherits from its parent: {whom:?}");
        assert_eq!(whom, want, "{path:?}: not only the user and SYSTEM");
        true
    }

    #[test]
    fn private_files_and_dirs_admit_only_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("config").join("keys");
        create_private_dir(&keys).unwrap();
        let key = keys.join("box");
        write_atomic(&key, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        // OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE: what is created inside is private too.
        if !assert_private(&keys, 3) {
            return;
        }
        assert_private(&dir.path().join("config"), 3);
        assert_private(&key, 0);
        // Replacing keeps it private; a public file is left to inherit.
        write_atomic(&key, b"secret 2", 0o600).unwrap();
        assert_private(&key, 0);
        let public = dir.path().join("box.pub");
        write_atomic(&public, b"ssh-ed25519 AAAA", 0o644).unwrap();
        assert!(!read_dacl(&public).unwrap().protected);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn resolves_chains_and_relative_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("dotfiles")).unwrap();
        fs::write(d.join("dotfiles/ssh_config"), "x").unwrap();
        symlink("dotfiles/ssh_config", d.join("middle")).unwrap();
        symlink(d.join("middle"), d.join("config")).unwrap();
        let resolved = resolve_symlinks(&d.join("config")).unwrap();
        assert_eq!(
            fs::canonicalize(resolved).unwrap(),
            fs::canonicalize(d.join("dotfiles/ssh_config")).unwrap()
        );
        // Dangling link: its target is what will be created.
        symlink("nowhere", d.join("dangling")).unwrap();
        assert_eq!(resolve_symlinks(&d.join("dangling")).unwrap(), d.join("nowhere"));
        // Loop.
        symlink("loop_b", d.join("loop_a")).unwrap();
        symlink("loop_a", d.join("loop_b")).unwrap();
        assert!(resolve_symlinks(&d.join("loop_a")).is_err());
    }

    #[test]
    fn new_files_are_private_and_existing_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        write_atomic(&new, b"a", 0o600).unwrap();
        assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
        let old = dir.path().join("old");
        fs::write(&old, "x").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&old, b"b", 0o600).unwrap();
        assert_eq!(fs::read(&old).unwrap(), b"b");
        assert_eq!(fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o640);
        // No temp file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn private_files_are_0600_after_every_write_even_over_a_0644_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token.json");
        fs::write(&token, "old").unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&token, b"secret").unwrap();
        assert_eq!(fs::read(&token).unwrap(), b"secret");
        assert_eq!(fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
        write_private(&dir.path().join("new"), b"s").unwrap();
        assert_eq!(fs::metadata(dir.path().join("new")).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("home/.ssh");
        create_private_dir(&ssh).unwrap();
        assert_eq!(fs::metadata(&ssh).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
