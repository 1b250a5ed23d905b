//! Tests of reading, flattening and writing whole images, on small tars
//! crafted here with the `tar` crate. Helpers are shared with the analysis
//! modules' tests.

use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;

/// Builds one layer tar entry by entry.
pub(crate) struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

/// Metadata for a crafted entry.
#[derive(Clone)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, m: &Meta) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode);
        h.set_uid(m.uid);
        h.set_gid(m.gid);
        h.set_mtime(m.mtime);
        h.set_size(0);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(
            tar::EntryType::Directory,
            &Meta {
                mode,
                ..Meta::default()
            },
        );
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn dir_meta(mut self, path: &str, m: &Meta) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, m);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A directory with owner, mode and extended attributes.
    pub fn dir_xattr(mut self, path: &str, m: &Meta, xattrs: &[(&str, &[u8])]) -> Self {
        let recs: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.to_vec()))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap();
        self.dir_meta(path, m)
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_meta(path, data, &Meta::default())
    }

    pub fn exe(self, path: &str, data: &[u8]) -> Self {
        self.file_meta(
            path,
            data,
            &Meta {
                mode: 0o755,
                ..Meta::default()
            },
        )
    }

    pub fn file_meta(mut self, path: &str, data: &[u8], m: &Meta) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, m);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(
            tar::EntryType::Symlink,
            &Meta {
                mode: 0o777,
                ..Meta::default()
            },
        );
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, &Meta::default());
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn whiteout(self, dir: &str, name: &str) -> Self {
        let p = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&p, b"")
    }

    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn special(mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, &Meta::default());
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn xattr_file(mut self, path: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> Self {
        let recs: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.to_vec()))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap();
        self.exe(path, data)
    }

    /// Raw header with an arbitrary name (the tar crate refuses `..`).
    pub fn raw(mut self, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) -> Self {
        let mut h = Self::header(kind, &Meta::default());
        h.set_size(data.len() as u64);
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// A regular file whose name is any bytes, long ones as GNU long names.
    pub fn file_bytes(mut self, name: &[u8], data: &[u8]) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let mut h = Self::header(tar::EntryType::Regular, &Meta::default());
        h.set_size(data.len() as u64);
        self.b
            .append_data(&mut h, std::ffi::OsStr::from_bytes(name), data)
            .unwrap();
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

pub(crate) fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub(crate) fn test_config() -> ImageConfig {
    serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z",
        "config":{"User":"app","Env":["PATH=/usr/local/bin:/usr/bin:/bin","LANG=C.UTF-8"],
          "Entrypoint":["/app/run"],"Cmd":["--serve"],"WorkingDir":"/app",
          "ExposedPorts":{"8080/tcp":{}},"Volumes":{"/data":{}},"Labels":{"a":"1"},
          "StopSignal":"SIGTERM","Healthcheck":{"Test":["CMD","/app/run","--check"]},
          "Shell":["/bin/sh","-c"],"OnBuild":["RUN true"]},
        "history":[{"created_by":"ADD rootfs"},{"created_by":"ENV X=1","empty_layer":true},
          {"created_by":"COPY app"}]}"#,
    )
    .unwrap()
}

/// An image from plain layer tars, spooled into `dir`.
pub(crate) fn image_from(layers: Vec<Vec<u8>>, dir: &std::path::Path) -> Result<Image> {
    let mut cfg = test_config();
    while cfg.history.iter().filter(|h| !h.empty_layer).count() < layers.len() {
        cfg.history.push(History::default());
    }
    Image::from_layer_blobs(
        cfg,
        layers.iter().map(|l| &l[..]),
        dir,
        &ReadOptions::default(),
    )
}

