//! Bringing a stack's containers up as the Compose file says: the engine
//! names of its networks and volumes, the untraced services' containers,
//! the traced services' placement, `depends_on` conditions, and what host
//! commands are told about every published port.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    compose::{Condition, MountSpec, ServiceSpec},
    engine::{ContainerSpec, Engine, Healthcheck},
    probe::Endpoint,
    session::ctx::Placement,
};

use super::error::StackError;

/// The engine's name for a network or volume of the file: prefixed with
/// the stack's session id (and the run: `orig` or `verify`), so nothing of
/// the user's is touched or reused.
pub fn engine_name(stack_id: &str, run: &str, name: &str) -> String {
    format!("slimd-{stack_id}-{run}_{name}")
}

/// A running service: its container and published ports.
#[derive(Clone, Debug)]
pub struct Running {
    pub container: String,
    pub endpoints: Vec<Endpoint>,
}

/// Names of the engine objects a run of the stack uses.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub networks: BTreeMap<String, String>,
    pub volumes: BTreeMap<String, String>,
}

fn healthcheck(svc: &ServiceSpec) -> Option<Healthcheck> {
    let ns = |d: Option<Duration>| d.map(|d| d.as_nanos() as i64);
    svc.healthcheck.as_ref().map(|h| Healthcheck {
        test: h.test.clone(),
        interval_ns: ns(h.interval),
        timeout_ns: ns(h.timeout),
        retries: h.retries.map(i64::from),
        start_period_ns: ns(h.start_period),
    })
}

fn mounts(svc: &ServiceSpec, names: &Names) -> Vec<String> {
    svc.volumes
        .iter()
        .map(|m| match m {
            MountSpec::Named {
                volume,
                target,
                read_only,
            } => {
                let v = names.volumes.get(volume).cloned().unwrap_or_default();
                if *read_only {
                    format!("{v}:{target}:ro")
                } else {
                    format!("{v}:{target}")
                }
            }
            MountSpec::Anonymous { target } => target.clone(),
        })
        .collect()
}

/// Where a traced service's container goes in the stack.
pub fn placement(svc: &ServiceSpec, names: &Names) -> Placement {
    Placement {
        networks: svc
            .networks
            .iter()
            .filter_map(|n| names.networks.get(n).cloned())
            .collect(),
        aliases: vec![svc.name.clone()],
        healthcheck: healthcheck(svc),
        mounts: mounts(svc, names),
        stop_timeout: svc.stop_grace_period.map(|d| d.as_secs() as i64),
        stop_signal: svc.stop_signal.clone(),
        labels: svc.labels.clone(),
    }
}

/// The container of a service slimd does not trace.
pub fn untraced_spec(
    svc: &ServiceSpec,
    names: &Names,
    name: String,
    labels: BTreeMap<String, String>,
) -> ContainerSpec {
    let p = placement(svc, names);
    let mut all_labels = svc.labels.clone();
    all_labels.extend(labels);
    ContainerSpec {
        image: svc.image.clone(),
        name: Some(name),
        labels: all_labels,
        entrypoint: svc.entrypoint.clone(),
        cmd: svc.command.clone(),
        env: svc.environment.clone(),
        workdir: svc.working_dir.clone(),
        user: svc.user.clone(),
        mounts: p.mounts,
        publish: svc.ports.clone(),
        network_mode: p.networks.first().cloned(),
        network_aliases: p.aliases,
        healthcheck: p.healthcheck,
        stop_timeout: p.stop_timeout,
        stop_signal: p.stop_signal,
        ..Default::default()
    }
}

/// Creates and starts an untraced container (joining every network of its
/// service); `created` hears of it before it starts, for the cleanup.
pub async fn start_untraced(
    engine: &Engine,
    svc: &ServiceSpec,
    spec: &ContainerSpec,
    names: &Names,
    created: impl FnOnce(String),
) -> Result<Running, StackError> {
    let start_err = |source| StackError::Start {
        service: svc.name.clone(),
        source,
    };
    let id = engine.create_container(spec).await.map_err(start_err)?;
    created(id.clone());
    for n in svc.networks.iter().skip(1) {
        if let Some(net) = names.networks.get(n) {
            engine
                .connect_network(net, &id, std::slice::from_ref(&svc.name))
                .await?;
        }
    }
    engine.start(&id).await.map_err(start_err)?;
    let endpoints = published(engine, &id, &svc.ports).await?;
    Ok(Running {
        container: id,
        endpoints,
    })
}

