//! Compose stacks: `slim build --compose FILE`. A conductor above
//! [`crate::session`]: each chosen service is built by its own session (its
//! id, cgroup, report and `<image>.slim`), and the stack runs them together.
//!
//! The order: parse the file ([`crate::compose`]); create the stack's own
//! networks and volumes (named after the stack's session, so nothing of the
//! user's is touched); bring the services up in dependency order (chosen
//! services traced in their own session cgroups from their first
//! instruction, the others untraced), each once its dependencies meet their
//! `depends_on` conditions; probe each chosen service, then run the
//! stack's host commands, which see every published port; stop, collect,
//! assemble and load each slim image; write `compose.slim.yml`; bring the
//! stack up again with the slim images on fresh volumes and compare, per
//! service and end to end. Whatever happens, everything it created is
//! removed at the end, and a daemon that died mid-way removes it on its
//! next start (the single-build cleanup: everything carries the session
//! labels).

pub mod error;
pub(crate) mod up;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use tracing::Instrument;

use crate::{
    compose::{ServiceSpec, StackSpec, override_file},
    engine::Engine,
    model::{
        ApiError, Caller, ComposeRequest, FailureKind, Phase, Progress, SessionKind, SessionRequest,
    },
    probe::{self, CommandProbe, HostCommandRunner, ProbeReport},
    report::{Report, VerifyOutcome, VerifyResult},
    session::{
        Daemon, LABEL_INSTANCE, LABEL_SESSION, SessionError, SessionHandle,
        analyse::Seen,
        ctx::{Ctx, Resources},
        hand_over,
        host_commands::ClientHost,
        prepare_session_dir,
        run::{self as phases, Inspected, Loaded, Started},
        unix_now,
        verify::{self, Original},
        write_json,
    },
};

pub use error::StackError;
use up::{Names, Running};

/// Label naming the Compose service a container runs.
pub const LABEL_SERVICE: &str = "slimd.service";

/// Starts a stack build for `caller` in the background; its handle
/// streams the progress of every service. The stack and its services'
/// sessions belong to the caller, their host paths are checked with the
/// caller's rights, and every host command runs in the caller's client.
pub fn start(
    daemon: &Arc<Daemon>,
    req: SessionRequest,
    caller: &Caller,
) -> Result<Arc<SessionHandle>, ApiError> {
    let mut req = req;
    daemon.check_paths(&mut req, caller)?;
    if req.detach && has_host_commands(&req) {
        return Err(ApiError {
            kind: FailureKind::Usage,
            message: DETACH_WITH_STACK_HOST_COMMANDS.into(),
        });
    }
    let handle = daemon.register(&req, caller)?;
    let d = daemon.clone();
    let h = handle.clone();
    let caller = caller.clone();
    let span = tracing::info_span!("stack", id = %h.id);
    let task = async move {
        run(d.clone(), h.clone(), req, caller).await;
        d.unregister(&h);
    }
    .instrument(span);
    if daemon.unless_shutting_down(|| daemon.spawn(task)).is_none() {
        daemon.unregister(&handle);
        return Err(ApiError {
            kind: FailureKind::Internal,
            message: "slimd is shutting down: no new sessions".into(),
        });
    }
    Ok(handle)
}

const DETACH_WITH_STACK_HOST_COMMANDS: &str = "--detach cannot be used with a Compose file whose x-slim has probe-cmds: host commands run in the slim client, as you, so the client must stay until they are done (the daemon never runs a command line a client sent)";

/// Whether the stack (as far as its file parses) runs host commands: its
/// own, or a chosen service's `x-slim` ones. A file that does not parse
/// fails in the run, with its error.
fn has_host_commands(req: &SessionRequest) -> bool {
    let Some(c) = &req.compose else {
        return false;
    };
    StackSpec::parse(&c.bundle, &c.services, &c.profiles).is_ok_and(|spec| {
        !spec.host_commands.is_empty()
            || spec
                .services
                .iter()
                .any(|s| s.chosen && !s.slim.probe_cmds.is_empty())
    })
}

