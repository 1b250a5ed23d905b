//! The `slimd` subcommands.

use std::{
    io::Write,
    os::fd::AsFd,
    process::{ExitCode, Stdio},
};

use anyhow::Context;
use clap::Args;

use crate::tracer::{Tracer, TracerOptions};

/// Flags of `slimd serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Name of slimd's directory under the cgroup2 root.
    #[arg(long, default_value = "slimd", global = true)]
    pub cgroup_root: String,
}

/// Flags of `slimd trace`.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Arguments for `docker run` (image and command included).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub docker_args: Vec<String>,
}

/// Runs the daemon.
pub async fn serve(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the daemon is not implemented yet")
}

/// `slimd trace -- <docker run args>`: events as JSON lines on stdout; the
/// container's own output goes to stderr so stdout stays parseable.
pub async fn trace(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let serve = ServeArgs {
        cgroup_root: "slimd".into(),
    };
    let tracer = Tracer::load(TracerOptions::default())?;
    let name = format!("trace-{}", crate::session::new_session_id());
    let mut session = tracer.start_session(&serve.cgroup_root, &name)?;
    let mut events = session.take_events().expect("fresh session");
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("dup stderr")?;
    let child = tokio::process::Command::new("docker")
        .arg("run")
        .arg("--rm")
        .arg("--cgroup-parent")
        .arg(&session.cgroup.parent)
        .arg("--label")
        .arg(format!("slimd.session={name}"))
        .args(&args.docker_args)
        .stdout(Stdio::from(stderr))
        .stdin(Stdio::null())
        .spawn();
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
            "slimd trace: WARNING: {} events were LOST (ring buffer full); the trace is incomplete",
            s.lost
        );
    }
    let status = status.context("waiting for `docker run`")?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
