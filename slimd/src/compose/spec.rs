//! From a [`ComposeBundle`] to the stack slimd runs: interpolation, the
//! keys slimd supports (anything else is refused by name), profiles, the
//! services chosen for slimming, and the dependency order.
//!
//! The pipeline: YAML -> interpolate every string value -> check the keys ->
//! the typed Compose model (`docker-compose-types`) -> [`StackSpec`].

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use docker_compose_types as dc;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::{
    bundle::{ComposeBundle, parse_env_file},
    error::ComposeError,
    interpolate::{Variables, interpolate},
};

/// Top-level keys slimd runs (besides `x-*` extensions).
const TOP_LEVEL: &[&str] = &["version", "name", "services", "networks", "volumes"];

/// Service keys slimd runs (besides `x-*` extensions), and those it accepts
/// but does not apply, with why.
const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "networks",
    "depends_on",
    "healthcheck",
    "profiles",
    "user",
    "working_dir",
    "stop_signal",
    "stop_grace_period",
    "labels",
];
const SERVICE_IGNORED: &[(&str, &str)] = &[
    (
        "restart",
        "each container runs once while slimd traces and verifies it",
    ),
    (
        "container_name",
        "slimd names its own containers, so the user's are never touched",
    ),
    ("hostname", "the service name is the container's alias"),
];

/// Why a key is refused (the rest get a generic reason).
fn refusal(key: &str) -> &'static str {
    match key {
        "build" => {
            "slimd does not build images: build them first (docker-compose build) and give the service an image:"
        }
        "extends" => "write the service out in full (docker-compose config prints it resolved)",
        "include" => "merge the included files first (docker-compose config prints the result)",
        "secrets" | "configs" => "secrets and configs would be mounted from the client's files",
        "network_mode" | "pid" | "ipc" | "userns_mode" => {
            "sharing another namespace takes the container out of its own stack network"
        }
        "volumes_from" => "name the volumes the services share instead",
        "privileged" | "cap_add" | "devices" | "security_opt" => {
            "slimd never runs an app with more privilege than the engine's default"
        }
        "deploy" | "scale" => "slimd runs one container per service",
        "cgroup_parent" => "slimd puts each traced container in its own session cgroup",
        _ => "this part of the Compose specification is not implemented by slimd",
    }
}

/// When a dependency counts as ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
}

/// A service's healthcheck (`test` in the engine's form: `CMD ...`,
/// `CMD-SHELL cmd`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

/// A service's volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// A named volume of the file (`db-data:/var/lib/postgresql`).
    Named {
        volume: String,
        target: String,
        read_only: bool,
    },
    /// An anonymous volume (`/data`).
    Anonymous { target: String },
}

/// The `x-slim` extension of a service: how it is probed and built.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SlimExtension {
    /// Crawl its ports with HTTP (default: yes when it has ports).
    pub http_probe: Option<bool>,
    /// Commands run inside its container (a command line each).
    pub exec_probes: Vec<String>,
    /// Host commands run against it alone (`SLIM_TARGET_*` name its ports).
    pub probe_cmds: Vec<String>,
    /// Paths to keep in its slim image whatever the trace says.
    pub include_paths: Vec<String>,
    /// Target tag (default `<image>.slim`).
    pub tag: Option<String>,
}

/// The top-level `x-slim` extension: host commands that exercise the whole
/// stack, given every published port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct StackExtension {
    pub probe_cmds: Vec<String>,
}

/// One service as slimd runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE`: env files first, then `environment:`.
    pub environment: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Container ports published (on 127.0.0.1, random host ports):
    /// `ports:` and `expose:` (`8000/tcp`).
    pub ports: Vec<String>,
    pub volumes: Vec<MountSpec>,
    /// The file's networks it joins (its name is its alias on each).
    pub networks: Vec<String>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<HealthSpec>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    pub slim: SlimExtension,
    /// Chosen for slimming (traced); the others run untraced.
    pub chosen: bool,
}

