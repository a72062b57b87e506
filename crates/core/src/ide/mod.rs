//! "Open in IDE": how to start VS Code, Cursor, JetBrains Gateway, Zed or a terminal on a
//! sandbox's folder over the `Host NAME` alias that `ssh-setup` wrote.
//!
//! [`launch_plan`] is pure: given the IDE, the OS and a way to find executables it returns the
//! exact program and arguments (never a shell string) or the URL to open, so the CLI's
//! `open --print` and the tests see precisely what [`launch`] would run.

mod find;
mod quote;
pub use quote::{msvc_arg, sh_word};
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::name::SandboxName;

pub use find::find_executable;

/// The folder opened when a profile names none.
pub const DEFAULT_REMOTE_FOLDER: &str = "/workspace";

/// The login user in the pod (the `User sandbox` line of every Host block); IDEs that take the
/// user separately from the host alias (Gateway, Zed) are given it explicitly.
pub const SSH_USER: &str = "sandbox";

/// Where a sandbox can be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ide {
    /// Visual Studio Code with the Remote - SSH extension.
    VsCode,
    /// Cursor (a VS Code fork with its own Remote-SSH).
    Cursor,
    /// JetBrains Gateway (thin client for IntelliJ-based IDEs).
    Gateway,
    /// Zed's built-in SSH remoting.
    Zed,
    /// A terminal window running `ssh NAME`.
    Terminal,
}

impl Ide {
    /// Every choice, in menu order.
    pub const ALL: [Ide; 5] = [Ide::VsCode, Ide::Cursor, Ide::Gateway, Ide::Zed, Ide::Terminal];

    /// The identifier the CLI's `--ide` takes (and [`FromStr`] parses).
    pub fn id(self) -> &'static str {
        match self {
            Ide::VsCode => "vscode",
            Ide::Cursor => "cursor",
            Ide::Gateway => "gateway",
            Ide::Zed => "zed",
            Ide::Terminal => "terminal",
        }
    }

    /// What to do when the IDE cannot be found or its link does not open: one sentence.
    pub fn install_hint(self, os: Os) -> &'static str {
        match (self, os) {
            (Ide::VsCode, _) => {
                "install VS Code (https://code.visualstudio.com) with its Remote - SSH extension (ms-vscode-remote.remote-ssh), and run 'Shell Command: Install 'code' command in PATH' from its Command Palette"
            }
            (Ide::Cursor, _) => {
                "install Cursor (https://cursor.com) with its Remote-SSH extension, and run 'Shell Command: Install 'cursor' command in PATH' from its Command Palette"
            }
            (Ide::Gateway, _) => {
                "install JetBrains Gateway (https://www.jetbrains.com/remote-development/gateway/, or from the Toolbox App) and start it once so that it handles jetbrains-gateway:// links"
            }
            (Ide::Zed, Os::MacOs) => {
                "install Zed (https://zed.dev/download) into /Applications, or run 'cli: install' from its command palette to put `zed` on PATH"
            }
            (Ide::Zed, Os::Linux) => {
                "install Zed (https://zed.dev/download); its installer puts `zed` in ~/.local/bin, distribution packages may call it `zeditor`"
            }
            (Ide::Zed, Os::Windows) => {
                "install Zed (https://zed.dev/download) and add its `bin` folder to PATH"
            }
            (Ide::Terminal, Os::Linux) => {
                "install gnome-terminal, konsole or xterm, or point x-terminal-emulator at your terminal"
            }
            (Ide::Terminal, Os::MacOs) => {
                "allow this app to control Terminal (System Settings → Privacy & Security → Automation)"
            }
            (Ide::Terminal, Os::Windows) => "install Windows Terminal, or check that cmd.exe can start ssh",
        }
    }

    /// The subject of "not found": the IDE, or for the terminal, any terminal emulator.
    fn missing(self) -> String {
        match self {
            Ide::Terminal => "no terminal emulator was found".into(),
            ide => format!("{ide} was not found"),
        }
    }
}

