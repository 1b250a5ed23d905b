//! The contract between slimd's kernel programs (`slimd-ebpf`) and its
//! userspace reader (`slimd::tracer`).
//!
//! Everything here is `#[repr(C)]` and plain old data: the kernel writes these
//! bytes into maps and the ring buffer, userspace reads them back. Change a
//! layout on both sides at once, or not at all.
//!
//! Each shared type is followed by its `aya::Pod` impl (feature `user`) and a
//! `const` assertion of its size, worked out from its fields: the kernel
//! crate and userspace both compile these, so a layout that differs from
//! the one written down fails the build on either side.
#![no_std]

/// Longest path we copy, in bytes, not counting the NUL. Linux rejects longer
/// paths (`PATH_MAX` is 4096 with its NUL), so a longer one is marked
/// [`EVENT_TRUNCATED`] rather than cut silently.
pub const MAX_PATH: usize = 4096;
/// Bytes read for a path: one more than [`MAX_PATH`] so truncation is visible.
pub const PATH_READ: usize = MAX_PATH + 1;
/// Room for the path in a record (rounded up to 8).
pub const PATH_AREA: usize = (PATH_READ + 7) & !7;
/// Budget for the NUL-separated argv of an exec, in bytes (a power of two).
pub const MAX_ARGV: usize = 2048;
/// At most this many argv entries are copied.
pub const MAX_ARGS: usize = 32;
/// Largest socket address we copy (`sockaddr_un` is 110 bytes).
pub const MAX_SOCKADDR: usize = 128;
/// Room after the path: argv (up to twice the budget, see the kernel side) or
/// a socket address.
pub const AUX_AREA: usize = 2 * MAX_ARGV;
/// Size of the per-CPU scratch record: header, path, aux.
pub const SCRATCH_SIZE: usize = core::mem::size_of::<EventHeader>() + PATH_AREA + AUX_AREA;

/// `AT_FDCWD` as the kernel passes it in a 64-bit argument slot.
pub const AT_FDCWD: i64 = -100;

/// Highest syscall number the kernel side can look up or record.
pub const MAX_SYSCALL_NR: u32 = 1024;

/// Event flags.
pub const EVENT_TRUNCATED: u32 = 1 << 0;
/// The user string could not be read (bad pointer, or page not present).
pub const EVENT_READ_FAILED: u32 = 1 << 1;
/// Not every argv entry fit into [`MAX_ARGV`]/[`MAX_ARGS`].
pub const EVENT_ARGV_TRUNCATED: u32 = 1 << 2;
/// The exiting task was the last thread of its process.
pub const EVENT_GROUP_DEAD: u32 = 1 << 3;

/// What a record describes.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// open/openat/openat2/creat: `arg0` dfd, `arg1` flags, `arg2` mode, `ret` fd or -errno.
    Open = 1,
    /// stat/lstat/newfstatat/statx: `arg0` dfd, `arg1` at-flags.
    Stat = 2,
    /// access/faccessat/faccessat2: `arg0` dfd, `arg1` mode, `arg2` at-flags.
    Access = 3,
    /// readlink/readlinkat: `arg0` dfd.
    Readlink = 4,
    /// chdir: path; `ret` 0 or -errno.
    Chdir = 5,
    /// fchdir: `arg0` fd.
    Fchdir = 6,
    /// execve/execveat at entry: requested path and argv; `arg0` dfd, `arg1` at-flags.
    ExecArgs = 7,
    /// sched_process_exec: the file the kernel ran; `arg0` old pid.
    Exec = 8,
    /// execve/execveat returned an error: `ret` -errno.
    ExecFailed = 9,
    /// sched_process_fork: current task is the parent; `arg0` child pid.
    Fork = 10,
    /// sched_process_exit of a task; flags has [`EVENT_GROUP_DEAD`].
    Exit = 11,
    /// connect: `arg0` fd, aux sockaddr.
    Connect = 12,
    /// bind: `arg0` fd, aux sockaddr.
    Bind = 13,
    /// listen: `arg0` fd, `arg1` backlog.
    Listen = 14,
    /// cgroup_mkdir of a cgroup matching a watch prefix (watch mode): path,
    /// `arg0` cgroup id, `arg1` level. The kernel tagged it provisionally.
    CgroupMkdir = 15,
}

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Open,
            2 => Self::Stat,
            3 => Self::Access,
            4 => Self::Readlink,
            5 => Self::Chdir,
            6 => Self::Fchdir,
            7 => Self::ExecArgs,
            8 => Self::Exec,
            9 => Self::ExecFailed,
            10 => Self::Fork,
            11 => Self::Exit,
            12 => Self::Connect,
            13 => Self::Bind,
            14 => Self::Listen,
            15 => Self::CgroupMkdir,
            _ => return None,
        })
    }
}

