//! Diffs of synthetic images: every kind of file change, per-directory
//! totals, package version moves, config and layer changes.

use super::*;
use crate::image::tests::{LayerBuilder, Meta, image_from};

const STATUS_A: &str = "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n\n\
Package: libfoo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:2.0~rc1-1\n\n\
Package: gone\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n";
const STATUS_B: &str = "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10+deb12u5\n\n\
Package: libfoo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:2.0~beta1-1\n\n\
Package: newpkg\nStatus: install ok installed\nArchitecture: all\nVersion: 0.1\n";

const META_A: &[u8] = b"Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.0\n";
const META_B: &[u8] = b"Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\n";

fn base() -> LayerBuilder {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .dir("var/lib/dpkg/info", 0o755)
        .file("var/lib/dpkg/info/curl.list", b"/usr/bin/curl\n")
}

fn image_a(dir: &std::path::Path) -> Image {
    let l = base()
        .file("var/lib/dpkg/status", STATUS_A.as_bytes())
        .exe("usr/bin/curl", b"curl v1")
        .file("etc/same", b"same")
        .file("etc/mode", b"m")
        .file("etc/owner", b"o")
        .symlink("etc/link", "/etc/same")
        .file("etc/kind", b"a file")
        .file("usr/bin/removed", b"12345")
        .dir("usr/lib/python3/dist-packages/Flask-2.0.0.dist-info", 0o755)
        .file(
            "usr/lib/python3/dist-packages/Flask-2.0.0.dist-info/METADATA",
            META_A,
        )
        .build();
    image_from(vec![l], dir).unwrap()
}

fn image_b(dir: &std::path::Path) -> Image {
    let l = base()
        .file("var/lib/dpkg/status", STATUS_B.as_bytes())
        .exe("usr/bin/curl", b"curl v2 longer")
        .file("etc/same", b"same")
        .file_meta(
            "etc/mode",
            b"m",
            &Meta {
                mode: 0o600,
                ..Meta::default()
            },
        )
        .file_meta(
            "etc/owner",
            b"o",
            &Meta {
                uid: 1000,
                gid: 1000,
                ..Meta::default()
            },
        )
        .symlink("etc/link", "/etc/mode")
        .symlink("etc/kind", "/etc/same")
        .file("usr/bin/added", b"123")
        .dir("usr/lib/python3/dist-packages/Flask-3.0.3.dist-info", 0o755)
        .file(
            "usr/lib/python3/dist-packages/Flask-3.0.3.dist-info/METADATA",
            META_B,
        )
        .build();
    image_from(vec![l], dir).unwrap()
}

fn change<'a>(d: &'a ImageDiff, path: &str) -> &'a FileChange {
    d.files
        .changes
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no change at {path}: {:#?}", d.files.changes))
}

#[test]
fn same_image_is_same() {
    let t = tempfile::tempdir().unwrap();
    let a = image_a(&t.path().join("a"));
    let a2 = image_a(&t.path().join("a2"));
    let d = ImageDiff::compute(&a, "a", &a2, "a2");
    assert!(d.same, "{d:#?}");
    assert!(d.files.changes.is_empty());
    assert_eq!(d.files.totals.files_a, d.files.totals.files_b);
    assert_eq!(d.layers.shared_base, 1);
}

