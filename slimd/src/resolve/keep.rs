//! The keep set: every image path the slim image must contain, each with the
//! reasons it is there.
//!
//! Inputs: what the app did ([`Observations`]), the original image, and the
//! user's [`KeepOptions`]. Rules, in the order applied:
//! 1. every successful file access, resolved in the image (the symlinks on
//!    the way are kept too, each needed for the path to keep working);
//! 2. what the kernel loads without a syscall we see: the ELF interpreter and
//!    shared-library closure of exec'd files and of opened ELF objects, and
//!    the interpreters of exec'd scripts;
//! 3. language rules: the `.py` beside each used `__pycache__/*.pyc` and the
//!    reverse; then, under the `package` granularity, whole language
//!    packages, their declared dependencies, the app's source tree (see
//!    [`super::packages`]) and the trees the app reads content from by name
//!    (see [`super::content`]);
//! 4. state (see [`super::state`]): the tree the app keeps its data in
//!    (climbing from a written directory while the same non-root user owns
//!    the parent) and VOLUME directories are kept whole with their original
//!    contents; scratch directories written into (`/run/postgresql`) are
//!    kept bare with their owner and mode;
//! 5. the always-keep set a working container needs (users, mount points,
//!    /tmp, /run, WORKDIR, CA certificates, resolver libraries when the app
//!    used the network, HEALTHCHECK programs, zoneinfo when asked);
//! 6. user flags (`--include-path`, `--include-bin`, `--include-shell`,
//!    `--preserve-path`), then `--exclude-pattern` last.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use super::packages::{self, Coverage, is_below};
use super::process::{AccessKind, Observations};
use super::reason::KeepReason;
use super::state::{self, StateCause};
use crate::image::{
    ElfOptions, EntryKind, Image, ImageFs, PackageDb, ResolveOptions, Selection, SyntheticEntry,
    elf_closure, name, read_elf_info, resolve_shebang, which,
};
use crate::resolve::options::KeepOptions;

/// At most this many reasons are remembered per path (the first ones).
const MAX_REASONS: usize = 4;

/// Paths the runtime provides: never taken from the image because used.
const RUNTIME_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Files kept whenever they exist.
const ALWAYS_FILES: &[(&str, &str)] = &[
    ("/etc/passwd", "user names and home directories"),
    ("/etc/group", "group names and supplementary groups"),
    ("/etc/shadow", "password database (some programs check it)"),
    ("/etc/nsswitch.conf", "how names are looked up"),
    ("/etc/hosts", "mount point the engine binds over"),
    ("/etc/resolv.conf", "mount point the engine binds over"),
    ("/etc/hostname", "mount point the engine binds over"),
];

/// CA certificate locations of the common distributions and runtimes.
const CERT_PATHS: &[&str] = &[
    "/etc/ssl/certs",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/certs",
    "/etc/pki/tls/cert.pem",
    "/etc/pki/ca-trust/extracted",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/etc/ca-certificates.conf",
    "/usr/lib/ssl/certs",
    "/usr/lib/ssl/cert.pem",
];

/// File names of CA bundles found anywhere (language runtimes ship their own).
const CERT_BUNDLE_NAMES: &[&str] = &["cacert.pem", "ca-bundle.crt", "ca-certificates.crt"];

/// Library name prefixes glibc loads at run time for name lookups.
const RESOLVER_LIBS: &[&str] = &[
    "libnss_files.so",
    "libnss_dns.so",
    "libresolv.so",
    "libnss_myhostname.so",
];

/// Resolver configuration files.
const RESOLVER_FILES: &[&str] = &[
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
];

/// The paths to keep, with reasons, plus entries to create.
#[derive(Debug, Default)]
pub struct KeepSet {
    entries: BTreeMap<String, Vec<KeepReason>>,
    synthetic: Vec<SyntheticEntry>,
    /// Paths the app used that the image does not have (made at run time,
    /// or provided by the runtime).
    pub not_in_image: BTreeSet<String>,
    /// Paths that could not be resolved (loops, errors), with why.
    pub problems: Vec<String>,
    /// Paths removed by `--exclude-pattern`.
    pub excluded: Vec<String>,
    /// Language packages and app source: what the probes reached.
    pub coverage: Option<Coverage>,
    /// Trees kept whole as the app's state (written into, or VOLUMEs).
    pub state_roots: Vec<KeptRoot>,
    /// Trees the app reads content from by name (kept whole under the
    /// `package` granularity).
    pub content_roots: Vec<KeptRoot>,
}

