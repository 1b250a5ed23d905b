//! One session, phase by phase: inspect, start, probe, collect, assemble,
//! load, verify, report. Each phase is one function over the state the
//! earlier ones left ([`Inspected`], [`Started`], [`Original`]). Whatever
//! happens — success, failure, cancellation — the session's containers,
//! cgroups and scratch directory are removed at the end, and a report is
//! written.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Daemon, SessionHandle,
    analyse::{Analysis, Seen},
    collect::Collector,
    container::{self, Stopped},
    ctx::{Ctx, Resources},
    error::{Result, SessionError},
    unix_now,
    verify::{Original, verify_slim},
    write_json,
};
use crate::{
    engine::{EngineError, ImageInfo},
    image::{ImageWriter, WriteOptions},
    model::{ApiError, Phase, Progress, SessionKind, SessionRequest},
    probe::{
        self, CommandProbe, Endpoint, HttpCheck, HttpProbeConfig, ProbePlan,
        options::{ApiSpecSource, ContinueAfter},
    },
    report::{PhaseTiming, VerifyOutcome, VerifyResult},
    tracer::TraceSession,
};

/// Runs a session to its end; never panics the daemon, always cleans up.
pub(super) async fn run(daemon: Arc<Daemon>, handle: Arc<SessionHandle>, req: SessionRequest) {
    let dir = daemon.session_dir(&handle.id);
    let scratch = daemon.scratch_dir(&handle.id);
    let res = Resources::default();
    let mut report = crate::report::Report {
        id: handle.id.clone(),
        kind: req.kind,
        image: req.image.clone(),
        started: unix_now(),
        unverified_accepted: req.verify == Some(false),
        ..Default::default()
    };
    let prepared = super::prepare_session_dir(&dir)
        .and_then(|()| std::fs::create_dir_all(&scratch))
        .and_then(|()| write_json(&dir.join("request.json"), &req))
        .and_then(|()| write_json(&dir.join("session.json"), &handle.info()));
    let outcome = match prepared {
        Err(source) => Err(SessionError::Prepare {
            path: dir.clone(),
            source,
        }),
        Ok(()) => match daemon.engine().await {
            Err(e) => Err(SessionError::Engine(e)),
            Ok(engine) => {
                let mut ctx = Ctx {
                    daemon: &daemon,
                    handle: &handle,
                    req: &req,
                    res: &res,
                    engine,
                    scratch: scratch.clone(),
                    report: std::mem::take(&mut report),
                    phase_start: None,
                    placement: Default::default(),
                };
                let r = tokio::select! {
                    r = flow(&mut ctx) => r,
                    _ = handle.cancel.cancelled() => Err(SessionError::Cancelled),
                };
                report = ctx.report;
                if let Some((phase, t)) = ctx.phase_start {
                    report.phases.push(PhaseTiming {
                        phase,
                        ms: t.elapsed().as_millis() as u64,
                    });
                }
                r
            }
        },
    };

    cleanup(&daemon, &res, &scratch).await;
    finish(&handle, &req, &dir, report, outcome);
}

/// Writes a finished session's report and state, and sends its last
/// progress line (`Done` or `Failed`).
pub(crate) fn finish(
    handle: &SessionHandle,
    req: &SessionRequest,
    dir: &Path,
    mut report: crate::report::Report,
    outcome: Result<()>,
) {
    report.finished = unix_now();
    let report_path = dir.join("report.json");
    let mut info = handle.info();
    info.finished = Some(report.finished);
    info.target = report.target.clone();
    match &outcome {
        Ok(()) => {
            let unverified = req.kind == SessionKind::Build
                && report
                    .verify
                    .as_ref()
                    .is_none_or(|v| v.outcome == VerifyOutcome::Unverified);
            report.state = if unverified {
                "unverified".into()
            } else {
                "succeeded".into()
            };
            info.state = report.state.clone();
        }
        Err(e) => {
            report.state = if matches!(e, SessionError::Cancelled) {
                "cancelled".into()
            } else {
                "failed".into()
            };
            report.failure = Some(ApiError {
                kind: e.kind(),
                message: e.to_string(),
            });
            info.state = report.state.clone();
            info.message = Some(crate::image::name::shown(&e.to_string()).into_owned());
        }
    }
    report.show_names();
    if let Err(e) = write_json(&report_path, &report) {
        tracing::error!("cannot write {}: {e}", report_path.display());
    }
    let _ = write_json(&dir.join("session.json"), &info);
    handle.set_info(info);
    let last = match outcome {
        Ok(()) => {
            tracing::info!(state = %report.state, "session finished");
            Progress::Done {
                summary: report.summary(&report_path.display().to_string()),
            }
        }
        Err(e) => {
            tracing::warn!(kind = ?e.kind(), "session failed: {e}");
            Progress::Failed {
                kind: e.kind(),
                message: e.to_string(),
            }
        }
    };
    super::hand_over(dir, handle.owner, &last);
    handle.emit(last);
}

