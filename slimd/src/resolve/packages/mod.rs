//! Package-aware granularity: the language packages and app source trees an
//! image holds, which of them the app used, and what to keep so that the
//! code paths the probes never reached still work.
//!
//! The way a minified image usually breaks is not a missed event but a
//! request the probe never made: a module imported inside one handler, a
//! dependency required late. Operating-system files are right at file
//! granularity; language packages are not. A *unit* is what the `package`
//! granularity keeps whole:
//! - a Python distribution in a `site-packages`/`dist-packages` directory
//!   (virtualenvs included): its RECORD, or, where RECORD is missing (Debian
//!   strips it), its top-level modules; a module with no metadata is a unit
//!   of its own;
//! - a Node package in a `node_modules` directory (scoped ones too), minus
//!   its nested `node_modules` (those hold units of their own);
//! - a gem of a gem home: `gems/<name>-<version>/`, its compiled extensions
//!   and its spec;
//! - a jar; a JDK's runtime (`lib/`, `conf/`, `release`, `bin/java`): the JVM
//!   opens libraries and security files lazily, and `lib/modules` is one
//!   image of every class;
//! - the app's own source tree (see [`app`]).
//!
//! Rules, applied by [`plan`]:
//! 1. A unit is *used* when the app opened or executed one of its regular
//!    files that is not metadata (`*.dist-info`, `package.json`, a gemspec):
//!    import machinery and tools read metadata of packages they never load.
//! 2. Under `package` granularity a used unit is kept whole, with the
//!    packages it declares as dependencies (Requires-Dist without extras;
//!    `dependencies`, `optionalDependencies`, `peerDependencies` found the
//!    way Node's resolver finds them; gemspec runtime dependencies; a jar
//!    manifest's Class-Path), transitively. A dependency the image lacks is
//!    skipped: that is also how environment markers end up honoured.
//! 3. The app's source tree counts as used when the app used any file in
//!    it; its declared dependencies (`package.json`, `requirements.txt`,
//!    `pyproject.toml`, `Gemfile`) are followed like a package's.
//! 4. Everything else stays file by file: the OS, and the runtimes' own
//!    standard libraries (CPython's `lib/python3.X`, Ruby's stdlib), which
//!    are large and which the runtime loads module by module.
//!
//! 5. Content roots (see [`super::content`]): a tree the app reads files
//!    from by name, that no OS package owns and no unit holds, is kept whole
//!    too.
//!
//! `--granularity file` turns rules 2, 3 and 5 off; overrides choose per
//! path or per package (a path override applies to a content root at or
//! below it, and inside one, path by path). Whatever is kept, [`Coverage`]
//! says what the probes reached.

mod app;
mod ecosystems;
mod jar;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;

use super::content::{self, ContentInput, ContentRoot};
use super::process::ExecRecord;
use super::reason::KeepReason;
use crate::image::{ImageError, ImageFs, PackageDb, ResolveOptions};
use crate::resolve::options::{Ecosystem, Granularity, GranularityOverride, OverrideTarget};

/// Why package metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: ImageError,
    },
    #[error("{path}: not a readable zip archive ({why})")]
    Zip { path: String, why: &'static str },
}

/// A declared dependency, by ecosystem and name (for Java: the jar's path).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Dep {
    pub ecosystem: Ecosystem,
    pub name: String,
}

