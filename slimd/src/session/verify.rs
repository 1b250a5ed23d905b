//! The verify phase: runs the slim image the way the original ran (traced,
//! so readiness and the ports it listens on come from its own `listen()`
//! calls), replays the original's probes, and compares everything verify
//! can see: probe results, the ports listened on, whether a server is still
//! running after its probes, and error lines new in its output.
//!
//! The comparisons themselves are pure functions in [`crate::probe::verify`];
//! this module gathers their inputs and concludes with a
//! [`VerifyResult`] whose outcome is passed, failed or unverified.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::container;
use super::ctx::Ctx;
use super::error::Result;
use crate::{
    engine::ImageInfo,
    probe::{self, Mismatch, ProbePlan, ProbeReport, RunRecord},
    report::{ListeningCheck, VerifyResult},
};

/// What the original run showed, for verify to compare against.
#[derive(Debug, Default)]
pub(crate) struct Original {
    /// Published container ports (`8080/tcp`).
    pub ports: Vec<String>,
    pub plan: ProbePlan,
    pub probe: Option<ProbeReport>,
    /// A one-shot container's own run.
    pub run: Option<RunRecord>,
    /// A server's container was (`Some(true)`) still running after its probes.
    pub alive_after_probes: Option<bool>,
    /// TCP ports the app listened on.
    pub listening: BTreeSet<u16>,
    /// Its stdout and stderr (`None`: not seen, e.g. built from a profile).
    pub output: Option<String>,
}

/// The app counts as settled after this long without a traced syscall...
pub(crate) const SETTLE_QUIET: Duration = Duration::from_millis(300);
/// ...or this long after its probes, whichever comes first.
pub(crate) const SETTLE_MAX: Duration = Duration::from_secs(3);

/// Takes a comparison's findings into the result (mismatches are kept typed
/// until the end).
fn absorb(result: &mut VerifyResult, mismatches: &mut Vec<Mismatch>, c: probe::Comparison) {
    mismatches.extend(c.mismatches);
    result
        .problems
        .extend(c.problems.iter().map(ToString::to_string));
    result.compared.extend(c.agreed);
}

/// Waits until the app listens on every port of `want`, the event stream
/// ends, or `deadline`.
async fn wait_for_ports(feed: &mut probe::ListenFeed, want: &BTreeSet<u16>, deadline: Instant) {
    loop {
        let have: BTreeSet<u16> = feed.borrow_and_update().iter().map(|a| a.port()).collect();
        if want.is_subset(&have) {
            return;
        }
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(deadline.into()) => return,
        }
    }
}

/// Runs the slim image once (`role`: `verify`, or `verify-seccomp` with a
/// seccomp profile in `security_opts`) and compares it with `original`.
pub(crate) async fn verify_slim(
    ctx: &mut Ctx<'_>,
    slim: &ImageInfo,
    original: &Original,
    security_opts: Vec<String>,
    role: &str,
) -> Result<VerifyResult> {
    match start_slim(ctx, slim, original, security_opts, role).await? {
        Ok(run) => check_slim(ctx, run, original, true).await,
        Err(not_ready) => Ok(not_ready),
    }
}

/// The slim image's container, traced and ready, before its checks.
pub(crate) struct SlimRun {
    pub container: String,
    pub endpoints: Vec<crate::probe::Endpoint>,
    init_pid: Option<u32>,
    trace: std::sync::Arc<crate::tracer::TraceSession>,
    collector: super::collect::Collector,
    feed: probe::ListenFeed,
}

/// Starts the slim image as the original ran, traced, and waits until it
/// listens on the original's ports; a start that fails is a failed verify
/// (`Err` holds that result).
pub(crate) async fn start_slim(
    ctx: &mut Ctx<'_>,
    slim: &ImageInfo,
    original: &Original,
    security_opts: Vec<String>,
    role: &str,
) -> Result<std::result::Result<SlimRun, VerifyResult>> {
    let (trace, collector) = ctx.trace(&format!("{}-{role}", ctx.handle.id), false)?;
    let mut spec = container::spec(
        ctx,
        &slim.id,
        &original.ports,
        Some(trace.cgroup.parent.clone()),
        role,
    );
    spec.security_opts = security_opts;
    let mut result = VerifyResult::default();
    let mut feed = collector.feed();
    let checked = async {
        let container = container::create_and_start(ctx, &spec)
            .await
            .map_err(|e| format!("it does not start: {e}"))?;
        let endpoints = container::endpoints(ctx, &container, &original.ports)
            .await
            .map_err(|e| e.to_string())?;
        if !endpoints.is_empty() {
            let deadline = Instant::now() + Duration::from_secs(ctx.req.probes.ready_timeout_secs);
            container::wait_ready(ctx, &container, &endpoints, &mut feed, deadline)
                .await
                .map_err(|e| e.to_string())?;
        }
        let init_pid = ctx
            .engine
            .inspect_container(&container)
            .await
            .ok()
            .and_then(|c| c.state.pid)
            .filter(|p| *p > 0)
            .map(|p| p as u32);
        Ok::<_, String>((container, endpoints, init_pid))
    }
    .await;
    match checked {
        Ok((container, endpoints, init_pid)) => Ok(Ok(SlimRun {
            container,
            endpoints,
            init_pid,
            trace,
            collector,
            feed,
        })),
        Err(why) => {
            result
                .mismatches
                .push(Mismatch::NotReady { why }.to_string());
            let _ = trace.finish().await;
            let _ = collector.finish().await;
            result.conclude();
            Ok(Err(result))
        }
    }
}

