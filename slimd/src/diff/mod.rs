//! `slim diff`: what differs between two images. Files added, removed and
//! changed (content hash, mode, owner, link target, type) with totals per
//! top-level directory ([`files`]), packages added, removed, up- and
//! downgraded in every ecosystem the [`crate::inventory`] reads
//! ([`packages`]), config changes ([`config`]), and the two layer stacks
//! with their history.
//!
//! Pure functions over two read [`Image`]s: usable on archives without a
//! daemon; imports no session, engine or tracer. The images' layer bytes
//! stay in their spool files: only paths, metadata and sha256s are compared.

pub mod config;
pub mod files;
pub mod packages;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::image::Image;
use crate::inventory::Inventory;

pub use config::{ConfigChange, config_changes};
pub use files::{Aspect, Change, FileChange, FileDiff, Totals};
pub use packages::{PackageChange, PackageChangeKind, PackageDiff};

/// One side of a diff, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideInfo {
    /// The image name or archive path given.
    pub name: String,
    /// The config digest (image id).
    pub id: String,
    /// Bytes of regular files in the flattened filesystem.
    pub size: u64,
    pub layers: Vec<LayerRow>,
}

/// One layer and the history entry that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRow {
    pub diff_id: String,
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// How the two layer stacks relate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDiff {
    /// Layers the two stacks share from the bottom (same diff_id).
    pub shared_base: usize,
    /// Whether the stacks are identical.
    pub same: bool,
    /// History lines (`created_by`, empty layers included) only A has,
    /// then only B has, beyond the shared ones.
    pub history_a: Vec<String>,
    pub history_b: Vec<String>,
}

/// Everything that differs between image A and image B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDiff {
    pub a: SideInfo,
    pub b: SideInfo,
    /// True when nothing differs: files, packages, config and layers.
    pub same: bool,
    pub files: FileDiff,
    pub packages: PackageDiff,
    pub config: Vec<ConfigChange>,
    pub layers: LayerDiff,
}

impl ImageDiff {
    /// Compares two images; `name_a`/`name_b` are how the user named them.
    pub fn compute(a: &Image, name_a: &str, b: &Image, name_b: &str) -> ImageDiff {
        let inv_a = Inventory::read(&a.fs);
        let inv_b = Inventory::read(&b.fs);
        Self::compute_with(a, name_a, &inv_a, b, name_b, &inv_b)
    }

    /// [`ImageDiff::compute`] with inventories already read.
    pub fn compute_with(
        a: &Image,
        name_a: &str,
        inv_a: &Inventory,
        b: &Image,
        name_b: &str,
        inv_b: &Inventory,
    ) -> ImageDiff {
        let files = FileDiff::compute(&a.fs, &b.fs);
        let packages = PackageDiff::compute(inv_a, inv_b);
        let config = config_changes(&a.config, &b.config);
        let layers = layer_diff(a, b);
        let same =
            files.is_same() && packages.changes.is_empty() && config.is_empty() && layers.same;
        ImageDiff {
            a: side(a, name_a, &files, true),
            b: side(b, name_b, &files, false),
            same,
            files,
            packages,
            config,
            layers,
        }
    }
}

impl ImageDiff {
    /// Turns every path and value taken from the images into the form
    /// people read (a byte that is not UTF-8 as `\xNN`, see
    /// [`crate::image::name`]), once, before the diff is shown or written.
    pub fn show_names(&mut self) {
        use crate::image::name::show_in_place as show;
        for c in &mut self.files.changes {
            show(&mut c.path);
            for a in &mut c.aspects {
                if let Aspect::Link { a, b } = a {
                    show(a);
                    show(b);
                }
            }
        }
        for c in &mut self.packages.changes {
            show(&mut c.location);
        }
    }

    /// The exit status of `slim diff`, like diff(1): 0 same, 1 different.
    pub fn exit_code(&self) -> u8 {
        if self.same { 0 } else { 1 }
    }
}

fn side(img: &Image, name: &str, files: &FileDiff, is_a: bool) -> SideInfo {
    SideInfo {
        name: name.to_string(),
        id: img.config_digest.clone(),
        size: if is_a {
            files.totals.bytes_a
        } else {
            files.totals.bytes_b
        },
        layers: img
            .layers
            .iter()
            .map(|l| LayerRow {
                diff_id: l.diff_id.clone(),
                size: l.size,
                created_by: l.history.as_ref().and_then(|h| h.created_by.clone()),
            })
            .collect(),
    }
}

fn layer_diff(a: &Image, b: &Image) -> LayerDiff {
    let shared_base = a
        .layers
        .iter()
        .zip(&b.layers)
        .take_while(|(x, y)| x.diff_id == y.diff_id)
        .count();
    let same = shared_base == a.layers.len() && shared_base == b.layers.len();
    let lines = |img: &Image| -> Vec<String> {
        img.config
            .history
            .iter()
            .map(|h| h.created_by.clone().unwrap_or_default())
            .collect()
    };
    let (ha, hb) = (lines(a), lines(b));
    let common = ha.iter().zip(&hb).take_while(|(x, y)| x == y).count();
    LayerDiff {
        shared_base,
        same,
        history_a: ha[common..].to_vec(),
        history_b: hb[common..].to_vec(),
    }
}
