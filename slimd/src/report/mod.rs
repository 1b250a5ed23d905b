//! The session report: what the image held, what the app did, what was kept
//! and why, how the probes and verify went, and how long each phase took.
//! Written as JSON to `<state>/sessions/<id>/report.json`; the CLI renders
//! it from that JSON, so old reports stay readable: for a terminal in
//! [`text`] (and [`xray`] for `slim xray`).
//!
//! While a session fills it, the report holds path strings as the daemon
//! keeps them ([`crate::image::name`]); [`Report::show_names`] turns every
//! name and message in it into the form people read (a byte that is not
//! UTF-8 as `\xNN`), once, right before it is written.

pub mod diff;
pub mod html;
mod text;
pub mod tree;
pub mod vuln;
pub mod xray;

pub use text::{reason_text, render_report, render_summary};

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    image::name::{self, show_in_place as show},
    model::{ApiError, Phase, SessionKind},
    probe::{ProbeReport, RequestOrigin, RunRecord},
    resolve::{
        Coverage, ExecRecord, KeepReason, KeptRoot, NetOp, NetRecord,
        packages::{AppCoverage, EcosystemCoverage, PackageCoverage},
    },
    tracer::{SockAddr, TraceStats},
};

/// Image sizes before and after.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sizes {
    /// As the engine counts it (what `docker images` shows).
    pub original_bytes: u64,
    pub original_files: u64,
    pub slim_bytes: u64,
    pub slim_files: u64,
    pub removed_files: u64,
    /// Bytes of regular files not carried over.
    pub removed_bytes: u64,
    /// `100 * (1 - slim/original)`.
    pub reduction_percent: f64,
    /// Bytes of the original's regular files, hardlinks counted once (the
    /// size tree's total; xray's visible bytes).
    pub original_file_bytes: u64,
    /// Of those, the bytes the slim image keeps.
    pub slim_file_bytes: u64,
}

/// One kept path with its reasons.
#[derive(Clone, Debug, Serialize)]
pub struct KeptFile {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    pub reasons: Vec<KeepReason>,
}

/// What verify concluded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// Probes that succeeded on the original gave the same results on the
    /// slim image, and every check around them held.
    Passed,
    /// The slim image behaved differently (see `mismatches`).
    Failed,
    /// Nothing could be compared: no probe succeeded on the original, or
    /// verify was off. The image is built but nothing proves it works.
    #[default]
    Unverified,
}

impl VerifyOutcome {
    pub fn name(self) -> &'static str {
        match self {
            VerifyOutcome::Passed => "passed",
            VerifyOutcome::Failed => "failed",
            VerifyOutcome::Unverified => "unverified",
        }
    }
}

/// The slim image compared with the original.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyResult {
    pub outcome: VerifyOutcome,
    /// `outcome == passed` (kept for scripts that read it).
    pub passed: bool,
    /// Why the outcome is unverified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
    pub mismatches: Vec<String>,
    /// Probes that failed on the original already: not evidence either way.
    pub problems: Vec<String>,
    /// Probes that succeeded on the original and agreed on the slim image.
    pub compared: Vec<String>,
    /// TCP ports each side listened on (servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listening: Option<ListeningCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
}

impl VerifyResult {
    /// The outcome of a verify run that got this far: failed with any
    /// mismatch, unverified when nothing agreed, passed otherwise.
    pub fn conclude(&mut self) {
        self.outcome = if !self.mismatches.is_empty() {
            VerifyOutcome::Failed
        } else if self.compared.is_empty() {
            if self.unverified.is_none() {
                self.unverified = Some(if self.problems.is_empty() {
                    "no probe results to compare (no HTTP answers, no exec probe, no host command, no one-shot run)".into()
                } else {
                    format!(
                        "every probe failed on the original already ({}); nothing proves the slim image works",
                        self.problems.len()
                    )
                });
            }
            VerifyOutcome::Unverified
        } else {
            VerifyOutcome::Passed
        };
        self.passed = self.outcome == VerifyOutcome::Passed;
    }

    /// An unverified result with its reason (verify off, nothing to run).
    pub fn unverified(why: impl Into<String>) -> Self {
        VerifyResult {
            unverified: Some(why.into()),
            ..Default::default()
        }
    }
}

/// The ports check of a server's verify.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListeningCheck {
    pub original: Vec<u16>,
    pub slim: Vec<u16>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub ms: u64,
}

