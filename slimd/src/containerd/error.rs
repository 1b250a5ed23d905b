//! What can go wrong talking to containerd: each error says which call or
//! which input, and keeps the gRPC status or transport error it came from.

use std::path::PathBuf;

/// An error from the containerd client.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// No socket at the path (containerd not running, or another path).
    #[error(
        "no containerd socket at {path}: is containerd running? (name its socket with `slim ... --containerd PATH`, or `slimd serve --engine containerd --engine-socket PATH`)"
    )]
    SocketMissing { path: PathBuf },
    /// The socket is there but the connection failed.
    #[error("cannot connect to containerd at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: containerd_client::tonic::transport::Error,
    },
    /// A call returned an error status.
    #[error("containerd {call}: {}", .source.message())]
    Call {
        call: &'static str,
        #[source]
        source: containerd_client::tonic::Status,
    },
    /// The namespace holds no image of that name.
    #[error("no image {name} in containerd namespace {namespace}")]
    ImageNotFound { name: String, namespace: String },
    /// The name is already an image and overwriting was not asked for.
    #[error(
        "image {name} already exists in containerd namespace {namespace}; give --force to replace it"
    )]
    ImageExists { name: String, namespace: String },
    /// No container record (or task) of that id.
    #[error("no container {id} in containerd")]
    ContainerNotFound { id: String },
    /// A container record of that id exists already.
    #[error("container {id} already exists in containerd")]
    ContainerExists { id: String },
    /// The container's task (or process) is not running.
    #[error("container {id} is not running")]
    NotRunning { id: String },
    /// The CRI knows no container of that id: another runtime's, a pod's
    /// sandbox (pause) container, or one that is gone.
    #[error("{id} is not a CRI container{}", if *.pod_sandbox { " (it is a pod sandbox)" } else { "" })]
    NotCriContainer { id: String, pod_sandbox: bool },
    /// A namespace name containerd would refuse.
    #[error(
        "bad containerd namespace {0:?}: letters, digits, '.', '_' and '-' only, starting with a letter or digit"
    )]
    BadNamespace(String),
    /// An image whose index has no manifest for this platform.
    #[error("image {name} has no {platform} manifest (it has: {available})")]
    NoPlatform {
        name: String,
        platform: String,
        available: String,
    },
    /// A media type this reader does not follow.
    #[error("{what} has media type {media_type:?}, which is not an image index or manifest")]
    MediaType { what: String, media_type: String },
    /// A JSON document (index, manifest) that does not parse.
    #[error("{what} does not read as JSON: {source}")]
    Document {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A blob whose bytes do not match its descriptor.
    #[error("blob {digest}: {problem}")]
    Blob { digest: String, problem: String },
    /// An archive that is not an OCI image layout, or holds no single image.
    #[error("{path}: {problem}")]
    Archive { path: PathBuf, problem: String },
    /// Local I/O (scratch files, the archive).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ContainerdError {
    /// Wraps a failed call's status.
    pub(crate) fn call(call: &'static str) -> impl Fn(containerd_client::tonic::Status) -> Self {
        move |source| ContainerdError::Call { call, source }
    }

    /// Wraps a local I/O error with what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| ContainerdError::Io { what, source }
    }

    /// Whether the error means "no such image" (for the API's 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContainerdError::ImageNotFound { .. })
    }

    /// Whether the error is the caller's (bad input), not containerd's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ContainerdError::SocketMissing { .. }
                | ContainerdError::ImageExists { .. }
                | ContainerdError::BadNamespace(_)
                | ContainerdError::NoPlatform { .. }
                | ContainerdError::Archive { .. }
        )
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, ContainerdError>;
