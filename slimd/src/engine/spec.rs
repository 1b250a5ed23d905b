//! What slimd asks the engine to run, as plain data, and its translation to
//! the engine's create body. Pure, so the translation is tested without Docker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding,
};
use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

/// Host address every published port is bound to: probes come from this host
/// only, and a build must not open the app to the network.
pub const PUBLISH_HOST_IP: &str = "127.0.0.1";

/// A container to create. `None`/empty fields keep the image's own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// Image reference or id.
    pub image: String,
    /// Container name; the engine picks one when `None`.
    pub name: Option<String>,
    /// Labels, e.g. `slimd.session=<id>` so leftovers can be found and removed.
    pub labels: BTreeMap<String, String>,
    /// Replaces the image's ENTRYPOINT; `Some(vec![])` clears it like
    /// `docker run --entrypoint ""`. As with docker, overriding the
    /// entrypoint also drops the image's CMD unless `cmd` is given.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries added to (or overriding) the image's ENV.
    pub env: Vec<String>,
    /// Replaces the image's WORKDIR.
    pub workdir: Option<String>,
    /// Replaces the image's USER (`name`, `uid`, `uid:gid`).
    pub user: Option<String>,
    /// Each entry in docker's `-v` form (`SRC:DST[:OPTS]`, or `DST` for an
    /// anonymous volume) or `--mount` form (`type=bind,source=..,target=..,readonly`).
    pub mounts: Vec<String>,
    /// HostConfig.CgroupParent: each session runs under its own cgroup.
    pub cgroup_parent: Option<String>,
    /// Container ports to publish (`8080` or `8080/tcp`), usually the image's
    /// exposed ports; each is bound to 127.0.0.1 on a random host port.
    pub publish: Vec<String>,
    /// Extra ports to expose (`--expose`); they are published like `publish`.
    pub expose: Vec<String>,
    /// Replaces the image's STOPSIGNAL.
    pub stop_signal: Option<String>,
    /// Seconds the engine waits after the stop signal before SIGKILL.
    pub stop_timeout: Option<i64>,
    /// Security options in API form, e.g. `seccomp=<profile JSON content>`
    /// (see [`seccomp_opt_from_file`]) or `no-new-privileges`.
    pub security_opts: Vec<String>,
    /// Network mode (`bridge` when `None`), or a network's name.
    pub network_mode: Option<String>,
    /// Names the container answers to on the network of `network_mode`
    /// (a Compose service's name).
    pub network_aliases: Vec<String>,
    /// Replaces the image's HEALTHCHECK (the engine runs it and reports the
    /// container's health).
    pub healthcheck: Option<super::types::Healthcheck>,
}

/// Reads a seccomp profile file into the `seccomp=<JSON>` form the API wants
/// (the docker CLI does the same; the engine never reads client files).
pub fn seccomp_opt_from_file(path: &std::path::Path) -> Result<String> {
    let json = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
        what: "read seccomp profile",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!("seccomp={json}"))
}

/// `8080` -> `8080/tcp`; checks the number and protocol.
pub fn normalize_port(port: &str) -> Result<String> {
    let bad = |why: &str| EngineError::InvalidSpec {
        what: "port",
        why: format!("{port:?}: {why}"),
    };
    let (num, proto) = port.trim().split_once('/').unwrap_or((port.trim(), "tcp"));
    let n: u16 = num.parse().map_err(|_| bad("not a port number"))?;
    if n == 0 {
        return Err(bad("port 0"));
    }
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("protocol must be tcp, udp or sctp"));
    }
    Ok(format!("{n}/{proto}"))
}

/// The number part of `8080/tcp`.
pub fn port_number(port: &str) -> Option<u16> {
    port.split('/').next()?.parse().ok()
}

/// One mount argument, sorted into the three places the API takes them.
#[derive(Debug, Clone, PartialEq)]
enum MountArg {
    /// `-v SRC:DST[:OPTS]` goes to HostConfig.Binds as is.
    Bind(String),
    /// `-v DST` is an anonymous volume: Config.Volumes.
    Anonymous(String),
    /// `--mount ...` goes to HostConfig.Mounts.
    Mount(Box<Mount>),
}

/// The host side of a bind mount argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBind {
    /// The host path as given.
    pub source: String,
    pub read_only: bool,
}

/// The host path a mount argument binds, if it binds one (`None` for named
/// and anonymous volumes and tmpfs).
pub fn host_bind(arg: &str) -> Result<Option<HostBind>> {
    Ok(match parse_mount(arg)? {
        MountArg::Anonymous(_) => None,
        MountArg::Bind(b) => {
            let mut parts = b.split(':');
            let source = parts.next().unwrap_or_default();
            let opts = parts.nth(1).unwrap_or_default();
            source.starts_with('/').then(|| HostBind {
                source: source.to_string(),
                read_only: opts.split(',').any(|o| o == "ro" || o == "readonly"),
            })
        }
        // A "volume" named by an absolute path is a host path too.
        MountArg::Mount(m) => {
            let source = m.source.clone().unwrap_or_default();
            (m.typ == Some(MountType::BIND) || source.starts_with('/')).then(|| HostBind {
                source,
                read_only: m.read_only == Some(true),
            })
        }
    })
}

