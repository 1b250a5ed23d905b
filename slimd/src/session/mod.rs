//! Sessions: one build or profile from start to end — phases, progress,
//! cancellation, cleanup, the report. The conductor: it calls the tracer,
//! the engine, the probes, the resolver and the image library; they never
//! call it.
//!
//! The [`Daemon`] owns what lives as long as the process: the loaded tracer,
//! the engine connection, the registry of running sessions, and the state
//! directory (`<state>/sessions/<id>/` keeps each session's `session.json`
//! and `report.json`; `<state>/scratch/<id>/` holds its temporary files and
//! is removed when it ends).

pub mod analyse;
pub mod artifacts;
pub mod cleanup;
mod collect;
pub(crate) mod container;
pub(crate) mod ctx;
pub mod error;
pub(crate) mod host_commands;
pub mod mounts;
pub mod oci_output;
pub(crate) mod run;
pub(crate) mod verify;
mod watch_cri;
pub mod watcher;

pub use error::SessionError;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    engine::Engine,
    model::{
        ApiError, Caller, FailureKind, Phase, Progress, SessionInfo, SessionRequest, StatusInfo,
    },
    probe::HostCommandResults,
    tracer::{
        Tracer, TracerOptions,
        features::{Features, ProbeOptions},
    },
};

/// Labels on everything a session creates.
pub const LABEL_SESSION: &str = "slimd.session";
/// Which daemon instance (its cgroup root name) made it: two daemons on one
/// host (e.g. tests) never clean up each other's sessions.
pub const LABEL_INSTANCE: &str = "slimd.instance";

/// Where containerd listens: detected to explain that it is not supported.
pub const CONTAINERD_SOCKET: &str = crate::engine::kind::CONTAINERD_SOCKET;

/// A fresh session id: short, sortable by time, safe as a cgroup name,
/// label value and directory name.
pub fn new_session_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut rnd = [0u8; 4];
    // SAFETY: getrandom writes at most rnd.len() bytes into rnd.
    let n = unsafe { libc::getrandom(rnd.as_mut_ptr().cast(), rnd.len(), 0) };
    if n != rnd.len() as isize {
        rnd = (std::process::id() ^ now.subsec_nanos()).to_le_bytes();
    }
    format!("{:x}-{}", now.as_secs(), hex::encode(rnd))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Daemon settings.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Reports and scratch space (`/var/lib/slimd`).
    pub state_dir: PathBuf,
    /// Directory name under the cgroup2 root, and the instance label.
    pub cgroup_root: String,
    /// Which engine (default: whichever answers on the socket).
    pub engine: Option<crate::engine::EngineKind>,
    /// Engine socket (default: the engine's default).
    pub engine_socket: Option<PathBuf>,
    /// containerd's namespace, with the containerd engine (`k8s.io`).
    pub containerd_namespace: String,
    pub tracer: TracerOptions,
    /// Watch mode: profile containers started by others that carry this
    /// `key=value` label (the tracer's watch prefixes must be set too).
    pub watch_label: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/slimd"),
            cgroup_root: "slimd".into(),
            engine: None,
            engine_socket: None,
            containerd_namespace: crate::containerd::DEFAULT_NAMESPACE.into(),
            tracer: TracerOptions::default(),
            watch_label: None,
        }
    }
}

/// A session the daemon is running (or ran, until it is forgotten).
pub struct SessionHandle {
    pub id: String,
    pub detach: bool,
    /// The uid of the user who started it.
    pub owner: u32,
    info: Mutex<SessionInfo>,
    history: Mutex<Vec<Progress>>,
    tx: broadcast::Sender<Progress>,
    pub cancel: CancellationToken,
    continue_signal: Notify,
    finished: watch::Sender<bool>,
    /// Host commands the client is running now (see `host_commands`).
    host: host_commands::Pending,
    /// Whose client runs this session's host commands instead of its own
    /// (a Compose service's: the stack's).
    host_via: Option<Arc<SessionHandle>>,
}

