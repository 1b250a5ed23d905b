//! One session, phase by phase: inspect, start, probe, collect, assemble,
//! load, verify, report. Whatever happens — success, failure, cancellation —
//! the session's containers, cgroup and scratch directory are removed at the
//! end, and a report is written.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{Daemon, LABEL_INSTANCE, LABEL_SESSION, SessionHandle, unix_now, write_json};
use crate::{
    api::types::{
        ApiError, ApiSpecSource, ContinueAfter, FailureKind, Phase, Progress, SessionKind,
        SessionRequest,
    },
    engine::{ContainerSpec, Engine, EngineError, ImageInfo},
    image::{ImageWriter, WriteOptions},
    probe::{
        self, CommandProbe, Endpoint, HttpProbeConfig, ProbeError, ProbePlan, ProbeReport,
        RunRecord,
    },
    report::{PhaseTiming, Report, VerifyResult},
    tracer::{TraceEvent, TraceSession},
};

/// Why a session stopped early.
#[derive(Debug)]
pub struct SessionError {
    pub kind: FailureKind,
    pub message: String,
}

impl SessionError {
    pub(super) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Internal, message)
    }
    fn app(message: impl Into<String>) -> Self {
        Self::new(FailureKind::App, message)
    }
}

impl From<EngineError> for SessionError {
    fn from(e: EngineError) -> Self {
        let kind = match e {
            EngineError::ImageNotFound(_) => FailureKind::ImageNotFound,
            _ => FailureKind::Internal,
        };
        Self::new(kind, e.to_string())
    }
}

type Result<T> = std::result::Result<T, SessionError>;

/// What must be removed when the session ends, however it ends.
#[derive(Default)]
struct Resources {
    containers: Mutex<Vec<String>>,
    trace: Mutex<Option<Arc<TraceSession>>>,
}

/// Everything the phases share.
struct Ctx<'a> {
    daemon: &'a Arc<Daemon>,
    handle: &'a SessionHandle,
    req: &'a SessionRequest,
    res: &'a Resources,
    engine: Engine,
    scratch: PathBuf,
    report: Report,
    phase_start: Option<(Phase, Instant)>,
}

impl Ctx<'_> {
    fn begin(&mut self, phase: Phase) {
        self.handle.emit(Progress::PhaseStarted { phase });
        self.phase_start = Some((phase, Instant::now()));
    }

    fn done(&mut self, detail: Option<String>) {
        if let Some((phase, t)) = self.phase_start.take() {
            let ms = t.elapsed().as_millis() as u64;
            self.report.phases.push(PhaseTiming { phase, ms });
            self.handle.emit(Progress::PhaseDone { phase, ms, detail });
        }
    }

    fn skip(&mut self, phase: Phase, why: &str) {
        self.handle.emit(Progress::PhaseSkipped {
            phase,
            why: why.into(),
        });
    }

    fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        self.handle.emit(Progress::Warning {
            message: message.clone(),
        });
        self.report.warnings.push(message);
    }

    fn note(&self, message: String) {
        self.handle.emit(Progress::Note { message });
    }

    fn labels(&self, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_SESSION.to_string(), self.handle.id.clone()),
            (
                LABEL_INSTANCE.to_string(),
                self.daemon.config.cgroup_root.clone(),
            ),
            ("slimd.role".to_string(), role.to_string()),
        ])
    }
}

