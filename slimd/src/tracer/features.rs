//! The kernel features slimd uses, each checked by a small probe at start-up
//! (BTF, tracefs and the syscall tracepoints, the BPF ring buffer, raw
//! tracepoints, the helpers the programs call, cgroup v2 and `cgroup.kill`,
//! and in watch mode the `cgroup_mkdir` tracepoint), with the Linux version
//! that brought each one. A missing required feature stops the daemon with
//! a message naming it and that version; `slim status` lists them all.
//!
//! A probe that cannot tell (a bpf() call refused for lack of privileges)
//! says so and does not count as missing: the loader then reports the
//! privilege problem itself.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
};
use serde::{Deserialize, Serialize};

use super::{
    cgroup::{CgroupHost, check_name},
    tracefs,
};

/// What a probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Present,
    Missing,
    /// The probe could not tell (e.g. not allowed to call bpf()).
    Unknown,
}

/// One kernel feature and what the probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Short name, e.g. `BPF ring buffer`.
    pub name: String,
    /// The Linux version that brought it, e.g. `5.8`.
    pub since: String,
    /// Without it the daemon refuses to start.
    pub required: bool,
    pub presence: Presence,
    /// How it was probed, or why it is missing or unknown.
    pub detail: String,
}

/// Required features the kernel lacks.
#[derive(Debug, thiserror::Error)]
#[error(
    "this kernel (Linux {release}) lacks what slimd needs: {}",
    missing.iter().map(|f| format!("{} (Linux >= {}; {})", f.name, f.since, f.detail)).collect::<Vec<_>>().join("; ")
)]
pub struct MissingFeatures {
    pub release: String,
    pub missing: Vec<Feature>,
}

/// What to probe beyond the features every mode needs.
#[derive(Clone, Debug, Default)]
pub struct ProbeOptions {
    /// slimd's directory under the cgroup2 root: `cgroup.kill` is looked
    /// for there (created when missing, as the first session would), since
    /// the root cgroup has none.
    pub cgroup_root: String,
    /// Watch mode: `cgroup:cgroup_mkdir` is required too.
    pub watch: bool,
}

/// The features of the running kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    pub release: String,
    pub list: Vec<Feature>,
}

impl Features {
    /// Probes the running kernel.
    pub fn probe(opts: &ProbeOptions) -> Self {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut list = vec![btf()];
        let tracefs = tracefs::ensure_mounted();
        list.push(match &tracefs {
            Ok(p) => feature("tracefs", "4.1", true, Presence::Present, p.display()),
            // Not allowed to mount it: the loader names the privileges.
            Err(super::TracerError::Tracefs(e))
                if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) =>
            {
                unknown(
                    "tracefs",
                    "4.1",
                    true,
                    format!("not allowed to mount it: {e}"),
                )
            }
            Err(e) => feature("tracefs", "4.1", true, Presence::Missing, e),
        });
        list.push(match &tracefs {
            Ok(p) => syscall_tracepoints(p),
            Err(_) => unknown("syscall tracepoints", "2.6.33", true, "no tracefs"),
        });
        list.push(ring_buffer());
        list.push(raw_tracepoints());
        // The helper dates from 5.7, but tracing programs may call it only
        // since 5.14 (commit 95b861a7935b): Debian 11's 5.10 refuses it.
        list.push(helper(
            "bpf_get_current_ancestor_cgroup_id",
            "5.14",
            BpfHelper::BPF_FUNC_get_current_ancestor_cgroup_id,
        ));
        list.push(helper(
            "bpf_probe_read_user_str",
            "5.5",
            BpfHelper::BPF_FUNC_probe_read_user_str,
        ));
        let cgroups = CgroupHost::discover();
        list.push(match &cgroups {
            Ok(c) => feature(
                "cgroup v2",
                "4.5",
                true,
                Presence::Present,
                format!("{} ({:?})", c.v2_mount.display(), c.mode),
            ),
            Err(e) => feature("cgroup v2", "4.5", true, Presence::Missing, e),
        });
        list.push(match (&cgroups, check_name(&opts.cgroup_root)) {
            (Ok(c), Ok(())) => cgroup_kill(&c.v2_mount.join(&opts.cgroup_root)),
            (Err(_), _) => unknown("cgroup.kill", "5.14", true, "no cgroup2 mount"),
            (_, Err(e)) => unknown("cgroup.kill", "5.14", true, e),
        });
        if opts.watch {
            list.push(match &tracefs {
                Ok(p) if tracefs::has_event(p, "cgroup", "cgroup_mkdir") => feature(
                    "cgroup:cgroup_mkdir tracepoint",
                    "4.13",
                    true,
                    Presence::Present,
                    "watch mode",
                ),
                Ok(_) => feature(
                    "cgroup:cgroup_mkdir tracepoint",
                    "4.13",
                    true,
                    Presence::Missing,
                    "no events/cgroup/cgroup_mkdir in tracefs (watch mode)",
                ),
                Err(_) => unknown("cgroup:cgroup_mkdir tracepoint", "4.13", true, "no tracefs"),
            });
        }
        Self { release, list }
    }

    /// Required features that are missing.
    pub fn check(&self) -> Result<(), MissingFeatures> {
        let missing: Vec<Feature> = self
            .list
            .iter()
            .filter(|f| f.required && f.presence == Presence::Missing)
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MissingFeatures {
                release: self.release.clone(),
                missing,
            })
        }
    }
}

fn feature(
    name: &str,
    since: &str,
    required: bool,
    presence: Presence,
    detail: impl std::fmt::Display,
) -> Feature {
    Feature {
        name: name.into(),
        since: since.into(),
        required,
        presence,
        detail: detail.to_string(),
    }
}

