//! The daemon's kernel feature probe, end to end: on a kernel that has
//! everything, `slim status` lists each feature as present; with one taken
//! away (BTF hidden in a private mount namespace), the daemon refuses to
//! start and names the feature and the Linux version that brings it.

use std::{process::Command, time::Duration};

use crate::daemon::Daemon;
use anyhow::{Context, Result, ensure};

/// What the daemon must probe, whatever the mode.
const FEATURES: &[&str] = &[
    "BTF",
    "tracefs",
    "syscall tracepoints",
    "BPF ring buffer",
    "raw tracepoints",
    "bpf_get_current_ancestor_cgroup_id",
    "bpf_probe_read_user_str",
    "cgroup v2",
    "cgroup.kill",
];

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn status_lists_every_kernel_feature_as_present() -> Result<()> {
    let d = Daemon::start_with("features", &["--watch"])?;
    let out = d.slim(&["--json", "status"])?;
    ensure!(out.status.success(), "slim status failed: {out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let features = status["features"]
        .as_array()
        .context("no features in status")?;
    let mut want: Vec<&str> = FEATURES.to_vec();
    // Watch mode tags new cgroups at cgroup_mkdir.
    want.push("cgroup:cgroup_mkdir tracepoint");
    for name in &want {
        let f = features
            .iter()
            .find(|f| f["name"] == *name)
            .with_context(|| format!("{name} not probed: {features:?}"))?;
        ensure!(
            f["presence"] == "present" && f["required"] == true,
            "{name} on Linux {}: {f}",
            status["kernel"]
        );
        ensure!(f["since"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
    }
    ensure!(
        features.len() == want.len(),
        "unexpected features: {features:?}"
    );
    let text = d.slim(&["status"])?;
    let text = String::from_utf8_lossy(&text.stdout);
    ensure!(
        text.contains("feature    BPF ring buffer")
            && text.contains("(Linux >= 5.8)")
            && text.contains("feature    cgroup.kill")
            && !text.contains("MISSING"),
        "slim status does not list the features: {text}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn daemon_refuses_a_kernel_without_btf_and_names_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let slimd = crate::daemon::bin("slimd");
    // An empty tmpfs over /sys/kernel/btf, seen only by this daemon.
    let script = format!(
        "mount -t tmpfs none /sys/kernel/btf && exec {} serve --socket {} --state-dir {} --cgroup-root slimd-e2e-nobtf",
        slimd.display(),
        dir.path().join("sock").display(),
        dir.path().join("state").display()
    );
    let out = crate::run_with_timeout(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
        Duration::from_secs(60),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "slimd started without BTF: {stderr}");
    ensure!(
        stderr.contains("lacks what slimd needs: BTF (Linux >= 5.4;")
            && stderr.contains("CONFIG_DEBUG_INFO_BTF"),
        "unclear refusal: {stderr}"
    );
    ensure!(!stderr.contains("panicked"), "{stderr}");
    ensure!(
        !dir.path().join("sock").exists() && !dir.path().join("state").exists(),
        "the refused daemon left its socket or state directory"
    );
    for v2 in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let left = std::path::Path::new(v2).join("slimd-e2e-nobtf");
        ensure!(!left.exists(), "the refused daemon left {}", left.display());
    }
    Ok(())
}
