//! Verify: the slim image must answer the same probes the same way. Compares
//! two [`ProbeReport`]s request by request (status codes, body hashes unless
//! opted out), exec and host-command exit codes and stdout, and one-shot runs
//! (exit code and stdout).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::report::{CapturedOutput, HttpRecord, ProbeReport, RunRecord};

/// One difference between the original run and the slim run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mismatch {
    /// Different status, or a response on one side only.
    HttpStatus {
        request: String,
        original: String,
        slim: String,
    },
    /// Same status, different body.
    HttpBody {
        request: String,
        original_len: u64,
        slim_len: u64,
        slim_sample: String,
    },
    /// The runs did not make the same request at this position.
    HttpRequest {
        index: usize,
        original: Option<String>,
        slim: Option<String>,
    },
    /// Exit codes differ (`None`: timed out or failed to run).
    ExitCode {
        what: String,
        original: Option<i64>,
        slim: Option<i64>,
        slim_stderr: String,
    },
    /// Same exit code, different stdout.
    Stdout {
        what: String,
        original: String,
        slim: String,
    },
    /// A probe present in one run only.
    Missing { what: String, in_slim: bool },
}

fn short(s: &str) -> String {
    const MAX: usize = 200;
    let s = s.trim_end();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn code(c: Option<i64>) -> String {
    c.map_or_else(|| "none (did not finish)".into(), |c| c.to_string())
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::HttpStatus {
                request,
                original,
                slim,
            } => write!(f, "{request}: status {original} -> {slim}"),
            Mismatch::HttpBody {
                request,
                original_len,
                slim_len,
                slim_sample,
            } => write!(
                f,
                "{request}: body differs ({original_len} bytes -> {slim_len} bytes; slim starts {:?})",
                short(slim_sample)
            ),
            Mismatch::HttpRequest {
                index,
                original,
                slim,
            } => write!(
                f,
                "request #{}: {} in the original run, {} in the slim run",
                index + 1,
                original.as_deref().unwrap_or("nothing"),
                slim.as_deref().unwrap_or("nothing")
            ),
            Mismatch::ExitCode {
                what,
                original,
                slim,
                slim_stderr,
            } => {
                write!(
                    f,
                    "{what}: exit code {} -> {}",
                    code(*original),
                    code(*slim)
                )?;
                if !slim_stderr.trim().is_empty() {
                    write!(f, " (slim stderr: {:?})", short(slim_stderr))?;
                }
                Ok(())
            }
            Mismatch::Stdout {
                what,
                original,
                slim,
            } => write!(
                f,
                "{what}: stdout differs ({:?} -> {:?})",
                short(original),
                short(slim)
            ),
            Mismatch::Missing { what, in_slim } => {
                let side = if *in_slim { "slim" } else { "original" };
                write!(f, "{what}: not run in the {side} run")
            }
        }
    }
}

fn status_text(r: &HttpRecord) -> String {
    match (r.status, &r.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("error ({e})"),
        (None, None) => "no response".into(),
    }
}

fn compare_http(original: &[HttpRecord], slim: &[HttpRecord], out: &mut Vec<Mismatch>) {
    for i in 0..original.len().max(slim.len()) {
        let (o, s) = match (original.get(i), slim.get(i)) {
            (Some(o), Some(s)) if o.request.key() == s.request.key() => (o, s),
            (o, s) => {
                out.push(Mismatch::HttpRequest {
                    index: i,
                    original: o.map(HttpRecord::label),
                    slim: s.map(HttpRecord::label),
                });
                continue;
            }
        };
        if o.status != s.status {
            out.push(Mismatch::HttpStatus {
                request: o.label(),
                original: status_text(o),
                slim: status_text(s),
            });
        } else if o.status.is_some() && !o.request.ignore_body && o.body_sha256 != s.body_sha256 {
            out.push(Mismatch::HttpBody {
                request: o.label(),
                original_len: o.body_len,
                slim_len: s.body_len,
                slim_sample: s.body_sample.clone(),
            });
        }
    }
}

