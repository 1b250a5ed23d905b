//! What the probes did and saw, serializable for the session report and for
//! verify, which compares an original run's report with the slim run's.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::{Endpoint, HttpRequest};

/// Why a request was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RequestOrigin {
    /// The first `GET /` on each port.
    Root,
    /// Found in a page at this crawl depth.
    Crawl { depth: u32 },
    /// Entry `index` of the probe file.
    ProbeFile { index: usize },
    /// The `index`th HTML form submission (forms found by the crawl).
    Form { index: usize },
    /// A fetch of an API description (`--http-probe-apispec` or a usual path).
    ApiSpec,
    /// The `index`th request for an API operation.
    ApiOperation { index: usize },
    /// Re-sent from an earlier report (verify).
    Replay,
}

/// One HTTP request and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRecord {
    pub request: HttpRequest,
    pub origin: RequestOrigin,
    pub host_port: u16,
    /// `None` when no response came (see `error`).
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub body_len: u64,
    /// Hex SHA-256 of the whole body.
    pub body_sha256: Option<String>,
    /// The start of the body (lossy UTF-8), to show in mismatches.
    pub body_sample: String,
    /// Transport error or timeout of the last attempt.
    pub error: Option<String>,
    /// Set when the probe file's `expect_status` was not met.
    pub expectation_failed: Option<String>,
    pub attempts: u32,
    pub elapsed_ms: u64,
}

impl HttpRecord {
    /// `GET /x on 8080`, the name used in mismatches and progress lines.
    pub fn label(&self) -> String {
        self.request.label()
    }
}

/// Bytes of a captured stream, kept short in the report but hashed whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedOutput {
    /// Lossy UTF-8 of the first [`CapturedOutput::TEXT_LIMIT`] bytes.
    pub text: String,
    pub len: u64,
    /// Hex SHA-256 of the captured bytes.
    pub sha256: String,
    /// The producer cut the stream (its own limit): the hash covers the head only.
    pub truncated: bool,
}

impl CapturedOutput {
    /// Bytes of text kept in the report.
    pub const TEXT_LIMIT: usize = 16 * 1024;

    pub fn new(bytes: &[u8], truncated: bool) -> Self {
        let head = &bytes[..bytes.len().min(Self::TEXT_LIMIT)];
        CapturedOutput {
            text: String::from_utf8_lossy(head).into_owned(),
            len: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            truncated,
        }
    }
}

/// A command run inside the container (`--exec-probe`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    pub cmd: Vec<String>,
    pub exit_code: Option<i64>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub timed_out: bool,
    /// Engine failure (container gone, exec refused).
    pub error: Option<String>,
    /// Verify compares the exit code only.
    pub ignore_output: bool,
    pub elapsed_ms: u64,
}

/// A command run on the host against the app (`--probe-cmd`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommandRecord {
    pub cmd: String,
    /// `None` when it was killed at the deadline or by a signal.
    pub exit_code: Option<i32>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub timed_out: bool,
    pub error: Option<String>,
    pub ignore_output: bool,
    pub elapsed_ms: u64,
}

/// A one-shot container's own run: the "probe" of an image with no ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `None` when it did not exit before the deadline.
    pub exit_code: Option<i64>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub timed_out: bool,
    /// The engine's error, e.g. the entrypoint was not found.
    pub error: Option<String>,
}

/// Everything one probe run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub endpoints: Vec<Endpoint>,
    pub http: Vec<HttpRecord>,
    pub exec: Vec<ExecRecord>,
    pub host_commands: Vec<HostCommandRecord>,
    pub run: Option<RunRecord>,
    /// Limits reached, deadlines, skipped work: said once, in words.
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

impl ProbeReport {
    /// Requests that got no response or missed their expected status, and
    /// probes that failed or timed out: what a user must look at.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.http {
            if let Some(e) = &r.error {
                out.push(format!("{}: {e}", r.label()));
            } else if let Some(e) = &r.expectation_failed {
                out.push(format!("{}: {e}", r.label()));
            }
        }
        for e in &self.exec {
            if let Some(err) = &e.error {
                out.push(format!("exec {:?}: {err}", e.cmd.join(" ")));
            } else if e.timed_out {
                out.push(format!(
                    "exec probe {:?} timed out after {:.0} s (its deadline; see --command-timeout)",
                    e.cmd.join(" "),
                    e.elapsed_ms as f64 / 1000.0
                ));
            }
        }
        for h in &self.host_commands {
            if let Some(err) = &h.error {
                out.push(format!("host command {:?}: {err}", h.cmd));
            } else if h.timed_out {
                out.push(format!(
                    "host command {:?} timed out after {:.0} s (its deadline; see --command-timeout)",
                    h.cmd,
                    h.elapsed_ms as f64 / 1000.0
                ));
            }
        }
        out
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
