//! A deny-by-default seccomp profile from the syscalls a session observed.
//!
//! The output is the JSON that `docker run --security-opt seccomp=FILE`,
//! containerd/CRI-O (Kubernetes `localhost/` profiles) and Podman read: only
//! the fields all of them share (`defaultAction`, `defaultErrnoRet`,
//! `architectures`, `syscalls[].names/action`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::syscalls::Arch;

/// What a denied syscall returns: EPERM, the errno programs already handle
/// for "not allowed" (ENOSYS would make some libcs fall back to other calls,
/// which are denied too, and confuse the report).
pub const DENIED_ERRNO: u32 = 1;

/// Syscalls the container runtime makes after it has loaded the filter and
/// before the app's first instruction runs, each with its reason. They
/// are allowed even when a run did not show them, because that part of the
/// runtime's path varies between runs and set-ups (another USER, a
/// terminal, NoNewPrivileges, another runc version, Go's scheduler), and a
/// missing one means the container does not start at all.
///
/// Source: runc's `libcontainer/standard_init_linux.go` and
/// `init_linux.go` (`finalizeNamespace`, `setupUser`): without
/// NoNewPrivileges (Docker's default) runc loads the filter right after the
/// parent's "ready" sync, then drops capabilities, switches user, closes
/// leaked fds, checks the entrypoint and opens the exec fifo; runc is a Go
/// program, so its runtime's threads keep scheduling, signalling and
/// allocating until the exec. Checked against an strace of runc 1.1.5's init
/// between `prctl(PR_SET_SECCOMP)` and `execve` (Docker 20.10, Debian 12),
/// which made 26 distinct syscalls, all listed here.
pub const RUNTIME_AFTER_FILTER: &[&str] = &[
    "execve",          // runc execs the entrypoint after loading the filter
    "execveat",        // runc >= 1.2 execs through runc-dmz / fexecve (execveat)
    "exit",            // threads of runc's Go runtime and of the app end with exit
    "exit_group",      // every process ends with exit_group
    "rt_sigreturn",    // return from any signal handler (Go's preemption signal)
    "rt_sigaction",    // Go installs signal handlers on new threads and before exec
    "rt_sigprocmask",  // Go masks signals around thread start and exec
    "sigaltstack",     // Go gives each new thread a signal stack
    "restart_syscall", // the kernel resumes a sleep a signal interrupted
    "futex",           // Go (and any threaded program) parks and wakes threads
    "sched_yield",     // Go's scheduler spins before parking
    "nanosleep",       // Go's runtime sleeps (usleep) in its scheduler and sysmon
    "tgkill",          // Go preempts a thread by signalling it: tgkill(getpid(), tid)
    "getpid",          // Go's preemption and runc's self-kill need the pid
    "gettid",          // Go's preemption names the thread to signal
    "clone",           // Go starts a thread when runc blocks on the exec fifo
    "mmap",            // Go's heap grows during runc's last steps
    "munmap",          // Go returns memory
    "madvise",         // Go's scavenger releases pages
    "epoll_ctl",       // Go's poller drops runc's sync socket and log pipe on close
    "epoll_pwait",     // Go's poller waits in the scheduler
    "read",            // runc reads its sync pipe and /etc/passwd, /etc/group
    "write",           // runc writes the exec fifo and its log pipe
    "openat",          // runc lists /proc/self/fd, opens the exec fifo and /etc/passwd
    "getdents64",      // runc lists /proc/self/fd to mark leaked fds close-on-exec
    "fcntl",           // runc sets FD_CLOEXEC on leaked fds
    "close",           // runc closes its pipes and the fifo before exec
    "fstatfs",         // runc checks /proc/self/fd is procfs before closing fds
    "statfs",          // the same check by path in other runc versions
    "close_range",     // runc >= 1.1.12 closes leaked fds with close_range
    "newfstatat",      // runc stats /dev/null and stdio, exec.LookPath stats the entrypoint
    "fstat",           // Go's os.File stats what it opens
    "statx",           // newer Go and libc stat with statx
    "getcwd",          // Go's exec.LookPath resolves the entrypoint from the cwd
    "faccessat",       // runc checks the entrypoint is executable (eaccess)
    "faccessat2",      // the same check with AT_EACCESS on newer x/sys
    "fchown",          // runc hands stdio to the container's USER
    "capget",          // runc reads its capabilities before dropping them
    "capset",          // runc drops capabilities after the filter (no NoNewPrivileges)
    "prctl",           // PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_SET_PDEATHSIG restore
    "getuid",          // runc's default user is the current uid
    "getgid",          // runc's default group is the current gid
    "setgroups",       // runc sets the USER's supplementary groups
    "setgid",          // runc switches to the USER's gid
    "setuid",          // runc switches to the USER's uid
    "setresgid",       // Go's syscall.Setgid on newer Go
    "setresuid",       // Go's syscall.Setuid on newer Go
    "chdir",           // runc enters WORKDIR
    "getppid",         // runc checks its parent is still alive before exec
    "kill",            // runc kills itself when its parent died
    "arch_prctl",      // x86_64: Go sets a new thread's TLS with ARCH_SET_FS
];

