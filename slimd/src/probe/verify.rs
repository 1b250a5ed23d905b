//! Verify: the slim image must answer the same probes the same way. Compares
//! two [`ProbeReport`]s request by request (status codes, body hashes unless
//! opted out), exec and host-command exit codes, stdout and stderr, and
//! one-shot runs (exit code, stdout and stderr).
//!
//! Agreement counts only where the original succeeded: a request that got
//! no answer, a 5xx, a missed `expect_status`, or a command that failed or
//! timed out on the original is a [`ProbeProblem`], never evidence that the
//! slim image works. [`Comparison::agreed`] is what verify may call proof;
//! with none, the build is *unverified*, not verified.
//!
//! The checks around the probes (the ports listened on, the container still
//! running, new error lines in its logs) are pure functions here too, so the
//! session only gathers their inputs.

use std::collections::BTreeSet;
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
    /// Same exit code and stdout, different stderr.
    Stderr {
        what: String,
        original: String,
        slim: String,
    },
    /// A probe present in one run only.
    Missing { what: String, in_slim: bool },
    /// The slim container listens on other TCP ports than the original did.
    Listening {
        /// Ports the original listened on and the slim image does not.
        missing: Vec<u16>,
        /// Ports only the slim image listens on.
        extra: Vec<u16>,
    },
    /// The slim container was not running after the probes; the original was.
    Died {
        exit_code: Option<i64>,
        stderr_tail: String,
    },
    /// Error lines in the slim container's output that the original's
    /// output does not have (compared with numbers masked).
    NewErrorLines { lines: Vec<String> },
    /// The slim container could not be started or never got ready.
    NotReady { why: String },
}

/// A probe whose original result proves nothing: it failed there already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeProblem {
    pub what: String,
    /// How it failed on the original.
    pub original: String,
}

impl fmt::Display for ProbeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: failed on the original too ({}); not compared",
            self.what, self.original
        )
    }
}

/// Everything [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub mismatches: Vec<Mismatch>,
    pub problems: Vec<ProbeProblem>,
    /// Probes that succeeded on the original and gave the same result on
    /// the slim image (their labels).
    pub agreed: Vec<String>,
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

