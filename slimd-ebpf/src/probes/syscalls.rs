//! Syscall programs: the raw `sys_enter` tracepoint (syscall set, and the
//! arguments of the traced syscalls), `sys_exit` on the traced syscalls'
//! exit tracepoints, and `dedup_submit`, the tail-called second half of
//! `sys_exit`.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use slimd_common::{
    AT_FDCWD, EVENT_ARGV_TRUNCATED, EVENT_READ_FAILED, EventKind, MAX_ARGS, MAX_ARGV, MAX_PATH,
    MAX_SOCKADDR, MAX_SYSCALL_NR, Pending, REGS_BLOCK, SYSCALL_WORDS, Syscall,
};

use crate::{
    dedup::{HASH_MAX, bump_generation, generation, hash_bytes, is_repeat, mix},
    maps::{HANDOFF, PENDING, SYSCALL_SETS, SYSCALLS, TAIL, config},
    record::{HDR, header, read_user_path, scratch, stats, submit},
    tag::current_session,
};

#[inline(always)]
fn ctx_u64(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: tracepoint records are readable directly by offset; the
    // verifier checks the offset against the record.
    unsafe { ptr::read_volatile((ctx.as_ptr() as *const u8).add(off) as *const u64) }
}

/// The six arguments of a native syscall, from the `struct pt_regs` the
/// raw `sys_enter` tracepoint passes (layout from `Config`, set by
/// userspace for the host architecture). None for a compat syscall.
#[inline(always)]
fn syscall_args(regs: *const u8) -> Option<[u64; 6]> {
    let cfg = config();
    // SAFETY: reads REGS_BLOCK bytes of the kernel's pt_regs.
    let block: [u64; REGS_BLOCK / 8] = unsafe {
        bpf_probe_read_kernel(regs.add(cfg.regs_base as usize) as *const [u64; REGS_BLOCK / 8])
    }
    .ok()?;
    let word = |off: u32| block[(off as usize / 8) % (REGS_BLOCK / 8)];
    if word(cfg.regs_mode) & cfg.regs_mode_mask != cfg.regs_mode_native {
        return None;
    }
    Some([
        word(cfg.regs_args[0]),
        word(cfg.regs_args[1]),
        word(cfg.regs_args[2]),
        word(cfg.regs_args[3]),
        word(cfg.regs_args[4]),
        word(cfg.regs_args[5]),
    ])
}

/// raw_syscalls:sys_enter, as a raw tracepoint: every syscall of every
/// process on the host passes here, so it is the one program on that path.
/// Untagged tasks leave after the cgroup check. For tagged ones it records
/// the syscall number in the session's set (for seccomp profiles, no
/// ring-buffer traffic) and, for the traced syscalls, saves the arguments
/// for `sys_exit` (per-syscall exit tracepoints, so only those pay there).
/// A raw tracepoint hands over `pt_regs` without building the classic
/// tracepoint's record first: see bench/results/host-overhead.json.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_enter(&ctx);
    0
}