/// A legacy `docker save` tar; manifest.json comes last, as in a stream.
pub(crate) fn docker_save(layers: &[Vec<u8>], config: &ImageConfig, tag: &str) -> Vec<u8> {
    let mut cfg = config.clone();
    cfg.rootfs.diff_ids = layers.iter().map(|l| sha(l)).collect();
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_name = format!("{}.json", &sha(&cfg_bytes)[7..]);
    let mut b = tar::Builder::new(Vec::new());
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let name = format!("{id}/layer.tar");
        let mut h = tar::Header::new_ustar();
        h.set_size(l.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, &l[..]).unwrap();
        names.push(name);
    }
    let mut put = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    put(&cfg_name, &cfg_bytes);
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]);
    put("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

/// An OCI layout tar with blobs as given (possibly compressed) and media types.
pub(crate) fn oci_layout(
    blobs: &[(Vec<u8>, &str)],
    diff_ids: Vec<String>,
    config: &ImageConfig,
) -> Vec<u8> {
    let mut cfg = config.clone();
    cfg.rootfs.diff_ids = diff_ids;
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let layers: Vec<_> = blobs
        .iter()
        .map(|(b, mt)| serde_json::json!({"mediaType": mt, "digest": sha(b), "size": b.len()}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&cfg_bytes), "size": cfg_bytes.len()},
        "layers": layers}))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut put = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for (blob, _) in blobs {
        put(&format!("blobs/sha256/{}", &sha(blob)[7..]), blob);
    }
    put(
        &format!("blobs/sha256/{}", &sha(&cfg_bytes)[7..]),
        &cfg_bytes,
    );
    put(&format!("blobs/sha256/{}", &sha(&manifest)[7..]), &manifest);
    put("index.json", &index);
    b.into_inner().unwrap()
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn read_all(fs: &ImageFs, path: &str) -> Vec<u8> {
    fs.read(path, 1 << 20).unwrap()
}

/// Everything under `dir` of the scratch directory, to show nothing else
/// was written.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let s = scratch();
    let l0 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/keep", b"k")
        .file("etc/gone", b"12345")
        .dir("etc/sub", 0o755)
        .file("etc/sub/deep", b"d")
        .dir("var/cache", 0o755)
        .file("var/cache/a", b"aaa")
        .file("var/cache/b", b"bbb")
        .build();
    let l1 = LayerBuilder::new()
        .whiteout("etc", "gone")
        .whiteout("etc", "sub")
        // The new file comes before the marker: same-layer entries survive.
        .file("var/cache/new", b"n")
        .opaque("var/cache")
        .build();
    let img = image_from(vec![l0, l1], s.path()).unwrap();
    let fs = &img.fs;
    assert!(fs.get("/etc/keep").is_some());
    assert!(fs.get("/etc/gone").is_none());
    assert!(fs.get("/etc/sub").is_none());
    assert!(fs.get("/etc/sub/deep").is_none());
    assert!(fs.get("/etc/.wh.gone").is_none());
    assert!(fs.get("/var/cache").unwrap().is_dir());
    assert!(fs.get("/var/cache/a").is_none());
    assert_eq!(read_all(fs, "/var/cache/new"), b"n");
    assert!(fs.get("/var/cache/.wh..wh..opq").is_none());
    let deleted: u64 = fs
        .shadowed()
        .iter()
        .filter(|s| s.deleted)
        .map(|s| s.data.size)
        .sum();
    assert_eq!(deleted, 5 + 1 + 3 + 3);
    // Only layer files were written to scratch.
    assert!(files_in(s.path()).iter().all(|n| n.starts_with("layer-")));
}

#[test]
fn overwrites_types_and_implicit_parents() {
    let s = scratch();
    let l0 = LayerBuilder::new()
        .file("a/file-then-dir", b"x")
        .dir("a/dir-then-file", 0o700)
        .file("a/dir-then-file/child", b"c")
        .symlink("lib", "usr/lib")
        .dir("usr/lib", 0o755)
        .file("same", b"old contents")
        .build();
    let l1 = LayerBuilder::new()
        .dir("a/file-then-dir", 0o750)
        .file("a/dir-then-file", b"now a file")
        .file("lib/direct", b"overlay makes lib a directory")
        .file("same", b"new")
        .file("no/parents/here", b"p")
        .build();
    let img = image_from(vec![l0, l1], s.path()).unwrap();
    let fs = &img.fs;
    assert_eq!(fs.get("/a/file-then-dir").unwrap().mode, 0o750);
    assert!(fs.get("/a/dir-then-file").unwrap().is_file());
    assert!(fs.get("/a/dir-then-file/child").is_none());
    assert!(fs.get("/lib").unwrap().is_dir());
    assert_eq!(read_all(fs, "/same"), b"new");
    assert!(fs.get("/no/parents").unwrap().is_dir());
    let overwritten: Vec<_> = fs.shadowed().iter().filter(|s| !s.deleted).collect();
    assert!(
        overwritten
            .iter()
            .any(|s| s.path == "/same" && s.data.size == 12)
    );
}