/// The published host port of each container port, once the engine has them.
async fn published(
    engine: &Engine,
    id: &str,
    ports: &[String],
) -> Result<Vec<Endpoint>, StackError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = engine.inspect_container(id).await?;
        let eps = Endpoint::published(&c, ports);
        if eps.len() == ports.len() || !c.state.running || Instant::now() > deadline {
            return Ok(eps);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `dependency` (running as `dep`) meets `condition`, by
/// `deadline`.
pub async fn wait_condition(
    engine: &Engine,
    service: &str,
    dependency: &str,
    dep: &Running,
    condition: Condition,
    deadline: Instant,
) -> Result<(), StackError> {
    let fail = |why: String| StackError::Dependency {
        service: service.to_string(),
        dependency: dependency.to_string(),
        why,
    };
    match condition {
        Condition::ServiceStarted => Ok(()),
        Condition::ServiceCompletedSuccessfully => {
            match engine.wait_exit(&dep.container, deadline).await? {
                Some(0) => Ok(()),
                Some(code) => Err(fail(format!("exited with code {code}"))),
                None => Err(fail(
                    "did not exit in time (service_completed_successfully)".into(),
                )),
            }
        }
        Condition::ServiceHealthy => loop {
            let c = engine.inspect_container(&dep.container).await?;
            match c.state.health.as_deref() {
                Some("healthy") => return Ok(()),
                Some("unhealthy") => {
                    return Err(fail("is unhealthy (its healthcheck fails)".into()));
                }
                _ if !c.state.running => {
                    return Err(fail(format!(
                        "exited (code {}) before it was healthy",
                        c.state.exit_code.unwrap_or(-1)
                    )));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(fail(
                    "was not healthy in time (service_healthy; wait longer with --ready-timeout)"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        },
    }
}

/// What stack-wide host commands are told: for each service,
/// `SLIM_<SERVICE>_HOST`, `_PORT` and `_URL` (its first published port) and
/// `SLIM_<SERVICE>_PORT_<N>` for each published container port N.
pub fn host_env(running: &[(String, Running)]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for (name, r) in running {
        let key: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        if let Some(e) = r.endpoints.first() {
            env.push((format!("SLIM_{key}_HOST"), e.host.clone()));
            env.push((format!("SLIM_{key}_PORT"), e.host_port.to_string()));
            env.push((
                format!("SLIM_{key}_URL"),
                format!("http://{}:{}", e.host, e.host_port),
            ));
        }
        for e in &r.endpoints {
            env.push((
                format!("SLIM_{key}_PORT_{}", e.container_port),
                e.host_port.to_string(),
            ));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::HealthSpec;

    fn svc() -> ServiceSpec {
        ServiceSpec {
            name: "db-main".into(),
            image: "pg".into(),
            ports: vec!["5432/tcp".into()],
            networks: vec!["back".into(), "default".into()],
            volumes: vec![
                MountSpec::Named {
                    volume: "data".into(),
                    target: "/var/lib/pg".into(),
                    read_only: false,
                },
                MountSpec::Anonymous {
                    target: "/tmp/x".into(),
                },
            ],
            healthcheck: Some(HealthSpec {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(Duration::from_secs(1)),
                timeout: None,
                retries: Some(5),
                start_period: None,
            }),
            ..Default::default()
        }
    }

    fn names() -> Names {
        Names {
            networks: BTreeMap::from([
                ("back".into(), engine_name("s1", "orig", "back")),
                ("default".into(), engine_name("s1", "orig", "default")),
            ]),
            volumes: BTreeMap::from([("data".into(), engine_name("s1", "orig", "data"))]),
        }
    }

    #[test]
    fn untraced_containers_join_the_stack_under_the_service_name() {
        let spec = untraced_spec(&svc(), &names(), "c".into(), BTreeMap::new());
        assert_eq!(spec.network_mode.as_deref(), Some("slimd-s1-orig_back"));
        assert_eq!(spec.network_aliases, ["db-main"]);
        assert_eq!(spec.mounts, ["slimd-s1-orig_data:/var/lib/pg", "/tmp/x"]);
        assert_eq!(spec.publish, ["5432/tcp"]);
        let h = spec.healthcheck.unwrap();
        assert_eq!(h.interval_ns, Some(1_000_000_000));
        assert_eq!(h.retries, Some(5));
        let p = placement(&svc(), &names());
        assert_eq!(p.networks, ["slimd-s1-orig_back", "slimd-s1-orig_default"]);
    }

    #[test]
    fn host_commands_see_every_published_port() {
        let r = Running {
            container: "c".into(),
            endpoints: vec![
                Endpoint::new("127.0.0.1", 32001, 8000),
                Endpoint::new("127.0.0.1", 32002, 9000),
            ],
        };
        let env = host_env(&[("db-main".into(), r)]);
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SLIM_DB_MAIN_URL"), Some("http://127.0.0.1:32001"));
        assert_eq!(get("SLIM_DB_MAIN_PORT"), Some("32001"));
        assert_eq!(get("SLIM_DB_MAIN_PORT_9000"), Some("32002"));
    }
}
