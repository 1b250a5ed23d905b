//! Plain, serializable views of what the engine reports, so the rest of slimd
//! (reports, the API) never sees bollard's wire types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Engine and host facts for `slim status` and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineVersion {
    /// Which engine answers: Docker, or Podman's Docker-compatible API.
    #[serde(default = "docker")]
    pub engine: super::EngineKind,
    /// Engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// API version the engine speaks (and slimd negotiated down to).
    pub api_version: String,
    /// `linux`.
    pub os: String,
    /// Host kernel release.
    pub kernel: String,
    /// `cgroupfs` or `systemd`: decides how CgroupParent is spelled.
    pub cgroup_driver: String,
    /// `1` or `2`.
    pub cgroup_version: String,
}

/// Status lines from before Podman was supported named no engine.
fn docker() -> super::EngineKind {
    super::EngineKind::Docker
}

/// HEALTHCHECK as the image declares it; durations in nanoseconds as Docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ns: Option<i64>,
    pub timeout_ns: Option<i64>,
    pub retries: Option<i64>,
    pub start_period_ns: Option<i64>,
}

/// The image config slimd carries into the slim image and uses to run the app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `8080/tcp` entries.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub shell: Option<Vec<String>>,
    pub on_build: Vec<String>,
}

/// What `docker image inspect` says about an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `sha256:...`.
    pub id: String,
    pub repo_tags: Vec<String>,
    /// Size in bytes as the engine counts it (all layers).
    pub size: u64,
    pub created: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    /// Layer diff ids, bottom first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
}

/// Run state of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `exited`, ...
    pub status: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    /// Host pid of the container's init process (0 when not running).
    pub pid: Option<i64>,
    /// The engine's error message, e.g. the exec failure when start failed.
    pub error: Option<String>,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// `starting`, `healthy`, `unhealthy` when it has a healthcheck.
    #[serde(default)]
    pub health: Option<String>,
}

/// What `docker inspect` says about a container. Read it again after a
/// restart: the published host ports can change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// Container port (`8080/tcp`) -> host port on 127.0.0.1 (or the first binding).
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    pub cgroup_parent: Option<String>,
    /// The overlay's merged directory: the container's root as seen from the host.
    pub merged_dir: Option<String>,
    /// A file naming the container's network namespace (the engine's bind
    /// mount of it, e.g. `/var/run/docker/netns/<id>`): opening it needs no
    /// ptrace rights over the container's processes, unlike `/proc/PID/ns/net`.
    pub netns: Option<String>,
}

impl ContainerInfo {
    /// The host port for a container port (`8080` or `8080/tcp`).
    pub fn host_port(&self, container_port: &str) -> Option<u16> {
        let key = if container_port.contains('/') {
            container_port.to_string()
        } else {
            format!("{container_port}/tcp")
        };
        self.ports.get(&key).copied()
    }
}

/// A container's output, each stream cut at the caller's limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when either stream was longer than the limit.
    pub truncated: bool,
}

/// A command to run inside a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries added to the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// Bytes kept per stream; the rest is read and dropped.
    pub max_output: usize,
}

impl ExecRequest {
    /// Default output limit per stream.
    pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

    pub fn new(cmd: Vec<String>) -> Self {
        ExecRequest {
            cmd,
            max_output: Self::DEFAULT_MAX_OUTPUT,
            ..Default::default()
        }
    }
}

/// The result of an exec. A timed-out exec keeps running inside the
/// container (the API cannot kill it); stopping the container ends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// `None` when the deadline passed first.
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
}

/// Appends to `buf` up to `limit` bytes; says whether anything was dropped.
pub(crate) fn push_bounded(buf: &mut Vec<u8>, data: &[u8], limit: usize) -> bool {
    let room = limit.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
    data.len() > room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_push_keeps_the_head() {
        let mut b = Vec::new();
        assert!(!push_bounded(&mut b, b"abc", 5));
        assert!(push_bounded(&mut b, b"defg", 5));
        assert_eq!(b, b"abcde");
        assert!(push_bounded(&mut b, b"x", 5));
    }

    #[test]
    fn host_port_accepts_bare_numbers() {
        let info = ContainerInfo {
            ports: [("8080/tcp".to_string(), 32768)].into(),
            ..Default::default()
        };
        assert_eq!(info.host_port("8080"), Some(32768));
        assert_eq!(info.host_port("8080/tcp"), Some(32768));
        assert_eq!(info.host_port("8080/udp"), None);
    }
}
