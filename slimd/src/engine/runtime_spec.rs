//! The OCI runtime spec of a container slimd runs on containerd, made from
//! the image config and a [`ContainerSpec`] the way Docker makes its own:
//! entrypoint and command, environment, user, working directory, Docker's
//! default mounts and capabilities, the mounts the spec asks for, the
//! network namespace slimd made, and the session cgroup as the cgroups path
//! (so runc creates the container inside the cgroup the kernel tagged).
//! Pure: the user's names are looked up in files handed in.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxSeccomp, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec,
    UserBuilder, get_default_mounts, get_default_namespaces,
};

use super::error::{EngineError, Result};
use super::spec::ContainerSpec;
use super::types::ImageConfig;

/// PATH when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
const DOCKER_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

fn invalid(what: &'static str, why: impl Into<String>) -> EngineError {
    EngineError::InvalidSpec {
        what,
        why: why.into(),
    }
}

/// The process's argv as Docker makes it: the entrypoint (the spec's, or
/// the image's) followed by the command (the spec's; the image's only when
/// the entrypoint was not replaced).
pub fn args(image: &ImageConfig, spec: &ContainerSpec) -> Result<Vec<String>> {
    let (entrypoint, cmd) = match &spec.entrypoint {
        Some(ep) => (ep.clone(), spec.cmd.clone().unwrap_or_default()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            spec.cmd.clone().or(image.cmd.clone()).unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(invalid(
            "container",
            "no command: the image has no ENTRYPOINT or CMD and none was given",
        ));
    }
    Ok(args)
}

/// The image's environment with `extra` added or overriding by name, and
/// a PATH when there is none.
pub fn env(image: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in image.iter().chain(extra) {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        out.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        out.push(kv.clone());
    }
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.into());
    }
    out
}

/// A process's numeric identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// `user` (`name`, `uid`, `name:group`, `uid:gid`; empty is root) resolved
/// against the container's `/etc/passwd` and `/etc/group` contents, as
/// Docker does: a name must be there, a number need not; the user's other
/// groups are added.
pub fn resolve_user(user: Option<&str>, passwd: &str, group: &str) -> Result<Ids> {
    let user = user.unwrap_or("").trim();
    if user.is_empty() {
        return Ok(Ids::default());
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let users = entries(passwd);
    let groups = entries(group);
    let found = users.iter().find(|f| {
        f.first().is_some_and(|n| n == u)
            || (u.parse::<u32>().is_ok() && f.get(2).is_some_and(|id| id == u))
    });
    let (uid, name, mut gid) = match (u.parse::<u32>(), found) {
        (_, Some(f)) => (
            f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
            f.first().cloned(),
            f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0),
        ),
        (Ok(n), None) => (n, None, 0),
        (Err(_), None) => {
            return Err(invalid(
                "user",
                format!("unable to find user {u}: no matching entries in passwd file"),
            ));
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f.first().is_some_and(|n| n == g))
                .and_then(|f| f.get(2)?.parse().ok())
                .ok_or_else(|| {
                    invalid(
                        "user",
                        format!("unable to find group {g}: no matching entries in group file"),
                    )
                })?,
        };
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(name) => groups
            .iter()
            .filter(|f| {
                f.get(3)
                    .is_some_and(|m| m.split(',').any(|member| member == name))
            })
            .filter_map(|f| f.get(2)?.parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

/// One mount of the spec as the runtime takes it. Binds of host paths and
/// tmpfs only: containerd has no volumes.
pub fn mount(arg: &str) -> Result<Mount> {
    let bad = |why: &str| invalid("mount", format!("{arg:?}: {why}"));
    let no_volumes = || EngineError::Unsupported {
        op: "mount a volume",
        engine: "containerd",
        why: "containerd has no volumes: bind a host path (SRC:DST) or use type=tmpfs",
    };
    let is_flag_form = arg.contains('=');
    let (typ, source, target, mut options): (String, Option<String>, String, Vec<String>) =
        if is_flag_form {
            let mut typ = "volume".to_string();
            let (mut source, mut target, mut options) = (None, None, Vec::new());
            for kv in arg.split(',') {
                let (k, v) = match kv.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                    None => (kv.trim(), None),
                };
                match (k, v) {
                    ("type", Some(t)) => typ = t,
                    ("source" | "src", Some(s)) => source = Some(s),
                    ("target" | "destination" | "dst", Some(t)) => target = Some(t),
                    ("readonly" | "ro", None | Some(_)) => options.push("ro".to_string()),
                    _ => {}
                }
            }
            let target = target.ok_or_else(|| bad("no target"))?;
            (typ, source, target, options)
        } else {
            let parts: Vec<&str> = arg.split(':').collect();
            match parts.as_slice() {
                [_dst] => return Err(no_volumes()),
                [src, dst] | [src, dst, _] => {
                    let opts = parts.get(2).copied().unwrap_or("");
                    let options = opts
                        .split(',')
                        .filter(|o| *o == "ro" || *o == "readonly")
                        .map(|_| "ro".to_string())
                        .collect();
                    let typ = if src.starts_with('/') {
                        "bind"
                    } else {
                        "volume"
                    };
                    (typ.into(), Some(src.to_string()), dst.to_string(), options)
                }
                _ => return Err(bad("expected SRC:DST[:OPTS]")),
            }
        };
    if !target.starts_with('/') {
        return Err(bad("the target must be an absolute path"));
    }
    let builder = MountBuilder::default().destination(PathBuf::from(&target));
    let m = match typ.as_str() {
        "bind" => {
            let source = source
                .filter(|s| s.starts_with('/'))
                .ok_or_else(|| bad("a bind needs an absolute source"))?;
            options.extend(["rbind".to_string(), "rprivate".to_string()]);
            builder
                .typ("bind")
                .source(PathBuf::from(source))
                .options(options)
        }
        "tmpfs" => {
            options.extend(["nosuid".to_string(), "nodev".to_string()]);
            builder
                .typ("tmpfs")
                .source(PathBuf::from("tmpfs"))
                .options(options)
        }
        _ => return Err(no_volumes()),
    };
    m.build().map_err(|e| bad(&e.to_string()))
}

/// Where things outside the image come from.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub hostname: String,
    /// The session cgroup (`/slimd/<session>`), under which runc makes the
    /// container's own cgroup.
    pub cgroup_parent: Option<String>,
    /// The container's id: the last part of its cgroups path.
    pub id: String,
    /// The network namespace to join (slimd made it).
    pub netns: Option<PathBuf>,
    /// Extra binds (`/etc/hosts`, `/etc/hostname`): (host file, target).
    pub files: Vec<(PathBuf, String)>,
}

