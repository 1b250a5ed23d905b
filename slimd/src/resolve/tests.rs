//! The keep rules for state, volumes, opened directories and content roots,
//! on crafted image trees, through [`KeepSet::build`] and the image writer.

use std::collections::BTreeMap;

use crate::image::tests::{LayerBuilder, Meta, image_from};
use crate::image::{Image, ImageWriter, WriteOptions};
use crate::resolve::keep::{KeepInput, KeepSet, KeptRoot};
use crate::resolve::options::{Granularity, KeepOptions};
use crate::resolve::process::{Access, AccessKind, Observations};
use crate::resolve::reason::KeepReason;

fn image(layer: LayerBuilder) -> (tempfile::TempDir, Image) {
    let dir = tempfile::tempdir().unwrap();
    let img = image_from(vec![layer.build()], dir.path()).unwrap();
    (dir, img)
}

fn owned(uid: u64, gid: u64, mode: u32) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime: 1_700_000_000,
    }
}

fn access(path: &str, kind: AccessKind, write: bool) -> Access {
    Access {
        path: path.into(),
        kind,
        ok: true,
        nofollow: false,
        write,
        pid: 1,
        comm: "server".into(),
    }
}

fn read(path: &str) -> Access {
    access(path, AccessKind::Open, false)
}

fn write(path: &str) -> Access {
    access(path, AccessKind::Open, true)
}

fn keep(
    img: &Image,
    accesses: Vec<Access>,
    options: &KeepOptions,
    workdir: Option<&str>,
) -> KeepSet {
    let obs = Observations {
        accesses,
        ..Default::default()
    };
    KeepSet::build(&KeepInput {
        image: img,
        observations: &obs,
        options,
        workdir,
    })
    .unwrap()
}

fn file_granularity() -> KeepOptions {
    KeepOptions {
        granularity: Granularity::File,
        ..Default::default()
    }
}

fn reasons<'a>(ks: &'a KeepSet, path: &str) -> &'a [KeepReason] {
    ks.entries()
        .get(path)
        .unwrap_or_else(|| panic!("{path} not kept"))
}

const PG: u64 = 100;
const PG_GROUP: u64 = 102;

/// A Debian-like PostgreSQL server: a seeded cluster owned by postgres, its
/// socket directory in /run (reached through /var/run), a config directory
/// with an empty include directory, and a dpkg database owning the program.
fn postgres_image() -> LayerBuilder {
    let pg = |mode| owned(PG, PG_GROUP, mode);
    LayerBuilder::new()
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .symlink("var/run", "/run")
        .dir_meta("var/lib/postgresql", &pg(0o755))
        .dir_meta("var/lib/postgresql/15", &pg(0o755))
        .dir_meta("var/lib/postgresql/15/main", &pg(0o700))
        .file_meta("var/lib/postgresql/15/main/PG_VERSION", b"15\n", &pg(0o600))
        .dir_meta("var/lib/postgresql/15/main/base", &pg(0o700))
        .dir_meta("var/lib/postgresql/15/main/base/5", &pg(0o700))
        .file_meta("var/lib/postgresql/15/main/base/5/1259", b"catalog", &pg(0o600))
        .file_meta("var/lib/postgresql/15/main/base/5/16384", b"seeded rows", &pg(0o600))
        .dir_meta("var/lib/postgresql/15/main/pg_tblspc", &pg(0o700))
        .file_meta("var/lib/postgresql/.psql_history", b"select 1;\n", &pg(0o600))
        .dir("run", 0o755)
        .dir_meta("run/postgresql", &pg(0o2775))
        .file_meta("run/postgresql/stale.pid", b"42\n", &pg(0o644))
        .dir_meta("etc/postgresql", &pg(0o755))
        .dir_meta("etc/postgresql/15/main", &pg(0o755))
        .dir_meta("etc/postgresql/15/main/conf.d", &pg(0o755))
        .file_meta(
            "etc/postgresql/15/main/postgresql.conf",
            b"include_dir = 'conf.d'\n",
            &pg(0o644),
        )
        .exe("usr/lib/postgresql/15/bin/postgres", b"\x7fELF server")
        .file(
            "usr/share/postgresql/15/timezonesets/Default",
            b"UTC 0\n",
        )
        .file("usr/share/postgresql/15/extension/plpgsql.sql", b"--\n")
        .file(
            "var/lib/dpkg/status",
            b"Package: postgresql-15\nStatus: install ok installed\nVersion: 15.8-0+deb12u1\n",
        )
        .file(
            "var/lib/dpkg/info/postgresql-15.list",
            b"/.\n/usr/lib/postgresql/15/bin/postgres\n/usr/share/postgresql/15/timezonesets/Default\n\
/usr/share/postgresql/15/extension/plpgsql.sql\n",
        )
}

