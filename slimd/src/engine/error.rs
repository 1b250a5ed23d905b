//! Typed engine errors: callers decide on the variant (a missing image is a
//! user error, an unreachable engine is an environment error), never on text.

use std::path::PathBuf;

/// What went wrong while talking to the container engine (Docker, Podman
/// through its Docker-compatible API, or containerd).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The socket is missing or nothing answers on it.
    #[error(
        "cannot reach the container engine at {}: {source} (is dockerd running? for Podman, is `podman system service` running, and slimd started with --engine podman? check the socket path or DOCKER_HOST)",
        socket.display()
    )]
    Unreachable {
        socket: PathBuf,
        #[source]
        source: bollard::errors::Error,
    },
    /// The image is not in the local store; slimd never pulls from a registry.
    #[error(
        "image {0} not found in the engine's local store (slimd does not pull: build, load or pull it first)"
    )]
    ImageNotFound(String),
    /// No container with that id or name.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// The operation needs a running container (exec, kill).
    #[error("container {0} is not running")]
    ContainerNotRunning(String),
    /// The engine answered with an error status.
    #[error("the engine refused {op}: {message} (HTTP {status})")]
    Api {
        op: &'static str,
        status: u16,
        message: String,
    },
    /// The request failed on the way (connection reset, bad JSON, stream error).
    #[error("engine request {op} failed: {source}")]
    Request {
        op: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    /// `--engine` named one engine and another answers on the socket.
    #[error("{} answers at {}, not {asked} (--engine {asked}): point --engine-socket at {asked}'s socket, or leave --engine out", found.display_name(), socket.display())]
    WrongEngine {
        socket: PathBuf,
        asked: super::EngineKind,
        found: super::EngineKind,
    },
    /// The engine's cgroup driver cannot take the session cgroup as the
    /// container's parent before the container exists.
    #[error(
        "{engine} uses the {driver} cgroup manager: slimd creates and tags the session cgroup before the container exists and hands it to the engine as a cgroupfs path, which the {driver} manager does not take (it wants a slice that systemd itself creates at start). Run the engine with the cgroupfs manager ({hint})"
    )]
    UnsupportedCgroupDriver {
        engine: &'static str,
        driver: String,
        hint: &'static str,
    },
    /// A call to containerd failed (the engine is containerd).
    #[error("{op}: {source}")]
    Containerd {
        op: &'static str,
        #[source]
        source: crate::containerd::ContainerdError,
    },
    /// The engine has no such operation (containerd has no networks or
    /// volumes of its own).
    #[error("{engine} cannot {op}: {why}")]
    Unsupported {
        op: &'static str,
        engine: &'static str,
        why: &'static str,
    },
    /// A wall-clock limit ran out before the engine answered.
    #[error("{op} did not finish within {secs:.1}s")]
    Timeout { op: &'static str, secs: f64 },
    /// A container spec slimd cannot express to the engine.
    #[error("invalid {what}: {why}")]
    InvalidSpec { what: &'static str, why: String },
    /// Local file I/O around an engine transfer (save to / load from a file).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for the engine module.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Which object a request is about, so a 404 becomes the right variant.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Image(&'a str),
    Container(&'a str),
    None,
}

impl EngineError {
    /// Maps a bollard error to a typed one. `socket` names the engine for the
    /// "unreachable" message.
    pub(crate) fn from_bollard(
        op: &'static str,
        subject: Subject<'_>,
        socket: &std::path::Path,
        err: bollard::errors::Error,
    ) -> Self {
        use bollard::errors::Error as B;
        match err {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match (status_code, subject) {
                (404, Subject::Image(name)) => EngineError::ImageNotFound(name.to_string()),
                (404, Subject::Container(id)) if message.contains("No such image") => {
                    // create_container reports a missing image with 404 too.
                    let _ = id;
                    EngineError::ImageNotFound(image_from_message(&message))
                }
                (404, Subject::Container(id)) => EngineError::ContainerNotFound(id.to_string()),
                // Docker: "... is not running"; Podman: "... container state improper".
                (409, Subject::Container(id))
                    if message.contains("is not running") || message.contains("state improper") =>
                {
                    EngineError::ContainerNotRunning(id.to_string())
                }
                _ => EngineError::Api {
                    op,
                    status: status_code,
                    message,
                },
            },
            e @ (B::SocketNotFoundError(_) | B::APIVersionParseError {}) => {
                EngineError::Unreachable {
                    socket: socket.to_path_buf(),
                    source: e,
                }
            }
            B::HyperLegacyError { err } if err.is_connect() => EngineError::Unreachable {
                socket: socket.to_path_buf(),
                source: B::HyperLegacyError { err },
            },
            B::DockerStreamError { error } => EngineError::Api {
                op,
                status: 200,
                message: error,
            },
            other => EngineError::Request { op, source: other },
        }
    }

    /// True for the two "not found" variants about images or containers.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::ImageNotFound(_) | EngineError::ContainerNotFound(_)
        )
    }
}

/// "No such image: foo:latest" -> "foo:latest".
fn image_from_message(message: &str) -> String {
    message
        .split_once("No such image:")
        .map(|(_, rest)| rest.trim().to_string())
        .unwrap_or_else(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn server(status: u16, msg: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: status,
            message: msg.into(),
        }
    }

    #[test]
    fn not_found_maps_by_subject() {
        let s = Path::new("/var/run/docker.sock");
        let e = EngineError::from_bollard("inspect", Subject::Image("x:1"), s, server(404, "no"));
        assert!(matches!(e, EngineError::ImageNotFound(n) if n == "x:1"));
        let e =
            EngineError::from_bollard("inspect", Subject::Container("c1"), s, server(404, "no"));
        assert!(matches!(e, EngineError::ContainerNotFound(n) if n == "c1"));
        let e = EngineError::from_bollard(
            "create",
            Subject::Container("new"),
            s,
            server(404, "No such image: foo:latest"),
        );
        assert!(matches!(e, EngineError::ImageNotFound(n) if n == "foo:latest"));
        let e = EngineError::from_bollard(
            "exec",
            Subject::Container("c1"),
            s,
            server(409, "Container c1 is not running"),
        );
        assert!(matches!(e, EngineError::ContainerNotRunning(_)));
        let e = EngineError::from_bollard(
            "kill",
            Subject::Container("c1"),
            s,
            server(
                409,
                "can only kill running containers. 1f2e is in state exited: container state improper",
            ),
        );
        assert!(matches!(e, EngineError::ContainerNotRunning(_)));
        let e = EngineError::from_bollard("start", Subject::None, s, server(500, "boom"));
        assert_eq!(e.to_string(), "the engine refused start: boom (HTTP 500)");
    }

    #[test]
    fn missing_socket_is_unreachable() {
        let s = Path::new("/nope.sock");
        let e = EngineError::from_bollard(
            "connect",
            Subject::None,
            s,
            bollard::errors::Error::SocketNotFoundError("/nope.sock".into()),
        );
        assert!(e.to_string().contains("is dockerd running?"), "{e}");
    }
}
