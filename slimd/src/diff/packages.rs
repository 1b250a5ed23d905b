//! Packages added, removed, upgraded and downgraded between two
//! inventories, ordered by each ecosystem's own version rules
//! ([`crate::inventory::version`]).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::inventory::{Ecosystem, Inventory, version};

/// What happened to a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageChangeKind {
    Added,
    Removed,
    Upgraded,
    Downgraded,
    /// Another version that the ecosystem's rules cannot order (or that
    /// does not parse under them).
    Changed,
}

/// One package that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    pub change: PackageChangeKind,
    pub ecosystem: Ecosystem,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_b: Option<String>,
}

/// The package half of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDiff {
    pub count_a: usize,
    pub count_b: usize,
    pub changes: Vec<PackageChange>,
}

impl PackageDiff {
    pub fn compute(a: &Inventory, b: &Inventory) -> PackageDiff {
        let ka = a.by_key();
        let kb = b.by_key();
        let mut changes = Vec::new();
        for (k, pa) in &ka {
            match kb.get(k) {
                None => changes.push(PackageChange {
                    change: PackageChangeKind::Removed,
                    ecosystem: pa.ecosystem,
                    name: pa.name.clone(),
                    arch: pa.arch.clone(),
                    location: pa.location.clone(),
                    version_a: Some(pa.version.clone()),
                    version_b: None,
                }),
                Some(pb) if pb.version != pa.version => {
                    let change = match version::compare(pa.ecosystem, &pa.version, &pb.version) {
                        Some(Ordering::Less) => PackageChangeKind::Upgraded,
                        Some(Ordering::Greater) => PackageChangeKind::Downgraded,
                        _ => PackageChangeKind::Changed,
                    };
                    changes.push(PackageChange {
                        change,
                        ecosystem: pa.ecosystem,
                        name: pa.name.clone(),
                        arch: pa.arch.clone(),
                        location: pa.location.clone(),
                        version_a: Some(pa.version.clone()),
                        version_b: Some(pb.version.clone()),
                    });
                }
                Some(_) => {}
            }
        }
        for (k, pb) in &kb {
            if !ka.contains_key(k) {
                changes.push(PackageChange {
                    change: PackageChangeKind::Added,
                    ecosystem: pb.ecosystem,
                    name: pb.name.clone(),
                    arch: pb.arch.clone(),
                    location: pb.location.clone(),
                    version_a: None,
                    version_b: Some(pb.version.clone()),
                });
            }
        }
        changes.sort_by(|x, y| {
            (x.ecosystem, &x.name, &x.location).cmp(&(y.ecosystem, &y.name, &y.location))
        });
        PackageDiff {
            count_a: a.packages.len(),
            count_b: b.packages.len(),
            changes,
        }
    }

    /// How many changes of one kind.
    pub fn count(&self, kind: PackageChangeKind) -> usize {
        self.changes.iter().filter(|c| c.change == kind).count()
    }
}