/// What the server does when it starts and answers a client.
fn postgres_run() -> Vec<Access> {
    vec![
        access(
            "/usr/lib/postgresql/15/bin/postgres",
            AccessKind::Exec,
            false,
        ),
        read("/etc/postgresql/15/main/postgresql.conf"),
        // opendir() of the include directory: it is empty.
        read("/etc/postgresql/15/main/conf.d"),
        read("/usr/share/postgresql/15/timezonesets/Default"),
        read("/var/lib/postgresql/15/main/PG_VERSION"),
        write("/var/lib/postgresql/15/main/postmaster.pid"),
        write("/var/lib/postgresql/15/main/base/5/1259"),
        write("/var/run/postgresql/.s.PGSQL.5432.lock"),
        access(
            "/var/run/postgresql/.s.PGSQL.5432",
            AccessKind::Socket,
            true,
        ),
    ]
}

#[test]
fn a_written_cluster_keeps_its_state_root_whole_under_both_granularities() {
    let (_d, img) = image(postgres_image());
    for options in [KeepOptions::default(), file_granularity()] {
        let ks = keep(&img, postgres_run(), &options, None);
        // Files the server never opened, and an empty directory it needs.
        for p in [
            "/var/lib/postgresql",
            "/var/lib/postgresql/15/main/base/5/16384",
            "/var/lib/postgresql/15/main/pg_tblspc",
            "/var/lib/postgresql/.psql_history",
        ] {
            assert!(
                reasons(&ks, p).contains(&KeepReason::StateDirectory {
                    root: "/var/lib/postgresql".into(),
                    written: "/var/lib/postgresql/15/main/postmaster.pid".into(),
                }),
                "{p}: {:?}",
                reasons(&ks, p)
            );
        }
        assert_eq!(
            ks.state_roots,
            [KeptRoot {
                root: "/var/lib/postgresql".into(),
                cause: "wrote /var/lib/postgresql/15/main/postmaster.pid".into(),
                kept_whole: true,
                files: 4,
                bytes: 3 + 7 + 11 + 10,
                // PG_VERSION was read and 1259 written: the rest is the rule's.
                added_files: 2,
                added_bytes: 11 + 10,
            }]
        );
        // /var/lib is root's: the climb stops below it.
        assert!(!ks.contains("/var/lib"));
        assert!(!ks.contains("/var/lib/dpkg/status"));
    }
}

