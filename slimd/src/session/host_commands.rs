//! A session's host commands, run by its client: the session asks with a
//! `Progress::HostCommands` line, waits for the results the client posts
//! (`POST /v1/sessions/{id}/host-results`) until the probe deadline, and
//! records what came back (or why nothing did). The daemon never runs the
//! commands itself (see [`crate::probe::host`]). A Compose service's
//! session asks through its stack's session, whose client is the one there
//! is.

use std::{
    future::Future,
    pin::Pin,
    sync::Mutex,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::SessionHandle;
use crate::{
    model::Progress,
    probe::{
        CommandProbe, Endpoint, HostCommandBatch, HostCommandResults, HostCommandRunner,
        host::{accept_results, not_run},
        report::HostCommandRecord,
    },
};

/// The batch a session waits for, if any.
#[derive(Default)]
pub(super) struct Pending {
    rounds: AtomicU32,
    waiting: Mutex<Option<(u32, oneshot::Sender<HostCommandResults>)>>,
}

impl Pending {
    fn ask(&self) -> (u32, oneshot::Receiver<HostCommandResults>) {
        let round = self.rounds.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        *self.waiting.lock().unwrap() = Some((round, tx));
        (round, rx)
    }

    fn forget(&self) {
        self.waiting.lock().unwrap().take();
    }

    pub fn deliver(&self, results: HostCommandResults) -> Result<(), String> {
        let mut w = self.waiting.lock().unwrap();
        match w.take() {
            Some((round, tx)) if round == results.round => tx
                .send(results)
                .map_err(|_| "the session stopped waiting for these results".to_string()),
            Some(other) => {
                let round = other.0;
                *w = Some(other);
                Err(format!(
                    "the session waits for host commands of round {round}, not {}",
                    results.round
                ))
            }
            None => Err("the session is not waiting for host command results".into()),
        }
    }
}

/// Runs host commands through the session's client: for a session that
/// is part of a stack, the stack's client (its services' sessions have
/// none of their own). `env` goes into each command's environment (a
/// stack's `SLIM_<SERVICE>_*`).
pub(crate) struct ClientHost<'a> {
    handle: &'a SessionHandle,
    env: Vec<(String, String)>,
}

impl<'a> ClientHost<'a> {
    pub fn of(handle: &'a SessionHandle) -> Self {
        Self::with_env(handle, Vec::new())
    }

    pub fn with_env(handle: &'a SessionHandle, env: Vec<(String, String)>) -> Self {
        Self { handle, env }
    }

    /// The session whose client runs the commands.
    fn client_session(&self) -> &'a SessionHandle {
        self.handle.host_via.as_deref().unwrap_or(self.handle)
    }
}

const NO_CLIENT_DETACHED: &str = "not run: a detached session has no client to run host commands (they run in slim as its user; the daemon never runs them)";

impl HostCommandRunner for ClientHost<'_> {
    fn run<'a>(
        &'a self,
        commands: &'a [CommandProbe<String>],
        endpoints: &'a [Endpoint],
        timeout: Duration,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Vec<HostCommandRecord>> + Send + 'a>> {
        Box::pin(async move {
            let h = self.client_session();
            if h.detach {
                return not_run(commands, NO_CLIENT_DETACHED);
            }
            let (round, rx) = h.host.ask();
            h.emit(Progress::HostCommands {
                batch: HostCommandBatch {
                    round,
                    commands: commands.iter().map(|c| c.cmd.clone()).collect(),
                    endpoints: endpoints.to_vec(),
                    env: self.env.clone(),
                    timeout_secs: timeout.as_secs().max(1),
                },
            });
            let got = tokio::time::timeout_at(deadline.into(), rx).await;
            h.host.forget();
            match got {
                Ok(Ok(results)) => accept_results(commands, results).unwrap_or_else(|e| {
                    not_run(commands, &format!("the client's results were refused: {e}"))
                }),
                Ok(Err(_)) => not_run(commands, "the client went away before reporting"),
                Err(_) => not_run(
                    commands,
                    "the client reported no results before the probe deadline",
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_stack_service_asks_the_stacks_client_with_the_extra_environment() {
        let req = crate::model::SessionRequest::default();
        let stack = Arc::new(SessionHandle::new(
            "stack".into(),
            &req,
            1000,
            CancellationToken::new(),
        ));
        let mut service = SessionHandle::new("svc".into(), &req, 1000, CancellationToken::new());
        service.host_via = Some(stack.clone());
        let (_, mut rx) = stack.subscribe();
        let commands = [CommandProbe {
            cmd: "echo $SLIM_DB_PORT".to_string(),
            ignore_output: false,
        }];
        let host = ClientHost::with_env(&service, vec![("SLIM_DB_PORT".into(), "5433".into())]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let asked = host.run(&commands, &[], Duration::from_secs(5), deadline);
        // The stack's client: takes the batch from the stack's stream.
        let client = async {
            loop {
                if let Progress::HostCommands { batch } = rx.recv().await.unwrap() {
                    assert_eq!(batch.env, [("SLIM_DB_PORT".into(), "5433".into())]);
                    let results = crate::probe::host::run_batch(&batch).await;
                    stack.deliver_host_results(results).unwrap();
                    return;
                }
            }
        };
        let (records, ()) = tokio::join!(asked, client);
        assert_eq!(records[0].stdout.text, "5433\n");
        assert!(
            !service
                .subscribe()
                .0
                .iter()
                .any(|p| matches!(p, Progress::HostCommands { .. })),
            "the service's own stream has no client to ask"
        );
    }

    #[test]
    fn results_are_taken_only_for_the_round_asked() {
        let p = Pending::default();
        let empty = |round| HostCommandResults {
            round,
            records: vec![],
        };
        assert!(p.deliver(empty(0)).is_err(), "nothing asked yet");
        let (round, mut rx) = p.ask();
        assert!(p.deliver(empty(round + 1)).unwrap_err().contains("round"));
        p.deliver(empty(round)).unwrap();
        assert_eq!(rx.try_recv().unwrap().round, round);
        assert!(p.deliver(empty(round)).is_err(), "taken once");
    }
}
