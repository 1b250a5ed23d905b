//! The package databases a slim image carries, trimmed to what is really
//! there, so that scanners report what the image holds (a missing database
//! makes them report nothing, which looks safe and is false):
//! - dpkg: `status` lists only packages that still have files; their
//!   `info/<pkg>.list` and `info/<pkg>.md5sums` list only kept files (and
//!   the directories above them);
//! - apk: `installed` the same way, with each file's checksum lines;
//! - Python distributions and Node packages that still have files keep
//!   their metadata (METADATA, RECORD trimmed to kept files; package.json).
//!
//! Pure: the original's [`ImageFs`] and which paths the slim image keeps in,
//! new file contents out (the writer adds them as synthetic entries).

use std::collections::BTreeSet;

use crate::image::ImageFs;

use super::real_path;

/// A database file to write into the slim image in place of the original's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimmedFile {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// What the slim image needs besides its kept paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrimmedDb {
    /// Rewritten database files.
    pub files: Vec<TrimmedFile>,
    /// Original metadata files to keep as they are (package.json,
    /// METADATA, a dpkg package's other info files).
    pub keep: Vec<String>,
    /// Packages still listed, per database ("dpkg", "apk").
    pub packages: Vec<(String, usize)>,
}

const MAX: u64 = 256 << 20;

fn read(fs: &ImageFs, path: &str) -> Option<String> {
    fs.read(path, MAX)
        .ok()
        .map(crate::image::name::decode_owned)
}

/// Trims every database the original has to the paths `kept` says the
/// slim image holds.
pub fn trim(fs: &ImageFs, kept: &dyn Fn(&str) -> bool) -> TrimmedDb {
    let mut out = TrimmedDb::default();
    dpkg(fs, kept, &mut out);
    apk(fs, kept, &mut out);
    language(fs, kept, &mut out);
    out
}

fn is_kept(fs: &ImageFs, kept: &dyn Fn(&str) -> bool, listed: &str) -> bool {
    real_path(fs, listed).is_some_and(|p| kept(&p))
}

fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn dpkg(fs: &ImageFs, kept: &dyn Fn(&str) -> bool, out: &mut TrimmedDb) {
    let info = "/var/lib/dpkg/info";
    let Some(status) = read(fs, "/var/lib/dpkg/status") else {
        return;
    };
    let mut stanzas = Vec::new();
    for stanza in status.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let Some(name) = field(stanza, "Package") else {
            continue;
        };
        let arch = field(stanza, "Architecture").unwrap_or("");
        let base = [format!("{info}/{name}:{arch}"), format!("{info}/{name}")]
            .into_iter()
            .find(|b| fs.get(&format!("{b}.list")).is_some());
        let Some(base) = base else { continue };
        let list = read(fs, &format!("{base}.list")).unwrap_or_default();
        let files: Vec<&str> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let kept_files: BTreeSet<&str> = files
            .iter()
            .copied()
            .filter(|f| is_kept(fs, kept, f))
            .collect();
        if kept_files.is_empty() {
            continue;
        }
        let lines: Vec<&str> = files
            .iter()
            .copied()
            .filter(|f| {
                kept_files.contains(f)
                    || (*f == "/.")
                    || kept_files
                        .iter()
                        .any(|k| k.starts_with(&format!("{}/", f.trim_end_matches('/'))))
            })
            .collect();
        out.files.push(TrimmedFile {
            path: format!("{base}.list"),
            content: lines_bytes(&lines),
            mode: 0o644,
        });
        if let Some(sums) = read(fs, &format!("{base}.md5sums")) {
            let lines: Vec<&str> = sums
                .lines()
                .filter(|l| {
                    l.split_once("  ").is_some_and(|(_, p)| {
                        kept_files.contains(format!("/{}", p.trim()).as_str())
                    })
                })
                .collect();
            out.files.push(TrimmedFile {
                path: format!("{base}.md5sums"),
                content: lines_bytes(&lines),
                mode: 0o644,
            });
        }
        // The package's other info files (conffiles, scripts, triggers)
        // keep dpkg's view of it whole.
        let prefix = format!("{}.", base.rsplit('/').next().unwrap_or(""));
        for (p, e) in fs.children(info) {
            let file = p.rsplit('/').next().unwrap_or("");
            if e.is_file()
                && file.starts_with(&prefix)
                && !file.ends_with(".list")
                && !file.ends_with(".md5sums")
            {
                out.keep.push(p.to_string());
            }
        }
        stanzas.push(stanza.trim_end_matches('\n'));
    }
    let mut content = stanzas.join("\n\n").into_bytes();
    content.extend_from_slice(b"\n\n");
    out.packages.push(("dpkg".into(), stanzas.len()));
    out.files.push(TrimmedFile {
        path: "/var/lib/dpkg/status".into(),
        content,
        mode: 0o644,
    });
}

fn lines_bytes(lines: &[&str]) -> Vec<u8> {
    let mut v = lines.join("\n").into_bytes();
    if !v.is_empty() {
        v.push(b'\n');
    }
    v
}

