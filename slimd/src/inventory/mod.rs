//! What software an image holds, one list across every package manager the
//! image library and the package resolver read: dpkg and apk databases
//! ([`crate::image::PackageDb`]) and the language packages of
//! [`crate::resolve::packages`] (Python distributions, Node packages, gems,
//! jars). Each package carries its ecosystem, name, version, package URL and
//! files, the common ground of `slim diff`, the SBOMs and the vulnerability
//! match.
//!
//! Pure: reads an [`ImageFs`], never the daemon, the engine or the tracer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{ImageFs, PackageDb, PackageManager, ResolveOptions};
use crate::resolve::options::Ecosystem as UnitEcosystem;
use crate::resolve::packages::Catalog;

pub mod license;
mod purl;
pub mod trim;
pub mod version;

pub use purl::purl;

/// The ecosystem a package comes from, named as OSV names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    Debian,
    Alpine,
    PyPI,
    #[serde(rename = "npm")]
    Npm,
    RubyGems,
    Maven,
}

impl Ecosystem {
    /// OSV's name ("Debian", "PyPI", "npm", ...).
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::RubyGems => "RubyGems",
            Ecosystem::Maven => "Maven",
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One installed package of any ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPackage {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// Empty when the metadata has none.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Source package (dpkg) or origin (apk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where a language package is installed: its site directory, its
    /// package directory in `node_modules`, its gem home, its jar's
    /// directory; "" for OS packages.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Package URL (purl).
    pub purl: String,
    /// Files (no directories) the package installed that the image has.
    pub files: Vec<String>,
    /// Every non-directory path its metadata lists (present or not).
    pub listed_files: usize,
    /// License names as the metadata gives them (empty when unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
}

impl InventoryPackage {
    /// What identifies a package across two images: ecosystem, name, arch
    /// and, for language packages, where it is installed (two virtualenvs
    /// may hold the same distribution).
    pub fn key(&self) -> (Ecosystem, String, String, String) {
        (
            self.ecosystem,
            self.name.clone(),
            self.arch.clone().unwrap_or_default(),
            self.location.clone(),
        )
    }
}

/// Every package of an image, sorted by ecosystem, name and location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub packages: Vec<InventoryPackage>,
    /// Which distribution the OS packages come from (`/etc/os-release` ID
    /// and VERSION_ID), for purls' `distro` qualifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
}

/// `/etc/os-release`'s ID and VERSION_ID (or VERSION_CODENAME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    pub id: String,
    pub version: String,
}

impl Inventory {
    /// Reads the package databases and language packages of an image.
    /// A database that cannot be read leaves its packages out; the image
    /// library already tolerates missing and broken metadata.
    pub fn read(fs: &ImageFs) -> Inventory {
        let distro = read_distro(fs);
        let mut packages = Vec::new();
        if let Ok(db) = PackageDb::read(fs) {
            for p in &db.packages {
                let ecosystem = match p.manager {
                    PackageManager::Dpkg => Ecosystem::Debian,
                    PackageManager::Apk => Ecosystem::Alpine,
                };
                let files = present_files(fs, p.files.iter().map(String::as_str));
                let listed = p
                    .files
                    .iter()
                    .filter(|f| !fs.get(f).is_some_and(|e| e.is_dir()))
                    .count();
                packages.push(InventoryPackage {
                    ecosystem,
                    name: p.name.clone(),
                    version: p.version.clone(),
                    arch: p.arch.clone(),
                    source: p.source.clone(),
                    location: String::new(),
                    purl: String::new(),
                    files,
                    listed_files: listed,
                    licenses: if ecosystem == Ecosystem::Debian {
                        license::debian(fs, &p.name)
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        let cat = Catalog::scan(fs);
        for u in &cat.units {
            let ecosystem = match u.ecosystem {
                UnitEcosystem::Python => Ecosystem::PyPI,
                UnitEcosystem::Node => Ecosystem::Npm,
                UnitEcosystem::Ruby => Ecosystem::RubyGems,
                UnitEcosystem::Java => Ecosystem::Maven,
                UnitEcosystem::App => continue,
            };
            let all = u.files.iter().chain(u.metadata.iter()).map(String::as_str);
            let files = present_files(fs, all);
            let listed = files.len();
            let metadata: Vec<String> = u.metadata.iter().cloned().collect();
            let licenses = match ecosystem {
                Ecosystem::PyPI => license::python(fs, &metadata),
                Ecosystem::Npm => license::node(fs, &metadata),
                _ => Vec::new(),
            };
            packages.push(InventoryPackage {
                ecosystem,
                name: u.name.clone(),
                version: u.version.clone().unwrap_or_default(),
                arch: None,
                source: None,
                location: u.home.clone(),
                purl: String::new(),
                files,
                listed_files: listed,
                licenses,
            });
        }
        for p in &mut packages {
            p.purl = purl(p, distro.as_ref());
        }
        packages.sort_by_key(InventoryPackage::key);
        Inventory { packages, distro }
    }

    /// Packages by [`InventoryPackage::key`].
    pub fn by_key(&self) -> BTreeMap<(Ecosystem, String, String, String), &InventoryPackage> {
        self.packages.iter().map(|p| (p.key(), p)).collect()
    }
}

/// Where a listed path is in the image: itself, or where symlinked parent
/// directories lead (dpkg lists `/bin/ls`, which is `/usr/bin/ls` on a
/// merged-/usr system). `None` when it is missing or a directory.
pub fn real_path(fs: &ImageFs, listed: &str) -> Option<String> {
    if let Some(e) = fs.get(listed) {
        return (!e.is_dir()).then(|| listed.to_string());
    }
    let r = fs.resolve(listed, ResolveOptions::no_follow()).ok()?;
    (r.exists && fs.get(&r.path).is_some_and(|e| !e.is_dir())).then_some(r.path)
}

/// The listed paths that are files, symlinks or other non-directories in
/// the image (at their real paths), sorted and without repeats.
fn present_files<'a>(fs: &ImageFs, listed: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = listed.filter_map(|f| real_path(fs, f)).collect();
    out.sort();
    out.dedup();
    out
}

fn read_distro(fs: &ImageFs) -> Option<Distro> {
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs.read(p, 64 << 10).ok())?;
    let text = String::from_utf8_lossy(&text);
    let field = |k: &str| {
        text.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })
    };
    let id = field("ID")?;
    let version = field("VERSION_ID")
        .or_else(|| field("VERSION_CODENAME"))
        .unwrap_or_default();
    Some(Distro { id, version })
}
