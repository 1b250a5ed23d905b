//! Signal names as images spell them (`STOPSIGNAL SIGTERM`, `TERM`, `15`,
//! `SIGRTMIN+3`) and whether a process catches one, from the `SigCgt` mask
//! in `/proc/<pid>/status`.
//!
//! Why it matters: the init process of a PID namespace only receives, from
//! outside the namespace, the signals it has a handler for (plus SIGKILL and
//! SIGSTOP); see pid_namespaces(7). An app that runs as PID 1 without a
//! SIGTERM handler ignores the engine's stop signal, and waiting out the
//! grace period only wastes time.

use std::io;

/// Why a signal question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("unknown signal {0:?}")]
    Unknown(String),
    #[error("reading /proc/{pid}/status: {source}")]
    Status {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("/proc/{pid}/status has no readable SigCgt line")]
    NoMask { pid: u32 },
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The number of a signal named as Docker accepts it: a number, a name with
/// or without `SIG` (any case), or `RTMIN+n` / `RTMAX-n`.
pub fn signal_number(name: &str) -> Result<i32, SignalError> {
    let unknown = || SignalError::Unknown(name.to_string());
    let s = name.trim();
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == bare) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SignalError> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| unknown())?
        };
        let n = base + sign * off;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        }
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest.trim_start_matches('+'), 1);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest.trim_start_matches('-'), -1);
    }
    Err(unknown())
}

/// Whether host process `pid` has a handler installed for `signal`.
pub fn catches_signal(pid: u32, signal: i32) -> Result<bool, SignalError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| SignalError::Status { pid, source })?;
    let mask = caught_mask(&status).ok_or(SignalError::NoMask { pid })?;
    Ok((1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0)
}

/// The `SigCgt` bit mask of a `/proc/<pid>/status` text.
fn caught_mask(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_images_write_them() {
        assert_eq!(signal_number("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(signal_number("term").unwrap(), libc::SIGTERM);
        assert_eq!(signal_number("9").unwrap(), libc::SIGKILL);
        assert_eq!(signal_number("SIGQUIT").unwrap(), libc::SIGQUIT);
        assert_eq!(signal_number("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(signal_number("RTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        for bad in ["SIGNOPE", "0", "99", "RTMIN+x", ""] {
            assert!(signal_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_caught_mask() {
        let status = "Name:\tx\nSigIgn:\t0000000000001000\nSigCgt:\t0000000000004002\n";
        // Bits 2 (SIGINT) and 15 (SIGTERM).
        assert_eq!(caught_mask(status), Some(0x4002));
        assert_eq!(caught_mask("Name: x\n"), None);
    }

    #[test]
    fn this_process_catches_what_it_handles() {
        // The test harness process: SIGKILL can never be caught.
        let me = std::process::id();
        assert!(!catches_signal(me, libc::SIGKILL).unwrap());
        assert!(catches_signal(u32::MAX, libc::SIGTERM).is_err());
    }
}
