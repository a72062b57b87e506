//! Private files on Windows, where mode bits mean nothing: who may open a file is its DACL.
//!
//! A private file or directory gets a protected DACL (nothing inherited from its parent) with
//! two entries, both full control: the current user and SYSTEM (the OS itself; it can read
//! every file anyway). Windows OpenSSH refuses a private key, and ignores a config, that anyone
//! else may read; it accepts these. A directory's entries are inherited by what is created in
//! it, so a file is private from birth there.

use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, SetNamedSecurityInfoW, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    AddAccessAllowedAceEx, CreateWellKnownSid, GetLengthSid, GetTokenInformation, InitializeAcl, TokenUser,
    WinLocalSystemSid, ACCESS_ALLOWED_ACE, ACL, ACL_REVISION, CONTAINER_INHERIT_ACE,
    DACL_SECURITY_INFORMATION, OBJECT_INHERIT_ACE, PROTECTED_DACL_SECURITY_INFORMATION,
    SECURITY_MAX_SID_SIZE, TOKEN_QUERY, TOKEN_USER, WELL_KNOWN_SID_TYPE,
};
use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// A SID, kept in `u32`s for its alignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sid(Vec<u32>);

impl Sid {
    fn ptr(&self) -> *mut c_void {
        self.0.as_ptr() as *mut c_void
    }

    /// Copies the SID at `sid`.
    ///
    /// # Safety
    /// `sid` points to a valid SID.
    unsafe fn copy(sid: *mut c_void) -> Sid {
        let len = GetLengthSid(sid) as usize;
        let mut words = vec![0u32; len.div_ceil(4)];
        std::ptr::copy_nonoverlapping(sid as *const u8, words.as_mut_ptr().cast::<u8>(), len);
        Sid(words)
    }

    /// The user this process runs as.
    pub fn current_user() -> io::Result<Sid> {
        // SAFETY: the pseudo-handle of the current process needs no closing.
        unsafe { process_user(GetCurrentProcess()) }
    }

    /// The user a running process runs as (the server at the other end of a named pipe).
    pub fn of_process(pid: u32) -> io::Result<Sid> {
        // SAFETY: the process handle is checked, then closed after use.
        unsafe {
            let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if process.is_null() {
                return Err(io::Error::last_os_error());
            }
            let user = process_user(process);
            CloseHandle(process);
            user
        }
    }

    /// The string form (`S-1-5-21-…`), as security descriptor strings (SDDL) spell it.
    pub fn to_sddl(&self) -> io::Result<String> {
        let mut text: *mut u16 = null_mut();
        // SAFETY: the SID is valid; the string is read up to its NUL, then freed as documented.
        unsafe {
            if ConvertSidToStringSidW(self.ptr(), &mut text) == 0 {
                return Err(io::Error::last_os_error());
            }
            let len = (0..).take_while(|&i| *text.add(i) != 0).count();
            let sddl = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
            LocalFree(text.cast());
            Ok(sddl)
        }
    }

    /// The local SYSTEM account.
    pub fn system() -> io::Result<Sid> {
        well_known(WinLocalSystemSid)
    }
}

/// The user of a process's token.
///
/// # Safety
/// `process` is a valid process handle with query rights.
unsafe fn process_user(process: HANDLE) -> io::Result<Sid> {
    // The token handle is closed below; the buffer is sized as the call asked and aligned for
    // TOKEN_USER; the SID it points to lives in that buffer.
    let mut token: HANDLE = null_mut();
    if OpenProcessToken(process, TOKEN_QUERY, &mut token) == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut len = 0u32;
    GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len);
    let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
    let ok = GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len);
    let err = io::Error::last_os_error();
    CloseHandle(token);
    if ok == 0 {
        return Err(err);
    }
    let user = &*(buf.as_ptr() as *const TOKEN_USER);
    Ok(Sid::copy(user.User.Sid))
}