/// A tree kept whole by the state or content rules, and what it cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptRoot {
    pub root: String,
    /// What made it one: `wrote PATH`, `VOLUME`, `read PATH`.
    pub cause: String,
    /// False when the granularity kept only what was used of it.
    pub kept_whole: bool,
    /// Regular files kept below it, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Of those, the ones kept only by this rule: what it added beyond the
    /// files the app used.
    pub added_files: u64,
    pub added_bytes: u64,
}

/// Everything the keep rules need besides the image.
pub struct KeepInput<'a> {
    pub image: &'a Image,
    pub observations: &'a Observations,
    pub options: &'a KeepOptions,
    /// WORKDIR as run (after `--workdir`).
    pub workdir: Option<&'a str>,
}

impl KeepSet {
    /// Applies every rule; see the module docs.
    pub fn build(input: &KeepInput<'_>) -> Result<Self, String> {
        let mut ks = KeepSet::default();
        let image = input.image;
        let fs = &image.fs;
        let elf_opts = ElfOptions::from_image(image);
        let path_var = image_path_var(image);

        // 1. What the app used.
        let mut elf_candidates: BTreeSet<String> = BTreeSet::new();
        let mut exec_files: BTreeSet<String> = BTreeSet::new();
        let mut writes: Vec<state::Write> = Vec::new();
        let mut read: BTreeSet<String> = BTreeSet::new();
        for a in &input.observations.accesses {
            if !a.ok || in_runtime_tree(&a.path) {
                continue;
            }
            let reason = KeepReason::Used {
                how: a.kind,
                pid: a.pid,
                comm: a.comm.clone(),
            };
            let follow = !a.nofollow;
            let Some(final_path) = ks.add_resolved(fs, &a.path, follow, reason) else {
                if a.write || a.kind != AccessKind::Socket {
                    ks.not_in_image.insert(a.path.clone());
                }
                if a.write {
                    writes.push(state::Write {
                        named: a.path.clone(),
                        resolved: None,
                    });
                }
                continue;
            };
            if a.write {
                writes.push(state::Write {
                    named: a.path.clone(),
                    resolved: Some(final_path.clone()),
                });
            }
            match a.kind {
                AccessKind::Exec => {
                    exec_files.insert(final_path.clone());
                    elf_candidates.insert(final_path);
                }
                AccessKind::Open => {
                    if !a.write && fs.get(&final_path).is_some_and(|e| e.is_file()) {
                        read.insert(final_path.clone());
                    }
                    elf_candidates.insert(final_path);
                }
                _ => {}
            }
        }

        let opened = elf_candidates.clone();

        // 2. What the kernel loads for the app.
        for script in &exec_files {
            ks.add_script_interpreter(fs, script, &path_var, &mut elf_candidates);
        }
        ks.add_elf_closures(fs, &elf_opts, &elf_candidates);

        // 3. Python source/bytecode pairs.
        let kept: Vec<String> = ks.entries.keys().cloned().collect();
        for p in &kept {
            for pair in python_pairs(fs, p) {
                ks.add(&pair, KeepReason::PythonPair { of: p.clone() });
            }
        }

        // Language packages, the app's source tree and content roots, whole.
        let os = PackageDb::read(fs).unwrap_or_else(|e| {
            ks.problems
                .push(format!("the package database cannot be read: {e}"));
            PackageDb::default()
        });
        let plan = packages::plan(&packages::PackageInput {
            fs,
            opened: &opened,
            execs: &input.observations.execs,
            read: &read,
            os: &os,
            workdir: input.workdir,
            granularity: input.options.granularity,
            overrides: &input.options.granularity_overrides,
        });
        for (path, reason) in plan.keep {
            ks.add_entry(fs, &path, reason);
        }

        // 4. State roots, volumes and scratch directories.
        let package_dirs: Vec<String> = plan
            .coverage
            .ecosystems
            .iter()
            .flat_map(|e| e.roots.iter().cloned())
            .collect();
        let code_dirs: Vec<String> = package_dirs
            .iter()
            .cloned()
            .chain(plan.coverage.app.iter().map(|a| a.root.clone()))
            .chain(
                input
                    .workdir
                    .filter(|w| w.starts_with('/') && *w != "/")
                    .map(crate::image::path::normalize),
            )
            .collect();
        let volumes: Vec<String> = image
            .config
            .config
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        let state = state::plan(&state::StateInput {
            fs,
            writes: &writes,
            volumes: &volumes,
            code_dirs: &code_dirs,
            package_dirs: &package_dirs,
        });
        for r in &state.roots {
            let reason = match &r.cause {
                StateCause::Volume => KeepReason::Volume {
                    path: r.root.clone(),
                },
                StateCause::Written(w) => KeepReason::StateDirectory {
                    root: r.root.clone(),
                    written: w.clone(),
                },
            };
            ks.add_tree(fs, &r.root, reason);
        }
        for (dir, written) in &state.scratch {
            ks.add(
                dir,
                KeepReason::ScratchDirectory {
                    written: written.clone(),
                },
            );
        }

        // 5. Always-keep.
        ks.add_always(input, &path_var, &elf_opts);

        // 6. User flags.
        let opts = input.options;
        // Users name a non-UTF-8 path as it is shown: `\xNN` is a byte.
        for p in &opts.include_paths {
            ks.add_user_tree(fs, &name::parse(p), "--include-path");
        }
        for p in &opts.preserve_paths {
            ks.add_user_tree(fs, &name::parse(p), "--preserve-path");
        }
        let mut bins = BTreeSet::new();
        for b in &opts.include_bins {
            let b = &name::parse(b);
            let found = if b.starts_with('/') {
                ks.add_resolved(fs, b, true, user("--include-bin"))
            } else {
                which(fs, b, &path_var)
                    .and_then(|(p, _)| ks.add_resolved(fs, &p, true, user("--include-bin")))
            };
            match found {
                Some(p) => {
                    bins.insert(p);
                }
                None => ks
                    .problems
                    .push(format!("--include-bin {b}: not found in the image")),
            }
        }
        if opts.include_shell {
            match ks.add_resolved(fs, "/bin/sh", true, user("--include-shell")) {
                Some(p) => {
                    bins.insert(p);
                }
                None => ks
                    .problems
                    .push("--include-shell: the image has no /bin/sh".into()),
            }
        }
        for b in bins.clone() {
            ks.add_script_interpreter(fs, &b, &path_var, &mut bins);
        }
        ks.add_elf_closures(fs, &elf_opts, &bins);

        // Exclusions last: the user has the final word.
        if !opts.exclude_patterns.is_empty() {
            let set = globs(&opts.exclude_patterns)?;
            let excluded: Vec<String> = ks
                .entries
                .keys()
                .filter(|p| set.is_match(p.as_str()))
                .cloned()
                .collect();
            for p in &excluded {
                ks.entries.remove(p);
            }
            ks.excluded = excluded;
        }

        // What the state and content roots cost, after the exclusions.
        ks.state_roots = state
            .roots
            .iter()
            .map(|r| {
                let cause = match &r.cause {
                    StateCause::Volume => "VOLUME".to_string(),
                    StateCause::Written(w) => format!("wrote {w}"),
                };
                ks.kept_root(fs, &r.root, cause, true, |why| match why {
                    KeepReason::StateDirectory { root, .. } => *root == r.root,
                    KeepReason::Volume { path } => *path == r.root,
                    _ => false,
                })
            })
            .collect();
        ks.content_roots = plan
            .content
            .iter()
            .map(|c| {
                let root = &c.found.root;
                ks.kept_root(
                    fs,
                    root,
                    format!("read {}", c.found.read),
                    c.kept_whole,
                    |why| matches!(why, KeepReason::ContentRoot { root: r, .. } if r == root),
                )
            })
            .collect();
        ks.coverage = Some(plan.coverage);
        Ok(ks)
    }