#[test]
fn a_socket_directory_in_run_is_kept_bare_with_its_owner_and_mode() {
    let (d, img) = image(postgres_image());
    let ks = keep(&img, postgres_run(), &file_granularity(), None);
    assert_eq!(
        reasons(&ks, "/run/postgresql"),
        [KeepReason::ScratchDirectory {
            written: "/var/run/postgresql/.s.PGSQL.5432.lock".into()
        }]
    );
    // The symlink the server went through stays; the old contents do not.
    assert!(ks.contains("/var/run"));
    assert!(!ks.contains("/run/postgresql/stale.pid"));
    // The opened include directory stays although it is empty.
    assert!(matches!(
        reasons(&ks, "/etc/postgresql/15/main/conf.d")[0],
        KeepReason::Used { .. }
    ));

    // Written out, the directories have their original owner and mode.
    let mut out = Vec::new();
    ImageWriter::new(&img, &ks.selection(), &WriteOptions::default())
        .write_docker_archive(&mut out, d.path())
        .unwrap();
    let back_dir = tempfile::tempdir().unwrap();
    let back = Image::from_save_stream(&out[..], back_dir.path()).unwrap();
    for (p, mode) in [
        ("/run/postgresql", 0o2775),
        ("/var/lib/postgresql", 0o755),
        ("/var/lib/postgresql/15/main", 0o700),
        ("/var/lib/postgresql/15/main/pg_tblspc", 0o700),
        ("/etc/postgresql/15/main/conf.d", 0o755),
    ] {
        let e = back.fs.get(p).unwrap_or_else(|| panic!("{p} missing"));
        assert!(e.is_dir(), "{p}");
        assert_eq!((e.uid, e.gid, e.mode), (PG, PG_GROUP, mode), "{p}");
    }
    assert_eq!(back.fs.children("/run/postgresql").count(), 0, "kept bare");
    assert_eq!(back.fs.get("/var/lib").unwrap().uid, 0);
}

#[test]
fn state_roots_stop_at_other_owners_system_directories_and_app_code() {
    let app = |mode| owned(1000, 1000, mode);
    let layer = LayerBuilder::new()
        // Root-owned: its own root.
        .dir("srv/data", 0o755)
        .file("srv/data/seed.db", b"seed")
        .file("srv/other/untouched.txt", b"x")
        // Another owner above: the climb stops.
        .dir_meta("var/lib/shared", &owned(1001, 1001, 0o755))
        .file("var/lib/shared/other-app.db", b"theirs")
        .dir_meta("var/lib/shared/mine", &app(0o750))
        .file_meta("var/lib/shared/mine/seed", b"mine", &app(0o640))
        // Below the WORKDIR: the climb stops below it.
        .dir_meta("home/app", &app(0o755))
        .file_meta("home/app/main.py", b"print()\n", &app(0o644))
        .dir_meta("home/app/data", &app(0o755))
        .file_meta("home/app/data/notes.db", b"notes", &app(0o644))
        // A directory holding a virtualenv is no state root.
        .dir_meta("opt/svc", &app(0o755))
        .file_meta("opt/svc/pyvenv.cfg", b"home = /usr/bin\n", &app(0o644))
        .file_meta(
            "opt/svc/lib/python3.11/site-packages/dep/__init__.py",
            b"",
            &app(0o644),
        )
        .file_meta("opt/svc/settings.ini", b"[x]\n", &app(0o644))
        .file("etc/motd", b"hi\n");
    let (_d, img) = image(layer);
    let ks = keep(
        &img,
        vec![
            write("/srv/data/new.db"),
            write("/var/lib/shared/mine/log"),
            write("/home/app/data/notes.db"),
            write("/opt/svc/state.json"),
            // Into a directory the image lacks below /var/lib: no root.
            write("/var/lib/newapp/db"),
            write("/etc/motd"),
            write("/home/app/__pycache__/main.cpython-311.pyc"),
        ],
        &file_granularity(),
        Some("/home/app"),
    );
    let roots: Vec<&str> = ks.state_roots.iter().map(|r| r.root.as_str()).collect();
    assert_eq!(
        roots,
        ["/home/app/data", "/srv/data", "/var/lib/shared/mine"]
    );
    assert!(ks.contains("/srv/data/seed.db"));
    assert!(!ks.contains("/srv/other/untouched.txt"));
    assert!(ks.contains("/var/lib/shared/mine/seed"));
    assert!(!ks.contains("/var/lib/shared/other-app.db"));
    assert!(!ks.contains("/home/app/main.py"));
    assert!(!ks.contains("/opt/svc/settings.ini"));
    // The written file itself, and what else the app used, stay.
    assert!(ks.contains("/etc/motd"));
    assert!(matches!(
        reasons(&ks, "/etc/motd")[0],
        KeepReason::Used { .. }
    ));
}

