//! Starting a Docker engine when none answers (fresh machines and CI have
//! docker.io installed but no dockerd running).

use std::{
    fs::OpenOptions,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const LOG: &str = "/var/log/slimd-test-dockerd.log";

fn answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes sure `/var/run/docker.sock` answers, starting `dockerd` if not.
pub fn ensure_engine() -> Result<()> {
    if answers() {
        return Ok(());
    }
    println!("docker: no engine answers; starting dockerd (log: {LOG})");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG)
        .with_context(|| format!("open {LOG}"))?;
    let mut cmd = Command::new("dockerd");
    cmd.stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        // Its own session: it outlives this command, like a service would,
        // so it keeps nothing of ours: not the checkout as its working
        // directory (a clone may be removed), not our descriptors (a lock
        // a caller holds, e.g. `flock LOCK cargo xtask test`, would stay
        // held for dockerd's life).
        .process_group(0)
        .current_dir("/");
    // SAFETY: close_range(2) is async-signal-safe and takes no pointers.
    unsafe {
        cmd.pre_exec(|| {
            unsafe extern "C" {
                fn close_range(first: u32, last: u32, flags: i32) -> i32;
            }
            close_range(3, u32::MAX, 0);
            Ok(())
        });
    }
    cmd.spawn()
        .context("cannot start dockerd (is docker.io installed? `cargo xtask setup`)")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if answers() {
            println!("docker: engine up");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("dockerd did not answer within 60 s; see {LOG}")
}