    /// Sizes what is kept at and below `root`; `only` tells this rule's
    /// reasons apart.
    fn kept_root(
        &self,
        fs: &ImageFs,
        root: &str,
        cause: String,
        kept_whole: bool,
        only: impl Fn(&KeepReason) -> bool,
    ) -> KeptRoot {
        let mut k = KeptRoot {
            root: root.to_string(),
            cause,
            kept_whole,
            files: 0,
            bytes: 0,
            added_files: 0,
            added_bytes: 0,
        };
        let below = self
            .entries
            .range::<str, _>((std::ops::Bound::Included(root), std::ops::Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(root))
            .filter(|(p, _)| p.as_str() == root || is_below(p, root));
        for (p, reasons) in below {
            let Some(e) = fs.get(p).filter(|e| e.is_file()) else {
                continue;
            };
            k.files += 1;
            k.bytes += e.size();
            if reasons.iter().all(&only) {
                k.added_files += 1;
                k.added_bytes += e.size();
            }
        }
        k
    }

    /// Adds one path with a reason (a path's first reasons are kept).
    pub fn add(&mut self, path: &str, reason: KeepReason) {
        let reasons = self.entries.entry(path.to_string()).or_default();
        if reasons.len() < MAX_REASONS && !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }

    /// Resolves `path` in the image and keeps where it leads plus every
    /// symlink on the way. Returns the final path when it exists.
    fn add_resolved(
        &mut self,
        fs: &ImageFs,
        path: &str,
        follow: bool,
        reason: KeepReason,
    ) -> Option<String> {
        let opts = if follow {
            ResolveOptions::default()
        } else {
            ResolveOptions::no_follow()
        };
        let res = match fs.resolve(path, opts) {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(format!("{path}: {e}"));
                return None;
            }
        };
        for link in &res.symlinks {
            self.add(
                link,
                KeepReason::SymlinkTo {
                    path: res.path.clone(),
                },
            );
        }
        if res.exists {
            self.add(&res.path, reason);
            Some(res.path)
        } else {
            None
        }
    }

