//! Syscall number <-> name tables for the architectures slimd runs on.
//!
//! The kernel side records bare numbers (`raw_syscalls:sys_enter` has no
//! names); seccomp profiles need names (libseccomp resolves them per
//! architecture). Both tables are compiled in so that tests and tools can
//! name syscalls of either architecture; [`Arch::HOST`] picks the one the
//! daemon's numbers come from.
//!
//! The tables are the kernel's uapi `__NR_*` lists up to Linux 6.17 (x86_64:
//! `arch/x86/entry/syscalls/syscall_64.tbl`, common and 64-bit entries;
//! aarch64: the asm-generic table), as `(number, name)` facts in number
//! order. The tests cross-check them against the libc crate's `SYS_*`
//! constants for the host.

use serde::Serialize;

#[path = "syscalls_aarch64.rs"]
mod aarch64;
#[path = "syscalls_x86_64.rs"]
mod x86_64;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("slimd::harden has syscall tables for x86_64 and aarch64 only");

/// A CPU architecture with a syscall table here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on: the traced processes' numbers
    /// are native numbers of the same kernel.
    #[cfg(target_arch = "x86_64")]
    pub const HOST: Arch = Arch::X86_64;
    /// The architecture this binary runs on.
    #[cfg(target_arch = "aarch64")]
    pub const HOST: Arch = Arch::Aarch64;

    /// Every syscall of the architecture as `(number, name)`, by number.
    pub fn syscalls(self) -> &'static [(u32, &'static str)] {
        match self {
            Arch::X86_64 => x86_64::SYSCALLS,
            Arch::Aarch64 => aarch64::SYSCALLS,
        }
    }

    /// The name of syscall `nr`, if the architecture has one.
    pub fn syscall_name(self, nr: u32) -> Option<&'static str> {
        let table = self.syscalls();
        table
            .binary_search_by_key(&nr, |&(n, _)| n)
            .ok()
            .map(|i| table[i].1)
    }

    /// The number of syscall `name`, if the architecture has it (aarch64 has
    /// no `open`, `stat` or `fork`, for instance).
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        self.syscalls()
            .iter()
            .find(|&&(_, n)| n == name)
            .map(|&(nr, _)| nr)
    }

    /// The libseccomp architecture tokens a profile for this host lists: the
    /// native one plus the compat ABIs the kernel also accepts, so that a
    /// 32-bit binary in the container is filtered too rather than refused
    /// as an unknown architecture.
    pub fn seccomp_architectures(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            Arch::Aarch64 => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        }
    }
}

/// The name of syscall `nr` on the host architecture.
pub fn syscall_name(nr: u32) -> Option<&'static str> {
    Arch::HOST.syscall_name(nr)
}

/// The number of syscall `name` on the host architecture.
pub fn syscall_number(name: &str) -> Option<u32> {
    Arch::HOST.syscall_number(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_x86_64_numbers() {
        let a = Arch::X86_64;
        assert_eq!(a.syscall_name(0), Some("read"));
        assert_eq!(a.syscall_name(59), Some("execve"));
        assert_eq!(a.syscall_name(257), Some("openat"));
        assert_eq!(a.syscall_name(231), Some("exit_group"));
        assert_eq!(a.syscall_name(334), Some("rseq"));
        assert_eq!(a.syscall_number("openat"), Some(257));
        assert_eq!(a.syscall_number("newfstatat"), Some(262));
        assert_eq!(a.syscall_number("clone3"), Some(435));
        // Numbers 335..=423 are unused on x86_64 (except uretprobe).
        assert_eq!(a.syscall_name(400), None);
        assert_eq!(a.syscall_number("no_such_syscall"), None);
    }

    #[test]
    fn known_aarch64_numbers() {
        let a = Arch::Aarch64;
        assert_eq!(a.syscall_name(63), Some("read"));
        assert_eq!(a.syscall_name(56), Some("openat"));
        assert_eq!(a.syscall_name(221), Some("execve"));
        assert_eq!(a.syscall_number("exit_group"), Some(94));
        assert_eq!(a.syscall_number("newfstatat"), Some(79));
        // The generic table has no legacy path syscalls.
        assert_eq!(a.syscall_number("open"), None);
        assert_eq!(a.syscall_number("fork"), None);
    }

    #[test]
    fn tables_are_complete_sorted_and_unique() {
        for (arch, at_least) in [(Arch::X86_64, 360), (Arch::Aarch64, 300)] {
            let t = arch.syscalls();
            assert!(t.len() >= at_least, "{arch:?}: {} entries", t.len());
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{arch:?} not sorted");
            let mut names: Vec<_> = t.iter().map(|&(_, n)| n).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.len(), "{arch:?} has duplicate names");
            for &(nr, name) in t {
                assert_eq!(arch.syscall_name(nr), Some(name));
                assert_eq!(arch.syscall_number(name), Some(nr));
            }
        }
    }

    /// An independent source for the host: the libc crate's constants.
    #[test]
    fn host_table_matches_libc() {
        let expected: &[(&str, libc::c_long)] = &[
            ("read", libc::SYS_read),
            ("write", libc::SYS_write),
            ("close", libc::SYS_close),
            ("openat", libc::SYS_openat),
            ("execve", libc::SYS_execve),
            ("execveat", libc::SYS_execveat),
            ("exit", libc::SYS_exit),
            ("exit_group", libc::SYS_exit_group),
            ("futex", libc::SYS_futex),
            ("mmap", libc::SYS_mmap),
            ("munmap", libc::SYS_munmap),
            ("mprotect", libc::SYS_mprotect),
            ("brk", libc::SYS_brk),
            ("rt_sigreturn", libc::SYS_rt_sigreturn),
            ("rt_sigaction", libc::SYS_rt_sigaction),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("newfstatat", libc::SYS_newfstatat),
            ("statx", libc::SYS_statx),
            ("connect", libc::SYS_connect),
            ("bind", libc::SYS_bind),
            ("listen", libc::SYS_listen),
            ("mount", libc::SYS_mount),
            ("ptrace", libc::SYS_ptrace),
            ("keyctl", libc::SYS_keyctl),
            ("pivot_root", libc::SYS_pivot_root),
            ("capset", libc::SYS_capset),
            ("prctl", libc::SYS_prctl),
            ("seccomp", libc::SYS_seccomp),
            ("pidfd_open", libc::SYS_pidfd_open),
            ("close_range", libc::SYS_close_range),
            ("faccessat2", libc::SYS_faccessat2),
            ("epoll_pwait2", libc::SYS_epoll_pwait2),
            ("futex_waitv", libc::SYS_futex_waitv),
            ("mseal", libc::SYS_mseal),
        ];
        for &(name, nr) in expected {
            assert_eq!(syscall_number(name), Some(nr as u32), "{name}");
        }
    }
}
