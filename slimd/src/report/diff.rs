//! `slim diff` for a terminal: the summary first (sizes, files, packages,
//! config, layers), then with `--details` every path that differs.

use std::fmt::Write;

use crate::diff::{Aspect, Change, ImageDiff, PackageChangeKind};

use super::bytes;

/// A readable diff; `details` adds the file list.
pub fn render_diff(d: &ImageDiff, details: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "A  {}  ({})", d.a.name, short(&d.a.id));
    let _ = writeln!(o, "B  {}  ({})", d.b.name, short(&d.b.id));
    if d.same {
        let _ = writeln!(
            o,
            "\nThe images are the same: files, packages, config and layers."
        );
        return o;
    }
    let t = &d.files.totals;
    let _ = writeln!(
        o,
        "\nSize   {} -> {} ({}), {} -> {} files",
        bytes(t.bytes_a),
        bytes(t.bytes_b),
        signed(t.bytes_b as i64 - t.bytes_a as i64),
        t.files_a,
        t.files_b
    );
    let _ = writeln!(
        o,
        "Files  {} added ({}), {} removed ({}), {} changed ({})",
        t.added,
        bytes(t.added_bytes),
        t.removed,
        bytes(t.removed_bytes),
        t.changed,
        signed(t.changed_bytes_delta)
    );
    let rows: Vec<_> = d
        .files
        .by_top_dir
        .iter()
        .filter(|r| r.added + r.removed + r.changed > 0)
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(
            o,
            "\n  {:<14} {:>10} {:>10} {:>11} {:>7} {:>7} {:>7}",
            "directory", "A", "B", "delta", "added", "removed", "changed"
        );
        for r in rows {
            let _ = writeln!(
                o,
                "  {:<14} {:>10} {:>10} {:>11} {:>7} {:>7} {:>7}",
                r.dir,
                bytes(r.bytes_a),
                bytes(r.bytes_b),
                signed(r.bytes_b as i64 - r.bytes_a as i64),
                r.added,
                r.removed,
                r.changed
            );
        }
    }
    let p = &d.packages;
    let _ = writeln!(
        o,
        "\nPackages  {} -> {}: {} added, {} removed, {} upgraded, {} downgraded, {} changed",
        p.count_a,
        p.count_b,
        p.count(PackageChangeKind::Added),
        p.count(PackageChangeKind::Removed),
        p.count(PackageChangeKind::Upgraded),
        p.count(PackageChangeKind::Downgraded),
        p.count(PackageChangeKind::Changed),
    );
    for c in &p.changes {
        let sign = match c.change {
            PackageChangeKind::Added => "+",
            PackageChangeKind::Removed => "-",
            PackageChangeKind::Upgraded => "↑",
            PackageChangeKind::Downgraded => "↓",
            PackageChangeKind::Changed => "~",
        };
        let versions = match (&c.version_a, &c.version_b) {
            (Some(a), Some(b)) => format!("{a} -> {b}"),
            (Some(v), None) | (None, Some(v)) => v.clone(),
            (None, None) => String::new(),
        };
        let at = if c.location.is_empty() {
            String::new()
        } else {
            format!("  ({})", c.location)
        };
        let _ = writeln!(
            o,
            "  {sign} {:<8} {} {versions}{at}",
            c.ecosystem.name(),
            c.name
        );
    }
    if !d.config.is_empty() {
        let _ = writeln!(o, "\nConfig");
        for c in &d.config {
            let v = |x: &Option<serde_json::Value>| match x {
                None => "(unset)".to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            let _ = writeln!(o, "  {:<24} {} -> {}", c.field, v(&c.a), v(&c.b));
        }
    }
    let l = &d.layers;
    let _ = writeln!(
        o,
        "\nLayers  {} -> {}, {} shared from the base{}",
        d.a.layers.len(),
        d.b.layers.len(),
        l.shared_base,
        if l.same { " (identical)" } else { "" }
    );
    for h in &l.history_a {
        let _ = writeln!(o, "  - {}", one_line(h));
    }
    for h in &l.history_b {
        let _ = writeln!(o, "  + {}", one_line(h));
    }
    if details && !d.files.changes.is_empty() {
        let _ = writeln!(o, "\nFiles");
        for c in &d.files.changes {
            let (sign, size) = match c.change {
                Change::Added => ("+", bytes(c.size_b)),
                Change::Removed => ("-", bytes(c.size_a)),
                Change::Changed => ("~", format!("{} -> {}", bytes(c.size_a), bytes(c.size_b))),
            };
            let what: Vec<String> = c.aspects.iter().map(aspect).collect();
            let what = if what.is_empty() {
                String::new()
            } else {
                format!("  [{}]", what.join("; "))
            };
            let _ = writeln!(o, "  {sign} {}  {} {size}{what}", c.path, c.kind);
        }
    } else if !details && !d.files.changes.is_empty() {
        let _ = writeln!(o, "\n(--details lists the {} paths)", d.files.changes.len());
    }
    o
}

pub(crate) fn aspect(a: &Aspect) -> String {
    match a {
        Aspect::Kind { a, b } => format!("type {a} -> {b}"),
        Aspect::Content { a, b } => format!(
            "sha256 {}.. -> {}..",
            &a[..12.min(a.len())],
            &b[..12.min(b.len())]
        ),
        Aspect::Mode { a, b } => format!("mode {a} -> {b}"),
        Aspect::Owner { a, b } => format!("owner {a} -> {b}"),
        Aspect::Link { a, b } => format!("link {a} -> {b}"),
        Aspect::Device { a, b } => format!("device {a} -> {b}"),
        Aspect::Xattrs { a, b } => format!("xattrs {a:?} -> {b:?}"),
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..12.min(id.len())]
}

pub(crate) fn signed(n: i64) -> String {
    if n < 0 {
        format!("-{}", bytes(n.unsigned_abs()))
    } else {
        format!("+{}", bytes(n as u64))
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(99).collect::<String>())
    } else {
        s
    }
}