/// The runtime spec of `spec` run from an image with config `image`, as
/// `ids`, placed as `place` says.
pub fn runtime_spec(
    image: &ImageConfig,
    spec: &ContainerSpec,
    ids: &Ids,
    place: &Placement,
) -> Result<Spec> {
    let caps: std::collections::HashSet<Capability> = DOCKER_CAPS.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(|e| invalid("container", e.to_string()))?;
    let mut no_new_privileges = false;
    let mut seccomp: Option<LinuxSeccomp> = None;
    for opt in &spec.security_opts {
        match opt.split_once(['=', ':']) {
            _ if opt == "no-new-privileges" || opt == "no-new-privileges=true" => {
                no_new_privileges = true
            }
            Some(("seccomp", "unconfined")) => seccomp = None,
            Some(("seccomp", json)) => {
                seccomp = Some(serde_json::from_str(json).map_err(|e| {
                    invalid(
                        "security option",
                        format!("the seccomp profile does not read: {e}"),
                    )
                })?)
            }
            _ => {
                return Err(EngineError::Unsupported {
                    op: "apply this security option",
                    engine: "containerd",
                    why: "containerd builds take seccomp= and no-new-privileges only",
                });
            }
        }
    }
    let cwd = spec
        .workdir
        .clone()
        .or(image.workdir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let user = UserBuilder::default()
        .uid(ids.uid)
        .gid(ids.gid)
        .additional_gids(ids.additional_gids.clone())
        .build()
        .map_err(|e| invalid("user", e.to_string()))?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(args(image, spec)?)
        .env(env(&image.env, &spec.env))
        .cwd(PathBuf::from(cwd))
        .capabilities(capabilities)
        .no_new_privileges(no_new_privileges)
        .build()
        .map_err(|e| invalid("container", e.to_string()))?;
    let mut mounts = get_default_mounts();
    for (file, target) in &place.files {
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(target))
                .typ("bind")
                .source(file.clone())
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    "ro".to_string(),
                ])
                .build()
                .map_err(|e| invalid("mount", e.to_string()))?,
        );
    }
    for arg in &spec.mounts {
        let m = mount(arg)?;
        mounts.retain(|d| d.destination() != m.destination());
        mounts.push(m);
    }
    let namespaces: Vec<LinuxNamespace> = get_default_namespaces()
        .into_iter()
        .map(|ns| match (ns.typ(), &place.netns) {
            (LinuxNamespaceType::Network, Some(path)) => LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()
                .unwrap_or(ns),
            _ => ns,
        })
        .collect();
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    if let Some(parent) = &place.cgroup_parent {
        linux = linux.cgroups_path(PathBuf::from(format!(
            "{}/{}",
            parent.trim_end_matches('/'),
            place.id
        )));
    }
    let mut linux = linux
        .build()
        .map_err(|e| invalid("container", e.to_string()))?;
    let defaults = oci_spec::runtime::Linux::default();
    linux.set_masked_paths(defaults.masked_paths().clone());
    linux.set_readonly_paths(defaults.readonly_paths().clone());
    linux.set_seccomp(seccomp);
    let mut out = Spec::default();
    out.set_version("1.0.2".into());
    out.set_hostname(Some(place.hostname.clone()));
    out.set_process(Some(process));
    out.set_root(Some(
        RootBuilder::default()
            .path(PathBuf::from("rootfs"))
            .readonly(false)
            .build()
            .map_err(|e| invalid("container", e.to_string()))?,
    ));
    out.set_mounts(Some(mounts));
    out.set_linux(Some(linux));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            env: vec!["A=1".into(), "B=2".into()],
            workdir: Some("/app".into()),
            ..Default::default()
        }
    }

    #[test]
    fn args_follow_docker() {
        let spec = ContainerSpec::default();
        assert_eq!(args(&image(), &spec).unwrap(), ["/entry", "serve"]);
        let spec = ContainerSpec {
            cmd: Some(vec!["other".into()]),
            ..Default::default()
        };
        assert_eq!(args(&image(), &spec).unwrap(), ["/entry", "other"]);
        let spec = ContainerSpec {
            entrypoint: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        assert_eq!(args(&image(), &spec).unwrap(), ["/bin/sh"]);
        let spec = ContainerSpec {
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        assert!(args(&image(), &spec).is_err());
    }

    #[test]
    fn env_overrides_by_name_and_has_a_path() {
        let e = env(&["A=1".into(), "B=2".into()], &["A=3".into()]);
        assert_eq!(e, [DEFAULT_PATH, "B=2", "A=3"]);
        let e = env(&["PATH=/x".into()], &[]);
        assert_eq!(e, ["PATH=/x"]);
    }

    #[test]
    fn users_resolve_like_docker() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let group = "root:x:0:\napp:x:1001:\nwww:x:33:app\n";
        assert_eq!(resolve_user(None, passwd, group).unwrap(), Ids::default());
        let ids = resolve_user(Some("app"), passwd, group).unwrap();
        assert_eq!(
            (ids.uid, ids.gid, ids.additional_gids),
            (1000, 1001, vec![33])
        );
        let ids = resolve_user(Some("1000:www"), passwd, group).unwrap();
        assert_eq!((ids.uid, ids.gid), (1000, 33));
        let ids = resolve_user(Some("4242"), passwd, group).unwrap();
        assert_eq!((ids.uid, ids.gid), (4242, 0));
        assert!(resolve_user(Some("nobody"), passwd, group).is_err());
        assert!(resolve_user(Some("app:nogroup"), passwd, group).is_err());
    }

    #[test]
    fn mounts_bind_and_tmpfs_only() {
        let m = mount("/srv/data:/data:ro").unwrap();
        assert_eq!(m.typ().as_deref(), Some("bind"));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        let m = mount("type=tmpfs,target=/tmp").unwrap();
        assert_eq!(m.typ().as_deref(), Some("tmpfs"));
        assert!(matches!(
            mount("/data"),
            Err(EngineError::Unsupported { .. })
        ));
        assert!(matches!(
            mount("named:/data"),
            Err(EngineError::Unsupported { .. })
        ));
        assert!(mount("/a:rel").is_err());
    }

    #[test]
    fn spec_has_cgroup_netns_caps_and_seccomp() {
        let spec = ContainerSpec {
            env: vec!["C=3".into()],
            mounts: vec!["/srv:/srv".into()],
            security_opts: vec![
                r#"seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#
                    .into(),
            ],
            ..Default::default()
        };
        let place = Placement {
            hostname: "h".into(),
            cgroup_parent: Some("/slimd/s1".into()),
            id: "slimd-s1-trace".into(),
            netns: Some("/proc/1/task/2/ns/net".into()),
            files: vec![("/run/x/hosts".into(), "/etc/hosts".into())],
        };
        let s = runtime_spec(&image(), &spec, &Ids::default(), &place).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["linux"]["cgroupsPath"], "/slimd/s1/slimd-s1-trace");
        assert_eq!(v["process"]["args"], serde_json::json!(["/entry", "serve"]));
        assert_eq!(v["process"]["cwd"], "/app");
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        let net = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap();
        assert_eq!(net["path"], "/proc/1/task/2/ns/net");
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in ["/proc", "/dev", "/sys", "/etc/hosts", "/srv"] {
            assert!(dests.contains(&d), "{d} in {dests:?}");
        }
        let bad = ContainerSpec {
            security_opts: vec!["apparmor=x".into()],
            ..Default::default()
        };
        assert!(matches!(
            runtime_spec(&image(), &bad, &Ids::default(), &place),
            Err(EngineError::Unsupported { .. })
        ));
    }
}