/// Syscalls the runtime makes while it sets the container up, before the
/// filter exists, and which an unprivileged container cannot use anyway
/// (they need CAP_SYS_ADMIN, or, for keyctl, Docker's own default profile
/// refuses them). The kernel records a session's syscalls from the moment
/// runc's init joins the session cgroup, so these show up in every run; they
/// are left out of the profile because the filter never sees them, and
/// allowing them would grant exactly what hardening should forbid.
pub const RUNTIME_SETUP_ONLY: &[&str] = &[
    "mount",         // rootfs, /proc, /dev, masked and read-only paths
    "umount2",       // detaching the old root after pivot_root
    "pivot_root",    // entering the container's rootfs
    "open_tree",     // runc >= 1.2 bind mounts with the new mount API
    "move_mount",    // the same
    "fsopen",        // the same
    "fsconfig",      // the same
    "fsmount",       // the same
    "fspick",        // the same
    "mount_setattr", // the same (read-only and idmapped mounts)
    "setns",         // nsexec joins namespaces before the Go part of runc init
    "unshare",       // nsexec creates the container's namespaces
    "sethostname",   // the container's hostname
    "setdomainname", // the container's domain name
    "keyctl",        // runc joins a fresh session keyring
];

/// A seccomp profile in the shared Docker/OCI-runtime JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    /// `SCMP_ACT_ERRNO`: refuse what the list does not allow.
    pub default_action: String,
    /// The errno a refused syscall returns ([`DENIED_ERRNO`]).
    pub default_errno_ret: u32,
    /// libseccomp architecture tokens (native first).
    pub architectures: Vec<String>,
    /// The allow rules (one rule, names sorted).
    pub syscalls: Vec<SyscallRule>,
}

/// One rule: these syscalls get this action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: String,
    /// errno for `SCMP_ACT_ERRNO` rules.
    #[serde(rename = "errnoRet", default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
}

/// Syscalls the engine's default profile answers with ENOSYS, so that libc
/// falls back to an older call (glibc's `pthread_create` tries `clone3`,
/// then `clone` on ENOSYS). Under that profile the app never makes them
/// visibly (seccomp runs before the tracepoint), so the observed set lacks
/// them; refusing them with EPERM instead would break the fallback ("can't
/// start new thread"). Unless observed, they keep answering ENOSYS.
pub const ENOSYS_FALLBACK: &[&str] = &["clone3"];

/// Linux's ENOSYS.
const ENOSYS: u32 = 38;

impl SeccompProfile {
    /// Pretty JSON with a final newline; the same input gives the same bytes.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serializes");
        s.push('\n');
        s
    }

    /// Whether the profile allows syscall `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.syscalls
            .iter()
            .any(|r| r.action == "SCMP_ACT_ALLOW" && r.names.iter().any(|n| n == name))
    }
}