fn ports(p: &[u16]) -> String {
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
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
            Mismatch::Stderr {
                what,
                original,
                slim,
            } => write!(
                f,
                "{what}: stderr differs ({:?} -> {:?})",
                short(original),
                short(slim)
            ),
            Mismatch::Missing { what, in_slim } => {
                let side = if *in_slim { "slim" } else { "original" };
                write!(f, "{what}: not run in the {side} run")
            }
            Mismatch::Listening { missing, extra } => {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!(
                        "does not listen on {} (the original did)",
                        ports(missing)
                    ));
                }
                if !extra.is_empty() {
                    parts.push(format!(
                        "listens on {} (the original did not)",
                        ports(extra)
                    ));
                }
                write!(f, "the slim container {}", parts.join(" and "))
            }
            Mismatch::Died {
                exit_code,
                stderr_tail,
            } => {
                write!(
                    f,
                    "the slim container exited (code {}) after the probes; the original kept running",
                    code(*exit_code)
                )?;
                if !stderr_tail.trim().is_empty() {
                    write!(f, "; its stderr ends with {:?}", short(stderr_tail))?;
                }
                Ok(())
            }
            Mismatch::NewErrorLines { lines } => write!(
                f,
                "the slim container logged errors the original did not: {}",
                lines
                    .iter()
                    .map(|l| format!("{:?}", short(l)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mismatch::NotReady { why } => write!(f, "the slim image never got ready: {why}"),
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

/// How an original HTTP request failed, when it did.
fn http_failure(r: &HttpRecord) -> Option<String> {
    if let Some(e) = &r.expectation_failed {
        return Some(e.clone());
    }
    match r.status {
        None => Some(status_text(r)),
        Some(s) if s >= 500 => Some(format!("status {s}")),
        Some(_) => None,
    }
}

fn compare_http(original: &[HttpRecord], slim: &[HttpRecord], out: &mut Comparison) {
    for i in 0..original.len().max(slim.len()) {
        let (o, s) = match (original.get(i), slim.get(i)) {
            (Some(o), Some(s)) if o.request.key() == s.request.key() => (o, s),
            (o, s) => {
                out.mismatches.push(Mismatch::HttpRequest {
                    index: i,
                    original: o.map(HttpRecord::label),
                    slim: s.map(HttpRecord::label),
                });
                continue;
            }
        };
        let before = out.mismatches.len();
        if o.status != s.status {
            out.mismatches.push(Mismatch::HttpStatus {
                request: o.label(),
                original: status_text(o),
                slim: status_text(s),
            });
        } else if o.status.is_some() && !o.request.ignore_body && o.body_sha256 != s.body_sha256 {
            out.mismatches.push(Mismatch::HttpBody {
                request: o.label(),
                original_len: o.body_len,
                slim_len: s.body_len,
                slim_sample: s.body_sample.clone(),
            });
        }
        if out.mismatches.len() > before {
            continue;
        }
        match http_failure(o) {
            Some(how) => out.problems.push(ProbeProblem {
                what: o.label(),
                original: how,
            }),
            None => out.agreed.push(o.label()),
        }
    }
}

/// One command's result, as verify sees it.
struct CommandResult<'a> {
    code: Option<i64>,
    stdout: &'a CapturedOutput,
    stderr: &'a CapturedOutput,
    /// Timed out, or could not run (with why).
    failure: Option<String>,
}

/// Exit code first; then stdout and stderr when output counts.
fn compare_command(
    what: String,
    o: CommandResult<'_>,
    s: CommandResult<'_>,
    ignore_output: bool,
    out: &mut Comparison,
) {
    let before = out.mismatches.len();
    if o.code != s.code {
        let mut slim_stderr = s.stderr.text.clone();
        if slim_stderr.trim().is_empty()
            && let Some(f) = &s.failure
        {
            slim_stderr = f.clone();
        }
        out.mismatches.push(Mismatch::ExitCode {
            what: what.clone(),
            original: o.code,
            slim: s.code,
            slim_stderr,
        });
    } else if !ignore_output && o.stdout.sha256 != s.stdout.sha256 {
        out.mismatches.push(Mismatch::Stdout {
            what: what.clone(),
            original: o.stdout.text.clone(),
            slim: s.stdout.text.clone(),
        });
    } else if !ignore_output && o.stderr.sha256 != s.stderr.sha256 {
        out.mismatches.push(Mismatch::Stderr {
            what: what.clone(),
            original: o.stderr.text.clone(),
            slim: s.stderr.text.clone(),
        });
    }
    if out.mismatches.len() > before {
        return;
    }
    let failed = match (&o.failure, o.code) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(0)) => None,
        (None, Some(c)) => Some(format!("exit code {c}")),
        (None, None) => Some("did not finish".into()),
    };
    match failed {
        Some(how) => out.problems.push(ProbeProblem {
            what,
            original: how,
        }),
        None => out.agreed.push(what),
    }
}

fn missing(what: String, in_slim: bool) -> Mismatch {
    Mismatch::Missing { what, in_slim }
}

fn timed_out_or(error: &Option<String>, timed_out: bool) -> Option<String> {
    match (error, timed_out) {
        (Some(e), _) => Some(e.clone()),
        (None, true) => Some("timed out".into()),
        (None, false) => None,
    }
}