impl SessionHandle {
    /// A handle whose cancellation follows `cancel` (the daemon's token's
    /// child: shutting the daemon down cancels every session).
    fn new(id: String, req: &SessionRequest, owner: u32, cancel: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let (finished, _) = watch::channel(false);
        Self {
            info: Mutex::new(SessionInfo {
                id: id.clone(),
                kind: req.kind,
                image: req.image.clone(),
                state: "running".into(),
                phase: None,
                started: unix_now(),
                finished: None,
                target: None,
                message: None,
                owner: Some(owner),
                pod: None,
            }),
            id,
            detach: req.detach,
            owner,
            history: Mutex::new(Vec::new()),
            tx,
            cancel,
            continue_signal: Notify::new(),
            finished,
            host: Default::default(),
            host_via: None,
        }
    }

    /// Records and broadcasts one progress line. Its messages are shown the
    /// way people read names (see [`crate::image::name`]); the `Done`
    /// summary comes from a report that is shown already.
    pub fn emit(&self, mut p: Progress) {
        match &mut p {
            Progress::PhaseDone {
                detail: Some(m), ..
            }
            | Progress::PhaseSkipped { why: m, .. }
            | Progress::Note { message: m }
            | Progress::Warning { message: m }
            | Progress::Failed { message: m, .. } => crate::image::name::show_in_place(m),
            _ => {}
        }
        if let Progress::PhaseStarted { phase } = &p {
            self.info.lock().unwrap().phase = Some(*phase);
        }
        let mut h = self.history.lock().unwrap();
        h.push(p.clone());
        let _ = self.tx.send(p);
    }

    /// Everything so far plus a receiver for what follows (no gap, no
    /// duplicate: both are taken under the history lock).
    pub fn subscribe(&self) -> (Vec<Progress>, broadcast::Receiver<Progress>) {
        let h = self.history.lock().unwrap();
        (h.clone(), self.tx.subscribe())
    }

    pub fn info(&self) -> SessionInfo {
        self.info.lock().unwrap().clone()
    }

    pub(crate) fn set_info(&self, info: SessionInfo) {
        *self.info.lock().unwrap() = info;
    }

    pub fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }

    /// Waits until the session has ended and cleaned up.
    pub async fn wait(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|f| *f).await;
    }

    /// `--continue-after signal`: the user says "go on".
    pub fn signal_continue(&self) {
        self.continue_signal.notify_one();
    }

    /// The client's results of the host commands it was asked to run.
    pub fn deliver_host_results(&self, results: HostCommandResults) -> Result<(), String> {
        self.host.deliver(results)
    }
}

/// What lives as long as the daemon.
///
/// It owns every task it starts, the way bpfman's serve loop does: one root
/// [`CancellationToken`] whose children are the sessions' tokens, and a
/// [`TaskTracker`] holding the sessions, the watcher and its decisions.
/// [`Daemon::shutdown`] cancels the root, joins the tasks, sweeps leftovers,
/// and last stops the tracer's ring-buffer reader and joins it.
pub struct Daemon {
    pub config: DaemonConfig,
    /// The kernel features probed at start-up.
    features: Features,
    tracer: Result<Tracer, String>,
    engine: tokio::sync::Mutex<Option<Engine>>,
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
    /// Cancelled when shutdown begins; every session's token is a child.
    shutdown: CancellationToken,
    /// Sessions, the watcher and its decision tasks.
    tasks: TaskTracker,
    /// Held while a new session or an adopted cgroup comes to life, and by
    /// shutdown while it begins: nothing starts once shutdown has begun.
    lifecycle: Mutex<()>,
}

