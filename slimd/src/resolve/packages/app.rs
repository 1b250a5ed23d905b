//! The app's own source tree: the WORKDIR, or the directory of a script the
//! app ran through an interpreter (`python3 /srv/app/main.py`,
//! `node server.js`, `java -jar /opt/svc/svc.jar`) or directly (`/app/run.sh`).
//!
//! Kept whole under the `package` granularity when the app used any file in
//! it, minus what is obviously not needed to run:
//! - version-control directories (`.git`, `.hg`, `.svn`) and tool caches
//!   (`.pytest_cache`, `.mypy_cache`, `.ruff_cache`, `.tox`, `.nox`);
//! - `__pycache__/*.pyc` whose source is not there (CPython never loads
//!   them: a sourceless module must sit beside, not in `__pycache__`);
//! - language package directories inside it (`node_modules`, a virtualenv's
//!   `site-packages`, a vendored gem home): their packages are units of
//!   their own, kept when used or declared (this is also where
//!   `node_modules/.cache` goes);
//! - test directories are *kept*: nothing tells tests from code reliably,
//!   some apps import helpers from them, and they are small. Drop them with
//!   `--exclude-pattern`.
//!
//! System directories (`/usr/bin`, `/usr/local/bin`, `/etc`, ...) are never
//! an app tree: an entrypoint script there says nothing about the app.

use std::collections::BTreeSet;
use std::io::Read;

use super::ecosystems::{parse_package_json, read_text, requirement_name};
use super::{Catalog, Dep, Unit, is_below};
use crate::image::path::{ancestors, file_name, join, parent};
use crate::image::{ImageFs, ResolveOptions};
use crate::resolve::ExecRecord;
use crate::resolve::options::Ecosystem;

/// Never an app's tree themselves.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/usr",
    "/usr/local",
    "/var",
    "/opt",
    "/srv",
    "/home",
    "/root",
    "/mnt",
    "/media",
];

/// Never an app's tree, nor anything below them.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/share",
    "/usr/include",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/local/lib",
    "/usr/local/share",
    "/usr/local/include",
    "/etc",
    "/var/lib",
    "/var/cache",
    "/var/log",
    "/var/spool",
    "/var/tmp",
    "/var/run",
    "/tmp",
    "/run",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
];

/// Directories skipped anywhere in an app tree.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
];

/// At most this many app trees (a shell loop running scripts from many
/// places is not many apps).
const MAX_ROOTS: usize = 4;

/// Interpreters whose first operand is the app's script.
fn is_interpreter(prog: &str) -> bool {
    let base = prog.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(
        base,
        "python"
            | "pypy"
            | "node"
            | "nodejs"
            | "bun"
            | "ruby"
            | "perl"
            | "php"
            | "lua"
            | "sh"
            | "bash"
            | "dash"
            | "ash"
            | "zsh"
            | "java"
    )
}

/// The script operand of an interpreter's argv, if any.
fn script_operand(argv: &[String]) -> Option<&str> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // Code from the command line or a module: no script file.
            "-c" | "-e" | "-m" | "-p" | "--eval" | "--print" => return None,
            "-jar" => return args.next().map(String::as_str),
            "-cp" | "-classpath" | "--class-path" | "-r" | "--require" | "-I" | "-W" | "-X" => {
                args.next();
            }
            _ if a.starts_with('-') => {}
            _ => return Some(a),
        }
    }
    None
}

fn starts_with_shebang(fs: &ImageFs, path: &str) -> bool {
    let mut head = [0u8; 2];
    fs.open(path)
        .and_then(|mut r| {
            r.read_exact(&mut head)
                .map_err(|e| crate::image::ImageError::io(path.to_string(), e))
        })
        .is_ok()
        && &head == b"#!"
}