/// The syscalls the kernel side understands. Userspace fills the syscall
/// table map (number -> this id) for the host architecture, so the kernel
/// object itself is architecture-neutral.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Open = 1,
    Openat = 2,
    Openat2 = 3,
    Creat = 4,
    Stat = 5,
    Lstat = 6,
    Newfstatat = 7,
    Statx = 8,
    Access = 9,
    Faccessat = 10,
    Faccessat2 = 11,
    Readlink = 12,
    Readlinkat = 13,
    Execve = 14,
    Execveat = 15,
    Chdir = 16,
    Fchdir = 17,
    Connect = 18,
    Bind = 19,
    Listen = 20,
}

impl Syscall {
    pub const ALL: [Syscall; 20] = [
        Self::Open,
        Self::Openat,
        Self::Openat2,
        Self::Creat,
        Self::Stat,
        Self::Lstat,
        Self::Newfstatat,
        Self::Statx,
        Self::Access,
        Self::Faccessat,
        Self::Faccessat2,
        Self::Readlink,
        Self::Readlinkat,
        Self::Execve,
        Self::Execveat,
        Self::Chdir,
        Self::Fchdir,
        Self::Connect,
        Self::Bind,
        Self::Listen,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get((v as usize).wrapping_sub(1)).copied()
    }

    /// Kernel name, as in `syscalls:sys_enter_<name>` on x86_64 (`stat` is
    /// `newstat` there; userspace maps the tracepoint names per architecture).
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Openat => "openat",
            Self::Openat2 => "openat2",
            Self::Creat => "creat",
            Self::Stat => "stat",
            Self::Lstat => "lstat",
            Self::Newfstatat => "newfstatat",
            Self::Statx => "statx",
            Self::Access => "access",
            Self::Faccessat => "faccessat",
            Self::Faccessat2 => "faccessat2",
            Self::Readlink => "readlink",
            Self::Readlinkat => "readlinkat",
            Self::Execve => "execve",
            Self::Execveat => "execveat",
            Self::Chdir => "chdir",
            Self::Fchdir => "fchdir",
            Self::Connect => "connect",
            Self::Bind => "bind",
            Self::Listen => "listen",
        }
    }
}

/// Fixed part of every ring-buffer record. The record continues with
/// `path_len` bytes of path (no NUL), padded to [`PATH_AREA`] only in the
/// scratch buffer, not on the wire: on the wire the aux bytes (`aux_len`)
/// follow the path directly.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns` when the record was made.
    pub ts_ns: u64,
    /// Session tag: the cgroup id of the session's cgroup.
    pub tag: u64,
    /// Syscall result (fd, 0, or -errno); 0 for sched events.
    pub ret: i64,
    pub arg0: i64,
    pub arg1: u64,
    pub arg2: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// Parent process id when known in the kernel (fork events), else 0.
    pub ppid: u32,
    /// [`EventKind`].
    pub kind: u16,
    /// [`Syscall`] that produced it, 0 for sched events.
    pub syscall: u16,
    /// `EVENT_*` flags.
    pub flags: u32,
    /// Path bytes that follow the header.
    pub path_len: u32,
    /// Aux bytes (argv or sockaddr) that follow the path.
    pub aux_len: u32,
    pub _pad: u32,
    pub comm: [u8; 16],
}