    /// Keeps one entry as it is; a symlink also keeps where it leads.
    fn add_entry(&mut self, fs: &ImageFs, path: &str, reason: KeepReason) {
        self.add(path, reason);
        if fs.get(path).is_some_and(|e| e.is_symlink()) {
            let _ = self.add_resolved(
                fs,
                path,
                true,
                KeepReason::SymlinkTo {
                    path: path.to_string(),
                },
            );
        }
    }

    /// Keeps a directory and everything below it (symlinks inside are kept
    /// as links; their targets are resolved and kept too).
    fn add_tree(&mut self, fs: &ImageFs, dir: &str, reason: KeepReason) {
        let Some(root) = self.add_resolved(fs, dir, true, reason.clone()) else {
            return;
        };
        let below: Vec<(String, bool)> = fs
            .descendants(&root)
            .map(|(p, e)| (p.to_string(), e.is_symlink()))
            .collect();
        for (p, is_link) in below {
            self.add(&p, reason.clone());
            if is_link {
                let _ = self.add_resolved(fs, &p, true, KeepReason::SymlinkTo { path: p.clone() });
            }
        }
    }

    fn add_user_tree(&mut self, fs: &ImageFs, path: &str, flag: &str) {
        if fs
            .resolve(path, ResolveOptions::default())
            .map(|r| r.exists)
            .unwrap_or(false)
        {
            self.add_tree(fs, path, user(flag));
        } else {
            self.problems
                .push(format!("{flag} {path}: not in the image"));
        }
    }

    /// `#!` interpreters of scripts (and `env PROG` through PATH).
    fn add_script_interpreter(
        &mut self,
        fs: &ImageFs,
        script: &str,
        path_var: &str,
        elf_candidates: &mut BTreeSet<String>,
    ) {
        let mut current = script.to_string();
        // Interpreters can be scripts themselves: the kernel allows a few levels.
        for _ in 0..4 {
            let Ok(Some(target)) = resolve_shebang(fs, &current, path_var) else {
                return;
            };
            let of = current.clone();
            let mut next = None;
            for p in target.all_paths() {
                if let Some(f) = self.add_resolved(
                    fs,
                    p,
                    true,
                    KeepReason::ScriptInterpreter { of: of.clone() },
                ) {
                    elf_candidates.insert(f.clone());
                    next = Some(f);
                }
            }
            match next {
                Some(n) if n != current => current = n,
                _ => return,
            }
        }
    }

    /// ELF interpreters and library closures of the given files (non-ELF
    /// files are skipped).
    fn add_elf_closures(&mut self, fs: &ImageFs, opts: &ElfOptions, files: &BTreeSet<String>) {
        for f in files {
            match read_elf_info(fs, f) {
                Ok(Some(_)) => {}
                _ => continue,
            }
            let closure = match elf_closure(fs, f, opts) {
                Ok(c) => c,
                Err(e) => {
                    self.problems.push(format!("{f}: ELF dependencies: {e}"));
                    continue;
                }
            };
            if let Some(interp) = &closure.interpreter {
                for l in &interp.symlinks {
                    self.add(
                        l,
                        KeepReason::SymlinkTo {
                            path: interp.path.clone(),
                        },
                    );
                }
                self.add(&interp.path, KeepReason::ElfInterpreter { of: f.clone() });
            }
            for lib in &closure.libraries {
                for l in &lib.symlinks {
                    self.add(
                        l,
                        KeepReason::SymlinkTo {
                            path: lib.path.clone(),
                        },
                    );
                }
                let of = lib.needed_by.first().cloned().unwrap_or_else(|| f.clone());
                self.add(&lib.path, KeepReason::ElfDependency { of });
            }
            for m in &closure.missing {
                self.problems.push(format!(
                    "{}: needs {} which the image lacks",
                    m.needed_by, m.name
                ));
            }
        }
    }

