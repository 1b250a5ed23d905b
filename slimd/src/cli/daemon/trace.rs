//! `slimd trace`: one container (or host command) in a fresh tagged cgroup,
//! its events printed as JSON lines until it exits. A debugging aid that
//! needs no daemon.

use std::{io::Write, os::fd::AsFd, process::ExitCode, process::Stdio};

use anyhow::Context;

use super::{ServeArgs, TraceArgs};
use crate::tracer::{
    Tracer,
    features::{Features, ProbeOptions},
};

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