/// Everything a session found out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub id: String,
    pub kind: SessionKind,
    pub image: String,
    pub image_id: String,
    pub target: Option<String>,
    pub target_id: Option<String>,
    /// A watch session's Kubernetes pod and container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::model::PodRef>,
    pub started: u64,
    pub finished: u64,
    /// `succeeded`, `unverified` (a build whose slim image nothing could
    /// verify), `failed` or `cancelled`.
    pub state: String,
    /// The user turned verify off (`--verify=false`): an unverified image
    /// was asked for, so it is not an error.
    pub unverified_accepted: bool,
    pub failure: Option<ApiError>,
    pub sizes: Option<Sizes>,
    pub phases: Vec<PhaseTiming>,
    pub trace: Option<TraceStats>,
    /// Syscall names the app's processes made.
    pub syscalls: Vec<String>,
    pub execs: Vec<ExecRecord>,
    /// Ports the app listened on (`0.0.0.0:8080`).
    pub listening: Vec<String>,
    /// Destinations the app connected to.
    pub connections: Vec<String>,
    pub kept: Vec<KeptFile>,
    /// Entries created in the slim image that the original lacked.
    pub created: Vec<String>,
    /// Paths the app used that the image does not have (made at run time).
    pub not_in_image: Vec<String>,
    /// Paths events named that could not be used (truncated, unknown fd).
    pub unresolved: Vec<String>,
    /// Resolution and dependency problems.
    pub problems: Vec<String>,
    pub excluded: Vec<String>,
    /// Language packages and the app's own code: what the probes reached.
    pub coverage: Option<Coverage>,
    /// Trees kept whole as the app's state (written into, or VOLUMEs).
    pub state_roots: Vec<KeptRoot>,
    /// Trees the app reads content from by name, and what each added
    /// beyond the files the app used.
    pub content_roots: Vec<KeptRoot>,
    pub probe: Option<ProbeReport>,
    /// A one-shot container's own run.
    pub run: Option<RunRecord>,
    pub verify: Option<VerifyResult>,
    /// The slim image under the generated seccomp profile (`--verify-seccomp`).
    pub verify_seccomp: Option<VerifyResult>,
    /// How the seccomp profile was made: observed, added, dropped, allowed.
    pub seccomp: Option<crate::harden::SeccompSummary>,
    /// Ports served and destinations reached, as the profiles see them.
    pub network: Option<crate::harden::NetworkSummary>,
    /// Generated files (seccomp profile, network policy, SBOMs) by name.
    pub artifacts: BTreeMap<String, String>,
    /// Packages of the original, and those that still have files in the
    /// slim image (what its SBOMs list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackageCounts>,
    /// Advisories of the original and the slim image (`--vuln-db`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vuln: Option<crate::vuln::VulnReport>,
    pub warnings: Vec<String>,
    /// The original's bytes by directory and package, kept or dropped
    /// (absent from reports written before it existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<tree::SizeTree>,
}

/// Packages before and after slimming.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PackageCounts {
    pub original: usize,
    pub slim: usize,
}

impl Report {
    /// Ports and destinations, readable, from the network records.
    pub fn set_network(&mut self, records: &[NetRecord]) {
        let mut listening = Vec::new();
        let mut connections = Vec::new();
        for r in records.iter().filter(|r| r.ok) {
            let Some(addr) = &r.addr else { continue };
            let text = addr_text(addr);
            let list = match r.op {
                NetOp::Listen => &mut listening,
                NetOp::Connect => &mut connections,
                NetOp::Bind => continue,
            };
            if !list.contains(&text) {
                list.push(text);
            }
        }
        self.listening = listening;
        self.connections = connections;
    }

    /// Stores the coverage with the warnings the probe results call for
    /// (set `probe` and the network first).
    pub fn set_coverage(&mut self, coverage: Option<Coverage>) {
        self.coverage = coverage.map(|mut c| {
            let web = !self.listening.is_empty()
                || self.probe.as_ref().is_some_and(|p| !p.http.is_empty());
            c.warnings = thin_probe_warnings(&c, self.probe.as_ref(), web);
            c
        });
    }

