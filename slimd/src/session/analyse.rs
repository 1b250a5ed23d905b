//! From what a session saw to what the slim image keeps: export the image,
//! replay the events against it, build the keep set, fill the report, and
//! write the hardening profiles and the saved profile (so `slim build
//! --from-profile` can build later without running the app again).

use std::{collections::BTreeSet, path::Path, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{artifacts::Hardening, error::SessionError, write_json};
use crate::{
    engine::Engine,
    image::{EntryKind, Image, PackageDb, ResolveOptions},
    report::{
        KeptFile, Report, Sizes,
        tree::{Fate, FileFate, NODE_BUDGET, SizeTree},
    },
    resolve::KeepReason,
    resolve::options::KeepOptions,
    resolve::{KeepInput, KeepSet, Observations, ProcessModel},
    tracer::TraceEvent,
};

/// What a session saw, saved next to its report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedProfile {
    pub image: String,
    pub image_id: String,
    pub workdir: Option<String>,
    pub syscalls: BTreeSet<u32>,
    pub observations: Observations,
}

/// File name of the saved profile in a session directory.
pub const PROFILE_FILE: &str = "profile.json";

/// What the app did: raw events, or observations saved by an earlier session.
pub enum Seen {
    Events(Vec<TraceEvent>),
    Saved(Observations),
}

/// The image read back, what to keep of it, and the hardening profiles.
pub struct Analysis {
    pub image: Arc<Image>,
    pub keep: KeepSet,
    pub hardening: Hardening,
}

/// See the module docs. `dir` is the session directory, `scratch` where
/// the exported layers are spooled.
#[allow(clippy::too_many_arguments)]
pub async fn analyse(
    engine: &Engine,
    dir: &Path,
    scratch: &Path,
    image_ref: &str,
    image_id: &str,
    seen: Seen,
    syscalls: &BTreeSet<u32>,
    keep_opts: &KeepOptions,
    workdir_override: Option<String>,
    report: &mut Report,
) -> Result<Analysis, SessionError> {
    let image = Arc::new(
        super::export_image(engine, image_id, scratch)
            .await
            .map_err(SessionError::Export)?,
    );
    let workdir = workdir_override.or_else(|| image.config.config.working_dir.clone());
    let obs = match seen {
        Seen::Saved(o) => o,
        Seen::Events(events) => {
            let image = image.clone();
            tokio::task::spawn_blocking(move || observe(&image, &events)).await?
        }
    };
    report.execs = obs.execs.clone();
    report.set_network(&obs.network);
    report.unresolved = obs.unresolved.clone();
    let (keep, obs) = {
        let image = image.clone();
        let opts = keep_opts.clone();
        let wd = workdir.clone();
        tokio::task::spawn_blocking(move || {
            KeepSet::build(&KeepInput {
                image: &image,
                observations: &obs,
                options: &opts,
                workdir: wd.as_deref(),
            })
            .map(|k| (k, obs))
        })
        .await?
        .map_err(SessionError::KeepFlag)?
    };
    fill_keep_report(report, &image, &keep);
    let hardening = super::artifacts::write(dir, image_ref, syscalls, &obs, Some(&keep));
    report.artifacts = hardening.files.clone();
    report.seccomp = hardening.seccomp.clone();
    report.network = Some(hardening.network.clone());
    let saved = SavedProfile {
        image: image_ref.to_string(),
        image_id: image_id.to_string(),
        workdir,
        syscalls: syscalls.clone(),
        observations: obs,
    };
    if let Err(e) = write_json(&dir.join(PROFILE_FILE), &saved) {
        tracing::warn!("cannot save the profile: {e}");
    }
    Ok(Analysis {
        image,
        keep,
        hardening,
    })
}

