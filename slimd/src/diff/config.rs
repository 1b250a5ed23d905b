//! Config changes between two images: how a container starts
//! (entrypoint, cmd, env, user, workdir), what it exposes (ports,
//! volumes), labels, healthcheck, stop signal, platform.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::image::ImageConfig;

/// One config field that differs; `env.NAME` and `labels.NAME` per entry,
/// `exposed_ports` and `volumes` per port or path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub field: String,
    /// The value on each side; absent where the side does not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<Value>,
}

/// Every config field that differs, in a fixed order.
pub fn config_changes(a: &ImageConfig, b: &ImageConfig) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    let (ca, cb) = (&a.config, &b.config);
    let mut field = |name: &str, x: Option<Value>, y: Option<Value>| {
        if x != y {
            out.push(ConfigChange {
                field: name.to_string(),
                a: x,
                b: y,
            });
        }
    };
    let s = |v: &Option<String>| v.clone().filter(|s| !s.is_empty()).map(Value::String);
    let list = |v: &Option<Vec<String>>| v.clone().map(Value::from);
    field(
        "architecture",
        Some(a.architecture.clone().into()),
        Some(b.architecture.clone().into()),
    );
    field("os", Some(a.os.clone().into()), Some(b.os.clone().into()));
    field("entrypoint", list(&ca.entrypoint), list(&cb.entrypoint));
    field("cmd", list(&ca.cmd), list(&cb.cmd));
    field("user", s(&ca.user), s(&cb.user));
    field("working_dir", s(&ca.working_dir), s(&cb.working_dir));
    field("stop_signal", s(&ca.stop_signal), s(&cb.stop_signal));
    field(
        "healthcheck",
        ca.healthcheck.clone(),
        cb.healthcheck.clone(),
    );
    field("shell", list(&ca.shell), list(&cb.shell));
    let env = |v: &Option<Vec<String>>| -> BTreeMap<String, String> {
        v.iter()
            .flatten()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect()
    };
    keyed(&mut field, "env", &env(&ca.env), &env(&cb.env));
    let labels = |v: &Option<BTreeMap<String, String>>| v.clone().unwrap_or_default();
    keyed(
        &mut field,
        "labels",
        &labels(&ca.labels),
        &labels(&cb.labels),
    );
    let set = |v: &Option<BTreeMap<String, Value>>| -> BTreeSet<String> {
        v.iter().flat_map(|m| m.keys().cloned()).collect()
    };
    members(
        &mut field,
        "exposed_ports",
        &set(&ca.exposed_ports),
        &set(&cb.exposed_ports),
    );
    members(&mut field, "volumes", &set(&ca.volumes), &set(&cb.volumes));
    out
}

fn keyed(
    field: &mut impl FnMut(&str, Option<Value>, Option<Value>),
    prefix: &str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        field(
            &format!("{prefix}.{k}"),
            a.get(k).cloned().map(Value::String),
            b.get(k).cloned().map(Value::String),
        );
    }
}

fn members(
    field: &mut impl FnMut(&str, Option<Value>, Option<Value>),
    name: &str,
    a: &BTreeSet<String>,
    b: &BTreeSet<String>,
) {
    for k in a.union(b) {
        let has = |s: &BTreeSet<String>| s.contains(k).then(|| Value::String(k.clone()));
        field(&format!("{name}.{k}"), has(a), has(b));
    }
}