#[test]
fn volumes_are_kept_whole_with_owner_and_contents() {
    // The test image config declares VOLUME /data.
    let layer = LayerBuilder::new()
        .dir_meta("data", &owned(999, 999, 0o750))
        .file_meta("data/dump.rdb", b"REDIS0010", &owned(999, 999, 0o640))
        .dir_meta("data/appendonlydir", &owned(999, 999, 0o750));
    let (_d, img) = image(layer);
    let ks = keep(&img, vec![], &file_granularity(), None);
    for p in ["/data", "/data/dump.rdb", "/data/appendonlydir"] {
        assert_eq!(
            reasons(&ks, p),
            [KeepReason::Volume {
                path: "/data".into()
            }],
            "{p}"
        );
    }
    assert_eq!(ks.state_roots.len(), 1);
    assert_eq!(ks.state_roots[0].cause, "VOLUME");
    assert_eq!(
        (ks.state_roots[0].added_files, ks.state_roots[0].added_bytes),
        (1, 9)
    );
}

/// A static site served from /srv/www by a program in /usr/local/bin, with
/// drafts beside it that nothing serves.
fn site_image() -> LayerBuilder {
    LayerBuilder::new()
        .exe("usr/local/bin/server", b"\x7fELF static")
        .file("srv/www/index.html", b"<a href=/about.html>")
        .file("srv/www/about.html", b"about")
        .file("srv/www/docs/guide.html", b"guide")
        .file(
            "srv/www/pages/from-script.html",
            b"only a script links here",
        )
        .file("srv/www/404.html", b"custom not found")
        .file("srv/drafts/draft.html", b"not served")
        .file("etc/site/site.conf", b"root /srv/www\n")
        .file("usr/share/zoneinfo/UTC", b"TZif")
        .file("opt/unused/blob.bin", b"blob")
}

fn site_run() -> Vec<Access> {
    vec![
        access("/usr/local/bin/server", AccessKind::Exec, false),
        read("/etc/site/site.conf"),
        read("/usr/share/zoneinfo/UTC"),
        read("/srv/www/index.html"),
        read("/srv/www/docs/guide.html"),
    ]
}

#[test]
fn a_document_root_is_kept_whole_under_package_granularity_only() {
    let (_d, img) = image(site_image());
    let ks = keep(&img, site_run(), &KeepOptions::default(), None);
    let content = KeepReason::ContentRoot {
        root: "/srv/www".into(),
        read: "/srv/www/docs/guide.html".into(),
    };
    for p in [
        "/srv/www/pages/from-script.html",
        "/srv/www/404.html",
        "/srv/www/about.html",
    ] {
        assert_eq!(reasons(&ks, p), std::slice::from_ref(&content), "{p}");
    }
    assert!(reasons(&ks, "/srv/www/index.html").contains(&content));
    assert!(!ks.contains("/srv/drafts/draft.html"));
    assert!(!ks.contains("/opt/unused/blob.bin"));
    assert!(ks.contains("/etc/site/site.conf"));
    // The operating system's data stays file by file.
    assert!(
        !reasons(&ks, "/usr/share/zoneinfo/UTC")
            .iter()
            .any(|r| matches!(r, KeepReason::ContentRoot { .. }))
    );
    let www = ks
        .content_roots
        .iter()
        .find(|r| r.root == "/srv/www")
        .expect("content root /srv/www");
    assert_eq!(
        (www.files, www.added_files, www.added_bytes, www.kept_whole),
        (5, 3, 5 + 24 + 16, true)
    );
    assert!(
        ks.content_roots.iter().any(|r| r.root == "/etc/site"),
        "{:?}",
        ks.content_roots
    );

    // File granularity keeps what was used only, and says so.
    let ks = keep(&img, site_run(), &file_granularity(), None);
    assert!(!ks.contains("/srv/www/pages/from-script.html"));
    assert!(ks.contains("/srv/www/docs/guide.html"));
    let www = ks
        .content_roots
        .iter()
        .find(|r| r.root == "/srv/www")
        .unwrap();
    assert_eq!((www.kept_whole, www.added_files), (false, 0));
}