fn unknown(name: &str, since: &str, required: bool, why: impl std::fmt::Display) -> Feature {
    feature(name, since, required, Presence::Unknown, why)
}

/// A bpf() probe's answer: an error is "unknown", with EPERM named as such.
fn from_probe<E: std::error::Error + 'static>(
    name: &str,
    since: &str,
    how: &str,
    r: Result<bool, E>,
) -> Feature {
    match r {
        Ok(true) => feature(name, since, true, Presence::Present, how),
        Ok(false) => feature(
            name,
            since,
            true,
            Presence::Missing,
            format!("{how}: refused by the kernel"),
        ),
        Err(e) => unknown(name, since, true, format!("{how}: {}", probe_error(&e))),
    }
}

/// The innermost message of a probe error, and whether it was EPERM.
fn probe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.raw_os_error() == Some(libc::EPERM) {
                return "not allowed to call bpf() (needs CAP_BPF or root)".into();
            }
            return io.to_string();
        }
        cur = err.source();
    }
    e.to_string()
}

fn btf() -> Feature {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if path.exists() {
        feature("BTF", "5.4", true, Presence::Present, path.display())
    } else {
        feature(
            "BTF",
            "5.4",
            true,
            Presence::Missing,
            "no /sys/kernel/btf/vmlinux: a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
    }
}

/// The per-syscall tracepoints (CONFIG_FTRACE_SYSCALLS): `sys_exit_openat`
/// stands for them.
fn syscall_tracepoints(tracefs: &Path) -> Feature {
    let name = "syscall tracepoints";
    if tracefs::has_event(tracefs, "syscalls", "sys_exit_openat")
        && tracefs::has_event(tracefs, "raw_syscalls", "sys_enter")
    {
        feature(
            name,
            "2.6.33",
            true,
            Presence::Present,
            "raw_syscalls:sys_enter, syscalls:sys_exit_*",
        )
    } else {
        feature(
            name,
            "2.6.33",
            true,
            Presence::Missing,
            "no syscalls:sys_exit_openat or raw_syscalls:sys_enter: a kernel built with CONFIG_FTRACE_SYSCALLS=y",
        )
    }
}

fn ring_buffer() -> Feature {
    from_probe(
        "BPF ring buffer",
        "5.8",
        "creating a BPF_MAP_TYPE_RINGBUF map",
        is_map_supported(MapType::RingBuf),
    )
}

fn raw_tracepoints() -> Feature {
    from_probe(
        "raw tracepoints",
        "4.17",
        "loading a BPF_PROG_TYPE_RAW_TRACEPOINT program",
        is_program_supported(ProgramType::RawTracePoint),
    )
}

fn helper(name: &str, since: &str, id: BpfHelper) -> Feature {
    from_probe(
        name,
        since,
        "a tracepoint program calling it",
        is_helper_supported(ProgramType::TracePoint, id),
    )
}

/// `cgroup.kill` exists in every non-root cgroup of kernels that have it:
/// looked for in slimd's own directory, made for the probe and removed
/// again when it was not there (the first session makes it for good).
fn cgroup_kill(dir: &Path) -> Feature {
    let name = "cgroup.kill";
    let made = match fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            return unknown(
                name,
                "5.14",
                true,
                format!("cannot create {}: {e}", dir.display()),
            );
        }
    };
    let found = cgroup_kill_in(dir);
    if made {
        let _ = fs::remove_dir(dir);
    }
    found
}

fn cgroup_kill_in(dir: &Path) -> Feature {
    let file: PathBuf = dir.join("cgroup.kill");
    if file.exists() {
        feature(
            "cgroup.kill",
            "5.14",
            true,
            Presence::Present,
            file.display(),
        )
    } else {
        feature(
            "cgroup.kill",
            "5.14",
            true,
            Presence::Missing,
            format!(
                "no {}: slimd ends a session's processes through it",
                file.display()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, since: &str, required: bool, presence: Presence) -> Feature {
        feature(name, since, required, presence, "why")
    }

    #[test]
    fn only_missing_required_features_refuse() {
        let mut fs = Features {
            release: "5.10.0-30-amd64".into(),
            list: vec![
                f("BTF", "5.4", true, Presence::Present),
                f("BPF ring buffer", "5.8", true, Presence::Unknown),
                f("optional", "6.0", false, Presence::Missing),
            ],
        };
        assert!(fs.check().is_ok());
        fs.list
            .push(f("cgroup.kill", "5.14", true, Presence::Missing));
        let err = fs.check().unwrap_err();
        assert_eq!(err.missing.len(), 1);
        assert_eq!(
            err.to_string(),
            "this kernel (Linux 5.10.0-30-amd64) lacks what slimd needs: cgroup.kill (Linux >= 5.14; why)"
        );
    }

    #[test]
    fn cgroup_kill_is_looked_for_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let found = cgroup_kill_in(dir.path());
        assert_eq!(found.presence, Presence::Missing);
        assert!(found.detail.contains("cgroup.kill"), "{}", found.detail);
        fs::write(dir.path().join("cgroup.kill"), "").unwrap();
        assert_eq!(cgroup_kill_in(dir.path()).presence, Presence::Present);
    }

    #[test]
    fn probe_errors_name_missing_privileges() {
        let e = aya::sys::SyscallError {
            call: "bpf_map_create",
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        };
        let got = from_probe("BPF ring buffer", "5.8", "creating", Err::<bool, _>(e));
        assert_eq!(got.presence, Presence::Unknown);
        assert!(got.detail.contains("not allowed"), "{}", got.detail);
        let got = from_probe("x", "1.0", "how", Ok::<_, io::Error>(false));
        assert_eq!(got.presence, Presence::Missing);
    }
}
