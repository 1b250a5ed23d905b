//! The programs, one family per module: syscalls (raw `sys_enter` and the
//! per-syscall exits), the scheduler's fork/exec/exit, and cgroup creation
//! for watch mode.

pub(crate) mod cgroup;
pub(crate) mod sched;
pub(crate) mod syscalls;

use aya_ebpf::{EbpfContext, helpers::bpf_probe_read_kernel, programs::TracePointContext};

/// Reads a field at an offset known only at load time (from the tracefs
/// format): the verifier allows only constant offsets for direct access.
#[inline(always)]
pub(crate) fn ctx_field<T: Copy>(ctx: &TracePointContext, off: u32) -> Option<T> {
    // SAFETY: reads size_of::<T>() bytes of the tracepoint record.
    unsafe { bpf_probe_read_kernel((ctx.as_ptr() as *const u8).add(off as usize) as *const T) }.ok()
}