/// Every difference between the original run and the slim run, in probe
/// order, with the probes that agreed and those that prove nothing.
pub fn compare(original: &ProbeReport, slim: &ProbeReport) -> Comparison {
    let mut out = Comparison::default();
    compare_http(&original.http, &slim.http, &mut out);

    for i in 0..original.exec.len().max(slim.exec.len()) {
        match (original.exec.get(i), slim.exec.get(i)) {
            (Some(o), Some(s)) => compare_command(
                format!("exec probe {:?}", o.cmd.join(" ")),
                CommandResult {
                    code: o.exit_code,
                    stdout: &o.stdout,
                    stderr: &o.stderr,
                    failure: timed_out_or(&o.error, o.timed_out),
                },
                CommandResult {
                    code: s.exit_code,
                    stdout: &s.stdout,
                    stderr: &s.stderr,
                    failure: timed_out_or(&s.error, s.timed_out),
                },
                o.ignore_output,
                &mut out,
            ),
            (Some(o), None) => out
                .mismatches
                .push(missing(format!("exec probe {:?}", o.cmd.join(" ")), true)),
            (None, Some(s)) => out
                .mismatches
                .push(missing(format!("exec probe {:?}", s.cmd.join(" ")), false)),
            (None, None) => {}
        }
    }
    for i in 0..original.host_commands.len().max(slim.host_commands.len()) {
        match (original.host_commands.get(i), slim.host_commands.get(i)) {
            (Some(o), Some(s)) => compare_command(
                format!("host command {:?}", o.cmd),
                CommandResult {
                    code: o.exit_code.map(i64::from),
                    stdout: &o.stdout,
                    stderr: &o.stderr,
                    failure: timed_out_or(&o.error, o.timed_out),
                },
                CommandResult {
                    code: s.exit_code.map(i64::from),
                    stdout: &s.stdout,
                    stderr: &s.stderr,
                    failure: timed_out_or(&s.error, s.timed_out),
                },
                o.ignore_output,
                &mut out,
            ),
            (Some(o), None) => out
                .mismatches
                .push(missing(format!("host command {:?}", o.cmd), true)),
            (None, Some(s)) => out
                .mismatches
                .push(missing(format!("host command {:?}", s.cmd), false)),
            (None, None) => {}
        }
    }
    match (&original.run, &slim.run) {
        (Some(o), Some(s)) => {
            let c = compare_runs(o, s);
            out.mismatches.extend(c.mismatches);
            out.problems.extend(c.problems);
            out.agreed.extend(c.agreed);
        }
        (Some(_), None) => out.mismatches.push(missing("container run".into(), true)),
        (None, Some(_)) => out.mismatches.push(missing("container run".into(), false)),
        (None, None) => {}
    }
    out
}

/// Compares two runs of a one-shot container: exit code, stdout, stderr.
pub fn compare_runs(original: &RunRecord, slim: &RunRecord) -> Comparison {
    let mut out = Comparison::default();
    compare_command(
        "container run".into(),
        CommandResult {
            code: original.exit_code,
            stdout: &original.stdout,
            stderr: &original.stderr,
            failure: timed_out_or(&original.error, original.timed_out),
        },
        CommandResult {
            code: slim.exit_code,
            stdout: &slim.stdout,
            stderr: &slim.stderr,
            failure: timed_out_or(&slim.error, slim.timed_out),
        },
        false,
        &mut out,
    );
    out
}

/// The TCP ports check: the slim container must listen where the original did.
pub fn compare_listening(original: &BTreeSet<u16>, slim: &BTreeSet<u16>) -> Option<Mismatch> {
    let missing: Vec<u16> = original.difference(slim).copied().collect();
    let extra: Vec<u16> = slim.difference(original).copied().collect();
    (!missing.is_empty() || !extra.is_empty()).then_some(Mismatch::Listening { missing, extra })
}

/// Words that mark a log line as an error report (matched case-insensitively).
const ERROR_MARKERS: &[&str] = &[
    "error",
    "exception",
    "traceback",
    "fatal",
    "panic",
    "no such file",
    "not found",
    "cannot ",
    "can't ",
    "could not",
    "failed",
    "permission denied",
    "segmentation fault",
    "core dumped",
];

/// At most this many new error lines are reported.
const MAX_NEW_ERROR_LINES: usize = 10;