/// The stack to run: services in dependency order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSpec {
    /// `name:` of the file, else its directory's name.
    pub name: String,
    pub services: Vec<ServiceSpec>,
    /// Networks of the file (`default` when a service names none).
    pub networks: Vec<String>,
    /// Named volumes of the file.
    pub volumes: Vec<String>,
    pub host_commands: Vec<String>,
    /// Keys accepted but not applied, with why (told to the user).
    pub notes: Vec<String>,
}

/// `(service, path, required)` of every `env_file:` entry.
pub(super) fn env_file_refs(
    bundle: &ComposeBundle,
) -> Result<Vec<(String, String, bool)>, ComposeError> {
    let value = interpolated(bundle)?;
    let mut out = Vec::new();
    let Some(services) = value.get("services").and_then(Value::as_mapping) else {
        return Ok(out);
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or_default().to_string();
        for (path, required) in env_file_entries(&name, svc.get("env_file"))? {
            out.push((name.clone(), path, required));
        }
    }
    Ok(out)
}

/// `env_file:` as a string, a list of strings, or a list of `{path, required}`.
fn env_file_entries(service: &str, v: Option<&Value>) -> Result<Vec<(String, bool)>, ComposeError> {
    let bad = || ComposeError::Invalid {
        key: format!("services.{service}.env_file"),
        why: "expected a path, a list of paths, or a list of {path, required}".into(),
    };
    let Some(v) = v else { return Ok(Vec::new()) };
    let items: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Sequence(s) => s.iter().collect(),
        _ => return Err(bad()),
    };
    items
        .into_iter()
        .map(|i| match i {
            Value::String(p) => Ok((p.clone(), true)),
            Value::Mapping(m) => {
                let path = m.get("path").and_then(Value::as_str).ok_or_else(bad)?;
                let required = m.get("required").and_then(Value::as_bool).unwrap_or(true);
                Ok((path.to_string(), required))
            }
            _ => Err(bad()),
        })
        .collect()
}

/// The file's YAML with every string value interpolated.
fn interpolated(bundle: &ComposeBundle) -> Result<Value, ComposeError> {
    let mut value: Value =
        serde_norway::from_str(&bundle.text).map_err(|source| ComposeError::Yaml {
            file: bundle.file.clone(),
            source,
        })?;
    let vars = bundle.variables()?;
    walk(&mut value, &vars, &bundle.file, "")?;
    Ok(value)
}

fn walk(v: &mut Value, vars: &Variables, file: &str, key: &str) -> Result<(), ComposeError> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, vars).map_err(|source| ComposeError::Interpolation {
                file: file.to_string(),
                key: key.to_string(),
                source,
            })?;
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                walk(item, vars, file, &format!("{key}[{i}]"))?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let k = k.as_str().unwrap_or("?");
                let path = if key.is_empty() {
                    k.to_string()
                } else {
                    format!("{key}.{k}")
                };
                walk(item, vars, file, &path)?;
            }
        }
        Value::Tagged(t) => walk(&mut t.value, vars, file, key)?,
        _ => {}
    }
    Ok(())
}

fn is_extension(k: &str) -> bool {
    k.starts_with("x-")
}