    /// Shows every name in the report the way people read it (see the
    /// module docs): kept paths and their reasons, created, not-in-image,
    /// unresolved and excluded paths, problems, warnings, the failure,
    /// coverage and execs. Call it once, right before writing the report;
    /// shown text shown again would escape its own backslashes.
    pub fn show_names(&mut self) {
        for k in &mut self.kept {
            show(&mut k.path);
            k.reasons.iter_mut().for_each(show_reason);
        }
        self.created
            .iter_mut()
            .chain(&mut self.not_in_image)
            .chain(&mut self.unresolved)
            .chain(&mut self.problems)
            .chain(&mut self.excluded)
            .chain(&mut self.warnings)
            .for_each(show);
        if let Some(f) = &mut self.failure {
            show(&mut f.message);
        }
        if let Some(c) = &mut self.coverage {
            show_coverage(c);
        }
        for e in &mut self.execs {
            let ExecRecord { path, argv, .. } = e;
            show(path);
            argv.iter_mut().for_each(show);
        }
        for r in self.state_roots.iter_mut().chain(&mut self.content_roots) {
            show(&mut r.root);
            show(&mut r.cause);
        }
        if let Some(t) = &mut self.tree {
            show_tree(&mut t.root);
            t.packages.iter_mut().for_each(|p| show(&mut p.name));
        }
        for v in self.verify.iter_mut().chain(&mut self.verify_seccomp) {
            v.mismatches
                .iter_mut()
                .chain(&mut v.problems)
                .chain(&mut v.unverified)
                .for_each(show);
        }
    }

    /// The short form streamed as the last progress line.
    pub fn summary(&self, report_path: &str) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "image": self.image,
            "target": self.target,
            "pod": self.pod,
            "state": self.state,
            "sizes": self.sizes,
            "kept_paths": self.kept.len(),
            "packages": self.packages,
            "advisories": self.vuln.as_ref().map(|v| json!({
                "original": v.original.len(),
                "slim": v.slim.as_ref().map(Vec::len).unwrap_or(0),
                "removed": v.removed.len(),
            })),
            "execs": self.execs.len(),
            "listening": self.listening,
            "connections": self.connections,
            "lost_events": self.trace.map(|t| t.lost).unwrap_or(0),
            "verify": self.verify.as_ref().map(|v| verify_summary(v, self.unverified_accepted)),
            "verify_seccomp": self.verify_seccomp.as_ref().map(|v| verify_summary(v, self.unverified_accepted)),
            "seccomp_allowed": self.seccomp.as_ref().map(|s| s.allowed.len()),
            "probe_requests": self.probe.as_ref().map(|p| p.http.len()).unwrap_or(0),
            "phases": self.phases,
            "artifacts": self.artifacts,
            "warnings": self.warnings,
            "coverage": self.coverage.as_ref().map(coverage_summary),
            "state_roots": self.state_roots,
            "content_roots": self.content_roots,
            "report": report_path,
        })
    }
}

fn verify_summary(v: &VerifyResult, accepted: bool) -> Value {
    json!({
        "outcome": v.outcome,
        "passed": v.passed,
        "unverified": v.unverified,
        "accepted": accepted,
        "mismatches": v.mismatches,
        "problems": v.problems,
        "compared": v.compared.len(),
    })
}