fn apk(fs: &ImageFs, kept: &dyn Fn(&str) -> bool, out: &mut TrimmedDb) {
    let path = "/lib/apk/db/installed";
    let Some(db) = read(fs, path) else { return };
    let mut stanzas = Vec::new();
    for stanza in db.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let mut lines: Vec<&str> = Vec::new();
        let mut dir = String::new();
        let mut dir_line: Option<&str> = None;
        let mut keep_file = false;
        let mut any = false;
        for l in stanza.lines() {
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            match k {
                "F" => {
                    dir = v.to_string();
                    dir_line = Some(l);
                    keep_file = false;
                }
                "R" => {
                    keep_file = is_kept(fs, kept, &format!("/{dir}/{v}"));
                    if keep_file {
                        if let Some(d) = dir_line.take() {
                            lines.push(d);
                        }
                        lines.push(l);
                        any = true;
                    }
                }
                // A file's attributes follow its R: line.
                "a" | "M" | "Z" if !dir.is_empty() || keep_file => {
                    if keep_file {
                        lines.push(l);
                    }
                }
                _ => {
                    if dir.is_empty() {
                        lines.push(l);
                    }
                }
            }
        }
        if any {
            stanzas.push(lines.join("\n"));
        }
    }
    let mut content = stanzas.join("\n\n").into_bytes();
    content.extend_from_slice(b"\n\n");
    out.packages.push(("apk".into(), stanzas.len()));
    out.files.push(TrimmedFile {
        path: path.into(),
        content,
        mode: 0o644,
    });
}

/// Python distributions and Node packages with a kept file keep their
/// metadata; a RECORD is trimmed to the kept files and the metadata.
fn language(fs: &ImageFs, kept: &dyn Fn(&str) -> bool, out: &mut TrimmedDb) {
    use crate::resolve::options::Ecosystem;
    let cat = crate::resolve::packages::Catalog::scan(fs);
    for u in &cat.units {
        if !matches!(u.ecosystem, Ecosystem::Python | Ecosystem::Node) {
            continue;
        }
        if !u.files.iter().any(|f| kept(f) && !u.metadata.contains(f)) {
            continue;
        }
        for m in &u.metadata {
            if !fs.get(m).is_some_and(|e| e.is_file()) {
                continue;
            }
            if m.ends_with("/RECORD") {
                let Some(text) = read(fs, m) else { continue };
                let site = u.home.trim_end_matches('/');
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let rel = l.split(',').next().unwrap_or("");
                        let p = crate::image::path::normalize(&format!("{site}/{rel}"));
                        kept(&p) || u.metadata.contains(&p)
                    })
                    .collect();
                out.files.push(TrimmedFile {
                    path: m.clone(),
                    content: lines_bytes(&lines),
                    mode: fs.get(m).map(|e| e.mode).unwrap_or(0o644),
                });
            } else {
                out.keep.push(m.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::{LayerBuilder, image_from};

    const STATUS: &str = "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n\n\
Package: gone\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n";

    #[test]
    fn dpkg_and_apk_list_only_what_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let l = LayerBuilder::new()
            .dir("var/lib/dpkg/info", 0o755)
            .file("var/lib/dpkg/status", STATUS.as_bytes())
            .file(
                "var/lib/dpkg/info/curl.list",
                b"/.\n/usr\n/usr/bin\n/usr/bin/curl\n/usr/share\n/usr/share/doc\n/usr/share/doc/curl/README\n",
            )
            .file(
                "var/lib/dpkg/info/curl.md5sums",
                b"aaaa  usr/bin/curl\nbbbb  usr/share/doc/curl/README\n",
            )
            .file("var/lib/dpkg/info/curl.postinst", b"#!/bin/sh\n")
            .file("var/lib/dpkg/info/gone.list", b"/usr/lib/gone.so\n")
            .exe("usr/bin/curl", b"c")
            .file("usr/share/doc/curl/README", b"r")
            .file("usr/lib/gone.so", b"g")
            .dir("lib/apk/db", 0o755)
            .file(
                "lib/apk/db/installed",
                b"C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1aa\nR:libc.musl-x86_64.so.1\nZ:Q1bb\n\nP:dropme\nV:1\nF:usr/bin\nR:dropme\n",
            )
            .exe("lib/ld-musl-x86_64.so.1", b"ld")
            .build();
        let img = image_from(vec![l], t.path()).unwrap();
        let keep = ["/usr/bin/curl", "/lib/ld-musl-x86_64.so.1"];
        let db = trim(&img.fs, &|p| keep.contains(&p));
        let file = |p: &str| {
            String::from_utf8(
                db.files
                    .iter()
                    .find(|f| f.path == p)
                    .unwrap_or_else(|| panic!("{p} not written: {db:?}"))
                    .content
                    .clone(),
            )
            .unwrap()
        };
        let status = file("/var/lib/dpkg/status");
        assert!(
            status.contains("Package: curl") && !status.contains("Package: gone"),
            "{status}"
        );
        assert_eq!(
            file("/var/lib/dpkg/info/curl.list"),
            "/.\n/usr\n/usr/bin\n/usr/bin/curl\n"
        );
        assert_eq!(
            file("/var/lib/dpkg/info/curl.md5sums"),
            "aaaa  usr/bin/curl\n"
        );
        assert_eq!(db.keep, ["/var/lib/dpkg/info/curl.postinst"]);
        assert!(!db.files.iter().any(|f| f.path.contains("gone")));
        let apk = file("/lib/apk/db/installed");
        assert_eq!(
            apk,
            "C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1aa\n\n"
        );
        assert_eq!(
            db.packages,
            [("dpkg".to_string(), 1), ("apk".to_string(), 1)]
        );
        // The trimmed status parses like the original: one package left.
        assert_eq!(crate::image::parse_dpkg_status(&status).len(), 1);
    }
}
