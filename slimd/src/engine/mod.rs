//! The container engine: the only module that drives containers. [`Engine`]
//! is one interface over two implementations: Docker's API (through
//! bollard, [`docker`]), to dockerd or to Podman's Docker-compatible
//! service, and containerd's gRPC API ([`containerd`], on
//! [`crate::containerd`]). Everything here is typed and thin: inspect and
//! save images, load the slim one, create/start/exec/stop/remove the
//! session's container, and list what a session left behind by label.
//! Docker 20.10 and Podman 4.3 speak API 1.41, so [`Engine::connect_to`]
//! negotiates the version before any call and reads which engine answers
//! ([`EngineKind`]); containerd is driven only when asked for.

pub mod client;
pub mod containerd;
pub mod docker;
pub mod error;
pub mod kind;
pub mod spec;
pub mod types;

pub use client::{DEFAULT_SOCKET, Engine};
pub use error::{EngineError, Result};
pub use kind::{EngineKind, PODMAN_SOCKET};
pub use spec::{ContainerSpec, normalize_port, port_number, seccomp_opt_from_file};
pub use types::{
    ContainerInfo, ContainerState, EngineVersion, ExecOutput, ExecRequest, Healthcheck,
    ImageConfig, ImageInfo, Logs,
};