#[test]
fn path_overrides_choose_inside_and_around_a_content_root() {
    let (_d, img) = image(site_image());
    let with = |global: Granularity, overrides: &[&str]| KeepOptions {
        granularity: global,
        granularity_overrides: overrides.iter().map(|o| o.parse().unwrap()).collect(),
        ..Default::default()
    };
    let ks = keep(
        &img,
        site_run(),
        &with(Granularity::Package, &["file:/srv/www/pages"]),
        None,
    );
    assert!(!ks.contains("/srv/www/pages/from-script.html"));
    assert!(ks.contains("/srv/www/404.html"));
    let cov = ks.coverage.as_ref().unwrap();
    assert!(cov.notes.is_empty(), "{:?}", cov.notes);

    let ks = keep(
        &img,
        site_run(),
        &with(Granularity::File, &["package:/srv/www"]),
        None,
    );
    assert!(ks.contains("/srv/www/pages/from-script.html"));
    assert_eq!(
        reasons(&ks, "/etc/site/site.conf").len(),
        1,
        "only used: {:?}",
        reasons(&ks, "/etc/site/site.conf")
    );
}

#[test]
fn content_roots_leave_packaged_code_and_app_trees_alone() {
    let status = b"Package: nginx\nStatus: install ok installed\nVersion: 1.22\n";
    let layer = LayerBuilder::new()
        // The package's default pages, then the image's own site.
        .file("usr/share/nginx/html/50x.html", b"packaged")
        .file("usr/share/nginx/html/index.html", b"the site")
        .file("usr/share/nginx/html/about.html", b"the site")
        .file("etc/nginx/nginx.conf", b"include conf.d/*.conf;\n")
        .file("etc/nginx/mime.types", b"types {}\n")
        .file("etc/nginx/conf.d/site.conf", b"server {}\n")
        .file("etc/nginx/conf.d/other.conf", b"server {}\n")
        .file("var/lib/dpkg/status", status)
        .file(
            "var/lib/dpkg/info/nginx.list",
            b"/.\n/usr/share/nginx/html/50x.html\n/usr/share/nginx/html/index.html\n\
/etc/nginx/nginx.conf\n/etc/nginx/mime.types\n",
        )
        // A tool with programs beside its data.
        .exe("opt/tool/bin/tool", b"\x7fELF tool")
        .file("opt/tool/lib/libtool.so.1", b"\x7fELF lib")
        .file("opt/tool/share/data.txt", b"data")
        .file("opt/tool/share/more.txt", b"more")
        // The app's own tree.
        .file("app/server.py", b"")
        .file("app/templates/page.html", b"")
        .file("app/templates/other.html", b"");
    let (_d, img) = image(layer);
    let ks = keep(
        &img,
        vec![
            read("/usr/share/nginx/html/about.html"),
            read("/etc/nginx/nginx.conf"),
            read("/etc/nginx/conf.d/site.conf"),
            read("/opt/tool/lib/libtool.so.1"),
            read("/opt/tool/share/data.txt"),
            read("/app/server.py"),
            read("/app/templates/page.html"),
            read("/var/lib/dpkg/status"),
        ],
        &KeepOptions::default(),
        Some("/app"),
    );
    let roots: BTreeMap<&str, &KeptRoot> = ks
        .content_roots
        .iter()
        .map(|r| (r.root.as_str(), r))
        .collect();
    assert_eq!(
        roots.keys().copied().collect::<Vec<_>>(),
        ["/etc/nginx/conf.d", "/opt/tool/share", "/usr/share/nginx"]
    );
    assert!(ks.contains("/usr/share/nginx/html/50x.html"));
    assert!(ks.contains("/etc/nginx/conf.d/other.conf"));
    assert!(!ks.contains("/etc/nginx/mime.types"));
    assert!(ks.contains("/opt/tool/share/more.txt"));
    assert!(!ks.contains("/opt/tool/bin/tool"));
    // The app tree is the app-source rule's, not a content root.
    assert!(matches!(
        reasons(&ks, "/app/templates/other.html")[0],
        KeepReason::AppSource { .. }
    ));
    assert!(!ks.contains("/var/lib/dpkg/info/nginx.list"));
}