/// Signs that the probes missed code paths: a web app that loaded under
/// half of its own modules, pages linked from HTML that answered errors.
pub fn thin_probe_warnings(c: &Coverage, probe: Option<&ProbeReport>, web: bool) -> Vec<String> {
    let mut out = Vec::new();
    if web {
        for a in &c.app {
            if a.modules >= 2 && a.modules_loaded * 2 < a.modules {
                let names: Vec<&str> = a
                    .untouched_modules
                    .iter()
                    .take(5)
                    .map(|m| m.strip_prefix(&format!("{}/", a.root)).unwrap_or(m))
                    .collect();
                let more = a.modules - a.modules_loaded - names.len();
                out.push(format!(
                    "probes look thin: only {} of {} source files of the app in {} were loaded (never: {}{}); request what uses them with --http-probe-file or --probe-cmd",
                    a.modules_loaded,
                    a.modules,
                    a.root,
                    names.join(", "),
                    if more > 0 {
                        format!(", {more} more")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    if let Some(p) = probe {
        let crawled: Vec<_> = p
            .http
            .iter()
            .filter(|h| matches!(h.origin, RequestOrigin::Crawl { .. }))
            .collect();
        let failed: Vec<String> = crawled
            .iter()
            .filter(|h| h.status.is_none_or(|s| s >= 400))
            .map(|h| match h.status {
                Some(s) => format!("{} -> {s}", h.label()),
                None => format!("{} -> no answer", h.label()),
            })
            .collect();
        if !failed.is_empty() {
            out.push(format!(
                "probes look thin: {} of {} pages linked from HTML returned errors ({}{})",
                failed.len(),
                crawled.len(),
                failed
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if failed.len() > 5 { ", ..." } else { "" }
            ));
        }
    }
    out
}

/// Counts per ecosystem and app tree, for the summary line.
fn coverage_summary(c: &Coverage) -> Value {
    json!({
        "granularity": c.granularity,
        "ecosystems": c.ecosystems.iter().map(|e| json!({
            "ecosystem": e.ecosystem,
            "present": e.packages_present,
            "used": e.used.len(),
            "dependency_only": e.dependency_only.len(),
        })).collect::<Vec<_>>(),
        "app": c.app.iter().map(|a| json!({
            "root": a.root,
            "kept_whole": a.kept_whole,
            "modules": a.modules,
            "modules_loaded": a.modules_loaded,
        })).collect::<Vec<_>>(),
        "warnings": c.warnings,
    })
}

fn show_tree(n: &mut tree::SizeNode) {
    show(&mut n.name);
    n.children.iter_mut().for_each(show_tree);
}

/// A keep reason's names as people read them.
fn show_reason(r: &mut KeepReason) {
    match r {
        KeepReason::Used { .. } | KeepReason::AlwaysKeep { .. } | KeepReason::UserFlag { .. } => {}
        KeepReason::SymlinkTo { path } | KeepReason::Volume { path } => show(path),
        KeepReason::ElfInterpreter { of }
        | KeepReason::ElfDependency { of }
        | KeepReason::ScriptInterpreter { of }
        | KeepReason::PythonPair { of } => show(of),
        KeepReason::StateDirectory { root, written } => {
            show(root);
            show(written);
        }
        KeepReason::ScratchDirectory { written } => show(written),
        KeepReason::ContentRoot { root, read } => {
            show(root);
            show(read);
        }
        KeepReason::AppSource { root } => show(root),
        KeepReason::Package { used, .. } => show(used),
        KeepReason::PackageDependency { required_by, .. } => show(required_by),
    }
}

/// Coverage's paths and messages as people read them. The patterns name
/// every field, so a new one is not forgotten here.
fn show_coverage(c: &mut Coverage) {
    let Coverage {
        granularity: _,
        ecosystems,
        app,
        notes,
        warnings,
    } = c;
    notes.iter_mut().chain(warnings).for_each(show);
    for e in ecosystems {
        let EcosystemCoverage {
            ecosystem: _,
            roots,
            packages_present: _,
            used,
            dependency_only,
            unused,
        } = e;
        roots.iter_mut().chain(unused).for_each(show);
        for p in used.iter_mut().chain(dependency_only) {
            let PackageCoverage {
                name,
                version: _,
                root,
                granularity: _,
                kept_whole: _,
                files: _,
                files_used: _,
                required_by,
                untouched_modules,
                untouched_more: _,
                missing_dependencies,
            } = p;
            show(name);
            show(root);
            required_by.iter_mut().for_each(show);
            untouched_modules
                .iter_mut()
                .chain(missing_dependencies)
                .for_each(show);
        }
    }
    for a in app {
        let AppCoverage {
            root,
            why: _,
            granularity: _,
            kept_whole: _,
            files: _,
            files_used: _,
            modules: _,
            modules_loaded: _,
            untouched_modules,
            untouched_more: _,
            declared_in,
            missing_dependencies,
        } = a;
        show(root);
        declared_in.iter_mut().for_each(show);
        untouched_modules
            .iter_mut()
            .chain(missing_dependencies)
            .for_each(show);
    }
}

pub fn addr_text(a: &SockAddr) -> String {
    match a {
        SockAddr::Inet { ip, port } => format!("{ip}:{port}"),
        SockAddr::Inet6 { ip, port } => format!("[{ip}]:{port}"),
        SockAddr::Unix { path, r#abstract } => {
            let path = name::show(path);
            if *r#abstract {
                format!("unix:@{path}")
            } else {
                format!("unix:{path}")
            }
        }
        SockAddr::Other { af } => format!("family {af}"),
        SockAddr::Unreadable => "unreadable address".into(),
    }
}

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::text::render_verify;
    use super::*;

    #[test]
    fn bytes_are_readable() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(161_000_000), "161.0 MB");
    }

    #[test]
    fn network_lists_listen_and_connect_once() {
        let rec = |op, port| NetRecord {
            pid: 1,
            comm: "a".into(),
            op,
            addr: Some(SockAddr::Inet {
                ip: "127.0.0.1".parse().unwrap(),
                port,
            }),
            ok: true,
        };
        let mut r = Report::default();
        r.set_network(&[
            rec(NetOp::Bind, 80),
            rec(NetOp::Listen, 80),
            rec(NetOp::Connect, 5432),
            rec(NetOp::Connect, 5432),
        ]);
        assert_eq!(r.listening, ["127.0.0.1:80"]);
        assert_eq!(r.connections, ["127.0.0.1:5432"]);
    }

    #[test]
    fn summary_renders_failures_and_losses() {
        let s = json!({
            "kind": "build", "target": "a.slim:latest",
            "sizes": {"original_bytes": 100_000_000u64, "slim_bytes": 10_000_000u64, "reduction_percent": 90.0,
                      "original_files": 1000, "slim_files": 50, "removed_files": 950},
            "kept_paths": 50, "execs": 2, "probe_requests": 3,
            "verify": {"outcome": "failed", "passed": false, "mismatches": ["GET / on 80: status 200 -> 404"]},
            "lost_events": 7, "report": "/x/report.json"
        });
        let text = render_summary(&s);
        assert!(text.contains("100.0 MB -> 10.0 MB"));
        assert!(text.contains("verify    FAILED"));
        assert!(text.contains("status 200 -> 404"));
        assert!(text.contains("7 trace events were LOST"));
        assert!(!text.contains("pod "), "no pod, no pod line");
        let mut s = s;
        s["pod"] = json!({"namespace": "builds", "name": "web-1", "uid": "u", "container": "app"});
        assert!(render_summary(&s).contains("  pod builds/web-1 container app\n"));
        let r = json!({"id": "x", "kind": "watch", "image": "web:1", "state": "succeeded",
                       "pod": {"namespace": "builds", "name": "web-1", "uid": "u", "container": "app"}});
        assert!(
            render_report(&r).starts_with(
                "session x  watch  web:1  (succeeded)\npod builds/web-1 container app\n"
            ),
            "{}",
            render_report(&r)
        );
    }

    #[test]
    fn verify_outcomes_read_distinctly() {
        let text = render_verify(&json!({"outcome": "passed", "compared": 3}));
        assert_eq!(
            text,
            "  verify    passed (3 probe results the same as the original)\n"
        );
        let text = render_verify(&json!({
            "outcome": "unverified", "unverified": "no probe results to compare",
            "accepted": false, "problems": ["exec probe \"false\": failed on the original too (exit code 1); not compared"]
        }));
        assert!(
            text.contains("UNVERIFIED: no probe results to compare"),
            "{text}"
        );
        assert!(text.contains("nothing proves the slim image"), "{text}");
        assert!(text.contains("failed on the original already"), "{text}");
        let text = render_verify(
            &json!({"outcome": "unverified", "accepted": true, "unverified": "turned off"}),
        );
        assert!(!text.contains("nothing proves"), "{text}");
        assert_eq!(render_verify(&json!(null)), "  verify    not run\n");
        assert!(render_verify(&json!({"passed": true})).contains("passed"));

        let mut v = VerifyResult::default();
        v.conclude();
        assert_eq!(v.outcome, VerifyOutcome::Unverified);
        v.compared.push("GET / on 80".into());
        v.unverified = None;
        v.conclude();
        assert!(v.passed);
        v.mismatches.push("x".into());
        v.conclude();
        assert_eq!(v.outcome, VerifyOutcome::Failed);
    }

    #[test]
    fn coverage_warns_about_thin_probes() {
        use crate::probe::{HttpRecord, RequestOrigin};
        use crate::resolve::packages::AppCoverage;
        let mut r = Report {
            listening: vec!["0.0.0.0:80".into()],
            ..Default::default()
        };
        let rec = |path: &str, status: Option<u16>, origin| HttpRecord {
            request: serde_json::from_value(json!({"method": "GET", "path": path, "port": 80}))
                .unwrap(),
            origin,
            host_port: 1,
            status,
            content_type: None,
            body_len: 0,
            body_sha256: None,
            body_sample: String::new(),
            error: None,
            expectation_failed: None,
            attempts: 1,
            elapsed_ms: 1,
        };
        r.probe = Some(ProbeReport {
            http: vec![
                rec("/", Some(200), RequestOrigin::Root),
                rec("/a", Some(404), RequestOrigin::Crawl { depth: 1 }),
                rec("/b", Some(200), RequestOrigin::Crawl { depth: 1 }),
                rec("/c", None, RequestOrigin::Crawl { depth: 2 }),
            ],
            ..Default::default()
        });
        let app = AppCoverage {
            root: "/app".into(),
            why: "WORKDIR".into(),
            granularity: crate::resolve::options::Granularity::Package,
            kept_whole: true,
            files: 5,
            files_used: 1,
            modules: 4,
            modules_loaded: 1,
            untouched_modules: vec!["/app/a.py".into(), "/app/b.py".into(), "/app/c.py".into()],
            untouched_more: 0,
            declared_in: None,
            missing_dependencies: Vec::new(),
        };
        r.set_coverage(Some(Coverage {
            app: vec![app],
            ..Default::default()
        }));
        let w = &r.coverage.as_ref().unwrap().warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("only 1 of 4 source files") && w[0].contains("a.py, b.py, c.py"));
        assert!(
            w[1].contains("2 of 3 pages") && w[1].contains("404") && w[1].contains("no answer")
        );
        let text = render_summary(&r.summary("/r.json"));
        assert!(
            text.contains("WARNING   probes look thin: only 1 of 4"),
            "{text}"
        );
        assert!(text.contains("app       /app: 1 of 4 source files loaded, tree kept whole"));
    }

    /// A user names non-UTF-8 paths in flags as reports show them; the keep
    /// set gets the bytes, and the report shows them in that same form.
    #[test]
    fn names_are_bytes_from_flags_to_the_report() {
        use crate::image::name::{decode, encode};
        use crate::image::tests::{LayerBuilder, image_from};
        use crate::resolve::options::KeepOptions;
        use crate::resolve::{Access, AccessKind, KeepInput, KeepSet, Observations};
        let layer = LayerBuilder::new()
            .dir("srv/www", 0o755)
            .raw(b"srv/www/caf\xe9.html", tar::EntryType::Regular, b"", b"x")
            .raw(
                b"srv/www/men\xfc",
                tar::EntryType::Symlink,
                b"caf\xe9.html",
                b"",
            )
            .raw(b"srv/www/old\xe8.bak", tar::EntryType::Regular, b"", b"y")
            .raw(b"srv/www/x\\x41", tar::EntryType::Regular, b"", b"z")
            .file("srv/www/unused.html", b"u")
            .build();
        let dir = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], dir.path()).unwrap();
        let obs = Observations {
            accesses: vec![Access {
                path: decode(b"/srv/www/men\xfc").into_owned(),
                kind: AccessKind::Open,
                ok: true,
                nofollow: false,
                write: false,
                pid: 1,
                comm: "app".into(),
            }],
            ..Default::default()
        };
        let options = KeepOptions {
            include_paths: vec![
                "/srv/www/old\\xE8.bak".into(),
                // A literal backslash before `x41`, as the report shows it.
                "/srv/www/x\\x5cx41".into(),
                "/srv/www/gone\\xff".into(),
            ],
            exclude_patterns: vec!["/srv/**/old\\xe8*".into()],
            // Only what was used: /srv/www is not kept whole as a content root.
            granularity: crate::resolve::options::Granularity::File,
            ..Default::default()
        };
        let ks = KeepSet::build(&KeepInput {
            image: &img,
            observations: &obs,
            options: &options,
            workdir: None,
        })
        .unwrap();
        let kept: Vec<Vec<u8>> = ks
            .entries()
            .keys()
            .map(|p| encode(p).into_owned())
            .collect();
        assert!(
            kept.contains(&b"/srv/www/caf\xe9.html".to_vec()),
            "{kept:?}"
        );
        assert!(kept.contains(&b"/srv/www/men\xfc".to_vec()));
        assert!(kept.contains(&b"/srv/www/x\\x41".to_vec()));
        assert!(
            !kept.contains(&b"/srv/www/old\xe8.bak".to_vec()),
            "excluded"
        );
        assert!(!kept.contains(&b"/srv/www/unused.html".to_vec()));

        let mut r = Report {
            kept: ks
                .entries()
                .iter()
                .map(|(p, reasons)| KeptFile {
                    path: p.clone(),
                    kind: "file",
                    size: 0,
                    reasons: reasons.clone(),
                })
                .collect(),
            problems: ks.problems.clone(),
            excluded: ks.excluded.clone(),
            ..Default::default()
        };
        r.show_names();
        let paths: Vec<&str> = r.kept.iter().map(|k| k.path.as_str()).collect();
        assert!(paths.contains(&"/srv/www/caf\\xe9.html"), "{paths:?}");
        assert!(paths.contains(&"/srv/www/x\\x5cx41"), "{paths:?}");
        let cafe = r
            .kept
            .iter()
            .find(|k| k.path == "/srv/www/caf\\xe9.html")
            .unwrap();
        assert!(
            cafe.reasons
                .iter()
                .any(|x| matches!(x, KeepReason::Used { .. })),
            "{:?}",
            cafe.reasons
        );
        let link = r
            .kept
            .iter()
            .find(|k| k.path == "/srv/www/men\\xfc")
            .unwrap();
        assert_eq!(
            link.reasons,
            [KeepReason::SymlinkTo {
                path: "/srv/www/caf\\xe9.html".into()
            }]
        );
        assert_eq!(r.excluded, ["/srv/www/old\\xe8.bak"]);
        assert_eq!(
            r.problems,
            ["--include-path /srv/www/gone\\xff: not in the image"]
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json
                .chars()
                .any(|c| crate::image::name::escaped_byte(c).is_some())
        );
    }

    #[test]
    fn state_and_content_roots_are_summarised() {
        let root = |root: &str, cause: &str, kept_whole, added: u64| KeptRoot {
            root: root.into(),
            cause: cause.into(),
            kept_whole,
            files: 4,
            bytes: 31,
            added_files: added,
            added_bytes: added * 1000,
        };
        let r = Report {
            state_roots: vec![root(
                "/var/lib/postgresql",
                "wrote /var/lib/postgresql/x",
                true,
                2,
            )],
            content_roots: vec![
                root("/srv/www", "read /srv/www/index.html", true, 3),
                root("/etc/site", "read /etc/site/a.conf", false, 0),
            ],
            ..Default::default()
        };
        let text = render_summary(&r.summary("/r.json"));
        assert!(
            text.contains(
                "state     /var/lib/postgresql kept whole (wrote /var/lib/postgresql/x): 4 files, 31 B"
            ),
            "{text}"
        );
        assert!(
            text.contains("content   /srv/www kept whole: 3 files (3.0 kB) the probes never read"),
            "{text}"
        );
        assert!(text.contains("content   /etc/site: only what was used kept (file granularity)"));
        // The full report renders from its JSON the same way.
        let full = render_report(&serde_json::to_value(&r).unwrap());
        assert!(full.contains("content   /srv/www kept whole"), "{full}");
    }

    #[test]
    fn reasons_read_well() {
        let v = serde_json::to_value(KeepReason::ElfDependency {
            of: "/bin/x".into(),
        })
        .unwrap();
        assert_eq!(reason_text(&v), "library needed by /bin/x");
        let text = |r: KeepReason| reason_text(&serde_json::to_value(r).unwrap());
        assert_eq!(
            text(KeepReason::StateDirectory {
                root: "/var/lib/redis".into(),
                written: "/var/lib/redis/temp-7.rdb".into()
            }),
            "state kept whole under /var/lib/redis (the app wrote /var/lib/redis/temp-7.rdb)"
        );
        assert_eq!(
            text(KeepReason::ContentRoot {
                root: "/srv/www".into(),
                read: "/srv/www/index.html".into()
            }),
            "content kept whole under /srv/www (the app read /srv/www/index.html)"
        );
        assert_eq!(
            text(KeepReason::Volume {
                path: "/data".into()
            }),
            "VOLUME /data"
        );
        assert!(
            text(KeepReason::ScratchDirectory {
                written: "/run/x/y.pid".into()
            })
            .contains("kept empty (the app wrote /run/x/y.pid)")
        );
    }
}
