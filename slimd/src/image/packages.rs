//! Package databases inside an image: dpkg (`/var/lib/dpkg/status` with
//! `info/<pkg>[:arch].list`, and distroless's `status.d/`) and apk
//! (`/lib/apk/db/installed`). Names, versions and file lists, plus a path
//! to package lookup that also knows the paths after symlinks (on merged-/usr
//! systems dpkg lists `/bin/ls`, which is `/usr/bin/ls` in the image).

use std::collections::HashMap;

use serde::Serialize;

use super::error::Result;
use super::fs::ImageFs;
use super::fs::ResolveOptions;
use super::path::normalize;

/// Which package manager recorded a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Dpkg,
    Apk,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub manager: PackageManager,
    /// Source package (dpkg) or origin (apk), when recorded.
    pub source: Option<String>,
    /// Paths the package installed, as its database lists them.
    pub files: Vec<String>,
}

/// The packages of an image and who owns which path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageDb {
    pub packages: Vec<Package>,
    #[serde(skip)]
    owners: HashMap<String, usize>,
}

/// Largest database file we read.
const MAX_DB: u64 = 256 << 20;

impl PackageDb {
    /// Reads every database present in the image (none gives an empty db).
    pub fn read(fs: &ImageFs) -> Result<PackageDb> {
        let mut packages = Vec::new();
        if let Ok(text) = read_text(fs, "/var/lib/dpkg/status") {
            for mut p in parse_dpkg_status(&text) {
                let arch = p.arch.clone().unwrap_or_default();
                for list in [
                    format!("/var/lib/dpkg/info/{}:{arch}.list", p.name),
                    format!("/var/lib/dpkg/info/{}.list", p.name),
                ] {
                    if let Ok(t) = read_text(fs, &list) {
                        p.files = parse_list(&t);
                        break;
                    }
                }
                packages.push(p);
            }
        }
        // distroless: one stanza file per package, files from md5sums.
        let status_d = "/var/lib/dpkg/status.d";
        let entries: Vec<String> = fs
            .children(status_d)
            .filter(|(_, e)| e.is_file())
            .map(|(p, _)| p.to_string())
            .collect();
        for f in &entries {
            if f.ends_with(".md5sums") {
                continue;
            }
            if let Ok(text) = read_text(fs, f) {
                for mut p in parse_dpkg_status(&text) {
                    if let Ok(sums) = read_text(fs, &format!("{f}.md5sums")) {
                        p.files = sums
                            .lines()
                            .filter_map(|l| l.split_once("  ").map(|(_, p)| normalize(p.trim())))
                            .collect();
                    }
                    packages.push(p);
                }
            }
        }
        if let Ok(text) = read_text(fs, "/lib/apk/db/installed") {
            packages.extend(parse_apk_installed(&text));
        }
        let mut db = PackageDb {
            packages,
            owners: HashMap::new(),
        };
        db.index(fs);
        Ok(db)
    }

    /// Maps each listed non-directory path, and where it leads in the
    /// image, to its package (the first package listing it wins).
    fn index(&mut self, fs: &ImageFs) {
        for (i, p) in self.packages.iter().enumerate() {
            for f in &p.files {
                if fs.get(f).is_some_and(|e| e.is_dir()) {
                    continue;
                }
                self.owners.entry(f.clone()).or_insert(i);
                if let Ok(r) = fs.resolve(f, ResolveOptions::no_follow())
                    && r.exists
                    && &r.path != f
                    && !fs.get(&r.path).is_some_and(|e| e.is_dir())
                {
                    self.owners.entry(r.path).or_insert(i);
                }
            }
        }
    }

    /// Whether the image has any package database we read.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The package that installed `path` (as listed, or its location after
    /// symlinks in its parent directories).
    pub fn owner_of(&self, path: &str) -> Option<&Package> {
        self.owners.get(path).map(|&i| &self.packages[i])
    }

    /// A package by name.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// A database file as text; the paths it lists are bytes, decoded like any
/// name ([`super::name`]), so a listed non-UTF-8 path matches the image's.
fn read_text(fs: &ImageFs, path: &str) -> Result<String> {
    Ok(super::name::decode_owned(fs.read(path, MAX_DB)?))
}

/// `.list` files: one path per line; "/." is the root.
fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "/.")
        .map(normalize)
        .collect()
}

