//! Watch mode: profile containers that someone else starts (kubelet,
//! `docker run`, compose) when they carry the watch label.
//!
//! The kernel tags every new cgroup under the runtime's roots (e.g.
//! `/docker/<id>`) provisionally as it is created, so a container is traced
//! from its first instruction with no start-up race. Here each new cgroup
//! is matched to its container through the engine (on containerd, to its
//! pod through the CRI: [`super::watch_cri`]): a labelled container
//! is adopted (its events so far are delivered first), anything else is
//! dropped at once. When an adopted container exits, its profile — files
//! used, execs, connections, syscalls, seccomp profile — is written like a
//! `slim profile` report, and `slim build --from-profile ID` can build the
//! slim image from it later.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Daemon, SessionHandle,
    analyse::{Seen, analyse},
    error::SessionError,
    unix_now, write_json,
};
use crate::{
    model::{ApiError, FailureKind, Phase, Progress, SessionKind, SessionRequest},
    report::{PhaseTiming, Report},
    tracer::{NewCgroup, TraceEvent},
};

/// Default cgroup2 prefixes of the runtimes' containers: Docker with the
/// cgroupfs driver, and with the systemd driver; rootful Podman with the
/// cgroupfs manager (`/libpod_parent/libpod-<id>`) and the systemd one
/// (`/machine.slice/libpod-<id>.scope`); kubelet's pods with its cgroupfs
/// driver (`/kubepods/<qos>/pod<uid>/<id>`, guaranteed pods
/// `/kubepods/pod<uid>/<id>`) and its systemd driver
/// (`/kubepods.slice/…/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope`).
/// The kube prefixes also match the QoS and pod cgroups: those have no
/// container id and are dropped at once.
pub const DEFAULT_PREFIXES: &[&str] = &[
    "/docker/",
    "/system.slice/docker-",
    "/libpod_parent/libpod-",
    "/machine.slice/libpod-",
    "/kubepods/",
    "/kubepods.slice/",
];

// The kernel side holds a fixed number of prefixes of bounded length.
const _: () = {
    assert!(DEFAULT_PREFIXES.len() <= slimd_common::WATCH_PREFIXES as usize);
    let mut i = 0;
    while i < DEFAULT_PREFIXES.len() {
        assert!(DEFAULT_PREFIXES[i].len() <= slimd_common::WATCH_PREFIX_LEN);
        i += 1;
    }
};

/// Default label (or pod annotation, as cri-dockerd copies it) that asks for
/// a profile.
pub const DEFAULT_LABEL: &str = "slimd.dev/profile=true";

/// The container id in a runtime cgroup path (`/docker/<id>`,
/// `/system.slice/docker-<id>.scope`, `/libpod_parent/libpod-<id>`,
/// `/kubepods/.../<id>`, `/kubepods.slice/.../cri-containerd-<id>.scope`).
/// A pod or QoS cgroup has none.
pub fn container_id(path: &str) -> Option<&str> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    let last = ["docker-", "libpod-", "cri-containerd-"]
        .iter()
        .find_map(|p| last.strip_prefix(p))
        .unwrap_or(last);
    let last = last.strip_suffix(".scope").unwrap_or(last);
    (last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit())).then_some(last)
}

/// Whether labels ask for a profile (`key=value`, or the same as a pod
/// annotation copied into labels by cri-dockerd).
pub fn wants_profile(labels: &std::collections::BTreeMap<String, String>, label: &str) -> bool {
    let (key, value) = label.split_once('=').unwrap_or((label, "true"));
    let annotation = format!("annotation.{key}");
    // slimd's own containers are traced by their session already.
    if labels.contains_key(super::LABEL_SESSION) {
        return false;
    }
    [key, annotation.as_str()]
        .iter()
        .any(|k| labels.get(*k).is_some_and(|v| v == value))
}