/// Exit code first; stdout only when the codes agree and output counts.
fn compare_command(
    what: String,
    (o_code, o_out): (Option<i64>, &CapturedOutput),
    (s_code, s_out, s_err): (Option<i64>, &CapturedOutput, &CapturedOutput),
    ignore_output: bool,
    out: &mut Vec<Mismatch>,
) {
    if o_code != s_code {
        out.push(Mismatch::ExitCode {
            what,
            original: o_code,
            slim: s_code,
            slim_stderr: s_err.text.clone(),
        });
    } else if !ignore_output && o_out.sha256 != s_out.sha256 {
        out.push(Mismatch::Stdout {
            what,
            original: o_out.text.clone(),
            slim: s_out.text.clone(),
        });
    }
}

fn missing(what: String, in_slim: bool) -> Mismatch {
    Mismatch::Missing { what, in_slim }
}

/// Every difference between the original run and the slim run, in probe
/// order. Empty means verified.
pub fn compare(original: &ProbeReport, slim: &ProbeReport) -> Vec<Mismatch> {
    let mut out = Vec::new();
    compare_http(&original.http, &slim.http, &mut out);

    for i in 0..original.exec.len().max(slim.exec.len()) {
        match (original.exec.get(i), slim.exec.get(i)) {
            (Some(o), Some(s)) => compare_command(
                format!("exec probe {:?}", o.cmd.join(" ")),
                (o.exit_code, &o.stdout),
                (s.exit_code, &s.stdout, &s.stderr),
                o.ignore_output,
                &mut out,
            ),
            (Some(o), None) => out.push(missing(format!("exec probe {:?}", o.cmd.join(" ")), true)),
            (None, Some(s)) => {
                out.push(missing(format!("exec probe {:?}", s.cmd.join(" ")), false))
            }
            (None, None) => {}
        }
    }
    for i in 0..original.host_commands.len().max(slim.host_commands.len()) {
        match (original.host_commands.get(i), slim.host_commands.get(i)) {
            (Some(o), Some(s)) => compare_command(
                format!("host command {:?}", o.cmd),
                (o.exit_code.map(i64::from), &o.stdout),
                (s.exit_code.map(i64::from), &s.stdout, &s.stderr),
                o.ignore_output,
                &mut out,
            ),
            (Some(o), None) => out.push(missing(format!("host command {:?}", o.cmd), true)),
            (None, Some(s)) => out.push(missing(format!("host command {:?}", s.cmd), false)),
            (None, None) => {}
        }
    }
    match (&original.run, &slim.run) {
        (Some(o), Some(s)) => out.extend(compare_runs(o, s)),
        (Some(_), None) => out.push(missing("container run".into(), true)),
        (None, Some(_)) => out.push(missing("container run".into(), false)),
        (None, None) => {}
    }
    out
}

