//! Writing a new image from a selection of paths of an existing one.
//!
//! The new image has a single layer: the selected entries (a selected
//! directory is the directory entry only, not its contents) plus every
//! parent directory with its original metadata, plus synthetic entries the
//! caller adds (an empty `/tmp`, say). Entries are written in path order with
//! fixed header fields, and JSON documents have a fixed field order and
//! sorted keys, so the same inputs always give byte-identical output. The
//! config is carried over with fresh `rootfs.diff_ids` and one appended
//! history entry (older entries are kept, marked `empty_layer`, because their
//! layers are gone).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::archive::Image;
use super::config::{
    ContainerConfig, Descriptor, DockerManifestEntry, History, ImageConfig, MT_OCI_CONFIG,
    MT_OCI_LAYER, MT_OCI_MANIFEST, OciIndex, OciManifest, RootFs,
};
use super::error::{ImageError, Result};
use super::fs::{Entry, EntryKind};
use super::layer::digest_string;
use super::path::{ancestors, clean_entry_path};
use super::tar_read::TarType;
use super::tar_write::{TarHeader, TarWriter};

/// What a synthetic entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntheticKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// An entry to put in the new image that need not exist in the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticEntry {
    pub path: String,
    pub kind: SyntheticKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl SyntheticEntry {
    /// A directory owned by root, e.g. `SyntheticEntry::dir("/tmp", 0o1777)`.
    pub fn dir(path: &str, mode: u32) -> Self {
        SyntheticEntry {
            path: path.to_string(),
            kind: SyntheticKind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    /// A regular file owned by root.
    pub fn file(path: &str, content: Vec<u8>, mode: u32) -> Self {
        SyntheticEntry {
            kind: SyntheticKind::File(content),
            ..SyntheticEntry::dir(path, mode)
        }
    }

    /// A symlink owned by root.
    pub fn symlink(path: &str, target: &str) -> Self {
        SyntheticEntry {
            kind: SyntheticKind::Symlink(target.to_string()),
            ..SyntheticEntry::dir(path, 0o777)
        }
    }
}

/// The paths to keep. A directory path keeps the directory entry itself;
/// use [`Selection::insert_tree`] for a whole subtree.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    paths: BTreeSet<String>,
    synthetic: BTreeMap<String, SyntheticEntry>,
}

impl Selection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps one image path (cleaned lexically).
    pub fn insert(&mut self, path: &str) {
        self.paths.insert(super::path::normalize(path));
    }

    /// Keeps a directory and everything below it.
    pub fn insert_tree(&mut self, image: &Image, dir: &str) {
        let dir = super::path::normalize(dir);
        for (p, _) in image.fs.descendants(&dir) {
            self.paths.insert(p.to_string());
        }
        self.paths.insert(dir);
    }

    /// Adds (or replaces) a synthetic entry; it wins over an image entry at
    /// the same path.
    pub fn add_synthetic(&mut self, mut e: SyntheticEntry) {
        e.path = super::path::normalize(&e.path);
        self.synthetic.insert(e.path.clone(), e);
    }

    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path) || self.synthetic.contains_key(path)
    }

    /// Number of selected image paths and synthetic entries.
    pub fn len(&self) -> usize {
        self.paths.len() + self.synthetic.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Selected image paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }
}

impl<S: AsRef<str>> FromIterator<S> for Selection {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut s = Selection::new();
        for p in iter {
            s.insert(p.as_ref());
        }
        s
    }
}

/// How to describe the new image.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// "repo:tag" for `RepoTags` / the OCI ref name; none leaves it untagged.
    pub tag: Option<String>,
    /// Labels set on top of the original ones.
    pub labels: BTreeMap<String, String>,
    /// Replaces the original container config (entrypoint, env, ...) when
    /// set; labels above still apply.
    pub container_config: Option<ContainerConfig>,
    /// RFC 3339 creation time; default the original image's, so the output
    /// does not depend on the clock.
    pub created: Option<String>,
    /// The new history entry's `created_by`.
    pub created_by: String,
    pub comment: Option<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            tag: None,
            labels: BTreeMap::new(),
            container_config: None,
            created: None,
            created_by: "slimd: minified image".into(),
            comment: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenImage {
    /// `sha256:` of the config: what `docker images` shows as the id.
    pub image_id: String,
    /// `sha256:` of the OCI manifest (the digest a registry would use).
    pub manifest_digest: String,
    /// `sha256:` of the layer tar.
    pub diff_id: String,
    /// Bytes of the layer tar.
    pub layer_size: u64,
    /// Regular files in the layer (hardlinks not counted twice).
    pub file_count: u64,
    /// Tar entries in the layer (files, directories, links, ...).
    pub entry_count: u64,
    /// Bytes of file contents.
    pub content_bytes: u64,
}