/// How to get the OpenSSH client `ssh`, which the terminal choice runs.
fn ssh_hint(os: Os) -> &'static str {
    match os {
        Os::Linux => "install the OpenSSH client (the openssh-client or openssh package)",
        Os::MacOs => "macOS ships it as /usr/bin/ssh; check that /usr/bin is on PATH",
        Os::Windows => "enable the OpenSSH Client (Settings → System → Optional features)",
    }
}

impl fmt::Display for Ide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ide::VsCode => "VS Code",
            Ide::Cursor => "Cursor",
            Ide::Gateway => "JetBrains Gateway",
            Ide::Zed => "Zed",
            Ide::Terminal => "Terminal",
        })
    }
}

/// Why a string names no [`Ide`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown IDE {0:?}: use vscode, cursor, gateway, zed or terminal")]
pub struct UnknownIde(pub String);

impl FromStr for Ide {
    type Err = UnknownIde;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "vscode" | "code" => Ok(Ide::VsCode),
            "cursor" => Ok(Ide::Cursor),
            "gateway" | "jetbrains" => Ok(Ide::Gateway),
            "zed" => Ok(Ide::Zed),
            "terminal" => Ok(Ide::Terminal),
            _ => Err(UnknownIde(s.to_owned())),
        }
    }
}

/// The desktop OS whose conventions a plan follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    /// Linux and other freedesktop Unixes.
    Linux,
    /// macOS.
    MacOs,
    /// Windows.
    Windows,
}

impl Os {
    /// The OS this binary was built for (other Unixes count as Linux).
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// What to run to open a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchPlan {
    /// Start a program. On Linux and macOS `args` is the exact argv (no shell is involved). On
    /// Windows, which hands a program one command line rather than an argv, `args` are the
    /// command line's words already quoted for the program (MSVC rules, or `cmd.exe` escaping
    /// when running a `.cmd` shim); [`launch`] passes them verbatim.
    Command { program: PathBuf, args: Vec<String> },
    /// Open a URL with the OS's handler for its scheme.
    Url(String),
}

impl LaunchPlan {
    /// The plan as one line: the URL, or the command as `os`'s shell would read it (words
    /// `sh`-quoted where needed on Linux/macOS; the command line itself on Windows).
    pub fn command_line(&self, os: Os) -> String {
        match self {
            LaunchPlan::Url(url) => url.clone(),
            LaunchPlan::Command { program, args } => {
                let program = program.to_string_lossy();
                let mut words = vec![match os {
                    Os::Windows => quote::msvc_arg(&program),
                    _ => quote::sh_word(&program),
                }];
                words.extend(args.iter().map(|a| match os {
                    Os::Windows => a.clone(),
                    _ => quote::sh_word(a),
                }));
                words.join(" ")
            }
        }
    }
}

