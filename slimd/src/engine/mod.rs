//! The container engine: the only module that speaks Docker's API (through
//! bollard). Everything here is typed and thin: inspect and save images,
//! load the slim one, create/start/exec/stop/remove the session's container,
//! and list what a session left behind by label. Docker 20.10 speaks API
//! 1.41, so [`Engine::connect`] negotiates the version before any call.

pub mod client;
pub mod error;
pub mod spec;
pub mod types;

pub use client::{DEFAULT_SOCKET, Engine};
pub use error::{EngineError, Result};
pub use spec::{ContainerSpec, normalize_port, port_number, seccomp_opt_from_file};
pub use types::{
    ContainerInfo, ContainerState, EngineVersion, ExecOutput, ExecRequest, Healthcheck,
    ImageConfig, ImageInfo, Logs,
};