/// Removes the session's containers, untags and removes its cgroups, and
/// deletes its scratch directory.
pub(crate) async fn cleanup(daemon: &Daemon, res: &Resources, scratch: &Path) {
    let containers: Vec<String> = std::mem::take(&mut *res.containers.lock().unwrap());
    if let Ok(engine) = daemon.engine().await {
        for c in containers {
            if let Err(e) = engine.remove(&c, true).await
                && !e.is_not_found()
            {
                tracing::warn!("removing container {c}: {e}");
            }
        }
    }
    let traces: Vec<Arc<TraceSession>> = std::mem::take(&mut *res.traces.lock().unwrap());
    for t in traces {
        let _ = t.finish().await;
        if let Err(e) = t.remove_cgroup() {
            tracing::warn!("{e}");
        }
    }
    if scratch.exists()
        && let Err(e) = std::fs::remove_dir_all(scratch)
    {
        tracing::warn!("removing {}: {e}", scratch.display());
    }
}

/// The default target tag: `<repo>.slim:<tag>`, as DockerSlim users expect.
pub fn default_target(image: &str) -> String {
    let (name, tag) = split_reference(image);
    format!("{name}.slim:{tag}")
}

/// `repo[:tag][@digest]` -> (repo, tag); the tag defaults to `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    // A ':' after the last '/' separates the tag (a registry port comes before).
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// What the inspect phase found.
pub(crate) struct Inspected {
    pub info: ImageInfo,
    pub target: Option<String>,
    /// Published container ports (`8080/tcp`).
    pub ports: Vec<String>,
    pub continue_after: ContinueAfter,
}

/// The app's container, traced from its first instruction and ready.
pub(crate) struct Started {
    pub container: String,
    pub endpoints: Vec<Endpoint>,
    trace: Arc<TraceSession>,
    collector: Collector,
}

/// The phases of a build or profile.
async fn flow(ctx: &mut Ctx<'_>) -> Result<()> {
    if let Some(id) = ctx.req.from_profile.clone() {
        return flow_from_profile(ctx, &id).await;
    }
    let inspected = inspect(ctx).await?;
    let started = start(ctx, &inspected).await?;
    let mut original = probe_app(ctx, &inspected, &started).await?;
    let (events, syscalls) = collect(ctx, &inspected, started, &mut original).await?;
    ctx.begin(Phase::Assemble);
    let analysis = super::analyse::analyse(
        &ctx.engine,
        &ctx.daemon.session_dir(&ctx.handle.id),
        &ctx.scratch.join("image"),
        &ctx.req.image,
        &inspected.info.id,
        Seen::Events(events),
        &syscalls,
        &ctx.req.keep,
        ctx.req.run.workdir.clone(),
        &mut ctx.report,
    )
    .await?;
    finish_build(
        ctx,
        &inspected.info,
        inspected.target,
        analysis,
        Ok(original),
    )
    .await
}

/// Inspects the image and checks the target tag before any work.
async fn inspect_and_target(
    ctx: &mut Ctx<'_>,
    image_ref: &str,
) -> Result<(ImageInfo, Option<String>)> {
    let req = ctx.req;
    let info = ctx.engine.inspect_image(image_ref).await?;
    ctx.report.image = image_ref.to_string();
    ctx.report.image_id = info.id.clone();
    let target = if req.kind == SessionKind::Build {
        let t = req.tag.clone().unwrap_or_else(|| default_target(image_ref));
        if info.repo_tags.contains(&t) || t == image_ref {
            return Err(SessionError::TargetIsOriginal(t));
        }
        // An OCI archive takes no tag in the engine (the tag only names
        // the image inside it).
        if req.oci_output.is_none() {
            may_take_tag(ctx, &t, SessionError::TagExists).await?;
        }
        Some(t)
    } else {
        None
    };
    ctx.report.target = target.clone();
    Ok((info, target))
}