/// A log line with what varies between runs masked: runs of digits (times,
/// pids, ports, counters) and long hex words (ids, hashes).
fn mask(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let digits = word.strip_prefix("0x").unwrap_or(word);
        let hexy = digits.len() >= 8 && digits.chars().all(|c| c.is_ascii_hexdigit());
        if hexy {
            out.push('#');
        } else {
            let mut prev_digit = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !prev_digit {
                        out.push('#');
                    }
                    prev_digit = true;
                } else {
                    out.push(c);
                    prev_digit = false;
                }
            }
        }
        word.clear();
    };
    for c in line.trim().chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            if c.is_whitespace() {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            } else {
                out.push(c);
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

fn is_error_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    ERROR_MARKERS.iter().any(|m| l.contains(m))
}

/// Error lines of the slim container's output that the original's output
/// has no line like (numbers and long hex words masked).
pub fn new_error_lines(original: &str, slim: &str) -> Vec<String> {
    let seen: BTreeSet<String> = original.lines().map(mask).collect();
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for line in slim.lines() {
        if !is_error_line(line) {
            continue;
        }
        let m = mask(line);
        if seen.contains(&m) || !reported.insert(m) {
            continue;
        }
        out.push(line.trim().to_string());
        if out.len() == MAX_NEW_ERROR_LINES {
            break;
        }
    }
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

    fn texts(m: &[Mismatch]) -> Vec<String> {
        m.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn identical_runs_verify() {
        let a = report(vec![rec("/", Some(200), b"hi"), rec("/x", Some(404), b"")]);
        let mut b = a.clone();
        b.http[0].host_port = 31000;
        let c = compare(&a, &b);
        assert!(c.mismatches.is_empty());
        assert_eq!(c.agreed, vec!["GET / on 8080", "GET /x on 8080"]);
        assert!(c.problems.is_empty());
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
        let c = compare(&a, &b);
        let m = texts(&c.mismatches);
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
        assert!(c.agreed.is_empty());
    }

    #[test]
    fn failures_on_both_sides_are_problems_not_agreement() {
        // Two failed requests used to count as equal.
        let a = report(vec![
            rec("/down", None, b""),
            rec("/boom", Some(500), b"oops"),
        ]);
        let c = compare(&a, &a.clone());
        assert!(c.mismatches.is_empty());
        assert!(c.agreed.is_empty(), "{:?}", c.agreed);
        assert_eq!(c.problems.len(), 2);
        assert_eq!(
            c.problems[0].to_string(),
            "GET /down on 8080: failed on the original too (error (connect: refused)); not compared"
        );
        let mut e = rec("/want", Some(200), b"");
        e.expectation_failed = Some("expected status 201, got 200".into());
        let c = compare(&report(vec![e.clone()]), &report(vec![e]));
        assert!(c.problems[0].original.contains("expected status 201"));
    }

    #[test]
    fn ignore_body_compares_status_only() {
        let mut o = rec("/time", Some(200), b"12:00");
        o.request.ignore_body = true;
        let s = rec("/time", Some(200), b"12:01");
        let c = compare(&report(vec![o]), &report(vec![s]));
        assert!(c.mismatches.is_empty());
        assert_eq!(c.agreed.len(), 1);
    }

    #[test]
    fn different_request_lists_are_reported_by_position() {
        let a = report(vec![rec("/", Some(200), b""), rec("/a", Some(200), b"")]);
        let b = report(vec![
            rec("/", Some(200), b""),
            rec("/b", Some(200), b""),
            rec("/c", Some(200), b""),
        ]);
        assert_eq!(
            texts(&compare(&a, &b).mismatches),
            vec![
                "request #2: GET /a on 8080 in the original run, GET /b on 8080 in the slim run",
                "request #3: nothing in the original run, GET /c on 8080 in the slim run"
            ]
        );
    }

    #[test]
    fn exec_and_runs_compare_exit_code_stdout_and_stderr() {
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
        assert_eq!(
            texts(&compare(&a, &b).mismatches),
            vec![
                r#"exec probe "redis-cli ping": exit code 0 -> 127 (slim stderr: "redis-cli: not found")"#
            ]
        );
        // Same code and stdout, a new warning on stderr.
        b.exec[1] = exec(Some(0), b"x");
        b.exec[1].stderr = CapturedOutput::new(b"warning: libfoo missing", false);
        let m = texts(&compare(&a, &b).mismatches);
        assert!(m[0].contains("stderr differs"), "{m:?}");
        b.exec[1].ignore_output = true;
        a.exec[1].ignore_output = true;
        assert!(compare(&a, &b).mismatches.is_empty());

        let run = |code, out: &[u8]| RunRecord {
            exit_code: code,
            stdout: CapturedOutput::new(out, false),
            ..Default::default()
        };
        let c = compare_runs(&run(Some(0), b"42\n"), &run(Some(0), b"42\n"));
        assert!(c.mismatches.is_empty());
        assert_eq!(c.agreed, vec!["container run"]);
        let m = compare_runs(&run(Some(0), b"42\n"), &run(Some(0), b"41\n")).mismatches;
        assert_eq!(
            m[0].to_string(),
            r#"container run: stdout differs ("42" -> "41")"#
        );
        let mut failed = run(None, b"");
        failed.error = Some("exec: \"/app\": no such file".into());
        let m = compare_runs(&run(Some(0), b"42\n"), &failed).mismatches;
        assert!(
            m[0].to_string()
                .contains("exit code 0 -> none (did not finish)"),
            "{}",
            m[0]
        );
        assert!(m[0].to_string().contains("no such file"), "{}", m[0]);

        a.run = Some(run(Some(0), b""));
        let m = compare(&a, &b).mismatches;
        assert!(
            m.iter()
                .any(|m| m.to_string() == "container run: not run in the slim run")
        );
    }

    #[test]
    fn failing_commands_on_the_original_prove_nothing() {
        let exec = |code: Option<i64>, timed_out| ExecRecord {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "until redis-cli ping; do sleep 1; done".into(),
            ],
            exit_code: code,
            timed_out,
            ..Default::default()
        };
        let a = ProbeReport {
            exec: vec![exec(None, true), exec(Some(1), false)],
            ..Default::default()
        };
        let c = compare(&a, &a.clone());
        assert!(c.mismatches.is_empty() && c.agreed.is_empty());
        assert_eq!(c.problems[0].original, "timed out");
        assert_eq!(c.problems[1].original, "exit code 1");
    }

    #[test]
    fn listening_ports_must_match() {
        let o = BTreeSet::from([5432, 9100]);
        assert_eq!(compare_listening(&o, &o.clone()), None);
        let m = compare_listening(&o, &BTreeSet::from([5432, 7000])).unwrap();
        assert_eq!(
            m.to_string(),
            "the slim container does not listen on 9100 (the original did) and listens on 7000 (the original did not)"
        );
    }

    #[test]
    fn new_error_lines_ignore_numbers_and_known_lines() {
        let original = "2026-01-01 10:00:01 [12] LOG: ready\n\
                        127.0.0.1 - - code 404, message File not found\n";
        let slim = "2026-01-02 11:22:33 [99] LOG: ready\n\
                    127.0.0.1 - - code 404, message File not found\n\
                    Traceback (most recent call last):\n\
                    ModuleNotFoundError: No module named 'statistics'\n\
                    ModuleNotFoundError: No module named 'statistics'\n\
                    worker 1234 failed at 0xdeadbeef01\n";
        assert_eq!(
            new_error_lines(original, slim),
            vec![
                "Traceback (most recent call last):",
                "ModuleNotFoundError: No module named 'statistics'",
                "worker 1234 failed at 0xdeadbeef01",
            ]
        );
        let again = "worker 77 failed at 0xfeedface99\n";
        assert!(new_error_lines(slim, again).is_empty());
        assert_eq!(mask("pid 42 at 3f9a0b1c77 ok"), "pid # at # ok");
    }
}