/// `arg` with its bind source replaced by `source` (a checked, canonical
/// path), in the same form.
pub fn with_bind_source(arg: &str, source: &str) -> Result<String> {
    Ok(match parse_mount(arg)? {
        MountArg::Bind(b) => match b.split_once(':') {
            Some((_, rest)) => format!("{source}:{rest}"),
            None => b,
        },
        MountArg::Mount(_) => arg
            .split(',')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if matches!(k.trim(), "source" | "src") => format!("source={source}"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        MountArg::Anonymous(a) => a,
    })
}

fn parse_mount(arg: &str) -> Result<MountArg> {
    let bad = |why: String| EngineError::InvalidSpec {
        what: "mount",
        why: format!("{arg:?}: {why}"),
    };
    let looks_like_mount_flag = arg.split(',').any(|kv| {
        matches!(
            kv.split_once('=').map(|(k, _)| k.trim()),
            Some("type" | "source" | "src" | "target" | "destination" | "dst")
        )
    });
    if !looks_like_mount_flag {
        let parts: Vec<&str> = arg.split(':').collect();
        return match parts.as_slice() {
            [dst] if dst.starts_with('/') => Ok(MountArg::Anonymous(dst.to_string())),
            [_, dst] | [_, dst, _] if dst.starts_with('/') && !parts[0].is_empty() => {
                Ok(MountArg::Bind(arg.to_string()))
            }
            _ => Err(bad("expected SRC:DST[:OPTS] with an absolute DST".into())),
        };
    }
    let mut mount = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    for kv in arg.split(',') {
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (kv.trim(), None),
        };
        match (key, value) {
            ("type", Some(t)) => {
                mount.typ = Some(match t {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => return Err(bad(format!("unsupported type {other}"))),
                })
            }
            ("source" | "src", Some(s)) => mount.source = Some(s.to_string()),
            ("target" | "destination" | "dst", Some(t)) => mount.target = Some(t.to_string()),
            ("readonly" | "ro", None | Some("true" | "1")) => mount.read_only = Some(true),
            ("readonly" | "ro", Some("false" | "0")) => mount.read_only = Some(false),
            _ => return Err(bad(format!("unsupported option {kv:?}"))),
        }
    }
    match &mount.target {
        Some(t) if t.starts_with('/') => {}
        _ => return Err(bad("needs target=/absolute/path".into())),
    }
    if mount.typ == Some(MountType::BIND) && mount.source.is_none() {
        return Err(bad("a bind mount needs source=".into()));
    }
    Ok(MountArg::Mount(Box::new(mount)))
}

impl ContainerSpec {
    /// A spec that runs `image` as the image says.
    pub fn new(image: impl Into<String>) -> Self {
        ContainerSpec {
            image: image.into(),
            ..Default::default()
        }
    }