/// One thing kept whole under the `package` granularity.
#[derive(Clone, Debug)]
pub(crate) struct Unit {
    pub ecosystem: Ecosystem,
    /// As its metadata spells it ("Flask", "@scope/pkg", "rack").
    pub name: String,
    pub version: Option<String>,
    /// Main directory, or the file for a jar or a single-module unit.
    pub root: String,
    /// Where dependencies are looked up: the site directory, the gem home,
    /// the package directory (Node walks up from there).
    pub home: String,
    /// Paths that override paths match besides `root` (top-level modules,
    /// the metadata directory).
    pub anchors: Vec<String>,
    /// Content: files, directories, symlinks.
    pub files: BTreeSet<String>,
    /// Metadata: kept with the unit, but reading it is not a use.
    pub metadata: BTreeSet<String>,
    pub deps: Vec<Dep>,
    /// The file the dependencies were read from.
    pub declared_in: Option<String>,
    /// Dependencies still to be read (a jar's manifest, read when needed).
    pub lazy_jar_manifest: bool,
    /// Why an app tree is the app's (WORKDIR, a script's directory).
    pub why: Option<String>,
}

impl Unit {
    pub(crate) fn new(ecosystem: Ecosystem, name: &str, root: &str, home: &str) -> Self {
        Unit {
            ecosystem,
            name: name.to_string(),
            version: None,
            root: root.to_string(),
            home: home.to_string(),
            anchors: Vec::new(),
            files: BTreeSet::new(),
            metadata: BTreeSet::new(),
            deps: Vec::new(),
            declared_in: None,
            lazy_jar_manifest: false,
            why: None,
        }
    }

    /// "Flask 3.0.3", "rack 2.2.8".
    pub(crate) fn label(&self) -> String {
        match &self.version {
            Some(v) if !v.is_empty() => format!("{} {v}", self.name),
            _ => self.name.clone(),
        }
    }

    fn key(&self) -> String {
        name_key(self.ecosystem, &self.name)
    }
}

/// The name under which a package is looked up: PEP 503 for Python (case
/// and `-_.` runs do not matter), exact elsewhere.
pub(crate) fn name_key(eco: Ecosystem, name: &str) -> String {
    match eco {
        Ecosystem::Python => {
            let mut out = String::with_capacity(name.len());
            let mut sep = false;
            for c in name.trim().chars() {
                if matches!(c, '-' | '_' | '.') {
                    sep = true;
                } else {
                    if sep && !out.is_empty() {
                        out.push('-');
                    }
                    sep = false;
                    out.extend(c.to_lowercase());
                }
            }
            out
        }
        _ => name.trim().to_string(),
    }
}

/// Every unit of an image and who owns which path.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub units: Vec<Unit>,
    owner: HashMap<String, usize>,
    by_root: HashMap<String, usize>,
    by_key: HashMap<(Ecosystem, String), Vec<usize>>,
    /// Ecosystem directories found (site dirs, node_modules, gem homes,
    /// JDK homes, jar directories, app roots).
    pub roots: BTreeMap<Ecosystem, BTreeSet<String>>,
    /// Metadata that could not be read, and other things worth saying.
    pub notes: Vec<String>,
}

impl Catalog {
    /// Finds the language packages of an image (app trees are added by
    /// [`Catalog::push`] afterwards, once the packages own their paths).
    pub(crate) fn scan(fs: &ImageFs) -> Catalog {
        let mut cat = Catalog::default();
        ecosystems::scan(fs, &mut cat);
        cat
    }

    /// Registers a unit; a path already owned stays with its first owner.
    pub(crate) fn push(&mut self, unit: Unit) -> usize {
        let i = self.units.len();
        for p in unit.files.iter().chain(&unit.metadata) {
            self.owner.entry(p.clone()).or_insert(i);
        }
        self.by_root.entry(unit.root.clone()).or_insert(i);
        self.by_key
            .entry((unit.ecosystem, unit.key()))
            .or_default()
            .push(i);
        self.units.push(unit);
        i
    }

    /// The unit a path belongs to.
    pub(crate) fn owner(&self, path: &str) -> Option<usize> {
        self.owner.get(path).copied()
    }

    pub(crate) fn note_root(&mut self, eco: Ecosystem, dir: &str) {
        self.roots.entry(eco).or_default().insert(dir.to_string());
    }

