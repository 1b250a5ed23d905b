//! The `slimd` subcommands: `serve` (the daemon) and `trace` (debugging).

use std::{
    io::Write,
    os::fd::AsFd,
    path::PathBuf,
    process::{ExitCode, Stdio},
};

use anyhow::Context;
use clap::Args;

use crate::{
    api::{server, types::DEFAULT_SOCKET},
    session::{Daemon, DaemonConfig},
    tracer::{
        Tracer, TracerOptions,
        features::{Features, ProbeOptions},
    },
};

/// Flags of `slimd serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// API socket (ignored under systemd socket activation).
    #[arg(long, env = "SLIMD_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Reports and scratch space.
    #[arg(long, default_value = "/var/lib/slimd", global = true)]
    pub state_dir: PathBuf,
    /// Name of slimd's directory under the cgroup2 root (and the label that
    /// tells this daemon's containers apart).
    #[arg(long, default_value = "slimd", global = true)]
    pub cgroup_root: String,
    /// Docker engine socket (default: DOCKER_HOST or /var/run/docker.sock).
    #[arg(long, global = true)]
    pub docker_socket: Option<PathBuf>,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, global = true)]
    pub ring_buffer_mb: u32,
    /// Watch mode: also profile containers others start that carry the
    /// watch label (traced from their first instruction).
    #[arg(long, global = true)]
    pub watch: bool,
    /// The label (or pod annotation) that asks for a profile.
    #[arg(long, default_value = crate::session::watcher::DEFAULT_LABEL, value_name = "KEY=VALUE", global = true)]
    pub watch_label: String,
    /// cgroup2 path prefixes of the runtime's containers (repeatable;
    /// default: Docker's cgroupfs and systemd layouts).
    #[arg(long, value_name = "PREFIX", global = true)]
    pub watch_prefix: Vec<String>,
}

impl ServeArgs {
    fn tracer_options(&self) -> anyhow::Result<TracerOptions> {
        let mb = self.ring_buffer_mb;
        if mb == 0 || !mb.is_power_of_two() || mb > 1024 {
            anyhow::bail!("--ring-buffer-mb must be a power of two between 1 and 1024");
        }
        let watch_prefixes = if !self.watch {
            Vec::new()
        } else if self.watch_prefix.is_empty() {
            crate::session::watcher::DEFAULT_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.watch_prefix.clone()
        };
        Ok(TracerOptions {
            ring_bytes: mb * 1024 * 1024,
            watch_prefixes,
            ..TracerOptions::default()
        })
    }
}

/// Flags of `slimd trace`.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Run ARGS as a command on the host, moved into the session cgroup
    /// before it execs (no container engine needed).
    #[arg(long)]
    pub host: bool,
    /// Arguments for `docker run` (image and command included), or with
    /// `--host` the command to run.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub docker_args: Vec<String>,
}

/// Runs the daemon until SIGTERM or SIGINT, then cancels running sessions,
/// removes their leftovers and exits.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig {
        state_dir: args.state_dir.clone(),
        cgroup_root: args.cgroup_root.clone(),
        engine_socket: args.docker_socket.clone(),
        tracer: args.tracer_options()?,
        watch_label: args.watch.then(|| args.watch_label.clone()),
    };
    let daemon = Daemon::start(config).await?;
    let (listener, created) = server::listen(&args.socket).await?;
    tracing::info!(socket = %args.socket.display(), "slimd serving");
    let d = daemon.clone();
    let shutdown = async move {
        wait_for_signal().await;
        tracing::info!("shutting down: cancelling running sessions");
        d.shutdown().await;
    };
    server::serve(listener, daemon, shutdown)
        .await
        .context("serving the API")?;
    if let Some(path) = created {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("slimd stopped");
    Ok(ExitCode::SUCCESS)
}

/// Spawns a host command that joins the session cgroup between fork and
/// exec, so its very first instruction is traced.
fn host_command(
    argv: &[String],
    cgroup: &std::path::Path,
    stdout: std::os::fd::OwnedFd,
) -> std::io::Result<tokio::process::Child> {
    use std::os::unix::ffi::OsStrExt;
    let procs = std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(std::io::Error::other)?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdout(Stdio::from(stdout))
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (open, write, close) on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process itself.
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// `slimd trace -- <docker run args>`: events as JSON lines on stdout; the
/// container's own output goes to stderr so stdout stays parseable.
pub async fn trace(serve: ServeArgs, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let options = serve.tracer_options()?;
    Features::probe(&ProbeOptions {
        cgroup_root: serve.cgroup_root.clone(),
        watch: !options.watch_prefixes.is_empty(),
    })
    .check()?;
    let tracer = Tracer::load(options)?;
    let name = format!("trace-{}", crate::session::new_session_id());
    let mut session = tracer.start_session(&serve.cgroup_root, &name)?;
    let mut events = session.take_events().expect("fresh session");
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("dup stderr")?;
    eprintln!(
        "slimd trace: cgroup2 at {} ({:?}), session cgroup {} (id {})",
        tracer.cgroups().v2_mount.display(),
        tracer.cgroups().mode,
        session.cgroup.path.display(),
        session.cgroup.id
    );
    let child = if args.host {
        host_command(&args.docker_args, &session.cgroup.path, stderr)
    } else {
        tokio::process::Command::new("docker")
            .arg("run")
            .arg("--rm")
            .arg("--cgroup-parent")
            .arg(&session.cgroup.parent)
            .arg("--label")
            .arg(format!("{}={name}", crate::session::LABEL_SESSION))
            .arg("--label")
            .arg(format!(
                "{}={}",
                crate::session::LABEL_INSTANCE,
                serve.cgroup_root
            ))
            .args(&args.docker_args)
            .stdout(Stdio::from(stderr))
            .stdin(Stdio::null())
            .spawn()
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            drop(session.finish().await);
            let _ = session.remove_cgroup();
            return Err(e).context("starting `docker run`");
        }
    };
    let mut out = std::io::stdout().lock();
    // Printing can fail (a closed pipe): stop printing, but still stop the
    // container and clean up below.
    let mut print_ok = true;
    let mut print = |ev: &crate::tracer::TraceEvent| {
        if print_ok {
            print_ok = serde_json::to_writer(&mut out, ev).is_ok() && out.write_all(b"\n").is_ok();
        }
    };
    let status = loop {
        tokio::select! {
            Some(ev) = events.recv() => print(&ev),
            st = child.wait() => break st,
            _ = tokio::signal::ctrl_c() => {
                let _ = child.kill().await;
                break child.wait().await;
            }
        }
    };
    let summary = session.finish().await;
    while let Ok(ev) = events.try_recv() {
        print(&ev);
    }
    let _ = out.flush();
    if let Err(e) = session.remove_cgroup() {
        tracing::warn!("{e}");
    }
    let s = summary.stats;
    eprintln!(
        "slimd trace: {} records, {} repeats dropped in the kernel, {} lost, {} syscalls seen",
        s.records,
        s.deduped,
        s.lost,
        summary.syscalls.len()
    );
    if s.lost > 0 {
        eprintln!(
            "slimd trace: WARNING: {} events were LOST (ring buffer full, or unreadable: see the log above); the trace is incomplete",
            s.lost
        );
    }
    let status = status.context("waiting for `docker run`")?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
