//! The `sftp` subsystem: a russh-sftp server handler backed by the real
//! filesystem. Relative paths resolve against the workspace, so
//! `realpath(".")` is the workspace. OpenSSH's `scp` (SFTP mode) works too.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, FileTimes, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use russh::server::Msg;
use russh::Channel;
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode,
    Version,
};
use russh_sftp::server::StatusReply;
use tokio::sync::OwnedSemaphorePermit;

use super::inbox::{Inbox, InboxReader, Window};

/// Largest read or write we serve; advertised through `limits@openssh.com`
/// so OpenSSH clients move ~255 KiB per request instead of 32 KiB. It leaves
/// room for packet headers under russh-sftp's 256 KiB packet limit.
const MAX_IO_LEN: u32 = 256 * 1024 - 1024;
/// Largest SFTP packet the server accepts (russh-sftp's default).
const MAX_PACKET_LEN: u64 = 256 * 1024;
/// Open file and directory handles per SFTP session.
const MAX_HANDLES: usize = 1024;
/// Directory entries returned per `readdir` reply.
const READDIR_BATCH: usize = 128;

/// Runs the SFTP server on `channel` in its own task, reopening its `window` as requests are
/// read; `slot` (the channel's place in the connection's channel cap) is held until it ends.
pub(crate) async fn serve(
    channel: Channel<Msg>,
    window: Window,
    slot: OwnedSemaphorePermit,
    workspace: PathBuf,
) {
    let (read, write) = channel.split();
    let writer = write.make_writer();
    // Not `Channel::into_stream`: the SFTP loop stops reading while it writes
    // a reply, which can deadlock the connection (see `inbox`).
    let reader = InboxReader::new(Inbox::spawn(read), window, write, slot);
    let stream = tokio::io::join(reader, writer);
    russh_sftp::server::run(stream, SftpHandler::new(workspace)).await;
}

/// What an SFTP handle refers to.
enum OpenHandle {
    File(Arc<fs::File>),
    Dir {
        path: PathBuf,
        /// Taken out while a batch is read on the blocking pool.
        iter: Option<fs::ReadDir>,
        /// `.` and `..` are not produced by `read_dir` but clients expect them.
        dots_sent: bool,
    },
}

/// Per-session SFTP state.
struct SftpHandler {
    workspace: PathBuf,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

type SftpResult<T> = Result<T, StatusReply>;

impl SftpHandler {
    fn new(workspace: PathBuf) -> Self {
        Self { workspace, handles: HashMap::new(), next_handle: 0 }
    }

    /// Resolves a client path: relative paths (and the empty path) are
    /// relative to the workspace.
    fn resolve(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.workspace.clone()
        } else {
            self.workspace.join(path)
        }
    }