#[test]
fn every_kind_of_file_change() {
    let t = tempfile::tempdir().unwrap();
    let a = image_a(&t.path().join("a"));
    let b = image_b(&t.path().join("b"));
    let d = ImageDiff::compute(&a, "a", &b, "b");
    assert!(!d.same);

    let c = change(&d, "/usr/bin/curl");
    assert_eq!(c.change, Change::Changed);
    assert_eq!((c.size_a, c.size_b), (7, 14));
    assert!(matches!(c.aspects[..], [Aspect::Content { .. }]), "{c:?}");

    let c = change(&d, "/etc/mode");
    assert_eq!(
        c.aspects,
        vec![Aspect::Mode {
            a: "0644".into(),
            b: "0600".into()
        }]
    );
    let c = change(&d, "/etc/owner");
    assert_eq!(
        c.aspects,
        vec![Aspect::Owner {
            a: "0:0".into(),
            b: "1000:1000".into()
        }]
    );
    let c = change(&d, "/etc/link");
    assert_eq!(
        c.aspects,
        vec![Aspect::Link {
            a: "/etc/same".into(),
            b: "/etc/mode".into()
        }]
    );
    let c = change(&d, "/etc/kind");
    assert!(c.aspects.contains(&Aspect::Kind {
        a: "file".into(),
        b: "symlink".into()
    }));
    assert_eq!(change(&d, "/usr/bin/removed").change, Change::Removed);
    assert_eq!(change(&d, "/usr/bin/added").change, Change::Added);
    assert!(!d.files.changes.iter().any(|c| c.path == "/etc/same"));

    // Totals per top-level directory.
    let usr = d.files.by_top_dir.iter().find(|t| t.dir == "/usr").unwrap();
    // /usr/bin/removed and Flask 2's METADATA; /usr/bin/added and Flask 3's.
    assert_eq!(usr.removed_bytes, 5 + META_A.len() as u64);
    assert_eq!(usr.added_bytes, 3 + META_B.len() as u64);
    assert_eq!(usr.changed_bytes_delta, 7);
    let etc = d.files.by_top_dir.iter().find(|t| t.dir == "/etc").unwrap();
    assert_eq!((etc.changed, etc.added, etc.removed), (4, 0, 0));
    assert_eq!(
        d.files.totals.bytes_b as i64 - d.files.totals.bytes_a as i64,
        d.files
            .by_top_dir
            .iter()
            .map(|t| t.bytes_b as i64 - t.bytes_a as i64)
            .sum::<i64>()
    );
}

#[test]
fn packages_move_by_their_ecosystems_rules() {
    let t = tempfile::tempdir().unwrap();
    let a = image_a(&t.path().join("a"));
    let b = image_b(&t.path().join("b"));
    let d = ImageDiff::compute(&a, "a", &b, "b");
    let p = |name: &str| {
        d.packages
            .changes
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}: {:#?}", d.packages.changes))
    };
    assert_eq!(p("curl").change, PackageChangeKind::Upgraded);
    // ~rc1 > ~beta1 in Debian's ordering: a downgrade, not "changed".
    assert_eq!(p("libfoo").change, PackageChangeKind::Downgraded);
    assert_eq!(p("gone").change, PackageChangeKind::Removed);
    assert_eq!(p("newpkg").change, PackageChangeKind::Added);
    let flask = p("Flask");
    assert_eq!(flask.ecosystem, crate::inventory::Ecosystem::PyPI);
    assert_eq!(flask.location, "/usr/lib/python3/dist-packages");
    assert_eq!(flask.change, PackageChangeKind::Upgraded);
    assert_eq!(d.packages.changes.len(), 5, "{:#?}", d.packages.changes);
}

#[test]
fn config_and_layers() {
    let t = tempfile::tempdir().unwrap();
    let a = image_a(&t.path().join("a"));
    let mut b = image_a(&t.path().join("b"));
    b.config.config.env = Some(vec!["PATH=/bin".into(), "NEW=1".into()]);
    b.config.config.user = None;
    b.config.config.exposed_ports = None;
    b.config.history.push(crate::image::History {
        created_by: Some("RUN touch x".into()),
        ..Default::default()
    });
    let d = ImageDiff::compute(&a, "a", &b, "b");
    assert!(!d.same);
    assert!(d.files.changes.is_empty());
    let fields: Vec<&str> = d.config.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "user",
            "env.LANG",
            "env.NEW",
            "env.PATH",
            "exposed_ports.8080/tcp"
        ]
    );
    let port = d.config.last().unwrap();
    assert_eq!(port.a, Some(serde_json::json!("8080/tcp")));
    assert_eq!(port.b, None);
    assert_eq!(d.layers.history_b, ["RUN touch x"]);
    assert!(d.layers.history_a.is_empty());
}