/// Runs for the daemon's life: decides on every new cgroup.
pub async fn run(daemon: Arc<Daemon>, label: String) {
    let Ok(tracer) = daemon.tracer() else {
        return;
    };
    let Some(mut rx) = tracer.take_watch() else {
        return;
    };
    tracing::info!(label = %label, "watch mode: profiling labelled containers");
    if daemon.config.engine == Some(crate::engine::EngineKind::Containerd) {
        super::watch_cri::say_how(&daemon.config);
    }
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = daemon.shutdown_begun() => {
                tracing::info!("watch mode: stopped (shutting down)");
                return;
            }
            c = rx.recv() => {
                let Some(c) = c else { return };
                daemon.spawn(decide(daemon.clone(), c, label.clone()));
            }
            _ = sweep.tick() => {
                for id in tracer.sweep_pending(Duration::from_secs(60)) {
                    tracing::warn!(cgroup = id, "no decision on a new cgroup within 60 s: dropped");
                }
            }
        }
    }
}

async fn decide(daemon: Arc<Daemon>, c: NewCgroup, label: String) {
    let Ok(tracer) = daemon.tracer() else { return };
    let Some(cid) = container_id(&c.path) else {
        tracer.reject(c.id);
        return;
    };
    if daemon.config.engine == Some(crate::engine::EngineKind::Containerd) {
        let cid = cid.to_string();
        return super::watch_cri::decide(daemon.clone(), c, cid, &label).await;
    }
    let engine = match daemon.engine().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("watch: {e}");
            tracer.reject(c.id);
            return;
        }
    };
    let container = match engine.inspect_container(cid).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(
                container = cid,
                "watch: not a container of this engine: {e}"
            );
            tracer.reject(c.id);
            return;
        }
    };
    if !wants_profile(&container.labels, &label) {
        tracer.reject(c.id);
        return;
    }
    // Name the image as people know it (the container records its id).
    let image_name = engine
        .inspect_image(&container.image)
        .await
        .ok()
        .and_then(|i| i.repo_tags.first().cloned())
        .unwrap_or_else(|| container.image.clone());
    let mut container = container;
    container.image = image_name;
    let Some((handle, trace)) = adopt(&daemon, &c, &container.image, None) else {
        return;
    };
    tracing::info!(session = %handle.id, container = %container.name, image = %container.image, "watch: profiling");
    let exited = {
        let daemon = daemon.clone();
        let id = container.id.clone();
        async move {
            match daemon.engine().await {
                Ok(e) => {
                    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
                    let _ = e.wait_exit(&id, far).await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
    };
    let watched = Watched {
        name: container.name,
        image: container.image,
        pod: None,
    };
    profile_container(daemon, handle, trace, watched, exited).await;
}

/// Registers a watch session for the new cgroup `c` and adopts the cgroup
/// (its events so far are delivered first); on failure, or once shutdown
/// has begun, the cgroup is dropped and `None` returned.
pub(super) fn adopt(
    daemon: &Arc<Daemon>,
    c: &NewCgroup,
    image: &str,
    pod: Option<&crate::model::PodRef>,
) -> Option<(Arc<SessionHandle>, crate::tracer::TraceSession)> {
    let tracer = daemon.tracer().ok()?;
    let req = SessionRequest {
        kind: SessionKind::Watch,
        image: image.to_string(),
        detach: true,
        ..Default::default()
    };
    let handle = match daemon.register(&req, &crate::model::Caller::root()) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("watch: {}", e.message);
            tracer.reject(c.id);
            return None;
        }
    };
    if let Some(pod) = pod {
        let mut info = handle.info();
        info.pod = Some(pod.clone());
        handle.set_info(info);
    }
    // Never adopt once shutdown has begun: the check and the adoption are
    // one step, so shutdown sees either no adopted cgroup or a session it
    // owns and cancels.
    match daemon.unless_shutting_down(|| tracer.adopt(c, &handle.id)) {
        None => {
            tracer.reject(c.id);
            daemon.unregister(&handle);
            None
        }
        Some(Ok(t)) => Some((handle, t)),
        Some(Err(e)) => {
            tracing::warn!("watch: cannot adopt {}: {e}", c.path);
            tracer.reject(c.id);
            daemon.unregister(&handle);
            None
        }
    }
}

