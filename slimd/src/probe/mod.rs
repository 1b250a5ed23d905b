//! Exercising the app: readiness (a real reply, not a TCP connect), the HTTP
//! probe and crawl, exec and host-command probes, one-shot runs, and verify,
//! which compares an original run with the slim image's run.
//!
//! The usual flow: [`wait_ready_or_exit`] (readiness of every endpoint,
//! cut short when the container exits), then
//! [`run_probes`] with a [`ProbePlan`]; for verify, [`run_probes`] again on
//! the slim container with [`ProbePlan::replay_of`] and [`verify::compare`].

pub mod command;
pub mod crawl;
pub mod error;
pub mod forms;
pub mod http;
pub mod links;
pub mod openapi;
pub mod report;
pub mod spec;
pub mod tls;
pub mod verify;

use std::time::{Duration, Instant};

pub use command::{record_oneshot_run, run_exec_probe, run_host_command};
pub use crawl::{HttpProbeConfig, replay_http, run_http_probe};
pub use error::{ProbeError, Result};
pub use http::{Readiness, wait_http_ready};
pub use openapi::SpecSource;
pub use report::{
    CapturedOutput, Endpoint, ExecRecord, HostCommandRecord, HttpRecord, ProbeReport,
    RequestOrigin, RunRecord,
};
pub use spec::{HttpRequest, ProbeFile, split_command_line};
pub use verify::{Mismatch, compare, compare_runs};

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
        }
    }
}

/// Waits until every endpoint answers (see [`wait_http_ready`]), or fails
/// early with [`ProbeError::ContainerExited`] (and the end of its stderr)
/// when the container exits first: a crashing app should not cost the whole
/// readiness timeout.
pub async fn wait_ready_or_exit(
    engine: &Engine,
    container_id: &str,
    endpoints: &[Endpoint],
    deadline: Instant,
) -> Result<Vec<Readiness>> {
    let ready = async {
        let mut out = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            out.push(wait_http_ready(ep, deadline).await?);
        }
        Ok(out)
    };
    tokio::pin!(ready);
    tokio::select! {
        r = &mut ready => r,
        exited = engine.wait_exit(container_id, deadline) => match exited? {
            Some(code) => {
                const TAIL: usize = 2000;
                let logs = engine.logs(container_id, 1 << 20).await?;
                let err = &logs.stderr[logs.stderr.len().saturating_sub(TAIL)..];
                Err(ProbeError::ContainerExited {
                    code,
                    stderr_tail: String::from_utf8_lossy(err).into_owned(),
                })
            }
            None => ready.await,
        },
    }
}

/// Runs a plan against a started container, ending by `deadline`. Request
/// and command failures are recorded in the report, not returned.
pub async fn run_probes(
    engine: &Engine,
    container_id: &str,
    plan: &ProbePlan,
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
            None => run_http_probe(&plan.endpoints, &plan.http_requests, cfg, deadline).await,
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
    for p in &plan.host_commands {
        let rec = run_host_command(&p.cmd, &plan.endpoints, p.ignore_output, cmd_deadline()).await;
        report.host_commands.push(rec);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}