    /// Whether `path` is an ecosystem directory or lies inside one (app
    /// trees leave those to the package rules).
    pub(crate) fn in_package_root(&self, path: &str) -> bool {
        self.roots
            .iter()
            .filter(|(e, _)| **e != Ecosystem::App && **e != Ecosystem::Java)
            .flat_map(|(_, r)| r)
            .any(|r| path == r || is_below(path, r))
    }

    /// The declared dependencies of a unit (reads a jar's manifest now).
    fn deps_of(&mut self, fs: &ImageFs, i: usize) -> Vec<Dep> {
        if self.units[i].lazy_jar_manifest {
            self.units[i].lazy_jar_manifest = false;
            let root = self.units[i].root.clone();
            match jar::class_path(fs, &root) {
                Ok(deps) => {
                    if !deps.is_empty() {
                        self.units[i].declared_in = Some(format!("{root}!/META-INF/MANIFEST.MF"));
                    }
                    self.units[i].deps = deps;
                }
                Err(e) => self.notes.push(e.to_string()),
            }
        }
        self.units[i].deps.clone()
    }

    /// The unit a dependency names, looked up from unit `from`.
    fn resolve_dep(&self, from: usize, dep: &Dep) -> Option<usize> {
        let u = &self.units[from];
        match dep.ecosystem {
            Ecosystem::Node => {
                // Node's resolver: `<dir>/node_modules/<name>` from the
                // requiring package's directory up to the root.
                let mut dir = u.root.as_str();
                loop {
                    if crate::image::path::file_name(dir) != "node_modules" {
                        let cand = if dir == "/" {
                            format!("/node_modules/{}", dep.name)
                        } else {
                            format!("{dir}/node_modules/{}", dep.name)
                        };
                        if let Some(&j) = self.by_root.get(&cand)
                            && self.units[j].ecosystem == Ecosystem::Node
                        {
                            return Some(j);
                        }
                    }
                    if dir == "/" {
                        return None;
                    }
                    dir = crate::image::path::parent(dir);
                }
            }
            Ecosystem::Java => self
                .by_root
                .get(&dep.name)
                .copied()
                .filter(|&j| self.units[j].ecosystem == Ecosystem::Java),
            eco => {
                let cands = self.by_key.get(&(eco, name_key(eco, &dep.name)))?;
                // The same environment first (a venv before the system).
                cands
                    .iter()
                    .copied()
                    .find(|&j| self.units[j].home == u.home)
                    .or_else(|| cands.first().copied())
            }
        }
    }
}

pub(crate) fn is_below(path: &str, dir: &str) -> bool {
    dir == "/" && path != "/"
        || path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// What [`plan`] needs.
pub struct PackageInput<'a> {
    pub fs: &'a ImageFs,
    /// Regular files the app opened or executed (image paths, symlinks
    /// resolved).
    pub opened: &'a BTreeSet<String>,
    pub execs: &'a [ExecRecord],
    /// Regular files the app opened for reading (image paths, symlinks
    /// resolved): where content roots are found.
    pub read: &'a BTreeSet<String>,
    /// The image's operating-system packages.
    pub os: &'a PackageDb,
    /// WORKDIR as run.
    pub workdir: Option<&'a str>,
    pub granularity: Granularity,
    pub overrides: &'a [GranularityOverride],
}

/// What to keep, and the coverage report.
#[derive(Debug, Default)]
pub struct PackagePlan {
    /// Paths to keep whole-unit, each with why; symlinks among them need
    /// their targets kept too.
    pub keep: Vec<(String, KeepReason)>,
    pub coverage: Coverage,
    /// Content roots found, whether or not their granularity kept them.
    pub content: Vec<ContentPlan>,
}

/// A content root and how much of it the granularity keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentPlan {
    pub found: ContentRoot,
    /// The granularity at the root (after overrides).
    pub granularity: Granularity,
    /// Every path of the tree is kept (no `file` granularity inside it).
    pub kept_whole: bool,
}