/// How a profile came about: the report's account of every name in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompSummary {
    pub arch: Arch,
    /// Observed syscalls, by name.
    pub observed: Vec<&'static str>,
    /// Observed numbers the table has no name for (a newer kernel than the
    /// table, or a compat-ABI number): they cannot be named in a profile.
    pub unknown: Vec<u32>,
    /// Runtime syscalls ([`RUNTIME_AFTER_FILTER`]) the run did not show.
    pub runtime_added: Vec<&'static str>,
    /// Observed runtime set-up syscalls left out ([`RUNTIME_SETUP_ONLY`]).
    pub setup_dropped: Vec<&'static str>,
    /// What the profile allows, sorted by name.
    pub allowed: Vec<&'static str>,
}

/// Accounts for a profile on `arch` from the observed syscall numbers.
pub fn seccomp_summary(arch: Arch, observed: &BTreeSet<u32>) -> SeccompSummary {
    let mut named = BTreeSet::new();
    let mut unknown = Vec::new();
    for &nr in observed {
        match arch.syscall_name(nr) {
            Some(name) => {
                named.insert(name);
            }
            None => unknown.push(nr),
        }
    }
    let setup_only: BTreeSet<&str> = RUNTIME_SETUP_ONLY.iter().copied().collect();
    let setup_dropped: Vec<&'static str> = named
        .iter()
        .copied()
        .filter(|n| setup_only.contains(n))
        .collect();
    let mut allowed: BTreeSet<&'static str> = named
        .iter()
        .copied()
        .filter(|n| !setup_only.contains(n))
        .collect();
    let mut runtime_added = Vec::new();
    for &name in RUNTIME_AFTER_FILTER {
        // Arch-specific entries (arch_prctl) only where the arch has them.
        if let Some(nr) = arch.syscall_number(name) {
            let name = arch.syscall_name(nr).expect("same table");
            if allowed.insert(name) {
                runtime_added.push(name);
            }
        }
    }
    runtime_added.sort_unstable();
    SeccompSummary {
        arch,
        observed: named.into_iter().collect(),
        unknown,
        runtime_added,
        setup_dropped,
        allowed: allowed.into_iter().collect(),
    }
}

impl SeccompSummary {
    /// The profile: deny with EPERM by default, allow [`Self::allowed`].
    pub fn profile(&self) -> SeccompProfile {
        SeccompProfile {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: DENIED_ERRNO,
            architectures: self
                .arch
                .seccomp_architectures()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            syscalls: {
                let mut rules = vec![SyscallRule {
                    names: self.allowed.iter().map(|s| s.to_string()).collect(),
                    action: "SCMP_ACT_ALLOW".into(),
                    errno_ret: None,
                }];
                let fallback: Vec<String> = ENOSYS_FALLBACK
                    .iter()
                    .filter(|n| !self.allowed.contains(n) && self.arch.syscall_number(n).is_some())
                    .map(|n| n.to_string())
                    .collect();
                if !fallback.is_empty() {
                    rules.push(SyscallRule {
                        names: fallback,
                        action: "SCMP_ACT_ERRNO".into(),
                        errno_ret: Some(ENOSYS),
                    });
                }
                rules
            },
        }
    }
}