/// Runs a session to its end; never panics the daemon, always cleans up.
pub(super) async fn run(daemon: Arc<Daemon>, handle: Arc<SessionHandle>, req: SessionRequest) {
    let dir = daemon.session_dir(&handle.id);
    let scratch = daemon.scratch_dir(&handle.id);
    let res = Resources::default();
    let mut report = Report {
        id: handle.id.clone(),
        kind: req.kind,
        image: req.image.clone(),
        started: unix_now(),
        ..Default::default()
    };
    let prepared = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::create_dir_all(&scratch))
        .and_then(|()| write_json(&dir.join("request.json"), &req))
        .and_then(|()| write_json(&dir.join("session.json"), &handle.info()));
    let outcome = match prepared {
        Err(e) => Err(SessionError::internal(format!(
            "cannot prepare {}: {e}",
            dir.display()
        ))),
        Ok(()) => match daemon.engine().await {
            Err(e) => Err(SessionError::internal(e.to_string())),
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
                };
                let r = tokio::select! {
                    r = flow(&mut ctx) => r,
                    _ = handle.cancel.cancelled() => Err(SessionError::new(
                        FailureKind::Cancelled,
                        "session cancelled (the client went away or asked)",
                    )),
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

    report.finished = unix_now();
    let report_path = dir.join("report.json");
    let mut info = handle.info();
    info.finished = Some(report.finished);
    info.target = report.target.clone();
    match &outcome {
        Ok(()) => {
            report.state = "succeeded".into();
            info.state = "succeeded".into();
        }
        Err(e) => {
            report.state = if e.kind == FailureKind::Cancelled {
                "cancelled".into()
            } else {
                "failed".into()
            };
            report.failure = Some(ApiError {
                kind: e.kind,
                message: e.message.clone(),
            });
            info.state = report.state.clone();
            info.message = Some(e.message.clone());
        }
    }
    if let Err(e) = write_json(&report_path, &report) {
        tracing::error!("cannot write {}: {e}", report_path.display());
    }
    let _ = write_json(&dir.join("session.json"), &info);
    handle.set_info(info);
    match outcome {
        Ok(()) => {
            tracing::info!("session succeeded");
            handle.emit(Progress::Done {
                summary: report.summary(&report_path.display().to_string()),
            })
        }
        Err(e) => {
            tracing::warn!(kind = ?e.kind, "session failed: {}", e.message);
            handle.emit(Progress::Failed {
                kind: e.kind,
                message: e.message,
            })
        }
    }
}

/// Removes the session's containers, untags and removes its cgroup, and
/// deletes its scratch directory.
async fn cleanup(daemon: &Daemon, res: &Resources, scratch: &std::path::Path) {
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
    let trace = res.trace.lock().unwrap().take();
    if let Some(t) = trace {
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

/// The phases.
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
            return Err(SessionError::new(
                FailureKind::Usage,
                format!("the target tag {t} names the original image: choose another --tag"),
            ));
        }
        if !req.force && ctx.engine.tag_exists(&t).await? {
            return Err(SessionError::new(
                FailureKind::TagExists,
                format!(
                    "{t} already exists: pass --force to replace it, or --tag to choose another name"
                ),
            ));
        }
        Some(t)
    } else {
        None
    };
    ctx.report.target = target.clone();
    Ok((info, target))
}

/// `slim build --from-profile ID`: the observations of an earlier session
/// (typically a watch-mode profile) instead of a new run.
async fn flow_from_profile(ctx: &mut Ctx<'_>, profile_id: &str) -> Result<()> {
    let req = ctx.req;
    ctx.begin(Phase::Inspect);
    if !super::valid_id(profile_id) {
        return Err(SessionError::new(
            FailureKind::Usage,
            format!("{profile_id:?} is not a session id (see `slim sessions`)"),
        ));
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
        super::analyse::Seen::Saved(profile.observations),
        &profile.syscalls,
        &req.keep,
        req.run.workdir.clone().or(profile.workdir),
        &mut ctx.report,
    )
    .await?;
    assemble_and_finish(
        ctx,
        &info,
        target,
        analysis,
        None,
        None,
        Vec::new(),
        ProbePlan::default(),
    )
    .await
}

