//! Starting a program that outlives its starter and its terminal (the tray process, the window).

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `program` with no stdin or stdout, in a process group (Unix) or console-less process
/// (Windows) of its own. Stderr is shared, so its log goes where the starter's does.
pub fn spawn(program: &Path) -> io::Result<Child> {
    spawn_with(program, &[])
}

/// [`spawn`] with arguments (the window's `--add`), each passed as one argument, never through a
/// shell.
pub fn spawn_with(program: &Path, args: &[&str]) -> io::Result<Child> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null());
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Each argument arrives as it is, one argument each (no shell in between).
    #[test]
    fn arguments_reach_the_program_as_given() {
        let mut child =
            spawn_with(Path::new("/bin/sh"), &["-c", "test \"$0\" = '--add; x' && exit 7", "--add; x"])
                .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }
}
