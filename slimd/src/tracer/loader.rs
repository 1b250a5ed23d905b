//! Loading and attaching the kernel object, with clear errors for the usual
//! reasons it fails (no privileges, no BTF, no tracefs, no object).

use std::{fs, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ProgramArray},
    programs::{ProgramError, RawTracePoint, TracePoint},
};
use slimd_common::{Config, MAX_SYSCALL_NR, WATCH_PREFIX_LEN, WATCH_PREFIXES, WatchPrefix};

use super::{AyaError, CgroupHost, TracerError, map_err, syscalls, tracefs};

/// The kernel object, built by slimd/build.rs.
#[cfg(feature = "ebpf")]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/slimd-ebpf.o"));
/// Built without the `ebpf` feature: no object, and [`load`] says so.
#[cfg(not(feature = "ebpf"))]
static OBJECT: &[u8] = &[];

/// Programs with a fixed attach point: (program, category, tracepoint), the
/// same points as their `#[tracepoint(category, name)]` attributes in
/// slimd-ebpf. aya keeps no attach point from the object, so the loader
/// names them again; a unit test checks that the two agree.
const SCHED_PROGRAMS: [(&str, &str, &str); 3] = [
    ("sched_fork", "sched", "sched_process_fork"),
    ("sched_exec", "sched", "sched_process_exec"),
    ("sched_exit", "sched", "sched_process_exit"),
];
/// Watch mode only.
const CGROUP_MKDIR: (&str, &str, &str) = ("cgroup_mkdir", "cgroup", "cgroup_mkdir");
/// The raw tracepoint program and its tracepoint (`#[raw_tracepoint]`).
const SYS_ENTER: (&str, &str) = ("sys_enter", "sys_enter");
/// Attached to each traced syscall's `syscalls:sys_exit_<name>` that this
/// kernel has: no fixed point (see slimd-ebpf's probes/syscalls.rs).
const SYS_EXIT: &str = "sys_exit";
/// Reached only by tail call from `sys_exit`, never attached.
const TAIL_PROGRAM: &str = "dedup_submit";

/// Load-time choices.
#[derive(Clone, Debug)]
pub struct TracerOptions {
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// cgroup levels checked against the tag map (bit n = level n).
    /// Session cgroups are `<root>/slimd/<session>`: level 2.
    pub tag_levels: u32,
    /// Watch mode: cgroup2 path prefixes (e.g. `/docker/`) whose new
    /// cgroups are tagged provisionally by the kernel when created.
    pub watch_prefixes: Vec<String>,
}

/// Levels checked in watch mode: containers of runtimes live deeper than
/// slimd's own sessions (`/kubepods/burstable/pod<uid>/<id>` is level 4).
pub const WATCH_TAG_LEVELS: u32 = 0b1111_1100;

impl Default for TracerOptions {
    fn default() -> Self {
        Self {
            ring_bytes: 16 * 1024 * 1024,
            tag_levels: 1 << 2,
            watch_prefixes: Vec::new(),
        }
    }
}

/// Everything that must stay alive while tracing.
pub(super) struct Loaded {
    pub ebpf: Ebpf,
    pub attached: Vec<String>,
    pub cgroups: CgroupHost,
    _logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

/// Capability numbers (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails early, with the names of the missing capabilities, instead of a
/// bare EPERM from the first bpf() call.
fn check_privileges() -> Result<(), TracerError> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        Err(TracerError::NoPrivilege {
            detail: format!("uid {euid} lacks {}", missing.join(", ")),
            source: None,
        })
    }
}

pub(super) fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// True when an error chain bottoms out in EPERM (the verifier rejects
/// programs with EACCES, which is not a privilege problem).
fn is_permission_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::EPERM)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer. Kernels >= 5.11 account
    // BPF memory to the cgroup and ignore this; older ones need it.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

/// Offsets of the sched tracepoint fields the programs read.
fn sched_offsets(tracefs: &Path, cfg: &mut Config) -> Result<(), TracerError> {
    let fork = tracefs::Format::read(tracefs, "sched", "sched_process_fork")?;
    cfg.fork_parent_pid = fork.offset("sched_process_fork", "parent_pid", 4)?;
    cfg.fork_child_pid = fork.offset("sched_process_fork", "child_pid", 4)?;
    let exec = tracefs::Format::read(tracefs, "sched", "sched_process_exec")?;
    cfg.exec_filename = exec.offset("sched_process_exec", "filename", 4)?;
    cfg.exec_pid = exec.offset("sched_process_exec", "pid", 4)?;
    cfg.exec_old_pid = exec.offset("sched_process_exec", "old_pid", 4)?;
    let exit = tracefs::Format::read(tracefs, "sched", "sched_process_exit")?;
    cfg.exit_group_dead = exit
        .offset("sched_process_exit", "group_dead", 1)
        .unwrap_or(0);
    Ok(())
}