/// The profile for the host architecture from the observed syscall numbers:
/// observed ∪ [`RUNTIME_AFTER_FILTER`] − [`RUNTIME_SETUP_ONLY`].
pub fn seccomp_profile(observed: &BTreeSet<u32>) -> SeccompProfile {
    seccomp_summary(Arch::HOST, observed).profile()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nrs(arch: Arch, names: &[&str]) -> BTreeSet<u32> {
        names
            .iter()
            .map(|n| arch.syscall_number(n).unwrap_or_else(|| panic!("{n}")))
            .collect()
    }

    #[test]
    fn runtime_sets_name_real_syscalls() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for &name in RUNTIME_AFTER_FILTER.iter().chain(RUNTIME_SETUP_ONLY) {
                let known = arch.syscall_number(name).is_some();
                // Only arch_prctl is x86-specific; everything else must exist
                // on both, or the set silently shrinks there.
                assert!(
                    known || (arch == Arch::Aarch64 && name == "arch_prctl"),
                    "{name} unknown on {arch:?}"
                );
            }
        }
        let after: BTreeSet<_> = RUNTIME_AFTER_FILTER.iter().collect();
        assert_eq!(after.len(), RUNTIME_AFTER_FILTER.len(), "duplicates");
        assert!(RUNTIME_SETUP_ONLY.iter().all(|n| !after.contains(n)));
    }

    #[test]
    fn profile_is_observed_plus_runtime_minus_setup() {
        let arch = Arch::X86_64;
        let observed = nrs(arch, &["read", "openat", "mount", "keyctl", "brk", "write"]);
        let mut observed = observed;
        observed.insert(400); // no syscall has this number on x86_64
        let s = seccomp_summary(arch, &observed);
        assert_eq!(
            s.observed,
            ["brk", "keyctl", "mount", "openat", "read", "write"]
        );
        assert_eq!(s.unknown, [400]);
        assert_eq!(s.setup_dropped, ["keyctl", "mount"]);
        assert!(s.runtime_added.contains(&"execve"));
        assert!(s.runtime_added.contains(&"arch_prctl"));
        assert!(!s.runtime_added.contains(&"read"), "already observed");
        let p = s.profile();
        assert!(p.allows("brk") && p.allows("openat") && p.allows("execve"));
        assert!(!p.allows("mount") && !p.allows("keyctl") && !p.allows("ptrace"));
        let names = &p.syscalls[0].names;
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        assert_eq!(names.len(), s.allowed.len());
        assert_eq!(
            names.len(),
            1 + RUNTIME_AFTER_FILTER.len(),
            "brk + the runtime set (read, write, openat are in it)"
        );
    }

    #[test]
    fn aarch64_profile_has_its_architectures_and_no_x86_calls() {
        let s = seccomp_summary(Arch::Aarch64, &nrs(Arch::Aarch64, &["read"]));
        let p = s.profile();
        assert_eq!(p.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
        assert!(!p.allows("arch_prctl"));
        assert!(p.allows("execve") && p.allows("read"));
    }

    #[test]
    fn json_has_the_engine_shape_and_is_deterministic() {
        let arch = Arch::X86_64;
        let p = seccomp_summary(arch, &nrs(arch, &["openat", "read"])).profile();
        let json = p.to_json();
        assert_eq!(json, p.to_json());
        assert!(json.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let rules = v["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["action"], "SCMP_ACT_ALLOW");
        assert!(rules[0].get("errnoRet").is_none());
        // clone3 keeps answering ENOSYS so libc falls back to clone.
        assert_eq!(rules[1]["names"], serde_json::json!(["clone3"]));
        assert_eq!(rules[1]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(rules[1]["errnoRet"], 38);
        let with_clone3 = seccomp_summary(arch, &nrs(arch, &["clone3"])).profile();
        assert_eq!(with_clone3.syscalls.len(), 1);
        assert!(with_clone3.allows("clone3"));
        assert!(
            rules[0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n.is_string())
        );
        // Exactly the shared fields: nothing an engine could reject.
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "architectures",
                "defaultAction",
                "defaultErrnoRet",
                "syscalls"
            ]
        );
        let back: SeccompProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn host_profile_uses_the_host_table() {
        let observed: BTreeSet<u32> = [libc::SYS_getcwd as u32].into();
        let p = seccomp_profile(&observed);
        assert!(p.allows("getcwd"));
        assert_eq!(
            p.architectures[0],
            Arch::HOST.seccomp_architectures()[0].to_string()
        );
    }
}
