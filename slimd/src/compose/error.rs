//! Why a Compose file is refused: one typed error per way, each naming the
//! file, the key or the service concerned.

use std::path::PathBuf;

use super::interpolate::InterpolationError;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not YAML: {source}")]
    Yaml {
        file: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{file}: not a Compose file: {source}")]
    Model {
        file: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{file}: {key}: {source}")]
    Interpolation {
        file: String,
        key: String,
        #[source]
        source: InterpolationError,
    },
    #[error("{file}:{line}: {why}")]
    EnvFile {
        file: String,
        line: usize,
        why: String,
    },
    #[error("env_file {path} of service {service} was not sent with the Compose file")]
    EnvFileMissing { service: String, path: String },
    /// A part of the Compose specification slimd does not run.
    #[error("{key}: not supported by slim build --compose: {why}")]
    Unsupported { key: String, why: String },
    /// A value slimd cannot use.
    #[error("{key}: {why}")]
    Invalid { key: String, why: String },
    #[error("no service named {0:?} in the Compose file")]
    UnknownService(String),
    #[error(
        "service {service} depends on {dependency}, which is not enabled (its profiles are not active: add --profile)"
    )]
    DependencyDisabled { service: String, dependency: String },
    #[error("service {service} depends on {dependency}, which the Compose file does not define")]
    DependencyUnknown { service: String, dependency: String },
    #[error("the services depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("the Compose file defines no services")]
    NoServices,
}
