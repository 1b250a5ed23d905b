//! `slim vuln` for a terminal: counts first, then each advisory with its
//! package, version, severity and fixed version; with a slim image, which
//! slimming removed and which remain (with the package's kept files).

use std::fmt::Write;

use crate::vuln::{Finding, VulnReport};

/// A readable vulnerability report.
pub fn render_vuln(r: &VulnReport) -> String {
    let mut o = String::new();
    match &r.slim {
        None => {
            let _ = writeln!(o, "Advisories  {}", r.original.len());
            list(&mut o, &r.original);
        }
        Some(slim) => {
            let _ = writeln!(
                o,
                "Advisories  {} -> {}  ({} removed by slimming, {} remaining)",
                r.original.len(),
                slim.len(),
                r.removed.len(),
                r.remaining.len()
            );
            if !r.removed.is_empty() {
                let _ = writeln!(o, "\nRemoved (the package is gone)");
                list(&mut o, &r.removed);
            }
            if !r.remaining.is_empty() {
                let _ = writeln!(o, "\nRemaining");
                list(&mut o, &r.remaining);
            }
        }
    }
    if !r.unordered.is_empty() {
        let _ = writeln!(
            o,
            "\nNot matched (versions this ecosystem's rules here cannot order):"
        );
        for u in &r.unordered {
            let _ = writeln!(o, "  {u}");
        }
    }
    o
}

fn list(o: &mut String, f: &[Finding]) {
    for x in f {
        let fixed = x
            .fixed
            .as_deref()
            .map(|v| format!(", fixed in {v}"))
            .unwrap_or_default();
        let sev = x
            .severity
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let kept = x
            .kept_files
            .map(|(k, t)| format!(", {k}/{t} files kept"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<18} {} {} {}{fixed}{kept}{sev}",
            x.id,
            x.ecosystem.name(),
            x.package,
            x.version
        );
    }
}