/// One service's line in the stack report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub image: String,
    /// Traced and slimmed (`false`: run untraced, as a dependency).
    pub chosen: bool,
    /// Its own session (`slim report ID`).
    pub session: Option<String>,
    pub target: Option<String>,
    pub original_bytes: Option<u64>,
    pub slim_bytes: Option<u64>,
    pub verify: Option<VerifyOutcome>,
}

/// `report.json` of a stack.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StackReport {
    pub id: String,
    /// `compose` (tells a stack's report from a single build's).
    pub kind: String,
    pub file: String,
    pub project: String,
    pub started: u64,
    pub finished: u64,
    pub state: String,
    pub failure: Option<ApiError>,
    pub services: Vec<ServiceResult>,
    /// The stack's host commands on the original stack.
    pub host_commands: Option<ProbeReport>,
    /// The slim stack's host commands compared with the original's.
    pub verify: Option<VerifyResult>,
    /// `compose.slim.yml`.
    pub override_text: Option<String>,
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

/// What the stack created besides containers and cgroups.
#[derive(Default)]
struct Made {
    networks: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
}

/// A chosen service's own session.
struct Child {
    spec: ServiceSpec,
    req: SessionRequest,
    handle: Arc<SessionHandle>,
}

/// The session request of one chosen service: the stack's probe, keep and
/// verify options with the service's own settings and `x-slim`.
fn service_request(stack: &SessionRequest, svc: &ServiceSpec) -> SessionRequest {
    let mut probes = stack.probes.clone();
    probes.http_probe = svc.slim.http_probe.unwrap_or(stack.probes.http_probe);
    probes.exec_probes = svc.slim.exec_probes.clone();
    probes.probe_cmds = svc.slim.probe_cmds.clone();
    probes.http_probe_file = None;
    probes.http_probe_apispec = Vec::new();
    probes.continue_after = Some(crate::probe::options::ContinueAfter::Probes);
    let mut keep = stack.keep.clone();
    keep.include_paths.extend(svc.slim.include_paths.clone());
    SessionRequest {
        kind: SessionKind::Build,
        image: svc.image.clone(),
        tag: svc.slim.tag.clone(),
        force: stack.force,
        run: crate::model::RunOptions {
            entrypoint: svc.entrypoint.clone(),
            cmd: svc.command.clone(),
            env: svc.environment.clone(),
            workdir: svc.working_dir.clone(),
            user: svc.user.clone(),
            expose: svc.ports.clone(),
            ..Default::default()
        },
        probes,
        keep,
        verify: stack.verify,
        verify_seccomp: false,
        detach: stack.detach,
        from_profile: None,
        // Checked against the caller when the stack started.
        vuln_db: stack.vuln_db.clone(),
        oci_output: None,
        compose: None,
    }
}

/// Re-emits a service session's progress on the stack's stream, named.
fn forward(child: Arc<SessionHandle>, stack: Arc<SessionHandle>, service: String) {
    let (past, mut rx) = child.subscribe();
    tokio::spawn(async move {
        let named = |p: Progress| -> Option<Progress> {
            let n = |m: String| format!("{service}: {m}");
            Some(match p {
                Progress::PhaseDone { phase, ms, detail } => Progress::PhaseDone {
                    phase,
                    ms,
                    detail: Some(n(detail.unwrap_or_default())),
                },
                Progress::PhaseSkipped { phase, why } => {
                    Progress::PhaseSkipped { phase, why: n(why) }
                }
                Progress::Note { message } => Progress::Note {
                    message: n(message),
                },
                Progress::Warning { message } => Progress::Warning {
                    message: n(message),
                },
                _ => return None,
            })
        };
        let last = |p: &Progress| matches!(p, Progress::Done { .. } | Progress::Failed { .. });
        for p in past {
            if last(&p) {
                return;
            }
            if let Some(p) = named(p) {
                stack.emit(p);
            }
        }
        while let Ok(p) = rx.recv().await {
            if last(&p) {
                return;
            }
            if let Some(p) = named(p) {
                stack.emit(p);
            }
        }
    });
}