/// Why a sandbox cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum IdeError {
    /// The IDE (or any terminal emulator) was not found.
    #[error("{}: {hint}", .ide.missing())]
    NotInstalled { ide: Ide, hint: &'static str },
    /// The OpenSSH client, which the terminal runs, was not found.
    #[error("the OpenSSH client (ssh) was not found: {0}")]
    NoSsh(&'static str),
    /// The remote folder is unusable.
    #[error("remote folder {0:?} {1}")]
    InvalidFolder(String, &'static str),
    /// The program could not be started. (`cause`, not `source`: the message holds it, and a
    /// chain printer would repeat it.)
    #[error("cannot start {program} for {ide}: {cause}; {hint}")]
    Spawn { ide: Ide, program: String, cause: io::Error, hint: &'static str },
    /// No application took the URL (the opener failed, or said so).
    #[error("cannot open {url} for {ide}: {cause}; {hint}")]
    OpenUrl { ide: Ide, url: String, cause: io::Error, hint: &'static str },
}

/// Checks a remote folder: an absolute POSIX path (the pod is Linux) without control
/// characters, at most 4096 bytes.
pub fn validate_folder(folder: &str) -> Result<(), IdeError> {
    let invalid = |why| Err(IdeError::InvalidFolder(folder.to_owned(), why));
    if !folder.starts_with('/') {
        return invalid("must be an absolute path in the sandbox, like /workspace");
    }
    if folder.chars().any(char::is_control) {
        return invalid("contains a control character (newline, tab, …)");
    }
    if folder.len() > 4096 {
        return invalid("is longer than 4096 bytes");
    }
    Ok(())
}

/// How to open `folder` in sandbox `name` with `ide` on `os`.
///
/// `found` answers where an executable is (see [`find_executable`]); the names asked are
/// `code`, `cursor`, `zed` (and `zeditor` on Linux), `ssh`, `x-terminal-emulator`,
/// `gnome-terminal`, `konsole`, `xterm` and `wt`.
///
/// | IDE | found | plan |
/// |---|---|---|
/// | VS Code | `code` | `code --remote ssh-remote+NAME FOLDER` |
/// | VS Code | — | `vscode://vscode-remote/ssh-remote+NAME/FOLDER` |
/// | Cursor | `cursor` | `cursor --remote ssh-remote+NAME FOLDER` |
/// | Cursor | — | `cursor://vscode-remote/ssh-remote+NAME/FOLDER` |
/// | Gateway | (always) | `jetbrains-gateway://connect#type=ssh&deploy=false&host=NAME&port=22&user=sandbox&projectPath=FOLDER` |
/// | Zed | `zed` | `zed ssh://sandbox@NAME/FOLDER`; not found → [`IdeError::NotInstalled`] |
/// | Terminal | `ssh` | Linux: the first of `x-terminal-emulator -e`, `gnome-terminal --`, `konsole -e`, `xterm -e` + `ssh NAME`; macOS: `osascript` telling Terminal to `do script "ssh NAME"`; Windows: `wt.exe ssh NAME`, else `cmd.exe /d /c start ssh NAME` |
///
/// In URLs the folder is percent-encoded (per path segment, or as a whole parameter value). On
/// Windows a `.cmd`/`.bat` launcher runs as `cmd.exe /d /s /c "…"` with its arguments escaped
/// for `cmd.exe` (twice caret-escaped, as the shim re-parses its `%*`).
pub fn launch_plan(
    ide: Ide,
    os: Os,
    name: &SandboxName,
    folder: &str,
    found: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<LaunchPlan, IdeError> {
    validate_folder(folder)?;
    let remote = format!("ssh-remote+{name}");
    let not_installed = || IdeError::NotInstalled { ide, hint: ide.install_hint(os) };
    Ok(match ide {
        Ide::VsCode | Ide::Cursor => {
            let (command, scheme) = if ide == Ide::VsCode { ("code", "vscode") } else { ("cursor", "cursor") };
            match found(command) {
                Some(program) => command_plan(os, program, &["--remote", &remote, folder]),
                None => LaunchPlan::Url(format!("{scheme}://vscode-remote/{remote}{}", quote::url_path(folder))),
            }
        }
        // Gateway's deep link for its SSH provider. JetBrains documents none of these
        // parameters; this set is the one DevPod, Coder and others emit and Gateway (2023.x –
        // 2025.3) accepts: it pre-fills the SSH connection form (host/port/user; Gateway reads
        // ~/.ssh/config, so the alias and its ProxyCommand apply) and opens `projectPath`;
        // `deploy=false` skips re-deploying an IDE backend. Newer Gateways may stop at the
        // filled-in form and wait for "Check Connection and Continue".
        Ide::Gateway => LaunchPlan::Url(format!(
            "jetbrains-gateway://connect#type=ssh&deploy=false&host={name}&port=22&user={SSH_USER}&projectPath={}",
            quote::url_component(folder)
        )),
        // Zed documents `zed ssh://[<user>@]<host>[:<port>]/<path>`; it percent-decodes the path.
        Ide::Zed => {
            let program = found("zed")
                .or_else(|| if os == Os::Linux { found("zeditor") } else { None })
                .ok_or_else(not_installed)?;
            let url = format!("ssh://{SSH_USER}@{name}{}", quote::url_path(folder));
            command_plan(os, program, &[&url])
        }
        Ide::Terminal => {
            found("ssh").ok_or(IdeError::NoSsh(ssh_hint(os)))?;
            terminal_plan(os, name, found).ok_or_else(not_installed)?
        }
    })
}

/// `program args…`, quoted for Windows there (through `cmd.exe` for a `.cmd`/`.bat` shim).
fn command_plan(os: Os, program: PathBuf, args: &[&str]) -> LaunchPlan {
    if os != Os::Windows {
        return LaunchPlan::Command { program, args: args.iter().map(|a| a.to_string()).collect() };
    }
    if is_batch(&program) {
        let mut line = quote::cmd_program(&program.to_string_lossy());
        for arg in args {
            line.push(' ');
            line.push_str(&quote::cmd_shim_arg(arg));
        }
        // `/d`: no AutoRun commands; `/s /c "…"`: strip exactly the outer quotes, run the rest.
        return LaunchPlan::Command {
            program: "cmd.exe".into(),
            args: vec!["/d".into(), "/s".into(), "/c".into(), format!("\"{line}\"")],
        };
    }
    LaunchPlan::Command { program, args: args.iter().map(|a| quote::msvc_arg(a)).collect() }
}

fn is_batch(program: &Path) -> bool {
    program
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("cmd") || e.eq_ignore_ascii_case("bat"))
}

fn terminal_plan(os: Os, name: &SandboxName, found: &dyn Fn(&str) -> Option<PathBuf>) -> Option<LaunchPlan> {
    let command = |program: PathBuf, args: &[&str]| LaunchPlan::Command {
        program,
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    match os {
        Os::Linux => {
            [("x-terminal-emulator", "-e"), ("gnome-terminal", "--"), ("konsole", "-e"), ("xterm", "-e")]
                .into_iter()
                .find_map(|(terminal, flag)| Some(command(found(terminal)?, &[flag, "ssh", name.as_str()])))
        }
        Os::MacOs => {
            // Terminal.app takes no command on its command line; AppleScript's `do script` runs
            // one in a new window. The name is `[A-Za-z0-9_-]`, so it cannot end the string.
            assert!(
                name.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "sandbox names never need AppleScript escaping"
            );
            let script = format!("tell application \"Terminal\" to do script \"ssh {name}\"");
            Some(command(
                "/usr/bin/osascript".into(),
                &["-e", &script, "-e", "tell application \"Terminal\" to activate"],
            ))
        }
        Os::Windows => Some(match found("wt") {
            Some(wt) => command(wt, &["ssh", name.as_str()]),
            // `start` opens a new console window for ssh.
            None => command("cmd.exe".into(), &["/d", "/c", "start", "ssh", name.as_str()]),
        }),
    }
}

/// Carries out a plan: starts the program detached (stdin and stdout closed, its own process
/// group, reaped by a background thread so a long-running app collects no zombies), or hands the
/// URL to `open_url` (the caller's opener: `open` in the CLI, the tray's shell plugin).
pub fn launch(
    ide: Ide,
    plan: &LaunchPlan,
    open_url: &dyn Fn(&str) -> io::Result<()>,
) -> Result<(), IdeError> {
    let hint = ide.install_hint(Os::current());
    match plan {
        LaunchPlan::Url(url) => {
            open_url(url).map_err(|cause| IdeError::OpenUrl { ide, url: url.clone(), cause, hint })
        }
        LaunchPlan::Command { program, args } => {
            let mut command = std::process::Command::new(program);
            #[cfg(windows)]
            {
                use std::os::windows::process::CommandExt;
                const CREATE_NO_WINDOW: u32 = 0x0800_0000;
                for arg in args {
                    command.raw_arg(arg);
                }
                command.creation_flags(CREATE_NO_WINDOW);
            }
            #[cfg(not(windows))]
            {
                use std::os::unix::process::CommandExt;
                command.args(args).process_group(0);
            }
            command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
            let mut child = command.spawn().map_err(|cause| IdeError::Spawn {
                ide,
                program: program.display().to_string(),
                cause,
                hint,
            })?;
            std::thread::spawn(move || child.wait());
            Ok(())
        }
    }
}
