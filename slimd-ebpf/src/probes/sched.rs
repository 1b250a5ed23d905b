//! Scheduler programs: fork, exec and exit of the tagged sessions' tasks.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_probe_read_kernel_str},
    macros::tracepoint,
    programs::TracePointContext,
};
use slimd_common::{
    EVENT_GROUP_DEAD, EVENT_READ_FAILED, EVENT_TRUNCATED, EventKind, MAX_PATH, PATH_READ,
};

use super::ctx_field;
use crate::{
    maps::{GENERATION, config},
    record::{HDR, header, scratch, submit},
    tag::current_session,
};

/// A tagged task forked: the current task is the parent.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_fork(ctx: TracePointContext) -> u32 {
    let _ = try_sched_fork(&ctx);
    0
}

fn try_sched_fork(ctx: &TracePointContext) -> Option<()> {
    let session = current_session()?;
    let cfg = config();
    let buf = scratch()?;
    let h = header(buf, session, EventKind::Fork, 0);
    h.ppid = ctx_field::<u32>(ctx, cfg.fork_parent_pid).unwrap_or(0);
    h.arg0 = ctx_field::<i32>(ctx, cfg.fork_child_pid).unwrap_or(0) as i64;
    submit(buf, session);
    Some(())
}

/// A tagged task's exec succeeded: the file the kernel ran.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_exec(ctx: TracePointContext) -> u32 {
    let _ = try_sched_exec(&ctx);
    0
}

fn try_sched_exec(ctx: &TracePointContext) -> Option<()> {
    let session = current_session()?;
    let cfg = config();
    let buf = scratch()?;
    let h = header(buf, session, EventKind::Exec, 0);
    h.arg0 = ctx_field::<i32>(ctx, cfg.exec_old_pid).unwrap_or(0) as i64;
    // __data_loc: low 16 bits offset into the record, high 16 bits length.
    let loc = ctx_field::<u32>(ctx, cfg.exec_filename)?;
    let off = (loc & 0xffff) as usize;
    // SAFETY: reads the kernel's copy of the filename from the record.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.add(HDR) as *mut c_void,
            PATH_READ as u32,
            (ctx.as_ptr() as *const u8).add(off) as *const c_void,
        )
    };
    if n > 0 {
        let mut len = n as usize - 1;
        if len > MAX_PATH {
            len = MAX_PATH;
            h.flags |= EVENT_TRUNCATED;
        }
        h.path_len = len as u32;
    } else {
        h.flags |= EVENT_READ_FAILED;
    }
    submit(buf, session);
    Some(())
}

/// A tagged task exits: reported for the last thread of a process, whose
/// name-resolution generation is dropped with it.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_exit(ctx: TracePointContext) -> u32 {
    let _ = try_sched_exit(&ctx);
    0
}

fn try_sched_exit(ctx: &TracePointContext) -> Option<()> {
    let session = current_session()?;
    let cfg = config();
    let id = bpf_get_current_pid_tgid();
    let (pid, tgid) = (id as u32, (id >> 32) as u32);
    let group_dead =
        cfg.exit_group_dead != 0 && ctx_field::<u8>(ctx, cfg.exit_group_dead).unwrap_or(0) != 0;
    if pid != tgid && !group_dead {
        // A thread that is not the last: nothing userspace needs.
        return None;
    }
    let buf = scratch()?;
    let h = header(buf, session, EventKind::Exit, 0);
    if group_dead || cfg.exit_group_dead == 0 {
        h.flags |= EVENT_GROUP_DEAD;
        let _ = GENERATION.remove(&tgid);
    }
    submit(buf, session);
    Some(())
}
