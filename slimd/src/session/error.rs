//! Why a session stopped early: one typed error per way, each keeping its
//! cause, and [`SessionError::kind`], which decides the API's failure kind
//! (and so `slim`'s exit code).

use std::path::PathBuf;

use crate::{
    engine::EngineError, image::ImageError, model::FailureKind, probe::ProbeError,
    tracer::TracerError,
};

/// The end of a stderr tail, for messages (`""` when there is none).
fn stderr_hint(label: &str, text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let start = t.len().saturating_sub(1500);
    let start = (start..t.len())
        .find(|i| t.is_char_boundary(*i))
        .unwrap_or(t.len());
    format!("\n{label}:\n{}", &t[start..])
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session directory could not be made or written.
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The engine failed (or the image is missing: see [`SessionError::kind`]).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The daemon has no tracer (it said why at start-up).
    #[error("tracing is unavailable: {0}")]
    TracerUnavailable(String),
    #[error(transparent)]
    Tracer(#[from] TracerError),
    #[error("the target tag {0} names the original image: choose another --tag")]
    TargetIsOriginal(String),
    #[error("{0} already exists: pass --force to replace it, or --tag to choose another name")]
    TagExists(String),
    #[error("{0} appeared while building: pass --force to replace it")]
    TagAppeared(String),
    /// `--force` by a user other than root on a tag whose image none of
    /// their own sessions built.
    #[error(
        "{0} names an image that no session of yours built: only root may replace it (choose another --tag)"
    )]
    NotYourTag(String),
    #[error("{0:?} is not a session id (see `slim sessions`)")]
    BadSessionId(String),
    #[error(
        "no saved profile at {} ({source}): --from-profile takes the id of a finished build, profile or watch session",
        path.display()
    )]
    NoProfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a saved profile: {source}", path.display())]
    BadProfile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A probe flag that does not parse.
    #[error("{flag}: {source}")]
    ProbeFlag {
        flag: String,
        #[source]
        source: ProbeError,
    },
    #[error("--http-probe-file: {0}")]
    ProbeFileInvalid(String),
    #[error("--http-probe-apispec {0}")]
    ApiSpecInvalid(String),
    /// A keep flag that does not parse (a bad glob).
    #[error("{0}")]
    KeepFlag(String),
    #[error(
        "the container did not start: {source} (check the image's entrypoint/cmd, or --entrypoint/--cmd)"
    )]
    ContainerStart {
        #[source]
        source: EngineError,
    },
    #[error(
        "the container exited with code {code} before its ports were published{}",
        stderr_hint("stderr", stderr)
    )]
    ExitedBeforePublish { code: i64, stderr: String },
    #[error("the engine did not publish ports {0} within 10 s")]
    PortsNotPublished(String),
    /// Readiness failed: the app never listened, or exited first.
    #[error("{source}{}", match source {
        ProbeError::ContainerExited { .. } => "",
        _ => " (wait longer with --ready-timeout, or publish the right port with --expose)",
    })]
    NotReady {
        #[source]
        source: ProbeError,
    },
    /// A one-shot app failed on its own.
    #[error(
        "the container exited with code {code}{}; slimd minifies an app that works: check the image's command (or --entrypoint/--cmd){}",
        engine_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
        stderr_hint("stderr", stderr)
    )]
    AppFailed {
        code: i64,
        engine_error: Option<String>,
        stderr: String,
    },
    #[error(
        "no HTTP probe request got an answer ({tried} tried); the app may not serve HTTP on {ports}"
    )]
    NoHttpAnswer { tried: usize, ports: String },
    /// Exporting or reading the original image failed.
    #[error("reading the image: {0}")]
    Export(String),
    #[error("writing the slim image: {0}")]
    Write(#[source] ImageError),
    #[error("writing the slim image: {0}")]
    WriteIo(#[source] std::io::Error),
    #[error(
        "the slim image {target} does not behave like the original{under}:\n  - {}\n(it stays loaded for inspection; remove it with `docker rmi {target}`; keep more with --include-path/--include-bin)",
        mismatches.join("\n  - ")
    )]
    Verify {
        target: String,
        under: &'static str,
        mismatches: Vec<String>,
    },
    #[error("no seccomp profile to verify with")]
    NoSeccompProfile,
    #[error("session cancelled (the client went away or asked)")]
    Cancelled,
    /// A service of a Compose stack ended with its stack: why, and how the
    /// stack failed.
    #[error("{message}")]
    Stack { kind: FailureKind, message: String },
    /// A task of the daemon died (a bug).
    #[error("internal error: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl SessionError {
    /// The failure kind the API reports (and `slim` turns into an exit code).
    pub fn kind(&self) -> FailureKind {
        use SessionError as E;
        match self {
            E::Engine(EngineError::ImageNotFound(_)) => FailureKind::ImageNotFound,
            E::Engine(EngineError::Unsupported { .. }) => FailureKind::Usage,
            E::TargetIsOriginal(_)
            | E::BadSessionId(_)
            | E::NoProfile { .. }
            | E::ProbeFlag { .. }
            | E::ProbeFileInvalid(_)
            | E::ApiSpecInvalid(_)
            | E::KeepFlag(_) => FailureKind::Usage,
            E::TagExists(_) | E::TagAppeared(_) => FailureKind::TagExists,
            E::NotYourTag(_) => FailureKind::Forbidden,
            E::ContainerStart { .. }
            | E::ExitedBeforePublish { .. }
            | E::NotReady { .. }
            | E::AppFailed { .. }
            | E::NoHttpAnswer { .. } => FailureKind::App,
            E::Verify { .. } => FailureKind::Verify,
            E::Cancelled => FailureKind::Cancelled,
            E::Stack { kind, .. } => *kind,
            E::Prepare { .. }
            | E::Engine(_)
            | E::TracerUnavailable(_)
            | E::Tracer(_)
            | E::BadProfile { .. }
            | E::PortsNotPublished(_)
            | E::Export(_)
            | E::Write(_)
            | E::WriteIo(_)
            | E::NoSeccompProfile
            | E::Join(_) => FailureKind::Internal,
        }
    }
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_cause() {
        assert_eq!(
            SessionError::Engine(EngineError::ImageNotFound("x".into())).kind(),
            FailureKind::ImageNotFound
        );
        assert_eq!(
            SessionError::Engine(EngineError::ContainerNotFound("x".into())).kind(),
            FailureKind::Internal
        );
        assert_eq!(
            SessionError::TagExists("a.slim:latest".into()).kind(),
            FailureKind::TagExists
        );
        let unsupported = EngineError::Unsupported {
            op: "join a named network",
            engine: "containerd",
            why: "loopback only",
        };
        assert_eq!(SessionError::Engine(unsupported).kind(), FailureKind::Usage);
        let e = SessionError::NotReady {
            source: ProbeError::ContainerExited {
                code: 3,
                stderr_tail: "boom".into(),
            },
        };
        assert_eq!(e.kind(), FailureKind::App);
        assert!(!e.to_string().contains("--ready-timeout"), "{e}");
        let e = SessionError::AppFailed {
            code: 2,
            engine_error: None,
            stderr: "usage: x".into(),
        };
        assert!(e.to_string().ends_with("stderr:\nusage: x"), "{e}");
        // The cause stays reachable.
        let e = SessionError::ContainerStart {
            source: EngineError::ContainerNotFound("c".into()),
        };
        assert!(std::error::Error::source(&e).is_some());
    }
}