/// Reads a finished session's saved profile.
pub fn load_profile(dir: &Path) -> Result<SavedProfile, SessionError> {
    let path = dir.join(PROFILE_FILE);
    let bytes = std::fs::read(&path).map_err(|source| SessionError::NoProfile {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| SessionError::BadProfile { path, source })
}

/// Replays the events with the image at hand (so a chdir through a symlink
/// lands where the kernel went).
fn observe(image: &Arc<Image>, events: &[TraceEvent]) -> Observations {
    let img = image.clone();
    let mut model = ProcessModel::with_canonicalizer(move |dir| {
        img.fs
            .resolve(dir, ResolveOptions::default())
            .map(|r| r.path)
            .unwrap_or_else(|_| crate::image::path::normalize(dir))
    });
    for e in events {
        model.feed(e);
    }
    model.finish()
}

fn fill_keep_report(report: &mut Report, image: &Image, keep: &KeepSet) {
    let fs = &image.fs;
    let mut kept = Vec::with_capacity(keep.len());
    let mut slim_files = 0u64;
    let mut kept_bytes = 0u64;
    for (path, reasons) in keep.entries() {
        let (kind, size) = match fs.get(path) {
            Some(e) => {
                let kind = match &e.kind {
                    EntryKind::File(_) => "file",
                    EntryKind::Dir => "dir",
                    EntryKind::Symlink { .. } => "symlink",
                    _ => "special",
                };
                (kind, e.size())
            }
            None => ("missing", 0),
        };
        if kind == "file" {
            slim_files += 1;
            kept_bytes += size;
        }
        kept.push(KeptFile {
            path: path.clone(),
            kind,
            size,
            reasons: reasons.clone(),
        });
    }
    let (orig_files, orig_bytes) = fs.iter().fold((0u64, 0u64), |(n, b), (_, e)| {
        if e.is_file() {
            (n + 1, b + e.size())
        } else {
            (n, b)
        }
    });
    report.kept = kept;
    report.created = keep.synthetic().iter().map(|s| s.path.clone()).collect();
    report.not_in_image = keep.not_in_image.iter().cloned().collect();
    report.problems = keep.problems.clone();
    report.excluded = keep.excluded.clone();
    report.state_roots = keep.state_roots.clone();
    report.content_roots = keep.content_roots.clone();
    report.set_coverage(keep.coverage.clone());
    let tree = size_tree(image, keep);
    report.sizes = Some(Sizes {
        original_bytes: orig_bytes,
        original_files: orig_files,
        slim_bytes: kept_bytes,
        slim_files,
        removed_files: orig_files.saturating_sub(slim_files),
        removed_bytes: orig_bytes.saturating_sub(kept_bytes),
        reduction_percent: if orig_bytes > 0 {
            100.0 * (1.0 - kept_bytes as f64 / orig_bytes as f64)
        } else {
            0.0
        },
        original_file_bytes: tree.root.bytes(),
        slim_file_bytes: tree.root.used + tree.root.rule,
    });
    report.tree = Some(tree);
}

/// The original's regular files by directory and OS package, each marked
/// used, kept by a rule, or dropped.
fn size_tree(image: &Image, keep: &KeepSet) -> SizeTree {
    let fs = &image.fs;
    let packages = PackageDb::read(fs).unwrap_or_default();
    let entries = keep.entries();
    // Hardlinks share their bytes: counted once, like xray's visible bytes.
    let mut groups = std::collections::HashSet::new();
    let files = fs.iter().filter(|(_, e)| e.is_file()).map(|(path, e)| {
        let first = e.link_group.is_none_or(|g| groups.insert(g));
        let fate = match entries.get(path) {
            None => Fate::Dropped,
            Some(reasons) if reasons.iter().any(KeepReason::is_traced) => Fate::Used,
            Some(_) => Fate::Rule,
        };
        FileFate {
            path,
            size: if first { e.size() } else { 0 },
            fate,
            package: packages.owner_of(path).map(|p| p.name.as_str()),
        }
    });
    SizeTree::build(files, NODE_BUDGET)
}
