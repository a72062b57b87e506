//! Starting a program that outlives its starter and its terminal (the tray process, the window).

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `program` with no stdin or stdout, in a process group (Unix) or console-less process
/// (Windows) of its own. Stderr is shared, so its log goes where the starter's does.
pub fn spawn(program: &Path) -> io::Result<Child> {
    let mut command = Command::new(program);
    command.stdin(Stdio::null()).stdout(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    command.spawn()
}