impl Daemon {
    /// Probes the kernel's features, loads the tracer, connects to the
    /// engine, prepares the state directory and removes leftovers of
    /// earlier runs. A kernel that lacks a feature slimd needs is fatal,
    /// named with the Linux version that brings it. A tracer or engine
    /// that fails otherwise is remembered and reported, not fatal: `status`
    /// and `xray` still work, and builds say what is missing.
    pub async fn start(config: DaemonConfig) -> anyhow::Result<Arc<Self>> {
        let features = Features::probe(&ProbeOptions {
            cgroup_root: config.cgroup_root.clone(),
            watch: config.watch_label.is_some(),
        });
        for f in &features.list {
            tracing::info!(
                feature = %f.name,
                since = %f.since,
                presence = ?f.presence,
                detail = %f.detail,
                "kernel feature"
            );
        }
        features.check()?;
        for d in ["sessions", "scratch"] {
            let p = config.state_dir.join(d);
            std::fs::create_dir_all(&p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?;
        }
        let tracer = Tracer::load(config.tracer.clone()).map_err(|e| e.to_string());
        match &tracer {
            Ok(t) => tracing::info!(
                tracepoints = t.info().tracepoints.len(),
                cgroup = %t.cgroups().v2_mount.display(),
                "tracer loaded"
            ),
            Err(e) => tracing::error!("tracer unavailable: {e}"),
        }
        let engine = match Engine::connect_in(
            config.engine,
            config.engine_socket.as_deref(),
            &config.containerd_namespace,
        )
        .await
        {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("engine not reachable yet: {e}");
                None
            }
        };
        let daemon = Arc::new(Self {
            config,
            features,
            tracer,
            engine: tokio::sync::Mutex::new(engine),
            sessions: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            lifecycle: Mutex::new(()),
        });
        cleanup::remove_leftovers(&daemon).await;
        if let Some(label) = daemon.config.watch_label.clone() {
            daemon.tasks.spawn(watcher::run(daemon.clone(), label));
        }
        Ok(daemon)
    }

    pub fn tracer(&self) -> Result<&Tracer, String> {
        self.tracer.as_ref().map_err(Clone::clone)
    }

    /// The engine, connecting on first use (dockerd or Podman's service may
    /// start after us).
    pub async fn engine(&self) -> Result<Engine, crate::engine::EngineError> {
        let mut g = self.engine.lock().await;
        if let Some(e) = g.as_ref() {
            return Ok(e.clone());
        }
        let e = Engine::connect_in(
            self.config.engine,
            self.config.engine_socket.as_deref(),
            &self.config.containerd_namespace,
        )
        .await
        .inspect_err(|_| {
            if self.config.engine.is_none() && Path::new(CONTAINERD_SOCKET).exists() {
                tracing::warn!(
                    "containerd answers at {CONTAINERD_SOCKET}: to build through it, start slimd with --engine containerd"
                );
            }
        })?;
        *g = Some(e.clone());
        Ok(e)
    }