/// How far the probes reached, per ecosystem and in the app's own code.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    pub granularity: Granularity,
    pub ecosystems: Vec<EcosystemCoverage>,
    pub app: Vec<AppCoverage>,
    /// Overrides that matched nothing, unreadable metadata.
    pub notes: Vec<String>,
    /// Signs that the probes missed code paths (filled by the session,
    /// which knows the probe results).
    pub warnings: Vec<String>,
}

/// One language ecosystem found in the image.
#[derive(Clone, Debug, Serialize)]
pub struct EcosystemCoverage {
    pub ecosystem: Ecosystem,
    /// Site directories, `node_modules` directories, gem homes, JDK homes,
    /// jar directories.
    pub roots: Vec<String>,
    pub packages_present: usize,
    /// Packages one of whose files the app used.
    pub used: Vec<PackageCoverage>,
    /// Packages nobody loaded, kept only because a kept one declares them.
    pub dependency_only: Vec<PackageCoverage>,
    /// Packages neither used nor needed (not in the slim image).
    pub unused: Vec<String>,
}

/// One package in the coverage report.
#[derive(Clone, Debug, Serialize)]
pub struct PackageCoverage {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub root: String,
    /// Effective granularity (after overrides).
    pub granularity: Granularity,
    /// Kept whole (else: only its used files).
    pub kept_whole: bool,
    pub files: usize,
    pub files_used: usize,
    /// Who declares it (dependency-only packages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_by: Option<String>,
    /// Modules of a used package that were never loaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untouched_modules: Vec<String>,
    /// How many more untouched modules there are than listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub untouched_more: usize,
    /// Declared dependencies the image does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_dependencies: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The app's own source tree.
#[derive(Clone, Debug, Serialize)]
pub struct AppCoverage {
    pub root: String,
    /// How it was recognised (WORKDIR, the directory of a script the app ran).
    pub why: String,
    pub granularity: Granularity,
    pub kept_whole: bool,
    pub files: usize,
    pub files_used: usize,
    /// Source files (Python, JavaScript, Ruby, ...), and how many were loaded.
    pub modules: usize,
    pub modules_loaded: usize,
    /// Source files the probes never loaded.
    pub untouched_modules: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub untouched_more: usize,
    /// Manifests whose dependencies were followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_in: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_dependencies: Vec<String>,
}

/// Untouched modules listed per package or app tree.
const MAX_LISTED: usize = 200;

/// How a unit came to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Unused,
    Used { file: String },
    Dependency { by: String },
}

