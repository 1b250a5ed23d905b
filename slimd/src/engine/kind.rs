//! Which engine answers on the socket: Docker, or Podman through its
//! Docker-compatible API (both driven through bollard), or containerd
//! through its gRPC API (Kubernetes nodes). The kind decides the default
//! socket, how the engine is named to people, and whether the session
//! cgroup can be handed to it as a `CgroupParent` path.

use std::{fmt, path::Path, str::FromStr};

use serde::{Deserialize, Serialize};

/// The engines slimd drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// dockerd (tested with 20.10, API 1.41).
    Docker,
    /// `podman system service` (tested with 4.3, compat API 1.41).
    Podman,
    /// containerd through its gRPC API (tested with 1.6), as on Kubernetes
    /// nodes.
    Containerd,
}

/// Where dockerd listens unless told otherwise.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Where rootful Podman's API service listens (`podman.socket`, or
/// `podman system service` without an address).
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// Where containerd listens on a node unless told otherwise.
pub const CONTAINERD_SOCKET: &str = crate::containerd::DEFAULT_SOCKET;

impl EngineKind {
    /// The socket this engine listens on by default.
    pub fn default_socket(self) -> &'static Path {
        Path::new(match self {
            EngineKind::Docker => DOCKER_SOCKET,
            EngineKind::Podman => PODMAN_SOCKET,
            EngineKind::Containerd => CONTAINERD_SOCKET,
        })
    }

    /// The engine's name as people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
            EngineKind::Containerd => "containerd",
        }
    }

    /// The kind a `/version` answer names: Podman lists a component called
    /// `Podman Engine`; anything else speaking this API is taken for Docker.
    pub fn from_components<'a>(names: impl IntoIterator<Item = &'a str>) -> EngineKind {
        if names
            .into_iter()
            .any(|n| n.to_ascii_lowercase().starts_with("podman"))
        {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        }
    }

    /// Whether `driver` (the engine's `/info` CgroupDriver) lets the session
    /// cgroup be named as a path under the cgroup root, which slimd creates
    /// and tags before the container exists. Under the systemd driver the
    /// parent must be a slice that systemd itself creates when the
    /// container starts, so there would be no cgroup to tag beforehand.
    pub fn cgroup_parent_is_a_path(driver: &str) -> bool {
        driver.is_empty() || driver == "cgroupfs"
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
            EngineKind::Containerd => "containerd",
        })
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "docker" => Ok(EngineKind::Docker),
            "podman" => Ok(EngineKind::Podman),
            "containerd" => Ok(EngineKind::Containerd),
            other => Err(format!(
                "unknown engine {other:?}: docker, podman or containerd"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_version_components() {
        assert_eq!(
            EngineKind::from_components(["Podman Engine", "Conmon", "OCI Runtime (runc)"]),
            EngineKind::Podman
        );
        assert_eq!(
            EngineKind::from_components(["Engine", "containerd", "runc", "docker-init"]),
            EngineKind::Docker
        );
        assert_eq!(EngineKind::from_components([]), EngineKind::Docker);
    }

    #[test]
    fn names_and_sockets() {
        assert_eq!("podman".parse::<EngineKind>(), Ok(EngineKind::Podman));
        assert_eq!("Docker".parse::<EngineKind>(), Ok(EngineKind::Docker));
        assert_eq!(
            "containerd".parse::<EngineKind>(),
            Ok(EngineKind::Containerd)
        );
        assert!("cri-o".parse::<EngineKind>().is_err());
        assert_eq!(
            EngineKind::Podman.default_socket(),
            Path::new("/run/podman/podman.sock")
        );
        assert_eq!(EngineKind::Docker.to_string(), "docker");
    }

    #[test]
    fn only_cgroupfs_takes_a_path_parent() {
        assert!(EngineKind::cgroup_parent_is_a_path("cgroupfs"));
        assert!(EngineKind::cgroup_parent_is_a_path(""));
        assert!(!EngineKind::cgroup_parent_is_a_path("systemd"));
    }
}
