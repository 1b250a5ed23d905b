//! Finding each ecosystem's packages in an image and reading their
//! metadata: Python distributions, Node packages, gems, jars and JDKs.
//! Metadata that cannot be read degrades a package to its directory (and a
//! note), never fails the build.

use std::collections::BTreeSet;

use super::{Catalog, Dep, PackageError, Unit, is_below};
use crate::image::ImageFs;
use crate::image::path::{file_name, join, parent};
use crate::resolve::options::Ecosystem;

/// Largest metadata file read (a big package's RECORD is about 1 MB).
const MAX_META: u64 = 8 << 20;

/// Finds every unit; JDKs first (they own the jars inside them), jars last.
pub(super) fn scan(fs: &ImageFs, cat: &mut Catalog) {
    let mut sites = Vec::new();
    let mut node_dirs = Vec::new();
    let mut gem_homes = Vec::new();
    let mut jdks = Vec::new();
    let mut jars = Vec::new();
    for (p, e) in fs.iter() {
        let name = file_name(p);
        if e.is_dir() {
            match name {
                "site-packages" | "dist-packages" => sites.push(p.to_string()),
                "node_modules" => node_dirs.push(p.to_string()),
                "specifications" => {
                    let home = parent(p);
                    if fs.get(&join(home, "gems")).is_some_and(|e| e.is_dir()) {
                        gem_homes.push(home.to_string());
                    }
                }
                _ => {}
            }
        } else if e.is_file() {
            if name == "modules" && file_name(parent(p)) == "lib" {
                let home = parent(parent(p));
                if ["bin/java", "release"]
                    .iter()
                    .any(|f| fs.get(&join(home, f)).is_some())
                {
                    jdks.push(home.to_string());
                }
            } else if name.ends_with(".jar") {
                jars.push(p.to_string());
            }
        }
    }
    for home in &jdks {
        cat.note_root(Ecosystem::Java, home);
        cat.push(jdk(fs, home));
    }
    for site in &sites {
        cat.note_root(Ecosystem::Python, site);
        scan_site(fs, site, cat);
    }
    for nm in &node_dirs {
        cat.note_root(Ecosystem::Node, nm);
        scan_node_modules(fs, nm, cat);
    }
    for home in &gem_homes {
        cat.note_root(Ecosystem::Ruby, home);
        scan_gem_home(fs, home, cat);
    }
    for jar in &jars {
        if cat.owner(jar).is_some() || jdks.iter().any(|h| is_below(jar, h)) {
            continue;
        }
        let dir = parent(jar);
        cat.note_root(Ecosystem::Java, dir);
        let mut u = Unit::new(Ecosystem::Java, file_name(jar), jar, dir);
        u.files.insert(jar.clone());
        u.lazy_jar_manifest = true;
        cat.push(u);
    }
}

/// A metadata file as text; the paths it lists (RECORD, installed-files.txt)
/// are bytes, decoded like every name ([`crate::image::name`]).
pub(super) fn read_text(fs: &ImageFs, path: &str) -> Result<String, PackageError> {
    fs.read(path, MAX_META)
        .map(crate::image::name::decode_owned)
        .map_err(|source| PackageError::Read {
            path: path.to_string(),
            source,
        })
}

/// Reads a metadata file that may be absent; a present but unreadable one
/// is noted.
fn read_optional(fs: &ImageFs, path: &str, notes: &mut Vec<String>) -> Option<String> {
    fs.get(path)?;
    match read_text(fs, path) {
        Ok(t) => Some(t),
        Err(e) => {
            notes.push(e.to_string());
            None
        }
    }
}

/// `dir` and everything below it.
fn tree(fs: &ImageFs, dir: &str, out: &mut BTreeSet<String>) {
    if fs.get(dir).is_none() {
        return;
    }
    out.insert(dir.to_string());
    out.extend(fs.descendants(dir).map(|(p, _)| p.to_string()));
}

// ---------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------

/// Core metadata (METADATA, PKG-INFO): RFC 822 headers up to the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PyMeta {
    pub name: Option<String>,
    pub version: Option<String>,
    pub requires: Vec<String>,
}

pub(crate) fn parse_py_metadata(text: &str) -> PyMeta {
    let mut m = PyMeta::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Name" => m.name = Some(v.to_string()),
            "Version" => m.version = Some(v.to_string()),
            "Requires-Dist" => m.requires.extend(requirement_name(v)),
            _ => {}
        }
    }
    m
}