    pub fn session_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("sessions").join(id)
    }

    pub fn scratch_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("scratch").join(id)
    }

    /// Whether shutdown has begun (nothing new starts from then on).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Runs `start` unless shutdown has begun, atomically with its
    /// beginning: what `start` brings to life is owned by the daemon and
    /// cancelled and joined by [`Daemon::shutdown`].
    pub(crate) fn unless_shutting_down<T>(&self, start: impl FnOnce() -> T) -> Option<T> {
        let _g = self.lifecycle.lock().unwrap();
        (!self.shutting_down()).then(start)
    }

    /// Registers a session (it shows in `slim sessions` from now on).
    pub fn register(
        &self,
        req: &SessionRequest,
        caller: &Caller,
    ) -> Result<Arc<SessionHandle>, ApiError> {
        let usage = |message: String| ApiError {
            kind: FailureKind::Usage,
            message,
        };
        if req.image.trim().is_empty() && req.from_profile.is_none() {
            return Err(usage("no image given".into()));
        }
        if req.detach && !req.probes.probe_cmds.is_empty() {
            return Err(usage(DETACH_WITH_HOST_COMMANDS.into()));
        }
        if let Some(p) = &req.from_profile
            && !caller.may_use(self.owner_of(p))
        {
            return Err(ApiError {
                kind: FailureKind::Forbidden,
                message: format!("session {p} belongs to another user"),
            });
        }

        if self.shutting_down() {
            return Err(ApiError {
                kind: FailureKind::Internal,
                message: "slimd is shutting down: no new sessions".into(),
            });
        }
        let id = new_session_id();
        let handle = Arc::new(SessionHandle::new(
            id.clone(),
            req,
            caller.uid,
            self.shutdown.child_token(),
        ));
        handle.emit(Progress::Session { id: id.clone() });
        self.sessions.lock().unwrap().insert(id, handle.clone());
        Ok(handle)
    }

    /// Registers a session that is part of `parent` (a Compose stack's
    /// service): it belongs to the parent's owner, cancelling the parent
    /// cancels it, and its host commands run through the parent's client
    /// (it has none of its own).
    pub(crate) fn register_child(
        &self,
        req: &SessionRequest,
        parent: &Arc<SessionHandle>,
    ) -> Result<Arc<SessionHandle>, ApiError> {
        if self.shutting_down() {
            return Err(ApiError {
                kind: FailureKind::Internal,
                message: "slimd is shutting down: no new sessions".into(),
            });
        }
        let id = new_session_id();
        let mut handle =
            SessionHandle::new(id.clone(), req, parent.owner, parent.cancel.child_token());
        handle.host_via = Some(parent.clone());
        let handle = Arc::new(handle);
        handle.emit(Progress::Session { id: id.clone() });
        self.sessions.lock().unwrap().insert(id, handle.clone());
        Ok(handle)
    }

    /// Forgets a finished session (its report stays on disk).
    pub fn unregister(&self, handle: &SessionHandle) {
        self.sessions.lock().unwrap().remove(&handle.id);
        let _ = handle.finished.send(true);
    }

    /// Checks the host paths of `req` with `caller`'s rights (its mounts,
    /// `--vuln-db`) and puts the checked ones in their place: what a
    /// caller could not open, no session of theirs reads (Forbidden).
    pub fn check_paths(&self, req: &mut SessionRequest, caller: &Caller) -> Result<(), ApiError> {
        let protected = mounts::Protected {
            state_dir: self.config.state_dir.clone(),
            engine_socket: self.engine_socket_path(),
        };
        let forbidden = |e: mounts::MountError| ApiError {
            kind: FailureKind::Forbidden,
            message: e.to_string(),
        };
        req.run.mounts = mounts::check(&req.run, caller, &protected).map_err(forbidden)?;
        if let Some(db) = &req.vuln_db {
            req.vuln_db = Some(mounts::check_vuln_db(db, caller, &protected).map_err(forbidden)?);
        }
        if let Some(out) = &req.oci_output {
            oci_output::check(out, caller, req.force)?;
        }
        Ok(())
    }

    /// Starts a session in the background and returns its handle.
    pub fn start_session(
        self: &Arc<Self>,
        req: SessionRequest,
        caller: &Caller,
    ) -> Result<Arc<SessionHandle>, ApiError> {
        let mut req = req;
        self.check_paths(&mut req, caller)?;
        let handle = self.register(&req, caller)?;
        let daemon = self.clone();
        let h = handle.clone();
        let span = tracing::info_span!("session", id = %h.id, image = %req.image);
        let task = async move {
            run::run(daemon.clone(), h.clone(), req).await;
            daemon.unregister(&h);
        }
        .instrument(span);
        let started = self.unless_shutting_down(|| {
            self.tasks.spawn(task);
        });
        if started.is_none() {
            self.unregister(&handle);
            return Err(ApiError {
                kind: FailureKind::Internal,
                message: "slimd is shutting down: no new sessions".into(),
            });
        }
        Ok(handle)
    }

    pub fn session(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.lock().unwrap().get(id).cloned()
    }

    pub fn running_ids(&self) -> Vec<String> {
        self.sessions.lock().unwrap().keys().cloned().collect()
    }

    /// The uid that owns session `id` (running or finished), if it exists.
    pub fn owner_of(&self, id: &str) -> Option<u32> {
        if let Some(h) = self.session(id) {
            return Some(h.owner);
        }
        if !valid_id(id) {
            return None;
        }
        read_json::<SessionInfo>(&self.session_dir(id).join("session.json"))
            .map(|i| i.owner.unwrap_or(0))
    }

    /// The last progress line of a session that has ended.
    pub fn ended(&self, id: &str) -> Option<Progress> {
        if !valid_id(id) {
            return None;
        }
        read_json(&self.session_dir(id).join(LAST_FILE))
    }

    /// Where the engine listens (its socket file), for the mount check.
    pub fn engine_socket_path(&self) -> PathBuf {
        self.config
            .engine_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::engine::DEFAULT_SOCKET))
    }

    /// The sessions `caller` may see: root sees every one, anyone else only
    /// their own.
    pub fn list_for(&self, caller: &Caller) -> Vec<SessionInfo> {
        self.list()
            .into_iter()
            .filter(|i| caller.may_use(i.owner))
            .collect()
    }

    /// Running sessions, then finished ones from the state directory,
    /// newest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut out: Vec<SessionInfo> = self
            .sessions
            .lock()
            .unwrap()
            .values()
            .map(|h| h.info())
            .collect();
        let running: Vec<String> = out.iter().map(|i| i.id.clone()).collect();
        if let Ok(dir) = std::fs::read_dir(self.config.state_dir.join("sessions")) {
            for e in dir.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if running.contains(&id) {
                    continue;
                }
                if let Some(info) = read_json::<SessionInfo>(&e.path().join("session.json")) {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
        out
    }

    /// A session's report (finished sessions only).
    pub fn report(&self, id: &str) -> Option<serde_json::Value> {
        if !valid_id(id) {
            return None;
        }
        read_json(&self.session_dir(id).join("report.json"))
    }

    /// Whether a session started by `uid` built the image `image_id` (what
    /// a user other than root may replace with `--force`).
    pub fn built_by(&self, uid: u32, image_id: &str) -> bool {
        self.list()
            .iter()
            .filter(|i| i.owner.unwrap_or(0) == uid)
            .filter_map(|i| self.report(&i.id))
            .any(|r| r["target_id"].as_str() == Some(image_id))
    }

    pub fn cancel(&self, id: &str) -> bool {
        match self.session(id) {
            Some(h) => {
                h.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the daemon's work in order: nothing new starts; every session
    /// (and the watcher, with its decisions) is cancelled and joined, within
    /// a deadline; leftovers are swept; then the ring-buffer reader, which
    /// the sessions needed until their end, is stopped and joined.
    pub async fn shutdown(&self) {
        {
            let _g = self.lifecycle.lock().unwrap();
            self.shutdown.cancel();
        }
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(45), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} task(s) did not end within 45 s of shutdown; their leftovers are swept",
                self.tasks.len()
            );
        }
        cleanup::remove_leftovers(self).await;
        if let Ok(t) = &self.tracer {
            t.stop().await;
        }
    }

    /// Spawns a task the daemon owns (joined by [`Daemon::shutdown`]).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Resolves when shutdown begins.
    pub(crate) async fn shutdown_begun(&self) {
        self.shutdown.cancelled().await
    }

    pub async fn status(&self) -> StatusInfo {
        let (engine, engine_error) = match self.engine().await {
            Ok(e) => match e.version().await {
                Ok(v) => (Some(v), None),
                Err(err) => (None, Some(err.to_string())),
            },
            Err(err) => (None, Some(err.to_string())),
        };
        let (mode, mount, tracepoints) = match &self.tracer {
            Ok(t) => {
                let c = t.cgroups();
                (
                    Some(format!("{:?}", c.mode).to_lowercase()),
                    Some(c.v2_mount.display().to_string()),
                    t.info().tracepoints.clone(),
                )
            }
            Err(_) => match crate::tracer::CgroupHost::discover() {
                Ok(c) => (
                    Some(format!("{:?}", c.mode).to_lowercase()),
                    Some(c.v2_mount.display().to_string()),
                    Vec::new(),
                ),
                Err(_) => (None, None, Vec::new()),
            },
        };
        StatusInfo {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            cgroup_mode: mode,
            cgroup_v2_mount: mount,
            tracer_error: self.tracer.as_ref().err().cloned(),
            features: self.features.list.clone(),
            tracepoints,
            engine,
            engine_error,
            sessions_running: self.sessions.lock().unwrap().len(),
            state_dir: self.config.state_dir.display().to_string(),
        }
    }
}