fn try_sys_enter(ctx: &RawTracePointContext) -> Option<()> {
    let session = current_session()?;
    // sys_enter(struct pt_regs *regs, long id)
    let nr: u64 = ctx.arg(1);
    if nr >= MAX_SYSCALL_NR as u64 {
        return None;
    }
    record_syscall(session, nr);
    let id = *SYSCALLS.get(nr as u32)?;
    let sc = Syscall::from_u8(id)?;
    let regs: *const u8 = ctx.arg(0);
    let a = syscall_args(regs)?;
    let arg = |n: usize| a[n];
    let mut p = Pending {
        tag: session,
        ptr: 0,
        ptr2: 0,
        dfd: AT_FDCWD,
        flags: 0,
        mode: 0,
        len: 0,
        syscall: id,
        _pad: [0; 7],
    };
    match sc {
        Syscall::Open => {
            p.ptr = arg(0);
            p.flags = arg(1);
            p.mode = arg(2);
        }
        Syscall::Openat => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.flags = arg(2);
            p.mode = arg(3);
        }
        Syscall::Openat2 => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.ptr2 = arg(2);
        }
        Syscall::Creat => {
            p.ptr = arg(0);
            p.mode = arg(1);
            // O_CREAT|O_WRONLY|O_TRUNC, as the kernel treats creat().
            p.flags = 0o1101;
        }
        Syscall::Stat | Syscall::Readlink | Syscall::Chdir => {
            // The other arguments are output buffers: not part of the event.
            p.ptr = arg(0);
        }
        Syscall::Access => {
            p.ptr = arg(0);
            p.mode = arg(1);
        }
        Syscall::Lstat => {
            p.ptr = arg(0);
            // AT_SYMLINK_NOFOLLOW
            p.flags = 0x100;
        }
        Syscall::Newfstatat => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.flags = arg(3);
        }
        Syscall::Statx => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.flags = arg(2);
        }
        Syscall::Readlinkat => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
        }
        Syscall::Faccessat | Syscall::Faccessat2 => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.mode = arg(2);
            if sc == Syscall::Faccessat2 {
                p.flags = arg(3);
            }
        }
        Syscall::Fchdir => {
            p.dfd = arg(0) as i32 as i64;
        }
        Syscall::Execve => {
            p.ptr = arg(0);
            p.ptr2 = arg(1);
            exec_args(session, id, &p);
        }
        Syscall::Execveat => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.ptr2 = arg(2);
            p.flags = arg(4);
            exec_args(session, id, &p);
        }
        Syscall::Connect | Syscall::Bind => {
            p.dfd = arg(0) as i32 as i64;
            p.ptr = arg(1);
            p.len = arg(2);
        }
        Syscall::Listen => {
            p.dfd = arg(0) as i32 as i64;
            p.mode = arg(1);
        }
    }
    let key = bpf_get_current_pid_tgid();
    if PENDING.insert(&key, &p, 0).is_err() {
        if let Some(st) = stats(session) {
            st.pending_full += 1;
        }
    }
    Some(())
}

/// Reports an exec's requested path and argv at entry: after a successful
/// exec the old address space is gone, so this cannot wait for the exit.
#[inline(always)]
fn exec_args(session: u64, syscall: u8, p: &Pending) {
    let Some(buf) = scratch() else { return };
    let h = header(buf, session, EventKind::ExecArgs, syscall);
    h.arg0 = p.dfd;
    h.arg1 = p.flags;
    let path_len = read_user_path(buf, h, p.ptr);
    if path_len > MAX_PATH {
        return;
    }
    let mut off = 0usize;
    let mut i = 0usize;
    let argv = p.ptr2;
    while i < MAX_ARGS {
        let mut argp: u64 = 0;
        // SAFETY: reads one pointer of the user's argv array.
        let r = unsafe {
            bpf_probe_read_user(
                &mut argp as *mut u64 as *mut c_void,
                8,
                (argv + (i as u64) * 8) as *const c_void,
            )
        };
        if r != 0 || argp == 0 {
            break;
        }
        if off >= MAX_ARGV {
            h.flags |= EVENT_ARGV_TRUNCATED;
            break;
        }
        let o = off & (MAX_ARGV - 1);
        // SAFETY: destination HDR + path_len + o + MAX_ARGV <= SCRATCH_SIZE.
        let n = unsafe {
            bpf_probe_read_user_str(
                buf.add(HDR + path_len + o) as *mut c_void,
                MAX_ARGV as u32,
                argp as *const c_void,
            )
        };
        if n <= 0 {
            break;
        }
        off = o + n as usize;
        i += 1;
    }
    if i == MAX_ARGS {
        h.flags |= EVENT_ARGV_TRUNCATED;
    }
    if off > 2 * MAX_ARGV {
        off = 2 * MAX_ARGV;
    }
    h.aux_len = off as u32;
    submit(buf, session);
}

