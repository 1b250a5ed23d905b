//! Leftovers of sessions that are not running: after a crash or a kill, the
//! daemon finds its own containers, networks and volumes (a Compose
//! stack's) by label, its cgroups under its cgroup root, and its scratch
//! directories, and removes them. Sessions recorded as
//! running are marked `interrupted`.

use std::collections::HashSet;

use super::{Daemon, LABEL_INSTANCE, write_json};
use crate::model::SessionInfo;

/// Removes everything of this daemon instance that no running session owns.
pub async fn remove_leftovers(daemon: &Daemon) {
    let running: HashSet<String> = daemon.running_ids().into_iter().collect();
    let instance = daemon.config.cgroup_root.as_str();

    // Containers, by label.
    match daemon.engine().await {
        Ok(engine) => match engine
            .list_containers_by_label(LABEL_INSTANCE, Some(instance))
            .await
        {
            Ok(ids) => {
                for id in ids {
                    let owner = engine
                        .inspect_container(&id)
                        .await
                        .ok()
                        .and_then(|c| c.labels.get(super::LABEL_SESSION).cloned());
                    if owner.as_ref().is_some_and(|s| running.contains(s)) {
                        continue;
                    }
                    match engine.remove(&id, true).await {
                        Ok(()) => {
                            tracing::info!(container = %id, session = ?owner, "removed leftover container")
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            tracing::warn!(container = %id, "cannot remove leftover container: {e}")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list leftover containers: {e}"),
        },
        Err(e) => tracing::warn!("cannot check for leftover containers: {e}"),
    }

    // Networks and volumes a Compose stack created (after its containers).
    if let Ok(engine) = daemon.engine().await {
        match engine
            .list_networks_by_label(LABEL_INSTANCE, Some(instance))
            .await
        {
            Ok(list) => {
                for (id, labels) in list {
                    let owner = labels.get(super::LABEL_SESSION);
                    if owner.is_some_and(|s| running.contains(s)) {
                        continue;
                    }
                    match engine.remove_network(&id).await {
                        Ok(()) => {
                            tracing::info!(network = %id, session = ?owner, "removed leftover network")
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            tracing::warn!(network = %id, "cannot remove leftover network: {e}")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list leftover networks: {e}"),
        }
        match engine
            .list_volumes_by_label(LABEL_INSTANCE, Some(instance))
            .await
        {
            Ok(list) => {
                for (name, labels) in list {
                    let owner = labels.get(super::LABEL_SESSION);
                    if owner.is_some_and(|s| running.contains(s)) {
                        continue;
                    }
                    match engine.remove_volume(&name).await {
                        Ok(()) => {
                            tracing::info!(volume = %name, session = ?owner, "removed leftover volume")
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            tracing::warn!(volume = %name, "cannot remove leftover volume: {e}")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list leftover volumes: {e}"),
        }
    }

    // Cgroups under our root.
    if let Ok(tracer) = daemon.tracer() {
        let host = tracer.cgroups();
        for s in host.list_sessions(instance) {
            if running.contains(&s) {
                continue;
            }
            match host.remove_session(instance, &s) {
                Ok(()) => tracing::info!(session = %s, "removed leftover cgroup"),
                Err(e) => tracing::warn!(session = %s, "cannot remove leftover cgroup: {e}"),
            }
        }
    }

    // Scratch directories.
    if let Ok(dir) = std::fs::read_dir(daemon.config.state_dir.join("scratch")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if running.contains(&id) {
                continue;
            }
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!("cannot remove {}: {err}", e.path().display());
            }
        }
    }

    // Sessions that were running when the daemon died.
    if let Ok(dir) = std::fs::read_dir(daemon.config.state_dir.join("sessions")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if running.contains(&id) {
                continue;
            }
            let path = e.path().join("session.json");
            let Some(mut info) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SessionInfo>(&b).ok())
            else {
                continue;
            };
            if info.state == "running" {
                info.state = "interrupted".into();
                info.message = Some(
                    "the daemon stopped while this session ran; its leftovers were removed".into(),
                );
                info.finished = Some(super::unix_now());
                let _ = write_json(&path, &info);
                tracing::info!(session = %id, "marked interrupted");
            }
        }
    }
}
