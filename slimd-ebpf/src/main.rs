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

use core::{ffi::c_void, mem::size_of, ptr};

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use slimd_common::{
    AT_FDCWD, Config, EVENT_ARGV_TRUNCATED, EVENT_GROUP_DEAD, EVENT_READ_FAILED, EVENT_TRUNCATED,
    EventHeader, EventKind, MAX_ARGS, MAX_ARGV, MAX_PATH, MAX_SOCKADDR, MAX_SYSCALL_NR, PATH_READ,
    Pending, SCRATCH_SIZE, SYSCALL_WORDS, SessionStats, Syscall, SyscallSet, TAG_PROVISIONAL,
    REGS_BLOCK, TagFilter, TagInfo, WATCH_PREFIX_LEN, WATCH_PREFIXES, WatchPrefix,
};

/// Set by userspace at load time (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static CONFIG: Config = Config {
    tag_levels: 1 << 2,
    fork_parent_pid: 0,
    fork_child_pid: 0,
    exec_filename: 0,
    exec_pid: 0,
    exec_old_pid: 0,
    exit_group_dead: 0,
    dir_open_flags: 0,
    watch: 0,
    mkdir_root: 0,
    mkdir_id: 0,
    mkdir_level: 0,
    mkdir_path: 0,
    _pad: 0,
    regs_base: 0,
    regs_args: [0; 6],
    regs_mode: 0,
    regs_mode_mask: 0,
    regs_mode_native: 0,
};

/// Watch mode: cgroup path prefixes whose new cgroups are tagged at once.
#[map]
static WATCH: Array<WatchPrefix> = Array::with_max_entries(WATCH_PREFIXES, 0);

/// Tagged cgroup id -> session.
#[map]
static TAGS: HashMap<u64, TagInfo> = HashMap::with_max_entries(4096, 0);

/// Cheap pre-check before `TAGS` (see `TagFilter`).
#[map]
static TAG_FILTER: Array<TagFilter> = Array::with_max_entries(1, 0);

/// Syscall number -> `Syscall` id (0: not traced).
#[map]
static SYSCALLS: Array<u8> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

/// Arguments saved at entry, keyed by pid_tgid. LRU so a task that never
/// returns cannot fill it.
#[map]
static PENDING: LruHashMap<u64, Pending> = LruHashMap::with_max_entries(16384, 0);

/// Where a record is assembled before it is copied to the ring buffer.
#[map]
static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

/// Records for userspace. Size set by userspace at load.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-session counters: records, dedup drops, ring-buffer losses.
#[map]
static STATS: PerCpuHashMap<u64, SessionStats> = PerCpuHashMap::with_max_entries(4096, 0);

/// Hashes of (session, kind, process, path, result, ...) already reported.
#[map]
static DEDUP: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// Per-process generation of name-resolution context (cwd, directory fds):
/// part of the dedup key of relative paths.
#[map]
static GENERATION: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Per-session set of syscall numbers made (for seccomp profiles).
#[map]
static SYSCALL_SETS: PerCpuHashMap<u64, SyscallSet> = PerCpuHashMap::with_max_entries(4096, 0);

const HDR: usize = size_of::<EventHeader>();
/// Most bytes hashed for dedup: a full path (or a sockaddr, which is shorter).
const HASH_MAX: usize = (MAX_PATH / 8 + 1) * 8;

/// Hand-over from `sys_exit` to `finish` (same CPU, same event).
#[repr(C)]
#[derive(Clone, Copy)]
struct Finish {
    prefix: u64,
    session: u64,
    tgid: u32,
    hash_len: u32,
    dedup: u32,
    bump_generation: u32,
}

#[map]
static FINISH: PerCpuArray<Finish> = PerCpuArray::with_max_entries(1, 0);

/// Index 0: the `finish` program.
#[map]
static TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[inline(always)]
fn config() -> Config {
    // SAFETY: a plain read of a global the loader may have rewritten.
    unsafe { ptr::read_volatile(&CONFIG) }
}

/// The session of the current task, if one of its ancestor cgroups is tagged.
#[inline(always)]
fn current_session() -> Option<u64> {
    let levels = config().tag_levels;
    let filter = TAG_FILTER.get_ptr(0)?;
    let mut level = 1;
    while level < 16 {
        if levels & (1 << level) != 0 {
            // SAFETY: helper call with a plain integer argument.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
            if id != 0 {
                let bit = TagFilter::bit(id);
                // SAFETY: the array value lives as long as the map; bit < TAG_FILTER_BITS.
                let word = unsafe { (*filter).words[(bit / 64) as usize & 63] };
                if (word >> (bit % 64)) & 1 != 0 {
                    // SAFETY: value copied out at once.
                    if let Some(info) = unsafe { TAGS.get(&id) } {
                        return Some(info.session);
                    }
                }
            }
        }
        level += 1;
    }
    None
}

