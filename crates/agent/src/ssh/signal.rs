//! Translation between SSH signal names (RFC 4254 §6.10, without the `SIG`
//! prefix) and OS signals, plus process-group signalling.

use russh::Sig;
use rustix::process::{Pid, Signal};

/// SSH name ↔ OS signal, for the signals worth naming on the wire.
const TABLE: &[(&str, Signal)] = &[
    ("ABRT", Signal::ABORT),
    ("ALRM", Signal::ALARM),
    ("FPE", Signal::FPE),
    ("HUP", Signal::HUP),
    ("ILL", Signal::ILL),
    ("INT", Signal::INT),
    ("KILL", Signal::KILL),
    ("PIPE", Signal::PIPE),
    ("QUIT", Signal::QUIT),
    ("SEGV", Signal::SEGV),
    ("TERM", Signal::TERM),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("BUS", Signal::BUS),
    ("TRAP", Signal::TRAP),
    ("CONT", Signal::CONT),
    ("STOP", Signal::STOP),
    ("TSTP", Signal::TSTP),
];

/// The OS signal a client `signal` request names, if we know it.
pub(crate) fn from_ssh(sig: &Sig) -> Option<Signal> {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name.as_str(),
    };
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The SSH name for a raw signal number that terminated a process.
pub(crate) fn to_ssh(raw: i32) -> Sig {
    match TABLE.iter().find(|(_, s)| s.as_raw() == raw) {
        Some(("ABRT", _)) => Sig::ABRT,
        Some(("ALRM", _)) => Sig::ALRM,
        Some(("FPE", _)) => Sig::FPE,
        Some(("HUP", _)) => Sig::HUP,
        Some(("ILL", _)) => Sig::ILL,
        Some(("INT", _)) => Sig::INT,
        Some(("KILL", _)) => Sig::KILL,
        Some(("PIPE", _)) => Sig::PIPE,
        Some(("QUIT", _)) => Sig::QUIT,
        Some(("SEGV", _)) => Sig::SEGV,
        Some(("TERM", _)) => Sig::TERM,
        Some(("USR1", _)) => Sig::USR1,
        Some((name, _)) => Sig::Custom((*name).to_owned()),
        // RFC 4254 leaves unknown signals to "local" names; a number is the
        // most useful thing we can say.
        None => Sig::Custom(format!("SIG{raw}")),
    }
}

/// Sends `sig` to every process in the group led by `pgid`.
pub(crate) fn kill_group(pgid: Pid, sig: Signal) {
    // ESRCH (group already gone) is the common, harmless failure.
    if let Err(e) = rustix::process::kill_process_group(pgid, sig) {
        tracing::trace!(pgid = pgid.as_raw_nonzero().get(), error = %e, "kill_process_group failed");
    }
}

/// Kills a session's process group with SIGKILL when dropped, unless
/// disarmed: the backstop that leaves no orphans when a session task is torn
/// down abnormally (panic, runtime shutdown).
pub(crate) struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    /// Guards the group led by `pgid` (`None`: nothing to guard).
    pub(crate) fn new(pgid: Option<Pid>) -> Self {
        Self { pgid }
    }

    /// The guarded group, if still armed.
    pub(crate) fn pgid(&self) -> Option<Pid> {
        self.pgid
    }

    /// Leaves the group alone on drop.
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid, Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(from_ssh(&Sig::INT), Some(Signal::INT));
        assert_eq!(from_ssh(&Sig::Custom("USR2".into())), Some(Signal::USR2));
        assert_eq!(from_ssh(&Sig::Custom("NOPE".into())), None);
        assert!(matches!(to_ssh(Signal::TERM.as_raw()), Sig::TERM));
        assert!(matches!(to_ssh(Signal::KILL.as_raw()), Sig::KILL));
        assert!(matches!(to_ssh(Signal::USR2.as_raw()), Sig::Custom(ref n) if n == "USR2"));
    }
}
