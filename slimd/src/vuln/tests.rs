//! OSV matching with exact expected results: an `introduced`/`fixed`
//! range, a `last_affected` one, unaffected versions (the fixed version
//! itself, a `~` pre-release below it, a PEP 440 post-release), Debian's
//! source-package names, an explicit `versions` list, and the slim delta.

use serde_json::json;

use super::osv::{Database, Record};
use super::*;
use crate::inventory::{Ecosystem, Inventory, InventoryPackage};

fn pkg(
    eco: Ecosystem,
    name: &str,
    version: &str,
    source: Option<&str>,
    files: &[&str],
) -> InventoryPackage {
    InventoryPackage {
        ecosystem: eco,
        name: name.into(),
        version: version.into(),
        arch: None,
        source: source.map(Into::into),
        location: String::new(),
        purl: String::new(),
        files: files.iter().map(|s| s.to_string()).collect(),
        listed_files: files.len(),
        licenses: Vec::new(),
    }
}

fn inventory(pkgs: Vec<InventoryPackage>) -> Inventory {
    Inventory {
        packages: pkgs,
        distro: None,
    }
}

fn record(v: serde_json::Value) -> Record {
    serde_json::from_value(v).unwrap()
}

fn db() -> Database {
    let range = |pkg: &str, eco: &str, events: serde_json::Value| json!([{"package": {"ecosystem": eco, "name": pkg}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}]);
    Database::from_records(vec![
        record(
            json!({"id": "DSA-1", "summary": "curl overflow", "affected": range("curl", "Debian:12", json!([{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u6"}])), "database_specific": {"severity": "high"}}),
        ),
        record(
            json!({"id": "DSA-2", "affected": range("glibc", "Debian:12", json!([{"introduced": "0"}, {"last_affected": "2.36-9+deb12u4"}]))}),
        ),
        record(
            json!({"id": "DSA-3", "affected": range("curl", "Debian:12", json!([{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u5"}]))}),
        ),
        record(
            json!({"id": "DSA-4", "affected": range("curl", "Debian:12", json!([{"introduced": "0"}, {"fixed": "7.88.1-10~"}]))}),
        ),
        record(
            json!({"id": "PYSEC-1", "affected": range("Flask", "PyPI", json!([{"introduced": "1.0"}, {"fixed": "2.0.1rc1"}])), "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}]}),
        ),
        record(
            json!({"id": "PYSEC-2", "affected": range("flask", "PyPI", json!([{"introduced": "2.0.0.post1"}]))}),
        ),
        record(
            json!({"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "lodash"}, "versions": ["4.17.20"]}]}),
        ),
        record(
            json!({"id": "ALPINE-1", "affected": range("musl", "Alpine:v3.18", json!([{"introduced": "0"}, {"fixed": "1.2.4-r3"}]))}),
        ),
    ])
}

fn original() -> Inventory {
    inventory(vec![
        pkg(
            Ecosystem::Debian,
            "curl",
            "7.88.1-10+deb12u5",
            Some("curl"),
            &["/usr/bin/curl", "/usr/share/doc/curl/copyright"],
        ),
        pkg(
            Ecosystem::Debian,
            "libc6",
            "2.36-9+deb12u4",
            Some("glibc"),
            &["/lib/x86_64-linux-gnu/libc.so.6"],
        ),
        pkg(
            Ecosystem::PyPI,
            "flask",
            "2.0.0",
            None,
            &["/app/flask/__init__.py"],
        ),
        pkg(
            Ecosystem::Npm,
            "lodash",
            "4.17.20",
            None,
            &["/app/node_modules/lodash/index.js"],
        ),
        pkg(
            Ecosystem::Alpine,
            "musl",
            "1.2.4-r2",
            None,
            &["/lib/ld-musl-x86_64.so.1"],
        ),
    ])
}

fn ids(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn exact_matches_by_each_ecosystems_rules() {
    let r = VulnReport::of_image(&original(), &db());
    assert_eq!(ids(&r.original), ["DSA-1", "DSA-2", "GHSA-npm", "PYSEC-1"]);
    let dsa1 = &r.original[0];
    assert_eq!(dsa1.fixed.as_deref(), Some("7.88.1-10+deb12u6"));
    assert_eq!(dsa1.severity.as_deref(), Some("high"));
    // last_affected is inclusive and has no fixed version.
    assert_eq!(
        (
            r.original[1].package.as_str(),
            r.original[1].fixed.as_deref()
        ),
        ("libc6", None)
    );
    assert_eq!(r.original[3].fixed.as_deref(), Some("2.0.1rc1"));
    assert!(
        r.original[3]
            .severity
            .as_deref()
            .unwrap()
            .starts_with("CVSS:3.1/")
    );
    // apk versions are not ordered here: said, not guessed.
    assert_eq!(r.unordered, ["Alpine musl 1.2.4-r2 (ALPINE-1)"]);
}

#[test]
fn slimming_removes_advisories_of_packages_it_removed() {
    let slim = inventory(vec![
        pkg(
            Ecosystem::Debian,
            "curl",
            "7.88.1-10+deb12u5",
            Some("curl"),
            &["/usr/bin/curl"],
        ),
        pkg(
            Ecosystem::PyPI,
            "flask",
            "2.0.0",
            None,
            &["/app/flask/__init__.py"],
        ),
    ]);
    let r = VulnReport::delta(&original(), &slim, &db());
    assert_eq!(ids(&r.original), ["DSA-1", "DSA-2", "GHSA-npm", "PYSEC-1"]);
    assert_eq!(ids(r.slim.as_ref().unwrap()), ["DSA-1", "PYSEC-1"]);
    assert_eq!(ids(&r.removed), ["DSA-2", "GHSA-npm"]);
    assert_eq!(ids(&r.remaining), ["DSA-1", "PYSEC-1"]);
    assert_eq!(r.remaining[0].kept_files, Some((1, 2)));
}

#[test]
fn databases_read_from_a_directory_and_a_zip() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("osv/Debian");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = json!({"id": "DSA-9", "affected": [{"package": {"ecosystem": "Debian:12", "name": "curl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "8"}]}]}]});
    std::fs::write(dir.join("DSA-9.json"), rec.to_string()).unwrap();
    let db = Database::open(&t.path().join("osv")).unwrap();
    assert_eq!(db.records.len(), 1);

    let zip_path = t.path().join("all.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    z.start_file("DSA-9.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut z, rec.to_string().as_bytes()).unwrap();
    z.finish().unwrap();
    let db = Database::open(&zip_path).unwrap();
    assert_eq!(db.candidates(Ecosystem::Debian, "curl").len(), 1);

    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        Database::open(&empty),
        Err(osv::OsvError::Empty(_))
    ));
}