/// Streams `docker save` of an image into the image library, which spools
/// the layers into `scratch` (never the whole image in memory).
pub async fn export_image(
    engine: &Engine,
    image_id: &str,
    scratch: &Path,
) -> Result<crate::image::Image, String> {
    use futures_util::TryStreamExt;
    let stream = engine.export_image(image_id).map_err(std::io::Error::other);
    image_from_stream(stream, scratch)
        .await
        .map_err(|e| format!("reading the exported image: {e}"))
}

/// Reads an image tar arriving as a byte stream (`docker save`, an OCI
/// layout) into the image library, off the async threads; the layers are
/// spooled into `scratch`, never held whole in memory.
async fn image_from_stream(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    scratch: &Path,
) -> Result<crate::image::Image, String> {
    let reader = tokio_util::io::StreamReader::new(Box::pin(stream));
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let scratch = scratch.to_path_buf();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = rt.enter();
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        crate::image::Image::from_save_stream(
            std::io::BufReader::with_capacity(1 << 20, sync),
            &scratch,
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// An engine image's `docker save` tar as a byte stream, for clients that
/// read the image themselves (`slim diff`). The image is inspected first,
/// so a missing one is a typed error before any byte is sent.
pub async fn export_stream(
    daemon: &Arc<Daemon>,
    image: &str,
) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>, ApiError>
{
    use futures_util::{StreamExt, TryStreamExt};
    let (engine, info) = engine_and_image(daemon, image).await?;
    Ok(engine
        .export_image(&info.id)
        .map_err(std::io::Error::other)
        .boxed())
}

/// The engine and the inspected `image`, for the routes that read an image
/// (a missing image is `ImageNotFound`, anything else internal).
async fn engine_and_image(
    daemon: &Arc<Daemon>,
    image: &str,
) -> Result<(Engine, crate::engine::ImageInfo), ApiError> {
    let engine = daemon.engine().await.map_err(|e| ApiError {
        kind: FailureKind::Internal,
        message: e.to_string(),
    })?;
    let info = engine.inspect_image(image).await.map_err(|e| ApiError {
        kind: if matches!(e, crate::engine::EngineError::ImageNotFound(_)) {
            FailureKind::ImageNotFound
        } else {
            FailureKind::Internal
        },
        message: e.to_string(),
    })?;
    Ok((engine, info))
}

/// `slim xray` through the daemon: export, read, analyse, clean up.
pub async fn xray(daemon: &Arc<Daemon>, image: &str) -> Result<crate::image::XrayReport, ApiError> {
    use futures_util::TryStreamExt;
    let (engine, info) = engine_and_image(daemon, image).await?;
    let stream = engine.export_image(&info.id).map_err(std::io::Error::other);
    xray_stream(daemon, stream, info.repo_tags, "the exported image").await
}

/// The xray of an image tar arriving as `stream` (`docker save`, an OCI
/// layout), read into a scratch directory that is removed afterwards;
/// `tags` name it when the tar does not.
async fn xray_stream(
    daemon: &Arc<Daemon>,
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    tags: Vec<String>,
    what: &str,
) -> Result<crate::image::XrayReport, ApiError> {
    let scratch = daemon.scratch_dir(&format!("xray-{}", new_session_id()));
    let result = async {
        let mut img = image_from_stream(stream, &scratch)
            .await
            .map_err(|e| format!("reading {what}: {e}"))?;
        if img.repo_tags.is_empty() {
            img.repo_tags = tags;
        }
        tokio::task::spawn_blocking(move || crate::image::XrayReport::build(&img))
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result.map_err(|message| ApiError {
        kind: FailureKind::Internal,
        message: crate::image::name::shown(&message).into_owned(),
    })
}

/// The API's error for a containerd error: no image is `ImageNotFound`,
/// an existing name `TagExists` (as `--tag` without `--force` is for
/// Docker), other bad input (missing socket, bad archive) `Usage`.
/// What a caller may ask of containerd through the daemon, by the daemon's
/// edges: a member of the socket's group reaches only the node's own
/// containerd ([`crate::containerd::DEFAULT_SOCKET`]; a path of their
/// choosing would have root connect wherever they point) and may not
/// replace an existing image (with Docker a member replaces only what their
/// own sessions built; a load is not a session). Root may do both.
pub fn containerd_refusal(
    caller: &Caller,
    target: &crate::model::ContainerdTarget,
    replace: bool,
) -> Option<ApiError> {
    if caller.is_root() {
        return None;
    }
    let why = if target.socket != std::path::Path::new(crate::containerd::DEFAULT_SOCKET) {
        format!(
            "only root may point the daemon at another containerd socket ({}); leave --containerd without a path to use {}",
            target.socket.display(),
            crate::containerd::DEFAULT_SOCKET
        )
    } else if replace {
        "only root may replace an image in containerd (--force): load it under a new name".into()
    } else {
        return None;
    };
    Some(ApiError {
        kind: FailureKind::Forbidden,
        message: why,
    })
}

fn containerd_failure(e: crate::containerd::ContainerdError) -> ApiError {
    ApiError {
        kind: if e.is_not_found() {
            FailureKind::ImageNotFound
        } else if matches!(e, crate::containerd::ContainerdError::ImageExists { .. }) {
            FailureKind::TagExists
        } else if e.is_usage() {
            FailureKind::Usage
        } else {
            FailureKind::Internal
        },
        message: e.to_string(),
    }
}

/// `slim xray --containerd`: the image read from containerd's content
/// store as an OCI layout stream, analysed, the scratch removed.
pub async fn xray_containerd(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    target: &crate::model::ContainerdTarget,
    image: &str,
) -> Result<crate::image::XrayReport, ApiError> {
    if let Some(e) = containerd_refusal(caller, target, false) {
        return Err(e);
    }
    let cd = crate::containerd::Containerd::connect(&target.socket, &target.namespace)
        .await
        .map_err(containerd_failure)?;
    let stream = cd.export_layout(image).await.map_err(containerd_failure)?;
    xray_stream(
        daemon,
        stream,
        vec![image.to_string()],
        "the image from containerd",
    )
    .await
}

/// `slim load --containerd`: an OCI layout tar from the client, unpacked
/// into scratch as it arrives, written into containerd, the scratch removed.
pub async fn load_containerd(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    req: &crate::model::LoadRequest,
    body: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
) -> Result<crate::containerd::write::Loaded, ApiError> {
    if let Some(e) = containerd_refusal(caller, &req.containerd, req.force) {
        return Err(e);
    }
    let cd =
        crate::containerd::Containerd::connect(&req.containerd.socket, &req.containerd.namespace)
            .await
            .map_err(containerd_failure)?;
    if !req.force
        && cd
            .image(&req.name)
            .await
            .map_err(containerd_failure)?
            .is_some()
    {
        return Err(containerd_failure(
            crate::containerd::ContainerdError::ImageExists {
                name: req.name.clone(),
                namespace: cd.namespace().into(),
            },
        ));
    }
    let scratch = daemon.scratch_dir(&format!("load-{}", new_session_id()));
    let result = async {
        let reader = tokio_util::io::StreamReader::new(Box::pin(body));
        let rt = tokio::runtime::Handle::current();
        let dir = scratch.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = rt.enter();
            let sync = tokio_util::io::SyncIoBridge::new(reader);
            crate::containerd::write::unpack_layout(
                std::io::BufReader::with_capacity(1 << 20, sync),
                &dir,
                std::path::Path::new("the archive"),
            )
        })
        .await
        .map_err(|e| ApiError {
            kind: FailureKind::Internal,
            message: e.to_string(),
        })?
        .map_err(containerd_failure)?;
        cd.load_layout(&scratch, &req.name, req.force, req.snapshotter.as_deref())
            .await
            .map_err(containerd_failure)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Why `--detach` and `--probe-cmd` do not go together.
pub const DETACH_WITH_HOST_COMMANDS: &str = "--detach cannot be used with --probe-cmd: host commands run in the slim client, as you, so the client must stay until they are done (the daemon never runs a command line a client sent)";

/// Session ids come from clients: only ours are valid (no path tricks).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() < 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes JSON atomically (temp file + rename), so a crash never leaves half
/// a report; the file is the daemon's alone (mode 0600) until
/// [`hand_over`] gives the user's files to their owner.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(&data)?;
    std::fs::rename(&tmp, path)
}

/// The last progress line of a finished session, kept for `slim attach`.
const LAST_FILE: &str = "last.json";
/// Files of a session directory that stay the daemon's own.
const DAEMON_FILES: [&str; 4] = [
    "session.json",
    "request.json",
    LAST_FILE,
    analyse::PROFILE_FILE,
];

/// Makes a session directory the daemon's, traversable but not listable
/// by others (mode 0711), so what [`hand_over`] gives its owner is theirs
/// to read and no one else's.
pub(crate) fn prepare_session_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// At a session's end: keeps its last progress line, and gives its report
/// and artifacts to `owner` (mode 0600, readable by the owner and root);
/// the directory stays root's (0711), so an owner cannot plant a link the
/// daemon would write through. The daemon's own files stay root's, 0600.
pub(crate) fn hand_over(dir: &Path, owner: u32, last: &Progress) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = write_json(&dir.join(LAST_FILE), last) {
        tracing::warn!("cannot write {}: {e}", dir.join(LAST_FILE).display());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let daemons = DAEMON_FILES.iter().any(|f| e.file_name() == *f);
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if !is_file {
            continue;
        }
        let r = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).and_then(
            |()| {
                if daemons {
                    Ok(())
                } else {
                    std::os::unix::fs::lchown(&path, Some(owner), None)
                }
            },
        );
        if let Err(err) = r {
            tracing::warn!("cannot hand {} over to uid {owner}: {err}", path.display());
        }
    }
}

