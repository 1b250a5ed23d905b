//! slimd's kernel programs.
//!
//! They record what processes in tagged cgroups do — file opens and existence
//! checks, execs, forks and exits, working-directory changes, and socket
//! connect/bind/listen — and nothing for anyone else. Paths are copied from
//! user memory at `sys_exit_*`, from pointers saved by the raw `sys_enter`
//! program, because a read at entry can fail on a page that is not faulted
//! in yet.
//!
//! Layout of the records and maps: `slimd-common`. Which syscall number is
//! which syscall: the `SYSCALLS` table, and where `pt_regs` keeps the
//! arguments: `Config`, both filled by userspace for the host architecture,
//! so this object is architecture-neutral.
#![no_std]
#![no_main]

mod dedup;
mod maps;
mod probes;
mod record;
mod tag;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the code above does not panic; the verifier would reject a loop.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
