//! End-to-end checks of the image library against a real Docker engine,
//! driven through the `docker` CLI. Ignored by default: run with
//! `cargo test -p slimd --test image_roundtrip -- --ignored` on a machine
//! with Docker and debootstrap (the Debian rootfs tarball is cached in
//! /var/cache/slimd-tests and reused).

use std::path::{Path, PathBuf};
use std::process::Command;

use slimd::image::{
    ElfOptions, Image, ImageWriter, ResolveOptions, Selection, SyntheticEntry, WriteOptions,
    XrayReport, elf_closure,
};

const ROOTFS: &str = "/var/cache/slimd-tests/debootstrap-bookworm-minbase.tar";
const BASE: &str = "slimd-test/bookworm:minbase";
const LAYERED: &str = "slimd-test/bookworm:layered";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_image(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The debootstrap rootfs tarball, made once (about a minute) and cached.
fn rootfs_tarball() -> PathBuf {
    let path = PathBuf::from(ROOTFS);
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(dir.path())
        .arg("http://deb.debian.org/debian")
        .status()
        .unwrap()
        .success();
    assert!(ok, "debootstrap failed");
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let ok = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(dir.path())
        .arg("-cf")
        .arg(&tmp)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A Debian image with a few layers on top (a deletion, a new file, a
/// file overwritten), so whiteouts are exercised for real.
fn layered_image() {
    if !has_image(BASE) {
        docker(&["import", rootfs_tarball().to_str().unwrap(), BASE]);
    }
    if has_image(LAYERED) {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {BASE}\n\
             RUN rm -f /etc/motd && echo layered > /etc/slimd-test\n\
             RUN echo again > /etc/slimd-test && mkdir -p /opt/app && echo data > /opt/app/data\n\
             ENV GREETING=hello\n\
             WORKDIR /opt/app\n\
             CMD [\"/bin/sh\", \"-c\", \"cat /etc/slimd-test; echo $GREETING\"]\n"
        ),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", LAYERED])
        .arg(ctx.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn save(tag: &str, dir: &Path) -> PathBuf {
    let path = dir.join("saved.tar");
    docker(&["save", tag, "-o", path.to_str().unwrap()]);
    path
}

fn load(archive: &Path) {
    docker(&["load", "-i", archive.to_str().unwrap()]);
}

#[test]
#[ignore = "needs Docker"]
fn rewrite_unchanged_loads_and_runs() {
    layered_image();
    let work = tempfile::tempdir().unwrap();
    let saved = save(LAYERED, work.path());
    let scratch = work.path().join("scratch");
    // Read from a stream, as the engine's export gives it.
    let img = Image::from_save_stream(std::fs::File::open(&saved).unwrap(), &scratch).unwrap();
    assert!(img.layers.len() >= 3);
    assert!(
        img.fs.get("/etc/motd").is_none(),
        "the whiteout hides /etc/motd"
    );
    assert_eq!(img.fs.read("/etc/slimd-test", 100).unwrap(), b"again\n");

    let all: Selection = img
        .fs
        .iter()
        .map(|(p, _)| p)
        .filter(|p| *p != "/")
        .collect();
    let tag = "slimd-test/bookworm:rewritten";
    let out = work.path().join("rewritten.tar");
    let written = ImageWriter::new(
        &img,
        &all,
        &WriteOptions {
            tag: Some(tag.into()),
            ..Default::default()
        },
    )
    .write_docker_archive(std::fs::File::create(&out).unwrap(), &scratch)
    .unwrap();
    load(&out);
    let id = docker(&["image", "inspect", "-f", "{{.Id}}", tag]);
    assert_eq!(id.trim(), written.image_id);
    let run = docker(&["run", "--rm", tag]);
    assert_eq!(run, "again\nhello\n");
    let wd = docker(&["run", "--rm", tag, "pwd"]);
    assert_eq!(wd.trim(), "/opt/app");
    docker(&["rmi", tag]);
}

#[test]
#[ignore = "needs Docker"]
fn elf_closure_is_enough_to_run_ls() {
    layered_image();
    let work = tempfile::tempdir().unwrap();
    let saved = save(LAYERED, work.path());
    let scratch = work.path().join("scratch");
    let img = Image::open(&saved, &scratch).unwrap();
    let mut sel = Selection::new();
    let ls = img
        .fs
        .resolve("/bin/ls", ResolveOptions::default())
        .unwrap();
    sel.insert(&ls.path);
    ls.symlinks.iter().for_each(|s| sel.insert(s));
    let closure = elf_closure(&img.fs, "/bin/ls", &ElfOptions::from_image(&img)).unwrap();
    assert!(closure.missing.is_empty(), "{:?}", closure.missing);
    for p in closure.all_paths() {
        sel.insert(p);
    }
    sel.add_synthetic(SyntheticEntry::dir("/tmp", 0o1777));
    let tag = "slimd-test/bookworm:ls-only";
    let out = work.path().join("ls.tar");
    let mut opts = WriteOptions {
        tag: Some(tag.into()),
        ..Default::default()
    };
    opts.container_config = Some(slimd::image::ContainerConfig {
        entrypoint: Some(vec!["/bin/ls".into()]),
        cmd: Some(vec!["/".into()]),
        ..Default::default()
    });
    let w = ImageWriter::new(&img, &sel, &opts)
        .write_docker_archive(std::fs::File::create(&out).unwrap(), &scratch)
        .unwrap();
    assert!(w.file_count < 20, "{w:?}");
    load(&out);
    let run = docker(&["run", "--rm", tag]);
    assert!(run.lines().any(|l| l == "tmp"), "{run}");
    docker(&["rmi", tag]);
}

#[test]
#[ignore = "needs Docker"]
fn xray_finds_debian_packages() {
    layered_image();
    let work = tempfile::tempdir().unwrap();
    let saved = save(LAYERED, work.path());
    let img = Image::open(&saved, &work.path().join("scratch")).unwrap();
    let report = XrayReport::build(&img);
    let names: Vec<&str> = report.packages.iter().map(|p| p.name.as_str()).collect();
    for want in ["bash", "coreutils", "libc6", "dpkg", "apt"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(report.packages.iter().all(|p| !p.version.is_empty()));
    assert!(report.shells.iter().any(|s| s.ends_with("/bash")));
    assert!(
        report
            .package_managers
            .iter()
            .any(|s| s.ends_with("/apt-get"))
    );
    assert!(report.wasted_bytes > 0, "/etc/slimd-test was overwritten");
    let text = slimd::report::xray::render_xray(&report);
    assert!(text.contains("libc6"));
    serde_json::to_string(&report).unwrap();
}