/// Offsets of the cgroup_mkdir fields (watch mode only).
fn mkdir_offsets(tracefs: &Path, cfg: &mut Config) -> Result<(), TracerError> {
    let mkdir = tracefs::Format::read(tracefs, "cgroup", "cgroup_mkdir")?;
    cfg.mkdir_root = mkdir.offset("cgroup_mkdir", "root", 4)?;
    cfg.mkdir_id = mkdir.offset("cgroup_mkdir", "id", 8)?;
    cfg.mkdir_level = mkdir.offset("cgroup_mkdir", "level", 4)?;
    cfg.mkdir_path = mkdir.offset("cgroup_mkdir", "path", 4)?;
    Ok(())
}

pub(super) fn load(opts: &TracerOptions) -> Result<Loaded, TracerError> {
    if OBJECT.is_empty() {
        return Err(TracerError::NoObject);
    }
    check_privileges()?;
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(TracerError::NoBtf);
    }
    let tracefs = tracefs::ensure_mounted()?;
    let cgroups = CgroupHost::discover()?;
    raise_memlock();

    if opts.watch_prefixes.len() > WATCH_PREFIXES as usize
        || opts
            .watch_prefixes
            .iter()
            .any(|p| p.is_empty() || p.len() > WATCH_PREFIX_LEN)
    {
        return Err(TracerError::WatchPrefixes);
    }
    let watching = !opts.watch_prefixes.is_empty();
    let mut cfg = Config {
        tag_levels: if watching {
            opts.tag_levels | WATCH_TAG_LEVELS
        } else {
            opts.tag_levels
        },
        watch: watching as u32,
        dir_open_flags: (libc::O_DIRECTORY | libc::O_PATH) as u32,
        ..Default::default()
    };
    regs_layout(&mut cfg)?;
    sched_offsets(&tracefs, &mut cfg)?;
    if watching {
        mkdir_offsets(&tracefs, &mut cfg)?;
    }

    let mut ebpf = EbpfLoader::new()
        .override_global("CONFIG", &cfg, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(OBJECT)
        .map_err(|e| {
            if is_permission_error(&e) {
                denied(e.to_string(), Box::new(e))
            } else {
                TracerError::Object(Box::new(e))
            }
        })?;

    let logger = if ebpf.map("AYA_LOGS").is_some() {
        match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("eBPF logger not started: {e}");
                None
            }
        }
    } else {
        None
    };

    // Syscall number -> Syscall id, for this architecture: only those whose
    // exit tracepoint exists here (sys_enter saves arguments for sys_exit).
    let table: Vec<_> = syscalls::table()
        .into_iter()
        .filter(|e| {
            let ok =
                tracefs::has_event(&tracefs, "syscalls", &format!("sys_exit_{}", e.tracepoint));
            if !ok {
                tracing::debug!(
                    "no tracepoint syscalls:sys_exit_{} on this kernel",
                    e.tracepoint
                );
            }
            ok
        })
        .collect();
    {
        let map = ebpf
            .map_mut("SYSCALLS")
            .ok_or(TracerError::MapMissing { name: "SYSCALLS" })?;
        let mut arr: Array<_, u8> = Array::try_from(map).map_err(|e| map_err("SYSCALLS", e))?;
        for e in &table {
            if e.nr < MAX_SYSCALL_NR {
                arr.set(e.nr, e.syscall as u8, 0)
                    .map_err(|err| map_err("SYSCALLS", err))?;
            }
        }
    }

    let mut attached = Vec::new();
    let mut attach = |ebpf: &mut Ebpf, prog: &'static str, category: &str, name: &str| {
        let p: &mut TracePoint = program_mut(ebpf, prog)?;
        p.attach(category, name)
            .map_err(|e| attach_error(&format!("{category}:{name}"), e))?;
        attached.push(format!("{category}:{name}"));
        Ok::<_, TracerError>(())
    };
    let tracepoint_programs = [SYS_EXIT]
        .into_iter()
        .chain(SCHED_PROGRAMS.map(|(prog, _, _)| prog))
        .chain([TAIL_PROGRAM, CGROUP_MKDIR.0]);
    for prog in tracepoint_programs {
        let p: &mut TracePoint = program_mut(&mut ebpf, prog)?;
        p.load().map_err(|e| load_error(prog, e))?;
    }
    // sys_exit hands each event to the tail program (see slimd-ebpf).
    {
        let fd = {
            let p: &TracePoint = ebpf
                .program(TAIL_PROGRAM)
                .ok_or(TracerError::ProgramMissing(TAIL_PROGRAM))?
                .try_into()
                .map_err(|e| program_error(TAIL_PROGRAM, e))?;
            p.fd()
                .map_err(|e| program_error(TAIL_PROGRAM, e))?
                .try_clone()
                // A second fd for the TAIL map's entry.
                .map_err(|e| map_err("TAIL", e.into()))?
        };
        let map = ebpf
            .map_mut("TAIL")
            .ok_or(TracerError::MapMissing { name: "TAIL" })?;
        let mut tail = ProgramArray::try_from(map).map_err(|e| map_err("TAIL", e))?;
        tail.set(0, &fd, 0).map_err(|e| map_err("TAIL", e))?;
    }

    for e in &table {
        attach(
            &mut ebpf,
            SYS_EXIT,
            "syscalls",
            &format!("sys_exit_{}", e.tracepoint),
        )?;
    }
    for (prog, category, name) in SCHED_PROGRAMS {
        attach(&mut ebpf, prog, category, name)?;
    }
    if watching {
        let map = ebpf
            .map_mut("WATCH")
            .ok_or(TracerError::MapMissing { name: "WATCH" })?;
        let mut arr: Array<_, WatchPrefix> =
            Array::try_from(map).map_err(|e| map_err("WATCH", e))?;
        for (i, p) in opts.watch_prefixes.iter().enumerate() {
            let mut v = WatchPrefix {
                len: p.len() as u32,
                _pad: 0,
                bytes: [0; WATCH_PREFIX_LEN],
            };
            v.bytes[..p.len()].copy_from_slice(p.as_bytes());
            arr.set(i as u32, v, 0).map_err(|e| map_err("WATCH", e))?;
        }
        let (prog, category, name) = CGROUP_MKDIR;
        attach(&mut ebpf, prog, category, name)?;
    }
    {
        let (prog, tracepoint) = SYS_ENTER;
        let p: &mut RawTracePoint = program_mut(&mut ebpf, prog)?;
        p.load().map_err(|e| load_error(prog, e))?;
        p.attach(tracepoint)
            .map_err(|e| attach_error(&format!("raw_syscalls:{tracepoint} (raw)"), e))?;
        attached.push(format!("raw_syscalls:{tracepoint}"));
    }

    Ok(Loaded {
        ebpf,
        attached,
        cgroups,
        _logger: logger,
    })
}

