//! Reports for a terminal: the summary a build ends with, and the whole
//! report of `slim report ID`, rendered from the report's JSON (so reports
//! written by older daemons stay readable).

use serde_json::{Value, json};

use super::bytes;

/// `pod NAMESPACE/NAME container NAME` of a watch session on a
/// Kubernetes node, when the report or summary names one.
fn pod_line(pod: &Value) -> Option<String> {
    let pod: crate::model::PodRef = serde_json::from_value(pod.clone()).ok()?;
    Some(pod.to_string())
}

/// Renders a summary (the `Done` line) for a terminal.
pub fn render_summary(s: &Value) -> String {
    let mut out = String::new();
    let kind = s["kind"].as_str().unwrap_or("build");
    if kind == "compose" {
        return render_stack_summary(s);
    }
    if let Some(line) = pod_line(&s["pod"]) {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(sz) = s.get("sizes").filter(|v| !v.is_null()) {
        let orig = sz["original_bytes"].as_u64().unwrap_or(0);
        let slim = sz["slim_bytes"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "  size      {} -> {}  ({:.1}% smaller)\n",
            bytes(orig),
            bytes(slim),
            sz["reduction_percent"].as_f64().unwrap_or(0.0)
        ));
        out.push_str(&format!(
            "  files     {} -> {}  ({} removed)\n",
            sz["original_files"], sz["slim_files"], sz["removed_files"]
        ));
    }
    if let Some(p) = s.get("packages").filter(|v| !v.is_null()) {
        out.push_str(&format!(
            "  packages  {} -> {}  (with files left; SBOMs next to the report)\n",
            p["original"], p["slim"]
        ));
    }
    if let Some(a) = s.get("advisories").filter(|v| !v.is_null()) {
        out.push_str(&format!(
            "  advisories {} -> {}  ({} removed by slimming)\n",
            a["original"], a["slim"], a["removed"]
        ));
    }
    if let Some(t) = s["target"].as_str().filter(|_| kind == "build") {
        out.push_str(&format!("  image     {t}\n"));
    }
    out.push_str(&format!(
        "  observed  {} paths kept, {} execs, {} probe requests\n",
        s["kept_paths"], s["execs"], s["probe_requests"]
    ));
    for (label, key) in [("listens", "listening"), ("connects", "connections")] {
        if let Some(v) = s[key].as_array().filter(|v| !v.is_empty()) {
            let items: Vec<&str> = v.iter().filter_map(|x| x.as_str()).collect();
            out.push_str(&format!("  {label:<9} {}\n", items.join(", ")));
        }
    }
    out.push_str(&render_verify(&s["verify"]));
    if let Some(n) = s["seccomp_allowed"].as_u64() {
        let under = match s["verify_seccomp"]["outcome"].as_str() {
            Some("passed") => ", verified: the slim image passes its probes under it",
            Some("failed") => ", FAILED verify under it",
            Some(_) => ", not verified under it (nothing to compare)",
            None => "",
        };
        out.push_str(&format!("  seccomp   {n} syscalls allowed{under}\n"));
    }
    let lost = s["lost_events"].as_u64().unwrap_or(0);
    if lost > 0 {
        out.push_str(&format!(
            "  WARNING   {lost} trace events were LOST: the slim image may miss files\n"
        ));
    }
    if let Some(c) = s.get("coverage").filter(|c| !c.is_null()) {
        let gran = c["granularity"].as_str().unwrap_or("package");
        for e in c["ecosystems"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  packages  {}: {} present, {} used, {} kept as dependencies ({gran} granularity)\n",
                e["ecosystem"].as_str().unwrap_or("?"),
                e["present"],
                e["used"],
                e["dependency_only"]
            ));
        }
        for a in c["app"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  app       {}: {} of {} source files loaded{}\n",
                a["root"].as_str().unwrap_or("?"),
                a["modules_loaded"],
                a["modules"],
                if a["kept_whole"].as_bool() == Some(true) {
                    ", tree kept whole"
                } else {
                    ""
                }
            ));
        }
        for w in c["warnings"].as_array().into_iter().flatten() {
            out.push_str(&format!("  WARNING   {}\n", w.as_str().unwrap_or("")));
        }
    }
    out.push_str(&render_roots(s));
    if let Some(a) = s["artifacts"].as_object() {
        for (i, v) in a.values().enumerate() {
            let label = if i == 0 { "profiles" } else { "" };
            out.push_str(&format!("  {label:<9} {}\n", v.as_str().unwrap_or("")));
        }
    }
    for w in s["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("  warning   {}\n", w.as_str().unwrap_or("")));
    }
    if let Some(r) = s["report"].as_str() {
        out.push_str(&format!("  report    {r}\n"));
    }
    out
}