/// The distribution a requirement names (`text-unidecode (>=1.3)`,
/// `Jinja2>=3.1.2; python_version < "3.8"`). Extras-only requirements are
/// skipped: nothing asked for the extra. Other markers are not evaluated:
/// a dependency the image lacks is skipped anyway.
pub(crate) fn requirement_name(spec: &str) -> Option<String> {
    let (req, marker) = spec.split_once(';').unwrap_or((spec, ""));
    let marker: String = marker.chars().filter(|c| !c.is_whitespace()).collect();
    if marker.contains("extra==") || marker.contains("extra!=") {
        return None;
    }
    let name: String = req
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// RECORD paths (CSV: path,hash,size; a path with a comma is quoted).
pub(crate) fn parse_record(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let path = if let Some(rest) = line.strip_prefix('"') {
            let mut p = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        p.push('"');
                    } else {
                        break;
                    }
                } else {
                    p.push(c);
                }
            }
            p
        } else {
            line.split(',').next().unwrap_or("").to_string()
        };
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

/// Cached bytecode of a module: `dir/__pycache__/stem.*.pyc`.
fn pycache_of(fs: &ImageFs, py: &str, out: &mut BTreeSet<String>) {
    let Some(stem) = file_name(py).strip_suffix(".py") else {
        return;
    };
    let cache = join(parent(py), "__pycache__");
    let prefix = format!("{cache}/{stem}.");
    if fs.get(&cache).is_some_and(|e| e.is_dir()) {
        out.extend(
            fs.children(&cache)
                .filter(|(p, _)| p.starts_with(&prefix) && p.ends_with(".pyc"))
                .map(|(p, _)| p.to_string()),
        );
    }
}

/// The paths of a top-level module name: a package directory, a `.py` with
/// its bytecode, compiled extensions (`name.cpython-311-x86_64-linux-gnu.so`).
fn top_level_paths(fs: &ImageFs, site: &str, name: &str, out: &mut BTreeSet<String>) {
    let name = name.trim().trim_matches('/');
    if name.is_empty() || name.contains("..") {
        return;
    }
    let dir = join(site, name);
    if fs.get(&dir).is_some_and(|e| e.is_dir()) {
        tree(fs, &dir, out);
    }
    let py = format!("{dir}.py");
    if fs.get(&py).is_some() {
        out.insert(py.clone());
        pycache_of(fs, &py, out);
    }
    let prefix = format!("{}.", file_name(&dir));
    out.extend(
        fs.children(parent(&dir))
            .filter(|(p, e)| {
                let n = file_name(p);
                !e.is_dir() && n.starts_with(&prefix) && (n.ends_with(".so") || n.ends_with(".pyd"))
            })
            .map(|(p, _)| p.to_string()),
    );
}

fn scan_site(fs: &ImageFs, site: &str, cat: &mut Catalog) {
    let children: Vec<(String, bool)> = fs
        .children(site)
        .map(|(p, e)| (p.to_string(), e.is_dir()))
        .collect();
    for (p, is_dir) in &children {
        let name = file_name(p);
        let unit = if name.ends_with(".dist-info") && *is_dir {
            dist_info(fs, site, p, &mut cat.notes)
        } else if name.ends_with(".egg-info") {
            egg_info(fs, site, p, *is_dir, &mut cat.notes)
        } else {
            continue;
        };
        cat.push(unit);
    }
    // Modules no distribution claims (vendored, copied in by hand).
    for (p, is_dir) in &children {
        let name = file_name(p);
        let claimed = cat.owner(p).is_some()
            || (*is_dir && fs.descendants(p).any(|(d, _)| cat.owner(d).is_some()));
        if claimed
            || name == "__pycache__"
            || name.starts_with('.')
            || name.ends_with(".dist-info")
            || name.ends_with(".egg-info")
        {
            continue;
        }
        let is_code = name.ends_with(".py") || name.ends_with(".so");
        if !is_dir && !is_code {
            continue;
        }
        let stem = if *is_dir {
            name
        } else {
            name.split('.').next().unwrap_or(name)
        };
        let mut u = Unit::new(Ecosystem::Python, stem, p, site);
        top_level_paths(fs, site, stem, &mut u.files);
        u.files.retain(|f| cat.owner(f).is_none());
        if !u.files.is_empty() {
            cat.push(u);
        }
    }
}

