//! Hardening profiles learned from what the app did: minifying removes what
//! the app never touches, hardening also forbids what it never does.
//!
//! Pure generators, no I/O: the daemon hands over what the tracer recorded
//! for a session and writes the results next to the report.
//! - [`seccomp`]: a deny-by-default seccomp profile (Docker, containerd,
//!   CRI-O, Kubernetes `localhost/` profiles) from the observed syscall
//!   numbers, named through the [`syscalls`] tables.
//! - [`network`]: listening ports and destinations from `connect`/`bind`/
//!   `listen` records, and a Kubernetes NetworkPolicy suggestion.
//! - [`apparmor`]: an AppArmor profile from the files the app read, wrote
//!   and executed, and the address families it used.
//!
//! # Which runtime syscalls count
//!
//! The kernel records a session's syscalls for every process in the
//! session cgroup except the container runtime's own (processes named
//! `runc…`, i.e. runc's init stages until they exec the app). So:
//!
//! 1. What runc does *before* it loads the filter (mounts, pivot_root,
//!    device nodes, namespaces, hostname, session keyring) is not observed:
//!    the filter never sees it. The privileged calls only such set-up
//!    makes are also listed in [`seccomp::RUNTIME_SETUP_ONLY`] and left
//!    out even when the app makes them (`mount`, `keyctl`, ...): a hardened
//!    container should be refused those; the verify run under the profile
//!    shows an app that needs one.
//! 2. What runc does *after* loading the filter until the app's first
//!    instruction (dropping capabilities, switching user, closing fds,
//!    exec) runs under the filter: it is always added from
//!    [`seccomp::RUNTIME_AFTER_FILTER`], because that stretch varies
//!    between runs (another USER, a terminal, NoNewPrivileges, another
//!    runc, Go's scheduler) and a missing call stops the container before
//!    the app starts.
//! 3. What the app does (and `docker exec` probes run inside it) counts, as
//!    observed.
//!
//! The numbers are native numbers of the host architecture; a 32-bit
//! binary's compat syscalls are not told apart by `raw_syscalls` and end up
//! either misnamed or in [`seccomp::SeccompSummary::unknown`].

pub mod apparmor;
pub mod network;
pub mod seccomp;
pub mod syscalls;

pub use apparmor::{AppArmorProfile, FileAccess, FileUse, apparmor_profile};
pub use network::{
    AddressFamily, Destination, NetOp, NetworkObservation, NetworkPolicy, NetworkSummary,
    network_policy, summarize_network,
};
pub use seccomp::{SeccompProfile, SeccompSummary, seccomp_profile, seccomp_summary};
pub use syscalls::{Arch, syscall_name, syscall_number};

/// Errors of the generators (only serialization can fail).
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("{0:?} cannot be named in an AppArmor profile (quote, newline or NUL)")]
    UnsafePath(String),
}