/// A Compose stack's report: each service with its own session (`slim
/// report ID` shows it), sizes and verify outcome, then the stack's
/// end-to-end verify.
fn render_stack_report(r: &Value) -> String {
    let mut out = format!(
        "session {}  compose  {}  ({})\n",
        r["id"].as_str().unwrap_or("?"),
        r["file"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
    );
    if let Some(f) = r.get("failure").filter(|f| !f.is_null()) {
        out.push_str(&format!(
            "failure: {}\n",
            f["message"].as_str().unwrap_or("")
        ));
    }
    for s in r["services"].as_array().into_iter().flatten() {
        let name = s["service"].as_str().unwrap_or("?");
        let image = s["image"].as_str().unwrap_or("?");
        if s["chosen"] != true {
            out.push_str(&format!("  {name:<12} {image} (untraced)\n"));
            continue;
        }
        let sizes = match (s["original_bytes"].as_u64(), s["slim_bytes"].as_u64()) {
            (Some(a), Some(b)) => format!("{} -> {}", bytes(a), bytes(b)),
            _ => "not built".into(),
        };
        out.push_str(&format!(
            "  {name:<12} {image} -> {}  {sizes}  verify {}  (session {})\n",
            s["target"].as_str().unwrap_or("-"),
            s["verify"].as_str().unwrap_or("-"),
            s["session"].as_str().unwrap_or("-"),
        ));
    }
    out.push_str(&render_verify(&r["verify"]));
    out
}

/// A Compose stack's summary: each service's own summary under its name,
/// then the stack's end-to-end verify and its report.
fn render_stack_summary(s: &Value) -> String {
    let mut out = String::new();
    for svc in s["services"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "service {}: {}\n",
            svc["service"].as_str().unwrap_or("?"),
            svc["image"].as_str().unwrap_or("?")
        ));
        out.push_str(&render_summary(svc));
    }
    out.push_str(&format!(
        "stack {} ({}, {:.1} s)\n",
        s["project"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        s["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
    ));
    out.push_str(&render_verify(&s["verify"]));
    if let Some(r) = s["report"].as_str() {
        out.push_str(&format!("  report    {r}\n"));
    }
    out
}

/// The verify lines of a summary: the outcome, what was compared, and
/// every mismatch or probe problem.
pub(super) fn render_verify(v: &Value) -> String {
    let mut out = String::new();
    let list = |out: &mut String, key: &str| {
        for m in v[key].as_array().into_iter().flatten() {
            out.push_str(&format!("            - {}\n", m.as_str().unwrap_or("")));
        }
    };
    // Reports written before outcomes existed carry only `passed`.
    let outcome = v["outcome"].as_str().or(match v["passed"].as_bool() {
        Some(true) => Some("passed"),
        Some(false) => Some("failed"),
        None => None,
    });
    match outcome {
        None => out.push_str("  verify    not run\n"),
        Some("passed") => {
            let n = v["compared"].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "  verify    passed ({n} probe result{} the same as the original)\n",
                if n == 1 { "" } else { "s" }
            ));
        }
        Some("failed") => {
            out.push_str("  verify    FAILED\n");
            list(&mut out, "mismatches");
        }
        Some(_) => {
            out.push_str(&format!(
                "  verify    UNVERIFIED: {}\n",
                v["unverified"].as_str().unwrap_or("nothing was compared")
            ));
            if v["accepted"].as_bool() != Some(true) {
                out.push_str(
                    "            nothing proves the slim image does the job: add --exec-probe, --probe-cmd or --http-probe-file requests that succeed on the original\n",
                );
            }
        }
    }
    if v["problems"].as_array().is_some_and(|p| !p.is_empty()) {
        out.push_str("  probes    failed on the original already (not compared):\n");
        list(&mut out, "problems");
    }
    out
}

/// One line per state root and content root of a summary or report.
fn render_roots(s: &Value) -> String {
    let mut out = String::new();
    for r in s["state_roots"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  state     {} kept whole ({}): {} files, {}\n",
            r["root"].as_str().unwrap_or("?"),
            r["cause"].as_str().unwrap_or("?"),
            r["files"],
            bytes(r["bytes"].as_u64().unwrap_or(0)),
        ));
    }
    for r in s["content_roots"].as_array().into_iter().flatten() {
        let added = format!(
            "{} files ({}) the probes never read",
            r["added_files"],
            bytes(r["added_bytes"].as_u64().unwrap_or(0))
        );
        if r["kept_whole"].as_bool() == Some(false) {
            out.push_str(&format!(
                "  content   {}: only what was used kept (file granularity)\n",
                r["root"].as_str().unwrap_or("?"),
            ));
        } else {
            out.push_str(&format!(
                "  content   {} kept whole: {added}\n",
                r["root"].as_str().unwrap_or("?"),
            ));
        }
    }
    out
}