    /// All ports that will be published, normalized (`8080/tcp`), in order,
    /// without duplicates.
    pub fn published_ports(&self) -> Result<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for p in self.publish.iter().chain(&self.expose) {
            let p = normalize_port(p)?;
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The engine's create body for this spec.
    pub fn to_create_body(&self) -> Result<ContainerCreateBody> {
        if self.image.trim().is_empty() {
            return Err(EngineError::InvalidSpec {
                what: "container spec",
                why: "no image".into(),
            });
        }
        for e in &self.env {
            if e.split('=').next().is_none_or(str::is_empty) {
                return Err(EngineError::InvalidSpec {
                    what: "env",
                    why: format!("{e:?}: expected KEY=VALUE"),
                });
            }
        }
        let ports = self.published_ports()?;
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = ports
            .iter()
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some(PUBLISH_HOST_IP.into()),
                    host_port: Some(String::new()),
                };
                (p.clone(), Some(vec![binding]))
            })
            .collect();

        let mut binds = Vec::new();
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        for m in &self.mounts {
            match parse_mount(m)? {
                MountArg::Bind(b) => binds.push(b),
                MountArg::Anonymous(v) => volumes.push(v),
                MountArg::Mount(m) => mounts.push(*m),
            }
        }
        let some_vec = |v: Vec<String>| (!v.is_empty()).then_some(v);
        let entrypoint = self.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                e.clone()
            }
        });

        Ok(ContainerCreateBody {
            image: Some(self.image.clone()),
            labels: (!self.labels.is_empty()).then(|| {
                self.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            entrypoint,
            cmd: self.cmd.clone(),
            env: some_vec(self.env.clone()),
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            exposed_ports: some_vec(ports),
            volumes: some_vec(volumes),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            healthcheck: self.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: h.interval_ns,
                timeout: h.timeout_ns,
                retries: h.retries,
                start_period: h.start_period_ns,
                start_interval: None,
            }),
            networking_config: match (&self.network_mode, self.network_aliases.is_empty()) {
                (Some(net), false) => Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        net.clone(),
                        EndpointSettings {
                            aliases: Some(self.network_aliases.clone()),
                            ..Default::default()
                        },
                    )])),
                }),
                _ => None,
            },
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            open_stdin: Some(false),
            tty: Some(false),
            host_config: Some(HostConfig {
                binds: some_vec(binds),
                mounts: (!mounts.is_empty()).then_some(mounts),
                cgroup_parent: self.cgroup_parent.clone(),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                security_opt: some_vec(self.security_opts.clone()),
                network_mode: self.network_mode.clone(),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_binds_are_found_in_both_forms() {
        let hb = |a: &str| host_bind(a).unwrap();
        assert_eq!(
            hb("/etc/shadow:/x"),
            Some(HostBind {
                source: "/etc/shadow".into(),
                read_only: false
            })
        );
        assert!(hb("/srv:/x:ro,z").unwrap().read_only);
        assert_eq!(hb("data:/x"), None, "named volume");
        assert_eq!(hb("/x"), None, "anonymous volume");
        assert_eq!(hb("type=tmpfs,target=/t"), None);
        assert_eq!(hb("type=volume,source=v,target=/t"), None);
        assert!(hb("type=volume,source=/etc,target=/t").is_some());
        let m = hb("type=bind,src=/srv,target=/t,readonly").unwrap();
        assert_eq!((m.source.as_str(), m.read_only), ("/srv", true));
        assert_eq!(
            with_bind_source("/var/run/x:/x:ro", "/run/x").unwrap(),
            "/run/x:/x:ro"
        );
        assert_eq!(
            with_bind_source("type=bind,src=/a,target=/t", "/b").unwrap(),
            "type=bind,source=/b,target=/t"
        );
    }

    #[test]
    fn ports_are_normalized_and_published_on_loopback() {
        let spec = ContainerSpec {
            publish: vec!["8080".into(), "8080/tcp".into()],
            expose: vec!["9000/udp".into()],
            ..ContainerSpec::new("img")
        };
        let body = spec.to_create_body().unwrap();
        assert_eq!(
            body.exposed_ports.unwrap(),
            vec!["8080/tcp".to_string(), "9000/udp".to_string()]
        );
        let hc = body.host_config.unwrap();
        let pb = hc.port_bindings.unwrap();
        let b = pb["8080/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b[0].host_port.as_deref(), Some(""));
        assert_eq!(hc.auto_remove, Some(false));
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("80/foo").is_err());
        assert_eq!(port_number("80/tcp"), Some(80));
    }

    #[test]
    fn mounts_sort_into_binds_volumes_and_mounts() {
        let spec = ContainerSpec {
            mounts: vec![
                "/host/data:/data:ro".into(),
                "/anon".into(),
                "type=bind,source=/src,target=/dst,readonly".into(),
                "type=tmpfs,dst=/scratch".into(),
            ],
            ..ContainerSpec::new("img")
        };
        let body = spec.to_create_body().unwrap();
        assert_eq!(body.volumes.unwrap(), vec!["/anon".to_string()]);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.binds.unwrap(), vec!["/host/data:/data:ro".to_string()]);
        let m = hc.mounts.unwrap();
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(m[1].typ, Some(MountType::TMPFS));
        assert_eq!(m[1].target.as_deref(), Some("/scratch"));

        for bad in [
            "relative:dir",
            "type=bind,target=/x",
            "type=nfs,target=/x",
            "src=/a",
        ] {
            let spec = ContainerSpec {
                mounts: vec![bad.into()],
                ..ContainerSpec::new("img")
            };
            assert!(spec.to_create_body().is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_and_session_settings_reach_the_body() {
        let spec = ContainerSpec {
            name: Some("s1".into()),
            labels: [("slimd.session".to_string(), "abc".to_string())].into(),
            entrypoint: Some(vec![]),
            cmd: Some(vec!["run".into()]),
            env: vec!["A=1".into()],
            workdir: Some("/w".into()),
            user: Some("1000:1000".into()),
            cgroup_parent: Some("/slimd/abc".into()),
            stop_signal: Some("SIGINT".into()),
            security_opts: vec!["seccomp={}".into()],
            ..ContainerSpec::new("img:1")
        };
        let body = spec.to_create_body().unwrap();
        assert_eq!(body.entrypoint.unwrap(), vec![String::new()]);
        assert_eq!(body.labels.unwrap()["slimd.session"], "abc");
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.cgroup_parent.as_deref(), Some("/slimd/abc"));
        assert_eq!(hc.security_opt.unwrap(), vec!["seccomp={}".to_string()]);
        assert!(hc.port_bindings.is_none());

        let bad_env = ContainerSpec {
            env: vec!["=x".into()],
            ..ContainerSpec::new("img")
        };
        assert!(bad_env.to_create_body().is_err());
        assert!(ContainerSpec::default().to_create_body().is_err());
    }
}