/// Runs a stack to its end; always cleans up and writes its report.
async fn run(daemon: Arc<Daemon>, handle: Arc<SessionHandle>, req: SessionRequest, caller: Caller) {
    let t0 = Instant::now();
    let compose = req.compose.clone().unwrap_or_default();
    let dir = daemon.session_dir(&handle.id);
    let scratch = daemon.scratch_dir(&handle.id);
    let mut report = StackReport {
        id: handle.id.clone(),
        kind: "compose".into(),
        file: compose.bundle.file.clone(),
        started: unix_now(),
        ..Default::default()
    };
    let res = Resources::default();
    let made = Made::default();
    let mut children: Vec<Child> = Vec::new();
    let mut reports: Vec<Report> = Vec::new();
    let outcome = async {
        prepare_session_dir(&dir)
            .and_then(|()| std::fs::create_dir_all(&scratch))
            .and_then(|()| write_json(&dir.join("request.json"), &req))
            .and_then(|()| write_json(&dir.join("session.json"), &handle.info()))
            .map_err(|source| StackError::Prepare {
                path: dir.display().to_string(),
                source,
            })?;
        let spec = StackSpec::parse(&compose.bundle, &compose.services, &compose.profiles)?;
        report.project = spec.name.clone();
        for n in &spec.notes {
            handle.emit(Progress::Note { message: n.clone() });
        }
        report.notes = spec.notes.clone();
        for svc in &spec.services {
            report.services.push(ServiceResult {
                service: svc.name.clone(),
                image: svc.image.clone(),
                chosen: svc.chosen,
                ..Default::default()
            });
            if !svc.chosen {
                continue;
            }
            let mut creq = service_request(&req, svc);
            // What a single build checks for its caller, each service's
            // request gets too.
            daemon
                .check_paths(&mut creq, &caller)
                .map_err(|e| StackError::Register {
                    service: svc.name.clone(),
                    kind: e.kind,
                    message: e.message,
                })?;
            let h = daemon
                .register_child(&creq, &handle)
                .map_err(|e| StackError::Register {
                    service: svc.name.clone(),
                    kind: e.kind,
                    message: e.message,
                })?;
            forward(h.clone(), handle.clone(), svc.name.clone());
            let cdir = daemon.session_dir(&h.id);
            prepare_session_dir(&cdir)
                .and_then(|()| std::fs::create_dir_all(daemon.scratch_dir(&h.id)))
                .and_then(|()| write_json(&cdir.join("request.json"), &creq))
                .and_then(|()| write_json(&cdir.join("session.json"), &h.info()))
                .map_err(|source| StackError::Prepare {
                    path: cdir.display().to_string(),
                    source,
                })?;
            children.push(Child {
                spec: svc.clone(),
                req: creq,
                handle: h,
            });
        }
        let engine = daemon.engine().await?;
        let mut ctxs: Vec<Ctx<'_>> = children
            .iter()
            .map(|c| Ctx {
                daemon: &daemon,
                handle: &c.handle,
                req: &c.req,
                res: &res,
                engine: engine.clone(),
                scratch: daemon.scratch_dir(&c.handle.id),
                report: Report {
                    id: c.handle.id.clone(),
                    kind: SessionKind::Build,
                    image: c.req.image.clone(),
                    started: unix_now(),
                    unverified_accepted: c.req.verify == Some(false),
                    ..Default::default()
                },
                phase_start: None,
                placement: Default::default(),
            })
            .collect();
        let mut conductor = Conductor {
            daemon: &daemon,
            handle: &handle,
            req: &req,
            spec: &spec,
            engine,
            res: &res,
            made: &made,
            report: &mut report,
        };
        let r = tokio::select! {
            r = conductor.flow(&mut ctxs) => r,
            _ = handle.cancel.cancelled() => Err(StackError::Cancelled),
        };
        reports = ctxs.into_iter().map(|c| c.report).collect();
        r
    }
    .await;

    cleanup(&daemon, &res, &made, &scratch, &children).await;

    // Each service's session ends with the stack.
    let mut summaries = Vec::new();
    for (c, mut r) in children.iter().zip(reports) {
        let svc_outcome = match &outcome {
            Ok(()) => Ok(()),
            Err(StackError::Cancelled) => Err(SessionError::Cancelled),
            Err(e) => Err(SessionError::Stack {
                kind: e.kind(),
                message: format!("the stack stopped: {e}"),
            }),
        };
        if let Some(s) = report
            .services
            .iter_mut()
            .find(|s| s.service == c.spec.name)
        {
            s.session = Some(c.handle.id.clone());
            s.target = r.target.clone();
            s.original_bytes = r.sizes.as_ref().map(|z| z.original_bytes);
            s.slim_bytes = r.sizes.as_ref().map(|z| z.slim_bytes);
            s.verify = r.verify.as_ref().map(|v| v.outcome);
        }
        r.finished = unix_now();
        phases::finish(
            &c.handle,
            &c.req,
            &daemon.session_dir(&c.handle.id),
            r,
            svc_outcome,
        );
        if let Some(Progress::Done { mut summary }) = c.handle.subscribe().0.pop() {
            summary["service"] = c.spec.name.clone().into();
            summaries.push(summary);
        }
        daemon.unregister(&c.handle);
    }
    finish(&daemon, &handle, &compose, report, summaries, outcome, t0);
}

