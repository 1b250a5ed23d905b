//! `slimd::harden` seccomp profiles against the real engine: Docker 20.10
//! (runc, libseccomp) must accept them, run what they allow and refuse what
//! they leave out with EPERM.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::{RUN_LABEL, TestImage, run_with_timeout};
use anyhow::Result;
use slimd::harden::{Arch, SeccompProfile, seccomp_profile};

/// Every syscall of the host except `except`.
fn all_but(except: &[&str]) -> BTreeSet<u32> {
    Arch::HOST
        .syscalls()
        .iter()
        .filter(|(_, name)| !except.contains(name))
        .map(|&(nr, _)| nr)
        .collect()
}

/// `docker run --rm` under `profile`; `args` go before the image name,
/// `cmd` after it.
fn run_under(
    profile: &SeccompProfile,
    dir: &Path,
    args: &[&str],
    image: TestImage,
    cmd: &[&str],
) -> Result<Output> {
    let file = dir.join("seccomp.json");
    std::fs::write(&file, profile.to_json())?;
    let out = run_with_timeout(
        Command::new("docker")
            .args(["run", "--rm", "--label", &format!("{RUN_LABEL}=harden")])
            .arg("--security-opt")
            .arg(format!("seccomp={}", file.display()))
            .args(args)
            .arg(image.tag())
            .args(cmd),
        Duration::from_secs(120),
    )?;
    Ok(out)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn engine_accepts_profiles_and_refuses_what_they_leave_out() -> Result<()> {
    TestImage::CliOneshot.ensure()?;
    TestImage::ShellEntrypoint.ensure()?;
    let dir = tempfile::tempdir()?;

    // Everything observed: the CLI does its job.
    let all = seccomp_profile(&all_but(&[]));
    let out = run_under(&all, dir.path(), &[], TestImage::CliOneshot, &[])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        TestImage::CliOneshot.expected_stdout().unwrap()
    );

    // mkdir never observed: busybox mkdir is refused with EPERM.
    let mkdir = ["--entrypoint", "/bin/mkdir"];
    let no_mkdir = seccomp_profile(&all_but(&["mkdir", "mkdirat"]));
    assert!(!no_mkdir.allows("mkdir") && !no_mkdir.allows("mkdirat"));
    let out = run_under(
        &no_mkdir,
        dir.path(),
        &mkdir,
        TestImage::ShellEntrypoint,
        &["/tmp/made"],
    )?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out)
    );
    // ... and allowed when observed.
    let out = run_under(
        &all,
        dir.path(),
        &mkdir,
        TestImage::ShellEntrypoint,
        &["/tmp/made"],
    )?;
    assert!(out.status.success(), "{}", text(&out));

    // The runtime's set-up calls are left out even when observed: mount is
    // refused although the container has CAP_SYS_ADMIN, and works with the
    // same profile plus mount (the control).
    assert!(!all.allows("mount"));
    let mount = ["--cap-add", "SYS_ADMIN", "--entrypoint", "/bin/busybox"];
    let mount_cmd = ["mount", "-t", "tmpfs", "none", "/tmp"];
    let out = run_under(
        &all,
        dir.path(),
        &mount,
        TestImage::ShellEntrypoint,
        &mount_cmd,
    )?;
    assert!(
        !out.status.success(),
        "mount must be refused: {}",
        text(&out)
    );
    let mut with_mount = all.clone();
    with_mount.syscalls[0].names.push("mount".into());
    let out = run_under(
        &with_mount,
        dir.path(),
        &mount,
        TestImage::ShellEntrypoint,
        &mount_cmd,
    )?;
    assert!(out.status.success(), "control: {}", text(&out));
    Ok(())
}

/// The runtime set alone must carry runc from loading the filter to the
/// app: a profile with only what a dynamic C CLI itself calls, plus that
/// set, runs the CLI as root, as another user and with no-new-privileges
/// (where runc loads the filter later).
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn runtime_set_carries_runc_to_the_app() -> Result<()> {
    TestImage::CliOneshot.ensure()?;
    let dir = tempfile::tempdir()?;
    // What wordstat (glibc, dynamically linked) calls, from its loader to
    // exit_group, runc left out.
    let app: BTreeSet<u32> = [
        "access",
        "arch_prctl",
        "brk",
        "close",
        "execve",
        "exit_group",
        "fstat",
        "futex",
        "getdents64",
        "getrandom",
        "ioctl",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "newfstatat",
        "openat",
        "pread64",
        "prlimit64",
        "read",
        "readlink",
        "rseq",
        "set_robust_list",
        "set_tid_address",
        "write",
    ]
    .iter()
    .filter_map(|n| Arch::HOST.syscall_number(n))
    .collect();
    let profile = seccomp_profile(&app);
    for args in [
        &[][..],
        &["-u", "65534:65534"][..],
        &["--security-opt", "no-new-privileges"][..],
    ] {
        let out = run_under(&profile, dir.path(), args, TestImage::CliOneshot, &[])?;
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            TestImage::CliOneshot.expected_stdout().unwrap(),
            "{args:?}"
        );
    }
    Ok(())
}
