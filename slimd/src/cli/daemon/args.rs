//! The flags of `slimd`: `serve` (the daemon) and `trace` (debugging).

use std::path::PathBuf;

use clap::Args;

use crate::{api::types::DEFAULT_SOCKET, tracer::TracerOptions};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// API socket (ignored under systemd socket activation).
    #[arg(long, env = "SLIMD_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Reports and scratch space.
    #[arg(long, default_value = "/var/lib/slimd", global = true)]
    pub state_dir: PathBuf,
    /// Name of slimd's directory under the cgroup2 root (and the label that
    /// tells this daemon's containers apart).
    #[arg(long, default_value = "slimd", global = true)]
    pub cgroup_root: String,
    /// The container engine: docker, podman (Podman's Docker-compatible
    /// API service) or containerd (its gRPC API, as on Kubernetes nodes).
    /// Default: whichever of Docker and Podman answers on the socket.
    #[arg(long, value_name = "docker|podman|containerd", global = true)]
    pub engine: Option<crate::engine::EngineKind>,
    /// Engine socket (default: the engine's own, /var/run/docker.sock,
    /// /run/podman/podman.sock or /run/containerd/containerd.sock; without
    /// --engine, DOCKER_HOST or Docker's).
    #[arg(long, alias = "docker-socket", global = true)]
    pub engine_socket: Option<PathBuf>,
    /// With --engine containerd: the namespace its images and containers
    /// live in (kubelet's is k8s.io).
    #[arg(long, value_name = "NS", default_value = crate::containerd::DEFAULT_NAMESPACE, global = true)]
    pub containerd_namespace: String,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, global = true)]
    pub ring_buffer_mb: u32,
    /// Watch mode: also profile containers others start that carry the
    /// watch label (traced from their first instruction).
    #[arg(long, global = true)]
    pub watch: bool,
    /// The label (or pod annotation) that asks for a profile.
    #[arg(long, default_value = crate::session::watcher::DEFAULT_LABEL, value_name = "KEY=VALUE", global = true)]
    pub watch_label: String,
    /// cgroup2 path prefixes of the runtime's containers (repeatable;
    /// default: Docker's, Podman's and kubelet's cgroupfs and systemd layouts).
    #[arg(long, value_name = "PREFIX", global = true)]
    pub watch_prefix: Vec<String>,
}

impl ServeArgs {
    /// The tracer's options for these flags.
    pub fn tracer_options(&self) -> anyhow::Result<TracerOptions> {
        let mb = self.ring_buffer_mb;
        if mb == 0 || !mb.is_power_of_two() || mb > 1024 {
            anyhow::bail!("--ring-buffer-mb must be a power of two between 1 and 1024");
        }
        let watch_prefixes = if !self.watch {
            Vec::new()
        } else if self.watch_prefix.is_empty() {
            crate::session::watcher::DEFAULT_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.watch_prefix.clone()
        };
        Ok(TracerOptions {
            ring_bytes: mb * 1024 * 1024,
            watch_prefixes,
            ..TracerOptions::default()
        })
    }
}

/// Flags of `slimd trace`.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Run ARGS as a command on the host, moved into the session cgroup
    /// before it execs (no container engine needed).
    #[arg(long)]
    pub host: bool,
    /// Arguments for `docker run` (image and command included), or with
    /// `--host` the command to run.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub docker_args: Vec<String>,
}