/// Applies rules 1–3 of the module docs: finds the units, decides which are
/// kept whole, and measures coverage.
pub fn plan(input: &PackageInput<'_>) -> PackagePlan {
    let fs = input.fs;
    let mut cat = Catalog::scan(fs);
    for (root, why) in app::roots(fs, input.workdir, input.execs, &cat) {
        if let Some(unit) = app::unit(fs, &root, &why, &cat) {
            cat.note_root(Ecosystem::App, &root);
            cat.push(unit);
        }
    }
    let opened: BTreeSet<&str> = input
        .opened
        .iter()
        .map(String::as_str)
        .filter(|p| fs.get(p).is_some_and(|e| e.is_file()))
        .collect();

    // Rule 1: used units, and which of their files were used.
    let n = cat.units.len();
    let mut state = vec![State::Unused; n];
    let mut used_files: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); n];
    for &f in &opened {
        if let Some(i) = cat.owner(f)
            && !cat.units[i].metadata.contains(f)
        {
            used_files[i].insert(f);
            if state[i] == State::Unused {
                state[i] = State::Used {
                    file: f.to_string(),
                };
            }
        }
    }

    // A jar in an app tree belongs to both: the app counts it as its own.
    for (i, u) in cat.units.iter().enumerate() {
        if u.ecosystem != Ecosystem::App {
            continue;
        }
        for &f in opened.iter().filter(|f| is_below(f, &u.root)) {
            if u.files.contains(f) {
                used_files[i].insert(f);
                if state[i] == State::Unused {
                    state[i] = State::Used {
                        file: f.to_string(),
                    };
                }
            }
        }
    }

    let overrides = Overrides::new(fs, input.overrides);
    let gran: Vec<Granularity> = cat
        .units
        .iter()
        .map(|u| overrides.granularity_of(u, input.granularity))
        .collect();

    // Rules 2 and 3: keep used units whole, then what they declare.
    let mut keep: Vec<(String, KeepReason)> = Vec::new();
    let mut whole = vec![false; n];
    let mut missing: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for i in 0..n {
        if let State::Used { file } = &state[i]
            && gran[i] == Granularity::Package
        {
            let u = &cat.units[i];
            let reason = match u.ecosystem {
                Ecosystem::App => KeepReason::AppSource {
                    root: u.root.clone(),
                },
                eco => KeepReason::Package {
                    ecosystem: eco,
                    name: u.label(),
                    used: file.clone(),
                },
            };
            keep_unit(u, &reason, &mut keep);
            whole[i] = true;
            queue.push_back(i);
        }
    }
    while let Some(i) = queue.pop_front() {
        for dep in cat.deps_of(fs, i) {
            let Some(j) = cat.resolve_dep(i, &dep) else {
                missing[i].push(dep.name.clone());
                continue;
            };
            if whole[j] || gran[j] != Granularity::Package || j == i {
                continue;
            }
            let by = match cat.units[i].ecosystem {
                Ecosystem::App => cat.units[i]
                    .declared_in
                    .clone()
                    .unwrap_or_else(|| cat.units[i].root.clone()),
                _ => cat.units[i].label(),
            };
            let u = &cat.units[j];
            keep_unit(
                u,
                &KeepReason::PackageDependency {
                    ecosystem: u.ecosystem,
                    name: u.label(),
                    required_by: by.clone(),
                },
                &mut keep,
            );
            whole[j] = true;
            if state[j] == State::Unused {
                state[j] = State::Dependency { by };
            }
            queue.push_back(j);
        }
    }

    let content = keep_content(input, &cat, &overrides, &mut keep);

    let mut notes = std::mem::take(&mut cat.notes);
    notes.extend(overrides.unmatched());
    let coverage = coverage(
        fs,
        &cat,
        &opened,
        &state,
        &gran,
        &whole,
        &used_files,
        missing,
        input.granularity,
        notes,
    );
    PackagePlan {
        keep,
        coverage,
        content,
    }
}

/// Rule 5: finds the content roots and keeps, of each, the paths whose
/// granularity is `package`.
fn keep_content(
    input: &PackageInput<'_>,
    cat: &Catalog,
    overrides: &Overrides,
    keep: &mut Vec<(String, KeepReason)>,
) -> Vec<ContentPlan> {
    let fs = input.fs;
    let is_code = |p: &str| cat.owner(p).is_some();
    let code_dirs: Vec<String> = cat.roots.values().flatten().cloned().collect();
    let found = content::find(&ContentInput {
        fs,
        read: input.read,
        os: input.os,
        is_code: &is_code,
        code_dirs: &code_dirs,
    });
    let mut out = Vec::with_capacity(found.len());
    for c in found {
        let reason = KeepReason::ContentRoot {
            root: c.root.clone(),
            read: c.read.clone(),
        };
        let mut kept_whole = true;
        let paths = std::iter::once(c.root.as_str()).chain(fs.descendants(&c.root).map(|(p, _)| p));
        for p in paths {
            if overrides.granularity_of_path(p, input.granularity) == Granularity::Package {
                keep.push((p.to_string(), reason.clone()));
            } else {
                kept_whole = false;
            }
        }
        out.push(ContentPlan {
            granularity: overrides.granularity_of_path(&c.root, input.granularity),
            found: c,
            kept_whole,
        });
    }
    out
}

