//! `slim build`, `slim profile` and `slim attach`: start (or join) a
//! session and follow its progress to the end, with Ctrl-C cancelling it
//! and Enter or SIGUSR1 as the continue signal. The client that started a
//! session runs its host commands (`--probe-cmd`) here, as the calling
//! user, and posts their results to the daemon; `--detach` returns once
//! the session has started, printing its id.

use std::{io::IsTerminal, io::Write, process::ExitCode};

use super::{BuildArgs, Failure, progress::Display, usage};
use crate::{
    api::{
        client::{Client, ProgressStream},
        types::{ContinueAfter, FailureKind, Progress, SessionKind, UNVERIFIED_EXIT_CODE},
    },
    report,
};

pub(super) async fn session(
    client: &Client,
    args: &BuildArgs,
    kind: SessionKind,
    json: bool,
) -> Result<ExitCode, Failure> {
    let req = args.request(kind).map_err(usage)?;
    let signal_continue = matches!(req.probes.continue_after, Some(ContinueAfter::Signal));
    let mut stream = client.start(&req).await?;
    // The first line names the session.
    let id = match stream.next().await? {
        Some(Progress::Session { id }) => id,
        other => {
            return Err(Failure {
                kind: FailureKind::Internal,
                message: format!("unexpected first progress line: {other:?}"),
            });
        }
    };
    if req.detach {
        // The session runs on; `slim attach ID` follows it.
        if json {
            println!("{}", serde_json::json!({"event": "session", "id": id}));
        } else {
            println!("{id}");
            eprintln!("slim: session {id} started, detached: `slim attach {id}` follows it");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        println!("{}", serde_json::json!({"event": "session", "id": id}));
    } else {
        let what = match (&args.image, &args.from_profile) {
            (Some(i), _) => i.clone(),
            (None, Some(p)) => format!("the image profiled by session {p}"),
            (None, None) => String::new(),
        };
        eprintln!("slim: session {id}: {} {what}", kind_name(kind));
    }
    follow(client, id, stream, json, signal_continue, true).await
}

fn kind_name(k: SessionKind) -> &'static str {
    match k {
        SessionKind::Build => "building a slim image of",
        SessionKind::Profile => "profiling",
        SessionKind::Watch => "watching",
    }
}

/// Prints a session's progress until its last line; Ctrl-C cancels it.
/// The client that started the session (`runs_host_commands`) runs the
/// host commands it asks for.
pub(super) async fn follow(
    client: &Client,
    id: String,
    mut stream: ProgressStream,
    json: bool,
    signal_continue: bool,
    runs_host_commands: bool,
) -> Result<ExitCode, Failure> {
    let tty = std::io::stderr().is_terminal() && !json;
    let mut display = Display::new(tty);
    if signal_continue {
        spawn_continue_triggers(client.clone(), id.clone());
    }
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            n = stream.next() => n?,
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                display.message("interrupted: cancelling the session (its containers and cgroup are removed)");
                let _ = client.cancel(&id).await;
                continue;
            }
        };
        let Some(p) = next else {
            return Err(Failure {
                kind: FailureKind::Internal,
                message: "the daemon closed the progress stream early (did slimd stop?)".into(),
            });
        };
        if json {
            println!("{}", serde_json::to_string(&p).unwrap_or_default());
            let _ = std::io::stdout().flush();
        }
        match p {
            Progress::Done { summary } => {
                display.finish();
                let written = write_override(&summary);
                if !json {
                    println!("{}", report::render_summary(&summary).trim_end());
                    match &written {
                        Some(Ok(p)) => {
                            println!("  override  {p} (docker-compose -f FILE -f {p} up)")
                        }
                        Some(Err(e)) => eprintln!("slim: {e}"),
                        None => {}
                    }
                }
                if let Some(Err(_)) = written {
                    return Ok(ExitCode::from(FailureKind::Internal.exit_code()));
                }
                return Ok(done_exit_code(&summary));
            }
            Progress::Failed { kind, message } => {
                display.finish();
                if json {
                    return Ok(ExitCode::from(kind.exit_code()));
                }
                return Err(Failure { kind, message });
            }
            Progress::HostCommands { batch } if runs_host_commands => {
                if !json {
                    display.message(&format!(
                        "  running {} host command(s) here, as uid {}",
                        batch.commands.len(),
                        // SAFETY: getuid has no preconditions.
                        unsafe { libc::getuid() }
                    ));
                }
                let (c, i) = (client.clone(), id.clone());
                tokio::spawn(async move {
                    let results = crate::probe::host::run_batch(&batch).await;
                    if let Err(e) = c.host_results(&i, &results).await {
                        eprintln!("slim: reporting host command results: {e}");
                    }
                });
            }
            other if !json => display.show(&other),
            _ => {}
        }
    }
}

/// A Compose build's `compose.slim.yml`, written by the client beside the
/// user's Compose file (the daemon never writes the user's files).
fn write_override(summary: &serde_json::Value) -> Option<Result<String, String>> {
    let o = &summary["override"];
    let (path, text) = (o["path"].as_str()?, o["text"].as_str()?);
    Some(
        std::fs::write(path, text)
            .map(|()| path.to_string())
            .map_err(|e| format!("cannot write {path}: {e}")),
    )
}

/// 0, or [`UNVERIFIED_EXIT_CODE`] for a build that nothing verified and
/// whose user did not turn verify off.
fn done_exit_code(summary: &serde_json::Value) -> ExitCode {
    let unverified = summary["state"] == "unverified";
    let accepted = summary["verify"]["accepted"].as_bool() == Some(true);
    if unverified && !accepted {
        ExitCode::from(UNVERIFIED_EXIT_CODE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Enter on a terminal, or SIGUSR1, tells the daemon to go on.
fn spawn_continue_triggers(client: Client, id: String) {
    let c = client.clone();
    let i = id.clone();
    tokio::spawn(async move {
        if let Ok(mut s) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        {
            while s.recv().await.is_some() {
                let _ = c.signal_continue(&i).await;
            }
        }
    });
    if std::io::stdin().is_terminal() {
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            })
            .await;
            let _ = client.signal_continue(&id).await;
        });
    }
}
