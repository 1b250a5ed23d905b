//! Whether a package version is affected by an OSV `affected` entry: the
//! explicit `versions` list, then each `ECOSYSTEM`/`SEMVER` range evaluated
//! as the OSV schema says (events in version order; affected from an
//! `introduced` until a `fixed` (exclusive) or through a `last_affected`
//! (inclusive)), ordered by the ecosystem's own rules
//! ([`crate::inventory::version`]). A range the ecosystem cannot order is
//! not guessed at: it does not match, and [`Verdict::Unordered`] says so.

use std::cmp::Ordering;

use super::osv::{Affected, Event};
use crate::inventory::{Ecosystem, version};

/// The outcome for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Affected; the first fixed version after it, when the range has one.
    Affected {
        fixed: Option<String>,
    },
    NotAffected,
    /// A range exists but the versions cannot be ordered here.
    Unordered,
}

/// Evaluates `affected` for `ver` of `eco`.
pub fn check(eco: Ecosystem, ver: &str, affected: &Affected) -> Verdict {
    if affected.versions.iter().any(|v| v == ver) {
        return Verdict::Affected {
            fixed: first_fixed(eco, ver, affected),
        };
    }
    let mut unordered = false;
    for r in &affected.ranges {
        if r.kind != "ECOSYSTEM" && r.kind != "SEMVER" {
            continue;
        }
        match in_range(eco, ver, &r.events) {
            Some(true) => {
                return Verdict::Affected {
                    fixed: first_fixed(eco, ver, affected),
                };
            }
            Some(false) => {}
            None => unordered = true,
        }
    }
    if unordered {
        Verdict::Unordered
    } else {
        Verdict::NotAffected
    }
}

fn cmp(eco: Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    // "0" in `introduced` means every version.
    if b == "0" {
        return Some(Ordering::Greater);
    }
    version::compare(eco, a, b)
}

/// Walks the events in version order, as the OSV schema's evaluation
/// algorithm does. `None` when some version cannot be ordered.
fn in_range(eco: Ecosystem, ver: &str, events: &[Event]) -> Option<bool> {
    // Sort events by their version ("0" first).
    let mut evs: Vec<(&str, u8)> = Vec::new();
    for e in events {
        if let Some(v) = &e.introduced {
            evs.push((v, 0));
        }
        if let Some(v) = &e.fixed {
            evs.push((v, 1));
        }
        if let Some(v) = &e.last_affected {
            evs.push((v, 2));
        }
        if let Some(v) = &e.limit {
            evs.push((v, 3));
        }
    }
    let mut failed = false;
    evs.sort_by(|a, b| {
        if a.0 == b.0 {
            return Ordering::Equal;
        }
        if a.0 == "0" {
            return Ordering::Less;
        }
        if b.0 == "0" {
            return Ordering::Greater;
        }
        version::compare(eco, a.0, b.0).unwrap_or_else(|| {
            failed = true;
            Ordering::Equal
        })
    });
    if failed {
        return None;
    }
    let mut affected = false;
    for (v, kind) in evs {
        let o = cmp(eco, ver, v)?;
        match kind {
            0 if o != Ordering::Less => affected = true,
            1 if o != Ordering::Less => affected = false,
            2 if o == Ordering::Greater => affected = false,
            3 if o != Ordering::Less => affected = false,
            _ => {}
        }
    }
    Some(affected)
}

/// The lowest `fixed` above `ver` among the ranges.
fn first_fixed(eco: Ecosystem, ver: &str, a: &Affected) -> Option<String> {
    let mut best: Option<&str> = None;
    for e in a.ranges.iter().flat_map(|r| &r.events) {
        let Some(f) = e.fixed.as_deref() else {
            continue;
        };
        if version::compare(eco, f, ver) != Some(Ordering::Greater) {
            continue;
        }
        if best.is_none_or(|b| version::compare(eco, f, b) == Some(Ordering::Less)) {
            best = Some(f);
        }
    }
    best.map(str::to_string)
}