fn well_known(kind: WELL_KNOWN_SID_TYPE) -> io::Result<Sid> {
    let mut words = vec![0u32; (SECURITY_MAX_SID_SIZE as usize).div_ceil(4)];
    let mut len = SECURITY_MAX_SID_SIZE;
    // SAFETY: the buffer holds `len` bytes.
    if unsafe { CreateWellKnownSid(kind, null_mut(), words.as_mut_ptr().cast(), &mut len) } == 0 {
        return Err(io::Error::last_os_error());
    }
    words.truncate((len as usize).div_ceil(4));
    Ok(Sid(words))
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// Gives `path` the private DACL: the current user and SYSTEM, full control, nothing inherited.
/// On a directory the entries are inherited by the files and directories created in it.
pub fn make_private(path: &Path, dir: bool) -> io::Result<()> {
    let sids = [Sid::current_user()?, Sid::system()?];
    let flags = if dir { OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE } else { 0 };
    // SAFETY: the ACL buffer is sized for its header and every entry (ACE header + mask +
    // SID, which `ACCESS_ALLOWED_ACE::SidStart` begins), and u32-aligned; the SIDs are valid.
    unsafe {
        let entry =
            |sid: &Sid| size_of::<ACCESS_ALLOWED_ACE>() - size_of::<u32>() + GetLengthSid(sid.ptr()) as usize;
        let size = size_of::<ACL>() + sids.iter().map(entry).sum::<usize>();
        let mut acl = vec![0u32; size.div_ceil(4)];
        let acl_ptr = acl.as_mut_ptr().cast::<ACL>();
        if InitializeAcl(acl_ptr, (acl.len() * 4) as u32, ACL_REVISION) == 0 {
            return Err(io::Error::last_os_error());
        }
        for sid in &sids {
            if AddAccessAllowedAceEx(acl_ptr, ACL_REVISION, flags, FILE_ALL_ACCESS, sid.ptr()) == 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let status = SetNamedSecurityInfoW(
            wide(path).as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            acl_ptr,
            null(),
        );
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
    }
    Ok(())
}

/// One entry of a DACL, as read back.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `ACCESS_ALLOWED_ACE_TYPE` (0), `ACCESS_DENIED_ACE_TYPE` (1), …
    pub kind: u8,
    /// Inheritance flags (`OBJECT_INHERIT_ACE`, `INHERITED_ACE`, …).
    pub flags: u8,
    /// Access mask.
    pub mask: u32,
    /// Whom it is for.
    pub sid: Sid,
}

#[cfg(test)]
/// A file's DACL as read back: whether it is protected from inheritance, and its entries
/// (`None`: no DACL at all, which admits everyone).
pub struct Dacl {
    /// `SE_DACL_PROTECTED` is set.
    pub protected: bool,
    /// The entries in order.
    pub entries: Option<Vec<Entry>>,
}

/// Reads `path`'s DACL.
#[cfg(test)]
pub fn read_dacl(path: &Path) -> io::Result<Dacl> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::GetNamedSecurityInfoW;
    use windows_sys::Win32::Security::{
        AclSizeInformation, GetAce, GetAclInformation, GetSecurityDescriptorControl, ACE_HEADER,
        ACL_SIZE_INFORMATION, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED,
    };
    // SAFETY: the security descriptor is freed with LocalFree as the API requires; the DACL and
    // its entries point into it and are copied out before.
    unsafe {
        let mut dacl: *mut ACL = null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        let status = GetNamedSecurityInfoW(
            wide(path).as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            &mut dacl,
            null_mut(),
            &mut sd,
        );
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
        let result = (|| {
            let mut control = 0u16;
            let mut revision = 0u32;
            if GetSecurityDescriptorControl(sd, &mut control, &mut revision) == 0 {
                return Err(io::Error::last_os_error());
            }
            let protected = control & SE_DACL_PROTECTED != 0;
            if dacl.is_null() {
                return Ok(Dacl { protected, entries: None });
            }
            let mut info = ACL_SIZE_INFORMATION { AceCount: 0, AclBytesInUse: 0, AclBytesFree: 0 };
            let info_len = size_of::<ACL_SIZE_INFORMATION>() as u32;
            if GetAclInformation(
                dacl,
                (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                info_len,
                AclSizeInformation,
            ) == 0
            {
                return Err(io::Error::last_os_error());
            }
            let mut entries = Vec::new();
            for i in 0..info.AceCount {
                let mut ace: *mut c_void = null_mut();
                if GetAce(dacl, i, &mut ace) == 0 {
                    return Err(io::Error::last_os_error());
                }
                let header = &*(ace as *const ACE_HEADER);
                // Allowed (0) and denied (1) entries share this layout: header, mask, SID.
                let allowed = &*(ace as *const ACCESS_ALLOWED_ACE);
                let sid = match header.AceType {
                    0 | 1 => Sid::copy(std::ptr::addr_of!(allowed.SidStart) as *mut c_void),
                    _ => Sid(Vec::new()),
                };
                entries.push(Entry { kind: header.AceType, flags: header.AceFlags, mask: allowed.Mask, sid });
            }
            Ok(Dacl { protected, entries: Some(entries) })
        })();
        LocalFree(sd);
        result
    }
}
