//! Rootful Podman for the end-to-end tests, started the way dockerd is: when
//! nothing answers on Podman's socket, `podman system service` is started in
//! the background on it and waited for. Fixture images are built with Docker
//! (the recipes are the build suite's) and carried into Podman's store as a
//! `docker save` archive, never through a registry.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{CACHE_DIR, checked, docker_answers, docker_timeout, wait_for};

/// Where rootful Podman's API service listens (slimd's default for
/// `--engine podman`).
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Runs `podman ARGS...` (the local CLI on the same rootful store the
/// service uses, with the service's containers.conf) and returns its
/// trimmed stdout.
pub fn podman<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("podman");
    cmd.args(args).env("CONTAINERS_CONF", containers_conf()?);
    checked(&mut cmd, Duration::from_secs(600))
}

/// The `podman` binary, or the command that installs it.
fn require_podman() -> Result<()> {
    match Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("podman is not installed: run `cargo xtask setup` (Debian's podman 4.3)"),
    }
}

/// The containers.conf the service runs with. Rootful Podman raises each
/// container's RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 and 4194304, which
/// needs CAP_SYS_RESOURCE; this machine's bounding set lacks it (the same
/// reason `docker run --privileged` fails here), so runc's setrlimit fails
/// with EPERM. The defaults are set to this process's hard limits instead
/// (NPROC at most 32768: the service ran with that hard limit here).
fn containers_conf() -> Result<std::path::PathBuf> {
    fn hard(resource: i32) -> u64 {
        #[repr(C)]
        struct Rlimit {
            cur: u64,
            max: u64,
        }
        unsafe extern "C" {
            fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        }
        let mut r = Rlimit { cur: 0, max: 0 };
        // SAFETY: getrlimit writes one struct rlimit (two u64 on x86_64 Linux).
        if unsafe { getrlimit(resource, &mut r) } == 0 {
            r.max
        } else {
            1024
        }
    }
    const RLIMIT_NPROC: i32 = 6;
    const RLIMIT_NOFILE: i32 = 7;
    let nofile = hard(RLIMIT_NOFILE).min(1 << 20);
    let nproc = hard(RLIMIT_NPROC).min(32768);
    fs::create_dir_all(CACHE_DIR)?;
    let path = Path::new(CACHE_DIR).join("podman-containers.conf");
    fs::write(
        &path,
        format!(
            "# Written by the slimd tests (tests/src/podman.rs).\n[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n"
        ),
    )?;
    Ok(path)
}

/// Makes sure rootful Podman's API answers on [`PODMAN_SOCKET`]: if nothing
/// does, starts `podman system service --time=0` on it (log:
/// `/var/log/slimd-tests-podman.log`) and waits up to 60 s. It runs with
/// the cgroupfs manager, the only one on a host without systemd as PID 1.
pub fn ensure_podman() -> Result<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let socket = Path::new(PODMAN_SOCKET);
    if docker_answers(socket) {
        return Ok(());
    }
    require_podman()?;
    let log_path = Path::new("/var/log/slimd-tests-podman.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    if !wait_for(|| docker_answers(socket), Duration::from_secs(2)) {
        let conf = containers_conf()?;
        if let Some(dir) = socket.parent() {
            fs::create_dir_all(dir)?;
        }
        crate::spawn_service(
            Command::new("podman")
                .args(["--cgroup-manager=cgroupfs", "system", "service", "--time=0"])
                .arg(format!("unix://{PODMAN_SOCKET}"))
                .env("CONTAINERS_CONF", &conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0),
        )
        .context("cannot start `podman system service`")?;
    }
    if !wait_for(|| docker_answers(socket), Duration::from_secs(60)) {
        bail!(
            "podman system service did not answer on {PODMAN_SOCKET} within 60s; see {}",
            log_path.display()
        );
    }
    Ok(())
}

/// Carries the Docker image `tag` into Podman's store (a `docker save`
/// archive through `podman load`) unless Podman has it with the same id
/// already. Returns the image id.
pub fn load_into_podman(tag: &str) -> Result<String> {
    ensure_podman()?;
    let id = docker_timeout(
        ["image", "inspect", "--format", "{{.Id}}", tag],
        Duration::from_secs(60),
    )?;
    let bare = id.trim_start_matches("sha256:").to_string();
    let have = podman(["image", "inspect", "--format", "{{.Id}}", tag]).unwrap_or_default();
    if have.trim_start_matches("sha256:") == bare {
        return Ok(bare);
    }
    let dir = tempfile::tempdir()?;
    let tar = dir.path().join("image.tar");
    let tar_s = tar.to_string_lossy().into_owned();
    docker_timeout(["save", "-o", &tar_s, tag], Duration::from_secs(600))?;
    podman(["load", "-i", &tar_s])?;
    let loaded = podman(["image", "inspect", "--format", "{{.Id}}", tag])?;
    if loaded.trim_start_matches("sha256:") != bare {
        bail!("podman load of {tag} gave image {loaded}, Docker has {bare}");
    }
    Ok(bare)
}

/// The size of an image in Podman's store, in bytes.
pub fn podman_image_size(tag: &str) -> Result<u64> {
    let s = podman(["image", "inspect", "--format", "{{.Size}}", tag])?;
    s.parse().with_context(|| format!("image size {s:?}"))
}