// 6 u64 (48), 3 u32 (12), 2 u16 (4), 4 u32 (16), comm (16): no padding.
const _: () = assert!(size_of::<EventHeader>() == 96);

/// Arguments saved at `sys_enter_*` until `sys_exit_*`, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub tag: u64,
    /// User pointer to the path (or sockaddr, or `open_how`).
    pub ptr: u64,
    /// Second user pointer (`open_how` for openat2).
    pub ptr2: u64,
    pub dfd: i64,
    pub flags: u64,
    pub mode: u64,
    /// sockaddr length for connect/bind.
    pub len: u64,
    pub syscall: u8,
    pub _pad: [u8; 7],
}

// SAFETY: repr(C), integers only, no padding (`_pad` fills the tail).
#[cfg(feature = "user")]
unsafe impl aya::Pod for Pending {}
// 7 u64, then the syscall id and its padding to 8.
const _: () = assert!(size_of::<Pending>() == 64);

/// [`TagInfo::flags`]: tagged by the kernel on cgroup_mkdir (watch mode),
/// waiting for userspace to adopt or drop it.
pub const TAG_PROVISIONAL: u64 = 1;

/// Longest watch prefix (a cgroup path prefix such as `/docker/`).
pub const WATCH_PREFIX_LEN: usize = 64;
/// Number of watch prefixes.
pub const WATCH_PREFIXES: u32 = 8;

/// One watch prefix: new cgroup2 directories whose path starts with it are
/// tagged provisionally from their creation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WatchPrefix {
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; WATCH_PREFIX_LEN],
}

// SAFETY: repr(C), integers only, no padding.
#[cfg(feature = "user")]
unsafe impl aya::Pod for WatchPrefix {}
// len, _pad, 64 bytes.
const _: () = assert!(size_of::<WatchPrefix>() == 72);

/// Value of the tag map (key: a cgroup id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TagInfo {
    /// The session this cgroup belongs to (the session cgroup's own id).
    pub session: u64,
    pub flags: u64,
}

// SAFETY: repr(C), two u64.
#[cfg(feature = "user")]
unsafe impl aya::Pod for TagInfo {}
const _: () = assert!(size_of::<TagInfo>() == 16);

/// Per-session counters (per-CPU map; userspace sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionStats {
    /// Records written to the ring buffer.
    pub records: u64,
    /// Events dropped as exact repeats by the dedup map.
    pub deduped: u64,
    /// Records lost because the ring buffer was full.
    pub lost: u64,
    /// Syscall entries not followed (pending map full).
    pub pending_full: u64,
}

// SAFETY: repr(C), four u64.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SessionStats {}
const _: () = assert!(size_of::<SessionStats>() == 32);

/// Load-time configuration, set as a global of the kernel object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Bit n set: check the ancestor cgroup at level n against the tag map.
    pub tag_levels: u32,
    /// Offsets into tracepoint records, read from tracefs `format` files.
    pub fork_parent_pid: u32,
    pub fork_child_pid: u32,
    pub exec_filename: u32,
    pub exec_pid: u32,
    pub exec_old_pid: u32,
    pub exit_group_dead: u32,
    /// `O_DIRECTORY | O_PATH` for the host architecture: opens with these
    /// flags may become a `dfd`, so they start a new dedup generation.
    pub dir_open_flags: u32,
    /// Watch mode on: tag new cgroups matching a watch prefix.
    pub watch: u32,
    /// cgroup:cgroup_mkdir offsets: root (hierarchy id), id, path.
    pub mkdir_root: u32,
    pub mkdir_id: u32,
    pub mkdir_level: u32,
    pub mkdir_path: u32,
    pub _pad: u32,
    /// Where the raw `sys_enter` tracepoint finds a syscall's arguments: the
    /// kernel's `struct pt_regs` for the host architecture. `regs_block`
    /// bytes from `regs_base` are read at once; `regs_args` (the six
    /// arguments) and `regs_mode` are offsets into that block.
    pub regs_base: u32,
    pub regs_args: [u32; 6],
    /// Offset of the word that tells a native syscall from a compat one
    /// (x86_64: `cs`; aarch64: `pstate`): native when
    /// `word & regs_mode_mask == regs_mode_native`. Compat syscalls number
    /// differently, and the per-syscall exit tracepoints ignore them.
    pub regs_mode: u32,
    pub regs_mode_mask: u64,
    pub regs_mode_native: u64,
}