    fn add_always(&mut self, input: &KeepInput<'_>, path_var: &str, elf_opts: &ElfOptions) {
        let image = input.image;
        let fs = &image.fs;
        for (p, why) in ALWAYS_FILES {
            let _ = self.add_resolved(fs, p, true, KeepReason::always(why));
        }
        for (dir, mode, why) in [
            ("/tmp", 0o1777, "temporary files (kept empty)"),
            ("/run", 0o755, "runtime state (kept empty)"),
        ] {
            match fs.resolve(dir, ResolveOptions::default()) {
                Ok(r) if r.exists => {
                    for l in &r.symlinks {
                        self.add(
                            l,
                            KeepReason::SymlinkTo {
                                path: r.path.clone(),
                            },
                        );
                    }
                    self.add(&r.path, KeepReason::always(why));
                }
                _ => self.synthetic.push(SyntheticEntry::dir(dir, mode)),
            }
        }
        if let Some(wd) = input.workdir.filter(|w| !w.is_empty() && *w != "/") {
            let _ = self.add_resolved(fs, wd, true, KeepReason::always("WORKDIR"));
        }
        if input.options.include_cert_all {
            for p in CERT_PATHS {
                if fs.get(p).is_some() {
                    self.add_tree(fs, p, KeepReason::always("CA certificates"));
                }
            }
            let bundles: Vec<String> = fs
                .iter()
                .filter(|(p, e)| {
                    e.is_file()
                        && CERT_BUNDLE_NAMES
                            .iter()
                            .any(|n| p.rsplit('/').next() == Some(n))
                })
                .map(|(p, _)| p.to_string())
                .collect();
            for b in bundles {
                self.add(&b, KeepReason::always("CA certificate bundle"));
            }
        }
        if input.options.include_zoneinfo {
            for p in ["/usr/share/zoneinfo", "/etc/localtime", "/etc/timezone"] {
                if fs.get(p).is_some() {
                    self.add_tree(fs, p, user("--include-zoneinfo"));
                }
            }
        }
        if used_network(input.observations) {
            let why = "name lookups (the app used the network)";
            let libs: BTreeSet<String> = fs
                .iter()
                .filter(|(p, e)| {
                    !e.is_dir() && {
                        let name = p.rsplit('/').next().unwrap_or("");
                        RESOLVER_LIBS.iter().any(|l| name.starts_with(l))
                    }
                })
                .map(|(p, _)| p.to_string())
                .collect();
            let mut files = BTreeSet::new();
            for l in libs {
                if let Some(f) = self.add_resolved(fs, &l, true, KeepReason::always(why)) {
                    files.insert(f);
                }
                // The link itself (libnss_dns.so.2 -> ...) is what dlopen names.
                if fs.get(&l).is_some_and(|e| e.is_symlink()) {
                    self.add(&l, KeepReason::always(why));
                }
            }
            self.add_elf_closures(fs, elf_opts, &files);
            for f in RESOLVER_FILES {
                let _ = self.add_resolved(fs, f, true, KeepReason::always(why));
            }
        }
        // HEALTHCHECK programs: the engine runs them inside the container.
        let hc = healthcheck_programs(image);
        let mut hc_files = BTreeSet::new();
        for prog in hc {
            let found = if prog.starts_with('/') {
                self.add_resolved(fs, &prog, true, KeepReason::always("HEALTHCHECK command"))
            } else {
                which(fs, &prog, path_var).and_then(|(p, _)| {
                    self.add_resolved(fs, &p, true, KeepReason::always("HEALTHCHECK command"))
                })
            };
            if let Some(f) = found {
                hc_files.insert(f);
            }
        }
        for f in hc_files.clone() {
            self.add_script_interpreter(fs, &f, path_var, &mut hc_files);
        }
        self.add_elf_closures(fs, elf_opts, &hc_files);
    }