/// A program of the object, as its type.
fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, TracerError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(TracerError::ProgramMissing(name))?
        .try_into()
        .map_err(|e| program_error(name, e))
}

fn program_error(name: &'static str, source: ProgramError) -> TracerError {
    TracerError::Program { name, source }
}

/// The kernel said EPERM: a privilege problem, whatever the step.
fn denied(detail: String, source: impl Into<AyaError>) -> TracerError {
    TracerError::NoPrivilege {
        detail,
        source: Some(source.into()),
    }
}

fn load_error(prog: &'static str, e: ProgramError) -> TracerError {
    if is_permission_error(&e) {
        denied(e.to_string(), e)
    } else {
        program_error(prog, e)
    }
}

/// Where the six syscall arguments and the native/compat mode sit in the
/// kernel's `struct pt_regs` (arch/*/include/asm/ptrace.h), for the raw
/// `sys_enter` program. Offsets are relative to `regs_base`.
fn regs_layout(cfg: &mut Config) -> Result<(), TracerError> {
    #[cfg(target_arch = "x86_64")]
    {
        // r15 r14 r13 r12 bp bx r11 | r10 r9 r8 ax cx dx si di orig_ax ip cs
        // Block from r10 (byte 56); arguments di si dx r10 r8 r9; `cs` is
        // __USER_CS (0x33) for a 64-bit syscall, __USER32_CS for ia32.
        cfg.regs_base = 56;
        cfg.regs_args = [56, 48, 40, 0, 16, 8];
        cfg.regs_mode = 80;
        cfg.regs_mode_mask = 0xffff;
        cfg.regs_mode_native = 0x33;
        Ok(())
    }
    #[cfg(target_arch = "aarch64")]
    {
        // regs[0..6] are the arguments. `pstate` (AArch32 bit) lies outside
        // the block, so AArch32 tasks are not told apart at entry; their
        // syscalls never reach the per-syscall exit tracepoints, so they
        // yield no file events either way.
        cfg.regs_base = 0;
        cfg.regs_args = [0, 8, 16, 24, 32, 40];
        cfg.regs_mode = 0;
        cfg.regs_mode_mask = 0;
        cfg.regs_mode_native = 0;
        Ok(())
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = cfg;
        Err(TracerError::UnsupportedArch)
    }
}

