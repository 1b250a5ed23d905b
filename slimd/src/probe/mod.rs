//! Exercising the app: readiness (the app listens, as the tracer saw, and a
//! connect inside its network namespace succeeds), the HTTP probe and crawl,
//! exec and host-command probes, one-shot runs, and verify, which compares
//! an original run with the slim image's run.
//!
//! The usual flow: [`wait_listening`] (readiness of every port, cut short
//! when the container exits), [`speaks_http`] on each ready port when the
//! HTTP probe is on, then [`run_probes`] with a [`ProbePlan`]; for verify,
//! [`run_probes`] again on the slim container with [`ProbePlan::replay_of`]
//! and [`verify::compare`].

pub mod command;
pub mod crawl;
pub mod error;
pub mod forms;
pub mod host;
pub mod http;
pub mod links;
pub mod openapi;
pub mod options;
pub mod ready;
pub mod report;
pub mod spec;
pub mod tls;
pub mod verify;

use std::time::{Duration, Instant};

pub use command::{record_oneshot_run, run_exec_probe};
pub use crawl::{HttpProbeConfig, replay_http, run_http_probe};
pub use error::{ProbeError, Result};
pub use host::{HostCommandBatch, HostCommandResults, HostCommandRunner, NoClient};
pub use openapi::SpecSource;
pub use ready::{HttpCheck, ListenFeed, PortReady, speaks_http, wait_listening};
pub use report::{
    CapturedOutput, ExecRecord, HostCommandRecord, HttpRecord, ProbeReport, RequestOrigin,
    RunRecord,
};
pub use spec::{Endpoint, HttpRequest, ProbeFile, split_command_line};
pub use verify::{
    Comparison, Mismatch, ProbeProblem, compare, compare_listening, compare_runs, new_error_lines,
};

use crate::engine::Engine;

/// A command probe and whether verify should compare its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandProbe<C> {
    pub cmd: C,
    /// Compare the exit code only (output known to vary).
    pub ignore_output: bool,
}

/// Everything one probe run does, in order: HTTP, exec probes, host commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub endpoints: Vec<Endpoint>,
    /// `None` turns the HTTP probe off (`--http-probe=false`).
    pub http: Option<HttpProbeConfig>,
    /// Probe-file requests, resolved against `endpoints`.
    pub http_requests: Vec<HttpRequest>,
    /// Set by [`ProbePlan::replay_of`]: send exactly these records' requests
    /// instead of root, crawl and `http_requests`.
    pub replay: Option<Vec<HttpRecord>>,
    pub exec: Vec<CommandProbe<Vec<String>>>,
    pub host_commands: Vec<CommandProbe<String>>,
    /// Limit for each exec probe and host command (within the run's deadline).
    pub command_timeout: Duration,
    /// Ports that do not speak HTTP: no `GET /` and no crawl there.
    pub not_http: Vec<u16>,
}

impl Default for ProbePlan {
    fn default() -> Self {
        ProbePlan {
            endpoints: Vec::new(),
            http: Some(HttpProbeConfig::default()),
            http_requests: Vec::new(),
            replay: None,
            exec: Vec::new(),
            host_commands: Vec::new(),
            command_timeout: Duration::from_secs(60),
            not_http: Vec::new(),
        }
    }
}

impl ProbePlan {
    /// The plan for verify: the same HTTP requests as `original` recorded (no
    /// new crawl), the same exec probes and host commands, against this
    /// run's `endpoints`; limits are taken from `self`.
    pub fn replay_of(&self, original: &ProbeReport, endpoints: Vec<Endpoint>) -> ProbePlan {
        ProbePlan {
            endpoints,
            http: Some(self.http.clone().unwrap_or_default()),
            http_requests: Vec::new(),
            replay: Some(original.http.clone()),
            exec: original
                .exec
                .iter()
                .map(|e| CommandProbe {
                    cmd: e.cmd.clone(),
                    ignore_output: e.ignore_output,
                })
                .collect(),
            host_commands: original
                .host_commands
                .iter()
                .map(|h| CommandProbe {
                    cmd: h.cmd.clone(),
                    ignore_output: h.ignore_output,
                })
                .collect(),
            command_timeout: self.command_timeout,
            not_http: self.not_http.clone(),
        }
    }
}

/// Runs a plan against a started container, ending by `deadline`. Request
/// and command failures are recorded in the report, not returned. Host
/// commands run where `host` runs them (the session's client).
pub async fn run_probes(
    engine: &Engine,
    container_id: &str,
    plan: &ProbePlan,
    host: &dyn HostCommandRunner,
    deadline: Instant,
) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport {
        endpoints: plan.endpoints.clone(),
        ..Default::default()
    };
    if let Some(cfg) = &plan.http {
        let out = match &plan.replay {
            Some(records) => replay_http(&plan.endpoints, records, cfg, deadline).await,
            None if plan.not_http.is_empty() => {
                run_http_probe(&plan.endpoints, &plan.http_requests, cfg, deadline).await
            }
            None => {
                // Root and crawl on the ports that speak HTTP only; the
                // probe file's requests go where they say.
                let http: Vec<Endpoint> = plan
                    .endpoints
                    .iter()
                    .filter(|e| !plan.not_http.contains(&e.container_port))
                    .cloned()
                    .collect();
                let mut out = run_http_probe(&http, &[], cfg, deadline).await;
                let file_only = HttpProbeConfig {
                    root: false,
                    crawl: false,
                    forms: false,
                    api_discovery: false,
                    api_specs: Vec::new(),
                    ..cfg.clone()
                };
                let more =
                    run_http_probe(&plan.endpoints, &plan.http_requests, &file_only, deadline)
                        .await;
                out.records.extend(more.records);
                out.notes.extend(more.notes);
                out
            }
        };
        report.http = out.records;
        report.notes.extend(out.notes);
    }
    let cmd_deadline = || deadline.min(Instant::now() + plan.command_timeout);
    for p in &plan.exec {
        let rec = run_exec_probe(
            engine,
            container_id,
            &p.cmd,
            p.ignore_output,
            cmd_deadline(),
        )
        .await;
        report.exec.push(rec);
    }
    if !plan.host_commands.is_empty() {
        report.host_commands = host
            .run(
                &plan.host_commands,
                &plan.endpoints,
                plan.command_timeout,
                deadline,
            )
            .await;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}