    /// The paths with their reasons, sorted.
    pub fn entries(&self) -> &BTreeMap<String, Vec<KeepReason>> {
        &self.entries
    }

    pub fn synthetic(&self) -> &[SyntheticEntry] {
        &self.synthetic
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// The writer's selection.
    pub fn selection(&self) -> Selection {
        let mut s = Selection::new();
        for p in self.entries.keys() {
            s.insert(p);
        }
        for e in &self.synthetic {
            s.add_synthetic(e.clone());
        }
        s
    }
}

fn user(flag: &str) -> KeepReason {
    KeepReason::UserFlag { flag: flag.into() }
}

fn in_runtime_tree(path: &str) -> bool {
    RUNTIME_TREES
        .iter()
        .any(|t| path == *t || path.starts_with(&format!("{t}/")))
}

fn used_network(o: &Observations) -> bool {
    use crate::tracer::SockAddr;
    o.network.iter().any(|n| {
        matches!(
            n.addr,
            Some(SockAddr::Inet { .. }) | Some(SockAddr::Inet6 { .. })
        )
    })
}

/// The image's PATH (or the default one).
pub fn image_path_var(image: &Image) -> String {
    image.config.config.path_var().to_string()
}

/// Programs a HEALTHCHECK runs: `CMD prog ...` names one; `CMD-SHELL` runs
/// `/bin/sh -c` with a command line whose commands are taken word by word.
fn healthcheck_programs(image: &Image) -> Vec<String> {
    let test: Vec<String> = image
        .config
        .config
        .healthcheck
        .as_ref()
        .and_then(|h| h.get("Test"))
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    match test.first().map(String::as_str) {
        Some("CMD") => test.get(1).cloned().into_iter().collect(),
        Some("CMD-SHELL") => {
            let mut progs = vec!["/bin/sh".to_string()];
            if let Some(line) = test.get(1) {
                progs.extend(shell_commands(line));
            }
            progs
        }
        _ => Vec::new(),
    }
}

/// First word of each command in a simple shell line (`a x || b y; c`).
fn shell_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in line.split(['|', '&', ';', '(', ')', '\n']) {
        let words = part.split_whitespace();
        // Skip `VAR=value` prefixes and shell keywords.
        for w in words {
            if w.contains('=') || matches!(w, "exec" | "if" | "then" | "else" | "fi" | "!" | "time")
            {
                continue;
            }
            if !matches!(w, "true" | "false" | "exit" | "test" | "[" | "echo") {
                out.push(w.trim_matches(|c| c == '"' || c == '\'').to_string());
            }
            break;
        }
    }
    out
}

/// `.py` beside a used `__pycache__/x.TAG.pyc`, and cached `.pyc` files of
/// a used `.py`.
fn python_pairs(fs: &ImageFs, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((dir, name)) = path.rsplit_once("/__pycache__/")
        && let Some(stem) = name.strip_suffix(".pyc")
    {
        let module = stem.split('.').next().unwrap_or(stem);
        let src = format!("{dir}/{module}.py");
        if fs.get(&src).is_some() {
            out.push(src);
        }
    } else if let Some(stem) = path.strip_suffix(".py") {
        let (dir, module) = stem.rsplit_once('/').unwrap_or(("", stem));
        let cache = format!("{dir}/__pycache__");
        let prefix = format!("{cache}/{module}.");
        if fs
            .get(&cache)
            .is_some_and(|e| matches!(e.kind, EntryKind::Dir))
        {
            out.extend(
                fs.children(&cache)
                    .filter(|(p, _)| p.starts_with(&prefix) && p.ends_with(".pyc"))
                    .map(|(p, _)| p.to_string()),
            );
        }
    }
    out
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // `\xNN` names a byte first; what remains is glob syntax.
        let p = name::parse(p);
        b.add(Glob::new(&p).map_err(|e| format!("bad --exclude-pattern \"{p}\": {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines() {
        assert_eq!(
            shell_commands("curl -f http://localhost/ || exit 1"),
            ["curl"]
        );
        assert_eq!(
            shell_commands("FOO=1 nc -z localhost 80 && wget -q -O- x; true"),
            ["nc", "wget"]
        );
    }

    #[test]
    fn runtime_trees() {
        assert!(in_runtime_tree("/proc/self/maps"));
        assert!(in_runtime_tree("/dev"));
        assert!(!in_runtime_tree("/devel/x"));
    }
}