/// Writes the stack's report and state and sends its last line.
fn finish(
    daemon: &Daemon,
    handle: &SessionHandle,
    compose: &ComposeRequest,
    mut report: StackReport,
    services: Vec<serde_json::Value>,
    outcome: Result<(), StackError>,
    t0: Instant,
) {
    let dir = daemon.session_dir(&handle.id);
    report.finished = unix_now();
    report.elapsed_ms = t0.elapsed().as_millis() as u64;
    let mut info = handle.info();
    info.finished = Some(report.finished);
    report.state = match &outcome {
        Ok(()) => {
            let unverified = report
                .verify
                .as_ref()
                .is_none_or(|v| v.outcome == VerifyOutcome::Unverified)
                && report
                    .services
                    .iter()
                    .filter(|s| s.chosen)
                    .any(|s| s.verify != Some(VerifyOutcome::Passed));
            if unverified {
                "unverified"
            } else {
                "succeeded"
            }
            .into()
        }
        Err(StackError::Cancelled) => "cancelled".into(),
        Err(_) => "failed".into(),
    };
    info.state = report.state.clone();
    if let Err(e) = &outcome {
        report.failure = Some(ApiError {
            kind: e.kind(),
            message: e.to_string(),
        });
        info.message = Some(e.to_string());
    }
    let report_path = dir.join("report.json");
    if let Err(e) = write_json(&report_path, &report) {
        tracing::error!("cannot write {}: {e}", report_path.display());
    }
    let _ = write_json(&dir.join("session.json"), &info);
    handle.set_info(info);
    let last = match outcome {
        Ok(()) => {
            let override_path = Path::new(&compose.bundle.project_dir)
                .join(override_file::FILE_NAME)
                .display()
                .to_string();
            Progress::Done {
                summary: serde_json::json!({
                    "kind": "compose",
                    "id": report.id,
                    "state": report.state,
                    "project": report.project,
                    "services": services,
                    "verify": report.verify.as_ref().map(|v| serde_json::json!({
                        "outcome": v.outcome,
                        "passed": v.passed,
                        "unverified": v.unverified,
                        "accepted": handle_accepts_unverified(&report),
                        "mismatches": v.mismatches,
                        "problems": v.problems,
                        "compared": v.compared.len(),
                    })),
                    "elapsed_ms": report.elapsed_ms,
                    "override": report.override_text.as_ref().map(|t| serde_json::json!({
                        "path": override_path,
                        "text": t,
                    })),
                    "report": report_path.display().to_string(),
                }),
            }
        }
        Err(e) => Progress::Failed {
            kind: e.kind(),
            message: e.to_string(),
        },
    };
    // The stack's report is its owner's, like a single build's.
    hand_over(&dir, handle.owner, &last);
    handle.emit(last);
}

/// `--verify=false` asked for unverified images.
fn handle_accepts_unverified(report: &StackReport) -> bool {
    report
        .verify
        .as_ref()
        .is_some_and(|v| v.unverified.as_deref() == Some(VERIFY_OFF))
}

const VERIFY_OFF: &str = "turned off with --verify=false";