fn attach_error(name: &str, e: ProgramError) -> TracerError {
    if is_permission_error(&e) {
        denied(format!("attaching {name}: {e}"), e)
    } else {
        TracerError::Attach {
            name: name.to_string(),
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

    use super::*;

    /// The attach points the loader uses are the ones written in the
    /// programs' attributes (their ELF section names), and every program
    /// of the object is one the loader loads.
    #[cfg(feature = "ebpf")]
    #[test]
    fn loader_attach_points_match_the_object() {
        let file = object::File::parse(OBJECT).expect("the embedded eBPF object parses");
        // Programs are the functions outside `.text` (which holds the
        // functions they call, such as memcpy).
        let programs: std::collections::BTreeMap<String, String> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text)
            .filter_map(|s| {
                let section = file.section_by_index(s.section_index()?).ok()?;
                let section = section.name().ok()?;
                (section != ".text").then(|| (s.name().unwrap().to_string(), section.to_string()))
            })
            .collect();
        let mut expected: std::collections::BTreeMap<String, String> = SCHED_PROGRAMS
            .into_iter()
            .chain([CGROUP_MKDIR])
            .map(|(prog, category, name)| {
                (prog.to_string(), format!("tracepoint/{category}/{name}"))
            })
            .collect();
        expected.insert(SYS_ENTER.0.into(), format!("raw_tp/{}", SYS_ENTER.1));
        expected.insert(SYS_EXIT.into(), "tracepoint".into());
        expected.insert(TAIL_PROGRAM.into(), "tracepoint".into());
        assert_eq!(programs, expected);
    }

    fn syscall_failed(errno: i32) -> ProgramError {
        ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_prog_load",
            io_error: std::io::Error::from_raw_os_error(errno),
        })
    }

    /// A program the kernel refuses keeps aya's error as its source, and
    /// the message still shows what lies behind it (here the errno).
    #[test]
    fn program_errors_keep_aya_errors_as_their_source() {
        let e = load_error(SYS_EXIT, syscall_failed(libc::EINVAL));
        assert_eq!(
            e.to_string(),
            "loading the eBPF object failed: program sys_exit: `bpf_prog_load` failed: Invalid argument (os error 22)"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(matches!(
            source.downcast_ref::<ProgramError>(),
            Some(ProgramError::SyscallError(_))
        ));
        assert!(!is_permission_error(&e));

        let e = attach_error("sched:sched_process_fork", syscall_failed(libc::ENOENT));
        assert!(
            matches!(&e, TracerError::Attach { name, .. } if name == "sched:sched_process_fork")
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    /// EPERM from the kernel is a privilege problem, with aya's error kept.
    #[test]
    fn eperm_is_reported_as_missing_privilege() {
        let e = attach_error("raw_syscalls:sys_enter (raw)", syscall_failed(libc::EPERM));
        assert!(matches!(
            &e,
            TracerError::NoPrivilege {
                source: Some(AyaError::Program(_)),
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "not allowed to load eBPF programs (attaching raw_syscalls:sys_enter (raw): `bpf_prog_load` failed)"
            ),
            "{msg}"
        );
        assert!(is_permission_error(&e));
    }

    /// Every offset the raw `sys_enter` program reads must fall inside the
    /// block it copies, and the block inside the kernel's `pt_regs`.
    #[test]
    fn register_layout_fits_the_block() {
        let mut cfg = Config::default();
        regs_layout(&mut cfg).unwrap();
        let block = slimd_common::REGS_BLOCK as u32;
        for off in cfg.regs_args.iter().chain([&cfg.regs_mode]) {
            assert!(off % 8 == 0 && *off < block, "offset {off}");
        }
        // sizeof(struct pt_regs): 21 words on x86_64, 34+ on aarch64.
        let pt_regs = if cfg!(target_arch = "x86_64") {
            168
        } else {
            272
        };
        assert!(cfg.regs_base + block <= pt_regs);
        // x86_64: arguments are di, si, dx, r10, r8, r9 (bytes 112, 104,
        // 96, 56, 72, 64 of pt_regs), mode is cs (136).
        #[cfg(target_arch = "x86_64")]
        {
            let abs: Vec<u32> = cfg.regs_args.iter().map(|o| o + cfg.regs_base).collect();
            assert_eq!(abs, [112, 104, 96, 56, 72, 64]);
            assert_eq!(cfg.regs_mode + cfg.regs_base, 136);
        }
    }
}
