//! Watch mode on a Kubernetes node whose runtime is containerd
//! (`slimd serve --watch --engine containerd`): a container cgroup the
//! kernel tagged under kubelet's roots is matched, through the CRI on the
//! engine socket, to the container kubelet created and to its pod. It is
//! adopted when the pod's annotations or labels, or the container's, carry
//! the watch label (`slimd.dev/profile=true`); a pod's sandbox (pause)
//! container, another runtime's container, and anything unlabelled are
//! dropped at once. The session records the pod's namespace, name and uid
//! and the container's name; it follows the container through CRI
//! `ContainerStatus` until it exits (or the session is cancelled), and
//! then writes the profile as for Docker ([`super::watcher`]).

use std::{sync::Arc, time::Duration};

use super::{
    Daemon,
    watcher::{Watched, adopt, profile_container},
};
use crate::{
    containerd::{
        ContainerdError,
        cri::{Cri, PodContainer},
    },
    engine::EngineKind,
    model::PodRef,
    tracer::NewCgroup,
};

/// How long the CRI may take to say what a new container is.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);
/// How often an adopted container's state is asked for.
const POLL: Duration = Duration::from_secs(1);
/// The pause after a failed state call (containerd restarting).
const RETRY: Duration = Duration::from_secs(5);

/// Says at start-up how pods are matched, and warns when images would be
/// read from a namespace other than the CRI's.
pub(super) fn say_how(config: &super::DaemonConfig) {
    tracing::info!(
        "watch mode on containerd: pods are matched through the CRI on {}",
        config
            .engine_socket
            .as_deref()
            .unwrap_or(EngineKind::Containerd.default_socket())
            .display()
    );
    if config.containerd_namespace != crate::containerd::DEFAULT_NAMESPACE {
        tracing::warn!(
            "--containerd-namespace {} is not {}, where the CRI keeps pods' images: profiles of pods cannot read their image",
            config.containerd_namespace,
            crate::containerd::DEFAULT_NAMESPACE
        );
    }
}

/// Decides on the new cgroup `c` of container `cid`.
pub(super) async fn decide(daemon: Arc<Daemon>, c: NewCgroup, cid: String, label: &str) {
    let Ok(tracer) = daemon.tracer() else { return };
    let socket = daemon
        .config
        .engine_socket
        .clone()
        .unwrap_or_else(|| EngineKind::Containerd.default_socket().to_path_buf());
    let lookup = async {
        let cri = Cri::connect(&socket).await?;
        let found = cri.pod_container(&cid).await?;
        Ok::<_, ContainerdError>((cri, found))
    };
    let (cri, container) = match tokio::time::timeout(LOOKUP_DEADLINE, lookup).await {
        Ok(Ok(found)) => found,
        Ok(Err(e @ ContainerdError::NotCriContainer { .. })) => {
            tracing::debug!(cgroup = %c.path, "watch: {e}: dropped");
            tracer.reject(c.id);
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(cgroup = %c.path, "watch: asking the CRI at {}: {e}", socket.display());
            tracer.reject(c.id);
            return;
        }
        Err(_) => {
            tracing::warn!(cgroup = %c.path, "watch: the CRI at {} did not answer within {LOOKUP_DEADLINE:?}: dropped", socket.display());
            tracer.reject(c.id);
            return;
        }
    };
    if !asks_for_profile(&container, label) {
        tracer.reject(c.id);
        return;
    }
    let pod = pod_ref(&container);
    let Some((handle, trace)) = adopt(&daemon, &c, &container.image, Some(&pod)) else {
        return;
    };
    tracing::info!(session = %handle.id, pod = %pod, image = %container.image, "watch: profiling");
    let exited = wait_for_exit(cri, container.id.clone());
    let watched = Watched {
        name: container.name,
        image: container.image,
        pod: Some(pod),
    };
    profile_container(daemon, handle, trace, watched, exited).await;
}

/// Whether the pod (annotations, labels) or the container (labels,
/// annotations) carries the watch label `key=value`.
pub fn asks_for_profile(c: &PodContainer, label: &str) -> bool {
    let (key, value) = label.split_once('=').unwrap_or((label, "true"));
    [&c.pod_annotations, &c.pod_labels, &c.annotations, &c.labels]
        .iter()
        .any(|m| m.get(key).is_some_and(|v| v == value))
}

/// The session's record of the pod and container.
fn pod_ref(c: &PodContainer) -> PodRef {
    PodRef {
        namespace: c.pod_namespace.clone(),
        name: c.pod_name.clone(),
        uid: c.pod_uid.clone(),
        container: c.name.clone(),
    }
}

/// Returns when the container has exited or is gone; a failing CRI is
/// asked again (the caller races this against the session's cancel).
async fn wait_for_exit(cri: Cri, id: String) {
    loop {
        match cri.wait_exited(&id, POLL).await {
            Ok(code) => {
                tracing::info!(
                    container = %id,
                    exit = ?code,
                    "watch: the container has {}",
                    if code.is_some() { "exited" } else { "gone" }
                );
                return;
            }
            Err(e) => {
                tracing::warn!(container = %id, "watch: asking the CRI for its state: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::watcher::DEFAULT_LABEL;

    fn pod() -> PodContainer {
        PodContainer {
            id: "c".repeat(64),
            name: "app".into(),
            pod_namespace: "builds".into(),
            pod_name: "web-1".into(),
            pod_uid: "0b1c-22".into(),
            image: "registry.local/web:1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_pod_or_the_container_asks() {
        let yes = || ("slimd.dev/profile".to_string(), "true".to_string());
        assert!(!asks_for_profile(&pod(), DEFAULT_LABEL));
        for which in 0..4 {
            let mut p = pod();
            let m = [
                &mut p.pod_annotations,
                &mut p.pod_labels,
                &mut p.annotations,
                &mut p.labels,
            ];
            let (k, v) = yes();
            m.into_iter().nth(which).unwrap().insert(k, v);
            assert!(asks_for_profile(&p, DEFAULT_LABEL), "map {which}");
        }
        let mut p = pod();
        p.pod_annotations
            .insert("slimd.dev/profile".into(), "false".into());
        assert!(!asks_for_profile(&p, DEFAULT_LABEL));
        // Another watch label, and a bare key meaning `=true`.
        p.pod_labels.insert("team/profile".into(), "yes".into());
        assert!(asks_for_profile(&p, "team/profile=yes"));
        p.pod_labels.insert("bare".into(), "true".into());
        assert!(asks_for_profile(&p, "bare"));
    }

    #[test]
    fn the_session_names_pod_and_container() {
        let r = pod_ref(&pod());
        assert_eq!(
            r,
            PodRef {
                namespace: "builds".into(),
                name: "web-1".into(),
                uid: "0b1c-22".into(),
                container: "app".into()
            }
        );
        assert_eq!(r.to_string(), "pod builds/web-1 container app");
    }
}
