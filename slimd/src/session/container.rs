//! The app's containers, as a session runs them: the spec (the image's
//! config with the user's overrides, the session's labels and cgroup), the
//! start, the published ports, readiness, the stop and the output.

use std::time::{Duration, Instant};

use super::ctx::Ctx;
use super::error::{Result, SessionError};
use crate::{
    engine::{ContainerSpec, ImageInfo},
    model::SessionRequest,
    probe::{self, Endpoint, ListenFeed, PortReady},
};

/// Ports to publish: the image's EXPOSE plus `--expose`.
pub(crate) fn ports_of(info: &ImageInfo, req: &SessionRequest) -> Vec<String> {
    let mut ports: Vec<String> = info
        .config
        .exposed_ports
        .iter()
        .chain(req.run.expose.iter())
        .filter_map(|p| crate::engine::normalize_port(p).ok())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// The container of `image_id` as the request says to run it.
pub(crate) fn spec(
    ctx: &Ctx<'_>,
    image_id: &str,
    ports: &[String],
    cgroup_parent: Option<String>,
    role: &str,
) -> ContainerSpec {
    let run = &ctx.req.run;
    let place = &ctx.placement;
    let mut labels = place.labels.clone();
    labels.extend(ctx.labels(role));
    ContainerSpec {
        image: image_id.to_string(),
        name: Some(format!("slimd-{}-{role}", ctx.handle.id)),
        labels,
        entrypoint: run.entrypoint.clone(),
        cmd: run.cmd.clone(),
        env: run.env.clone(),
        workdir: run.workdir.clone(),
        user: run.user.clone(),
        mounts: run.mounts.iter().chain(&place.mounts).cloned().collect(),
        cgroup_parent,
        publish: ports.to_vec(),
        network_mode: place.networks.first().cloned().or(run.network.clone()),
        network_aliases: place.aliases.clone(),
        healthcheck: place.healthcheck.clone(),
        stop_timeout: place.stop_timeout,
        stop_signal: place.stop_signal.clone(),
        ..Default::default()
    }
}

/// Creates and starts a container; it is removed when the session ends.
/// A container that goes into the session cgroup needs an engine that takes
/// it as a path (the cgroupfs driver): otherwise nothing is created and the
/// error says how to switch the engine over.
pub(crate) async fn create_and_start(ctx: &Ctx<'_>, spec: &ContainerSpec) -> Result<String> {
    if spec.cgroup_parent.is_some() {
        ctx.engine.check_cgroup_parent()?;
    }
    let id = ctx.engine.create_container(spec).await?;
    ctx.res.containers.lock().unwrap().push(id.clone());
    for net in ctx.placement.networks.iter().skip(1) {
        ctx.engine
            .connect_network(net, &id, &ctx.placement.aliases)
            .await?;
    }
    ctx.engine
        .start(&id)
        .await
        .map_err(|source| SessionError::ContainerStart { source })?;
    Ok(id)
}

/// The published host port of every port, once the engine publishes them.
pub(crate) async fn endpoints(
    ctx: &Ctx<'_>,
    container: &str,
    ports: &[String],
) -> Result<Vec<Endpoint>> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = ctx.engine.inspect_container(container).await?;
        let eps = Endpoint::published(&c, ports);
        if eps.len() == ports.len() {
            return Ok(eps);
        }
        if !c.state.running {
            let logs = ctx
                .engine
                .logs(container, 1 << 16)
                .await
                .unwrap_or_default();
            return Err(SessionError::ExitedBeforePublish {
                code: c.state.exit_code.unwrap_or(-1),
                stderr: String::from_utf8_lossy(&logs.stderr).into_owned(),
            });
        }
        if Instant::now() > deadline {
            return Err(SessionError::PortsNotPublished(ports.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the app listens on every endpoint's container port (see
/// [`probe::wait_listening`]).
pub(crate) async fn wait_ready(
    ctx: &Ctx<'_>,
    container: &str,
    endpoints: &[Endpoint],
    feed: &mut ListenFeed,
    deadline: Instant,
) -> Result<Vec<PortReady>> {
    let ports: Vec<u16> = endpoints.iter().map(|e| e.container_port).collect();
    probe::wait_listening(&ctx.engine, container, &ports, feed, deadline)
        .await
        .map_err(|source| SessionError::NotReady { source })
}

/// How a container was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It had exited already.
    Exited,
    /// It handled its stop signal and exited (or was killed after the grace).
    Gracefully,
    /// Its PID 1 has no handler for the stop signal, which the kernel then
    /// drops: killed at once instead of waiting out a grace period.
    KilledAtOnce,
}

/// Stops the app with the image's stop signal; when PID 1 does not catch it
/// (see [`crate::host::signals`]), kills it at once.
pub(crate) async fn stop(ctx: &Ctx<'_>, container: &str, info: &ImageInfo) -> Stopped {
    let signal = info
        .config
        .stop_signal
        .clone()
        .unwrap_or_else(|| "SIGTERM".into());
    let state = match ctx.engine.inspect_container(container).await {
        Ok(c) => c.state,
        Err(e) => {
            tracing::warn!("inspecting {container}: {e}");
            return Stopped::Exited;
        }
    };
    if !state.running {
        return Stopped::Exited;
    }
    let caught = state
        .pid
        .filter(|p| *p > 0)
        .ok_or_else(|| "no pid".to_string())
        .and_then(|pid| {
            let n = crate::host::signal_number(&signal).map_err(|e| e.to_string())?;
            crate::host::catches_signal(pid as u32, n).map_err(|e| e.to_string())
        });
    let how = match caught {
        Ok(false) => Stopped::KilledAtOnce,
        Ok(true) => Stopped::Gracefully,
        Err(why) => {
            tracing::debug!("cannot tell whether {container} handles {signal}: {why}");
            Stopped::Gracefully
        }
    };
    let sent = if how == Stopped::KilledAtOnce {
        "SIGKILL"
    } else {
        signal.as_str()
    };
    if let Err(e) = ctx
        .engine
        .stop(container, Some(sent), Duration::from_secs(10))
        .await
    {
        tracing::warn!("stopping {container}: {e}");
    }
    how
}

/// A container's stdout and stderr so far, as text (1 MiB each at most).
pub(crate) async fn output(ctx: &Ctx<'_>, container: &str) -> String {
    match ctx.engine.logs(container, 1 << 20).await {
        Ok(l) => {
            let mut s = String::from_utf8_lossy(&l.stdout).into_owned();
            s.push('\n');
            s.push_str(&String::from_utf8_lossy(&l.stderr));
            s
        }
        Err(e) => {
            tracing::warn!("reading the output of {container}: {e}");
            String::new()
        }
    }
}
