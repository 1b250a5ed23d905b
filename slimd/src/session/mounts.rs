//! The host side of a session's container, checked with the caller's ids:
//! a user of the socket must not reach through the app's container what
//! they could not reach themselves.
//!
//! For a caller other than root, a host path bound into the container
//! (`-v SRC:DST`, `--mount type=bind`) must be read-only, and readable by
//! the caller, every entry below it too (the app may run as root inside
//! the container, and sees the whole tree); device nodes, sockets, the
//! engine's socket and the daemon's state directory are refused. The path
//! is replaced by its canonical form, so a symlink swapped after the check
//! cannot redirect it. Named volumes and tmpfs stay allowed. Root may bind
//! anything, as with the engine itself. The host's network namespace
//! (`--network host`, where the app's root could sniff the host's traffic)
//! and another container's (`--network container:..`) are root's only.
//! The same rights decide which advisory database (`--vuln-db`) the daemon
//! reads for a caller.

use std::path::{Path, PathBuf};

use crate::{
    engine::spec::{host_bind, with_bind_source},
    host::access::{self, AccessError, Ids, READ},
    model::{Caller, RunOptions},
};

/// Entries below a bound directory that are looked at, at most.
pub const TREE_LIMIT: usize = 100_000;

/// What no one but root may bind.
#[derive(Clone, Debug)]
pub struct Protected {
    pub state_dir: PathBuf,
    pub engine_socket: PathBuf,
}