fn keep_unit(u: &Unit, reason: &KeepReason, keep: &mut Vec<(String, KeepReason)>) {
    for p in u.files.iter().chain(&u.metadata) {
        keep.push((p.clone(), reason.clone()));
    }
}

#[allow(clippy::too_many_arguments)]
fn coverage(
    fs: &ImageFs,
    cat: &Catalog,
    opened: &BTreeSet<&str>,
    state: &[State],
    gran: &[Granularity],
    whole: &[bool],
    used_files: &[BTreeSet<&str>],
    mut missing: Vec<Vec<String>>,
    granularity: Granularity,
    notes: Vec<String>,
) -> Coverage {
    let loaded_sources = loaded_python_sources(opened);
    let loaded = |p: &str| opened.contains(p) || loaded_sources.contains(p);
    let mut by_eco: BTreeMap<Ecosystem, EcosystemCoverage> = BTreeMap::new();
    let mut apps = Vec::new();
    for (i, u) in cat.units.iter().enumerate() {
        let modules: Vec<&String> = u.files.iter().filter(|p| is_module(p)).collect();
        let untouched: Vec<String> = modules
            .iter()
            .filter(|p| !loaded(p))
            .map(|p| p.to_string())
            .collect();
        let more = untouched.len().saturating_sub(MAX_LISTED);
        let listed: Vec<String> = untouched.iter().take(MAX_LISTED).cloned().collect();
        let files = u
            .files
            .iter()
            .filter(|p| fs.get(p).is_some_and(|e| e.is_file()))
            .count();
        if u.ecosystem == Ecosystem::App {
            apps.push(AppCoverage {
                root: u.root.clone(),
                why: u.why.clone().unwrap_or_default(),
                granularity: gran[i],
                kept_whole: whole[i],
                files,
                files_used: used_files[i].len(),
                modules: modules.len(),
                modules_loaded: modules.len() - untouched.len(),
                untouched_modules: listed,
                untouched_more: more,
                declared_in: u.declared_in.clone(),
                missing_dependencies: std::mem::take(&mut missing[i]),
            });
            continue;
        }
        let eco = by_eco
            .entry(u.ecosystem)
            .or_insert_with(|| EcosystemCoverage {
                ecosystem: u.ecosystem,
                roots: cat
                    .roots
                    .get(&u.ecosystem)
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default(),
                packages_present: 0,
                used: Vec::new(),
                dependency_only: Vec::new(),
                unused: Vec::new(),
            });
        eco.packages_present += 1;
        let pc = |required_by: Option<String>, untouched_modules: Vec<String>, more: usize| {
            PackageCoverage {
                name: u.name.clone(),
                version: u.version.clone(),
                root: u.root.clone(),
                granularity: gran[i],
                kept_whole: whole[i],
                files,
                files_used: used_files[i].len(),
                required_by,
                untouched_modules,
                untouched_more: more,
                missing_dependencies: Vec::new(),
            }
        };
        match &state[i] {
            State::Used { .. } => {
                let mut c = pc(None, listed, more);
                c.missing_dependencies = std::mem::take(&mut missing[i]);
                eco.used.push(c);
            }
            State::Dependency { by } => {
                let mut c = pc(Some(by.clone()), Vec::new(), 0);
                c.missing_dependencies = std::mem::take(&mut missing[i]);
                eco.dependency_only.push(c);
            }
            State::Unused => eco.unused.push(u.label()),
        }
    }
    Coverage {
        granularity,
        ecosystems: by_eco.into_values().collect(),
        app: apps,
        notes,
        warnings: Vec::new(),
    }
}

