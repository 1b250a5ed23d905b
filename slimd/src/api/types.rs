//! Request and response types of the daemon's socket API, shared by the
//! server (`api::server`) and the client (`api::client`). JSON over HTTP/1.1
//! on a Unix socket; a session's progress streams as newline-delimited JSON.
//!
//! The session vocabulary is made where it is used ([`crate::model`], the
//! keep options in [`crate::resolve::options`], the probe options in
//! [`crate::probe::options`]) and re-exported here; what only the wire
//! needs lives here.

use serde::{Deserialize, Serialize};

pub use crate::model::{
    ApiError, Caller, ComposeRequest, FailureKind, Phase, Progress, RunOptions, SessionInfo,
    SessionKind, SessionRequest, StatusInfo, UNVERIFIED_EXIT_CODE,
};
pub use crate::probe::options::{ApiSpecSource, ContinueAfter, ProbeOptions};
pub use crate::resolve::options::{
    Ecosystem, Granularity, GranularityOverride, GranularityOverrideError, KeepOptions,
    OverrideTarget,
};

/// API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// Default socket path of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/slimd/slimd.sock";

/// `POST /v1/xray`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XrayRequest {
    pub image: String,
    /// Read the image from containerd instead of the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<ContainerdTarget>,
}

pub use crate::model::{ContainerdTarget, LoadRequest};

/// The header that carries a [`LoadRequest`].
pub const LOAD_REQUEST_HEADER: &str = "x-slimd-load";

pub use crate::containerd::write::Loaded;

/// `POST /v1/images/export`: the image's `docker save` tar, streamed (for
/// `slim diff` and other commands that read an engine image in the client).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub image: String,
}
