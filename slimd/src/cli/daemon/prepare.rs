//! `slimd prepare`: the one step that needs more privileges than the
//! daemon keeps. It creates the daemon's cgroup root under the cgroup2
//! mount, which on hybrid hosts is mode 0555 (only CAP_DAC_OVERRIDE may
//! create directories there). The systemd unit runs it with full
//! privileges (`ExecStartPre=+`) before the sandboxed `slimd serve`; the
//! session cgroups below that root need no more than the daemon has.

use std::process::ExitCode;

use super::ServeArgs;
use crate::tracer::CgroupHost;

/// Creates the cgroup root named by `--cgroup-root` (idempotent).
pub fn prepare(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let host = CgroupHost::discover()?;
    let root = host.create_root(&args.cgroup_root)?;
    eprintln!("slimd prepare: cgroup root {} ready", root.display());
    Ok(ExitCode::SUCCESS)
}