/// Parses dpkg's status file: RFC 822-like stanzas separated by blank
/// lines; continuation lines start with a space. Only installed (or
/// half-installed) packages are returned.
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        let Some(name) = fields.get("Package") else {
            continue;
        };
        let state = fields
            .get("Status")
            .and_then(|s| s.split_whitespace().nth(2))
            .unwrap_or("installed");
        if matches!(state, "not-installed" | "config-files") {
            continue;
        }
        out.push(Package {
            name: name.to_string(),
            version: fields.get("Version").unwrap_or(&"").to_string(),
            arch: fields.get("Architecture").map(|s| s.to_string()),
            manager: PackageManager::Dpkg,
            source: fields
                .get("Source")
                .map(|s| s.split_whitespace().next().unwrap_or(s).to_string()),
            files: Vec::new(),
        });
    }
    out
}

/// Parses apk's installed database: stanzas of `X:value` lines; `F:` sets
/// the directory for the following `R:` files.
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut p = Package {
            name: String::new(),
            version: String::new(),
            arch: None,
            manager: PackageManager::Apk,
            source: None,
            files: Vec::new(),
        };
        let mut dir = String::new();
        for line in stanza.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "P" => p.name = v.to_string(),
                "V" => p.version = v.to_string(),
                "A" => p.arch = Some(v.to_string()),
                "o" => p.source = Some(v.to_string()),
                "F" => dir = v.to_string(),
                "R" => p.files.push(normalize(&format!("{dir}/{v}"))),
                _ => {}
            }
        }
        if !p.name.is_empty() {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::{LayerBuilder, image_from};

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\n\
Architecture: amd64\nMulti-Arch: same\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\n\
Description: GNU C Library\n shared libraries\n .\n more\n\n\
Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n\
Package: bash-doc\nStatus: install ok installed\nArchitecture: all\nVersion: 5.2.15-2\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n";

    #[test]
    fn dpkg_with_lists_and_merged_usr() {
        let layer = LayerBuilder::new()
            .symlink("bin", "usr/bin")
            .exe("usr/bin/bash", b"bash")
            .file("usr/lib/x86_64-linux-gnu/libc.so.6", b"libc")
            .file("var/lib/dpkg/status", STATUS.as_bytes())
            .file(
                "var/lib/dpkg/info/libc6:amd64.list",
                b"/.\n/usr\n/usr/lib/x86_64-linux-gnu/libc.so.6\n",
            )
            .file("var/lib/dpkg/info/bash.list", b"/.\n/bin\n/bin/bash\n")
            // A listed name that is not UTF-8 matches the image's entry.
            .raw(
                b"usr/share/doc/bash/caf\xe9",
                tar::EntryType::Regular,
                b"",
                b"doc",
            )
            .raw(
                b"var/lib/dpkg/info/bash-doc.list",
                tar::EntryType::Regular,
                b"",
                b"/.\n/usr/share/doc/bash/caf\xe9\n",
            )
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], s.path()).unwrap();
        let db = PackageDb::read(&img.fs).unwrap();
        let names: Vec<_> = db
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("libc6", "2.36-9+deb12u4"),
                ("bash", "5.2.15-2+b2"),
                ("bash-doc", "5.2.15-2")
            ]
        );
        assert_eq!(db.get("libc6").unwrap().source.as_deref(), Some("glibc"));
        assert_eq!(
            db.owner_of("/usr/lib/x86_64-linux-gnu/libc.so.6")
                .unwrap()
                .name,
            "libc6"
        );
        assert_eq!(db.owner_of("/bin/bash").unwrap().name, "bash");
        assert_eq!(db.owner_of("/usr/bin/bash").unwrap().name, "bash");
        assert!(db.owner_of("/usr").is_none(), "directories are shared");
        let latin1 = crate::image::name::decode(b"/usr/share/doc/bash/caf\xe9");
        assert!(img.fs.get(&latin1).is_some());
        assert_eq!(db.owner_of(&latin1).unwrap().name, "bash-doc");
    }

    #[test]
    fn apk_installed() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\n\
C:Q1def=\nP:busybox\nV:1.36.1-r5\nF:bin\nR:busybox\nF:etc\nR:securetty\n";
        let p = parse_apk_installed(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(
            p[0].files,
            vec!["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"]
        );
        assert_eq!(p[1].files, vec!["/bin/busybox", "/etc/securetty"]);
        assert_eq!(p[1].version, "1.36.1-r5");
    }
}
