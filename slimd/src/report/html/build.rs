//! The page of a session (`slim report ID --html`): sizes, the icicle of
//! the original's bytes, keep reasons, coverage, probes beside verify,
//! seccomp and network, and phase timings, from the report's JSON.

use std::collections::BTreeMap;

use minijinja::Value as Jinja;
use serde::Serialize;
use serde_json::Value;

use super::{
    HtmlError, render,
    svg::{self, WIDTH},
};
use crate::report::{bytes, reason_text};

/// Packages listed in the bytes-by-package table.
const PACKAGES_LISTED: usize = 40;

/// One kept path as the keep-reasons table shows it.
#[derive(Serialize)]
struct KeptRow {
    path: String,
    kind: String,
    size: u64,
    reasons: Vec<String>,
    traced: bool,
}

/// One package's bar in the bytes-by-package table.
#[derive(Serialize)]
struct PackageRow {
    name: String,
    used: u64,
    rule: u64,
    dropped: u64,
    files: u64,
    /// Widths of the three segments over the largest package (0..=100).
    widths: [f64; 3],
}

/// One side of a probe: what the original or the slim image answered.
#[derive(Serialize, Default, Clone)]
struct ProbeSide {
    status: String,
    length: Option<u64>,
    sha256: String,
    sample: String,
    error: String,
    /// Verify compares the status only (the body or output varies).
    status_only: bool,
}

/// One probe with the original's result beside the slim image's.
#[derive(Serialize)]
struct ProbeRow {
    kind: &'static str,
    label: String,
    original: Option<ProbeSide>,
    slim: Option<ProbeSide>,
    /// `same`, `different`, or `not compared`.
    verdict: &'static str,
}

