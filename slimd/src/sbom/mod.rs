//! Software bills of materials of an image, from its [`Inventory`]:
//! SPDX 2.3 JSON ([`spdx`]) and CycloneDX 1.5 JSON ([`cyclonedx`]), each
//! package with its purl, version, licenses where the metadata has them,
//! and its files with their hashes. For a slim image made from an
//! original, the packages are those of the original that still have files
//! in the slim image, with how many of their files were kept.
//!
//! Pure: an [`ImageFs`] and an inventory in, JSON out; usable on archives
//! without a daemon.

pub mod cyclonedx;
pub mod spdx;

#[cfg(test)]
mod tests;

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::image::{EntryKind, ImageFs};
use crate::inventory::{Inventory, InventoryPackage};

/// The SBOM formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    #[value(name = "spdx-json")]
    #[serde(rename = "spdx-json")]
    SpdxJson,
    /// CycloneDX 1.5, JSON.
    #[value(name = "cyclonedx-json")]
    #[serde(rename = "cyclonedx-json")]
    CycloneDxJson,
}

impl SbomFormat {
    /// The file suffix `slim build` writes it with.
    pub fn suffix(self) -> &'static str {
        match self {
            SbomFormat::SpdxJson => "sbom.spdx.json",
            SbomFormat::CycloneDxJson => "sbom.cdx.json",
        }
    }
}

/// One file of a package as the SBOM lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomFile {
    pub path: String,
    /// Hex sha256 of a regular file's bytes; None for symlinks and others.
    pub sha256: Option<String>,
    /// Hex sha1 (SPDX 2.3 requires it for every file).
    pub sha1: Option<String>,
}

/// One package as the SBOM lists it.
#[derive(Debug, Clone)]
pub struct SbomPackage<'a> {
    pub package: &'a InventoryPackage,
    /// Its files present in the image described.
    pub files: Vec<SbomFile>,
    /// Its files in the original image (for a slim image), or in this one.
    pub total_files: usize,
}

/// What an SBOM describes.
#[derive(Debug, Clone)]
pub struct Sbom<'a> {
    /// The image as the user named it.
    pub image: String,
    /// Its config digest.
    pub image_id: String,
    /// Made from an original by slimd: files counts are kept/total.
    pub slim_of: Option<String>,
    pub packages: Vec<SbomPackage<'a>>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl<'a> Sbom<'a> {
    /// The SBOM of an image from its own inventory.
    pub fn of_image(image: &str, image_id: &str, fs: &ImageFs, inv: &'a Inventory) -> Sbom<'a> {
        let packages = inv
            .packages
            .iter()
            .map(|p| SbomPackage {
                package: p,
                files: files_of(fs, p.files.iter().map(String::as_str)),
                total_files: p.files.len(),
            })
            .collect();
        Sbom {
            image: image.to_string(),
            image_id: image_id.to_string(),
            slim_of: None,
            packages,
            created: now(),
        }
    }

    /// The SBOM of a slim image: the original's packages that still have
    /// files in it (`kept` says which paths it has; the bytes are the
    /// original's), each with the files kept.
    pub fn of_slim(
        image: &str,
        image_id: &str,
        original: &str,
        original_fs: &ImageFs,
        original_inv: &'a Inventory,
        kept: &dyn Fn(&str) -> bool,
    ) -> Sbom<'a> {
        let packages = original_inv
            .packages
            .iter()
            .filter_map(|p| {
                let files: Vec<&str> = p
                    .files
                    .iter()
                    .map(String::as_str)
                    .filter(|f| kept(f))
                    .collect();
                (!files.is_empty()).then(|| SbomPackage {
                    package: p,
                    files: files_of(original_fs, files.into_iter()),
                    total_files: p.files.len(),
                })
            })
            .collect();
        Sbom {
            image: image.to_string(),
            image_id: image_id.to_string(),
            slim_of: Some(original.to_string()),
            packages,
            created: now(),
        }
    }

    /// Packages listed.
    pub fn package_count(&self) -> usize {
        self.packages.len()
    }

    /// The document in `format`.
    pub fn render(&self, format: SbomFormat) -> serde_json::Value {
        match format {
            SbomFormat::SpdxJson => spdx::document(self),
            SbomFormat::CycloneDxJson => cyclonedx::document(self),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Paths with their hashes; sha1 is computed here from the file's bytes
/// (the image library keeps only sha256).
fn files_of<'p>(fs: &ImageFs, paths: impl Iterator<Item = &'p str>) -> Vec<SbomFile> {
    paths
        .map(|p| {
            let (sha256, sha1) = match fs.get(p).map(|e| &e.kind) {
                Some(EntryKind::File(d)) => (Some(hex::encode(d.sha256)), sha1_of(fs, p)),
                _ => (None, None),
            };
            SbomFile {
                path: crate::image::name::shown(p).into_owned(),
                sha256,
                sha1,
            }
        })
        .collect()
}

fn sha1_of(fs: &ImageFs, path: &str) -> Option<String> {
    let mut r = fs.open_entry(path).ok()?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(hex::encode(h.finalize()))
}

/// A stable identifier made of hex digits from some text (for document
/// namespaces and serial numbers).
fn digest_hex(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        sha2::Digest::update(&mut h, p.as_bytes());
        sha2::Digest::update(&mut h, [0u8]);
    }
    hex::encode(sha2::Digest::finalize(h))
}