/// Refuses every key slimd does not run, by its full name.
fn check_keys(value: &Value, notes: &mut Vec<String>) -> Result<(), ComposeError> {
    let Some(top) = value.as_mapping() else {
        return Err(ComposeError::Invalid {
            key: "(top level)".into(),
            why: "a Compose file is a mapping".into(),
        });
    };
    for k in top.keys() {
        let k = k.as_str().unwrap_or("?");
        if !TOP_LEVEL.contains(&k) && !is_extension(k) {
            return Err(ComposeError::Unsupported {
                key: k.to_string(),
                why: refusal(k).into(),
            });
        }
    }
    if let Some(services) = value.get("services").and_then(Value::as_mapping) {
        for (name, svc) in services {
            let name = name.as_str().unwrap_or("?");
            let Some(svc) = svc.as_mapping() else {
                continue;
            };
            for k in svc.keys() {
                let k = k.as_str().unwrap_or("?");
                if SERVICE_KEYS.contains(&k) || is_extension(k) {
                    continue;
                }
                if let Some((_, why)) = SERVICE_IGNORED.iter().find(|(i, _)| *i == k) {
                    notes.push(format!("services.{name}.{k} is not applied: {why}"));
                    continue;
                }
                return Err(ComposeError::Unsupported {
                    key: format!("services.{name}.{k}"),
                    why: refusal(k).into(),
                });
            }
        }
    }
    for (section, what) in [("networks", "network"), ("volumes", "volume")] {
        let Some(m) = value.get(section).and_then(Value::as_mapping) else {
            continue;
        };
        for (name, def) in m {
            let name = name.as_str().unwrap_or("?");
            let key = |k: &str| format!("{section}.{name}.{k}");
            if def
                .get("external")
                .is_some_and(|e| e.as_bool() != Some(false))
            {
                return Err(ComposeError::Unsupported {
                    key: key("external"),
                    why: format!(
                        "an external {what} belongs to the user; slimd creates its own so nothing of theirs is touched"
                    ),
                });
            }
            if let Some(d) = def.get("driver").and_then(Value::as_str) {
                let ok = if section == "networks" {
                    "bridge"
                } else {
                    "local"
                };
                if d != ok {
                    return Err(ComposeError::Unsupported {
                        key: key("driver"),
                        why: format!("only the {ok} driver is supported"),
                    });
                }
            }
            if let Some(m) = def.as_mapping() {
                for k in m.keys() {
                    let k = k.as_str().unwrap_or("?");
                    if !["driver", "external", "labels", "name"].contains(&k) && !is_extension(k) {
                        return Err(ComposeError::Unsupported {
                            key: key(k),
                            why: format!(
                                "{what} options other than driver and labels are not supported"
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn duration(key: &str, s: &Option<String>) -> Result<Option<Duration>, ComposeError> {
    s.as_deref()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| ComposeError::Invalid {
                key: key.to_string(),
                why: format!("{s:?} is not a duration: {e}"),
            })
        })
        .transpose()
}

/// `"8000"`, `"8080:8000"`, `"127.0.0.1:8080:8000/tcp"` -> `8000/tcp`.
fn container_port(key: &str, short: &str) -> Result<String, ComposeError> {
    let (spec, proto) = short.split_once('/').unwrap_or((short, "tcp"));
    let target = spec.rsplit(':').next().unwrap_or(spec);
    if target.contains('-') {
        return Err(ComposeError::Unsupported {
            key: key.to_string(),
            why: format!("{short:?}: port ranges are not supported"),
        });
    }
    let n: u16 = target.parse().map_err(|_| ComposeError::Invalid {
        key: key.to_string(),
        why: format!("{short:?} is not a port"),
    })?;
    Ok(format!("{n}/{proto}"))
}

fn command(
    key: &str,
    c: Option<Vec<String>>,
    s: Option<String>,
) -> Result<Option<Vec<String>>, ComposeError> {
    match (c, s) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(s)) => shlex::split(&s)
            .map(Some)
            .ok_or_else(|| ComposeError::Invalid {
                key: key.to_string(),
                why: format!("{s:?}: unbalanced quotes"),
            }),
        (None, None) => Ok(None),
    }
}

impl StackSpec {
    /// Parses `bundle`; `chosen` names the services to slim (empty: every
    /// enabled service), `profiles` the active profiles.
    pub fn parse(
        bundle: &ComposeBundle,
        chosen: &[String],
        profiles: &[String],
    ) -> Result<StackSpec, ComposeError> {
        let mut value = interpolated(bundle)?;
        let mut notes = Vec::new();
        check_keys(&value, &mut notes)?;
        // env_file: is read here (its long form is newer than the model).
        let mut env_files: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        if let Some(services) = value.get_mut("services").and_then(Value::as_mapping_mut) {
            for (name, svc) in services.iter_mut() {
                let name = name.as_str().unwrap_or_default().to_string();
                if let Some(m) = svc.as_mapping_mut() {
                    let e = m.remove("env_file");
                    env_files.insert(name.clone(), env_file_entries(&name, e.as_ref())?);
                }
            }
        }
        let top_ext: StackExtension = match value.get("x-slim") {
            Some(v) => serde_norway::from_value(v.clone()).map_err(|e| ComposeError::Invalid {
                key: "x-slim".into(),
                why: e.to_string(),
            })?,
            None => StackExtension::default(),
        };
        let compose: dc::Compose =
            serde_norway::from_value(value).map_err(|source| ComposeError::Model {
                file: bundle.file.clone(),
                source,
            })?;
        let name = compose.name.clone().unwrap_or_else(|| {
            std::path::Path::new(&bundle.project_dir)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "stack".into())
        });
        let networks: Vec<String> = compose.networks.0.keys().cloned().collect();
        let volumes: Vec<String> = compose.volumes.0.keys().cloned().collect();
        if compose.services.0.is_empty() {
            return Err(ComposeError::NoServices);
        }
        for c in chosen {
            if !compose.services.0.contains_key(c) {
                return Err(ComposeError::UnknownService(c.clone()));
            }
        }
        let mut services = Vec::new();
        for (sname, svc) in &compose.services.0 {
            let svc = svc.clone().unwrap_or_default();
            let enabled = svc.profiles.is_empty()
                || svc.profiles.iter().any(|p| profiles.contains(p))
                || chosen.contains(sname);
            if !enabled {
                continue;
            }
            let envs = env_files.remove(sname).unwrap_or_default();
            services.push(service(bundle, sname, svc, &envs, &networks, &volumes)?);
        }
        let enabled: BTreeSet<String> = services.iter().map(|s| s.name.clone()).collect();
        for s in &mut services {
            for d in &s.depends_on {
                if !enabled.contains(&d.service) {
                    return Err(if compose.services.0.contains_key(&d.service) {
                        ComposeError::DependencyDisabled {
                            service: s.name.clone(),
                            dependency: d.service.clone(),
                        }
                    } else {
                        ComposeError::DependencyUnknown {
                            service: s.name.clone(),
                            dependency: d.service.clone(),
                        }
                    });
                }
            }
            s.chosen = chosen.is_empty() || chosen.contains(&s.name);
        }
        for s in &services {
            for d in &s.depends_on {
                let dep = services.iter().find(|x| x.name == d.service);
                if d.condition == Condition::ServiceHealthy
                    && dep.is_some_and(|x| x.healthcheck.is_none())
                {
                    return Err(ComposeError::Invalid {
                        key: format!("services.{}.depends_on.{}", s.name, d.service),
                        why: format!(
                            "condition service_healthy needs a healthcheck: on {} in the Compose file (slimd does not read the image's HEALTHCHECK for it)",
                            d.service
                        ),
                    });
                }
            }
        }
        let services = dependency_order(services)?;
        let mut nets: Vec<String> = networks;
        if services
            .iter()
            .any(|s| s.networks.iter().any(|n| n == "default"))
            && !nets.iter().any(|n| n == "default")
        {
            nets.push("default".into());
        }
        Ok(StackSpec {
            name,
            services,
            networks: nets,
            volumes,
            host_commands: top_ext.probe_cmds,
            notes,
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// One service of the typed model as slimd runs it.
fn service(
    bundle: &ComposeBundle,
    name: &str,
    svc: dc::Service,
    env_files: &[(String, bool)],
    networks: &[String],
    volumes: &[String],
) -> Result<ServiceSpec, ComposeError> {
    let key = |k: &str| format!("services.{name}.{k}");
    let image = svc.image.clone().ok_or_else(|| ComposeError::Invalid {
        key: key("image"),
        why: "every service needs an image: (slimd does not build)".into(),
    })?;
    let mut environment = Vec::new();
    for (path, required) in env_files {
        match bundle.env_files.get(path) {
            Some(text) => {
                for (k, v) in parse_env_file(text, path)? {
                    environment.push(format!("{k}={v}"));
                }
            }
            None if !required => {}
            None => {
                return Err(ComposeError::EnvFileMissing {
                    service: name.to_string(),
                    path: path.clone(),
                });
            }
        }
    }
    let vars = bundle.variables()?;
    match &svc.environment {
        dc::Environment::List(l) => {
            for e in l {
                match e.split_once('=') {
                    Some(_) => environment.push(e.clone()),
                    // `KEY` alone: the caller's value, or left out.
                    None => {
                        if let Some(v) = vars.get(e) {
                            environment.push(format!("{e}={v}"));
                        }
                    }
                }
            }
        }
        dc::Environment::KvPair(m) => {
            for (k, v) in m {
                match v {
                    Some(v) => environment.push(format!("{k}={v}")),
                    None => {
                        if let Some(v) = vars.get(k) {
                            environment.push(format!("{k}={v}"));
                        }
                    }
                }
            }
        }
    }
    let mut ports = Vec::new();
    match &svc.ports {
        dc::Ports::Short(l) => {
            for p in l {
                ports.push(container_port(&key("ports"), p)?);
            }
        }
        dc::Ports::Long(l) => {
            for p in l {
                ports.push(format!(
                    "{}/{}",
                    p.target,
                    p.protocol.as_deref().unwrap_or("tcp")
                ));
            }
        }
    }
    for e in &svc.expose {
        ports.push(container_port(&key("expose"), e)?);
    }
    ports.sort();
    ports.dedup();
    let mut mounts = Vec::new();
    for v in &svc.volumes {
        let (source, target, read_only, kind) = match v {
            dc::Volumes::Simple(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [t] => (None, t.to_string(), false, "volume"),
                    [s, t] => (Some(s.to_string()), t.to_string(), false, "volume"),
                    [s, t, o] => (
                        Some(s.to_string()),
                        t.to_string(),
                        o.split(',').any(|o| o == "ro"),
                        "volume",
                    ),
                    _ => {
                        return Err(ComposeError::Invalid {
                            key: key("volumes"),
                            why: format!("{s:?} is not SOURCE:TARGET[:MODE]"),
                        });
                    }
                }
            }
            dc::Volumes::Advanced(a) => (
                a.source.clone(),
                a.target.clone(),
                a.read_only,
                a._type.as_str(),
            ),
        };
        if kind != "volume" {
            return Err(ComposeError::Unsupported {
                key: key("volumes"),
                why: format!(
                    "type {kind}: only named and anonymous volumes (the daemon does not see the client's files)"
                ),
            });
        }
        match source {
            None => mounts.push(MountSpec::Anonymous { target }),
            Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
                return Err(ComposeError::Unsupported {
                    key: key("volumes"),
                    why: format!(
                        "{s}:{target} is a bind mount: only named and anonymous volumes (the daemon does not see the client's files)"
                    ),
                });
            }
            Some(s) => {
                if !volumes.contains(&s) {
                    return Err(ComposeError::Invalid {
                        key: key("volumes"),
                        why: format!("volume {s} is not defined under the top-level volumes:"),
                    });
                }
                mounts.push(MountSpec::Named {
                    volume: s,
                    target,
                    read_only,
                });
            }
        }
    }
    let nets: Vec<String> = match &svc.networks {
        dc::Networks::Simple(l) => l.clone(),
        dc::Networks::Advanced(a) => {
            for (n, s) in &a.0 {
                if let dc::MapOrEmpty::Map(s) = s
                    && (s.ipv4_address.is_some()
                        || s.ipv6_address.is_some()
                        || !s.aliases.is_empty())
                {
                    return Err(ComposeError::Unsupported {
                        key: format!("services.{name}.networks.{n}"),
                        why: "fixed addresses and extra aliases are not supported (the service name is its alias)".into(),
                    });
                }
            }
            a.0.keys().cloned().collect()
        }
    };
    for n in &nets {
        if !networks.contains(n) && n != "default" {
            return Err(ComposeError::Invalid {
                key: key("networks"),
                why: format!("network {n} is not defined under the top-level networks:"),
            });
        }
    }
    let nets = if nets.is_empty() {
        vec!["default".to_string()]
    } else {
        nets
    };
    let depends_on = match &svc.depends_on {
        dc::DependsOnOptions::Simple(l) => l
            .iter()
            .map(|s| Dependency {
                service: s.clone(),
                condition: Condition::ServiceStarted,
            })
            .collect(),
        dc::DependsOnOptions::Conditional(m) => m
            .iter()
            .map(|(s, c)| {
                let condition = match c.condition.as_str() {
                    "service_started" | "" => Condition::ServiceStarted,
                    "service_healthy" => Condition::ServiceHealthy,
                    "service_completed_successfully" => Condition::ServiceCompletedSuccessfully,
                    other => {
                        return Err(ComposeError::Invalid {
                            key: format!("services.{name}.depends_on.{s}.condition"),
                            why: format!("{other:?} is not a condition"),
                        });
                    }
                };
                Ok(Dependency {
                    service: s.clone(),
                    condition,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let healthcheck = match &svc.healthcheck {
        None => None,
        Some(h) if h.disable => None,
        Some(h) => {
            let hk = |k: &str| format!("services.{name}.healthcheck.{k}");
            let test = match &h.test {
                None => {
                    return Err(ComposeError::Invalid {
                        key: hk("test"),
                        why: "a healthcheck needs a test".into(),
                    });
                }
                Some(dc::HealthcheckTest::Single(s)) => vec!["CMD-SHELL".into(), s.clone()],
                Some(dc::HealthcheckTest::Multiple(v)) => v.clone(),
            };
            match test.first().map(String::as_str) {
                Some("NONE") => None,
                Some("CMD") | Some("CMD-SHELL") if test.len() > 1 => Some(HealthSpec {
                    test,
                    interval: duration(&hk("interval"), &h.interval)?,
                    timeout: duration(&hk("timeout"), &h.timeout)?,
                    retries: (h.retries > 0).then_some(h.retries as u32),
                    start_period: duration(&hk("start_period"), &h.start_period)?,
                }),
                _ => {
                    return Err(ComposeError::Invalid {
                        key: hk("test"),
                        why: "expected a string, [CMD, ...], [CMD-SHELL, cmd] or [NONE]".into(),
                    });
                }
            }
        }
    };
    let (entry_list, entry_str) = match svc.entrypoint.clone() {
        Some(dc::Entrypoint::List(l)) => (Some(l), None),
        Some(dc::Entrypoint::Simple(s)) => (None, Some(s)),
        None => (None, None),
    };
    let (cmd_list, cmd_str) = match svc.command.clone() {
        Some(dc::Command::Args(l)) => (Some(l), None),
        Some(dc::Command::Simple(s)) => (None, Some(s)),
        None => (None, None),
    };
    let x_slim: dc::Extension = "x-slim".parse().expect("an x- name");
    let slim = match svc.extensions.get(&x_slim) {
        Some(v) => serde_norway::from_value(v.clone()).map_err(|e| ComposeError::Invalid {
            key: key("x-slim"),
            why: e.to_string(),
        })?,
        None => SlimExtension::default(),
    };
    let labels = match &svc.labels {
        dc::Labels::List(l) => l
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        dc::Labels::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    Ok(ServiceSpec {
        name: name.to_string(),
        image,
        entrypoint: command(&key("entrypoint"), entry_list, entry_str)?,
        command: command(&key("command"), cmd_list, cmd_str)?,
        environment,
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone(),
        ports,
        volumes: mounts,
        networks: nets,
        depends_on,
        healthcheck,
        stop_signal: svc.stop_signal.clone(),
        stop_grace_period: duration(&key("stop_grace_period"), &svc.stop_grace_period)?,
        labels,
        slim,
        chosen: false,
    })
}

/// Services so that each comes after what it depends on (file order kept
/// where free); a cycle is an error naming it.
fn dependency_order(mut rest: Vec<ServiceSpec>) -> Result<Vec<ServiceSpec>, ComposeError> {
    let mut out: Vec<ServiceSpec> = Vec::new();
    while !rest.is_empty() {
        let placed: BTreeSet<String> = out.iter().map(|s| s.name.clone()).collect();
        let Some(i) = rest
            .iter()
            .position(|s| s.depends_on.iter().all(|d| placed.contains(&d.service)))
        else {
            let names: Vec<String> = rest.iter().map(|s| s.name.clone()).collect();
            return Err(ComposeError::Cycle(names.join(" -> ")));
        };
        out.push(rest.remove(i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