/// Whether this session may write the image tag `tag`: free, or taken and
/// `--force` given (`taken` names the error otherwise). Root may replace any
/// image; anyone else only one that a session of their own built, so that
/// the socket's group cannot swap an image that others run.
async fn may_take_tag(ctx: &Ctx<'_>, tag: &str, taken: fn(String) -> SessionError) -> Result<()> {
    let existing = match ctx.engine.inspect_image(tag).await {
        Ok(info) => info,
        Err(EngineError::ImageNotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !ctx.req.force {
        return Err(taken(tag.to_string()));
    }
    let owner = ctx.handle.owner;
    if owner != 0 && !ctx.daemon.built_by(owner, &existing.id) {
        return Err(SessionError::NotYourTag(tag.to_string()));
    }
    Ok(())
}

/// Phase inspect: the image, its ports, when to stop watching it.
pub(crate) async fn inspect(ctx: &mut Ctx<'_>) -> Result<Inspected> {
    ctx.begin(Phase::Inspect);
    let req = ctx.req;
    let (info, target) = inspect_and_target(ctx, &req.image).await?;
    let ports = container::ports_of(&info, req);
    let continue_after = req
        .probes
        .continue_after
        .clone()
        .unwrap_or(if ports.is_empty() {
            ContinueAfter::Exit
        } else {
            ContinueAfter::Probes
        });
    ctx.done(Some(format!(
        "{} ({}), ports: {}",
        req.image,
        crate::report::bytes(info.size),
        if ports.is_empty() {
            "none".into()
        } else {
            ports.join(", ")
        }
    )));
    Ok(Inspected {
        info,
        target,
        ports,
        continue_after,
    })
}

/// Phase start: tag a fresh cgroup, start the container in it, and wait
/// until the app listens on its ports.
pub(crate) async fn start(ctx: &mut Ctx<'_>, ins: &Inspected) -> Result<Started> {
    ctx.begin(Phase::Start);
    let (trace, collector) = ctx.trace(&ctx.handle.id.clone(), true)?;
    let spec = container::spec(
        ctx,
        &ins.info.id,
        &ins.ports,
        Some(trace.cgroup.parent.clone()),
        "trace",
    );
    let container = container::create_and_start(ctx, &spec).await?;
    let endpoints = container::endpoints(ctx, &container, &ins.ports).await?;
    let mut ready = Vec::new();
    if !endpoints.is_empty() {
        let deadline = Instant::now() + Duration::from_secs(ctx.req.probes.ready_timeout_secs);
        let mut feed = collector.feed();
        ready = container::wait_ready(ctx, &container, &endpoints, &mut feed, deadline).await?;
        for r in ready.iter().filter(|r| r.bound.ip().is_loopback()) {
            ctx.warn(format!(
                "the app listens on {} only: connections through the published port cannot reach it (make it listen on 0.0.0.0)",
                r.bound
            ));
        }
    }
    let detail = if ready.is_empty() {
        format!("container {}", short_id(&container))
    } else {
        format!(
            "container {}, listening on {}",
            short_id(&container),
            ready
                .iter()
                .zip(&endpoints)
                .map(|(r, e)| format!("{} (host port {})", r.bound, e.host_port))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    ctx.done(Some(detail));
    Ok(Started {
        container,
        endpoints,
        trace,
        collector,
    })
}

fn short_id(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Phase probe: HTTP on the ports that speak it, exec probes, host
/// commands; or, for a one-shot image, its own run.
pub(crate) async fn probe_app(
    ctx: &mut Ctx<'_>,
    ins: &Inspected,
    st: &Started,
) -> Result<Original> {
    ctx.begin(Phase::Probe);
    let req = ctx.req;
    let mut plan = probe_plan(req, st.endpoints.clone())?;
    if plan.http.as_ref().is_some_and(|h| h.root) {
        for ep in &st.endpoints {
            if let HttpCheck::NotHttp { why } = probe::speaks_http(ep, Duration::from_secs(5)).await
            {
                ctx.note(format!(
                    "port {} does not speak HTTP ({why}): not crawled; exec probes and host commands go on",
                    ep.container_port
                ));
                plan.not_http.push(ep.container_port);
            }
        }
    }
    let crawled = plan.http.as_ref().is_some_and(|h| h.root)
        && st
            .endpoints
            .iter()
            .any(|e| !plan.not_http.contains(&e.container_port));
    let exercised = crawled
        || plan.http.as_ref().is_some_and(|h| !h.api_specs.is_empty())
        || !plan.http_requests.is_empty()
        || !plan.exec.is_empty()
        || !plan.host_commands.is_empty();
    if !st.endpoints.is_empty() && !exercised {
        ctx.warn(
            "nothing exercised the app: no port answered HTTP (or --http-probe=false) and there is no --exec-probe, --probe-cmd or --http-probe-file; only its start-up was traced, so the slim image may lack what its requests need".into(),
        );
    }
    let probe_deadline = Instant::now() + Duration::from_secs(req.probes.probe_timeout_secs);
    let probe_report =
        if st.endpoints.is_empty() && plan.exec.is_empty() && plan.host_commands.is_empty() {
            None
        } else {
            Some(
                probe::run_probes(
                    &ctx.engine,
                    &st.container,
                    &plan,
                    &super::host_commands::ClientHost::of(ctx.handle),
                    probe_deadline,
                )
                .await,
            )
        };
    let run_deadline = Instant::now() + Duration::from_secs(req.probes.run_timeout_secs);
    let oneshot_run = match &ins.continue_after {
        ContinueAfter::Probes => None,
        ContinueAfter::Exit => {
            let run = probe::record_oneshot_run(&ctx.engine, &st.container, run_deadline).await?;
            if run.timed_out {
                ctx.warn(format!(
                    "the container did not exit within {} s; stopping it",
                    req.probes.run_timeout_secs
                ));
            }
            Some(run)
        }
        ContinueAfter::Timeout(n) => {
            let _ = ctx
                .engine
                .wait_exit(&st.container, Instant::now() + Duration::from_secs(*n))
                .await?;
            None
        }
        ContinueAfter::Signal => {
            ctx.note(
                "waiting for the continue signal (press Enter in slim, or send it SIGUSR1)".into(),
            );
            tokio::select! {
                _ = ctx.handle.continue_signal.notified() => {}
                r = ctx.engine.wait_exit(&st.container, run_deadline) => { r?; }
            }
            None
        }
    };
    if let Some(run) = &oneshot_run
        && let Some(code) = run.exit_code
        && code != 0
        && st.endpoints.is_empty()
    {
        return Err(SessionError::AppFailed {
            code,
            engine_error: run.error.clone(),
            stderr: run.stderr.text.clone(),
        });
    }
    // A server should still run once its probes are done.
    let alive_after_probes = if !st.endpoints.is_empty()
        && ins.continue_after == ContinueAfter::Probes
    {
        let running = ctx
            .engine
            .inspect_container(&st.container)
            .await?
            .state
            .running;
        if !running {
            ctx.warn(
                "the container exited during its probes: verify cannot check that the slim image keeps running".into(),
            );
        }
        Some(running)
    } else {
        None
    };
    let detail = match (&probe_report, &oneshot_run) {
        (Some(p), _) => {
            for f in p.failures() {
                ctx.warn(format!("probe: {f}"));
            }
            if !p.http.is_empty() && p.http.iter().all(|h| h.status.is_none()) {
                return Err(SessionError::NoHttpAnswer {
                    tried: p.http.len(),
                    ports: ins.ports.join(", "),
                });
            }
            format!(
                "{} HTTP requests, {} exec probes, {} host commands",
                p.http.len(),
                p.exec.len(),
                p.host_commands.len()
            )
        }
        (None, Some(run)) => format!(
            "one-shot run: exit code {}",
            run.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none (timeout)".into())
        ),
        (None, None) => "no probes".into(),
    };
    ctx.report.probe = probe_report.clone();
    ctx.report.run = oneshot_run.clone();
    ctx.done(Some(detail));
    Ok(Original {
        ports: ins.ports.clone(),
        plan,
        probe: probe_report,
        run: oneshot_run,
        alive_after_probes,
        ..Default::default()
    })
}

/// Phase collect: stop the app, take its output and the rest of its events.
pub(crate) async fn collect(
    ctx: &mut Ctx<'_>,
    ins: &Inspected,
    st: Started,
    original: &mut Original,
) -> Result<(
    Vec<crate::tracer::TraceEvent>,
    std::collections::BTreeSet<u32>,
)> {
    ctx.begin(Phase::Collect);
    let stopped = container::stop(ctx, &st.container, &ins.info).await;
    original.output = Some(container::output(ctx, &st.container).await);
    let summary = st.trace.finish().await;
    let collected = st.collector.finish().await?;
    original.listening = collected.listen.ports();
    ctx.report.trace = Some(summary.stats);
    ctx.report.syscalls = summary.syscalls.iter().map(|n| format!("{n}")).collect();
    if summary.stats.lost > 0 {
        ctx.warn(format!(
            "{} trace events were LOST (ring buffer full, or unreadable: see the daemon log): the slim image may miss files; rerun with a larger ring buffer (slimd --ring-buffer-mb)",
            summary.stats.lost
        ));
    }
    let stop_note = match stopped {
        Stopped::KilledAtOnce => {
            "; its PID 1 has no handler for the stop signal, so it was killed at once"
        }
        Stopped::Exited | Stopped::Gracefully => "",
    };
    ctx.done(Some(format!(
        "{} events ({} repeats dropped in the kernel, {} lost){stop_note}",
        collected.events.len(),
        summary.stats.deduped,
        summary.stats.lost
    )));
    Ok((collected.events, summary.syscalls))
}

/// `slim build --from-profile ID`: the observations of an earlier session
/// (typically a watch-mode profile) instead of a new run.
async fn flow_from_profile(ctx: &mut Ctx<'_>, profile_id: &str) -> Result<()> {
    let req = ctx.req;
    ctx.begin(Phase::Inspect);
    if !super::valid_id(profile_id) {
        return Err(SessionError::BadSessionId(profile_id.to_string()));
    }
    let profile = super::analyse::load_profile(&ctx.daemon.session_dir(profile_id))?;
    let image_ref = if req.image.is_empty() {
        profile.image.clone()
    } else {
        req.image.clone()
    };
    let (info, target) = inspect_and_target(ctx, &image_ref).await?;
    if info.id != profile.image_id {
        ctx.warn(format!(
            "{image_ref} is now {} but session {profile_id} profiled {}: building from the image as it is now",
            info.id, profile.image_id
        ));
    }
    ctx.done(Some(format!(
        "{image_ref}, observations of session {profile_id}"
    )));
    for p in [Phase::Start, Phase::Probe, Phase::Collect] {
        ctx.skip(
            p,
            &format!("using the observations of session {profile_id}"),
        );
    }
    ctx.begin(Phase::Assemble);
    let analysis = super::analyse::analyse(
        &ctx.engine,
        &ctx.daemon.session_dir(&ctx.handle.id),
        &ctx.scratch.join("image"),
        &image_ref,
        &info.id,
        Seen::Saved(profile.observations),
        &profile.syscalls,
        &req.keep,
        req.run.workdir.clone().or(profile.workdir),
        &mut ctx.report,
    )
    .await?;
    let unverified = format!(
        "built from the observations of session {profile_id}: there are no probe results to compare (run `slim build IMAGE` with probes to verify)"
    );
    finish_build(ctx, &info, target, analysis, Err(unverified)).await
}

/// Writes, loads and verifies the slim image (the end of every build; a
/// profile ends after the analysis). `original` is what the original run
/// showed, or why there is nothing to verify against.
async fn finish_build(
    ctx: &mut Ctx<'_>,
    info: &ImageInfo,
    target: Option<String>,
    analysis: Analysis,
    original: std::result::Result<Original, String>,
) -> Result<()> {
    match write_and_load(ctx, info, target, analysis).await? {
        Some(l) => verify(ctx, &l.target, &l.slim_info, &original, &l.hardening).await,
        None => Ok(()),
    }
}

/// A slim image written and loaded.
pub(crate) struct Loaded {
    pub target: String,
    pub slim_info: ImageInfo,
    pub hardening: super::artifacts::Hardening,
}

/// Phases assemble (its end) and load: writes the slim image and loads it
/// (`None` for a profile, which ends after the analysis).
pub(crate) async fn write_and_load(
    ctx: &mut Ctx<'_>,
    info: &ImageInfo,
    target: Option<String>,
    analysis: Analysis,
) -> Result<Option<Loaded>> {
    let Analysis {
        image,
        keep,
        hardening,
    } = analysis;
    for p in &hardening.problems {
        ctx.warn(p.clone());
    }
    let Some(target) = target else {
        ctx.done(Some(format!(
            "{} paths used; profiles: {}",
            keep.len(),
            ctx.report
                .artifacts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
        ctx.skip(Phase::Load, "profile: no image is built");
        ctx.skip(Phase::Verify, "profile: no image is built");
        return Ok(None);
    };
    let archive = ctx.scratch.join("slim.tar");
    let selection = {
        let image = image.clone();
        let selection = keep.selection();
        tokio::task::spawn_blocking(move || with_package_db(&image, selection)).await?
    };
    if let Some(path) = ctx.req.oci_output.clone() {
        write_oci_output(ctx, info, &target, &image, &selection, &path).await?;
        return Ok(None);
    }
    let written = {
        let image = image.clone();
        let selection = selection.clone();
        let archive = archive.clone();
        let scratch = ctx.scratch.clone();
        let opts = slim_write_options(ctx, info, &target);
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&archive).map_err(SessionError::WriteIo)?;
            let out = std::io::BufWriter::with_capacity(1 << 20, file);
            ImageWriter::new(&image, &selection, &opts)
                .write_docker_archive(out, &scratch)
                .map_err(SessionError::Write)
        })
        .await??
    };
    let sbom_input = (image, selection);
    ctx.done(Some(format!(
        "{} entries, {} in one layer",
        written.entry_count,
        crate::report::bytes(written.layer_size)
    )));

    // --- load ---
    ctx.begin(Phase::Load);
    may_take_tag(ctx, &target, SessionError::TagAppeared).await?;
    ctx.engine.load_image_file(&archive).await?;
    let slim_info = ctx.engine.inspect_image(&target).await?;
    ctx.report.target_id = Some(slim_info.id.clone());
    record_sizes(ctx, info.size, slim_info.size);
    let _ = std::fs::remove_file(&archive);
    write_sboms(ctx, &target, &slim_info.id, sbom_input).await;
    ctx.done(Some(format!(
        "{target} ({})",
        crate::report::bytes(slim_info.size)
    )));
    Ok(Some(Loaded {
        target,
        slim_info,
        hardening,
    }))
}

/// The report's original and slim sizes, and the reduction between them.
fn record_sizes(ctx: &mut Ctx<'_>, original: u64, slim: u64) {
    if let Some(sizes) = ctx.report.sizes.as_mut() {
        sizes.original_bytes = original;
        sizes.slim_bytes = slim;
        sizes.reduction_percent = if original > 0 {
            100.0 * (1.0 - slim as f64 / original as f64)
        } else {
            0.0
        };
    }
}

/// How a build writes its slim image: named `target`, saying which session
/// made it from which image.
fn slim_write_options(ctx: &Ctx<'_>, info: &ImageInfo, target: &str) -> WriteOptions {
    let mut opts = WriteOptions {
        tag: Some(target.to_string()),
        created_by: format!(
            "slimd build {} (session {})",
            ctx.report.image, ctx.handle.id
        ),
        ..Default::default()
    };
    opts.labels
        .insert("dev.slimd.source-image".into(), info.id.clone());
    opts
}

/// `--output oci:PATH`: the slim image as an OCI layout archive at `path`,
/// loaded nowhere (so there is nothing to verify: said so).
async fn write_oci_output(
    ctx: &mut Ctx<'_>,
    info: &ImageInfo,
    target: &str,
    image: &std::sync::Arc<crate::image::Image>,
    selection: &crate::image::Selection,
    path: &Path,
) -> Result<()> {
    let layout = ctx.scratch.join("oci");
    let opts = slim_write_options(ctx, info, target);
    let (written, size) = {
        let (image, selection) = (image.clone(), selection.clone());
        let (layout, path) = (layout.clone(), path.to_path_buf());
        let (owner, force) = (ctx.handle.owner, ctx.req.force);
        tokio::task::spawn_blocking(move || {
            let written = ImageWriter::new(&image, &selection, &opts)
                .write_oci_dir(&layout)
                .map_err(SessionError::Write)?;
            let size = super::oci_output::archive(&layout, &path, owner, force)
                .map_err(SessionError::WriteIo)?;
            let _ = std::fs::remove_dir_all(&layout);
            Ok::<_, SessionError>((written, size))
        })
        .await??
    };
    let shown = format!("{}{}", super::oci_output::SCHEME, path.display());
    ctx.report.target = Some(shown.clone());
    ctx.report.target_id = Some(written.image_id.clone());
    record_sizes(ctx, info.size, written.layer_size);
    ctx.done(Some(format!(
        "{} entries, {} in one layer",
        written.entry_count,
        crate::report::bytes(written.layer_size)
    )));
    ctx.skip(
        Phase::Load,
        &format!(
            "written to {shown} ({}), into no image store",
            crate::report::bytes(size)
        ),
    );
    let why = format!("written to {shown} and loaded nowhere, so it was not run");
    ctx.report.verify = Some(VerifyResult::unverified(why.clone()));
    ctx.skip(Phase::Verify, &format!("UNVERIFIED: {why}"));
    ctx.warn(format!(
        "the slim image in {shown} is UNVERIFIED: {why}; nothing proves it does the job"
    ));
    Ok(())
}

/// The selection plus the original's package databases trimmed to what it
/// keeps (see [`crate::inventory::trim`]): scanners then report what the
/// slim image really holds.
fn with_package_db(
    image: &crate::image::Image,
    mut selection: crate::image::Selection,
) -> crate::image::Selection {
    let db = {
        let kept = |p: &str| selection.contains(p);
        crate::inventory::trim::trim(&image.fs, &kept)
    };
    for p in &db.keep {
        selection.insert(p);
    }
    for f in db.files {
        let mut e = crate::image::SyntheticEntry::file(&f.path, f.content, f.mode);
        if let Some(orig) = image.fs.get(&f.path) {
            (e.uid, e.gid, e.mtime) = (orig.uid, orig.gid, orig.mtime);
        }
        selection.add_synthetic(e);
    }
    selection
}

/// Writes the slim image's SBOMs (SPDX and CycloneDX) next to the report:
/// the original's packages that still have files in it, with kept/total
/// counts. A failure is a warning: the image is built either way.
async fn write_sboms(
    ctx: &mut Ctx<'_>,
    target: &str,
    slim_id: &str,
    (image, selection): (std::sync::Arc<crate::image::Image>, crate::image::Selection),
) {
    use crate::sbom::{Sbom, SbomFormat};
    let dir = ctx.daemon.session_dir(&ctx.handle.id);
    // Named like the run's other artifacts (after the original).
    let name = super::artifacts::artifact_name(&ctx.report.image);
    let (target_s, slim_id_s, original) = (
        target.to_string(),
        slim_id.to_string(),
        ctx.report.image.clone(),
    );
    let vuln_db = ctx.req.vuln_db.clone();
    let written = tokio::task::spawn_blocking(move || {
        let inv = crate::inventory::Inventory::read(&image.fs);
        let kept = |p: &str| selection.contains(p);
        let sbom = Sbom::of_slim(&target_s, &slim_id_s, &original, &image.fs, &inv, &kept);
        let vuln = vuln_db.map(|db| {
            let db = crate::vuln::osv::Database::open(&db).map_err(|e| e.to_string())?;
            // The slim image's inventory: what its trimmed databases list.
            let slim_inv = crate::inventory::Inventory {
                packages: sbom
                    .packages
                    .iter()
                    .map(|p| crate::inventory::InventoryPackage {
                        files: p.files.iter().map(|f| f.path.clone()).collect(),
                        ..p.package.clone()
                    })
                    .collect(),
                distro: inv.distro.clone(),
            };
            Ok::<_, String>(crate::vuln::VulnReport::delta(&inv, &slim_inv, &db))
        });
        let mut files = Vec::new();
        for f in [SbomFormat::SpdxJson, SbomFormat::CycloneDxJson] {
            let file = format!("{name}-{}", f.suffix());
            let path = dir.join(&file);
            let text = serde_json::to_vec_pretty(&sbom.render(f)).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((file, path.display().to_string()));
        }
        Ok::<_, String>((files, inv.packages.len(), sbom.package_count(), vuln))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match written {
        Ok((files, before, after, vuln)) => {
            ctx.report.artifacts.extend(files);
            ctx.report.packages = Some(crate::report::PackageCounts {
                original: before,
                slim: after,
            });
            match vuln {
                Some(Ok(v)) => ctx.report.vuln = Some(v),
                Some(Err(e)) => ctx.warn(format!("--vuln-db: {e}")),
                None => {}
            }
        }
        Err(e) => ctx.warn(format!("SBOMs not written: {e}")),
    }
}

/// Phase verify: plain, then (if asked) under the generated seccomp profile.
async fn verify(
    ctx: &mut Ctx<'_>,
    target: &str,
    slim_info: &ImageInfo,
    original: &std::result::Result<Original, String>,
    hardening: &super::artifacts::Hardening,
) -> Result<()> {
    let req = ctx.req;
    if req.verify == Some(false) {
        ctx.report.verify = Some(VerifyResult::unverified("turned off with --verify=false"));
        ctx.skip(
            Phase::Verify,
            "turned off with --verify=false: nothing checks that the slim image works",
        );
        return Ok(());
    }
    let original = match original {
        Ok(o) => o,
        Err(why) => {
            ctx.report.verify = Some(VerifyResult::unverified(why.clone()));
            ctx.skip(Phase::Verify, &format!("UNVERIFIED: {why}"));
            ctx.warn(format!(
                "the slim image {target} is UNVERIFIED: {why}; nothing proves it does the job"
            ));
            return Ok(());
        }
    };
    ctx.begin(Phase::Verify);
    let mut runs = vec![(Vec::new(), "", "verify")];
    if req.verify_seccomp {
        let Some(profile) = hardening.seccomp_json.as_deref() else {
            return Err(SessionError::NoSeccompProfile);
        };
        runs.push((
            vec![format!("seccomp={profile}")],
            " under the generated seccomp profile",
            "verify-seccomp",
        ));
    }
    for (security_opts, under, role) in runs {
        let result = verify_slim(ctx, slim_info, original, security_opts, role).await?;
        let outcome = result.outcome;
        let mismatches = result.mismatches.clone();
        if role == "verify" {
            ctx.report.verify = Some(result);
        } else {
            ctx.report.verify_seccomp = Some(result);
        }
        if outcome == VerifyOutcome::Failed {
            ctx.done(Some(format!("FAILED{under}")));
            return Err(SessionError::Verify {
                target: target.to_string(),
                under,
                mismatches,
            });
        }
    }
    let v = ctx.report.verify.clone().unwrap_or_default();
    if v.outcome == VerifyOutcome::Unverified {
        let why = v.unverified.unwrap_or_default();
        ctx.done(Some(format!("UNVERIFIED: {why}")));
        ctx.warn(format!(
            "the slim image {target} is UNVERIFIED: {why}; nothing proves it does the job"
        ));
        return Ok(());
    }
    ctx.done(Some(format!(
        "same results as the original ({} probe result{}){}",
        v.compared.len(),
        if v.compared.len() == 1 { "" } else { "s" },
        if req.verify_seccomp {
            ", also under the generated seccomp profile"
        } else {
            ""
        }
    )));
    Ok(())
}

/// The probes a request asks for, against `endpoints`.
fn probe_plan(req: &SessionRequest, endpoints: Vec<Endpoint>) -> Result<ProbePlan> {
    let probe_flag = |flag: String| move |source| SessionError::ProbeFlag { flag, source };
    let mut plan = ProbePlan {
        endpoints: endpoints.clone(),
        http: (req.probes.http_probe && !endpoints.is_empty()).then(HttpProbeConfig::default),
        command_timeout: Duration::from_secs(req.probes.command_timeout_secs),
        ..Default::default()
    };
    let mut api_specs = Vec::new();
    for s in &req.probes.http_probe_apispec {
        api_specs.push(match s {
            ApiSpecSource::Path(p) if p.starts_with('/') => probe::SpecSource::Path(p.clone()),
            ApiSpecSource::Path(p) => {
                return Err(SessionError::ApiSpecInvalid(format!(
                    "{p:?}: a path on the app must start with /"
                )));
            }
            ApiSpecSource::File { name, contents } => {
                probe::openapi::ApiDoc::parse(contents.as_bytes())
                    .map_err(|e| SessionError::ApiSpecInvalid(format!("{name}: {e}")))?;
                probe::SpecSource::Document {
                    name: name.clone(),
                    text: contents.clone(),
                }
            }
        });
    }
    if let Some(cfg) = plan.http.as_mut() {
        cfg.api_specs = api_specs.clone();
    } else if !api_specs.is_empty() && !endpoints.is_empty() {
        // The named documents' operations without the crawl.
        plan.http = Some(HttpProbeConfig {
            root: false,
            crawl: false,
            forms: false,
            api_discovery: false,
            api_specs,
            ..Default::default()
        });
    }
    if let Some(text) = &req.probes.http_probe_file {
        let file = probe::ProbeFile::parse(text).map_err(SessionError::ProbeFileInvalid)?;
        plan.http_requests = file
            .resolve(&endpoints)
            .map_err(probe_flag("--http-probe-file".into()))?;
        if plan.http.is_none() {
            // Probe-file requests without the crawl.
            plan.http = Some(HttpProbeConfig {
                root: false,
                crawl: false,
                forms: false,
                api_discovery: false,
                ..Default::default()
            });
        }
    }
    for c in &req.probes.exec_probes {
        let cmd =
            probe::split_command_line(c).map_err(probe_flag(format!("--exec-probe {c:?}")))?;
        plan.exec.push(CommandProbe {
            cmd,
            ignore_output: false,
        });
    }
    for c in &req.probes.probe_cmds {
        plan.host_commands.push(CommandProbe {
            cmd: c.clone(),
            ignore_output: false,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_targets() {
        assert_eq!(default_target("myapp:latest"), "myapp.slim:latest");
        assert_eq!(default_target("myapp"), "myapp.slim:latest");
        assert_eq!(
            default_target("reg:5000/team/app:1.2"),
            "reg:5000/team/app.slim:1.2"
        );
        assert_eq!(
            default_target("reg:5000/team/app"),
            "reg:5000/team/app.slim:latest"
        );
        assert_eq!(default_target("app@sha256:abc"), "app.slim:latest");
    }
}
