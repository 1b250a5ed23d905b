//! Why a Compose stack stopped early: typed, each keeping its cause, with
//! the failure kind the API reports (and so `slim`'s exit code).

use crate::{
    compose::ComposeError, engine::EngineError, model::FailureKind, session::SessionError,
};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// One service's build failed.
    #[error("service {service}: {source}")]
    Service {
        service: String,
        #[source]
        source: SessionError,
    },
    /// A service's container (untraced) did not start.
    #[error("service {service}: the container did not start: {source}")]
    Start {
        service: String,
        #[source]
        source: EngineError,
    },
    /// A dependency did not reach its `depends_on` condition.
    #[error("service {service} depends on {dependency}, which {why}")]
    Dependency {
        service: String,
        dependency: String,
        why: String,
    },
    #[error(
        "the slim stack does not behave like the original:\n  - {}\n(the slim images stay loaded for inspection)",
        mismatches.join("\n  - ")
    )]
    Verify { mismatches: Vec<String> },
    #[error("stack cancelled (the client went away or asked)")]
    Cancelled,
    /// A service's session was refused (a path the caller may not use)
    /// or could not be registered.
    #[error("cannot register the session of service {service}: {message}")]
    Register {
        service: String,
        kind: FailureKind,
        message: String,
    },
}

impl StackError {
    pub fn kind(&self) -> FailureKind {
        match self {
            StackError::Compose(_) => FailureKind::Usage,
            StackError::Engine(EngineError::ImageNotFound(_)) => FailureKind::ImageNotFound,
            StackError::Engine(EngineError::Unsupported { .. }) => FailureKind::Usage,
            StackError::Service { source, .. } => source.kind(),
            StackError::Start { .. } | StackError::Dependency { .. } => FailureKind::App,
            StackError::Verify { .. } => FailureKind::Verify,
            StackError::Cancelled => FailureKind::Cancelled,
            StackError::Register { kind, .. } => *kind,
            StackError::Prepare { .. } | StackError::Engine(_) => FailureKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_cause() {
        let e = StackError::Service {
            service: "web".into(),
            source: SessionError::TagExists("web.slim:latest".into()),
        };
        assert_eq!(e.kind(), FailureKind::TagExists);
        assert!(e.to_string().starts_with("service web: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        let e = StackError::Compose(ComposeError::NoServices);
        assert_eq!(e.kind(), FailureKind::Usage);
        assert_eq!(
            StackError::Verify { mismatches: vec![] }.kind(),
            FailureKind::Verify
        );
        let e = StackError::Engine(EngineError::Unsupported {
            op: "create a network",
            engine: "containerd",
            why: "no CNI",
        });
        assert_eq!(e.kind(), FailureKind::Usage);
    }
}