/// Compares two runs of a one-shot container: exit code, then stdout.
pub fn compare_runs(original: &RunRecord, slim: &RunRecord) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut slim_err = slim.stderr.clone();
    if let Some(e) = &slim.error
        && slim_err.text.is_empty()
    {
        slim_err.text = e.clone();
    }
    compare_command(
        "container run".into(),
        (original.exit_code, &original.stdout),
        (slim.exit_code, &slim.stdout, &slim_err),
        false,
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::report::{ExecRecord, RequestOrigin};
    use crate::probe::spec::HttpRequest;

    fn rec(path: &str, status: Option<u16>, body: &[u8]) -> HttpRecord {
        let out = CapturedOutput::new(body, false);
        HttpRecord {
            request: HttpRequest::get(path, 8080),
            origin: RequestOrigin::Root,
            host_port: 30000,
            status,
            content_type: None,
            body_len: body.len() as u64,
            body_sha256: status.map(|_| out.sha256),
            body_sample: out.text,
            error: status.is_none().then(|| "connect: refused".to_string()),
            expectation_failed: None,
            attempts: 1,
            elapsed_ms: 1,
        }
    }

    fn report(http: Vec<HttpRecord>) -> ProbeReport {
        ProbeReport {
            http,
            ..Default::default()
        }
    }

    #[test]
    fn identical_runs_verify() {
        let a = report(vec![rec("/", Some(200), b"hi"), rec("/x", Some(404), b"")]);
        let mut b = a.clone();
        b.http[0].host_port = 31000;
        assert!(compare(&a, &b).is_empty());
    }

    #[test]
    fn status_and_body_differences_are_named() {
        let a = report(vec![
            rec("/", Some(200), b"hi"),
            rec("/a", Some(200), b"x"),
            rec("/b", Some(200), b""),
        ]);
        let b = report(vec![
            rec("/", Some(404), b"nf"),
            rec("/a", Some(200), b"y"),
            rec("/b", None, b""),
        ]);
        let m: Vec<String> = compare(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(m[0], "GET / on 8080: status 200 -> 404");
        assert!(
            m[1].starts_with("GET /a on 8080: body differs (1 bytes -> 1 bytes"),
            "{}",
            m[1]
        );
        assert_eq!(
            m[2],
            "GET /b on 8080: status 200 -> error (connect: refused)"
        );
    }

    #[test]
    fn ignore_body_compares_status_only() {
        let mut o = rec("/time", Some(200), b"12:00");
        o.request.ignore_body = true;
        let s = rec("/time", Some(200), b"12:01");
        assert!(compare(&report(vec![o]), &report(vec![s])).is_empty());
    }

    #[test]
    fn different_request_lists_are_reported_by_position() {
        let a = report(vec![rec("/", Some(200), b""), rec("/a", Some(200), b"")]);
        let b = report(vec![
            rec("/", Some(200), b""),
            rec("/b", Some(200), b""),
            rec("/c", Some(200), b""),
        ]);
        let m: Vec<String> = compare(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(
            m,
            vec![
                "request #2: GET /a on 8080 in the original run, GET /b on 8080 in the slim run",
                "request #3: nothing in the original run, GET /c on 8080 in the slim run"
            ]
        );
    }

    #[test]
    fn exec_and_runs_compare_exit_code_then_stdout() {
        let exec = |code, out: &[u8]| ExecRecord {
            cmd: vec!["redis-cli".into(), "ping".into()],
            exit_code: code,
            stdout: CapturedOutput::new(out, false),
            ..Default::default()
        };
        let mut a = ProbeReport::default();
        let mut b = ProbeReport::default();
        a.exec = vec![exec(Some(0), b"PONG\n"), exec(Some(0), b"x")];
        b.exec = vec![exec(Some(0), b"PONG\n"), exec(Some(127), b"")];
        b.exec[1].stderr = CapturedOutput::new(b"redis-cli: not found", false);
        let m: Vec<String> = compare(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(
            m,
            vec![
                r#"exec probe "redis-cli ping": exit code 0 -> 127 (slim stderr: "redis-cli: not found")"#
            ]
        );

        let run = |code, out: &[u8]| RunRecord {
            exit_code: code,
            stdout: CapturedOutput::new(out, false),
            ..Default::default()
        };
        assert!(compare_runs(&run(Some(0), b"42\n"), &run(Some(0), b"42\n")).is_empty());
        let m = compare_runs(&run(Some(0), b"42\n"), &run(Some(0), b"41\n"));
        assert_eq!(
            m[0].to_string(),
            r#"container run: stdout differs ("42" -> "41")"#
        );
        let mut failed = run(None, b"");
        failed.error = Some("exec: \"/app\": no such file".into());
        let m = compare_runs(&run(Some(0), b"42\n"), &failed);
        assert!(
            m[0].to_string()
                .contains("exit code 0 -> none (did not finish)"),
            "{}",
            m[0]
        );
        assert!(m[0].to_string().contains("no such file"), "{}", m[0]);

        a.run = Some(run(Some(0), b""));
        let m = compare(&a, &b);
        assert!(
            m.iter()
                .any(|m| m.to_string() == "container run: not run in the slim run")
        );
    }
}
