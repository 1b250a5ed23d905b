//! The vulnerability delta: an image's packages matched against an offline
//! OSV database ([`osv`]), with version ranges evaluated by each
//! ecosystem's own ordering ([`matching`]); for a slim image, which
//! advisories slimming removed (the package is gone) and which remain.
//!
//! Debian advisories name source packages, so a Debian package is looked up
//! by its source name too. Pure: inventories and a database in, a report
//! out; no daemon, engine or tracer.

pub mod matching;
pub mod osv;
pub mod scanner;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::inventory::{Ecosystem, Inventory, InventoryPackage};
use matching::Verdict;
use osv::Database;

/// One advisory that applies to one installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The record's severity (a database's label such as HIGH, or a CVSS
    /// vector), when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub ecosystem: Ecosystem,
    pub package: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// In the slim image: its files kept, of the original's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_files: Option<(usize, usize)>,
}

impl Finding {
    fn key(&self) -> (String, Ecosystem, String) {
        (self.id.clone(), self.ecosystem, self.package.clone())
    }
}

/// Advisories of an image, and for a slim one the delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnReport {
    pub original: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slim: Option<Vec<Finding>>,
    /// In the original, gone from the slim image with their package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Finding>,
    /// In both (with the slim image's kept/total files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<Finding>,
    /// Packages whose versions the ecosystem's rules here cannot order
    /// against an advisory's range (not counted as affected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unordered: Vec<String>,
}

/// Matches one inventory.
pub fn findings(inv: &Inventory, db: &Database, unordered: &mut Vec<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &inv.packages {
        let mut names = vec![p.name.as_str()];
        if let Some(s) = p.source.as_deref().filter(|s| *s != p.name) {
            names.push(s);
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            for &(ri, ai) in db.candidates(p.ecosystem, name) {
                let r = &db.records[ri];
                if !seen.insert(ri) {
                    continue;
                }
                match matching::check(p.ecosystem, &p.version, &r.affected[ai]) {
                    Verdict::Affected { fixed } => out.push(finding(r, p, fixed)),
                    Verdict::NotAffected => {}
                    Verdict::Unordered => unordered.push(format!(
                        "{} {} {} ({})",
                        p.ecosystem, p.name, p.version, r.id
                    )),
                }
            }
        }
    }
    out.sort_by_key(Finding::key);
    out.dedup_by_key(|f| f.key());
    out
}

fn finding(r: &osv::Record, p: &InventoryPackage, fixed: Option<String>) -> Finding {
    let severity = r
        .database_specific
        .as_ref()
        .and_then(|d| d["severity"].as_str())
        .map(str::to_string)
        .or_else(|| r.severity.first().map(|s| s.score.clone()));
    Finding {
        id: r.id.clone(),
        aliases: r.aliases.clone(),
        summary: r.summary.clone(),
        severity,
        ecosystem: p.ecosystem,
        package: p.name.clone(),
        version: p.version.clone(),
        fixed,
        kept_files: None,
    }
}

impl VulnReport {
    /// Advisories of one image.
    pub fn of_image(inv: &Inventory, db: &Database) -> VulnReport {
        let mut unordered = Vec::new();
        let original = findings(inv, db, &mut unordered);
        VulnReport {
            original,
            unordered,
            ..Default::default()
        }
    }

    /// Advisories of an original and of its slim image (whose inventory is
    /// what its trimmed databases list), with the delta.
    pub fn delta(original: &Inventory, slim: &Inventory, db: &Database) -> VulnReport {
        let mut unordered = Vec::new();
        let orig = findings(original, db, &mut unordered);
        let mut slim_f = findings(slim, db, &mut unordered);
        let by_key = original.by_key();
        for f in &mut slim_f {
            if let Some(sp) = slim
                .packages
                .iter()
                .find(|p| p.name == f.package && p.ecosystem == f.ecosystem)
            {
                let total = by_key
                    .get(&sp.key())
                    .map(|o| o.files.len())
                    .unwrap_or(sp.files.len());
                f.kept_files = Some((sp.files.len(), total));
            }
        }
        let slim_keys: std::collections::BTreeSet<_> = slim_f.iter().map(Finding::key).collect();
        let removed = orig
            .iter()
            .filter(|f| !slim_keys.contains(&f.key()))
            .cloned()
            .collect();
        let remaining = slim_f.clone();
        unordered.sort();
        unordered.dedup();
        VulnReport {
            original: orig,
            slim: Some(slim_f),
            removed,
            remaining,
            unordered,
        }
    }
}