/// syscalls:sys_exit_<name> of every traced syscall: reports the call with
/// its result and the path or address read now from the pointers
/// `sys_enter` saved, then hands over to the dedup program by tail call.
///
/// No fixed attach point: this one program serves all the traced
/// syscalls' exit tracepoints, and which of those exist depends on the
/// architecture and the kernel (`stat` is `newstat` on x86_64, aarch64 has
/// no `open`). The loader attaches it to each one the syscall table names
/// that this kernel has. One program per tracepoint would be twenty copies
/// of the same code, each loaded and verified on its own.
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let _ = try_sys_exit(&ctx);
    0
}

fn try_sys_exit(ctx: &TracePointContext) -> Option<()> {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: copied out before the entry is removed.
    let p = unsafe { PENDING.get(&key) }.copied()?;
    let _ = PENDING.remove(&key);
    let ret = ctx_u64(ctx, 16) as i64;
    let sc = Syscall::from_u8(p.syscall)?;
    let session = p.tag;
    let tgid = (key >> 32) as u32;
    let buf = scratch()?;

    let kind = match sc {
        Syscall::Open | Syscall::Openat | Syscall::Openat2 | Syscall::Creat => EventKind::Open,
        Syscall::Stat | Syscall::Lstat | Syscall::Newfstatat | Syscall::Statx => EventKind::Stat,
        Syscall::Access | Syscall::Faccessat | Syscall::Faccessat2 => EventKind::Access,
        Syscall::Readlink | Syscall::Readlinkat => EventKind::Readlink,
        Syscall::Chdir => EventKind::Chdir,
        Syscall::Fchdir => EventKind::Fchdir,
        Syscall::Execve | Syscall::Execveat => {
            if ret >= 0 {
                // Success is reported by sched_process_exec.
                return None;
            }
            EventKind::ExecFailed
        }
        Syscall::Connect => EventKind::Connect,
        Syscall::Bind => EventKind::Bind,
        Syscall::Listen => EventKind::Listen,
    };
    let h = header(buf, session, kind, p.syscall);
    h.ret = ret;
    h.arg0 = p.dfd;
    h.arg1 = p.flags;
    h.arg2 = p.mode;

    // The dedup key: everything that makes this event different from an
    // earlier one except the path/sockaddr bytes, which `dedup_submit` hashes.
    let mut prefix = mix(mix(mix(session, kind as u64), tgid as u64), ret as u64);
    match kind {
        EventKind::Open
        | EventKind::Stat
        | EventKind::Access
        | EventKind::Readlink
        | EventKind::Chdir => {
            if sc == Syscall::Openat2 {
                let mut how = [0u64; 2];
                // SAFETY: reads struct open_how { u64 flags; u64 mode; ... }.
                unsafe {
                    bpf_probe_read_user(
                        how.as_mut_ptr() as *mut c_void,
                        16,
                        p.ptr2 as *const c_void,
                    )
                };
                h.arg1 = how[0];
                h.arg2 = how[1];
            }
            let len = read_user_path(buf, h, p.ptr);
            if len == 0 && h.flags & EVENT_READ_FAILED == 0 && kind != EventKind::Open {
                // An empty path with AT_EMPTY_PATH is an fstat of an open fd:
                // it names no file we do not already know.
                return None;
            }
            prefix = mix(mix(prefix, h.flags as u64), h.arg1);
            // SAFETY: the first path byte is inside the scratch buffer.
            if unsafe { *buf.add(HDR) } != b'/' {
                // Relative: depends on the cwd or the dfd's directory.
                prefix = mix(mix(prefix, p.dfd as u64), generation(tgid));
            }
        }
        EventKind::Fchdir | EventKind::Listen => {
            prefix = mix(mix(prefix, p.dfd as u64), generation(tgid));
        }
        EventKind::Connect | EventKind::Bind => {
            let mut len = p.len as usize;
            if len > MAX_SOCKADDR {
                len = MAX_SOCKADDR;
            }
            // SAFETY: MAX_SOCKADDR bytes fit after the header.
            let r = unsafe {
                bpf_probe_read_user(
                    buf.add(HDR) as *mut c_void,
                    len as u32,
                    p.ptr as *const c_void,
                )
            };
            if r != 0 {
                h.flags |= EVENT_READ_FAILED;
                len = 0;
            }
            h.aux_len = len as u32;
            prefix = mix(prefix, p.dfd as u64);
        }
        _ => {}
    }

    // A new cwd or directory fd changes what relative paths mean.
    let dir_open = kind == EventKind::Open && h.arg1 & config().dir_open_flags as u64 != 0;
    let bump = ret >= 0 && (kind == EventKind::Chdir || kind == EventKind::Fchdir || dir_open);
    let f = HANDOFF.get_ptr_mut(0)?;
    // SAFETY: per-CPU value; `dedup_submit` runs next on this CPU.
    unsafe {
        (*f).prefix = prefix;
        (*f).session = session;
        (*f).tgid = tgid;
        (*f).hash_len = h.path_len + h.aux_len;
        (*f).dedup = (kind != EventKind::ExecFailed) as u32;
        (*f).bump_generation = bump as u32;
    }
    // Hashing a path is a loop of up to 513 words: it lives in its own
    // program, verified once, instead of once per path through this one.
    // SAFETY: on success the tail call does not return.
    unsafe { TAIL.tail_call(ctx, 0) };
    // The tail call failed (not set up): report without dedup.
    submit(buf, session);
    if bump {
        bump_generation(tgid);
    }
    Some(())
}

