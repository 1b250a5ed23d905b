//! Reading whole images: `docker save` archives (the legacy layout and the
//! OCI-index layout newer engines write), OCI image layout directories and
//! tars, and bare layer streams.
//!
//! The input is read once, in order, because the engine's export is a
//! stream and `manifest.json` may come after the layers. Every blob is
//! classified by its first bytes: small JSON documents stay in memory, layer
//! blobs (tar, gzip, zstd) are spooled decompressed into the scratch
//! directory and indexed on the way. Once the stream ends, the manifest
//! picks the config and the layers in order, digests are checked, and the
//! layers are flattened into an [`ImageFs`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::{
    DockerManifestEntry, History, ImageConfig, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
    MT_OCI_MANIFEST, OciIndex, OciManifest, is_layer_media_type,
};
use super::error::{ImageError, Result};
use super::fs::ImageFs;
use super::layer::{
    Compression, EntryBudget, ReadLimits, Sniffed, SpooledLayer, digest_string, io_error,
    read_up_to, sniff, spool_layer_counted, tar_error,
};
use super::name;
use super::path::{clean_entry_path, join, parent};
use super::tar_read::{TarError, TarReader, TarType};

/// How to read an image.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub limits: ReadLimits,
    /// Which image of a multi-image archive ("repo:tag"); required only
    /// when there are several.
    pub tag: Option<String>,
    /// Largest JSON document (manifest, config, index) kept in memory.
    pub max_json_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            limits: ReadLimits::default(),
            tag: None,
            max_json_bytes: 16 << 20,
        }
    }
}