/// `x.py` for every opened `__pycache__/x.<tag>.pyc`: CPython loads a
/// module from its cached bytecode without opening the source.
fn loaded_python_sources(opened: &BTreeSet<&str>) -> BTreeSet<String> {
    opened
        .iter()
        .filter_map(|p| {
            let (dir, name) = p.rsplit_once("/__pycache__/")?;
            let stem = name.strip_suffix(".pyc")?;
            let module = stem.split('.').next()?;
            Some(format!("{dir}/{module}.py"))
        })
        .collect()
}

/// Source files of the languages we know: what "modules" counts.
pub(crate) fn is_module(path: &str) -> bool {
    let name = crate::image::path::file_name(path);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return false;
    };
    matches!(
        ext,
        "py" | "js" | "mjs" | "cjs" | "ts" | "rb" | "php" | "pl" | "pm" | "lua" | "jar" | "class"
    )
}

/// The user's overrides, resolved against the image.
struct Overrides {
    list: Vec<(GranularityOverride, Option<String>)>,
    matched: std::cell::RefCell<Vec<bool>>,
}

impl Overrides {
    fn new(fs: &ImageFs, list: &[GranularityOverride]) -> Self {
        let list: Vec<(GranularityOverride, Option<String>)> = list
            .iter()
            .map(|o| {
                // Where the path leads in the image (a symlinked /lib...).
                let resolved = match &o.target {
                    OverrideTarget::Path(p) => Some(
                        fs.resolve(p, ResolveOptions::default())
                            .ok()
                            .filter(|r| r.exists)
                            .map(|r| r.path)
                            .unwrap_or_else(|| p.clone()),
                    ),
                    OverrideTarget::Package { .. } => None,
                };
                (o.clone(), resolved)
            })
            .collect();
        let matched = std::cell::RefCell::new(vec![false; list.len()]);
        Overrides { list, matched }
    }

    /// The most specific override for a unit: a package name first, then
    /// the longest matching path; else the global setting.
    fn granularity_of(&self, u: &Unit, global: Granularity) -> Granularity {
        let mut best: Option<(usize, usize)> = None;
        for (k, (o, resolved)) in self.list.iter().enumerate() {
            let score = match &o.target {
                OverrideTarget::Package { ecosystem, name } => (*ecosystem == u.ecosystem
                    && (name_key(*ecosystem, name) == u.key()
                        || (u.ecosystem == Ecosystem::App && name == &u.root)))
                    .then_some(usize::MAX),
                OverrideTarget::Path(_) => {
                    let p = resolved.as_deref().unwrap_or("/");
                    std::iter::once(&u.root)
                        .chain(&u.anchors)
                        .any(|a| a == p || is_below(a, p) || is_below(p, a))
                        .then_some(p.len())
                }
            };
            if let Some(s) = score {
                self.matched.borrow_mut()[k] = true;
                if best.is_none_or(|(b, _)| s >= b) {
                    best = Some((s, k));
                }
            }
        }
        best.map_or(global, |(_, k)| self.list[k].0.granularity)
    }

    /// The granularity of a path no unit holds (a content root's): the
    /// longest path override at or above it, else `global`.
    fn granularity_of_path(&self, path: &str, global: Granularity) -> Granularity {
        let mut best: Option<(usize, usize)> = None;
        for (k, (o, resolved)) in self.list.iter().enumerate() {
            if let (OverrideTarget::Path(_), Some(p)) = (&o.target, resolved)
                && (path == p || is_below(path, p))
                && best.is_none_or(|(len, _)| p.len() >= len)
            {
                best = Some((p.len(), k));
            }
        }
        match best {
            Some((_, k)) => {
                self.matched.borrow_mut()[k] = true;
                self.list[k].0.granularity
            }
            None => global,
        }
    }

    fn unmatched(&self) -> Vec<String> {
        let matched = self.matched.borrow();
        self.list
            .iter()
            .zip(matched.iter())
            .filter(|(_, m)| !**m)
            .map(|((o, _), _)| {
                format!(
                    "granularity override {o} matches no package, app tree or content root in the image"
                )
            })
            .collect()
    }
}
