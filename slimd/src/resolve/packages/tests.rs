//! Package detection, closure and coverage on crafted image trees.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use super::app::{parse_gemfile, parse_pyproject, parse_requirements_txt};
use super::ecosystems::{parse_gemspec, parse_package_json, parse_record, requirement_name};
use super::jar::parse_class_path;
use super::*;
use crate::image::Image;
use crate::image::tests::{LayerBuilder, image_from};
use crate::resolve::keep::{KeepInput, KeepSet};
use crate::resolve::options::KeepOptions;
use crate::resolve::process::{Access, AccessKind, Observations};

fn image(layer: LayerBuilder) -> (tempfile::TempDir, Image) {
    let dir = tempfile::tempdir().unwrap();
    let img = image_from(vec![layer.build()], dir.path()).unwrap();
    (dir, img)
}

fn run(
    img: &Image,
    opened: &[&str],
    execs: &[(&str, &[&str])],
    workdir: Option<&str>,
    granularity: Granularity,
    overrides: &[&str],
) -> PackagePlan {
    let opened: BTreeSet<String> = opened.iter().map(|s| s.to_string()).collect();
    let execs: Vec<ExecRecord> = execs
        .iter()
        .map(|(path, argv)| ExecRecord {
            pid: 1,
            ppid: 0,
            path: path.to_string(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ok: true,
        })
        .collect();
    let overrides: Vec<GranularityOverride> =
        overrides.iter().map(|o| o.parse().unwrap()).collect();
    plan(&PackageInput {
        fs: &img.fs,
        opened: &opened,
        execs: &execs,
        read: &BTreeSet::new(),
        os: &crate::image::PackageDb::default(),
        workdir,
        granularity,
        overrides: &overrides,
    })
}

/// Kept paths with their reasons.
fn kept(p: &PackagePlan) -> BTreeMap<&str, &KeepReason> {
    let mut m = BTreeMap::new();
    for (k, r) in &p.keep {
        m.entry(k.as_str()).or_insert(r);
    }
    m
}

fn eco(p: &PackagePlan, e: Ecosystem) -> &EcosystemCoverage {
    p.coverage
        .ecosystems
        .iter()
        .find(|c| c.ecosystem == e)
        .unwrap_or_else(|| panic!("no {e:?} coverage: {:?}", p.coverage))
}

fn names(v: &[PackageCoverage]) -> Vec<&str> {
    v.iter().map(|p| p.name.as_str()).collect()
}

const SITE: &str = "usr/local/lib/python3.11/dist-packages";

fn python_image() -> LayerBuilder {
    let s = SITE;
    LayerBuilder::new()
        .exe("usr/bin/python3.11", b"\x7fELF")
        // A wheel install: RECORD, with a script outside the site directory.
        .file(&format!("{s}/web/__init__.py"), b"import web.core\n")
        .file(&format!("{s}/web/core.py"), b"")
        .file(&format!("{s}/web/lazy.py"), b"")
        .file(&format!("{s}/web/__pycache__/lazy.cpython-311.pyc"), b"")
        .file(&format!("{s}/web/static/app.css"), b"")
        .file(
            &format!("{s}/Web-1.0.dist-info/METADATA"),
            b"Metadata-Version: 2.1\nName: Web\nVersion: 1.0\nRequires-Dist: Helper_Lib (>=1)\n\
Requires-Dist: missing-one\nRequires-Dist: asyncstuff ; extra == \"async\"\n\nLong text\nName: nope\n",
        )
        .file(
            &format!("{s}/Web-1.0.dist-info/RECORD"),
            b"web/__init__.py,sha256=x,1\nweb/core.py,sha256=x,1\nweb/lazy.py,,\n\
web/static/app.css,,\n\"web/odd,name.txt\",,\n../../../bin/web,,\nWeb-1.0.dist-info/RECORD,,\n",
        )
        .file(&format!("{s}/web/odd,name.txt"), b"")
        .exe("usr/local/bin/web", b"#!/usr/bin/python3.11\n")
        // Debian-style: no RECORD, top_level.txt names the modules.
        .file(&format!("{s}/helper_lib/__init__.py"), b"")
        .file(&format!("{s}/helper_lib/fast.cpython-311-x86_64-linux-gnu.so"), b"")
        .file(&format!("{s}/helper_lib-2.0.dist-info/METADATA"), b"Name: helper-lib\nVersion: 2.0\n")
        .file(&format!("{s}/helper_lib-2.0.dist-info/top_level.txt"), b"helper_lib\n")
        // An egg-info with requires.txt; nobody uses it.
        .file(&format!("{s}/unrelated.py"), b"")
        .file(
            &format!("{s}/unrelated-0.1.egg-info/PKG-INFO"),
            b"Name: unrelated\nVersion: 0.1\n",
        )
        .file(
            &format!("{s}/unrelated-0.1.egg-info/requires.txt"),
            b"six\n\n[tests]\npytest\n",
        )
        // Declared by the app only.
        .file(&format!("{s}/slugger/__init__.py"), b"")
        .file(&format!("{s}/slugger-8.0.dist-info/METADATA"), b"Name: slugger\nVersion: 8.0\n")
        .file(
            &format!("{s}/slugger-8.0.dist-info/RECORD"),
            b"slugger/__init__.py,,\n",
        )
        // No metadata at all.
        .file(&format!("{s}/vendored.py"), b"")
        .file(&format!("{s}/__pycache__/vendored.cpython-311.pyc"), b"")
        .file(&format!("{s}/distutils-precedence.pth"), b"")
        // The stdlib stays file by file.
        .file("usr/lib/python3.11/json/__init__.py", b"")
        // The app.
        .file("app/server.py", b"import web\n")
        .file("app/reports.py", b"import slugger\n")
        .file("app/__pycache__/server.cpython-311.pyc", b"")
        .file("app/__pycache__/deleted.cpython-311.pyc", b"")
        .file("app/requirements.txt", b"Web==1.0\nslugger>=8  # slugs\n-r other.txt\n")
        .file("app/data/items.csv", b"id\n1\n")
        .file("app/tests/test_server.py", b"")
        .file("app/.git/HEAD", b"ref: x\n")
        .file("app/.pytest_cache/v/x", b"")
}

#[test]
fn python_used_package_whole_with_dependencies_and_app_tree() {
    let (_d, img) = image(python_image());
    let site = format!("/{SITE}");
    let p = run(
        &img,
        &[
            "/usr/bin/python3.11",
            "/app/__pycache__/server.cpython-311.pyc",
            &format!("{site}/web/__init__.py"),
            &format!("{site}/web/core.py"),
            // Metadata reads are not uses.
            &format!("{site}/unrelated-0.1.egg-info/PKG-INFO"),
            "/usr/lib/python3.11/json/__init__.py",
        ],
        &[("/usr/bin/python3.11", &["python3", "server.py"])],
        Some("/app"),
        Granularity::Package,
        &[],
    );
    let k = kept(&p);
    // The used package whole, metadata included, and its script.
    for f in [
        "web/lazy.py",
        "web/__pycache__/lazy.cpython-311.pyc",
        "web/static/app.css",
        "web/odd,name.txt",
        "Web-1.0.dist-info/RECORD",
    ] {
        let path = format!("{site}/{f}");
        assert!(
            matches!(k.get(path.as_str()), Some(KeepReason::Package { name, .. }) if name == "Web 1.0"),
            "{path}: {:?}",
            k.get(path.as_str())
        );
    }
    assert!(k.contains_key("/usr/local/bin/web"));
    // Its dependency (name normalised) through top_level.txt, extension included.
    match k.get(format!("{site}/helper_lib/fast.cpython-311-x86_64-linux-gnu.so").as_str()) {
        Some(KeepReason::PackageDependency {
            name, required_by, ..
        }) => {
            assert_eq!(name, "helper-lib 2.0");
            assert_eq!(required_by, "Web 1.0");
        }
        other => panic!("helper_lib: {other:?}"),
    }
    // Declared by the app.
    match k.get(format!("{site}/slugger/__init__.py").as_str()) {
        Some(KeepReason::PackageDependency { required_by, .. }) => {
            assert_eq!(required_by, "/app/requirements.txt")
        }
        other => panic!("slugger: {other:?}"),
    }
    // Not used, not declared; extras are not followed; stdlib untouched.
    for f in [
        format!("{site}/unrelated.py"),
        format!("{site}/vendored.py"),
        "/usr/lib/python3.11/json/__init__.py".to_string(),
    ] {
        assert!(!k.contains_key(f.as_str()), "{f} kept");
    }
    // The app tree, minus VCS, tool caches and orphan bytecode; tests stay.
    for f in [
        "/app/server.py",
        "/app/reports.py",
        "/app/data/items.csv",
        "/app/tests/test_server.py",
        "/app/__pycache__/server.cpython-311.pyc",
    ] {
        assert!(
            matches!(k.get(f), Some(KeepReason::AppSource { root }) if root == "/app"),
            "{f}: {:?}",
            k.get(f)
        );
    }
    for f in [
        "/app/.git/HEAD",
        "/app/.pytest_cache/v/x",
        "/app/__pycache__/deleted.cpython-311.pyc",
    ] {
        assert!(!k.contains_key(f), "{f} kept");
    }

    let py = eco(&p, Ecosystem::Python);
    assert_eq!(py.roots, [site.as_str()]);
    assert_eq!(py.packages_present, 5, "{py:?}");
    assert_eq!(names(&py.used), ["Web"]);
    assert_eq!(names(&py.dependency_only), ["helper-lib", "slugger"]);
    assert_eq!(py.unused, ["unrelated 0.1", "vendored"]);
    assert_eq!(py.used[0].missing_dependencies, ["missing-one"]);
    assert_eq!(
        py.used[0].untouched_modules,
        [format!("{site}/web/lazy.py")]
    );
    let app = &p.coverage.app[0];
    assert_eq!(app.root, "/app");
    assert_eq!(app.why, "WORKDIR");
    assert!(app.kept_whole);
    // server.py (through its bytecode) loaded; reports.py and the test not.
    assert_eq!((app.modules, app.modules_loaded), (3, 1));
    assert_eq!(
        app.untouched_modules,
        ["/app/reports.py", "/app/tests/test_server.py"]
    );
    assert_eq!(app.declared_in.as_deref(), Some("/app/requirements.txt"));
}

#[test]
fn file_granularity_keeps_nothing_but_still_measures() {
    let (_d, img) = image(python_image());
    let site = format!("/{SITE}");
    let p = run(
        &img,
        &["/app/server.py", &format!("{site}/web/__init__.py")],
        &[],
        Some("/app"),
        Granularity::File,
        &[],
    );
    assert!(p.keep.is_empty(), "{:?}", p.keep);
    let py = eco(&p, Ecosystem::Python);
    assert_eq!(names(&py.used), ["Web"]);
    assert!(!py.used[0].kept_whole);
    assert_eq!(py.used[0].granularity, Granularity::File);
    assert!(py.dependency_only.is_empty());
    assert!(!p.coverage.app[0].kept_whole);
    assert_eq!(p.coverage.granularity, Granularity::File);
}

#[test]
fn overrides_pick_the_most_specific() {
    let (_d, img) = image(python_image());
    let site = format!("/{SITE}");
    let used = [
        "/app/server.py".to_string(),
        format!("{site}/web/__init__.py"),
    ];
    let used: Vec<&str> = used.iter().map(String::as_str).collect();
    // Package by default, but helper_lib (named by a path inside it) and the
    // app tree file by file.
    let p = run(
        &img,
        &used,
        &[],
        Some("/app"),
        Granularity::Package,
        &[
            &format!("file:{site}/helper_lib/__init__.py"),
            "file:/app",
            "file:/nowhere",
        ],
    );
    let k = kept(&p);
    assert!(k.contains_key(format!("{site}/web/lazy.py").as_str()));
    assert!(!k.contains_key(format!("{site}/helper_lib/__init__.py").as_str()));
    assert!(!k.contains_key("/app/reports.py"));
    // The app in file mode declares nothing either.
    assert!(!k.contains_key(format!("{site}/slugger/__init__.py").as_str()));
    assert_eq!(
        p.coverage.notes,
        [
            "granularity override file:/nowhere matches no package, app tree or content root in the image"
        ]
    );
    // File by default; one package by name (any spelling) whole, the
    // site directory path says file again but a name beats a path.
    let p = run(
        &img,
        &used,
        &[],
        Some("/app"),
        Granularity::File,
        &["package:python:WEB", &format!("file:{site}")],
    );
    let k = kept(&p);
    assert!(k.contains_key(format!("{site}/web/lazy.py").as_str()));
    assert!(!k.contains_key(format!("{site}/helper_lib/__init__.py").as_str()));
    assert!(!k.contains_key("/app/reports.py"));
}

#[test]
fn node_packages_resolve_like_node() {
    let nm = "app/node_modules";
    let layer = LayerBuilder::new()
        .file(
            "app/package.json",
            br#"{"name":"app","dependencies":{"express":"^4","lazy":"1"},"devDependencies":{"jest":"1"}}"#,
        )
        .file("app/server.js", b"require('express')")
        .file("app/lib/width.js", b"require('lazy')")
        .file(
            &format!("{nm}/express/package.json"),
            br#"{"name":"express","version":"4.19.2","dependencies":{"debug":"2"}}"#,
        )
        .file(&format!("{nm}/express/index.js"), b"")
        .file(&format!("{nm}/express/lib/router.js"), b"")
        .file(
            &format!("{nm}/express/node_modules/debug/package.json"),
            br#"{"name":"debug","version":"2.6.9"}"#,
        )
        .file(&format!("{nm}/express/node_modules/debug/src/index.js"), b"")
        .file(
            &format!("{nm}/debug/package.json"),
            br#"{"name":"debug","version":"4.3.4"}"#,
        )
        .file(&format!("{nm}/debug/src/index.js"), b"")
        .file(
            &format!("{nm}/lazy/package.json"),
            br#"{"name":"lazy","version":"1.0.0","dependencies":{"@scope/util":"1"},"optionalDependencies":{"not-here":"1"}}"#,
        )
        .file(&format!("{nm}/lazy/index.js"), b"")
        .file(
            &format!("{nm}/@scope/util/package.json"),
            br#"{"name":"@scope/util","version":"1.0.0"}"#,
        )
        .file(&format!("{nm}/@scope/util/index.js"), b"")
        .file(&format!("{nm}/jest/package.json"), br#"{"name":"jest"}"#)
        .file(&format!("{nm}/jest/index.js"), b"")
        .symlink(&format!("{nm}/.bin/jest"), "../jest/index.js")
        .file(&format!("{nm}/.cache/big"), b"cache")
        .exe("usr/bin/node", b"\x7fELF");
    let (_d, img) = image(layer);
    let p = run(
        &img,
        &[
            "/app/server.js",
            "/app/node_modules/express/index.js",
            // package.json reads alone are not uses.
            "/app/node_modules/jest/package.json",
        ],
        &[("/usr/bin/node", &["node", "/app/server.js"])],
        Some("/"),
        Granularity::Package,
        &[],
    );
    let k = kept(&p);
    let reason = |f: &str| k.get(format!("/{nm}/{f}").as_str()).copied();
    assert!(matches!(
        reason("express/lib/router.js"),
        Some(KeepReason::Package { .. })
    ));
    // express's own debug (nested) is the one its require finds.
    assert!(matches!(
        reason("express/node_modules/debug/src/index.js"),
        Some(KeepReason::PackageDependency { required_by, .. }) if required_by == "express 4.19.2"
    ));
    assert!(reason("debug/src/index.js").is_none());
    assert!(matches!(
        reason("lazy/index.js"),
        Some(KeepReason::PackageDependency { required_by, .. }) if required_by == "/app/package.json"
    ));
    assert!(matches!(
        reason("@scope/util/index.js"),
        Some(KeepReason::PackageDependency { required_by, .. }) if required_by == "lazy 1.0.0"
    ));
    assert!(reason("jest/index.js").is_none());
    assert!(reason(".cache/big").is_none());
    assert!(reason(".bin/jest").is_none());
    // The app: WORKDIR is / (not an app tree); the script's directory is.
    assert!(matches!(
        k.get("/app/lib/width.js"),
        Some(KeepReason::AppSource { .. })
    ));
    let app = &p.coverage.app[0];
    assert!(app.why.contains("/app/server.js"), "{}", app.why);
    assert_eq!(app.untouched_modules, ["/app/lib/width.js"]);
    let node = eco(&p, Ecosystem::Node);
    assert_eq!(names(&node.used), ["express"]);
    assert_eq!(
        names(&node.dependency_only),
        ["@scope/util", "lazy", "debug"]
    );
    assert_eq!(node.unused, ["debug 4.3.4", "jest"]);
    let lazy = &node.dependency_only[1];
    assert_eq!(lazy.missing_dependencies, ["not-here"]);
    assert_eq!(
        node.roots,
        [
            "/app/node_modules",
            "/app/node_modules/express/node_modules"
        ]
    );
}

#[test]
fn ruby_gems_follow_runtime_dependencies() {
    let home = "usr/local/bundle";
    let spec = |name: &str, version: &str, deps: &str| {
        format!(
            "# -*- encoding: utf-8 -*-\nGem::Specification.new do |s|\n  s.name = \"{name}\".freeze\n  s.version = \"{version}\"\n{deps}end\n"
        )
    };
    let layer = LayerBuilder::new()
        .file(
            &format!("{home}/specifications/sinatra-3.0.6.gemspec"),
            spec(
                "sinatra",
                "3.0.6",
                "  s.add_runtime_dependency(%q<rack>.freeze, [\"~> 2.2\"])\n  s.add_dependency 'mustermann', '~> 3.0'\n  s.add_development_dependency(%q<rspec>.freeze, [\">= 0\"])\n",
            )
            .as_bytes(),
        )
        .file(&format!("{home}/gems/sinatra-3.0.6/lib/sinatra.rb"), b"")
        .file(&format!("{home}/gems/sinatra-3.0.6/lib/sinatra/base.rb"), b"")
        .file(
            &format!("{home}/specifications/rack-2.2.8.gemspec"),
            spec("rack", "2.2.8", "").as_bytes(),
        )
        .file(&format!("{home}/gems/rack-2.2.8/lib/rack.rb"), b"")
        .file(
            &format!("{home}/specifications/mustermann-3.0.0.gemspec"),
            spec("mustermann", "3.0.0", "").as_bytes(),
        )
        .file(&format!("{home}/gems/mustermann-3.0.0/lib/mustermann.rb"), b"")
        .file(
            &format!("{home}/extensions/x86_64-linux/3.1.0/mustermann-3.0.0/gem.build_complete"),
            b"",
        )
        .file(
            &format!("{home}/specifications/rspec-3.12.0.gemspec"),
            spec("rspec", "3.12.0", "").as_bytes(),
        )
        .file(&format!("{home}/gems/rspec-3.12.0/lib/rspec.rb"), b"");
    let (_d, img) = image(layer);
    let p = run(
        &img,
        &[&format!("/{home}/gems/sinatra-3.0.6/lib/sinatra.rb")],
        &[],
        None,
        Granularity::Package,
        &[],
    );
    let k = kept(&p);
    assert!(k.contains_key(format!("/{home}/gems/sinatra-3.0.6/lib/sinatra/base.rb").as_str()));
    assert!(k.contains_key(format!("/{home}/gems/rack-2.2.8/lib/rack.rb").as_str()));
    assert!(
        k.contains_key(
            format!("/{home}/extensions/x86_64-linux/3.1.0/mustermann-3.0.0/gem.build_complete")
                .as_str()
        )
    );
    assert!(k.contains_key(format!("/{home}/specifications/rack-2.2.8.gemspec").as_str()));
    assert!(!k.contains_key(format!("/{home}/gems/rspec-3.12.0/lib/rspec.rb").as_str()));
    let rb = eco(&p, Ecosystem::Ruby);
    assert_eq!(names(&rb.used), ["sinatra"]);
    assert_eq!(names(&rb.dependency_only), ["mustermann", "rack"]);
    assert_eq!(rb.unused, ["rspec 3.12.0"]);
    assert!(p.coverage.app.is_empty());
}

/// A zip with one entry, stored or deflated.
fn zip(name: &str, data: &[u8], deflate: bool) -> Vec<u8> {
    let body = if deflate {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    } else {
        data.to_vec()
    };
    let method: u16 = if deflate { 8 } else { 0 };
    let mut out = Vec::new();
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    le32(&mut out, 0x0403_4b50);
    for x in [20u16, 0, method, 0, 0] {
        le16(&mut out, x);
    }
    le32(&mut out, 0);
    le32(&mut out, body.len() as u32);
    le32(&mut out, data.len() as u32);
    le16(&mut out, name.len() as u16);
    le16(&mut out, 0);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body);
    let cd_start = out.len() as u32;
    le32(&mut out, 0x0201_4b50);
    for x in [20u16, 20, 0, method, 0, 0] {
        le16(&mut out, x);
    }
    le32(&mut out, 0);
    le32(&mut out, body.len() as u32);
    le32(&mut out, data.len() as u32);
    for x in [name.len() as u16, 0, 0, 0, 0] {
        le16(&mut out, x);
    }
    le32(&mut out, 0);
    le32(&mut out, 0);
    out.extend_from_slice(name.as_bytes());
    let cd_len = out.len() as u32 - cd_start;
    le32(&mut out, 0x0605_4b50);
    for x in [0u16, 0, 1, 1] {
        le16(&mut out, x);
    }
    le32(&mut out, cd_len);
    le32(&mut out, cd_start);
    le16(&mut out, 0);
    out
}

#[test]
fn java_runtime_and_class_path() {
    let jdk = "usr/lib/jvm/java-17";
    let manifest = b"Manifest-Version: 1.0\r\nMain-Class: svc.Main\r\nClass-Path: ../../usr/share/java/de\r\n p.jar lib/local.jar\r\n\r\n";
    let layer = LayerBuilder::new()
        .exe(&format!("{jdk}/bin/java"), b"\x7fELF")
        .exe(&format!("{jdk}/bin/jshell"), b"\x7fELF")
        .file(&format!("{jdk}/lib/modules"), b"jimage")
        .file(&format!("{jdk}/lib/libnet.so"), b"\x7fELF")
        .file(&format!("{jdk}/lib/jrt-fs.jar"), b"")
        .file(&format!("{jdk}/lib/src.zip"), b"")
        .file(&format!("{jdk}/conf/security/java.security"), b"")
        .file(&format!("{jdk}/jmods/java.base.jmod"), b"")
        .file(&format!("{jdk}/release"), b"JAVA_VERSION=\"17.0.9\"\n")
        .file(
            "srv/svc/svc.jar",
            &zip("META-INF/MANIFEST.MF", manifest, true),
        )
        .file("srv/svc/lib/local.jar", &zip("a/B.class", b"cafe", false))
        .file(
            "usr/share/java/dep.jar",
            &zip("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", false),
        )
        .file("usr/share/java/other.jar", b"not even a zip");
    let (_d, img) = image(layer);
    let p = run(
        &img,
        &[&format!("/{jdk}/bin/java"), "/srv/svc/svc.jar"],
        &[(
            &format!("/{jdk}/bin/java"),
            &["java", "-Xmx1g", "-jar", "svc.jar"],
        )],
        Some("/srv/svc"),
        Granularity::Package,
        &[],
    );
    let k = kept(&p);
    for f in [
        "lib/modules",
        "lib/libnet.so",
        "lib/jrt-fs.jar",
        "conf/security/java.security",
        "release",
    ] {
        assert!(
            matches!(k.get(format!("/{jdk}/{f}").as_str()), Some(KeepReason::Package { name, .. }) if name == "jdk 17.0.9"),
            "{f}"
        );
    }
    for f in ["lib/src.zip", "jmods/java.base.jmod", "bin/jshell"] {
        assert!(!k.contains_key(format!("/{jdk}/{f}").as_str()), "{f} kept");
    }
    assert!(matches!(
        k.get("/usr/share/java/dep.jar"),
        Some(KeepReason::PackageDependency { required_by, .. }) if required_by == "svc.jar"
    ));
    assert!(!k.contains_key("/usr/share/java/other.jar"));
    // The app tree keeps its own jars whole.
    assert!(matches!(
        k.get("/srv/svc/lib/local.jar"),
        Some(KeepReason::AppSource { .. })
    ));
    let java = eco(&p, Ecosystem::Java);
    assert_eq!(names(&java.used), ["jdk", "svc.jar"]);
    assert_eq!(names(&java.dependency_only), ["local.jar", "dep.jar"]);
    assert_eq!(java.unused, ["other.jar"]);
}

#[test]
fn app_roots_skip_system_directories_and_virtualenvs() {
    let layer = LayerBuilder::new()
        .exe(
            "usr/local/bin/docker-entrypoint.sh",
            b"#!/bin/sh\nexec \"$@\"\n",
        )
        .exe("bin/sh", b"\x7fELF")
        .file("venv/pyvenv.cfg", b"home = /usr/bin\n")
        .exe("venv/bin/gunicorn", b"#!/venv/bin/python\n")
        .file("venv/lib/python3.11/site-packages/g/__init__.py", b"")
        .file("srv/www/index.html", b"")
        .file("opt/tool/run.sh", b"#!/bin/sh\n");
    let (_d, img) = image(layer);
    let p = run(
        &img,
        &["/usr/local/bin/docker-entrypoint.sh", "/opt/tool/run.sh"],
        &[
            (
                "/usr/local/bin/docker-entrypoint.sh",
                &["docker-entrypoint.sh"],
            ),
            ("/venv/bin/gunicorn", &["gunicorn", "app:app"]),
            ("/bin/sh", &["sh", "-c", "echo hi"]),
            ("/bin/sh", &["sh", "/opt/tool/run.sh"]),
        ],
        Some("/srv"),
        Granularity::Package,
        &[],
    );
    let roots: Vec<&str> = p.coverage.app.iter().map(|a| a.root.as_str()).collect();
    assert_eq!(roots, ["/opt/tool"]);
}

#[test]
fn keep_set_applies_packages_before_excludes() {
    let (_d, img) = image(python_image());
    let site = format!("/{SITE}");
    let access = |path: &str| Access {
        path: path.to_string(),
        kind: AccessKind::Open,
        ok: true,
        nofollow: false,
        write: false,
        pid: 7,
        comm: "python3".into(),
    };
    let obs = Observations {
        accesses: vec![
            access("/app/server.py"),
            access(&format!("{site}/web/__init__.py")),
            // A stat is not a use.
            Access {
                kind: AccessKind::Stat,
                ..access(&format!("{site}/vendored.py"))
            },
        ],
        ..Default::default()
    };
    let options = KeepOptions {
        exclude_patterns: vec!["/app/tests/**".into()],
        ..Default::default()
    };
    let ks = KeepSet::build(&KeepInput {
        image: &img,
        observations: &obs,
        options: &options,
        workdir: Some("/app"),
    })
    .unwrap();
    assert!(ks.contains(&format!("{site}/web/lazy.py")));
    assert!(ks.contains("/app/reports.py"));
    assert!(!ks.contains("/app/tests/test_server.py"));
    assert!(
        ks.contains(&format!("{site}/vendored.py")),
        "stat'ed: kept file by file"
    );
    assert!(!ks.contains(&format!("{site}/unrelated.py")));
    let r = &ks.entries()[&format!("{site}/web/__init__.py")];
    assert!(matches!(r[0], KeepReason::Used { .. }), "{r:?}");
    assert!(
        r.iter().any(|x| matches!(x, KeepReason::Package { .. })),
        "{r:?}"
    );
    let cov = ks.coverage.as_ref().unwrap();
    assert_eq!(cov.granularity, Granularity::Package);
    assert_eq!(cov.app.len(), 1);
}

#[test]
fn metadata_parsers() {
    assert_eq!(
        requirement_name("text-unidecode (>=1.3)").as_deref(),
        Some("text-unidecode")
    );
    assert_eq!(
        requirement_name("importlib-metadata>=3.6.0; python_version < '3.10'").as_deref(),
        Some("importlib-metadata")
    );
    assert_eq!(requirement_name("asgiref>=3.2 ; extra == \"async\""), None);
    assert_eq!(
        requirement_name("pkg[extra1] @ https://x/y.whl").as_deref(),
        Some("pkg")
    );
    assert_eq!(
        name_key(Ecosystem::Python, "Zope.Interface__x"),
        "zope-interface-x"
    );
    assert_eq!(name_key(Ecosystem::Node, "@Scope/X"), "@Scope/X");
    assert_eq!(
        parse_record("a/b.py,sha256=x,1\n\"a/c,d.py\",,\n\"q\"\"uote\",,\n\n"),
        ["a/b.py", "a/c,d.py", "q\"uote"]
    );
    assert_eq!(
        parse_requirements_txt(
            "# c\nflask==3 # web\n-e .\n--hash x\nhttps://x/y.whl\nname @ https://x/z.whl\nslugify ; python_version>'3'\n"
        ),
        ["flask", "name", "slugify"]
    );
    assert_eq!(
        parse_pyproject(
            "[build-system]\nrequires = [\"setuptools\"]\n[project]\nname = \"x\"\ndependencies = [\n  \"flask>=3\",  # web\n  'click',\n]\n[project.optional-dependencies]\ntest = [\"pytest\"]\n[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"^2\"\n"
        ),
        ["flask", "click", "requests"]
    );
    assert_eq!(
        parse_gemfile(
            "source 'https://rubygems.org'\ngem \"rails\", \"~> 7\"\ngroup :development, :test do\n  gem 'rspec'\n  [1].each do |x|\n  end\n  gem 'pry'\nend\ngroup :production do\n  gem 'pg'\nend\ngem 'puma'\n"
        ),
        ["rails", "pg", "puma"]
    );
    let g = parse_gemspec(
        "s.name = \"nokogiri\".freeze\ns.version = \"1.15.4\"\ns.add_runtime_dependency(%q<racc>.freeze, [\"~> 1.4\"])\ns.add_development_dependency \"rake\"\n",
    );
    assert_eq!(g.name.as_deref(), Some("nokogiri"));
    assert_eq!(g.version.as_deref(), Some("1.15.4"));
    assert_eq!(g.runtime_deps, ["racc"]);
    let m = parse_package_json(
        r#"{"name":"a","version":"1","dependencies":{"b":"1"},"peerDependencies":{"c":"1"},"devDependencies":{"d":"1"}}"#,
    )
    .unwrap();
    assert_eq!(m.dependencies, ["b", "c"]);
    assert!(parse_package_json("{oops").is_none());
    assert_eq!(
        parse_class_path("Manifest-Version: 1.0\nClass-Path: a.jar lib/b\n .jar\nX: y\n"),
        ["a.jar", "lib/b.jar"]
    );
}