// SAFETY: repr(C), integers only, no padding (`_pad` keeps the u32 run even,
// so the two u64 at the end start 8-aligned).
#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
// 14 u32 of offsets and switches, regs_base, six regs_args, regs_mode (22
// u32 = 88 bytes), then two u64.
const _: () = assert!(size_of::<Config>() == 104);

/// Bytes of `struct pt_regs` read at once by the raw `sys_enter` program.
pub const REGS_BLOCK: usize = 96;

/// Bits in the tag filter: a one-entry array the kernel checks before the
/// tag hash map, so untagged tasks (everyone else) pay one inlined array
/// read instead of a hash lookup.
pub const TAG_FILTER_BITS: u64 = 4096;

/// The tag filter's value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TagFilter {
    pub words: [u64; (TAG_FILTER_BITS / 64) as usize],
}

// SAFETY: repr(C), an array of u64.
#[cfg(feature = "user")]
unsafe impl aya::Pod for TagFilter {}
// 4096 bits.
const _: () = assert!(size_of::<TagFilter>() == 512);

impl TagFilter {
    pub const fn empty() -> Self {
        Self {
            words: [0; (TAG_FILTER_BITS / 64) as usize],
        }
    }

    /// Bit index for a cgroup id.
    #[inline(always)]
    pub const fn bit(cgroup_id: u64) -> u64 {
        (cgroup_id ^ (cgroup_id >> 12)) & (TAG_FILTER_BITS - 1)
    }

    pub fn set(&mut self, cgroup_id: u64) {
        let b = Self::bit(cgroup_id);
        self.words[(b / 64) as usize] |= 1 << (b % 64);
    }
}

/// Number of u64 words in a session's syscall bitmap.
pub const SYSCALL_WORDS: usize = (MAX_SYSCALL_NR as usize) / 64;

/// Which syscall numbers a session's processes made (per-CPU; OR the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallSet {
    pub words: [u64; SYSCALL_WORDS],
}

// SAFETY: repr(C), an array of u64.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SyscallSet {}
// One bit for each of the 1024 syscall numbers.
const _: () = assert!(size_of::<SyscallSet>() == 128);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_no_hidden_padding() {
        // 6 u64 + 3 u32 + 2 u16 + 4 u32 + comm
        assert_eq!(core::mem::size_of::<EventHeader>(), 48 + 12 + 4 + 16 + 16);
        assert_eq!(core::mem::size_of::<EventHeader>() % 8, 0);
        assert_eq!(core::mem::size_of::<Pending>(), 64);
    }

    #[test]
    fn syscall_ids_round_trip() {
        for s in Syscall::ALL {
            assert_eq!(Syscall::from_u8(s as u8), Some(s));
        }
        assert_eq!(Syscall::from_u8(0), None);
        assert_eq!(Syscall::from_u8(21), None);
    }

    #[test]
    fn event_kinds_round_trip() {
        for v in 0..20u16 {
            if let Some(k) = EventKind::from_u16(v) {
                assert_eq!(k as u16, v);
            }
        }
    }
}