/// Where the app's own trees are, with how each was recognised.
pub(super) fn roots(
    fs: &ImageFs,
    workdir: Option<&str>,
    execs: &[ExecRecord],
    cat: &Catalog,
) -> Vec<(String, String)> {
    let mut cands: Vec<(String, String)> = Vec::new();
    if let Some(wd) = workdir.filter(|w| w.starts_with('/')) {
        cands.push((wd.to_string(), "WORKDIR".into()));
    }
    let base = workdir.filter(|w| w.starts_with('/')).unwrap_or("/");
    for e in execs.iter().filter(|e| e.ok) {
        let prog = file_name(&e.path);
        let script = if is_interpreter(prog) {
            script_operand(&e.argv).map(|s| join(base, s))
        } else if starts_with_shebang(fs, &e.path) {
            Some(e.path.clone())
        } else {
            None
        };
        let Some(script) = script else { continue };
        let Ok(r) = fs.resolve(&script, ResolveOptions::default()) else {
            continue;
        };
        if r.exists && fs.get(&r.path).is_some_and(|x| x.is_file()) {
            cands.push((
                parent(&r.path).to_string(),
                format!("directory of {script}, run by {prog}"),
            ));
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (dir, why) in cands {
        let Ok(r) = fs.resolve(&dir, ResolveOptions::default()) else {
            continue;
        };
        let dir = r.path;
        if !r.exists
            || !fs.get(&dir).is_some_and(|e| e.is_dir())
            || SYSTEM_DIRS.contains(&dir.as_str())
            || SYSTEM_TREES.iter().any(|t| dir == *t || is_below(&dir, t))
            || cat.in_package_root(&dir)
            || in_virtualenv(fs, &dir)
            || out.iter().any(|(o, _)| dir == *o || is_below(&dir, o))
        {
            continue;
        }
        // A new root above earlier ones replaces them.
        out.retain(|(o, _)| !is_below(o, &dir));
        out.push((dir, why));
    }
    out.truncate(MAX_ROOTS);
    out
}

/// A virtualenv's own directories (`/venv/bin`) are not the app.
fn in_virtualenv(fs: &ImageFs, dir: &str) -> bool {
    ancestors(dir)
        .chain(std::iter::once(dir))
        .any(|d| fs.get(&join(d, "pyvenv.cfg")).is_some())
}

/// The app tree at `root`; `None` when nothing is left of it.
pub(super) fn unit(fs: &ImageFs, root: &str, why: &str, cat: &Catalog) -> Option<Unit> {
    let mut u = Unit::new(Ecosystem::App, root, root, root);
    u.why = Some(why.to_string());
    u.files.insert(root.to_string());
    let mut skipped: Vec<String> = Vec::new();
    for (p, e) in fs.descendants(root) {
        if skipped.iter().any(|s| is_below(p, s)) {
            continue;
        }
        let name = file_name(p);
        let owned_by_package = cat
            .owner(p)
            .is_some_and(|i| cat.units[i].ecosystem != Ecosystem::Java);
        if e.is_dir() && (SKIPPED_DIRS.contains(&name) || name == "node_modules")
            || cat.in_package_root(p)
        {
            skipped.push(p.to_string());
            continue;
        }
        if owned_by_package || orphan_bytecode(fs, p) {
            continue;
        }
        u.files.insert(p.to_string());
    }
    let (deps, declared) = declared_deps(fs, root);
    u.deps = deps;
    if !declared.is_empty() {
        u.declared_in = Some(declared.join(", "));
    }
    Some(u)
}

/// `__pycache__/x.<tag>.pyc` without `x.py`.
fn orphan_bytecode(fs: &ImageFs, p: &str) -> bool {
    let Some((dir, name)) = p.rsplit_once("/__pycache__/") else {
        return false;
    };
    let Some(stem) = name.strip_suffix(".pyc") else {
        return false;
    };
    let module = stem.split('.').next().unwrap_or(stem);
    fs.get(&format!("{dir}/{module}.py")).is_none()
}

/// What the app's manifests at its root declare, and which manifests said so.
fn declared_deps(fs: &ImageFs, root: &str) -> (Vec<Dep>, Vec<String>) {
    let mut deps: BTreeSet<Dep> = BTreeSet::new();
    let mut declared = Vec::new();
    let mut add = |eco: Ecosystem, names: Vec<String>, file: &str| {
        if !names.is_empty() {
            declared.push(file.to_string());
        }
        deps.extend(names.into_iter().map(|name| Dep {
            ecosystem: eco,
            name,
        }));
    };
    let read = |name: &str| {
        let p = join(root, name);
        fs.get(&p)
            .is_some_and(|e| e.is_file())
            .then(|| read_text(fs, &p).ok())
            .flatten()
            .map(|t| (p, t))
    };
    if let Some((p, t)) = read("package.json")
        && let Some(m) = parse_package_json(&t)
    {
        add(Ecosystem::Node, m.dependencies, &p);
    }
    if let Some((p, t)) = read("requirements.txt") {
        add(Ecosystem::Python, parse_requirements_txt(&t), &p);
    }
    if let Some((p, t)) = read("pyproject.toml") {
        add(Ecosystem::Python, parse_pyproject(&t), &p);
    }
    if let Some((p, t)) = read("Gemfile") {
        add(Ecosystem::Ruby, parse_gemfile(&t), &p);
    }
    (deps.into_iter().collect(), declared)
}

/// Distribution names of a requirements file (options, includes and URLs
/// without a name are skipped).
pub(crate) fn parse_requirements_txt(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .filter(|l| !l.contains("://") || l.contains(" @ "))
        .filter_map(requirement_name)
        .collect()
}

/// `[project] dependencies = [...]` (PEP 621) and the keys of
/// `[tool.poetry.dependencies]` (but `python`).
pub(crate) fn parse_pyproject(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut section = "";
    let mut in_list = false;
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.starts_with('[') && !in_list {
            section = l;
            continue;
        }
        if section == "[project]" {
            if !in_list && let Some(rest) = l.strip_prefix("dependencies") {
                let rest = rest.trim_start();
                if let Some(rest) = rest.strip_prefix('=') {
                    in_list = true;
                    quoted_requirements(rest, &mut out);
                    if rest.contains(']') {
                        in_list = false;
                    }
                }
            } else if in_list {
                quoted_requirements(l, &mut out);
                if l.contains(']') {
                    in_list = false;
                }
            }
        } else if section == "[tool.poetry.dependencies]"
            && let Some((k, _)) = l.split_once('=')
        {
            let k = k.trim().trim_matches('"');
            if !k.is_empty() && k != "python" {
                out.push(k.to_string());
            }
        }
    }
    out
}

fn quoted_requirements(s: &str, out: &mut Vec<String>) {
    for (i, part) in s.split(['"', '\'']).enumerate() {
        if i % 2 == 1 {
            out.extend(requirement_name(part));
        }
    }
}

/// `gem "name"` lines outside `group :development` / `:test` blocks.
pub(crate) fn parse_gemfile(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Depth of `do ... end` blocks, and the depth a skipped group began at.
    let mut depth = 0usize;
    let mut skip_from: Option<usize> = None;
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        let opens = l.ends_with(" do") || l.contains(" do |");
        if l.starts_with("group ") && opens {
            let dev_only = l
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter_map(|w| w.strip_prefix(':'))
                .all(|g| matches!(g, "development" | "test"));
            if dev_only && skip_from.is_none() {
                skip_from = Some(depth);
            }
        }
        if opens {
            depth += 1;
            continue;
        }
        if l == "end" {
            depth = depth.saturating_sub(1);
            if skip_from == Some(depth) {
                skip_from = None;
            }
            continue;
        }
        if skip_from.is_some() {
            continue;
        }
        if let Some(rest) = l.strip_prefix("gem ") {
            let rest = rest.trim_start();
            if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'')
                && let Some(end) = rest[1..].find(q)
            {
                out.push(rest[1..1 + end].to_string());
            }
        }
    }
    out
}