/// The container a watch session follows, as its runtime names it.
pub(super) struct Watched {
    pub name: String,
    /// The image as people name it (a tag where it has one).
    pub image: String,
    /// The Kubernetes pod and container, on a CRI node.
    pub pod: Option<crate::model::PodRef>,
}

/// Follows an adopted container until `exited` (or a cancel), then writes
/// its profile.
pub(super) async fn profile_container(
    daemon: Arc<Daemon>,
    handle: Arc<SessionHandle>,
    mut trace: crate::tracer::TraceSession,
    container: Watched,
    exited: impl std::future::Future<Output = ()>,
) {
    let dir = daemon.session_dir(&handle.id);
    let scratch = daemon.scratch_dir(&handle.id);
    let _ = super::prepare_session_dir(&dir);
    let _ = write_json(&dir.join("session.json"), &handle.info());
    let mut rx = trace.take_events().expect("adopted session");
    let collector = tokio::spawn(async move {
        let mut v: Vec<TraceEvent> = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let mut report = Report {
        id: handle.id.clone(),
        kind: SessionKind::Watch,
        image: container.image.clone(),
        pod: container.pod.clone(),
        started: unix_now(),
        ..Default::default()
    };
    handle.emit(Progress::Note {
        message: match &container.pod {
            Some(pod) => format!("profiling {pod} ({})", container.image),
            None => format!(
                "profiling container {} ({})",
                container.name, container.image
            ),
        },
    });
    handle.emit(Progress::PhaseStarted {
        phase: Phase::Probe,
    });
    let t = Instant::now();
    // The app runs as long as its owner wants: wait for its exit, or a cancel.
    tokio::select! {
        _ = exited => {}
        _ = handle.cancel.cancelled() => {}
    }
    report.phases.push(PhaseTiming {
        phase: Phase::Probe,
        ms: t.elapsed().as_millis() as u64,
    });
    handle.emit(Progress::PhaseStarted {
        phase: Phase::Collect,
    });
    let summary = trace.finish().await;
    let events = collector.await.unwrap_or_default();
    report.trace = Some(summary.stats);
    report.syscalls = summary
        .syscalls
        .iter()
        .map(|n| {
            crate::harden::syscall_name(*n)
                .map(str::to_string)
                .unwrap_or_else(|| format!("syscall_{n}"))
        })
        .collect();
    if summary.stats.lost > 0 {
        report.warnings.push(format!(
            "{} trace events were LOST (ring buffer full, or unreadable: see the daemon log)",
            summary.stats.lost
        ));
    }
    handle.emit(Progress::PhaseStarted {
        phase: Phase::Assemble,
    });
    let t = Instant::now();
    let result: Result<(), SessionError> = async {
        let engine = daemon.engine().await?;
        let info = engine.inspect_image(&container.image).await?;
        report.image_id = info.id.clone();
        analyse(
            &engine,
            &dir,
            &scratch.join("image"),
            &container.image,
            &info.id,
            Seen::Events(events),
            &summary.syscalls,
            &Default::default(),
            None,
            &mut report,
        )
        .await
        .map(|_| ())
    }
    .await;
    report.phases.push(PhaseTiming {
        phase: Phase::Assemble,
        ms: t.elapsed().as_millis() as u64,
    });
    let _ = std::fs::remove_dir_all(&scratch);
    report.finished = unix_now();
    let mut info = handle.info();
    info.finished = Some(report.finished);
    let report_path = dir.join("report.json");
    match &result {
        Ok(()) => {
            report.state = "succeeded".into();
            info.state = "succeeded".into();
        }
        Err(e) => {
            report.state = "failed".into();
            report.failure = Some(ApiError {
                kind: e.kind(),
                message: e.to_string(),
            });
            info.state = "failed".into();
            info.message = Some(crate::image::name::shown(&e.to_string()).into_owned());
        }
    }
    report.show_names();
    let _ = write_json(&report_path, &report);
    let _ = write_json(&dir.join("session.json"), &info);
    handle.set_info(info);
    let last = match result {
        Ok(()) => Progress::Done {
            summary: report.summary(&report_path.display().to_string()),
        },
        Err(e) => Progress::Failed {
            kind: if handle.cancel.is_cancelled() {
                FailureKind::Cancelled
            } else {
                e.kind()
            },
            message: e.to_string(),
        },
    };
    super::hand_over(&dir, handle.owner, &last);
    handle.emit(last);
    daemon.unregister(&handle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_paths() {
        let id = "a".repeat(64);
        assert_eq!(container_id(&format!("/docker/{id}")), Some(id.as_str()));
        assert_eq!(
            container_id(&format!("/system.slice/docker-{id}.scope")),
            Some(id.as_str())
        );
        assert_eq!(
            container_id(&format!("/kubepods/burstable/pod12/{id}")),
            Some(id.as_str())
        );
        assert_eq!(
            container_id(&format!("/libpod_parent/libpod-{id}")),
            Some(id.as_str())
        );
        assert_eq!(
            container_id(&format!("/machine.slice/libpod-{id}.scope")),
            Some(id.as_str())
        );
        assert_eq!(container_id("/libpod_parent/conmon"), None);
        // kubelet's layouts: containers have ids, pods and QoS classes none.
        assert_eq!(
            container_id(&format!("/kubepods/pod0b1c-22/{id}")),
            Some(id.as_str())
        );
        let slice =
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c_22.slice";
        assert_eq!(
            container_id(&format!("{slice}/cri-containerd-{id}.scope")),
            Some(id.as_str())
        );
        for pod_level in [
            "/kubepods/besteffort",
            "/kubepods/burstable/pod0b1c-22",
            "/kubepods/pod0b1c-22",
            "/kubepods.slice/kubepods-burstable.slice",
            slice,
        ] {
            assert_eq!(container_id(pod_level), None, "{pod_level}");
        }
        assert_eq!(container_id("/docker/notanid"), None);
        assert_eq!(container_id("/docker"), None);
    }

    #[test]
    fn kube_layouts_are_watched() {
        let id = "b".repeat(64);
        let watched = |p: &str| DEFAULT_PREFIXES.iter().any(|w| p.starts_with(w));
        for p in [
            format!("/kubepods/besteffort/pod0b1c-22/{id}"),
            format!("/kubepods/pod0b1c-22/{id}"),
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c_22.slice/cri-containerd-{id}.scope"
            ),
            format!("/kubepods.slice/kubepods-pod0b1c_22.slice/cri-containerd-{id}.scope"),
        ] {
            assert!(watched(&p), "{p}");
        }
        // The roots themselves, and look-alikes, are not.
        for p in [
            "/kubepods",
            "/kubepods.slice",
            "/kubepodsx/a",
            "/system.slice/containerd.service",
        ] {
            assert!(!watched(p), "{p}");
        }
    }

    #[test]
    fn labels_and_annotations() {
        let mut l = std::collections::BTreeMap::new();
        assert!(!wants_profile(&l, DEFAULT_LABEL));
        l.insert("slimd.dev/profile".to_string(), "true".to_string());
        assert!(wants_profile(&l, DEFAULT_LABEL));
        l.insert("slimd.dev/profile".to_string(), "false".to_string());
        assert!(!wants_profile(&l, DEFAULT_LABEL));
        l.insert(
            "annotation.slimd.dev/profile".to_string(),
            "true".to_string(),
        );
        assert!(wants_profile(&l, DEFAULT_LABEL));
        l.insert(super::super::LABEL_SESSION.to_string(), "x".to_string());
        assert!(!wants_profile(&l, DEFAULT_LABEL), "slimd's own containers");
    }
}