/// Removes every container, cgroup, network, volume and scratch directory
/// the stack made.
async fn cleanup(
    daemon: &Daemon,
    res: &Resources,
    made: &Made,
    scratch: &Path,
    children: &[Child],
) {
    phases::cleanup(daemon, res, scratch).await;
    for c in children {
        let s = daemon.scratch_dir(&c.handle.id);
        if s.exists()
            && let Err(e) = std::fs::remove_dir_all(&s)
        {
            tracing::warn!("removing {}: {e}", s.display());
        }
    }
    let Ok(engine) = daemon.engine().await else {
        return;
    };
    let networks: Vec<String> = std::mem::take(&mut *made.networks.lock().unwrap());
    for n in networks {
        if let Err(e) = engine.remove_network(&n).await
            && !e.is_not_found()
        {
            tracing::warn!("removing network {n}: {e}");
        }
    }
    let volumes: Vec<String> = std::mem::take(&mut *made.volumes.lock().unwrap());
    for v in volumes {
        if let Err(e) = engine.remove_volume(&v).await
            && !e.is_not_found()
        {
            tracing::warn!("removing volume {v}: {e}");
        }
    }
}

/// What the flow shares.
struct Conductor<'a> {
    daemon: &'a Arc<Daemon>,
    handle: &'a SessionHandle,
    req: &'a SessionRequest,
    spec: &'a StackSpec,
    engine: Engine,
    res: &'a Resources,
    made: &'a Made,
    report: &'a mut StackReport,
}

/// A chosen service in the original run.
struct Traced {
    ins: Inspected,
    started: Option<Started>,
    original: Option<Original>,
    loaded: Option<Loaded>,
}

