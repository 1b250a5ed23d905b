//! Host commands (`--probe-cmd`) run in the client, never in the daemon.
//!
//! The daemon runs as root; a command line a client sent must not run
//! there. So when a session reaches its host commands it sends the client
//! a [`HostCommandBatch`] (the commands, the app's endpoints and the time
//! each may take); the client (`slim`, as the calling user) runs them with
//! [`run_batch`] and posts a [`HostCommandResults`] back; the daemon takes
//! the results with [`accept_results`], which keeps its own command lines
//! and only the outcome from the client, and records and compares them like
//! any probe. Where the commands should run is a [`HostCommandRunner`]: the
//! session's, or [`NoClient`] when there is none.

use std::{future::Future, pin::Pin, time::Duration, time::Instant};

use serde::{Deserialize, Serialize};

use super::{
    CommandProbe,
    command::run_host_command,
    report::{CapturedOutput, HostCommandRecord},
    spec::Endpoint,
};

/// The daemon's request to its client: run these on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommandBatch {
    /// Which batch of the session (the original run's, verify's): the
    /// results name it.
    pub round: u32,
    pub commands: Vec<String>,
    /// Where the app is (`SLIM_TARGET_*` in each command's environment).
    pub endpoints: Vec<Endpoint>,
    /// More of each command's environment: a Compose stack's
    /// `SLIM_<SERVICE>_HOST`, `_PORT` and `_URL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Seconds each command may run.
    pub timeout_secs: u64,
}

/// The client's answer: one record per command, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommandResults {
    pub round: u32,
    pub records: Vec<HostCommandRecord>,
}

/// Where a session's host commands run.
pub trait HostCommandRunner: Send + Sync {
    /// Runs `commands` against `endpoints`, each for at most `timeout`, all
    /// by `deadline`; one record per command, in order, whatever happens.
    fn run<'a>(
        &'a self,
        commands: &'a [CommandProbe<String>],
        endpoints: &'a [Endpoint],
        timeout: Duration,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Vec<HostCommandRecord>> + Send + 'a>>;
}

/// No client to run host commands: each is recorded as not run, saying why.
pub struct NoClient(pub String);

impl HostCommandRunner for NoClient {
    fn run<'a>(
        &'a self,
        commands: &'a [CommandProbe<String>],
        _endpoints: &'a [Endpoint],
        _timeout: Duration,
        _deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Vec<HostCommandRecord>> + Send + 'a>> {
        Box::pin(async move { not_run(commands, &self.0) })
    }
}

/// A record per command, each with `why` as its error.
pub fn not_run(commands: &[CommandProbe<String>], why: &str) -> Vec<HostCommandRecord> {
    commands
        .iter()
        .map(|c| HostCommandRecord {
            cmd: c.cmd.clone(),
            ignore_output: c.ignore_output,
            error: Some(why.to_string()),
            ..Default::default()
        })
        .collect()
}

/// The client side: runs a batch here, as the calling user, one command
/// after the other, each killed at its timeout.
pub async fn run_batch(batch: &HostCommandBatch) -> HostCommandResults {
    let mut records = Vec::with_capacity(batch.commands.len());
    for cmd in &batch.commands {
        let deadline = Instant::now() + Duration::from_secs(batch.timeout_secs);
        records.push(run_host_command(cmd, &batch.endpoints, &batch.env, false, deadline).await);
    }
    HostCommandResults {
        round: batch.round,
        records,
    }
}

/// The daemon side: a client's results for `commands`. The command lines
/// and `ignore_output` stay the daemon's; exit code, output, timing and
/// errors are the client's, with the kept text cut to its usual length.
pub fn accept_results(
    commands: &[CommandProbe<String>],
    results: HostCommandResults,
) -> Result<Vec<HostCommandRecord>, String> {
    if results.records.len() != commands.len() {
        return Err(format!(
            "expected {} host command result(s), got {}",
            commands.len(),
            results.records.len()
        ));
    }
    Ok(commands
        .iter()
        .zip(results.records)
        .map(|(c, r)| HostCommandRecord {
            cmd: c.cmd.clone(),
            ignore_output: c.ignore_output,
            exit_code: r.exit_code,
            stdout: bounded(r.stdout),
            stderr: bounded(r.stderr),
            timed_out: r.timed_out,
            error: r.error.map(|e| cut(e, 4096)),
            elapsed_ms: r.elapsed_ms,
        })
        .collect())
}

fn bounded(mut o: CapturedOutput) -> CapturedOutput {
    o.text = cut(o.text, CapturedOutput::TEXT_LIMIT);
    o.sha256 = cut(o.sha256, 64);
    o
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(cmds: &[&str]) -> Vec<CommandProbe<String>> {
        cmds.iter()
            .map(|c| CommandProbe {
                cmd: c.to_string(),
                ignore_output: false,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_runs_here_and_its_results_are_accepted() {
        let batch = HostCommandBatch {
            round: 1,
            commands: vec![
                "echo $SLIM_TARGET_PORT $SLIM_DB_PORT".into(),
                "exit 4".into(),
            ],
            endpoints: vec![Endpoint::new("127.0.0.1", 32770, 8080)],
            env: vec![("SLIM_DB_PORT".into(), "32771".into())],
            timeout_secs: 10,
        };
        let res = run_batch(&batch).await;
        assert_eq!(res.round, 1);
        let recs = accept_results(
            &probes(&["echo $SLIM_TARGET_PORT $SLIM_DB_PORT", "exit 4"]),
            res,
        )
        .unwrap();
        assert_eq!(recs[0].stdout.text, "32770 32771\n");
        assert_eq!(recs[0].exit_code, Some(0));
        assert_eq!(recs[1].exit_code, Some(4));
    }

    #[test]
    fn the_daemon_keeps_its_own_command_lines_and_bounds_the_text() {
        let sent = HostCommandResults {
            round: 0,
            records: vec![HostCommandRecord {
                cmd: "rm -rf /".into(),
                exit_code: Some(0),
                stdout: CapturedOutput {
                    text: "é".repeat(CapturedOutput::TEXT_LIMIT),
                    ..Default::default()
                },
                ..Default::default()
            }],
        };
        let recs = accept_results(&probes(&["true"]), sent).unwrap();
        assert_eq!(recs[0].cmd, "true");
        assert!(recs[0].stdout.text.len() <= CapturedOutput::TEXT_LIMIT);
        let wrong = HostCommandResults {
            round: 0,
            records: vec![],
        };
        assert!(
            accept_results(&probes(&["true"]), wrong)
                .unwrap_err()
                .contains("expected 1")
        );
    }

    #[tokio::test]
    async fn without_a_client_each_command_says_why() {
        let recs = NoClient("detached".into())
            .run(
                &probes(&["a", "b"]),
                &[],
                Duration::from_secs(1),
                Instant::now(),
            )
            .await;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].error.as_deref(), Some("detached"));
        assert_eq!(recs[1].exit_code, None);
    }
}