/// Which layout the image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFormat {
    /// `docker save` with `manifest.json` and `<id>/layer.tar`.
    DockerArchive,
    /// `docker save` of engines 25+: `manifest.json` plus an OCI index.
    DockerOciArchive,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    OciLayout,
    /// Built from bare layer streams.
    Layers,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub index: usize,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:` of the blob as stored (compressed if it was).
    pub digest: String,
    pub media_type: Option<String>,
    pub compression: Compression,
    /// Bytes of the blob as stored.
    pub blob_size: u64,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    /// Tar entries in the layer.
    pub entries: u64,
    /// The spooled, uncompressed tar in the scratch directory.
    pub file: PathBuf,
    /// The history entry that made this layer, if the config has one.
    pub history: Option<History>,
}

/// An image read into memory (metadata) and scratch (layer bytes).
///
/// The layer files under the scratch directory must outlive the `Image`;
/// the caller owns that directory and removes it when done.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: ImageConfig,
    /// The config document exactly as parsed, for fields we do not model.
    pub raw_config: serde_json::Value,
    /// `sha256:` of the config: the image id.
    pub config_digest: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<Layer>,
    pub fs: ImageFs,
    pub format: ArchiveFormat,
}

impl Image {
    /// Reads a `docker save` (or OCI layout) tar stream, optionally gzip or
    /// zstd compressed as a whole, spooling layers into `scratch`.
    pub fn from_save_stream<R: Read>(input: R, scratch: &Path) -> Result<Image> {
        Self::from_save_stream_with(input, scratch, &ReadOptions::default())
    }

    /// [`Image::from_save_stream`] with options.
    pub fn from_save_stream_with<R: Read>(
        input: R,
        scratch: &Path,
        opts: &ReadOptions,
    ) -> Result<Image> {
        let mut store = Store::new(scratch, opts)?;
        let mut input = input;
        let mut head = vec![0u8; 512];
        let n = read_up_to(&mut input, &mut head).map_err(|e| io_error("the archive", e))?;
        head.truncate(n);
        let chained = Cursor::new(head.clone()).chain(input);
        match sniff(&head) {
            Sniffed::Gzip => store.ingest_tar(flate2::read::MultiGzDecoder::new(chained))?,
            Sniffed::Zstd => store.ingest_tar(
                zstd::stream::read::Decoder::new(chained)
                    .map_err(|e| io_error("the archive", e))?,
            )?,
            _ => store.ingest_tar(chained)?,
        }
        store.build()
    }

    /// Reads an image from a file (a `docker save` or OCI layout tar) or an
    /// OCI layout directory.
    pub fn open(path: &Path, scratch: &Path) -> Result<Image> {
        Self::open_with(path, scratch, &ReadOptions::default())
    }

    /// [`Image::open`] with options.
    pub fn open_with(path: &Path, scratch: &Path, opts: &ReadOptions) -> Result<Image> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
        if meta.is_dir() {
            let mut store = Store::new(scratch, opts)?;
            store.ingest_dir(path, path)?;
            store.build()
        } else {
            let f = File::open(path)
                .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
            Self::from_save_stream_with(BufReader::with_capacity(1 << 16, f), scratch, opts)
        }
    }

    /// Builds an image from bare layer blobs (plain, gzip or zstd tars,
    /// lowest first) and a config. Empty `rootfs.diff_ids` are filled in;
    /// given ones must match. For tests, fuzzing and tools.
    pub fn from_layer_blobs<R: Read>(
        mut config: ImageConfig,
        blobs: impl IntoIterator<Item = R>,
        scratch: &Path,
        opts: &ReadOptions,
    ) -> Result<Image> {
        let mut budget = EntryBudget {
            used: 0,
            limit: opts.limits.max_entries,
            spooled: 0,
        };
        let mut spooled = Vec::new();
        for (i, blob) in blobs.into_iter().enumerate() {
            spooled.push(spool_layer_counted(
                blob,
                scratch,
                &format!("layer {i}"),
                &opts.limits,
                &mut budget,
            )?);
        }
        if config.rootfs.diff_ids.is_empty() {
            config.rootfs.diff_ids = spooled.iter().map(|s| s.diff_id.clone()).collect();
        }
        let raw = serde_json::to_vec(&config).map_err(|e| ImageError::InvalidJson {
            what: "config".into(),
            reason: e.to_string(),
        })?;
        let raw_config = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        let config_digest = digest_string(Sha256::digest(&raw).into());
        let layers = spooled.into_iter().map(|s| (s, None)).collect();
        assemble(
            config,
            raw_config,
            config_digest,
            Vec::new(),
            layers,
            ArchiveFormat::Layers,
        )
    }

    /// The image id (`sha256:` of the config).
    pub fn id(&self) -> &str {
        &self.config_digest
    }

    /// Bytes of all layers, uncompressed.
    pub fn total_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// A blob found in the input, by its path inside the archive.
enum Blob {
    Json {
        bytes: Vec<u8>,
        digest: String,
    },
    Layer(SpooledLayer),
    /// Present but unusable; an error only if the manifest names it.
    Unusable(String),
}

/// Everything collected while reading the input.
struct Store<'a> {
    scratch: PathBuf,
    opts: &'a ReadOptions,
    budget: EntryBudget,
    blobs: HashMap<String, Blob>,
    /// Symlinks and hardlinks in the archive (legacy `docker save` links
    /// identical layers), archive path to archive path.
    links: HashMap<String, String>,
}

/// Reads one outer tar entry's data and remembers a failure of the outer
/// stream, so that it is told apart from a bad blob inside it.
struct EntryData<'t, R: Read> {
    tar: &'t mut TarReader<R>,
    failed: Option<TarError>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tar.read_data(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let io = match &e {
                    TarError::Truncated { .. } => io::ErrorKind::UnexpectedEof.into(),
                    _ => io::Error::other("the archive stream failed"),
                };
                self.failed = Some(e);
                Err(io)
            }
        }
    }
}

/// Names of small metadata files we keep in memory regardless of content.
fn is_metadata_name(name: &str) -> bool {
    name == "repositories"
        || name == "oci-layout"
        || name.ends_with(".json")
        || name.ends_with("/json")
        || name.ends_with("VERSION")
}

/// The digest an archive path implies: `blobs/sha256/<hex>` or a legacy
/// `<hex>.json` config.
fn implied_digest(name: &str) -> Option<String> {
    let hexpart = if let Some(rest) = name.strip_prefix("blobs/sha256/") {
        rest
    } else {
        name.strip_suffix(".json").filter(|s| !s.contains('/'))?
    };
    (hexpart.len() == 64 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hexpart.to_ascii_lowercase()))
}

impl<'a> Store<'a> {
    fn new(scratch: &Path, opts: &'a ReadOptions) -> Result<Self> {
        std::fs::create_dir_all(scratch)
            .map_err(|e| ImageError::io(format!("creating {}", scratch.display()), e))?;
        Ok(Store {
            scratch: scratch.to_path_buf(),
            opts,
            budget: EntryBudget {
                used: 0,
                limit: opts.limits.max_entries,
                spooled: 0,
            },
            blobs: HashMap::new(),
            links: HashMap::new(),
        })
    }

    fn count_entry(&mut self) -> Result<()> {
        self.budget.used += 1;
        if self.budget.used > self.budget.limit {
            return Err(ImageError::TooManyEntries {
                limit: self.budget.limit,
            });
        }
        Ok(())
    }

    /// Reads the outer tar stream.
    fn ingest_tar<R: Read>(&mut self, input: R) -> Result<()> {
        let what = "the archive";
        let mut tar = TarReader::new(input, self.opts.limits.max_meta);
        while let Some(e) = tar.next_entry().map_err(|e| tar_error(what, e))? {
            self.count_entry()?;
            // Outer names only serve as keys: unsafe ones are dropped, never
            // used to write anything.
            let Ok(clean) = clean_entry_path(&e.name) else {
                continue;
            };
            let name = clean.trim_start_matches('/').to_string();
            match e.kind {
                TarType::Symlink => {
                    let target = join(parent(&clean), &e.link);
                    self.links
                        .insert(name, target.trim_start_matches('/').to_string());
                }
                TarType::Hardlink => {
                    if let Ok(t) = clean_entry_path(&e.link) {
                        self.links
                            .insert(name, t.trim_start_matches('/').to_string());
                    }
                }
                TarType::File => {
                    let mut data = EntryData {
                        tar: &mut tar,
                        failed: None,
                    };
                    let res = self.ingest_blob(&name, e.size, &mut data);
                    if let Some(failed) = data.failed {
                        return Err(tar_error(what, failed));
                    }
                    res?;
                }
                _ => {}
            }
        }
        // Whatever follows the end marker is not ours to judge.
        Ok(())
    }

    /// Walks an OCI layout directory (symlinks are recorded, never followed).
    fn ingest_dir(&mut self, root: &Path, dir: &Path) -> Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| ImageError::io(format!("listing {}", dir.display()), e))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| ImageError::io(format!("listing {}", dir.display()), e))?;
        names.sort_by_key(|d| d.file_name());
        for d in names {
            self.count_entry()?;
            let path = d.path();
            let rel = name::decode(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .as_os_str()
                    .as_bytes(),
            )
            .into_owned();
            let ft = d
                .file_type()
                .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
            if ft.is_dir() {
                self.ingest_dir(root, &path)?;
            } else if ft.is_symlink() {
                if let Ok(t) = std::fs::read_link(&path) {
                    let target = join(
                        parent(&format!("/{rel}")),
                        &name::decode(t.as_os_str().as_bytes()),
                    );
                    self.links
                        .insert(rel, target.trim_start_matches('/').to_string());
                }
            } else if ft.is_file() {
                let size = d.metadata().map(|m| m.len()).unwrap_or(0);
                let f = File::open(&path)
                    .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
                let mut r = BufReader::with_capacity(1 << 16, f);
                self.ingest_blob(&rel, size, &mut r)?;
            }
        }
        Ok(())
    }

    /// Classifies one blob by name and first bytes, and keeps it.
    fn ingest_blob(&mut self, name: &str, size: u64, r: &mut impl Read) -> Result<()> {
        let max_json = self.opts.max_json_bytes;
        let mut head = vec![0u8; 512];
        let n = read_up_to(r, &mut head).map_err(|e| io_error(name, e))?;
        head.truncate(n);
        let kind = sniff(&head);
        let small = size <= max_json;
        if is_metadata_name(name) || (kind == Sniffed::Json && small) {
            if !small {
                return Err(ImageError::MetadataTooLarge {
                    what: name.to_string(),
                    size,
                    limit: max_json,
                });
            }
            let mut bytes = head;
            r.take(max_json + 1 - bytes.len() as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| io_error(name, e))?;
            let digest = digest_string(Sha256::digest(&bytes).into());
            self.blobs
                .insert(name.to_string(), Blob::Json { bytes, digest });
            return Ok(());
        }
        let blob = match kind {
            Sniffed::Tar | Sniffed::Gzip | Sniffed::Zstd | Sniffed::Bzip2 | Sniffed::Xz => {
                let source = Cursor::new(head).chain(r);
                match spool_layer_counted(
                    source,
                    &self.scratch,
                    name,
                    &self.opts.limits,
                    &mut self.budget,
                ) {
                    Ok(s) => Blob::Layer(s),
                    // Limits protect the machine: they end the read.
                    Err(e @ (ImageError::TooManyEntries { .. } | ImageError::TooLarge { .. })) => {
                        return Err(e);
                    }
                    Err(e) => Blob::Unusable(e.to_string()),
                }
            }
            Sniffed::Json => Blob::Unusable(format!(
                "a {size}-byte JSON document, larger than the {max_json}-byte limit"
            )),
            Sniffed::Unknown => Blob::Unusable("neither JSON nor a (compressed) tar".into()),
        };
        self.blobs.insert(name.to_string(), blob);
        Ok(())
    }

    /// Follows archive links to the stored blob's name.
    fn find(&self, name: &str) -> Result<String> {
        let mut cur = clean_entry_path(name)
            .map_err(|_| ImageError::MissingBlob(name.to_string()))?
            .trim_start_matches('/')
            .to_string();
        for _ in 0..16 {
            if self.blobs.contains_key(&cur) {
                return Ok(cur);
            }
            match self.links.get(&cur) {
                Some(next) => cur = next.clone(),
                None => break,
            }
        }
        Err(ImageError::MissingBlob(name.to_string()))
    }

    fn json(&self, name: &str) -> Result<(&[u8], &str)> {
        let key = self.find(name)?;
        match &self.blobs[&key] {
            Blob::Json { bytes, digest } => {
                check_implied(name, digest)?;
                Ok((bytes, digest))
            }
            Blob::Layer(_) => Err(ImageError::UnusableBlob {
                blob: name.to_string(),
                reason: "expected a JSON document, found a layer".into(),
            }),
            Blob::Unusable(reason) => Err(ImageError::UnusableBlob {
                blob: name.to_string(),
                reason: reason.clone(),
            }),
        }
    }

    fn layer_key(&self, name: &str) -> Result<String> {
        let key = self.find(name)?;
        match &self.blobs[&key] {
            Blob::Layer(l) => {
                check_implied(name, &l.blob_digest)?;
                Ok(key)
            }
            Blob::Json { .. } => Err(ImageError::UnusableBlob {
                blob: name.to_string(),
                reason: "expected a layer, found a JSON document".into(),
            }),
            Blob::Unusable(reason) => Err(ImageError::UnusableBlob {
                blob: name.to_string(),
                reason: reason.clone(),
            }),
        }
    }

    /// Picks the image, checks it, and flattens it.
    fn build(mut self) -> Result<Image> {
        let has_index = self.blobs.contains_key("index.json");
        let (config_name, repo_tags, layer_refs, format) =
            if self.blobs.contains_key("manifest.json") {
                let (bytes, _) = self.json("manifest.json")?;
                let entries: Vec<DockerManifestEntry> = parse_json(bytes, "manifest.json")?;
                let entry = self.choose_docker(entries)?;
                let refs = entry.layers.into_iter().map(|l| (l, None)).collect();
                let format = if has_index {
                    ArchiveFormat::DockerOciArchive
                } else {
                    ArchiveFormat::DockerArchive
                };
                (entry.config, entry.repo_tags, refs, format)
            } else if has_index {
                let (manifest, tags) = self.choose_oci()?;
                let mut refs = Vec::new();
                for d in manifest.layers {
                    if !is_layer_media_type(&d.media_type) {
                        return Err(ImageError::UnsupportedMediaType {
                            media_type: d.media_type,
                            digest: d.digest,
                        });
                    }
                    refs.push((blob_path(&d.digest)?, Some(d.media_type)));
                }
                (
                    blob_path(&manifest.config.digest)?,
                    tags,
                    refs,
                    ArchiveFormat::OciLayout,
                )
            } else {
                return Err(ImageError::NotAnImage(
                    "neither manifest.json nor index.json found".into(),
                ));
            };

        let (config_bytes, config_digest) = self.json(&config_name)?;
        let config_digest = config_digest.to_string();
        let config: ImageConfig = parse_json(config_bytes, "image config")?;
        let raw_config: serde_json::Value = parse_json(config_bytes, "image config")?;

        let mut keys = Vec::new();
        for (name, _) in &layer_refs {
            keys.push(self.layer_key(name)?);
        }
        if config.rootfs.diff_ids.len() != keys.len() {
            return Err(ImageError::LayerCountMismatch {
                layers: keys.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        // Move each layer out of the store; a blob named twice is cloned.
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for k in &keys {
            *uses.entry(k.as_str()).or_default() += 1;
        }
        let mut uses: HashMap<String, usize> =
            uses.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let mut layers = Vec::new();
        for (key, (_, media_type)) in keys.iter().zip(layer_refs) {
            let left = uses.get_mut(key).expect("counted above");
            *left -= 1;
            let spooled = if *left == 0 {
                match self.blobs.remove(key) {
                    Some(Blob::Layer(l)) => l,
                    _ => unreachable!("layer_key checked the kind"),
                }
            } else {
                match &self.blobs[key] {
                    Blob::Layer(l) => SpooledLayer {
                        file: l.file.clone(),
                        diff_id: l.diff_id.clone(),
                        size: l.size,
                        blob_digest: l.blob_digest.clone(),
                        blob_size: l.blob_size,
                        compression: l.compression,
                        entries: l.entries.clone(),
                    },
                    _ => unreachable!("layer_key checked the kind"),
                }
            };
            layers.push((spooled, media_type));
        }
        // Spooled blobs nobody uses (other platforms, attestations) go.
        let used: HashSet<PathBuf> = layers.iter().map(|(l, _)| l.file.clone()).collect();
        for blob in self.blobs.values() {
            if let Blob::Layer(l) = blob
                && !used.contains(&l.file)
            {
                let _ = std::fs::remove_file(&l.file);
            }
        }
        assemble(config, raw_config, config_digest, repo_tags, layers, format)
    }

    fn choose_docker(&self, entries: Vec<DockerManifestEntry>) -> Result<DockerManifestEntry> {
        if let Some(tag) = &self.opts.tag {
            return entries
                .into_iter()
                .find(|e| e.repo_tags.iter().any(|t| tag_matches(t, tag)))
                .ok_or_else(|| ImageError::NoSuchTag(tag.clone()));
        }
        match entries.len() {
            0 => Err(ImageError::NotAnImage(
                "manifest.json lists no image".into(),
            )),
            1 => Ok(entries.into_iter().next().expect("one entry")),
            n => Err(ImageError::AmbiguousImage {
                count: n,
                tags: entries
                    .iter()
                    .map(|e| e.repo_tags.join(","))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    /// Walks `index.json` (and nested indexes) to one image manifest.
    fn choose_oci(&self) -> Result<(OciManifest, Vec<String>)> {
        let (bytes, _) = self.json("index.json")?;
        let index: OciIndex = parse_json(bytes, "index.json")?;
        let mut candidates = Vec::new();
        let mut queue: Vec<(super::config::Descriptor, u32)> =
            index.manifests.into_iter().map(|d| (d, 0)).collect();
        while let Some((d, depth)) = queue.pop() {
            match d.media_type.as_str() {
                MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => candidates.push(d),
                MT_OCI_INDEX | MT_DOCKER_LIST if depth < 4 => {
                    let (bytes, _) = self.json(&blob_path(&d.digest)?)?;
                    let nested: OciIndex = parse_json(bytes, "nested index")?;
                    // Names of the outer descriptor apply to the nested images.
                    for mut n in nested.manifests {
                        if n.annotations.is_none() {
                            n.annotations = d.annotations.clone();
                        }
                        queue.push((n, depth + 1));
                    }
                }
                _ => {}
            }
        }
        candidates.reverse();
        let names = |d: &super::config::Descriptor| -> Vec<String> {
            let a = d.annotations.clone().unwrap_or_default();
            let mut v = Vec::new();
            if let Some(n) = a.get("io.containerd.image.name") {
                v.push(n.clone());
            }
            if let Some(n) = a.get("org.opencontainers.image.ref.name") {
                v.push(n.clone());
            }
            v
        };
        if let Some(tag) = &self.opts.tag {
            candidates.retain(|d| names(d).iter().any(|n| tag_matches(n, tag)));
            if candidates.is_empty() {
                return Err(ImageError::NoSuchTag(tag.clone()));
            }
        }
        // Several platforms: prefer this machine's, else the first.
        let host = host_arch();
        let chosen = candidates
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host)
            })
            .or_else(|| {
                candidates.iter().find(|d| {
                    d.platform
                        .as_ref()
                        .is_none_or(|p| p.architecture != "unknown")
                })
            })
            .ok_or_else(|| ImageError::NotAnImage("index.json lists no image manifest".into()))?;
        let (bytes, digest) = self.json(&blob_path(&chosen.digest)?)?;
        if digest != chosen.digest {
            return Err(ImageError::DigestMismatch {
                what: "image manifest".into(),
                expected: chosen.digest.clone(),
                actual: digest.to_string(),
            });
        }
        let manifest: OciManifest = parse_json(bytes, "image manifest")?;
        Ok((manifest, names(chosen)))
    }
}

/// Checks a blob's content digest against the digest its name implies.
fn check_implied(name: &str, actual: &str) -> Result<()> {
    match implied_digest(name) {
        Some(expected) if expected != actual => Err(ImageError::DigestMismatch {
            what: name.to_string(),
            expected,
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// `sha256:<hex>` to `blobs/sha256/<hex>`; other algorithms are refused.
fn blob_path(digest: &str) -> Result<String> {
    match digest.split_once(':') {
        Some((alg, hexpart))
            if !alg.is_empty()
                && alg.bytes().all(|b| b.is_ascii_alphanumeric())
                && !hexpart.is_empty()
                && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            if alg != "sha256" {
                return Err(ImageError::UnsupportedMediaType {
                    media_type: format!("digest algorithm {alg}"),
                    digest: digest.to_string(),
                });
            }
            Ok(format!("blobs/{alg}/{hexpart}"))
        }
        _ => Err(ImageError::InvalidJson {
            what: "descriptor".into(),
            reason: format!("bad digest {digest:?}"),
        }),
    }
}

/// "repo:tag" names match exactly, or by tag alone, or with docker.io's
/// implicit prefixes.
fn tag_matches(name: &str, wanted: &str) -> bool {
    let strip = |s: &str| {
        s.trim_start_matches("docker.io/")
            .trim_start_matches("library/")
            .to_string()
    };
    name == wanted || strip(name) == strip(wanted)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidJson {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Checks diff_ids, attaches history, and flattens the layers.
fn assemble(
    config: ImageConfig,
    raw_config: serde_json::Value,
    config_digest: String,
    repo_tags: Vec<String>,
    spooled: Vec<(SpooledLayer, Option<String>)>,
    format: ArchiveFormat,
) -> Result<Image> {
    if config.rootfs.diff_ids.len() != spooled.len() {
        return Err(ImageError::LayerCountMismatch {
            layers: spooled.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    let mut history = config.history.iter().filter(|h| !h.empty_layer);
    let mut fs = ImageFs::new();
    let mut layers = Vec::new();
    for (index, ((s, media_type), expected)) in
        spooled.into_iter().zip(&config.rootfs.diff_ids).enumerate()
    {
        if &s.diff_id != expected {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {index} (diff_id)"),
                expected: expected.clone(),
                actual: s.diff_id,
            });
        }
        let entries = s.entries.len() as u64;
        fs.apply_layer(index, s.file.clone(), s.entries, &format!("layer {index}"))?;
        layers.push(Layer {
            index,
            diff_id: s.diff_id,
            digest: s.blob_digest,
            media_type,
            compression: s.compression,
            blob_size: s.blob_size,
            size: s.size,
            entries,
            file: s.file,
            history: history.next().cloned(),
        });
    }
    Ok(Image {
        config,
        raw_config,
        config_digest,
        repo_tags,
        layers,
        fs,
        format,
    })
}
