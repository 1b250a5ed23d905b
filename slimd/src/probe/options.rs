//! How the user asks for the app to be exercised: [`ProbeOptions`] (the
//! HTTP probe, probe files, API documents, exec probes, host commands and
//! their limits) and [`ContinueAfter`] (when to stop watching the app). The
//! API carries them as they are (`api::types` re-exports them).

use serde::{Deserialize, Serialize};

/// When to stop watching the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "when", content = "seconds")]
pub enum ContinueAfter {
    /// After the probes (default when the image exposes ports).
    Probes,
    /// When the container exits by itself (default for one-shot images).
    Exit,
    /// After this many seconds.
    Timeout(u64),
    /// When the client sends the continue signal (Enter or SIGUSR1 in `slim`).
    Signal,
}

impl ContinueAfter {
    /// Parses `probes`, `exit`, `timeout:N`, `signal` (also `enter`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "probes" | "probe" => Ok(Self::Probes),
            "exit" => Ok(Self::Exit),
            "signal" | "enter" | "sigusr1" => Ok(Self::Signal),
            _ => match s.strip_prefix("timeout:") {
                Some(n) => n
                    .parse()
                    .map(Self::Timeout)
                    .map_err(|_| format!("bad timeout in {s:?}: expected timeout:SECONDS")),
                None => Err(format!(
                    "unknown --continue-after {s:?}: expected probes, exit, timeout:N or signal"
                )),
            },
        }
    }
}

/// How the app is exercised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeOptions {
    /// The HTTP probe (GET / and crawl) on exposed ports.
    pub http_probe: bool,
    /// Contents of a `--http-probe-file` (JSON list of requests).
    pub http_probe_file: Option<String>,
    /// `--http-probe-apispec`: OpenAPI/Swagger documents whose every
    /// operation is requested (besides those found at the usual paths).
    pub http_probe_apispec: Vec<ApiSpecSource>,
    /// `--exec-probe CMD`: commands run inside the container.
    pub exec_probes: Vec<String>,
    /// `--probe-cmd CMD`: host commands given SLIM_TARGET_HOST/PORT.
    pub probe_cmds: Vec<String>,
    pub continue_after: Option<ContinueAfter>,
    /// Seconds to wait for each port to answer.
    pub ready_timeout_secs: u64,
    /// Seconds for all probes together.
    pub probe_timeout_secs: u64,
    /// Seconds a one-shot container may run before it is stopped.
    pub run_timeout_secs: u64,
    /// Seconds each exec probe and host command may run (within
    /// `probe_timeout_secs`); one that runs longer is killed and reported.
    pub command_timeout_secs: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            http_probe: true,
            http_probe_file: None,
            http_probe_apispec: Vec::new(),
            exec_probes: Vec::new(),
            probe_cmds: Vec::new(),
            continue_after: None,
            ready_timeout_secs: 60,
            probe_timeout_secs: 300,
            run_timeout_secs: 600,
            command_timeout_secs: 60,
        }
    }
}

/// Where an API description for the HTTP probe comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiSpecSource {
    /// A path on the app (`/internal/openapi.yaml`), fetched from every
    /// published port.
    Path(String),
    /// A local file, read by the client: its name (for messages) and text.
    File { name: String, contents: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_after_forms() {
        assert_eq!(ContinueAfter::parse("probes"), Ok(ContinueAfter::Probes));
        assert_eq!(ContinueAfter::parse("exit"), Ok(ContinueAfter::Exit));
        assert_eq!(
            ContinueAfter::parse("timeout:30"),
            Ok(ContinueAfter::Timeout(30))
        );
        assert_eq!(ContinueAfter::parse("signal"), Ok(ContinueAfter::Signal));
        assert!(ContinueAfter::parse("timeout:x").is_err());
        assert!(ContinueAfter::parse("later").is_err());
    }
}
