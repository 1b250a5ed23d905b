//! State the app owns: which directories of the image must come along, whole
//! or as bare directories, because the app writes into them.
//!
//! Nothing the app wrote while probed ever reaches the slim image: it is
//! made from the original image's layers, never from the container, so rows
//! a probe inserted, dumps, caches, logs and pid files stay behind. What
//! must come along is where that state lives, as the image had it:
//!
//! 1. **State roots.** A write (an open for writing or creating, a Unix
//!    socket bound) names a file; its directory is the deepest directory the
//!    image has on the way to it (symlinks followed). From there the root
//!    climbs to the parent while the parent has the same non-root owner,
//!    never into a *stop* directory (`/`, `/etc`, `/var`, `/var/lib`,
//!    `/home`, the system code trees, ...) and never into a directory that
//!    is or holds the WORKDIR, an app source tree or a language package
//!    directory. The root is kept whole, with owner, group and mode: a
//!    seeded database cluster is state, and the next query needs files the
//!    probe never touched (writes in `/var/lib/postgresql/15/main/base/5`
//!    keep `/var/lib/postgresql`; a root-owned directory is its own root).
//!    A written directory that is itself a stop directory, or holds a
//!    language package directory (a virtualenv, `node_modules`), is no state
//!    root: what was used of it is kept file by file.
//! 2. **Scratch directories.** Writes below `/tmp`, `/var/tmp`, `/run` (and
//!    `/var/run`) are runtime files: the written directory (again the
//!    deepest one the image has) is kept as a bare directory with its owner
//!    and mode, without its contents. A server's socket directory such as
//!    `/run/postgresql` is such a directory: without it the server cannot
//!    create its lock file.
//! 3. **VOLUME directories** are kept whole, with owner, mode and contents:
//!    the engine copies them into a fresh volume when the container starts,
//!    and re-creates a missing one owned by root, which a server running as
//!    its own user cannot write.
//!
//! `__pycache__` writes are bytecode caches, not state. State roots are
//! about data, not code coverage, so they apply under both granularities.

use std::collections::BTreeMap;

use crate::image::path::{ancestors, parent};
use crate::image::{ImageFs, ResolveOptions};
use crate::resolve::packages::is_below;

/// Never a state root, and never climbed into: system directories whose
/// whole contents no single app owns.
const STOP_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/sbin",
    "/srv",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/spool",
];

/// Directories whose writes are scratch: kept as bare directories.
pub const SCRATCH_DIRS: &[&str] = &["/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm"];

/// One write the app made.
#[derive(Clone, Debug)]
pub struct Write {
    /// The path as the app named it (absolute, symlinks not followed).
    pub named: String,
    /// Where it leads in the image, when the file was already there.
    pub resolved: Option<String>,
}

/// What [`plan`] needs.
pub struct StateInput<'a> {
    pub fs: &'a ImageFs,
    /// Writes in the order the app made them.
    pub writes: &'a [Write],
    /// The image's VOLUME directories.
    pub volumes: &'a [String],
    /// Directories of app code (WORKDIR, app source trees, language package
    /// directories): a root never climbs into them or above them.
    pub code_dirs: &'a [String],
    /// Language package directories (site directories, `node_modules`, gem
    /// homes, JDKs): a written directory holding one is no state root.
    pub package_dirs: &'a [String],
}

/// Why a state root is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateCause {
    /// The first write below it (the path as the app named it).
    Written(String),
    /// A VOLUME of the image.
    Volume,
}

/// A directory kept whole as state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRoot {
    /// Image path (symlinks resolved).
    pub root: String,
    pub cause: StateCause,
}

/// What to keep for the app's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatePlan {
    /// Directories kept whole, outermost first, none below another.
    pub roots: Vec<StateRoot>,
    /// Scratch directories kept bare, with the first write into each.
    pub scratch: BTreeMap<String, String>,
}

/// Applies the rules of the module docs.
pub fn plan(input: &StateInput<'_>) -> StatePlan {
    let fs = input.fs;
    let mut out = StatePlan::default();
    let mut roots: BTreeMap<String, StateCause> = BTreeMap::new();
    for vol in input.volumes {
        if let Ok(r) = fs.resolve(vol, ResolveOptions::default())
            && r.exists
            && fs.get(&r.path).is_some_and(|e| e.is_dir())
        {
            roots.entry(r.path).or_insert(StateCause::Volume);
        }
    }
    for w in input.writes {
        if is_bytecode_cache(&w.named) {
            continue;
        }
        let Some(dir) = written_dir(fs, w) else {
            continue;
        };
        if is_bytecode_cache(&dir) {
            continue;
        }
        if in_scratch(&dir) {
            out.scratch.entry(dir).or_insert_with(|| w.named.clone());
            continue;
        }
        if let Some(root) = state_root(fs, &dir, input) {
            roots
                .entry(root)
                .or_insert_with(|| StateCause::Written(w.named.clone()));
        }
    }
    // A root inside another one is part of it.
    let all: Vec<String> = roots.keys().cloned().collect();
    for (root, cause) in roots {
        if !all.iter().any(|o| is_below(&root, o)) {
            out.roots.push(StateRoot { root, cause });
        }
    }
    out
}

/// The deepest directory the image has on the way to the written file
/// (symlinks followed).
fn written_dir(fs: &ImageFs, w: &Write) -> Option<String> {
    if let Some(r) = &w.resolved {
        return Some(parent(r).to_string());
    }
    let named_dir = parent(&w.named);
    let mut candidates: Vec<&str> = ancestors(named_dir).collect();
    candidates.push(named_dir);
    for &d in candidates.iter().rev() {
        match fs.resolve(d, ResolveOptions::default()) {
            Ok(r) if r.exists && fs.get(&r.path).is_some_and(|e| e.is_dir()) => {
                return Some(r.path);
            }
            _ => {}
        }
    }
    None
}

/// A path in a `__pycache__` directory, or that directory.
fn is_bytecode_cache(path: &str) -> bool {
    path.split('/').any(|c| c == "__pycache__")
}

fn in_scratch(dir: &str) -> bool {
    SCRATCH_DIRS.iter().any(|s| dir == *s || is_below(dir, s))
}

/// Whether `dir` is, or holds, one of `dirs`.
fn holds(dir: &str, dirs: &[String]) -> bool {
    dirs.iter().any(|c| c == dir || is_below(c, dir))
}

/// Rule 1 of the module docs, from one written directory.
fn state_root(fs: &ImageFs, dir: &str, input: &StateInput<'_>) -> Option<String> {
    if STOP_DIRS.contains(&dir) || holds(dir, input.package_dirs) {
        return None;
    }
    let owner = fs.get(dir)?.uid;
    let mut root = dir.to_string();
    if owner == 0 {
        return Some(root);
    }
    loop {
        let up = parent(&root);
        if STOP_DIRS.contains(&up) || holds(up, input.code_dirs) {
            break;
        }
        match fs.get(up) {
            Some(e) if e.is_dir() && e.uid == owner => root = up.to_string(),
            _ => break,
        }
    }
    Some(root)
}