/// See the module docs. `report` is a report's JSON.
pub fn render_build_html(report: &Value) -> Result<String, HtmlError> {
    let sizes = &report["sizes"];
    let tree = &report["tree"]["root"];
    let (icicle, icicle_height) = if tree.is_object() {
        svg::icicle(tree)
    } else {
        (Vec::new(), 0.0)
    };
    let tree_total = icicle.first().map(|n| n.bytes);
    let original = sizes["original_bytes"].as_u64().unwrap_or(0);
    let slim = sizes["slim_bytes"].as_u64().unwrap_or(0);
    let slim_width = if original > 0 {
        (slim as f64 * WIDTH / original as f64).min(WIDTH)
    } else {
        0.0
    };
    let phases: Vec<(String, u64)> = list(&report["phases"])
        .map(|p| {
            (
                p["phase"].as_str().unwrap_or("?").to_string(),
                p["ms"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let phase_total: u64 = phases.iter().map(|p| p.1).sum();
    let phase_bar = svg::stacked(&phases, svg::duration);
    let kept: Vec<KeptRow> = list(&report["kept"])
        .map(|k| {
            let reasons: Vec<&Value> = list(&k["reasons"]).collect();
            KeptRow {
                path: k["path"].as_str().unwrap_or("?").to_string(),
                kind: k["kind"].as_str().unwrap_or("?").to_string(),
                size: k["size"].as_u64().unwrap_or(0),
                traced: reasons.iter().any(|r| {
                    matches!(
                        r["rule"].as_str(),
                        Some(
                            "used"
                                | "symlink_to"
                                | "elf_interpreter"
                                | "elf_dependency"
                                | "script_interpreter"
                                | "python_pair"
                        )
                    )
                }),
                reasons: reasons.into_iter().map(reason_text).collect(),
            }
        })
        .collect();
    let packages = package_rows(&report["tree"]["packages"]);
    let probes = probe_rows(report);
    let ctx = minijinja::context! {
        r => Jinja::from_serialize(report),
        title => format!("slim report {}", report["id"].as_str().unwrap_or("")),
        original_text => bytes(original),
        slim_text => bytes(slim),
        slim_width => slim_width,
        reduction => format!("{:.1}", sizes["reduction_percent"].as_f64().unwrap_or(0.0)),
        width => WIDTH,
        icicle => Jinja::from_serialize(&icicle),
        icicle_height => icicle_height,
        tree_total => tree_total,
        packages => Jinja::from_serialize(&packages),
        packages_more => list(&report["tree"]["packages"]).count().saturating_sub(PACKAGES_LISTED),
        kept => Jinja::from_serialize(&kept),
        kept_traced => kept.iter().filter(|k| k.traced).count(),
        probes => Jinja::from_serialize(&probes),
        phase_bar => Jinja::from_serialize(&phase_bar),
        phase_total => phase_total,
    };
    render("build.html", ctx)
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn package_rows(v: &Value) -> Vec<PackageRow> {
    let total = |p: &Value| {
        ["used", "rule", "dropped"]
            .iter()
            .map(|k| p[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let max = list(v).map(total).max().unwrap_or(0).max(1) as f64;
    list(v)
        .take(PACKAGES_LISTED)
        .map(|p| {
            let g = |k: &str| p[k].as_u64().unwrap_or(0);
            let pct = |b: u64| (b as f64 * 1000.0 / max).round() / 10.0;
            PackageRow {
                name: p["name"].as_str().unwrap_or("?").to_string(),
                used: g("used"),
                rule: g("rule"),
                dropped: g("dropped"),
                files: g("files"),
                widths: [pct(g("used")), pct(g("rule")), pct(g("dropped"))],
            }
        })
        .collect()
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn http_side(h: &Value) -> ProbeSide {
    ProbeSide {
        status: h["status"]
            .as_u64()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no answer".into()),
        length: h["body_len"].as_u64(),
        sha256: text_of(&h["body_sha256"]),
        sample: text_of(&h["body_sample"]),
        error: text_of(&h["error"]),
        status_only: h["request"]["ignore_body"].as_bool() == Some(true),
    }
}

/// An exec probe, host command or one-shot run: exit code and stdout.
fn output_side(e: &Value) -> ProbeSide {
    let status = if e["timed_out"].as_bool() == Some(true) {
        "timed out".to_string()
    } else {
        match e["exit_code"].as_i64() {
            Some(c) => format!("exit {c}"),
            None => "no exit code".into(),
        }
    };
    ProbeSide {
        status,
        length: e["stdout"]["len"].as_u64(),
        sha256: text_of(&e["stdout"]["sha256"]),
        sample: text_of(&e["stdout"]["text"]),
        error: text_of(&e["error"]),
        status_only: e["ignore_output"].as_bool() == Some(true),
    }
}

fn http_label(h: &Value) -> String {
    let q = &h["request"];
    format!(
        "{} {} on {}",
        q["method"].as_str().unwrap_or("GET"),
        q["path"].as_str().unwrap_or("?"),
        q["port"]
    )
}

fn verdict(a: &Option<ProbeSide>, b: &Option<ProbeSide>) -> &'static str {
    match (a, b) {
        (Some(a), Some(b)) if a.status == b.status && (a.status_only || a.sha256 == b.sha256) => {
            "same"
        }
        (Some(_), Some(_)) => "different",
        _ => "not compared",
    }
}

/// Each probe of the original run beside the same probe on the slim image.
fn probe_rows(report: &Value) -> Vec<ProbeRow> {
    let orig = &report["probe"];
    let slim = &report["verify"]["probe"];
    let mut rows = Vec::new();
    let mut pair = |kind: &'static str,
                    key: &str,
                    label: &dyn Fn(&Value) -> String,
                    side: &dyn Fn(&Value) -> ProbeSide| {
        let mut slim_by: BTreeMap<String, ProbeSide> =
            list(&slim[key]).map(|v| (label(v), side(v))).collect();
        for v in list(&orig[key]) {
            let l = label(v);
            let original = Some(side(v));
            let s = slim_by.remove(&l);
            rows.push(ProbeRow {
                kind,
                verdict: verdict(&original, &s),
                label: l,
                original,
                slim: s,
            });
        }
        for (l, s) in slim_by {
            rows.push(ProbeRow {
                kind,
                label: l,
                original: None,
                slim: Some(s),
                verdict: "not compared",
            });
        }
    };
    pair("http", "http", &http_label, &http_side);
    pair(
        "exec",
        "exec",
        &|e| {
            list(&e["cmd"])
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        },
        &output_side,
    );
    pair(
        "host command",
        "host_commands",
        &|e| text_of(&e["cmd"]),
        &output_side,
    );
    let run = |v: &Value| (!v.is_null()).then(|| output_side(v));
    let (a, b) = (run(&report["run"]), run(&report["verify"]["run"]));
    if a.is_some() || b.is_some() {
        rows.push(ProbeRow {
            kind: "run",
            label: "the container's own run".into(),
            verdict: verdict(&a, &b),
            original: a,
            slim: b,
        });
    }
    rows
}
