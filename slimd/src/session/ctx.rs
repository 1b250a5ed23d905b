//! What the phases of one session share: the daemon, the request, the
//! engine, the report being filled, the resources to remove at the end,
//! and the progress helpers (phase begin/done/skip, notes, warnings).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use super::{Daemon, LABEL_INSTANCE, LABEL_SESSION, SessionHandle, collect::Collector};
use crate::{
    engine::Engine,
    model::{Phase, Progress, SessionRequest},
    report::{PhaseTiming, Report},
    tracer::TraceSession,
};

/// What must be removed when the session ends, however it ends.
#[derive(Default)]
pub(crate) struct Resources {
    pub containers: Mutex<Vec<String>>,
    /// The app's trace session and those of verify runs.
    pub traces: Mutex<Vec<Arc<TraceSession>>>,
}

/// Where a session's containers join a Compose stack (empty for a single
/// build): the stack's networks, the service's name on them, its
/// healthcheck and its volumes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement {
    /// Engine network names: created on the first, connected to the rest.
    pub networks: Vec<String>,
    pub aliases: Vec<String>,
    pub healthcheck: Option<crate::engine::Healthcheck>,
    /// docker `-v` forms, besides the request's mounts.
    pub mounts: Vec<String>,
    pub stop_timeout: Option<i64>,
    pub stop_signal: Option<String>,
    /// Labels of the service (the Compose file's `labels:`).
    pub labels: BTreeMap<String, String>,
}

/// Everything the phases share.
pub(crate) struct Ctx<'a> {
    pub daemon: &'a Arc<Daemon>,
    pub handle: &'a SessionHandle,
    pub req: &'a SessionRequest,
    pub res: &'a Resources,
    pub engine: Engine,
    pub scratch: PathBuf,
    pub report: Report,
    pub phase_start: Option<(Phase, Instant)>,
    pub placement: Placement,
}

impl Ctx<'_> {
    pub fn begin(&mut self, phase: Phase) {
        self.handle.emit(Progress::PhaseStarted { phase });
        self.phase_start = Some((phase, Instant::now()));
    }

    pub fn done(&mut self, detail: Option<String>) {
        if let Some((phase, t)) = self.phase_start.take() {
            let ms = t.elapsed().as_millis() as u64;
            self.report.phases.push(PhaseTiming { phase, ms });
            self.handle.emit(Progress::PhaseDone { phase, ms, detail });
        }
    }

    pub fn skip(&mut self, phase: Phase, why: &str) {
        self.handle.emit(Progress::PhaseSkipped {
            phase,
            why: why.into(),
        });
    }

    pub fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        self.handle.emit(Progress::Warning {
            message: message.clone(),
        });
        self.report.warnings.push(message);
    }

    pub fn note(&self, message: String) {
        self.handle.emit(Progress::Note { message });
    }

    /// Labels of every container the session creates (`role`: trace,
    /// verify, verify-seccomp).
    pub fn labels(&self, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_SESSION.to_string(), self.handle.id.clone()),
            (
                LABEL_INSTANCE.to_string(),
                self.daemon.config.cgroup_root.clone(),
            ),
            ("slimd.role".to_string(), role.to_string()),
        ])
    }

    /// Starts tracing a fresh session cgroup named `name` under the daemon's
    /// root, with its event collector; the cgroup is removed with the
    /// session's other resources.
    pub fn trace(
        &self,
        name: &str,
        keep_events: bool,
    ) -> super::error::Result<(Arc<TraceSession>, Collector)> {
        let tracer = self
            .daemon
            .tracer()
            .map_err(super::error::SessionError::TracerUnavailable)?;
        let mut t = tracer.start_session(&self.daemon.config.cgroup_root, name)?;
        let events = t
            .take_events()
            .expect("a fresh trace session has its events");
        let t = Arc::new(t);
        self.res.traces.lock().unwrap().push(t.clone());
        Ok((t, Collector::spawn(events, keep_events)))
    }
}
