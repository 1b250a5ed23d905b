//! `slimd serve`: the daemon. Starts the [`Daemon`], serves the API on its
//! socket, and on SIGTERM or SIGINT shuts the daemon down (every session
//! cancelled and joined, leftovers swept) before the socket goes.

use std::process::ExitCode;

use anyhow::Context;

use super::ServeArgs;
use crate::{
    api::server,
    session::{Daemon, DaemonConfig},
};

/// Runs the daemon until SIGTERM or SIGINT, then shuts it down (see
/// [`Daemon::shutdown`]) and exits.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig {
        state_dir: args.state_dir.clone(),
        cgroup_root: args.cgroup_root.clone(),
        engine: args.engine,
        engine_socket: args.engine_socket.clone(),
        containerd_namespace: args.containerd_namespace.clone(),
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

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