/// Why a mount (or network mode) was refused.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("--mount {arg:?}: {source}")]
    Invalid {
        arg: String,
        #[source]
        source: crate::engine::EngineError,
    },
    #[error(
        "--mount {arg:?}: only root may bind a host path read-write (the app's container may run as root and could leave a set-user-id file there); add :ro, or use a named volume"
    )]
    ReadWrite { arg: String },
    #[error("--mount {arg:?}: {path} does not resolve: {source}")]
    Resolve {
        arg: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--mount {arg:?}: {what} may be bound by root only")]
    Protected { arg: String, what: String },
    #[error("--mount {arg:?}: refused with your rights: {source}")]
    Access {
        arg: String,
        #[source]
        source: AccessError,
    },
    #[error("--mount {arg:?}: a host path with ':' or ',' cannot be passed on safely")]
    Separator { arg: String },
    #[error("--network {0:?}: the host's or another container's network is root's only")]
    Network(String),
    #[error("--vuln-db {path}: does not resolve: {source}")]
    VulnDbResolve {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--vuln-db {path}: {what} may be read by root only")]
    VulnDbProtected { path: String, what: String },
    #[error("--vuln-db {path}: refused with your rights: {source}")]
    VulnDbAccess {
        path: String,
        #[source]
        source: AccessError,
    },
}

/// Checks that `caller` may read the advisory database at `path` (a file,
/// or a directory with everything in it), which the daemon reads on their
/// behalf; its canonical form when they may.
pub fn check_vuln_db(
    path: &Path,
    caller: &Caller,
    protected: &Protected,
) -> Result<PathBuf, MountError> {
    let shown = || path.display().to_string();
    let canonical = path
        .canonicalize()
        .map_err(|source| MountError::VulnDbResolve {
            path: shown(),
            source,
        })?;
    if caller.is_root() {
        return Ok(canonical);
    }
    if let Some(what) = protected_by(&canonical, protected) {
        return Err(MountError::VulnDbProtected {
            path: shown(),
            what,
        });
    }
    access::check(&canonical, &caller_ids(caller), READ, true, TREE_LIMIT).map_err(|source| {
        MountError::VulnDbAccess {
            path: shown(),
            source,
        }
    })?;
    Ok(canonical)
}

fn caller_ids(caller: &Caller) -> Ids {
    Ids {
        uid: caller.uid,
        gid: caller.gid,
        groups: caller.groups.clone(),
    }
}

/// Checks `run` for `caller`; the mount arguments to use (host paths made
/// canonical) when it passes.
pub fn check(
    run: &RunOptions,
    caller: &Caller,
    protected: &Protected,
) -> Result<Vec<String>, MountError> {
    if caller.is_root() {
        return Ok(run.mounts.clone());
    }
    if let Some(n) = &run.network
        && (n.starts_with("container:") || n == "host")
    {
        return Err(MountError::Network(n.clone()));
    }
    let ids = caller_ids(caller);
    let mut out = Vec::with_capacity(run.mounts.len());
    for arg in &run.mounts {
        let invalid = |source| MountError::Invalid {
            arg: arg.clone(),
            source,
        };
        let Some(bind) = host_bind(arg).map_err(invalid)? else {
            out.push(arg.clone());
            continue;
        };
        if !bind.read_only {
            return Err(MountError::ReadWrite { arg: arg.clone() });
        }
        let canonical =
            Path::new(&bind.source)
                .canonicalize()
                .map_err(|source| MountError::Resolve {
                    arg: arg.clone(),
                    path: bind.source.clone(),
                    source,
                })?;
        if let Some(what) = protected_by(&canonical, protected) {
            return Err(MountError::Protected {
                arg: arg.clone(),
                what,
            });
        }
        access::check(&canonical, &ids, READ, true, TREE_LIMIT).map_err(|source| {
            MountError::Access {
                arg: arg.clone(),
                source,
            }
        })?;
        let text = canonical.to_string_lossy();
        if text.contains([':', ',']) || canonical.to_str().is_none() {
            return Err(MountError::Separator { arg: arg.clone() });
        }
        out.push(with_bind_source(arg, &text).map_err(invalid)?);
    }
    Ok(out)
}

/// Which protected path `canonical` is, holds, or lies in.
fn protected_by(canonical: &Path, p: &Protected) -> Option<String> {
    let canon = |x: &Path| x.canonicalize().unwrap_or_else(|_| x.to_path_buf());
    let state = canon(&p.state_dir);
    if canonical.starts_with(&state) || state.starts_with(canonical) {
        return Some(format!("slimd's state directory ({})", state.display()));
    }
    let socket = canon(&p.engine_socket);
    if socket.starts_with(canonical) {
        return Some(format!("the engine's socket ({})", socket.display()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Caller {
        Caller {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        }
    }

    fn run(mounts: &[&str]) -> RunOptions {
        RunOptions {
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        }
    }

    fn protected(d: &Path) -> Protected {
        Protected {
            state_dir: d.join("state"),
            engine_socket: d.join("run/docker.sock"),
        }
    }

    #[test]
    fn a_member_binds_only_what_they_may_read_and_only_read_only() {
        let d = tempfile::tempdir().unwrap();
        let p = protected(d.path());
        let err = |m: &[&str]| check(&run(m), &member(), &p).unwrap_err().to_string();
        assert!(err(&["/etc/shadow:/x:ro"]).contains("permission denied"));
        assert!(err(&["/etc/shadow:/x"]).contains("read-write"));
        assert!(err(&["/dev/null:/x:ro"]).contains("device node"));
        assert!(err(&["/nonexistent-slimd-test:/x:ro"]).contains("does not resolve"));
        std::fs::create_dir_all(d.path().join("state/sessions")).unwrap();
        std::fs::create_dir_all(d.path().join("run")).unwrap();
        let state = format!("{}:/x:ro", d.path().join("state/sessions").display());
        assert!(err(&[&state]).contains("state directory"));
        let run_dir = format!(
            "type=bind,src={},target=/x,ro",
            d.path().join("run").display()
        );
        assert!(err(&[&run_dir]).contains("engine's socket"));
        // Named volumes, tmpfs and readable files pass; paths become canonical.
        let ok = check(
            &run(&[
                "data:/data",
                "type=tmpfs,target=/t",
                "/etc/../etc/hostname:/h:ro",
            ]),
            &member(),
            &p,
        )
        .unwrap();
        assert_eq!(ok[2], "/etc/hostname:/h:ro");
        // Root binds what it likes.
        assert_eq!(
            check(&run(&["/etc/shadow:/x"]), &Caller::root(), &p).unwrap(),
            vec!["/etc/shadow:/x".to_string()]
        );
        let net = RunOptions {
            network: Some("container:abc".into()),
            ..Default::default()
        };
        assert!(check(&net, &member(), &p).is_err());
        let host = RunOptions {
            network: Some("host".into()),
            ..Default::default()
        };
        assert!(check(&host, &member(), &p).is_err());
    }

    #[test]
    fn a_member_names_only_an_advisory_database_they_may_read() {
        let d = tempfile::tempdir().unwrap();
        let p = protected(d.path());
        let err = |path: &str| {
            check_vuln_db(Path::new(path), &member(), &p)
                .unwrap_err()
                .to_string()
        };
        assert!(err("/etc/shadow").contains("permission denied"));
        assert!(err("/nonexistent-slimd-test").contains("does not resolve"));
        std::fs::create_dir_all(d.path().join("state/sessions")).unwrap();
        assert!(
            err(&d.path().join("state/sessions").display().to_string()).contains("state directory")
        );
        assert_eq!(
            check_vuln_db(Path::new("/etc/../etc/hostname"), &member(), &p).unwrap(),
            Path::new("/etc/hostname")
        );
        assert!(check_vuln_db(Path::new("/etc/shadow"), &Caller::root(), &p).is_ok());
    }
}