    fn insert(&mut self, handle: OpenHandle) -> SftpResult<String> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message("too many open handles"));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    fn file(&self, handle: &str) -> SftpResult<Arc<fs::File>> {
        match self.handles.get(handle) {
            Some(OpenHandle::File(file)) => Ok(Arc::clone(file)),
            _ => Err(invalid_handle()),
        }
    }

    async fn posix_rename(&self, id: u32, data: &[u8]) -> SftpResult<Packet> {
        let mut r = WireReader(data);
        let (old, new) = (r.string()?, r.string()?);
        let (old, new) = (self.resolve(&old), self.resolve(&new));
        blocking(move || fs::rename(old, new)).await?;
        Ok(ok_status(id).into())
    }

    async fn hardlink(&self, id: u32, data: &[u8]) -> SftpResult<Packet> {
        let mut r = WireReader(data);
        let (old, new) = (r.string()?, r.string()?);
        let (old, new) = (self.resolve(&old), self.resolve(&new));
        blocking(move || fs::hard_link(old, new)).await?;
        Ok(ok_status(id).into())
    }

    async fn fsync(&self, id: u32, data: &[u8]) -> SftpResult<Packet> {
        let handle = WireReader(data).string()?;
        let file = self.file(&handle)?;
        blocking(move || file.sync_all()).await?;
        Ok(ok_status(id).into())
    }

    fn expand_path(&self, id: u32, data: &[u8]) -> SftpResult<Packet> {
        let path = WireReader(data).string()?;
        // HOME is the workspace, so `~` and `~/x` expand there.
        let expanded = match path.strip_prefix('~') {
            Some("") => self.workspace.clone(),
            Some(rest) if rest.starts_with('/') => self.workspace.join(&rest[1..]),
            _ => self.resolve(&path),
        };
        Ok(Name { id, files: vec![File::dummy(normalize(&expanded).to_string_lossy())] }.into())
    }
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(&mut self, _version: u32, _extensions: HashMap<String, String>) -> SftpResult<Version> {
        let mut version = Version::new();
        for ext in [
            "posix-rename@openssh.com",
            "hardlink@openssh.com",
            "fsync@openssh.com",
            "limits@openssh.com",
            "expand-path@openssh.com",
        ] {
            version.extensions.insert(ext.to_owned(), "1".to_owned());
        }
        Ok(version)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> SftpResult<Handle> {
        let path = self.resolve(&filename);
        let mut options = OpenOptions::from(pflags);
        // Same default as sshd's sftp-server; the umask still applies.
        options.mode(attrs.permissions.map_or(0o666, |p| p & 0o7777));
        let file = blocking(move || options.open(path)).await?;
        let handle = self.insert(OpenHandle::File(Arc::new(file)))?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> SftpResult<Status> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(ok_status(id)),
            None => Err(invalid_handle()),
        }
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> SftpResult<Data> {
        let file = self.file(&handle)?;
        let len = len.min(MAX_IO_LEN) as usize;
        let data = blocking(move || {
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            // Fill the request where possible: short replies make clients
            // issue extra round trips.
            while filled < len {
                match file.read_at(&mut buf[filled..], offset.saturating_add(filled as u64)) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        })
        .await?;
        if data.is_empty() && len > 0 {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data })
    }

    async fn write(&mut self, id: u32, handle: String, offset: u64, data: Vec<u8>) -> SftpResult<Status> {
        let file = self.file(&handle)?;
        blocking(move || file.write_all_at(&data, offset)).await?;
        Ok(ok_status(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> SftpResult<Attrs> {
        let path = self.resolve(&path);
        let md = blocking(move || fs::symlink_metadata(path)).await?;
        Ok(Attrs { id, attrs: attributes(&md) })
    }

    async fn stat(&mut self, id: u32, path: String) -> SftpResult<Attrs> {
        let path = self.resolve(&path);
        let md = blocking(move || fs::metadata(path)).await?;
        Ok(Attrs { id, attrs: attributes(&md) })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> SftpResult<Attrs> {
        let md = match self.handles.get(&handle) {
            Some(OpenHandle::File(file)) => {
                let file = Arc::clone(file);
                blocking(move || file.metadata()).await?
            }
            Some(OpenHandle::Dir { path, .. }) => {
                let path = path.clone();
                blocking(move || fs::metadata(path)).await?
            }
            None => return Err(invalid_handle()),
        };
        Ok(Attrs { id, attrs: attributes(&md) })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> SftpResult<Status> {
        let path = self.resolve(&path);
        blocking(move || set_attributes(Target::Path(&path), &attrs)).await?;
        Ok(ok_status(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> SftpResult<Status> {
        let file = self.file(&handle)?;
        tracing::debug!(?attrs, "fsetstat");
        blocking(move || set_attributes(Target::File(&file), &attrs)).await?;
        Ok(ok_status(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> SftpResult<Handle> {
        let path = self.resolve(&path);
        let open_path = path.clone();
        let iter = blocking(move || fs::read_dir(open_path)).await?;
        let handle = self.insert(OpenHandle::Dir { path, iter: Some(iter), dots_sent: false })?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> SftpResult<Name> {
        let Some(OpenHandle::Dir { path, iter, dots_sent }) = self.handles.get_mut(&handle) else {
            return Err(invalid_handle());
        };
        let Some(mut entries) = iter.take() else {
            return Err(StatusCode::Eof.into());
        };
        let send_dots = !std::mem::replace(dots_sent, true);
        let dir = path.clone();
        let (entries, files) = blocking(move || {
            let mut files = Vec::new();
            if send_dots {
                for (name, target) in [(".", dir.clone()), ("..", dir.join(".."))] {
                    if let Ok(md) = fs::metadata(&target) {
                        files.push(File::new(name, attributes(&md)));
                    }
                }
            }
            while files.len() < READDIR_BATCH {
                let Some(entry) = entries.next() else { break };
                let entry = entry?;
                // lstat: a dangling symlink is still listed.
                let Ok(md) = fs::symlink_metadata(entry.path()) else {
                    continue; // vanished between readdir and lstat
                };
                files.push(File::new(entry.file_name().to_string_lossy(), attributes(&md)));
            }
            Ok((entries, files))
        })
        .await?;
        if files.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        if let Some(OpenHandle::Dir { iter, .. }) = self.handles.get_mut(&handle) {
            *iter = Some(entries);
        }
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> SftpResult<Status> {
        let path = self.resolve(&filename);
        blocking(move || fs::remove_file(path)).await?;
        Ok(ok_status(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, attrs: FileAttributes) -> SftpResult<Status> {
        let path = self.resolve(&path);
        let mode = attrs.permissions.map_or(0o777, |p| p & 0o7777);
        blocking(move || DirBuilder::new().mode(mode).create(path)).await?;
        Ok(ok_status(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> SftpResult<Status> {
        let path = self.resolve(&path);
        blocking(move || fs::remove_dir(path)).await?;
        Ok(ok_status(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> SftpResult<Name> {
        let path = self.resolve(&path);
        // Clients also ask for paths that do not exist yet (upload targets);
        // answer those lexically instead of failing.
        let real = blocking(move || Ok(fs::canonicalize(&path).unwrap_or_else(|_| normalize(&path)))).await?;
        Ok(Name { id, files: vec![File::dummy(real.to_string_lossy())] })
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> SftpResult<Status> {
        let (old, new) = (self.resolve(&oldpath), self.resolve(&newpath));
        blocking(move || {
            // SFTPv3 rename must not replace an existing file; clients wanting
            // that use posix-rename@openssh.com.
            if fs::symlink_metadata(&new).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(old, new)
        })
        .await?;
        Ok(ok_status(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> SftpResult<Name> {
        let path = self.resolve(&path);
        let target = blocking(move || fs::read_link(path)).await?;
        Ok(Name { id, files: vec![File::dummy(target.to_string_lossy())] })
    }

    async fn symlink(&mut self, id: u32, linkpath: String, targetpath: String) -> SftpResult<Status> {
        // OpenSSH (client and server) swaps the draft's argument order: the
        // first field is the link's target, the second the link to create.
        // Follow OpenSSH, since that is what clients send.
        let (target, link) = (linkpath, targetpath);
        let link = self.resolve(&link);
        blocking(move || std::os::unix::fs::symlink(target, link)).await?;
        Ok(ok_status(id))
    }

    async fn extended(&mut self, id: u32, request: String, data: Vec<u8>) -> SftpResult<Packet> {
        match request.as_str() {
            "posix-rename@openssh.com" => self.posix_rename(id, &data).await,
            "hardlink@openssh.com" => self.hardlink(id, &data).await,
            "fsync@openssh.com" => self.fsync(id, &data).await,
            "expand-path@openssh.com" => self.expand_path(id, &data),
            "limits@openssh.com" => {
                let mut data = Vec::with_capacity(32);
                for value in
                    [MAX_PACKET_LEN, u64::from(MAX_IO_LEN), u64::from(MAX_IO_LEN), MAX_HANDLES as u64]
                {
                    data.extend_from_slice(&value.to_be_bytes());
                }
                Ok(ExtendedReply { id, data }.into())
            }
            _ => Err(StatusCode::OpUnsupported.into()),
        }
    }
}

/// Runs blocking filesystem work off the async worker threads.
async fn blocking<T, F>(f: F) -> SftpResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "sftp operation failed");
            Err(io_status(&e))
        }
        Err(_) => Err(StatusCode::Failure.with_message("internal error")),
    }
}

/// Maps an io error to the closest SFTPv3 status, as sshd's sftp-server does.
fn io_status(e: &io::Error) -> StatusReply {
    use rustix::io::Errno;
    const EPERM: i32 = Errno::PERM.raw_os_error();
    const ENOENT: i32 = Errno::NOENT.raw_os_error();
    const EBADF: i32 = Errno::BADF.raw_os_error();
    const EACCES: i32 = Errno::ACCESS.raw_os_error();
    const EFAULT: i32 = Errno::FAULT.raw_os_error();
    const ENOTDIR: i32 = Errno::NOTDIR.raw_os_error();
    const EINVAL: i32 = Errno::INVAL.raw_os_error();
    const ENAMETOOLONG: i32 = Errno::NAMETOOLONG.raw_os_error();
    const ENOSYS: i32 = Errno::NOSYS.raw_os_error();
    const ELOOP: i32 = Errno::LOOP.raw_os_error();
    let code = match e.raw_os_error() {
        Some(ENOENT | ENOTDIR | EBADF | ELOOP) => StatusCode::NoSuchFile,
        Some(EPERM | EACCES | EFAULT) => StatusCode::PermissionDenied,
        Some(ENAMETOOLONG | EINVAL) => StatusCode::BadMessage,
        Some(ENOSYS) => StatusCode::OpUnsupported,
        Some(_) => StatusCode::Failure,
        None => match e.kind() {
            io::ErrorKind::NotFound => StatusCode::NoSuchFile,
            io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
            io::ErrorKind::UnexpectedEof => StatusCode::Eof,
            _ => StatusCode::Failure,
        },
    };
    code.with_message(e.to_string())
}

fn invalid_handle() -> StatusReply {
    StatusCode::Failure.with_message("invalid handle")
}

fn ok_status(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

/// SFTP attributes straight from `stat`: the mode already carries the
/// file-type bits in the encoding SFTP uses.
fn attributes(md: &Metadata) -> FileAttributes {
    let secs = |t: i64| u32::try_from(t).unwrap_or(0);
    FileAttributes {
        size: Some(md.size()),
        uid: Some(md.uid()),
        user: None,
        gid: Some(md.gid()),
        group: None,
        permissions: Some(md.mode()),
        atime: Some(secs(md.atime())),
        mtime: Some(secs(md.mtime())),
    }
}

/// What `setstat` / `fsetstat` applies to.
enum Target<'a> {
    Path(&'a Path),
    File(&'a fs::File),
}

/// Applies the attributes present in `attrs` (size, owner, mode, times).
fn set_attributes(target: Target<'_>, attrs: &FileAttributes) -> io::Result<()> {
    if let Some(size) = attrs.size {
        match target {
            Target::File(file) => file.set_len(size)?,
            Target::Path(path) => OpenOptions::new().write(true).open(path)?.set_len(size)?,
        }
    }
    if attrs.uid.is_some() || attrs.gid.is_some() {
        match target {
            Target::File(file) => std::os::unix::fs::fchown(file, attrs.uid, attrs.gid)?,
            Target::Path(path) => std::os::unix::fs::chown(path, attrs.uid, attrs.gid)?,
        }
    }
    if let Some(mode) = attrs.permissions {
        let perms = Permissions::from_mode(mode & 0o7777);
        match target {
            Target::File(file) => file.set_permissions(perms)?,
            Target::Path(path) => fs::set_permissions(path, perms)?,
        }
    }
    if attrs.atime.is_some() || attrs.mtime.is_some() {
        let at = |secs: u32| UNIX_EPOCH + Duration::from_secs(u64::from(secs));
        let mut times = FileTimes::new();
        if let Some(atime) = attrs.atime {
            times = times.set_accessed(at(atime));
        }
        if let Some(mtime) = attrs.mtime {
            times = times.set_modified(at(mtime));
        }
        match target {
            Target::File(file) => file.set_times(times)?,
            // Opening read-only suffices for futimens and works on directories.
            Target::Path(path) => fs::File::open(path)?.set_times(times)?,
        }
    }
    Ok(())
}

/// Lexical normalisation (`.`/`..`) for paths that cannot be canonicalised.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push("/");
    }
    out
}

/// Reads SSH wire strings from an extended request's payload.
struct WireReader<'a>(&'a [u8]);

impl WireReader<'_> {
    fn string(&mut self) -> SftpResult<String> {
        let bad = || StatusReply::from(StatusCode::BadMessage);
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad());
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/..")), PathBuf::from("/"));
    }

    #[test]
    fn maps_errors() {
        let status = |e: io::Error| io_status(&e).status_code;
        assert_eq!(status(io::Error::from_raw_os_error(2)), StatusCode::NoSuchFile);
        assert_eq!(status(io::Error::from_raw_os_error(13)), StatusCode::PermissionDenied);
        assert_eq!(status(io::Error::from_raw_os_error(17)), StatusCode::Failure);
        assert_eq!(status(io::ErrorKind::NotFound.into()), StatusCode::NoSuchFile);
    }

    #[test]
    fn wire_strings() {
        let mut data = Vec::new();
        for s in ["old", "new"] {
            data.extend_from_slice(&(s.len() as u32).to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        let mut r = WireReader(&data);
        assert_eq!(r.string().unwrap(), "old");
        assert_eq!(r.string().unwrap(), "new");
        assert!(r.string().is_err());
    }
}