/// Summary of one written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LayerSummary {
    diff_id: String,
    size: u64,
    file_count: u64,
    entry_count: u64,
    content_bytes: u64,
}

/// Where a planned entry comes from.
enum Source<'a> {
    Image(&'a Entry),
    Synthetic(&'a SyntheticEntry),
}

struct Planned<'a> {
    path: String,
    source: Source<'a>,
    /// Earlier path this one is a hardlink of.
    hardlink_to: Option<String>,
}

/// Writes a new single-layer image from a selection.
pub struct ImageWriter<'a> {
    image: &'a Image,
    selection: &'a Selection,
    options: &'a WriteOptions,
}

impl<'a> ImageWriter<'a> {
    pub fn new(image: &'a Image, selection: &'a Selection, options: &'a WriteOptions) -> Self {
        ImageWriter {
            image,
            selection,
            options,
        }
    }

    /// Decides every entry of the layer, in order.
    fn plan(&self) -> Result<Vec<Planned<'a>>> {
        let fs = &self.image.fs;
        let sel = self.selection;
        let mut all: BTreeSet<&str> = BTreeSet::new();
        for p in sel.paths.iter() {
            if !sel.synthetic.contains_key(p) && fs.get(p).is_none() {
                return Err(ImageError::InvalidSelection(format!(
                    "{p} is not in the image"
                )));
            }
            all.insert(p);
        }
        for (p, s) in &sel.synthetic {
            clean_entry_path(p)
                .map_err(|r| ImageError::InvalidSelection(format!("synthetic {p}: {r}")))?;
            if p == "/" {
                return Err(ImageError::InvalidSelection(
                    "a synthetic entry cannot replace the root".into(),
                ));
            }
            if let SyntheticKind::Symlink(t) = &s.kind
                && t.is_empty()
            {
                return Err(ImageError::InvalidSelection(format!(
                    "synthetic symlink {p} has an empty target"
                )));
            }
            all.insert(p);
        }
        let mut with_parents: BTreeSet<&str> = BTreeSet::new();
        for p in &all {
            for a in ancestors(p) {
                if let Some(e) = fs.get(a)
                    && !e.is_dir()
                    && !sel.synthetic.contains_key(a)
                {
                    return Err(ImageError::InvalidSelection(format!(
                        "{p}: its parent {a} is not a directory in the image (give the resolved path)"
                    )));
                }
                if let Some(s) = sel.synthetic.get(a)
                    && s.kind != SyntheticKind::Dir
                {
                    return Err(ImageError::InvalidSelection(format!(
                        "{p}: its parent {a} is a synthetic non-directory"
                    )));
                }
                with_parents.insert(a);
            }
            with_parents.insert(p);
        }
        with_parents.remove("/");
        let mut leaders: HashMap<u64, String> = HashMap::new();
        let mut planned = Vec::with_capacity(with_parents.len());
        for p in with_parents {
            let source = if let Some(s) = sel.synthetic.get(p) {
                Source::Synthetic(s)
            } else if let Some(e) = fs.get(p) {
                Source::Image(e)
            } else {
                // A missing parent of a synthetic entry.
                Source::Synthetic(sel.synthetic.get(p).unwrap_or(&DEFAULT_DIR))
            };
            let mut hardlink_to = None;
            if let Source::Image(e) = &source
                && let Some(g) = e.link_group
                && !e.is_dir()
            {
                match leaders.get(&g) {
                    Some(first) => hardlink_to = Some(first.clone()),
                    None => {
                        leaders.insert(g, p.to_string());
                    }
                }
            }
            planned.push(Planned {
                path: p.to_string(),
                source,
                hardlink_to,
            });
        }
        Ok(planned)
    }

    /// Writes the layer tar to `out`.
    fn write_layer<W: Write>(&self, out: W) -> Result<LayerSummary> {
        let plan = self.plan()?;
        let hashing = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
        };
        let mut tar = TarWriter::new(hashing);
        let mut s = LayerSummary {
            diff_id: String::new(),
            size: 0,
            file_count: 0,
            entry_count: 0,
            content_bytes: 0,
        };
        let werr = |e: io::Error| ImageError::io("writing the layer", e);
        for p in &plan {
            let rel = p.path.trim_start_matches('/');
            s.entry_count += 1;
            match &p.source {
                Source::Synthetic(e) => {
                    let name = match e.kind {
                        SyntheticKind::Dir => format!("{rel}/"),
                        _ => rel.to_string(),
                    };
                    let (kind, size, link) = match &e.kind {
                        SyntheticKind::Dir => (TarType::Dir, 0, ""),
                        SyntheticKind::File(c) => (TarType::File, c.len() as u64, ""),
                        SyntheticKind::Symlink(t) => (TarType::Symlink, 0, t.as_str()),
                    };
                    let h = TarHeader {
                        name: &name,
                        kind,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime: e.mtime,
                        size,
                        link,
                        dev_major: 0,
                        dev_minor: 0,
                        xattrs: &[],
                    };
                    if let SyntheticKind::File(c) = &e.kind {
                        s.file_count += 1;
                        s.content_bytes += c.len() as u64;
                        let mut r: &[u8] = c;
                        tar.append(&h, Some(&mut r)).map_err(werr)?;
                    } else {
                        tar.append(&h, None).map_err(werr)?;
                    }
                }
                Source::Image(e) => {
                    let name = if e.is_dir() {
                        format!("{rel}/")
                    } else {
                        rel.to_string()
                    };
                    let mut h = TarHeader {
                        name: &name,
                        kind: TarType::File,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime: e.mtime,
                        size: 0,
                        link: "",
                        dev_major: 0,
                        dev_minor: 0,
                        xattrs: &e.xattrs,
                    };
                    let leader;
                    if let Some(first) = &p.hardlink_to {
                        leader = first.trim_start_matches('/').to_string();
                        h.kind = TarType::Hardlink;
                        h.link = &leader;
                        h.xattrs = &[];
                        tar.append(&h, None).map_err(werr)?;
                        continue;
                    }
                    match &e.kind {
                        EntryKind::Dir => h.kind = TarType::Dir,
                        EntryKind::Symlink { target } => {
                            h.kind = TarType::Symlink;
                            h.link = target;
                        }
                        EntryKind::CharDevice { major, minor } => {
                            h.kind = TarType::CharDevice;
                            h.dev_major = *major;
                            h.dev_minor = *minor;
                        }
                        EntryKind::BlockDevice { major, minor } => {
                            h.kind = TarType::BlockDevice;
                            h.dev_major = *major;
                            h.dev_minor = *minor;
                        }
                        EntryKind::Fifo => h.kind = TarType::Fifo,
                        EntryKind::File(d) => {
                            h.size = d.size;
                            s.file_count += 1;
                            s.content_bytes += d.size;
                            let mut r = self.image.fs.open_data(d)?;
                            tar.append(&h, Some(&mut r)).map_err(werr)?;
                            continue;
                        }
                    }
                    tar.append(&h, None).map_err(werr)?;
                }
            }
        }
        let (hashing, size) = tar.finish().map_err(werr)?;
        s.size = size;
        s.diff_id = digest_string(hashing.hasher.finalize().into());
        Ok(s)
    }

    /// The new config for a layer with `diff_id`.
    fn config(&self, diff_id: &str) -> ImageConfig {
        let orig = &self.image.config;
        let o = self.options;
        let created = o.created.clone().or_else(|| orig.created.clone());
        let mut config = o
            .container_config
            .clone()
            .unwrap_or_else(|| orig.config.clone());
        if !o.labels.is_empty() {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &o.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        let mut history: Vec<History> = orig
            .history
            .iter()
            .map(|h| History {
                empty_layer: true,
                ..h.clone()
            })
            .collect();
        history.push(History {
            created: created.clone(),
            created_by: Some(o.created_by.clone()),
            author: None,
            comment: o.comment.clone(),
            empty_layer: false,
        });
        ImageConfig {
            created,
            author: orig.author.clone(),
            architecture: if orig.architecture.is_empty() {
                default_arch().into()
            } else {
                orig.architecture.clone()
            },
            variant: orig.variant.clone(),
            os: if orig.os.is_empty() {
                "linux".into()
            } else {
                orig.os.clone()
            },
            config,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.to_string()],
            },
            history,
        }
    }

    /// Config and OCI manifest bytes for a written layer.
    fn documents(&self, layer: &LayerSummary) -> Result<(Vec<u8>, String, Vec<u8>, String)> {
        let config = to_json(&self.config(&layer.diff_id))?;
        let config_digest = digest_string(Sha256::digest(&config).into());
        let manifest = OciManifest {
            schema_version: 2,
            media_type: Some(MT_OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: MT_OCI_CONFIG.into(),
                digest: config_digest.clone(),
                size: config.len() as u64,
                annotations: None,
                platform: None,
            },
            layers: vec![Descriptor {
                media_type: MT_OCI_LAYER.into(),
                digest: layer.diff_id.clone(),
                size: layer.size,
                annotations: None,
                platform: None,
            }],
        };
        let manifest = to_json(&manifest)?;
        let manifest_digest = digest_string(Sha256::digest(&manifest).into());
        Ok((config, config_digest, manifest, manifest_digest))
    }

    /// Writes a `docker save` archive (legacy layout: `manifest.json`,
    /// `repositories`, `<id>/layer.tar`, `<id>.json`) that `docker load`
    /// accepts. The layer is staged in `scratch` first because a tar entry's
    /// size must precede its data.
    pub fn write_docker_archive<W: Write>(&self, out: W, scratch: &Path) -> Result<WrittenImage> {
        std::fs::create_dir_all(scratch)
            .map_err(|e| ImageError::io(format!("creating {}", scratch.display()), e))?;
        let staged = tempfile::Builder::new()
            .prefix(".layer-")
            .tempfile_in(scratch)
            .map_err(|e| ImageError::io("creating a staging file", e))?;
        let layer = self.write_layer(BufWriter::with_capacity(
            1 << 16,
            staged
                .reopen()
                .map_err(|e| ImageError::io("opening the staging file", e))?,
        ))?;
        let (config, config_digest, _, manifest_digest) = self.documents(&layer)?;
        let layer_id = layer.diff_id.trim_start_matches("sha256:").to_string();
        let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
        let layer_path = format!("{layer_id}/layer.tar");
        let manifest = vec![DockerManifestEntry {
            config: config_name.clone(),
            repo_tags: self.options.tag.iter().cloned().collect(),
            layers: vec![layer_path.clone()],
        }];
        let manifest = to_json(&manifest)?;
        let werr = |e: io::Error| ImageError::io("writing the archive", e);
        let mut tar = TarWriter::new(out);
        let dir = format!("{layer_id}/");
        tar.append(&TarHeader::plain_dir(&dir), None)
            .map_err(werr)?;
        let version_name = format!("{layer_id}/VERSION");
        let mut version: &[u8] = b"1.0";
        tar.append(
            &TarHeader::plain_file(&version_name, version.len() as u64),
            Some(&mut version),
        )
        .map_err(werr)?;
        let mut staged_file =
            File::open(staged.path()).map_err(|e| ImageError::io("reading the staged layer", e))?;
        tar.append(
            &TarHeader::plain_file(&layer_path, layer.size),
            Some(&mut staged_file),
        )
        .map_err(werr)?;
        append_bytes(&mut tar, &config_name, &config).map_err(werr)?;
        append_bytes(&mut tar, "manifest.json", &manifest).map_err(werr)?;
        if let Some((repo, tag)) = self.options.tag.as_deref().and_then(split_tag) {
            let mut tags = BTreeMap::new();
            tags.insert(tag.to_string(), layer_id.clone());
            let mut repos = BTreeMap::new();
            repos.insert(repo.to_string(), tags);
            append_bytes(&mut tar, "repositories", &to_json(&repos)?).map_err(werr)?;
        }
        tar.finish().map_err(werr)?;
        Ok(written(&layer, config_digest, manifest_digest))
    }

    /// Writes an OCI image layout directory (`oci-layout`, `index.json`,
    /// `blobs/sha256/...`), plus a Docker-style `manifest.json` so that a
    /// tar of the directory also loads with `docker load`.
    pub fn write_oci_dir(&self, dir: &Path) -> Result<WrittenImage> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)
            .map_err(|e| ImageError::io(format!("creating {}", blobs.display()), e))?;
        let staged = tempfile::Builder::new()
            .prefix(".layer-")
            .tempfile_in(&blobs)
            .map_err(|e| ImageError::io("creating a staging file", e))?;
        let layer = self.write_layer(BufWriter::with_capacity(
            1 << 16,
            staged
                .reopen()
                .map_err(|e| ImageError::io("opening the staging file", e))?,
        ))?;
        let hex_of = |d: &str| d.trim_start_matches("sha256:").to_string();
        staged
            .persist(blobs.join(hex_of(&layer.diff_id)))
            .map_err(|e| ImageError::io("saving the layer blob", e.error))?;
        let (config, config_digest, manifest, manifest_digest) = self.documents(&layer)?;
        let write = |name: &Path, bytes: &[u8]| {
            std::fs::write(name, bytes)
                .map_err(|e| ImageError::io(format!("writing {}", name.display()), e))
        };
        write(&blobs.join(hex_of(&config_digest)), &config)?;
        write(&blobs.join(hex_of(&manifest_digest)), &manifest)?;
        let annotations = self.options.tag.as_ref().map(|t| {
            let mut a = BTreeMap::new();
            a.insert("io.containerd.image.name".to_string(), t.clone());
            if let Some((_, tag)) = split_tag(t) {
                a.insert(
                    "org.opencontainers.image.ref.name".to_string(),
                    tag.to_string(),
                );
            }
            a
        });
        let index = OciIndex {
            schema_version: 2,
            media_type: Some(super::config::MT_OCI_INDEX.into()),
            manifests: vec![Descriptor {
                media_type: MT_OCI_MANIFEST.into(),
                digest: manifest_digest.clone(),
                size: manifest.len() as u64,
                annotations,
                platform: None,
            }],
        };
        write(&dir.join("index.json"), &to_json(&index)?)?;
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let docker = vec![DockerManifestEntry {
            config: format!("blobs/sha256/{}", hex_of(&config_digest)),
            repo_tags: self.options.tag.iter().cloned().collect(),
            layers: vec![format!("blobs/sha256/{}", hex_of(&layer.diff_id))],
        }];
        write(&dir.join("manifest.json"), &to_json(&docker)?)?;
        Ok(written(&layer, config_digest, manifest_digest))
    }
}

/// The directory used for a missing parent of a synthetic entry.
static DEFAULT_DIR: SyntheticEntry = SyntheticEntry {
    path: String::new(),
    kind: SyntheticKind::Dir,
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
};

fn written(layer: &LayerSummary, config_digest: String, manifest_digest: String) -> WrittenImage {
    WrittenImage {
        image_id: config_digest,
        manifest_digest,
        diff_id: layer.diff_id.clone(),
        layer_size: layer.size,
        file_count: layer.file_count,
        entry_count: layer.entry_count,
        content_bytes: layer.content_bytes,
    }
}

fn append_bytes<W: Write>(tar: &mut TarWriter<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut r: &[u8] = bytes;
    tar.append(
        &TarHeader::plain_file(name, bytes.len() as u64),
        Some(&mut r as &mut dyn Read),
    )
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ImageError::InvalidJson {
        what: "generated document".into(),
        reason: e.to_string(),
    })
}

/// "repo:tag" into its parts; a registry port ("host:5000/repo") is not a tag.
fn split_tag(t: &str) -> Option<(&str, &str)> {
    let (repo, tag) = t.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty() && !tag.is_empty()).then_some((repo, tag))
}

fn default_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Hashes bytes on their way out.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
