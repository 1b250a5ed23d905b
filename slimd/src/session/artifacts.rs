//! Hardening profiles written next to a session's report: a seccomp profile,
//! a NetworkPolicy suggestion and an AppArmor profile, all learned from what
//! the app did in this one run (see `harden`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde::Serialize;

use crate::{
    harden::{self, AddressFamily, FileAccess, FileUse, NetworkObservation, SeccompSummary},
    resolve::{AccessKind, KeepReason, KeepSet, NetOp, NetRecord, Observations},
    tracer::SockAddr,
};

/// What was written, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Hardening {
    /// The seccomp profile's accounting (observed, added, dropped, allowed).
    pub seccomp: Option<SeccompSummary>,
    /// The profile as JSON (what `--security-opt seccomp=` takes).
    #[serde(skip)]
    pub seccomp_json: Option<String>,
    pub network: harden::NetworkSummary,
    /// File name -> path of each artifact.
    pub files: BTreeMap<String, String>,
    pub problems: Vec<String>,
}

/// A file-name-safe short name for an image: `reg/team/app:1` -> `app`.
pub fn artifact_name(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let base = repo.rsplit('/').next().unwrap_or(repo);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "image".into()
    } else {
        clean
    }
}

/// The network records in the generators' terms.
pub fn network_observations(records: &[NetRecord]) -> Vec<NetworkObservation> {
    records
        .iter()
        .map(|r| {
            let (family, ip, port, unix_path) = match &r.addr {
                Some(SockAddr::Inet { ip, port }) => {
                    (AddressFamily::Inet, Some(*ip), Some(*port), None)
                }
                Some(SockAddr::Inet6 { ip, port }) => {
                    (AddressFamily::Inet6, Some(*ip), Some(*port), None)
                }
                Some(SockAddr::Unix { path, r#abstract }) => (
                    AddressFamily::Unix,
                    None,
                    None,
                    Some(if *r#abstract {
                        format!("@{path}")
                    } else {
                        path.clone()
                    }),
                ),
                Some(SockAddr::Other { af }) => (AddressFamily::from_raw(*af), None, None, None),
                Some(SockAddr::Unreadable) | None => (AddressFamily::Other(0), None, None, None),
            };
            NetworkObservation {
                op: match r.op {
                    NetOp::Connect => harden::NetOp::Connect,
                    NetOp::Bind => harden::NetOp::Bind,
                    NetOp::Listen => harden::NetOp::Listen,
                },
                family,
                ip,
                port,
                unix_path,
                ok: r.ok,
            }
        })
        .collect()
}

/// Files for the AppArmor profile: what was exec'd, read and written.
fn file_uses(obs: &Observations, keep: &KeepSet) -> Vec<FileUse> {
    let mut out: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
    for (path, reasons) in keep.entries() {
        let exec = reasons.iter().any(|r| {
            matches!(
                r,
                KeepReason::Used {
                    how: AccessKind::Exec,
                    ..
                }
            )
        });
        let e = out.entry(path.clone()).or_default();
        e.insert(if exec { 2 } else { 0 });
    }
    for a in obs.accesses.iter().filter(|a| a.write) {
        out.entry(a.path.clone()).or_default().insert(1);
    }
    out.into_iter()
        .flat_map(|(path, modes)| {
            modes.into_iter().map(move |m| FileUse {
                path: path.clone(),
                access: match m {
                    1 => FileAccess::Write,
                    2 => FileAccess::Exec,
                    _ => FileAccess::Read,
                },
            })
        })
        .collect()
}

/// Builds and writes the profiles into `dir`.
pub fn write(
    dir: &Path,
    image: &str,
    syscalls: &BTreeSet<u32>,
    obs: &Observations,
    keep: Option<&KeepSet>,
) -> Hardening {
    let name = artifact_name(image);
    let mut h = Hardening::default();
    let put = |h: &mut Hardening, file: String, text: &str| {
        let path = dir.join(&file);
        match std::fs::write(&path, text) {
            Ok(()) => {
                h.files.insert(file, path.display().to_string());
            }
            Err(e) => h.problems.push(format!("{}: {e}", path.display())),
        }
    };

    let summary = harden::seccomp_summary(harden::Arch::HOST, syscalls);
    let json = summary.profile().to_json();
    put(&mut h, format!("{name}-seccomp.json"), &json);
    h.seccomp_json = Some(json);
    h.seccomp = Some(summary);

    h.network = harden::summarize_network(&network_observations(&obs.network));
    match harden::network_policy(&name, &BTreeMap::new(), &h.network).to_yaml() {
        Ok(yaml) => put(&mut h, format!("{name}-networkpolicy.yaml"), &yaml),
        Err(e) => h.problems.push(format!("NetworkPolicy: {e}")),
    }

    if let Some(keep) = keep {
        match harden::apparmor_profile(&name, &file_uses(obs, keep), &h.network.families) {
            Ok(p) => put(&mut h, format!("{name}-apparmor"), &p.text),
            Err(e) => h.problems.push(format!("AppArmor profile: {e}")),
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(artifact_name("slimd-test/python-app:latest"), "python-app");
        assert_eq!(artifact_name("reg:5000/a/b"), "b");
        assert_eq!(artifact_name("app@sha256:ab"), "app");
        assert_eq!(artifact_name("x/..:1"), "image");
    }

    #[test]
    fn network_records_map_to_observations() {
        let recs = [
            NetRecord {
                pid: 1,
                comm: "a".into(),
                op: NetOp::Bind,
                addr: Some(SockAddr::Inet {
                    ip: "0.0.0.0".parse().unwrap(),
                    port: 80,
                }),
                ok: true,
            },
            NetRecord {
                pid: 1,
                comm: "a".into(),
                op: NetOp::Connect,
                addr: Some(SockAddr::Unix {
                    path: "x".into(),
                    r#abstract: true,
                }),
                ok: false,
            },
        ];
        let o = network_observations(&recs);
        assert_eq!(o[0].family, AddressFamily::Inet);
        assert_eq!(o[0].port, Some(80));
        assert_eq!(o[1].unix_path.as_deref(), Some("@x"));
        let s = harden::summarize_network(&o);
        assert!(s.ingress_ports.contains(&80));
    }
}