fn dist_info(fs: &ImageFs, site: &str, dir: &str, notes: &mut Vec<String>) -> Unit {
    let dir_name = file_name(dir).trim_end_matches(".dist-info");
    let meta_path = join(dir, "METADATA");
    let meta = read_optional(fs, &meta_path, notes)
        .map(|t| parse_py_metadata(&t))
        .unwrap_or_default();
    let fallback = dir_name.split('-').next().unwrap_or(dir_name);
    let name = meta.name.clone().unwrap_or_else(|| fallback.to_string());
    let mut u = Unit::new(Ecosystem::Python, &name, dir, site);
    u.version = meta
        .version
        .clone()
        .or_else(|| dir_name.split_once('-').map(|(_, v)| v.to_string()));
    tree(fs, dir, &mut u.metadata);
    let record = read_optional(fs, &join(dir, "RECORD"), notes)
        .map(|t| parse_record(&t))
        .unwrap_or_default();
    for rel in &record {
        let abs = join(site, rel);
        if abs == dir || is_below(&abs, dir) || fs.get(&abs).is_none() {
            continue;
        }
        u.files.insert(abs.clone());
        pycache_of(fs, &abs, &mut u.files);
    }
    if u.files.is_empty() {
        // No RECORD (Debian strips it): the top-level modules.
        let tops = read_optional(fs, &join(dir, "top_level.txt"), notes);
        add_top_levels(fs, site, &name, tops.as_deref(), &mut u.files);
    }
    u.anchors = anchors(site, &u.files, dir);
    u.deps = deps(Ecosystem::Python, &meta.requires);
    if !u.deps.is_empty() {
        u.declared_in = Some(meta_path);
    }
    u
}

fn egg_info(fs: &ImageFs, site: &str, path: &str, is_dir: bool, notes: &mut Vec<String>) -> Unit {
    let base = file_name(path).trim_end_matches(".egg-info");
    let pkg_info = if is_dir {
        join(path, "PKG-INFO")
    } else {
        path.to_string()
    };
    let meta = read_optional(fs, &pkg_info, notes)
        .map(|t| parse_py_metadata(&t))
        .unwrap_or_default();
    let fallback = base.split('-').next().unwrap_or(base);
    let name = meta.name.clone().unwrap_or_else(|| fallback.to_string());
    let mut u = Unit::new(Ecosystem::Python, &name, path, site);
    u.version = meta.version.clone();
    let mut requires = meta.requires.clone();
    if is_dir {
        tree(fs, path, &mut u.metadata);
        if let Some(t) = read_optional(fs, &join(path, "requires.txt"), notes) {
            // Sections (`[extra]`, `[:python_version<"3"]`) are conditional.
            requires.extend(
                t.lines()
                    .take_while(|l| !l.trim_start().starts_with('['))
                    .filter_map(requirement_name),
            );
            u.declared_in = Some(join(path, "requires.txt"));
        }
        if let Some(t) = read_optional(fs, &join(path, "installed-files.txt"), notes) {
            for l in t.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let abs = join(path, l);
                if abs != path && !is_below(&abs, path) && fs.get(&abs).is_some() {
                    u.files.insert(abs);
                }
            }
        }
        if u.files.is_empty() {
            let tops = read_optional(fs, &join(path, "top_level.txt"), notes);
            add_top_levels(fs, site, &name, tops.as_deref(), &mut u.files);
        }
    } else {
        u.metadata.insert(path.to_string());
        add_top_levels(fs, site, &name, None, &mut u.files);
    }
    u.anchors = anchors(site, &u.files, path);
    u.deps = deps(Ecosystem::Python, &requires);
    if u.declared_in.is_none() && !u.deps.is_empty() {
        u.declared_in = Some(pkg_info);
    }
    u
}

/// Top-level modules from top_level.txt, else guessed from the name.
fn add_top_levels(
    fs: &ImageFs,
    site: &str,
    name: &str,
    top_level: Option<&str>,
    out: &mut BTreeSet<String>,
) {
    match top_level {
        Some(t) if t.lines().any(|l| !l.trim().is_empty()) => {
            for l in t.lines() {
                top_level_paths(fs, site, l, out);
            }
        }
        _ => {
            let guess = name.replace(['-', '.'], "_");
            top_level_paths(fs, site, &guess, out);
            if guess.to_lowercase() != guess {
                top_level_paths(fs, site, &guess.to_lowercase(), out);
            }
        }
    }
}