#[inline(always)]
fn ctx_u64(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: tracepoint records are readable directly by offset; the
    // verifier checks the offset against the record.
    unsafe { ptr::read_volatile((ctx.as_ptr() as *const u8).add(off) as *const u64) }
}

/// Reads a field at an offset known only at load time (from the tracefs
/// format): the verifier allows only constant offsets for direct access.
#[inline(always)]
fn ctx_field<T: Copy>(ctx: &TracePointContext, off: u32) -> Option<T> {
    // SAFETY: reads size_of::<T>() bytes of the tracepoint record.
    unsafe { bpf_probe_read_kernel((ctx.as_ptr() as *const u8).add(off as usize) as *const T) }.ok()
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

#[inline(always)]
fn stats(session: u64) -> Option<&'static mut SessionStats> {
    // SAFETY: per-CPU value, only this CPU writes it while we run.
    STATS.get_ptr_mut(&session).map(|p| unsafe { &mut *p })
}

/// Mixes one word into a 64-bit hash.
#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// Hash of `len` bytes at `buf` (8-aligned, `len` <= HASH_MAX). The loop
/// body is kept tiny and branch-free: the verifier walks every possible trip
/// count, and the cost of that walk is trip count x body.
#[inline(always)]
fn hash_bytes(mut h: u64, buf: *const u8, len: usize) -> u64 {
    let full = len / 8;
    let mut i = 0usize;
    while i < HASH_MAX / 8 {
        if i >= full {
            break;
        }
        // SAFETY: i*8 + 8 <= HASH_MAX bytes after buf, inside the scratch value.
        h = mix(h, unsafe {
            ptr::read_volatile(buf.add(i * 8) as *const u64)
        });
        i += 1;
    }
    let rem = len % 8;
    if rem != 0 && full < HASH_MAX / 8 {
        // SAFETY: as above; bytes past `len` are masked off.
        let w = unsafe { ptr::read_volatile(buf.add(full * 8) as *const u64) };
        h = mix(h, w & ((1u64 << (rem * 8)) - 1));
    }
    mix(h, len as u64)
}

/// True when this exact event was already reported for its session.
#[inline(always)]
fn is_repeat(key: u64) -> bool {
    // SAFETY: only tests presence.
    if unsafe { DEDUP.get(&key) }.is_some() {
        return true;
    }
    let _ = DEDUP.insert(&key, &1u8, 0);
    false
}

#[inline(always)]
fn generation(tgid: u32) -> u64 {
    // SAFETY: value copied out at once.
    unsafe { GENERATION.get(&tgid) }.copied().unwrap_or(0)
}

#[inline(always)]
fn bump_generation(tgid: u32) {
    let next = generation(tgid).wrapping_add(1);
    let _ = GENERATION.insert(&tgid, &next, 0);
}

#[inline(always)]
fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

/// Fills the common header fields in the scratch buffer.
#[inline(always)]
fn header(buf: *mut u8, session: u64, kind: EventKind, syscall: u8) -> &'static mut EventHeader {
    // SAFETY: the scratch value starts with room for a header, 8-aligned.
    let h = unsafe { &mut *(buf as *mut EventHeader) };
    let id = bpf_get_current_pid_tgid();
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.tag = session;
    h.ret = 0;
    h.arg0 = 0;
    h.arg1 = 0;
    h.arg2 = 0;
    h.pid = id as u32;
    h.tgid = (id >> 32) as u32;
    h.ppid = 0;
    h.kind = kind as u16;
    h.syscall = syscall as u16;
    h.flags = 0;
    h.path_len = 0;
    h.aux_len = 0;
    h._pad = 0;
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    h
}

/// Copies a user string into the path area; returns its length without NUL.
#[inline(always)]
fn read_user_path(buf: *mut u8, h: &mut EventHeader, src: u64) -> usize {
    // SAFETY: destination is the path area of the scratch buffer, PATH_READ bytes.
    let n = unsafe {
        bpf_probe_read_user_str(
            buf.add(HDR) as *mut c_void,
            PATH_READ as u32,
            src as *const c_void,
        )
    };
    if n <= 0 {
        h.flags |= EVENT_READ_FAILED;
        return 0;
    }
    let mut len = (n as usize) - 1;
    if len > MAX_PATH {
        len = MAX_PATH;
    }
    if n as usize >= PATH_READ {
        h.flags |= EVENT_TRUNCATED;
    }
    h.path_len = len as u32;
    len
}

