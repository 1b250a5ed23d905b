//! Probe errors. Individual request failures are *results* (recorded in the
//! report and compared by verify); these are the failures that stop a probe.

use std::path::PathBuf;

use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Readiness ran out of time: the app never listened on (some of) its
    /// ports, or a connect inside its network namespace kept failing.
    #[error(
        "the app did not listen on container port{} {} within {secs:.0}s{}{}",
        if missing.len() == 1 { "" } else { "s" },
        join_ports(missing),
        elsewhere_hint(elsewhere),
        detail_hint(detail)
    )]
    NotListening {
        missing: Vec<u16>,
        /// Ports the app listens on instead.
        elsewhere: Vec<u16>,
        secs: f64,
        /// The last connect error on the missing ports, if any.
        detail: String,
    },
    /// The container exited while slimd waited for it to answer.
    #[error(
        "the container exited with code {code} before it answered on its ports{}",
        stderr_hint(stderr_tail)
    )]
    ContainerExited { code: i64, stderr_tail: String },
    /// The `--http-probe-file` could not be read.
    #[error("cannot read HTTP probe file {}: {source}", path.display())]
    ProbeFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The probe file is not the expected JSON.
    #[error("HTTP probe file {}: {why}", path.display())]
    ProbeFileInvalid { path: PathBuf, why: String },
    /// A request names a port the container does not publish.
    #[error(
        "probe request {request} names container port {port}, which is not published (published: {published})"
    )]
    UnknownPort {
        request: String,
        port: u16,
        published: String,
    },
    /// A probe command line that cannot be split into words.
    #[error("invalid probe command {cmd:?}: {why}")]
    InvalidCommand { cmd: String, why: String },
    /// The engine failed underneath an exec probe or a one-shot run.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn elsewhere_hint(ports: &[u16]) -> String {
    if ports.is_empty() {
        "; it listens on no other TCP port either".into()
    } else {
        format!(
            "; it listens on {} instead (publish that with --expose)",
            join_ports(ports)
        )
    }
}

fn detail_hint(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn stderr_hint(tail: &str) -> String {
    let tail = tail.trim();
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with: {tail}")
    }
}

pub type Result<T, E = ProbeError> = std::result::Result<T, E>;