#[test]
fn hardlinks_metadata_devices_xattrs() {
    let s = scratch();
    let cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let l0 = LayerBuilder::new()
        .file_meta(
            "bin/tool",
            b"#!/bin/sh\n",
            &Meta {
                mode: 0o4755,
                uid: 1000,
                gid: 50,
                mtime: 42,
            },
        )
        .hardlink("bin/tool-alias", "bin/tool")
        .xattr_file("bin/ping", b"ping", &[("security.capability", cap)])
        .special("dev/null", tar::EntryType::Char, 1, 3)
        .special("dev/sda", tar::EntryType::Block, 8, 0)
        .special("run/fifo", tar::EntryType::Fifo, 0, 0)
        .build();
    let img = image_from(vec![l0], s.path()).unwrap();
    let fs = &img.fs;
    let tool = fs.get("/bin/tool").unwrap();
    let alias = fs.get("/bin/tool-alias").unwrap();
    assert_eq!(
        (tool.mode, tool.uid, tool.gid, tool.mtime),
        (0o4755, 1000, 50, 42)
    );
    assert!(tool.link_group.is_some());
    assert_eq!(tool.link_group, alias.link_group);
    assert_eq!(tool.kind, alias.kind);
    assert_eq!(read_all(fs, "/bin/tool-alias"), b"#!/bin/sh\n");
    assert_eq!(
        fs.get("/bin/ping").unwrap().xattr("security.capability"),
        Some(&cap[..])
    );
    assert_eq!(
        fs.get("/dev/null").unwrap().kind,
        EntryKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(
        fs.get("/dev/sda").unwrap().kind,
        EntryKind::BlockDevice { major: 8, minor: 0 }
    );
    assert_eq!(fs.get("/run/fifo").unwrap().kind, EntryKind::Fifo);
}

#[test]
fn hostile_names_and_links() {
    let s = scratch();
    // `..` leaving the root is refused.
    let l = LayerBuilder::new()
        .raw(b"../../etc/evil", tar::EntryType::Regular, b"", b"x")
        .build();
    assert!(matches!(
        image_from(vec![l], s.path()),
        Err(ImageError::UnsafePath { .. })
    ));
    // `..` inside the root and absolute names are contained.
    let l = LayerBuilder::new()
        .raw(b"/abs/file", tar::EntryType::Regular, b"", b"x")
        .raw(b"a/../b", tar::EntryType::Regular, b"", b"y")
        .build();
    let img = image_from(vec![l], s.path()).unwrap();
    assert!(img.fs.get("/abs/file").is_some());
    assert!(img.fs.get("/b").is_some());
    // Hardlinks to missing, outside or directory targets.
    for (target, ty) in [
        (&b"missing"[..], "target does not exist"),
        (b"../../../etc/passwd", "leaves"),
        (b"d", "directory"),
    ] {
        let l = LayerBuilder::new()
            .dir("d", 0o755)
            .raw(b"link", tar::EntryType::Link, target, b"")
            .build();
        match image_from(vec![l], s.path()) {
            Err(ImageError::BadHardlink { reason, .. }) => assert!(reason.contains(ty), "{reason}"),
            other => panic!("expected BadHardlink, got {other:?}"),
        }
    }
    // Symlinks out of the root stay inside when resolved.
    let l = LayerBuilder::new()
        .symlink("escape", "../../../../etc/shadow")
        .dir("etc", 0o755)
        .file("etc/shadow", b"inside")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .build();
    let img = image_from(vec![l], s.path()).unwrap();
    assert_eq!(img.fs.read("/escape", 100).unwrap(), b"inside");
    assert!(matches!(
        img.fs.open("/loop1"),
        Err(ImageError::SymlinkLoop(_))
    ));
    // Nothing but layer files in scratch.
    assert!(files_in(s.path()).iter().all(|n| n.starts_with("layer-")));
}

#[test]
fn entry_limit_and_broken_streams() {
    let s = scratch();
    let mut b = LayerBuilder::new();
    for i in 0..50 {
        b = b.file(&format!("f{i}"), b"");
    }
    let layer = b.build();
    let opts = ReadOptions {
        limits: ReadLimits {
            max_entries: 20,
            ..ReadLimits::default()
        },
        ..ReadOptions::default()
    };
    let r = Image::from_layer_blobs(ImageConfig::default(), [&layer[..]], s.path(), &opts);
    assert!(matches!(r, Err(ImageError::TooManyEntries { limit: 20 })));

    let big = LayerBuilder::new().file("big", &vec![7u8; 100_000]).build();
    let gz = gzip(&big);
    let r = image_from(vec![gz[..gz.len() / 2].to_vec()], s.path());
    assert!(matches!(r, Err(ImageError::Truncated { .. })), "{r:?}");
    let mut bad = gz.clone();
    bad[20] ^= 0xff;
    bad[21] ^= 0xff;
    let r = image_from(vec![bad], s.path());
    assert!(
        matches!(
            r,
            Err(ImageError::CorruptCompression { .. } | ImageError::Truncated { .. })
        ),
        "{r:?}"
    );
    let zs = zstd(&big);
    let r = image_from(vec![zs[..zs.len() - 5].to_vec()], s.path());
    assert!(r.is_err());
    let r = image_from(vec![big[..1000].to_vec()], s.path());
    assert!(matches!(r, Err(ImageError::Truncated { .. })), "{r:?}");
    let r = image_from(vec![b"hello, not a tar at all".to_vec()], s.path());
    assert!(matches!(r, Err(ImageError::CorruptTar { .. })), "{r:?}");
    let r = image_from(vec![b"BZh91AY&SY".to_vec()], s.path());
    assert!(
        matches!(r, Err(ImageError::UnsupportedCompression { .. })),
        "{r:?}"
    );
    // A gzip bomb stops at the spool limit.
    let opts = ReadOptions {
        limits: ReadLimits {
            max_spool_bytes: 10_000,
            ..ReadLimits::default()
        },
        ..ReadOptions::default()
    };
    let r = Image::from_layer_blobs(ImageConfig::default(), [&gzip(&big)[..]], s.path(), &opts);
    assert!(
        matches!(r, Err(ImageError::TooLarge { limit: 10_000 })),
        "{r:?}"
    );
}

fn two_layers() -> (Vec<u8>, Vec<u8>) {
    let l0 = LayerBuilder::new()
        .dir("bin", 0o755)
        .exe("bin/sh", b"shell")
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=test\n")
        .build();
    let l1 = LayerBuilder::new()
        .dir("app", 0o750)
        .exe("app/run", b"#!/bin/sh\necho hi\n")
        .whiteout("etc", "os-release")
        .build();
    (l0, l1)
}

#[test]
fn docker_save_legacy_stream() {
    let s = scratch();
    let (l0, l1) = two_layers();
    let save = docker_save(&[l0.clone(), l1.clone()], &test_config(), "demo:1");
    let img = Image::from_save_stream(&save[..], s.path()).unwrap();
    assert_eq!(img.format, ArchiveFormat::DockerArchive);
    assert_eq!(img.repo_tags, vec!["demo:1"]);
    assert_eq!(img.layers.len(), 2);
    assert_eq!(
        img.layers[1]
            .history
            .as_ref()
            .unwrap()
            .created_by
            .as_deref(),
        Some("COPY app")
    );
    assert_eq!(img.layers[0].diff_id, sha(&l0));
    assert_eq!(read_all(&img.fs, "/app/run"), b"#!/bin/sh\necho hi\n");
    assert!(img.fs.get("/etc/os-release").is_none());
    assert_eq!(
        img.config.config.entrypoint,
        Some(vec!["/app/run".to_string()])
    );

    // The same archive gzip-compressed as a whole, and opened from a file.
    let file = s.path().join("in.tar.gz");
    std::fs::write(&file, gzip(&save)).unwrap();
    let s2 = scratch();
    let img2 = Image::open(&file, s2.path()).unwrap();
    assert_eq!(img2.config_digest, img.config_digest);

    // A layer whose bytes no longer match the config's diff_id.
    let mut tampered = docker_save(&[l0.clone(), l1.clone()], &test_config(), "demo:1");
    // Flip a byte inside the first layer's file data (its first entry's data).
    let pos = tampered.windows(5).position(|w| w == b"shell").unwrap();
    tampered[pos] = b'S';
    let r = Image::from_save_stream(&tampered[..], scratch().path());
    assert!(matches!(r, Err(ImageError::DigestMismatch { .. })), "{r:?}");

    // A manifest naming a layer the archive lacks.
    let only_config = {
        let full = docker_save(&[l0], &test_config(), "x:y");
        let mut a = tar::Archive::new(&full[..]);
        let mut b = tar::Builder::new(Vec::new());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().ends_with("layer.tar") {
                continue;
            }
            let h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            b.append(&h, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    };
    let r = Image::from_save_stream(&only_config[..], scratch().path());
    assert!(matches!(r, Err(ImageError::MissingBlob(_))), "{r:?}");
    let r = Image::from_save_stream(&b"not an archive"[..], scratch().path());
    assert!(r.is_err());
}

#[test]
fn oci_layouts_gzip_zstd_and_media_types() {
    let (l0, l1) = two_layers();
    let blobs = vec![
        (gzip(&l0), "application/vnd.oci.image.layer.v1.tar+gzip"),
        (zstd(&l1), "application/vnd.oci.image.layer.v1.tar+zstd"),
    ];
    let layout = oci_layout(&blobs, vec![sha(&l0), sha(&l1)], &test_config());
    let s = scratch();
    let img = Image::from_save_stream(&layout[..], s.path()).unwrap();
    assert_eq!(img.format, ArchiveFormat::OciLayout);
    assert_eq!(img.layers[0].compression, Compression::Gzip);
    assert_eq!(img.layers[1].compression, Compression::Zstd);
    assert_eq!(img.layers[1].digest, sha(&blobs[1].0));
    assert_eq!(read_all(&img.fs, "/bin/sh"), b"shell");
    assert_eq!(img.repo_tags, vec!["v1"]);

    // The same layout as a directory.
    let dir = scratch();
    let mut a = tar::Archive::new(&layout[..]);
    a.unpack(dir.path()).unwrap();
    let s2 = scratch();
    let img2 = Image::open(dir.path(), s2.path()).unwrap();
    assert_eq!(img2.config_digest, img.config_digest);

    let bad = oci_layout(
        &[(l0.clone(), "application/vnd.example.weird")],
        vec![sha(&l0)],
        &test_config(),
    );
    let r = Image::from_save_stream(&bad[..], scratch().path());
    assert!(
        matches!(r, Err(ImageError::UnsupportedMediaType { .. })),
        "{r:?}"
    );
}

fn select_all(img: &Image) -> Selection {
    img.fs
        .iter()
        .map(|(p, _)| p)
        .filter(|p| *p != "/")
        .collect()
}

#[test]
fn writer_round_trip_and_determinism() {
    let s = scratch();
    let cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let long = format!("opt/{}/file", "n".repeat(130));
    let l0 = LayerBuilder::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o711)
        .file_meta(
            "usr/bin/tool",
            b"tool bytes",
            &Meta {
                mode: 0o4755,
                uid: 7,
                gid: 8,
                mtime: 99,
            },
        )
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .xattr_file("usr/bin/ping", b"ping", &[("security.capability", cap)])
        .symlink("bin", "usr/bin")
        .special("dev/null", tar::EntryType::Char, 1, 3)
        .dir("home/app", 0o700)
        .file(&long, b"long")
        .file("unselected", b"drop me")
        .build();
    let img = image_from(vec![l0], s.path()).unwrap();
    let mut sel: Selection = [
        "/usr/bin/tool",
        "/usr/bin/tool2",
        "/usr/bin/ping",
        "/bin",
        "/dev/null",
        "/home/app",
    ]
    .into_iter()
    .collect();
    sel.insert(&format!("/{long}"));
    sel.add_synthetic(SyntheticEntry::dir("/tmp", 0o1777));
    sel.add_synthetic(SyntheticEntry::file(
        "/etc/hostname",
        b"slim\n".to_vec(),
        0o644,
    ));
    let mut opts = WriteOptions {
        tag: Some("demo:slim".into()),
        ..WriteOptions::default()
    };
    opts.labels.insert("slimd.minified".into(), "true".into());
    let w = ImageWriter::new(&img, &sel, &opts);
    let mut out1 = Vec::new();
    let info = w.write_docker_archive(&mut out1, s.path()).unwrap();
    let mut out2 = Vec::new();
    let info2 = w.write_docker_archive(&mut out2, s.path()).unwrap();
    assert_eq!(out1, out2, "same inputs, same bytes");
    assert_eq!(info, info2);
    // tool, ping, the long one, hostname; tool2 is a hardlink.
    assert_eq!(info.file_count, 4);

    let s_back = scratch();
    let back = Image::from_save_stream(&out1[..], s_back.path()).unwrap();
    assert_eq!(back.config_digest, info.image_id);
    assert_eq!(back.layers[0].diff_id, info.diff_id);
    assert_eq!(back.repo_tags, vec!["demo:slim"]);
    let fs = &back.fs;
    for p in [
        "/usr/bin/tool",
        "/usr/bin/ping",
        "/bin",
        "/dev/null",
        "/home/app",
    ] {
        let (a, b) = (img.fs.get(p).unwrap(), fs.get(p).unwrap());
        assert_eq!(
            (a.mode, a.uid, a.gid, a.mtime, &a.xattrs),
            (b.mode, b.uid, b.gid, b.mtime, &b.xattrs),
            "{p}"
        );
    }
    // Parents carry their original metadata.
    assert_eq!(fs.get("/usr/bin").unwrap().mode, 0o711);
    assert_eq!(fs.get("/home/app").unwrap().mode, 0o700);
    let t1 = fs.get("/usr/bin/tool").unwrap();
    let t2 = fs.get("/usr/bin/tool2").unwrap();
    assert!(t1.link_group.is_some() && t1.link_group == t2.link_group);
    assert_eq!(read_all(fs, "/usr/bin/tool2"), b"tool bytes");
    assert_eq!(read_all(fs, &format!("/{long}")), b"long");
    assert!(fs.get("/unselected").is_none());
    assert_eq!(fs.get("/tmp").unwrap().mode, 0o1777);
    assert_eq!(read_all(fs, "/etc/hostname"), b"slim\n");

    let c = &back.config;
    let o = &img.config;
    assert_eq!(c.config.entrypoint, o.config.entrypoint);
    assert_eq!(c.config.cmd, o.config.cmd);
    assert_eq!(c.config.env, o.config.env);
    assert_eq!(c.config.user, o.config.user);
    assert_eq!(c.config.working_dir, o.config.working_dir);
    assert_eq!(c.config.exposed_ports, o.config.exposed_ports);
    assert_eq!(c.config.volumes, o.config.volumes);
    assert_eq!(c.config.healthcheck, o.config.healthcheck);
    assert_eq!(c.config.stop_signal, o.config.stop_signal);
    assert_eq!(c.config.shell, o.config.shell);
    assert_eq!(c.config.on_build, o.config.on_build);
    assert_eq!(c.config.labels.as_ref().unwrap()["a"], "1");
    assert_eq!(c.config.labels.as_ref().unwrap()["slimd.minified"], "true");
    assert_eq!(c.history.len(), o.history.len() + 1);
    assert_eq!(c.history.iter().filter(|h| !h.empty_layer).count(), 1);
    assert_eq!(c.created, o.created);

    // OCI layout output reads back the same.
    let dir = scratch();
    let oci = w.write_oci_dir(dir.path()).unwrap();
    assert_eq!(oci.image_id, info.image_id);
    assert_eq!(oci.manifest_digest, info.manifest_digest);
    let s_back2 = scratch();
    let back2 = Image::open(dir.path(), s_back2.path()).unwrap();
    assert_eq!(back2.config_digest, info.image_id);

    // A selected path that does not exist is an error.
    let sel: Selection = ["/nope"].into_iter().collect();
    let r = ImageWriter::new(&img, &sel, &opts).write_docker_archive(Vec::new(), s.path());
    assert!(matches!(r, Err(ImageError::InvalidSelection(_))));
}

#[test]
fn write_everything_round_trips_every_entry() {
    let s = scratch();
    let (l0, l1) = two_layers();
    let img = image_from(vec![l0, l1], s.path()).unwrap();
    let sel = select_all(&img);
    let mut out = Vec::new();
    ImageWriter::new(&img, &sel, &WriteOptions::default())
        .write_docker_archive(&mut out, s.path())
        .unwrap();
    let s_back = scratch();
    let back = Image::from_save_stream(&out[..], s_back.path()).unwrap();
    type Summary = BTreeMap<String, (u32, u64, u64, u64, Option<[u8; 32]>)>;
    let strip = |fs: &ImageFs| -> Summary {
        fs.iter()
            .map(|(p, e)| {
                let sha = match &e.kind {
                    EntryKind::File(d) => Some(d.sha256),
                    _ => None,
                };
                (p.to_string(), (e.mode, e.uid, e.gid, e.mtime, sha))
            })
            .collect()
    };
    let mut a = strip(&img.fs);
    let b = strip(&back.fs);
    // The root is not in a layer.
    a.insert("/".into(), b["/"]);
    assert_eq!(a, b);
}

/// Names are bytes: Latin-1 names, a symlink and a hardlink to one, and a
/// long name with stray bytes are read, resolved, written and read back
/// byte-exact; xray shows them escaped.
#[test]
fn names_that_are_not_utf8_survive_read_write_read() {
    use super::name::{decode, encode};
    let p = |b: &[u8]| decode(b).into_owned();
    let s = scratch();
    let long = [b"opt/".as_slice(), &[0xe9; 110], b"/data\xff"].concat();
    let l0 = LayerBuilder::new()
        .dir("srv/www", 0o755)
        .raw(
            b"srv/www/caf\xe9.html",
            tar::EntryType::Regular,
            b"",
            b"<p>caf\xe9</p>",
        )
        .raw(
            b"srv/www/menu\xe9",
            tar::EntryType::Symlink,
            b"caf\xe9.html",
            b"",
        )
        .raw(
            b"srv/www/copy\xe8",
            tar::EntryType::Link,
            b"srv/www/caf\xe9.html",
            b"",
        )
        .file_bytes(&long, b"long")
        .file("srv/www/plain.html", b"plain")
        .build();
    let img = image_from(vec![l0], s.path()).unwrap();
    let fs = &img.fs;
    let cafe = p(b"/srv/www/caf\xe9.html");
    assert_eq!(read_all(fs, &cafe), b"<p>caf\xe9</p>");
    let r = fs
        .resolve(&p(b"/srv/www/menu\xe9"), Default::default())
        .unwrap();
    assert!(r.exists);
    assert_eq!(r.path, cafe);
    assert_eq!(read_all(fs, &p(b"/srv/www/copy\xe8")), b"<p>caf\xe9</p>");
    let long_path = p(&[b"/".as_slice(), &long].concat());
    assert_eq!(read_all(fs, &long_path), b"long");
    // The valid-UTF-8 spelling of the same letters is another name.
    assert!(fs.get("/srv/www/café.html").is_none());

    // Write everything, read it back: the same byte names, links intact.
    let sel = select_all(&img);
    let mut out = Vec::new();
    ImageWriter::new(&img, &sel, &WriteOptions::default())
        .write_docker_archive(&mut out, s.path())
        .unwrap();
    let s_back = scratch();
    let back = Image::from_save_stream(&out[..], s_back.path()).unwrap();
    let names =
        |fs: &ImageFs| -> Vec<Vec<u8>> { fs.iter().map(|(p, _)| encode(p).into_owned()).collect() };
    assert_eq!(names(&back.fs), names(fs));
    assert!(names(fs).contains(&b"/srv/www/caf\xe9.html".to_vec()));
    let link = back.fs.get(&p(b"/srv/www/menu\xe9")).unwrap();
    assert_eq!(
        link.kind,
        EntryKind::Symlink {
            target: p(b"caf\xe9.html")
        }
    );
    let (a, b) = (
        back.fs.get(&cafe).unwrap(),
        back.fs.get(&p(b"/srv/www/copy\xe8")).unwrap(),
    );
    assert!(a.link_group.is_some() && a.link_group == b.link_group);
    assert_eq!(read_all(&back.fs, &long_path), b"long");

    // xray shows the names escaped, never as private-use characters.
    let x = XrayReport::build(&img);
    let listed: Vec<&str> = x.largest_files.iter().map(|f| f.path.as_str()).collect();
    assert!(listed.contains(&"/srv/www/caf\\xe9.html"), "{listed:?}");
    let json = serde_json::to_string(&x).unwrap();
    assert!(json.contains(r"/srv/www/caf\\xe9.html"), "{json}");
    assert!(
        !json
            .chars()
            .any(|c| ('\u{10ff80}'..='\u{10ffff}').contains(&c))
    );
}

#[test]
fn written_directories_and_implicit_parents_keep_owner_mode_and_xattrs() {
    let s = scratch();
    let pg = |mode| Meta {
        mode,
        uid: 100,
        gid: 102,
        mtime: 5,
    };
    let l0 = LayerBuilder::new()
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir_meta("var/lib/postgresql", &pg(0o755))
        .dir_xattr(
            "var/lib/postgresql/15",
            &pg(0o750),
            &[("user.origin", b"seeded")],
        )
        .dir_meta("var/lib/postgresql/15/main", &pg(0o700))
        .file_meta("var/lib/postgresql/15/main/PG_VERSION", b"15\n", &pg(0o600))
        .dir_meta("run/postgresql", &pg(0o2775))
        .build();
    let img = image_from(vec![l0], s.path()).unwrap();
    assert_eq!(
        img.fs
            .get("/var/lib/postgresql/15")
            .unwrap()
            .xattr("user.origin"),
        Some(&b"seeded"[..])
    );
    // Only the deepest paths are selected: their parents come implicitly.
    let sel: Selection = ["/var/lib/postgresql/15/main/PG_VERSION", "/run/postgresql"]
        .into_iter()
        .collect();
    let mut out = Vec::new();
    ImageWriter::new(&img, &sel, &WriteOptions::default())
        .write_docker_archive(&mut out, s.path())
        .unwrap();
    let s_back = scratch();
    let back = Image::from_save_stream(&out[..], s_back.path()).unwrap();
    for p in [
        "/var",
        "/var/lib",
        "/var/lib/postgresql",
        "/var/lib/postgresql/15",
        "/var/lib/postgresql/15/main",
        "/var/lib/postgresql/15/main/PG_VERSION",
        "/run/postgresql",
    ] {
        let (a, b) = (img.fs.get(p).unwrap(), back.fs.get(p).unwrap());
        assert_eq!(
            (a.mode, a.uid, a.gid, a.mtime, &a.xattrs),
            (b.mode, b.uid, b.gid, b.mtime, &b.xattrs),
            "{p}"
        );
    }
    let dir = back.fs.get("/var/lib/postgresql/15").unwrap();
    assert_eq!((dir.uid, dir.gid, dir.mode), (100, 102, 0o750));
    assert_eq!(dir.xattr("user.origin"), Some(&b"seeded"[..]));
    assert_eq!(back.fs.get("/run/postgresql").unwrap().mode, 0o2775);
}