/// Sends `HDR + path_len + aux_len` bytes of the scratch buffer.
#[inline(always)]
fn submit(buf: *mut u8, session: u64) {
    // SAFETY: header was filled by `header`.
    let h = unsafe { &*(buf as *const EventHeader) };
    let total = HDR + h.path_len as usize + h.aux_len as usize;
    if total > SCRATCH_SIZE {
        return;
    }
    // SAFETY: total <= SCRATCH_SIZE bytes of the scratch value.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, total) };
    let st = stats(session);
    match EVENTS.output::<[u8]>(bytes, 0) {
        Ok(()) => {
            if let Some(st) = st {
                st.records += 1;
            }
        }
        Err(_) => {
            if let Some(st) = st {
                st.lost += 1;
            }
        }
    }
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
    // earlier one except the path/sockaddr bytes, which `finish` hashes.
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
    let f = FINISH.get_ptr_mut(0)?;
    // SAFETY: per-CPU value; `finish` runs next on this CPU.
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

/// Second half of `sys_exit`, reached by tail call: dedup, submit, and
/// bump the process's name-resolution generation.
#[tracepoint]
pub fn finish(_ctx: TracePointContext) -> u32 {
    let _ = try_finish();
    0
}

fn try_finish() -> Option<()> {
    // SAFETY: copied out of the per-CPU value at once.
    let f = unsafe { *FINISH.get_ptr(0)? };
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

#[tracepoint]
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

#[tracepoint]
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

#[tracepoint]
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

/// cgroup:cgroup_mkdir — in watch mode, a new cgroup2 directory whose path
/// starts with a watch prefix (the runtime's parent, e.g. `/docker/`) is
/// tagged provisionally right now, before any process can enter it, so the
/// container is traced from its first instruction; userspace then adopts
/// or drops it.
#[tracepoint]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    let _ = try_cgroup_mkdir(&ctx);
    0
}

fn try_cgroup_mkdir(ctx: &TracePointContext) -> Option<()> {
    let cfg = config();
    if cfg.watch == 0 {
        return None;
    }
    // Only the default (v2) hierarchy, whose ids the tag check uses.
    if ctx_field::<i32>(ctx, cfg.mkdir_root)? != 0 {
        return None;
    }
    let id = ctx_field::<u64>(ctx, cfg.mkdir_id)?;
    let level = ctx_field::<i32>(ctx, cfg.mkdir_level)?;
    let loc = ctx_field::<u32>(ctx, cfg.mkdir_path)?;
    let buf = scratch()?;
    // SAFETY: reads the kernel's copy of the path from the record.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.add(HDR) as *mut c_void,
            PATH_READ as u32,
            (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize) as *const c_void,
        )
    };
    if n <= 0 {
        return None;
    }
    let len = (n as usize - 1).min(MAX_PATH);
    if !matches_watch_prefix(buf, len) {
        return None;
    }
    let info = TagInfo {
        session: id,
        flags: TAG_PROVISIONAL,
    };
    TAGS.insert(&id, &info, 0).ok()?;
    let zero_stats = SessionStats::default();
    let _ = STATS.insert(&id, &zero_stats, 0);
    let zero_set = SyscallSet {
        words: [0; SYSCALL_WORDS],
    };
    let _ = SYSCALL_SETS.insert(&id, &zero_set, 0);
    if let Some(f) = TAG_FILTER.get_ptr_mut(0) {
        let bit = TagFilter::bit(id);
        // SAFETY: one word of the array value; a racing writer can only add bits.
        unsafe { (*f).words[(bit / 64) as usize & 63] |= 1 << (bit % 64) };
    }
    let h = header(buf, id, EventKind::CgroupMkdir, 0);
    h.arg0 = id as i64;
    h.arg1 = level as u64;
    h.path_len = len as u32;
    submit(buf, id);
    Some(())
}

/// Whether the path in the scratch buffer starts with a watch prefix.
#[inline(always)]
fn matches_watch_prefix(buf: *mut u8, len: usize) -> bool {
    let mut i = 0u32;
    while i < WATCH_PREFIXES {
        if let Some(p) = WATCH.get(i) {
            let plen = p.len as usize;
            if plen > 0 && plen <= WATCH_PREFIX_LEN && plen <= len {
                let mut j = 0usize;
                let mut same = true;
                while j < WATCH_PREFIX_LEN {
                    if j >= plen {
                        break;
                    }
                    // SAFETY: j < 64 <= the path area of the scratch buffer.
                    if unsafe { *buf.add(HDR + j) } != p.bytes[j] {
                        same = false;
                        break;
                    }
                    j += 1;
                }
                if same {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the code above does not panic; the verifier would reject a loop.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