/// Second half of `sys_exit`, reached by tail call: drops the event if it
/// repeats one already reported, else submits it, and bumps the process's
/// name-resolution generation. (Its name fits the kernel's 15-byte program
/// names, so bpftool and perf show it whole.)
///
/// No attach point: it is never attached, only reached through the `TAIL`
/// program array, and a tail call needs a program of the caller's type
/// (a tracepoint).
#[tracepoint]
pub fn dedup_submit(_ctx: TracePointContext) -> u32 {
    let _ = try_dedup_submit();
    0
}

fn try_dedup_submit() -> Option<()> {
    // SAFETY: copied out of the per-CPU value at once.
    let f = unsafe { *HANDOFF.get_ptr(0)? };
    let buf = scratch()?;
    if f.dedup != 0 {
        let mut len = f.hash_len as usize;
        if len > HASH_MAX {
            len = HASH_MAX;
        }
        // SAFETY: HASH_MAX bytes after the header are inside the scratch value.
        let key = hash_bytes(f.prefix, unsafe { buf.add(HDR) }, len);
        if is_repeat(key) {
            if let Some(st) = stats(f.session) {
                st.deduped += 1;
            }
            return None;
        }
    }
    submit(buf, f.session);
    if f.bump_generation != 0 {
        bump_generation(f.tgid);
    }
    Some(())
}

/// One bit per syscall number per session.
#[inline(always)]
fn record_syscall(session: u64, nr: u64) {
    // The container runtime's own set-up (runc before it execs the app) is
    // not the app's: most of it happens before the seccomp filter exists.
    // Userspace adds the few calls the runtime makes under the filter.
    let Ok(comm) = bpf_get_current_comm() else {
        return;
    };
    if comm[0] == b'r' && comm[1] == b'u' && comm[2] == b'n' && comm[3] == b'c' {
        return;
    }
    let Some(set) = SYSCALL_SETS.get_ptr_mut(&session) else {
        return;
    };
    let w = (nr / 64) as usize;
    if w < SYSCALL_WORDS {
        // SAFETY: per-CPU value, w < SYSCALL_WORDS.
        unsafe { (*set).words[w] |= 1 << (nr % 64) };
    }
}
