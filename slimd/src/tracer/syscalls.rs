//! Syscall numbers and tracepoint names for the host architecture.
//!
//! The kernel object only knows `slimd_common::Syscall` ids; this table tells
//! it which number is which (filled into the `SYSCALLS` map) and tells the
//! loader which `syscalls:sys_exit_*` tracepoints to attach (arguments are
//! saved by the raw `sys_enter` program from `pt_regs`). A syscall
//! the architecture lacks (aarch64 has no `open` or `stat`) is simply absent.

use slimd_common::Syscall;

/// One traced syscall on this architecture.
#[derive(Clone, Copy, Debug)]
pub struct SyscallEntry {
    pub syscall: Syscall,
    pub nr: u32,
    /// Tracepoint name without the `sys_exit_` prefix.
    pub tracepoint: &'static str,
}

macro_rules! entry {
    ($sc:ident, $nr:ident, $tp:literal) => {
        SyscallEntry {
            syscall: Syscall::$sc,
            nr: libc::$nr as u32,
            tracepoint: $tp,
        }
    };
}

/// The traced syscalls of this architecture.
pub fn table() -> Vec<SyscallEntry> {
    let mut v = vec![
        entry!(Openat, SYS_openat, "openat"),
        entry!(Openat2, SYS_openat2, "openat2"),
        entry!(Newfstatat, SYS_newfstatat, "newfstatat"),
        entry!(Statx, SYS_statx, "statx"),
        entry!(Faccessat, SYS_faccessat, "faccessat"),
        entry!(Faccessat2, SYS_faccessat2, "faccessat2"),
        entry!(Readlinkat, SYS_readlinkat, "readlinkat"),
        entry!(Execve, SYS_execve, "execve"),
        entry!(Execveat, SYS_execveat, "execveat"),
        entry!(Chdir, SYS_chdir, "chdir"),
        entry!(Fchdir, SYS_fchdir, "fchdir"),
        entry!(Connect, SYS_connect, "connect"),
        entry!(Bind, SYS_bind, "bind"),
        entry!(Listen, SYS_listen, "listen"),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        entry!(Open, SYS_open, "open"),
        entry!(Creat, SYS_creat, "creat"),
        entry!(Stat, SYS_stat, "newstat"),
        entry!(Lstat, SYS_lstat, "newlstat"),
        entry!(Access, SYS_access, "access"),
        entry!(Readlink, SYS_readlink, "readlink"),
    ]);
    v
}