/// The metadata directory and each top-level entry of the site directory
/// the files live in: what an override path can name.
fn anchors(site: &str, files: &BTreeSet<String>, meta: &str) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert(meta.to_string());
    for f in files {
        if let Some(rest) = f.strip_prefix(site).and_then(|r| r.strip_prefix('/')) {
            let top = rest.split('/').next().unwrap_or(rest);
            out.insert(join(site, top));
        }
    }
    out.into_iter().collect()
}

fn deps(eco: Ecosystem, names: &[String]) -> Vec<Dep> {
    let mut v: Vec<Dep> = names
        .iter()
        .map(|n| Dep {
            ecosystem: eco,
            name: n.clone(),
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

// ---------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------

/// What a package.json says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeMeta {
    pub name: Option<String>,
    pub version: Option<String>,
    pub dependencies: Vec<String>,
}

/// `dependencies`, `optionalDependencies` and `peerDependencies` (npm 7+
/// installs peers); never `devDependencies`.
pub(crate) fn parse_package_json(text: &str) -> Option<NodeMeta> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let mut deps = Vec::new();
    for k in ["dependencies", "optionalDependencies", "peerDependencies"] {
        if let Some(obj) = v.get(k).and_then(|d| d.as_object()) {
            deps.extend(obj.keys().cloned());
        }
    }
    deps.sort();
    deps.dedup();
    Some(NodeMeta {
        name: s("name"),
        version: s("version"),
        dependencies: deps,
    })
}

fn scan_node_modules(fs: &ImageFs, nm: &str, cat: &mut Catalog) {
    let dirs: Vec<String> = fs
        .children(nm)
        .filter(|(_, e)| e.is_dir())
        .map(|(p, _)| p.to_string())
        .collect();
    for d in dirs {
        let name = file_name(&d).to_string();
        // `.bin` (links, kept when run), `.cache`, `.pnpm` (its inner
        // node_modules are scanned on their own).
        if name.starts_with('.') {
            continue;
        }
        if name.starts_with('@') {
            let scoped: Vec<String> = fs
                .children(&d)
                .filter(|(_, e)| e.is_dir())
                .map(|(p, _)| p.to_string())
                .collect();
            for s in scoped {
                let full = format!("{name}/{}", file_name(&s));
                let u = node_package(fs, &s, &full, &mut cat.notes);
                cat.push(u);
            }
        } else {
            let u = node_package(fs, &d, &name, &mut cat.notes);
            cat.push(u);
        }
    }
}

fn node_package(fs: &ImageFs, dir: &str, dir_name: &str, notes: &mut Vec<String>) -> Unit {
    let pj = join(dir, "package.json");
    let meta = read_optional(fs, &pj, notes).and_then(|t| {
        let m = parse_package_json(&t);
        if m.is_none() {
            notes.push(format!("{pj}: not valid JSON"));
        }
        m
    });
    let meta = meta.unwrap_or_default();
    let mut u = Unit::new(
        Ecosystem::Node,
        meta.name.as_deref().unwrap_or(dir_name),
        dir,
        dir,
    );
    u.version = meta.version;
    let nested = join(dir, "node_modules");
    u.files.insert(dir.to_string());
    for (p, _) in fs.descendants(dir) {
        if p == nested || is_below(p, &nested) {
            continue;
        }
        if p == pj {
            u.metadata.insert(p.to_string());
        } else {
            u.files.insert(p.to_string());
        }
    }
    u.deps = deps(Ecosystem::Node, &meta.dependencies);
    if !u.deps.is_empty() {
        u.declared_in = Some(pj);
    }
    u
}

// ---------------------------------------------------------------------------
// Ruby
// ---------------------------------------------------------------------------

/// What a gemspec says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GemMeta {
    pub name: Option<String>,
    pub version: Option<String>,
    pub runtime_deps: Vec<String>,
}