/// The phases.
async fn flow(ctx: &mut Ctx<'_>) -> Result<()> {
    let req = ctx.req;
    if let Some(id) = &req.from_profile {
        return flow_from_profile(ctx, id).await;
    }

    // --- inspect ---
    ctx.begin(Phase::Inspect);
    let (info, target) = inspect_and_target(ctx, &req.image).await?;

    let ports = ports_of(&info, req);
    let probing = has_probes(req, &ports);
    let continue_after = req
        .probes
        .continue_after
        .clone()
        .unwrap_or(if ports.is_empty() {
            ContinueAfter::Exit
        } else if probing {
            ContinueAfter::Probes
        } else {
            ContinueAfter::Timeout(10)
        });
    if !ports.is_empty() && !probing && req.probes.continue_after.is_none() {
        ctx.note(
            "no probes for a server image: watching it for 10 s (see --continue-after)".into(),
        );
    }
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

    // --- start ---
    ctx.begin(Phase::Start);
    let tracer = ctx
        .daemon
        .tracer()
        .map_err(|e| SessionError::internal(format!("tracing is unavailable: {e}")))?;
    let mut trace = tracer
        .start_session(&ctx.daemon.config.cgroup_root, &ctx.handle.id)
        .map_err(|e| SessionError::internal(e.to_string()))?;
    let mut events_rx = trace.take_events().expect("fresh trace session");
    let trace = Arc::new(trace);
    *ctx.res.trace.lock().unwrap() = Some(trace.clone());
    // Collect events as they come, so the channel never holds them all.
    let collector = tokio::spawn(async move {
        let mut v: Vec<TraceEvent> = Vec::new();
        while let Some(e) = events_rx.recv().await {
            v.push(e);
        }
        v
    });
    let spec = container_spec(
        ctx,
        &info.id,
        &ports,
        Some(trace.cgroup.parent.clone()),
        "trace",
    );
    let container = create_and_start(ctx, &spec).await?;
    let endpoints = endpoints_of(ctx, &container, &ports).await?;
    let ready_deadline = Instant::now() + Duration::from_secs(req.probes.ready_timeout_secs);
    if !endpoints.is_empty() {
        wait_ready(ctx, &container, &endpoints, ready_deadline).await?;
    }
    ctx.done(Some(format!(
        "container {}{}",
        &container[..12.min(container.len())],
        if endpoints.is_empty() {
            String::new()
        } else {
            format!(
                ", ready on {}",
                endpoints
                    .iter()
                    .map(|e| format!("{}->{}", e.container_port, e.host_port))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )));

    // --- probe ---
    ctx.begin(Phase::Probe);
    let plan = probe_plan(req, endpoints.clone())?;
    let probe_deadline = Instant::now() + Duration::from_secs(req.probes.probe_timeout_secs);
    let probe_report =
        if endpoints.is_empty() && plan.exec.is_empty() && plan.host_commands.is_empty() {
            None
        } else {
            Some(probe::run_probes(&ctx.engine, &container, &plan, probe_deadline).await)
        };
    let run_deadline = Instant::now() + Duration::from_secs(req.probes.run_timeout_secs);
    let oneshot_run = match &continue_after {
        ContinueAfter::Probes => None,
        ContinueAfter::Exit => {
            let run = probe::record_oneshot_run(&ctx.engine, &container, run_deadline).await?;
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
                .wait_exit(&container, Instant::now() + Duration::from_secs(*n))
                .await?;
            None
        }
        ContinueAfter::Signal => {
            ctx.note(
                "waiting for the continue signal (press Enter in slim, or send it SIGUSR1)".into(),
            );
            tokio::select! {
                _ = ctx.handle.continue_signal.notified() => {}
                r = ctx.engine.wait_exit(&container, run_deadline) => { r?; }
            }
            None
        }
    };
    if let Some(run) = &oneshot_run
        && let Some(code) = run.exit_code
        && code != 0
        && endpoints.is_empty()
    {
        return Err(SessionError::app(format!(
            "the container exited with code {code}{}; slimd minifies an app that works: check the image's command (or --entrypoint/--cmd){}",
            run.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            tail("stderr", &run.stderr.text)
        )));
    }
    let detail = match (&probe_report, &oneshot_run) {
        (Some(p), _) => {
            let failures = p.failures();
            for f in &failures {
                ctx.warn(format!("probe: {f}"));
            }
            if !p.http.is_empty() && p.http.iter().all(|h| h.status.is_none()) {
                return Err(SessionError::app(format!(
                    "no HTTP probe request got an answer ({} tried); the app may not serve HTTP on {}",
                    p.http.len(),
                    ports.join(", ")
                )));
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

    // --- collect ---
    ctx.begin(Phase::Collect);
    stop_container(ctx, &container, &info).await;
    let summary = trace.finish().await;
    let events = collector
        .await
        .map_err(|e| SessionError::internal(format!("event collector: {e}")))?;
    ctx.report.trace = Some(summary.stats);
    ctx.report.syscalls = summary.syscalls.iter().map(|n| format!("{n}")).collect();
    if summary.stats.lost > 0 {
        ctx.warn(format!(
            "{} trace events were LOST (ring buffer full, or unreadable: see the daemon log): the slim image may miss files; rerun with a larger ring buffer (slimd --ring-buffer-mb)",
            summary.stats.lost
        ));
    }
    ctx.done(Some(format!(
        "{} events ({} repeats dropped in the kernel, {} lost)",
        events.len(),
        summary.stats.deduped,
        summary.stats.lost
    )));

    // --- assemble ---
    ctx.begin(Phase::Assemble);
    let analysis = super::analyse::analyse(
        &ctx.engine,
        &ctx.daemon.session_dir(&ctx.handle.id),
        &ctx.scratch.join("image"),
        &req.image,
        &info.id,
        super::analyse::Seen::Events(events),
        &summary.syscalls,
        &req.keep,
        req.run.workdir.clone(),
        &mut ctx.report,
    )
    .await?;
    assemble_and_finish(
        ctx,
        &info,
        target,
        analysis,
        probe_report,
        oneshot_run,
        ports,
        plan,
    )
    .await
}

/// Writes, loads and verifies the slim image (the end of every build).
#[allow(clippy::too_many_arguments)]
async fn assemble_and_finish(
    ctx: &mut Ctx<'_>,
    info: &ImageInfo,
    target: Option<String>,
    analysis: super::analyse::Analysis,
    probe_report: Option<ProbeReport>,
    oneshot_run: Option<RunRecord>,
    ports: Vec<String>,
    plan: ProbePlan,
) -> Result<()> {
    let req = ctx.req;
    let super::analyse::Analysis {
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
        return Ok(());
    };
    let archive = ctx.scratch.join("slim.tar");
    let written = {
        let image = image.clone();
        let selection = keep.selection();
        let archive = archive.clone();
        let scratch = ctx.scratch.clone();
        let mut opts = WriteOptions {
            tag: Some(target.clone()),
            created_by: format!(
                "slimd build {} (session {})",
                ctx.report.image, ctx.handle.id
            ),
            ..Default::default()
        };
        opts.labels
            .insert("dev.slimd.source-image".into(), info.id.clone());
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&archive)?;
            let out = std::io::BufWriter::with_capacity(1 << 20, file);
            ImageWriter::new(&image, &selection, &opts)
                .write_docker_archive(out, &scratch)
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| SessionError::internal(e.to_string()))?
        .map_err(|e| SessionError::internal(format!("writing the slim image: {e}")))?
    };
    drop(image);
    ctx.done(Some(format!(
        "{} entries, {} in one layer",
        written.entry_count,
        crate::report::bytes(written.layer_size)
    )));

    // --- load ---
    ctx.begin(Phase::Load);
    if !req.force && ctx.engine.tag_exists(&target).await? {
        return Err(SessionError::new(
            FailureKind::TagExists,
            format!("{target} appeared while building: pass --force to replace it"),
        ));
    }
    ctx.engine.load_image_file(&archive).await?;
    let slim_info = ctx.engine.inspect_image(&target).await?;
    ctx.report.target_id = Some(slim_info.id.clone());
    if let Some(sizes) = ctx.report.sizes.as_mut() {
        sizes.original_bytes = info.size;
        sizes.slim_bytes = slim_info.size;
        sizes.reduction_percent = if info.size > 0 {
            100.0 * (1.0 - slim_info.size as f64 / info.size as f64)
        } else {
            0.0
        };
    }
    let _ = std::fs::remove_file(&archive);
    ctx.done(Some(format!(
        "{target} ({})",
        crate::report::bytes(slim_info.size)
    )));

    // --- verify ---
    let verify = req
        .verify
        .unwrap_or(probe_report.is_some() || oneshot_run.is_some());
    if !verify {
        ctx.skip(Phase::Verify, "turned off (or nothing to compare)");
        return Ok(());
    }
    ctx.begin(Phase::Verify);
    // Plain, then (if asked) under the generated seccomp profile.
    let mut runs = vec![(Vec::new(), "")];
    if req.verify_seccomp {
        let Some(profile) = hardening.seccomp_json.as_deref() else {
            return Err(SessionError::internal("no seccomp profile to verify with"));
        };
        runs.push((
            vec![format!("seccomp={profile}")],
            " under the generated seccomp profile",
        ));
    }
    for (security_opts, under) in runs {
        let seccomp = !security_opts.is_empty();
        let result = verify_slim(
            ctx,
            &slim_info,
            &ports,
            &plan,
            probe_report.as_ref(),
            oneshot_run.as_ref(),
            security_opts,
        )
        .await?;
        let mismatches = result.mismatches.clone();
        if seccomp {
            ctx.report.verify_seccomp = Some(result);
        } else {
            ctx.report.verify = Some(result);
        }
        if !mismatches.is_empty() {
            ctx.done(Some(format!("FAILED{under}")));
            return Err(SessionError::new(
                FailureKind::Verify,
                format!(
                    "the slim image {target} does not behave like the original{under}:\n  - {}\n(it stays loaded for inspection; remove it with `docker rmi {target}`; keep more with --include-path/--include-bin)",
                    mismatches.join("\n  - ")
                ),
            ));
        }
    }
    ctx.done(Some(if req.verify_seccomp {
        "same results as the original, also under the generated seccomp profile".into()
    } else {
        "same results as the original".into()
    }));
    Ok(())
}

fn tail(label: &str, text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let start = t.len().saturating_sub(1500);
    let start = (start..t.len())
        .find(|i| t.is_char_boundary(*i))
        .unwrap_or(t.len());
    format!("\n{label}:\n{}", &t[start..])
}

/// Ports to publish: the image's EXPOSE plus `--expose`.
fn ports_of(info: &ImageInfo, req: &SessionRequest) -> Vec<String> {
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

fn has_probes(req: &SessionRequest, ports: &[String]) -> bool {
    (req.probes.http_probe && !ports.is_empty())
        || req.probes.http_probe_file.is_some()
        || !req.probes.exec_probes.is_empty()
        || !req.probes.probe_cmds.is_empty()
}

fn container_spec(
    ctx: &Ctx<'_>,
    image_id: &str,
    ports: &[String],
    cgroup_parent: Option<String>,
    role: &str,
) -> ContainerSpec {
    let run = &ctx.req.run;
    ContainerSpec {
        image: image_id.to_string(),
        name: Some(format!("slimd-{}-{role}", ctx.handle.id)),
        labels: ctx.labels(role),
        entrypoint: run.entrypoint.clone(),
        cmd: run.cmd.clone(),
        env: run.env.clone(),
        workdir: run.workdir.clone(),
        user: run.user.clone(),
        mounts: run.mounts.clone(),
        cgroup_parent,
        publish: ports.to_vec(),
        network_mode: run.network.clone(),
        ..Default::default()
    }
}

async fn create_and_start(ctx: &mut Ctx<'_>, spec: &ContainerSpec) -> Result<String> {
    let id = ctx.engine.create_container(spec).await?;
    ctx.res.containers.lock().unwrap().push(id.clone());
    if let Err(e) = ctx.engine.start(&id).await {
        return Err(SessionError::app(format!(
            "the container did not start: {e} (check the image's entrypoint/cmd, or --entrypoint/--cmd)"
        )));
    }
    Ok(id)
}

async fn endpoints_of(ctx: &Ctx<'_>, container: &str, ports: &[String]) -> Result<Vec<Endpoint>> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    // Published host ports appear once the container runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = ctx.engine.inspect_container(container).await?;
        let eps: Vec<Endpoint> = ports
            .iter()
            .filter_map(|p| {
                let cp = crate::engine::port_number(p)?;
                c.host_port(p).map(|hp| Endpoint::new("127.0.0.1", hp, cp))
            })
            .collect();
        if eps.len() == ports.len() {
            return Ok(eps);
        }
        if !c.state.running {
            let logs = ctx
                .engine
                .logs(container, 1 << 16)
                .await
                .unwrap_or_default();
            return Err(SessionError::app(format!(
                "the container exited with code {} before its ports were published{}",
                c.state.exit_code.unwrap_or(-1),
                tail("stderr", &String::from_utf8_lossy(&logs.stderr))
            )));
        }
        if Instant::now() > deadline {
            return Err(SessionError::internal(format!(
                "the engine did not publish ports {} within 10 s",
                ports.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(
    ctx: &Ctx<'_>,
    container: &str,
    endpoints: &[Endpoint],
    deadline: Instant,
) -> Result<()> {
    match probe::wait_ready_or_exit(&ctx.engine, container, endpoints, deadline).await {
        Ok(_) => Ok(()),
        Err(ProbeError::ContainerExited { code, stderr_tail }) => Err(SessionError::app(format!(
            "the container exited with code {code} before it answered on its ports{}",
            tail("stderr", &stderr_tail)
        ))),
        Err(e) => Err(SessionError::app(format!(
            "{e} (wait longer with --ready-timeout, or publish the right port with --expose)"
        ))),
    }
}

fn probe_plan(req: &SessionRequest, endpoints: Vec<Endpoint>) -> Result<ProbePlan> {
    let mut plan = ProbePlan {
        endpoints: endpoints.clone(),
        http: (req.probes.http_probe && !endpoints.is_empty()).then(HttpProbeConfig::default),
        ..Default::default()
    };
    let mut api_specs = Vec::new();
    for s in &req.probes.http_probe_apispec {
        let usage = |why: String| SessionError::new(FailureKind::Usage, why);
        api_specs.push(match s {
            ApiSpecSource::Path(p) if p.starts_with('/') => probe::SpecSource::Path(p.clone()),
            ApiSpecSource::Path(p) => {
                return Err(usage(format!(
                    "--http-probe-apispec {p:?}: a path on the app must start with /"
                )));
            }
            ApiSpecSource::File { name, contents } => {
                probe::openapi::ApiDoc::parse(contents.as_bytes())
                    .map_err(|e| usage(format!("--http-probe-apispec {name}: {e}")))?;
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
            api_specs: api_specs.clone(),
            ..Default::default()
        });
    }
    if let Some(text) = &req.probes.http_probe_file {
        let file = probe::ProbeFile::parse(text).map_err(|e| {
            SessionError::new(FailureKind::Usage, format!("--http-probe-file: {e}"))
        })?;
        plan.http_requests = file.resolve(&endpoints).map_err(|e| {
            SessionError::new(FailureKind::Usage, format!("--http-probe-file: {e}"))
        })?;
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
        let cmd = probe::split_command_line(c).map_err(|e| {
            SessionError::new(FailureKind::Usage, format!("--exec-probe {c:?}: {e}"))
        })?;
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

/// Stops the app with its stop signal and a grace period.
async fn stop_container(ctx: &Ctx<'_>, container: &str, info: &ImageInfo) {
    let signal = info.config.stop_signal.as_deref();
    if let Err(e) = ctx
        .engine
        .stop(container, signal, Duration::from_secs(10))
        .await
    {
        tracing::warn!("stopping {container}: {e}");
    }
    let _ = ctx
        .engine
        .wait_exit(container, Instant::now() + Duration::from_secs(15))
        .await;
}

/// Runs the slim image the same way and compares.
async fn verify_slim(
    ctx: &mut Ctx<'_>,
    slim: &ImageInfo,
    ports: &[String],
    plan: &ProbePlan,
    original: Option<&ProbeReport>,
    original_run: Option<&RunRecord>,
    security_opts: Vec<String>,
) -> Result<VerifyResult> {
    let role = if security_opts.is_empty() {
        "verify"
    } else {
        "verify-seccomp"
    };
    let mut spec = container_spec(ctx, &slim.id, ports, None, role);
    spec.security_opts = security_opts;
    let container = match create_and_start(ctx, &spec).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(VerifyResult {
                passed: false,
                mismatches: vec![format!("the slim image does not start: {}", e.message)],
                ..Default::default()
            });
        }
    };
    let endpoints = match endpoints_of(ctx, &container, ports).await {
        Ok(e) => e,
        Err(e) => {
            return Ok(VerifyResult {
                passed: false,
                mismatches: vec![e.message],
                ..Default::default()
            });
        }
    };
    let req = ctx.req;
    let mut result = VerifyResult::default();
    if !endpoints.is_empty() {
        let deadline = Instant::now() + Duration::from_secs(req.probes.ready_timeout_secs);
        if let Err(e) = wait_ready(ctx, &container, &endpoints, deadline).await {
            result
                .mismatches
                .push(format!("the slim image never got ready: {}", e.message));
            return Ok(result);
        }
    }
    if let Some(orig) = original {
        let replay = plan.replay_of(orig, endpoints);
        let deadline = Instant::now() + Duration::from_secs(req.probes.probe_timeout_secs);
        let slim_report = probe::run_probes(&ctx.engine, &container, &replay, deadline).await;
        result.mismatches.extend(
            probe::compare(orig, &slim_report)
                .iter()
                .map(|m| m.to_string()),
        );
        result.probe = Some(slim_report);
    }
    if let Some(orig_run) = original_run {
        let deadline = Instant::now() + Duration::from_secs(req.probes.run_timeout_secs);
        let run = probe::record_oneshot_run(&ctx.engine, &container, deadline).await?;
        result.mismatches.extend(
            probe::compare_runs(orig_run, &run)
                .iter()
                .map(|m| m.to_string()),
        );
        result.run = Some(run);
    }
    let _ = ctx
        .engine
        .stop(&container, None, Duration::from_secs(5))
        .await;
    result.passed = result.mismatches.is_empty();
    Ok(result)
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