impl Conductor<'_> {
    fn labels(&self, role: &str, service: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_SESSION.to_string(), self.handle.id.clone()),
            (
                LABEL_INSTANCE.to_string(),
                self.daemon.config.cgroup_root.clone(),
            ),
            ("slimd.role".to_string(), role.to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
        ])
    }

    fn step(&self, phase: Phase, t: Instant, detail: String) {
        self.handle.emit(Progress::PhaseDone {
            phase,
            ms: t.elapsed().as_millis() as u64,
            detail: Some(detail),
        });
    }

    /// The stack's networks and volumes for one run (`orig`, `verify`).
    async fn create_objects(&self, run: &str) -> Result<Names, StackError> {
        let mut names = Names::default();
        let labels = self.labels(run, "");
        for n in &self.spec.networks {
            let name = up::engine_name(&self.handle.id, run, n);
            self.engine.create_network(&name, &labels).await?;
            self.made.networks.lock().unwrap().push(name.clone());
            names.networks.insert(n.clone(), name);
        }
        for v in &self.spec.volumes {
            let name = up::engine_name(&self.handle.id, run, v);
            self.engine.create_volume(&name, &labels).await?;
            self.made.volumes.lock().unwrap().push(name.clone());
            names.volumes.insert(v.clone(), name);
        }
        Ok(names)
    }

    /// Waits for `svc`'s dependencies to meet their conditions.
    async fn dependencies(
        &self,
        svc: &ServiceSpec,
        running: &[(String, Running)],
    ) -> Result<(), StackError> {
        let deadline = Instant::now() + Duration::from_secs(self.req.probes.ready_timeout_secs);
        for d in &svc.depends_on {
            let Some((_, dep)) = running.iter().find(|(n, _)| *n == d.service) else {
                continue;
            };
            up::wait_condition(
                &self.engine,
                &svc.name,
                &d.service,
                dep,
                d.condition,
                deadline,
            )
            .await?;
        }
        Ok(())
    }

    /// Starts an untraced service.
    async fn untraced(
        &self,
        svc: &ServiceSpec,
        names: &Names,
        role: &str,
    ) -> Result<Running, StackError> {
        let spec = up::untraced_spec(
            svc,
            names,
            format!("slimd-{}-{}-{role}", self.handle.id, svc.name),
            self.labels(role, &svc.name),
        );
        up::start_untraced(&self.engine, svc, &spec, names, |id| {
            self.res.containers.lock().unwrap().push(id)
        })
        .await
    }

    /// Runs the stack's host commands against `running`: in the client,
    /// as the calling user, with every service's `SLIM_<SERVICE>_*`.
    async fn host_commands(&self, running: &[(String, Running)]) -> ProbeReport {
        let t = Instant::now();
        let deadline = t + Duration::from_secs(self.req.probes.probe_timeout_secs);
        let commands: Vec<CommandProbe<String>> = self
            .spec
            .host_commands
            .iter()
            .map(|cmd| CommandProbe {
                cmd: cmd.clone(),
                ignore_output: false,
            })
            .collect();
        let host = ClientHost::with_env(self.handle, up::host_env(running));
        let host_commands = host
            .run(
                &commands,
                &[],
                Duration::from_secs(self.req.probes.command_timeout_secs),
                deadline,
            )
            .await;
        ProbeReport {
            host_commands,
            elapsed_ms: t.elapsed().as_millis() as u64,
            ..Default::default()
        }
    }

    async fn flow(&mut self, ctxs: &mut [Ctx<'_>]) -> Result<(), StackError> {
        let svc_err = |service: &str| {
            let service = service.to_string();
            move |source: SessionError| StackError::Service { service, source }
        };
        let ctx_of = |spec: &StackSpec, name: &str| {
            spec.services
                .iter()
                .filter(|s| s.chosen)
                .position(|s| s.name == name)
        };

        // Inspect the chosen services' images and their targets.
        let mut traced: Vec<Traced> = Vec::new();
        for (svc, ctx) in self
            .spec
            .services
            .iter()
            .filter(|s| s.chosen)
            .zip(ctxs.iter_mut())
        {
            let ins = phases::inspect(ctx).await.map_err(svc_err(&svc.name))?;
            traced.push(Traced {
                ins,
                started: None,
                original: None,
                loaded: None,
            });
        }

        // Bring-up, in dependency order.
        let t = Instant::now();
        let names = self.create_objects("orig").await?;
        let mut running: Vec<(String, Running)> = Vec::new();
        for svc in &self.spec.services {
            self.dependencies(svc, &running).await?;
            let r = match ctx_of(self.spec, &svc.name) {
                Some(i) => {
                    let ctx = &mut ctxs[i];
                    ctx.placement = up::placement(svc, &names);
                    let st = phases::start(ctx, &traced[i].ins)
                        .await
                        .map_err(svc_err(&svc.name))?;
                    let r = Running {
                        container: st.container.clone(),
                        endpoints: st.endpoints.clone(),
                    };
                    traced[i].started = Some(st);
                    r
                }
                None => self.untraced(svc, &names, "run").await?,
            };
            running.push((svc.name.clone(), r));
        }
        self.step(
            Phase::Start,
            t,
            format!(
                "stack {}: {} services up ({} traced) on networks {}",
                self.spec.name,
                running.len(),
                traced.len(),
                names
                    .networks
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );

        // Probes: each chosen service, then the stack's host commands.
        for (i, svc) in self.spec.services.iter().filter(|s| s.chosen).enumerate() {
            let tr = &mut traced[i];
            let st = tr.started.as_ref().expect("started above");
            let o = phases::probe_app(&mut ctxs[i], &tr.ins, st)
                .await
                .map_err(svc_err(&svc.name))?;
            tr.original = Some(o);
        }
        let original_host = if self.spec.host_commands.is_empty() {
            None
        } else {
            let t = Instant::now();
            let r = self.host_commands(&running).await;
            let failed = r.failures();
            for f in &failed {
                self.handle.emit(Progress::Warning {
                    message: format!("stack host command: {f}"),
                });
            }
            self.step(
                Phase::Probe,
                t,
                format!(
                    "stack: {} host commands against every published port ({} failed)",
                    r.host_commands.len(),
                    failed.len()
                ),
            );
            Some(r)
        };
        self.report.host_commands = original_host.clone();

        // Collect, dependents first; untraced services are stopped too.
        for svc in self.spec.services.iter().rev() {
            match ctx_of(self.spec, &svc.name) {
                Some(i) => {
                    let tr = &mut traced[i];
                    let st = tr.started.take().expect("started above");
                    let mut o = tr.original.take().expect("probed above");
                    let (events, syscalls) = phases::collect(&mut ctxs[i], &tr.ins, st, &mut o)
                        .await
                        .map_err(svc_err(&svc.name))?;
                    tr.original = Some(o);
                    let ctx = &mut ctxs[i];
                    ctx.begin(Phase::Assemble);
                    let analysis = crate::session::analyse::analyse(
                        &ctx.engine,
                        &self.daemon.session_dir(&ctx.handle.id),
                        &ctx.scratch.join("image"),
                        &ctx.req.image,
                        &tr.ins.info.id,
                        Seen::Events(events),
                        &syscalls,
                        &ctx.req.keep,
                        ctx.req.run.workdir.clone(),
                        &mut ctx.report,
                    )
                    .await
                    .map_err(svc_err(&svc.name))?;
                    tr.loaded =
                        phases::write_and_load(ctx, &tr.ins.info, tr.ins.target.clone(), analysis)
                            .await
                            .map_err(svc_err(&svc.name))?;
                }
                None => {
                    if let Some((_, r)) = running.iter().find(|(n, _)| *n == svc.name) {
                        let grace = svc.stop_grace_period.unwrap_or(Duration::from_secs(10));
                        if let Err(e) = self.engine.stop(&r.container, None, grace).await {
                            tracing::warn!("stopping {}: {e}", svc.name);
                        }
                    }
                }
            }
        }
        // The original containers go before the slim stack takes their names.
        for (_, r) in &running {
            if let Err(e) = self.engine.remove(&r.container, true).await
                && !e.is_not_found()
            {
                tracing::warn!("removing {}: {e}", r.container);
            }
        }

        let images: Vec<(String, String)> = self
            .spec
            .services
            .iter()
            .filter(|s| s.chosen)
            .zip(&traced)
            .filter_map(|(s, tr)| Some((s.name.clone(), tr.loaded.as_ref()?.target.clone())))
            .collect();
        self.report.override_text = Some(override_file::render(
            Path::new(&self.report.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .as_deref()
                .unwrap_or("compose.yml"),
            &images,
        ));

        self.verify(ctxs, &traced, original_host).await
    }

    /// The slim stack against the original: the chosen services' slim
    /// images on fresh volumes, each compared with its original run, then
    /// the stack's host commands end to end.
    async fn verify(
        &mut self,
        ctxs: &mut [Ctx<'_>],
        traced: &[Traced],
        original_host: Option<ProbeReport>,
    ) -> Result<(), StackError> {
        if self.req.verify == Some(false) {
            for ctx in ctxs.iter_mut() {
                ctx.report.verify = Some(VerifyResult::unverified(VERIFY_OFF));
                ctx.skip(Phase::Verify, "turned off with --verify=false");
            }
            self.report.verify = Some(VerifyResult::unverified(VERIFY_OFF));
            return Ok(());
        }
        let t = Instant::now();
        let names = self.create_objects("verify").await?;
        let mut running: Vec<(String, Running)> = Vec::new();
        let mut runs: Vec<Option<verify::SlimRun>> = Vec::new();
        let mut mismatches: Vec<String> = Vec::new();
        let mut chosen_i = 0;
        for svc in &self.spec.services {
            if let Err(e) = self.dependencies(svc, &running).await {
                mismatches.push(e.to_string());
                return Err(StackError::Verify { mismatches });
            }
            if !svc.chosen {
                let r = self.untraced(svc, &names, "verify").await?;
                running.push((svc.name.clone(), r));
                continue;
            }
            let i = chosen_i;
            chosen_i += 1;
            let tr = &traced[i];
            let (Some(loaded), Some(original)) = (&tr.loaded, &tr.original) else {
                runs.push(None);
                continue;
            };
            let ctx = &mut ctxs[i];
            ctx.placement = up::placement(svc, &names);
            ctx.begin(Phase::Verify);
            match verify::start_slim(ctx, &loaded.slim_info, original, Vec::new(), "verify")
                .await
                .map_err(|source| StackError::Service {
                    service: svc.name.clone(),
                    source,
                })? {
                Ok(run) => {
                    running.push((
                        svc.name.clone(),
                        Running {
                            container: run.container.clone(),
                            endpoints: run.endpoints.clone(),
                        },
                    ));
                    runs.push(Some(run));
                }
                Err(not_ready) => {
                    mismatches.extend(
                        not_ready
                            .mismatches
                            .iter()
                            .map(|m| format!("{}: {m}", svc.name)),
                    );
                    ctx.report.verify = Some(not_ready);
                    ctx.done(Some("FAILED: the slim image did not start".into()));
                    runs.push(None);
                }
            }
        }
        self.step(
            Phase::Verify,
            t,
            format!("slim stack up: {} services", running.len()),
        );
        // Each chosen service's own probes, replayed and compared.
        let chosen: Vec<&ServiceSpec> = self.spec.services.iter().filter(|s| s.chosen).collect();
        for (i, run) in runs.into_iter().enumerate() {
            let (Some(run), Some(original)) = (run, &traced[i].original) else {
                continue;
            };
            let svc = chosen[i];
            let ctx = &mut ctxs[i];
            let result = verify::check_slim(ctx, run, original, false)
                .await
                .map_err(|source| StackError::Service {
                    service: svc.name.clone(),
                    source,
                })?;
            mismatches.extend(
                result
                    .mismatches
                    .iter()
                    .map(|m| format!("{}: {m}", svc.name)),
            );
            let detail = match result.outcome {
                VerifyOutcome::Passed => format!(
                    "same results as the original ({} probe results)",
                    result.compared.len()
                ),
                VerifyOutcome::Failed => "FAILED".into(),
                VerifyOutcome::Unverified => format!(
                    "UNVERIFIED: {}",
                    result.unverified.clone().unwrap_or_default()
                ),
            };
            ctx.report.verify = Some(result);
            ctx.done(Some(detail));
        }
        // End to end.
        let mut stack_result = VerifyResult::default();
        if let Some(orig) = &original_host {
            let t = Instant::now();
            let slim = self.host_commands(&running).await;
            let c = probe::compare(orig, &slim);
            stack_result
                .problems
                .extend(c.problems.iter().map(ToString::to_string));
            stack_result.compared.extend(c.agreed);
            stack_result
                .mismatches
                .extend(c.mismatches.iter().map(ToString::to_string));
            mismatches.extend(
                c.mismatches
                    .iter()
                    .map(|m| format!("stack host command: {m}")),
            );
            stack_result.probe = Some(slim);
            stack_result.conclude();
            self.step(
                Phase::Verify,
                t,
                format!(
                    "stack: {} of {} host commands agree with the original",
                    stack_result.compared.len(),
                    orig.host_commands.len()
                ),
            );
        } else {
            stack_result.unverified =
                Some("the Compose file has no x-slim probe-cmds for the stack".into());
            stack_result.conclude();
        }
        self.report.verify = Some(stack_result);
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(StackError::Verify { mismatches })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::SlimExtension;

    #[test]
    fn a_service_request_takes_the_stack_options_and_its_own_settings() {
        let mut stack = SessionRequest {
            force: true,
            verify: Some(true),
            ..Default::default()
        };
        stack.probes.ready_timeout_secs = 7;
        stack.probes.exec_probes = vec!["from the command line".into()];
        stack.keep.include_paths = vec!["/etc/a".into()];
        let svc = ServiceSpec {
            name: "db".into(),
            image: "pg:15".into(),
            command: Some(vec!["postgres".into()]),
            environment: vec!["A=1".into()],
            ports: vec!["5432/tcp".into()],
            slim: SlimExtension {
                http_probe: Some(false),
                exec_probes: vec!["psql -c 'select 1'".into()],
                include_paths: vec!["/usr/share/pg".into()],
                tag: Some("pg.slim:15".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = service_request(&stack, &svc);
        assert_eq!(r.image, "pg:15");
        assert_eq!(r.tag.as_deref(), Some("pg.slim:15"));
        assert!(r.force);
        assert_eq!(r.verify, Some(true));
        assert_eq!(r.run.cmd.as_deref(), Some(&["postgres".to_string()][..]));
        assert_eq!(r.run.env, ["A=1"]);
        assert_eq!(r.run.expose, ["5432/tcp"]);
        assert!(!r.probes.http_probe);
        assert_eq!(r.probes.exec_probes, ["psql -c 'select 1'"]);
        assert_eq!(r.probes.ready_timeout_secs, 7);
        assert_eq!(r.keep.include_paths, ["/etc/a", "/usr/share/pg"]);
        assert!(r.compose.is_none());
    }
}