/// A line-by-line reading of the Ruby that RubyGems writes into
/// `specifications/*.gemspec` (`s.name = "rack".freeze`,
/// `s.add_runtime_dependency(%q<rack>.freeze, [">= 0"])`); development
/// dependencies are not needed at run time.
pub(crate) fn parse_gemspec(text: &str) -> GemMeta {
    let mut m = GemMeta::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if m.name.is_none() && line.contains(".name = ") {
            m.name = first_ruby_string(line.split_once(".name = ").map_or("", |x| x.1));
        } else if m.version.is_none() && line.contains(".version = ") {
            m.version = first_ruby_string(line.split_once(".version = ").map_or("", |x| x.1));
        } else if let Some(rest) = ["add_runtime_dependency", "add_dependency"]
            .iter()
            .find_map(|k| line.split_once(k).map(|x| x.1))
            && !line.contains("add_development_dependency")
            && let Some(n) = first_ruby_string(rest)
        {
            m.runtime_deps.push(n);
        }
    }
    m.runtime_deps.sort();
    m.runtime_deps.dedup();
    m
}

/// The first string literal: `%q<x>`, `"x"` or `'x'`.
fn first_ruby_string(s: &str) -> Option<String> {
    let starts = [s.find("%q<"), s.find('"'), s.find('\'')];
    let first = starts.iter().flatten().min()?;
    let rest = &s[*first..];
    let (body, close) = if let Some(r) = rest.strip_prefix("%q<") {
        (r, '>')
    } else {
        (&rest[1..], rest.chars().next()?)
    };
    let end = body.find(close)?;
    let v = &body[..end];
    (!v.is_empty()).then(|| v.to_string())
}

fn scan_gem_home(fs: &ImageFs, home: &str, cat: &mut Catalog) {
    let specs_dir = join(home, "specifications");
    let specs: Vec<String> = fs
        .children(&specs_dir)
        .filter(|(p, e)| e.is_file() && p.ends_with(".gemspec"))
        .map(|(p, _)| p.to_string())
        .collect();
    // Compiled extensions: extensions/<platform>/<api>/<name-version>/.
    let mut ext_dirs = Vec::new();
    let ext_root = join(home, "extensions");
    for (plat, e) in fs.children(&ext_root) {
        if e.is_dir() {
            for (api, e2) in fs.children(plat) {
                if e2.is_dir() {
                    ext_dirs.push(api.to_string());
                }
            }
        }
    }
    for spec in specs {
        let stem = file_name(&spec).trim_end_matches(".gemspec").to_string();
        let meta = read_optional(fs, &spec, &mut cat.notes)
            .map(|t| parse_gemspec(&t))
            .unwrap_or_default();
        // `name-1.2.3` or `name-1.2.3-x86_64-linux`: the version starts at
        // the first `-` followed by a digit.
        let split = stem
            .match_indices('-')
            .find(|(i, _)| stem[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
            .map(|(i, _)| i);
        let name = meta
            .name
            .clone()
            .unwrap_or_else(|| split.map_or(stem.clone(), |i| stem[..i].to_string()));
        let gem_dir = join(home, &format!("gems/{stem}"));
        let mut u = Unit::new(Ecosystem::Ruby, &name, &gem_dir, home);
        u.version = meta
            .version
            .clone()
            .or_else(|| split.map(|i| stem[i + 1..].to_string()));
        tree(fs, &gem_dir, &mut u.files);
        for d in &ext_dirs {
            tree(fs, &join(d, &stem), &mut u.files);
        }
        u.metadata.insert(spec.clone());
        u.anchors = vec![spec.clone()];
        u.deps = deps(Ecosystem::Ruby, &meta.runtime_deps);
        if !u.deps.is_empty() {
            u.declared_in = Some(spec);
        }
        cat.push(u);
    }
}

// ---------------------------------------------------------------------------
// Java
// ---------------------------------------------------------------------------

/// A JDK or JRE's runtime: what the JVM reads or dlopens as it goes
/// (`lib/` with `modules`, its libraries and security files, `conf/`),
/// without headers, jmods, man pages or the source archive.
fn jdk(fs: &ImageFs, home: &str) -> Unit {
    let mut u = Unit::new(Ecosystem::Java, "jdk", home, home);
    let release = join(home, "release");
    if let Ok(t) = read_text(fs, &release) {
        u.version = t.lines().find_map(|l| {
            l.strip_prefix("JAVA_VERSION=")
                .map(|v| v.trim_matches('"').to_string())
        });
    }
    for d in ["lib", "conf"] {
        tree(fs, &join(home, d), &mut u.files);
    }
    u.files.remove(&join(home, "lib/src.zip"));
    let java = join(home, "bin/java");
    for f in [release, java] {
        if fs.get(&f).is_some() {
            u.files.insert(f);
        }
    }
    u.anchors = vec![join(home, "lib")];
    u
}
