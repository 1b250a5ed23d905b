//! Command probes: `--exec-probe` runs inside the container through the
//! engine's exec API (so the tracer sees it like the app); `--probe-cmd` runs
//! on the host against the published port (e.g. the user's test suite).
//! Both end at a deadline and keep bounded output.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::report::{CapturedOutput, ExecRecord, HostCommandRecord, RunRecord};
use super::spec::Endpoint;
use crate::engine::{Engine, ExecRequest};

/// Bytes of each output stream kept (and hashed).
pub const MAX_OUTPUT: usize = 1 << 20;

/// Runs `cmd` (already split into words) in the running container.
/// Failures are recorded, not returned: they are results to compare.
pub async fn run_exec_probe(
    engine: &Engine,
    container_id: &str,
    cmd: &[String],
    ignore_output: bool,
    deadline: Instant,
) -> ExecRecord {
    let started = Instant::now();
    let mut req = ExecRequest::new(cmd.to_vec());
    req.max_output = MAX_OUTPUT;
    let mut rec = ExecRecord {
        cmd: cmd.to_vec(),
        ignore_output,
        ..Default::default()
    };
    match engine.exec(container_id, &req, deadline).await {
        Ok(out) => {
            rec.exit_code = out.exit_code;
            rec.stdout = CapturedOutput::new(&out.stdout, out.truncated);
            rec.stderr = CapturedOutput::new(&out.stderr, out.truncated);
            rec.timed_out = out.timed_out;
        }
        Err(e) => rec.error = Some(e.to_string()),
    }
    rec.elapsed_ms = started.elapsed().as_millis() as u64;
    rec
}

/// Runs `cmd` with `sh -c` on the host. `SLIM_TARGET_HOST`,
/// `SLIM_TARGET_PORT` (the first endpoint's host port) and `SLIM_TARGET_URL`
/// tell it where the app is; `SLIM_TARGET_PORTS` lists every
/// `container=host` pair; `extra_env` adds more (a Compose stack's
/// `SLIM_<SERVICE>_*`). At the deadline its whole process group is killed.
pub async fn run_host_command(
    cmd: &str,
    endpoints: &[Endpoint],
    extra_env: &[(String, String)],
    ignore_output: bool,
    deadline: Instant,
) -> HostCommandRecord {
    let started = Instant::now();
    let mut rec = HostCommandRecord {
        cmd: cmd.to_string(),
        ignore_output,
        ..Default::default()
    };
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(ep) = endpoints.first() {
        command
            .env("SLIM_TARGET_HOST", &ep.host)
            .env("SLIM_TARGET_PORT", ep.host_port.to_string())
            .env(
                "SLIM_TARGET_URL",
                format!("http://{}:{}", ep.host, ep.host_port),
            );
    }
    let pairs: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{}={}", e.container_port, e.host_port))
        .collect();
    command.env("SLIM_TARGET_PORTS", pairs.join(","));
    command.envs(extra_env.iter().map(|(k, v)| (k, v)));
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            rec.error = Some(format!("cannot run /bin/sh: {e}"));
            return rec;
        }
    };
    let pgid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(read_bounded(stdout, MAX_OUTPUT));
    let err_task = tokio::spawn(read_bounded(stderr, MAX_OUTPUT));
    let status =
        tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), child.wait()).await;
    match status {
        Ok(Ok(st)) => rec.exit_code = st.code(),
        Ok(Err(e)) => rec.error = Some(format!("wait: {e}")),
        Err(_) => {
            rec.timed_out = true;
            if let Some(pid) = pgid {
                // The shell's children (a test runner, curl) go too.
                // SAFETY: kill(2) on a process group we created; no memory involved.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
        }
    }
    // Pipes close when the last holder exits; don't wait forever on a
    // grandchild that escaped the group.
    let grace = Duration::from_secs(2);
    let (o, ot) = tokio::time::timeout(grace, out_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let (e, et) = tokio::time::timeout(grace, err_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    rec.stdout = CapturedOutput::new(&o, ot);
    rec.stderr = CapturedOutput::new(&e, et);
    rec.elapsed_ms = started.elapsed().as_millis() as u64;
    rec
}

/// Reads a pipe to its end, keeping the first `limit` bytes.
async fn read_bounded<R: AsyncRead + Unpin>(r: Option<R>, limit: usize) -> (Vec<u8>, bool) {
    let Some(mut r) = r else {
        return (Vec::new(), false);
    };
    let mut keep = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => truncated |= crate::engine::types::push_bounded(&mut keep, &buf[..n], limit),
        }
    }
    (keep, truncated)
}

/// Records a one-shot container's run: waits for it to exit (until
/// `deadline`), then reads its output. The "probe" of an image with no ports.
pub async fn record_oneshot_run(
    engine: &Engine,
    container_id: &str,
    deadline: Instant,
) -> crate::engine::Result<RunRecord> {
    let exit = engine.wait_exit(container_id, deadline).await?;
    let logs = engine.logs(container_id, MAX_OUTPUT).await?;
    let state = engine.inspect_container(container_id).await?.state;
    Ok(RunRecord {
        exit_code: exit,
        stdout: CapturedOutput::new(&logs.stdout, logs.truncated),
        stderr: CapturedOutput::new(&logs.stderr, logs.truncated),
        timed_out: exit.is_none(),
        error: state.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn host_command_sees_the_target_and_reports_exit_code() {
        let eps = [Endpoint::new("127.0.0.1", 32770, 8080)];
        let r = run_host_command(
            "echo $SLIM_TARGET_HOST:$SLIM_TARGET_PORT $SLIM_TARGET_PORTS; echo oops >&2; exit 3",
            &eps,
            &[],
            false,
            Instant::now() + Duration::from_secs(10),
        )
        .await;
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.stdout.text, "127.0.0.1:32770 8080=32770\n");
        assert_eq!(r.stderr.text, "oops\n");
        assert!(!r.timed_out);
    }

    #[tokio::test]
    async fn host_command_is_killed_at_the_deadline_with_its_children() {
        let t = Instant::now();
        let r = run_host_command(
            "echo started; sleep 30 & sleep 30; echo never",
            &[],
            &[],
            false,
            Instant::now() + Duration::from_millis(500),
        )
        .await;
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert_eq!(r.stdout.text, "started\n");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