/// Renders a full report for `slim report ID`.
pub fn render_report(r: &Value) -> String {
    if r["kind"] == "compose" {
        return render_stack_report(r);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "session {}  {}  {}  ({})\n",
        r["id"].as_str().unwrap_or("?"),
        r["kind"].as_str().unwrap_or("?"),
        r["image"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
    ));
    if let Some(line) = pod_line(&r["pod"]) {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(f) = r.get("failure").filter(|f| !f.is_null()) {
        out.push_str(&format!(
            "failure: {}\n",
            f["message"].as_str().unwrap_or("")
        ));
    }
    let summary = json!({
        "kind": r["kind"], "target": r["target"], "sizes": r["sizes"],
        "kept_paths": r["kept"].as_array().map(|a| a.len()).unwrap_or(0),
        "execs": r["execs"].as_array().map(|a| a.len()).unwrap_or(0),
        "probe_requests": r["probe"]["http"].as_array().map(|a| a.len()).unwrap_or(0),
        "listening": r["listening"], "connections": r["connections"],
        "verify": r["verify"], "lost_events": r["trace"]["lost"],
        "verify_seccomp": r["verify_seccomp"],
        "seccomp_allowed": r["seccomp"]["allowed"].as_array().map(|a| a.len()),
        "artifacts": r["artifacts"], "warnings": r["warnings"],
        "coverage": coverage_summary_of_report(&r["coverage"]),
        "state_roots": r["state_roots"], "content_roots": r["content_roots"],
    });
    out.push_str(&render_summary(&summary));
    out.push_str(&render_coverage(&r["coverage"]));
    if let Some(phases) = r["phases"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("\nphases:\n");
        for p in phases {
            out.push_str(&format!(
                "  {:<9} {:>8} ms\n",
                p["phase"].as_str().unwrap_or("?"),
                p["ms"]
            ));
        }
    }
    if let Some(execs) = r["execs"].as_array().filter(|e| !e.is_empty()) {
        out.push_str("\nexecs:\n");
        for e in execs {
            let argv: Vec<&str> = e["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect();
            out.push_str(&format!(
                "  {}{}  {}\n",
                e["path"].as_str().unwrap_or("?"),
                if e["ok"].as_bool() == Some(false) {
                    " (failed)"
                } else {
                    ""
                },
                argv.join(" ")
            ));
        }
    }
    if let Some(kept) = r["kept"].as_array().filter(|k| !k.is_empty()) {
        out.push_str("\nkept (path, why):\n");
        for k in kept {
            let why: Vec<String> = k["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(reason_text)
                .collect();
            out.push_str(&format!(
                "  {}  [{}]\n",
                k["path"].as_str().unwrap_or("?"),
                why.join("; ")
            ));
        }
    }
    for (title, key) in [
        ("created in the slim image", "created"),
        (
            "used but not in the image (made at run time)",
            "not_in_image",
        ),
        ("excluded by --exclude-pattern", "excluded"),
        ("problems", "problems"),
        ("unresolved", "unresolved"),
    ] {
        if let Some(list) = r[key].as_array().filter(|l| !l.is_empty()) {
            out.push_str(&format!("\n{title}:\n"));
            for p in list {
                out.push_str(&format!("  {}\n", p.as_str().unwrap_or("?")));
            }
        }
    }
    out
}

/// The summary's coverage counts from a full report's coverage.
fn coverage_summary_of_report(c: &Value) -> Value {
    if c.is_null() {
        return Value::Null;
    }
    let len = |v: &Value| v.as_array().map(|a| a.len()).unwrap_or(0);
    json!({
        "granularity": c["granularity"],
        "ecosystems": c["ecosystems"].as_array().into_iter().flatten().map(|e| json!({
            "ecosystem": e["ecosystem"], "present": e["packages_present"],
            "used": len(&e["used"]), "dependency_only": len(&e["dependency_only"]),
        })).collect::<Vec<_>>(),
        "app": c["app"],
        "warnings": c["warnings"],
    })
}

/// Packages kept as dependencies and code the probes never loaded.
fn render_coverage(c: &Value) -> String {
    let mut out = String::new();
    if c.is_null() {
        return out;
    }
    for e in c["ecosystems"].as_array().into_iter().flatten() {
        let eco = e["ecosystem"].as_str().unwrap_or("?");
        for u in e["used"].as_array().into_iter().flatten() {
            let Some(list) = u["untouched_modules"].as_array().filter(|l| !l.is_empty()) else {
                continue;
            };
            if out.is_empty() {
                out.push_str("\ncoverage:\n");
            }
            let total = list.len() + u["untouched_more"].as_u64().unwrap_or(0) as usize;
            let names: Vec<&str> = list
                .iter()
                .filter_map(|m| m.as_str())
                .map(|m| m.rsplit('/').next().unwrap_or(m))
                .take(8)
                .collect();
            out.push_str(&format!(
                "  {eco} {}: {total} modules never loaded ({}{})\n",
                u["name"].as_str().unwrap_or("?"),
                names.join(", "),
                if total > names.len() { ", ..." } else { "" }
            ));
        }
        for d in e["dependency_only"].as_array().into_iter().flatten() {
            if out.is_empty() {
                out.push_str("\ncoverage:\n");
            }
            out.push_str(&format!(
                "  {eco} {} {}: never loaded, kept as a dependency of {}\n",
                d["name"].as_str().unwrap_or("?"),
                d["version"].as_str().unwrap_or(""),
                d["required_by"].as_str().unwrap_or("?")
            ));
        }
    }
    for a in c["app"].as_array().into_iter().flatten() {
        let untouched = a["untouched_modules"].as_array();
        if let Some(list) = untouched.filter(|l| !l.is_empty()) {
            if out.is_empty() {
                out.push_str("\ncoverage:\n");
            }
            out.push_str(&format!(
                "  app {}: never loaded by the probes:\n",
                a["root"].as_str().unwrap_or("?")
            ));
            for m in list {
                out.push_str(&format!("    {}\n", m.as_str().unwrap_or("?")));
            }
        }
    }
    out
}

/// One keep reason in words.
pub fn reason_text(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match v["rule"].as_str().unwrap_or("") {
        "used" => format!("{} by {} (pid {})", s("how"), s("comm"), v["pid"]),
        "symlink_to" => format!("symlink on the way to {}", s("path")),
        "elf_interpreter" => format!("ELF interpreter of {}", s("of")),
        "elf_dependency" => format!("library needed by {}", s("of")),
        "script_interpreter" => format!("interpreter of {}", s("of")),
        "python_pair" => format!("source/bytecode pair of {}", s("of")),
        "state_directory" => format!(
            "state kept whole under {} (the app wrote {})",
            s("root"),
            s("written")
        ),
        "scratch_directory" => format!(
            "directory the app writes runtime files into, kept empty (the app wrote {})",
            s("written")
        ),
        "volume" => format!("VOLUME {}", s("path")),
        "content_root" => format!(
            "content kept whole under {} (the app read {})",
            s("root"),
            s("read")
        ),
        "always_keep" => s("why"),
        "user_flag" => format!("asked by {}", s("flag")),
        "app_source" => format!("app source tree {}", s("root")),
        "package" => format!(
            "{} package {} (the app used {})",
            s("ecosystem"),
            s("name"),
            s("used")
        ),
        "package_dependency" => format!(
            "{} package {}, a dependency of {}",
            s("ecosystem"),
            s("name"),
            s("required_by")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_report_names_each_service_and_its_session() {
        let r = json!({
            "id": "s1", "kind": "compose", "file": "/p/compose.yml", "state": "succeeded",
            "services": [
                {"service": "web", "image": "web:1", "chosen": true, "session": "c1",
                 "target": "web.slim:1", "original_bytes": 2_000_000, "slim_bytes": 1_000_000,
                 "verify": "passed"},
                {"service": "db", "image": "db:1", "chosen": false}
            ],
            "verify": {"outcome": "passed", "passed": true, "mismatches": [], "problems": [], "compared": ["x"]}
        });
        let text = render_report(&r);
        assert!(
            text.starts_with("session s1  compose  /p/compose.yml  (succeeded)"),
            "{text}"
        );
        assert!(
            text.contains("web.slim:1") && text.contains("session c1"),
            "{text}"
        );
        assert!(text.contains("db:1 (untraced)"), "{text}");
        let summary = json!({
            "kind": "compose", "project": "shop", "state": "succeeded", "elapsed_ms": 1500,
            "services": [{"service": "web", "image": "web:1", "target": "web.slim:1"}],
            "verify": r["verify"], "report": "/r.json"
        });
        let text = render_summary(&summary);
        assert!(text.contains("service web: web:1"), "{text}");
        assert!(text.contains("stack shop (succeeded, 1.5 s)"), "{text}");
    }
}