/// Phase names for humans.
pub fn phase_list() -> Vec<&'static str> {
    Phase::ALL.iter().map(|p| p.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(valid_id(&a));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
    }

    #[test]
    fn history_and_subscription_have_no_gap() {
        let req = SessionRequest {
            image: "x".into(),
            ..Default::default()
        };
        let h = SessionHandle::new("id".into(), &req, 0, CancellationToken::new());
        h.emit(Progress::PhaseStarted {
            phase: Phase::Inspect,
        });
        let (past, mut rx) = h.subscribe();
        h.emit(Progress::PhaseStarted {
            phase: Phase::Start,
        });
        assert_eq!(past.len(), 1);
        assert_eq!(
            rx.try_recv().unwrap(),
            Progress::PhaseStarted {
                phase: Phase::Start
            }
        );
        assert_eq!(h.info().phase, Some(Phase::Start));
    }

    #[test]
    fn members_reach_only_the_nodes_containerd_and_never_replace() {
        use crate::model::ContainerdTarget;
        let node = ContainerdTarget {
            socket: crate::containerd::DEFAULT_SOCKET.into(),
            namespace: "k8s.io".into(),
        };
        let other = ContainerdTarget {
            socket: "/run/docker.sock".into(),
            namespace: "k8s.io".into(),
        };
        let member = Caller {
            uid: 1000,
            gid: 1000,
            groups: vec![],
        };
        let root = Caller::root();
        assert!(containerd_refusal(&member, &node, false).is_none());
        for (target, replace) in [(&other, false), (&other, true), (&node, true)] {
            let e = containerd_refusal(&member, target, replace).expect("refused");
            assert_eq!(e.kind, FailureKind::Forbidden);
            assert!(e.message.contains("only root"), "{}", e.message);
        }
        for (target, replace) in [
            (&node, false),
            (&other, false),
            (&other, true),
            (&node, true),
        ] {
            assert!(containerd_refusal(&root, target, replace).is_none());
        }
    }
}
