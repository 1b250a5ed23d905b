//! The kernel side's shared state: the load-time `CONFIG` global and every
//! map. Userspace fills `CONFIG`, `SYSCALLS`, `WATCH` and `TAIL` at load,
//! tags sessions through `TAGS`/`TAG_FILTER`/`STATS`/`SYSCALL_SETS`, and
//! reads `EVENTS`; the rest is the programs' own working state.

use core::ptr;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf},
};
use slimd_common::{
    Config, MAX_SYSCALL_NR, Pending, SCRATCH_SIZE, SessionStats, SyscallSet, TagFilter, TagInfo,
    WATCH_PREFIXES, WatchPrefix,
};

/// Set by userspace at load time (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub(crate) static CONFIG: Config = Config {
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
pub(crate) static WATCH: Array<WatchPrefix> = Array::with_max_entries(WATCH_PREFIXES, 0);

/// Tagged cgroup id -> session.
#[map]
pub(crate) static TAGS: HashMap<u64, TagInfo> = HashMap::with_max_entries(4096, 0);

/// Cheap pre-check before `TAGS` (see `TagFilter`).
#[map]
pub(crate) static TAG_FILTER: Array<TagFilter> = Array::with_max_entries(1, 0);

/// Syscall number -> `Syscall` id (0: not traced).
#[map]
pub(crate) static SYSCALLS: Array<u8> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

/// Arguments saved at entry, keyed by pid_tgid. LRU so a task that never
/// returns cannot fill it.
#[map]
pub(crate) static PENDING: LruHashMap<u64, Pending> = LruHashMap::with_max_entries(16384, 0);

/// Where a record is assembled before it is copied to the ring buffer.
#[map]
pub(crate) static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

/// Records for userspace. Size set by userspace at load.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-session counters: records, dedup drops, ring-buffer losses.
#[map]
pub(crate) static STATS: PerCpuHashMap<u64, SessionStats> =
    PerCpuHashMap::with_max_entries(4096, 0);

/// Hashes of (session, kind, process, path, result, ...) already reported.
#[map]
pub(crate) static DEDUP: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// Per-process generation of name-resolution context (cwd, directory fds):
/// part of the dedup key of relative paths.
#[map]
pub(crate) static GENERATION: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Per-session set of syscall numbers made (for seccomp profiles).
#[map]
pub(crate) static SYSCALL_SETS: PerCpuHashMap<u64, SyscallSet> =
    PerCpuHashMap::with_max_entries(4096, 0);

/// Hand-over from `sys_exit` to `dedup_submit` (same CPU, same event).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Handoff {
    pub(crate) prefix: u64,
    pub(crate) session: u64,
    pub(crate) tgid: u32,
    pub(crate) hash_len: u32,
    pub(crate) dedup: u32,
    pub(crate) bump_generation: u32,
}

#[map]
pub(crate) static HANDOFF: PerCpuArray<Handoff> = PerCpuArray::with_max_entries(1, 0);

/// Index 0: the `dedup_submit` program.
#[map]
pub(crate) static TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn config() -> Config {
    // SAFETY: a plain read of a global the loader may have rewritten.
    unsafe { ptr::read_volatile(&CONFIG) }
}
