//! The page of `slim diff A B --html`: sizes A → B and the file counts
//! first, bytes per top-level directory as bars, then packages, config,
//! layers and history, and every path that differs (searchable).

use minijinja::Value as Jinja;
use serde::Serialize;

use super::{HtmlError, render, svg::WIDTH};
use crate::diff::{Change, ImageDiff};
use crate::report::diff::{aspect, signed};

/// One top-level directory's pair of bars (A above, B below).
#[derive(Serialize)]
struct DirBar {
    dir: String,
    bytes_a: u64,
    bytes_b: u64,
    delta: String,
    added: u64,
    removed: u64,
    changed: u64,
    /// Bar widths over the label column, in SVG units.
    wa: f64,
    wb: f64,
    y: f64,
}

/// One path that differs, as the table shows it.
#[derive(Serialize)]
struct FileRow {
    path: String,
    change: &'static str,
    kind: String,
    size: String,
    what: String,
}

/// Left column of the bar chart (labels), in SVG units.
const LABEL: f64 = 160.0;
/// Height of one directory's pair of bars.
const ROW: f64 = 30.0;

/// See the module docs.
pub fn render_diff_html(d: &ImageDiff) -> Result<String, HtmlError> {
    let dirs: Vec<_> = d
        .files
        .by_top_dir
        .iter()
        .filter(|r| r.added + r.removed + r.changed > 0)
        .collect();
    let max = dirs
        .iter()
        .map(|r| r.bytes_a.max(r.bytes_b))
        .max()
        .unwrap_or(0)
        .max(1);
    let span = WIDTH - LABEL - 10.0;
    let bars: Vec<DirBar> = dirs
        .iter()
        .enumerate()
        .map(|(i, r)| DirBar {
            dir: r.dir.clone(),
            bytes_a: r.bytes_a,
            bytes_b: r.bytes_b,
            delta: signed(r.bytes_b as i64 - r.bytes_a as i64),
            added: r.added,
            removed: r.removed,
            changed: r.changed,
            wa: (r.bytes_a as f64 * span / max as f64 * 100.0).round() / 100.0,
            wb: (r.bytes_b as f64 * span / max as f64 * 100.0).round() / 100.0,
            y: i as f64 * ROW,
        })
        .collect();
    let files: Vec<FileRow> = d
        .files
        .changes
        .iter()
        .map(|c| {
            let (change, size) = match c.change {
                Change::Added => ("added", crate::report::bytes(c.size_b)),
                Change::Removed => ("removed", crate::report::bytes(c.size_a)),
                Change::Changed => (
                    "changed",
                    format!(
                        "{} → {}",
                        crate::report::bytes(c.size_a),
                        crate::report::bytes(c.size_b)
                    ),
                ),
            };
            FileRow {
                path: c.path.clone(),
                change,
                kind: c.kind.clone(),
                size,
                what: c.aspects.iter().map(aspect).collect::<Vec<_>>().join("; "),
            }
        })
        .collect();
    let config: Vec<(String, String, String)> = d
        .config
        .iter()
        .map(|c| {
            let v = |x: &Option<serde_json::Value>| match x {
                None => "(unset)".to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            (c.field.clone(), v(&c.a), v(&c.b))
        })
        .collect();
    let t = &d.files.totals;
    let count = |k| d.packages.count(k);
    use crate::diff::PackageChangeKind as K;
    let ctx = minijinja::context! {
        d => Jinja::from_serialize(d),
        title => format!("slim diff {} {}", d.a.name, d.b.name),
        size_delta => signed(t.bytes_b as i64 - t.bytes_a as i64),
        changed_delta => signed(t.changed_bytes_delta),
        bars => Jinja::from_serialize(&bars),
        chart_height => (bars.len() as f64 * ROW).max(ROW),
        label => LABEL,
        width => WIDTH,
        files => Jinja::from_serialize(&files),
        config => Jinja::from_serialize(&config),
        packages_added => count(K::Added),
        packages_removed => count(K::Removed),
        packages_upgraded => count(K::Upgraded),
        packages_downgraded => count(K::Downgraded),
        packages_changed => count(K::Changed),
    };
    render("diff.html", ctx)
}