/// Replays the original's probes on a started slim image and compares
/// everything verify can see; kills the container at the end when `kill`
/// (a stack's others still need it running).
pub(crate) async fn check_slim(
    ctx: &mut Ctx<'_>,
    run: SlimRun,
    original: &Original,
    kill: bool,
) -> Result<VerifyResult> {
    let SlimRun {
        container,
        endpoints,
        init_pid,
        trace,
        collector,
        mut feed,
    } = run;
    let mut result = VerifyResult::default();
    let mut mismatches: Vec<Mismatch> = Vec::new();
    if let Some(orig) = &original.probe {
        let replay = original.plan.replay_of(orig, endpoints);
        let deadline = Instant::now() + Duration::from_secs(ctx.req.probes.probe_timeout_secs);
        let slim_report = probe::run_probes(
            &ctx.engine,
            &container,
            &replay,
            &super::host_commands::ClientHost::of(ctx.handle),
            deadline,
        )
        .await;
        absorb(
            &mut result,
            &mut mismatches,
            probe::compare(orig, &slim_report),
        );
        result.probe = Some(slim_report);
    }
    if let Some(orig_run) = &original.run {
        let deadline = Instant::now() + Duration::from_secs(ctx.req.probes.run_timeout_secs);
        let run = probe::record_oneshot_run(&ctx.engine, &container, deadline).await?;
        absorb(
            &mut result,
            &mut mismatches,
            probe::compare_runs(orig_run, &run),
        );
        result.run = Some(run);
    }
    // What the last requests set off (a lazy import, an exit right after
    // answering) happens before the checks below.
    collector
        .settle(|| trace.flush(), SETTLE_QUIET, SETTLE_MAX)
        .await;
    if original.alive_after_probes == Some(true) {
        let died = init_pid.is_some_and(|p| collector.exited(p))
            || !ctx
                .engine
                .inspect_container(&container)
                .await?
                .state
                .running;
        if died {
            // The kernel saw it exit; the engine records the code shortly.
            let code = ctx
                .engine
                .wait_exit(&container, Instant::now() + Duration::from_secs(5))
                .await?;
            let logs = ctx
                .engine
                .logs(&container, 1 << 16)
                .await
                .unwrap_or_default();
            let err = &logs.stderr[logs.stderr.len().saturating_sub(1000)..];
            mismatches.push(Mismatch::Died {
                exit_code: code,
                stderr_tail: String::from_utf8_lossy(err).into_owned(),
            });
        } else {
            // Listeners the app opens beside its published ports may come
            // after readiness: give them until the ready deadline.
            let deadline =
                Instant::now() + Duration::from_secs(ctx.req.probes.ready_timeout_secs.min(10));
            wait_for_ports(&mut feed, &original.listening, deadline).await;
        }
    }
    let slim_ports: BTreeSet<u16> = feed.borrow().iter().map(|a| a.port()).collect();
    if !original.listening.is_empty() || !slim_ports.is_empty() {
        mismatches.extend(probe::compare_listening(&original.listening, &slim_ports));
        result.listening = Some(ListeningCheck {
            original: original.listening.iter().copied().collect(),
            slim: slim_ports.into_iter().collect(),
        });
    }
    if let Some(original_output) = &original.output {
        let output = container::output(ctx, &container).await;
        let lines = probe::new_error_lines(original_output, &output);
        if !lines.is_empty() {
            mismatches.push(Mismatch::NewErrorLines { lines });
        }
    }
    // The verify container needs no graceful stop.
    if kill
        && let Err(e) = ctx.engine.kill(&container, "SIGKILL").await
        && !matches!(e, crate::engine::EngineError::ContainerNotRunning(_))
    {
        tracing::warn!("killing {container}: {e}");
    }
    let _ = trace.finish().await;
    let _ = collector.finish().await;
    result
        .mismatches
        .extend(mismatches.iter().map(ToString::to_string));
    result.conclude();
    Ok(result)
}
