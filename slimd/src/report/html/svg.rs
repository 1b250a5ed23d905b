//! The charts of the HTML pages as plain data the templates draw as SVG:
//! the icicle of the original's bytes (one row per directory depth, widths
//! by bytes, each box split into used / kept-by-rule / dropped), the
//! stacked bar of phase timings, and bars of sizes. Computed here so the
//! page reads without JavaScript; the page's script only rescales them.

use serde::Serialize;
use serde_json::Value;

use super::super::bytes;

/// Width of the charts in SVG user units.
pub const WIDTH: f64 = 1000.0;
/// Height of one icicle row.
pub const ROW: f64 = 22.0;

/// One box of the icicle.
#[derive(Debug, Serialize)]
pub struct IcicleNode {
    /// Full path (`/usr/lib`), or the folded group's name under its parent.
    pub path: String,
    /// The last component, as the box is labelled.
    pub name: String,
    pub depth: usize,
    pub x: f64,
    pub w: f64,
    pub y: f64,
    pub bytes: u64,
    pub used: u64,
    pub rule: u64,
    pub dropped: u64,
    pub files: u64,
    pub folded: bool,
    /// `used | rule | dropped` segments: (class, x, width).
    pub segments: Vec<(&'static str, f64, f64)>,
    /// The label cut to the box (empty when too narrow).
    pub label: String,
    /// The hover text: path, size, how much was kept.
    pub title: String,
}

/// The icicle's boxes in document order (parents before children) and its
/// height.
pub fn icicle(root: &Value) -> (Vec<IcicleNode>, f64) {
    let total = sum(root);
    let mut out = Vec::new();
    let mut depth_max = 0;
    walk(root, "", 0, 0.0, total, &mut out, &mut depth_max);
    (out, (depth_max + 1) as f64 * ROW)
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn sum(n: &Value) -> u64 {
    u(n, "used") + u(n, "rule") + u(n, "dropped")
}

fn walk(
    n: &Value,
    parent: &str,
    depth: usize,
    x: f64,
    total: u64,
    out: &mut Vec<IcicleNode>,
    depth_max: &mut usize,
) {
    *depth_max = (*depth_max).max(depth);
    let name = n["name"].as_str().unwrap_or("?").to_string();
    let path = if depth == 0 {
        "/".to_string()
    } else if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    };
    let bytes_here = sum(n);
    let scale = |b: u64| {
        if total == 0 {
            0.0
        } else {
            b as f64 * WIDTH / total as f64
        }
    };
    let w = if depth == 0 { WIDTH } else { scale(bytes_here) };
    let mut segments = Vec::new();
    let mut sx = x;
    for (class, b) in [
        ("used", u(n, "used")),
        ("rule", u(n, "rule")),
        ("dropped", u(n, "dropped")),
    ] {
        if b > 0 {
            let sw = scale(b);
            segments.push((class, round(sx), round(sw)));
            sx += sw;
        }
    }
    let kept = u(n, "used") + u(n, "rule");
    let files = u(n, "files");
    let folded = n["folded"].as_bool().unwrap_or(false);
    let title = format!(
        "{path}\n{} in {files} file{}{}\nkept {} ({} used, {} by rule), dropped {}",
        bytes(bytes_here),
        if files == 1 { "" } else { "s" },
        if folded {
            " (not listed one by one)"
        } else {
            ""
        },
        bytes(kept),
        bytes(u(n, "used")),
        bytes(u(n, "rule")),
        bytes(u(n, "dropped")),
    );
    out.push(IcicleNode {
        label: label(&name, w),
        path: path.clone(),
        name,
        depth,
        x: round(x),
        w: round(w),
        y: depth as f64 * ROW,
        bytes: bytes_here,
        used: u(n, "used"),
        rule: u(n, "rule"),
        dropped: u(n, "dropped"),
        files,
        folded,
        segments,
        title,
    });
    let mut cx = x;
    for c in n["children"].as_array().into_iter().flatten() {
        walk(c, &path, depth + 1, cx, total, out, depth_max);
        cx += scale(sum(c));
    }
}

/// About 6.5 units per character at the chart's font size.
const CHAR_W: f64 = 6.5;

/// `name` cut to fit `w` units, or nothing when not even three characters fit.
pub fn label(name: &str, w: f64) -> String {
    let fit = ((w - 6.0) / CHAR_W).floor();
    if fit < 3.0 {
        return String::new();
    }
    let fit = fit as usize;
    if name.chars().count() <= fit {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(fit - 1).collect();
        s.push('…');
        s
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One segment of a stacked bar.
#[derive(Debug, Serialize)]
pub struct BarSegment {
    pub name: String,
    pub value: u64,
    pub text: String,
    pub x: f64,
    pub w: f64,
    /// Index into the page's palette.
    pub colour: usize,
}

/// A stacked bar of `parts` over [`WIDTH`], with `text` for each value.
pub fn stacked(parts: &[(String, u64)], text: impl Fn(u64) -> String) -> Vec<BarSegment> {
    let total: u64 = parts.iter().map(|p| p.1).sum();
    let mut x = 0.0;
    parts
        .iter()
        .enumerate()
        .map(|(i, (name, value))| {
            let w = if total == 0 {
                0.0
            } else {
                *value as f64 * WIDTH / total as f64
            };
            let s = BarSegment {
                name: name.clone(),
                value: *value,
                text: text(*value),
                x: round(x),
                w: round(w),
                colour: i % 8,
            };
            x += w;
            s
        })
        .collect()
}

/// Milliseconds as people read them.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn icicle_widths_follow_bytes() {
        let root = json!({"name": "/", "used": 60, "rule": 20, "dropped": 20, "files": 3, "children": [
            {"name": "usr", "used": 60, "rule": 0, "dropped": 15, "files": 2, "children": [
                {"name": "bin", "used": 60, "rule": 0, "dropped": 15, "files": 2}
            ]},
            {"name": "etc", "used": 0, "rule": 20, "dropped": 5, "files": 1, "folded": true}
        ]});
        let (nodes, height) = icicle(&root);
        assert_eq!(height, 3.0 * ROW);
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].path, "/");
        assert_eq!((nodes[0].x, nodes[0].w), (0.0, WIDTH));
        assert_eq!(nodes[0].bytes, 100);
        assert_eq!(nodes[1].path, "/usr");
        assert_eq!(nodes[1].w, 750.0);
        assert_eq!(nodes[2].path, "/usr/bin");
        assert_eq!(nodes[3].path, "/etc");
        assert_eq!((nodes[3].x, nodes[3].w), (750.0, 250.0));
        assert!(nodes[3].folded);
        // Segments: used then dropped, by bytes.
        assert_eq!(
            nodes[1].segments,
            [("used", 0.0, 600.0), ("dropped", 600.0, 150.0)]
        );
        assert!(
            nodes[3]
                .title
                .contains("kept 20 B (0 B used, 20 B by rule)")
        );
    }

    #[test]
    fn labels_fit_their_boxes() {
        assert_eq!(label("usr", 100.0), "usr");
        assert_eq!(label("x86_64-linux-gnu", 60.0), "x86_64-…");
        assert_eq!(label("lib", 10.0), "");
    }

    #[test]
    fn stacked_bars_add_up() {
        let s = stacked(&[("a".into(), 1), ("b".into(), 3)], |v| v.to_string());
        assert_eq!((s[0].x, s[0].w), (0.0, 250.0));
        assert_eq!((s[1].x, s[1].w), (250.0, 750.0));
        assert_eq!(duration(1500), "1.5 s");
        assert_eq!(duration(15), "15 ms");
    }
}
