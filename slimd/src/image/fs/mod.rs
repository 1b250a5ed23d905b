//! The flattened filesystem of an image: what a container started from the
//! image would see, built by applying layers in order with overlay rules.
//!
//! Each path maps to one [`Entry`] with its metadata; regular files keep only
//! where their bytes are (layer, offset, size in the spooled layer file) and
//! their sha256, never the bytes themselves. Hardlinked paths share a
//! `link_group`. Files that later layers overwrite or delete are remembered
//! in [`ImageFs::shadowed`] for the wasted-space report. Lookups through
//! symlinks are in [`resolve`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Bound;
use std::path::PathBuf;

use serde::Serialize;

use super::error::{ImageError, Result};
use super::layer::{LayerEntry, LayerEntryKind};
use super::path::{ancestors, clean_entry_path, file_name, parent};

mod resolve;
pub use resolve::{Resolution, ResolveOptions};

/// Where a regular file's bytes are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileData {
    pub size: u64,
    #[serde(serialize_with = "hex_digest")]
    pub sha256: [u8; 32],
    /// Index of the layer whose spooled file holds the bytes.
    pub layer: usize,
    /// Byte offset of the data in that decompressed layer.
    pub offset: u64,
}

fn hex_digest<S: serde::Serializer>(d: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

/// The kind of a filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    Dir,
    File(FileData),
    /// The target exactly as stored in the layer.
    Symlink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One path of the flattened image and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes (e.g. `security.capability`), sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The layer that last wrote this entry.
    pub layer: usize,
    /// Paths with the same group are hardlinks to one inode.
    pub link_group: Option<u64>,
}

impl Entry {
    /// An entry owned by root with no times or xattrs (for tests and
    /// synthetic entries).
    pub fn new(kind: EntryKind, mode: u32) -> Self {
        Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
            layer: 0,
            link_group: None,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }

    pub fn is_file(&self) -> bool {
        matches!(self.kind, EntryKind::File(_))
    }

    pub fn is_symlink(&self) -> bool {
        matches!(self.kind, EntryKind::Symlink { .. })
    }

    /// Bytes of a regular file, 0 for anything else.
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File(d) => d.size,
            _ => 0,
        }
    }

    /// The value of one extended attribute.
    pub fn xattr(&self, name: &str) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn implicit_dir(layer: usize) -> Self {
        Entry {
            layer,
            ..Entry::new(EntryKind::Dir, 0o755)
        }
    }
}

/// A regular file that a later layer overwrote or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadowed {
    pub path: String,
    pub data: FileData,
    /// The layer that overwrote or deleted it.
    pub by_layer: usize,
    /// Deleted (whiteout, opaque directory) rather than overwritten.
    pub deleted: bool,
}

/// The flattened filesystem of an image.
#[derive(Debug, Clone)]
pub struct ImageFs {
    entries: BTreeMap<String, Entry>,
    layer_files: Vec<PathBuf>,
    shadowed: Vec<Shadowed>,
    next_link_group: u64,
}

impl Default for ImageFs {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageFs {
    /// An empty filesystem: only the root directory.
    pub fn new() -> Self {
        let mut entries = BTreeMap::new();
        entries.insert("/".to_string(), Entry::new(EntryKind::Dir, 0o755));
        ImageFs {
            entries,
            layer_files: Vec::new(),
            shadowed: Vec::new(),
            next_link_group: 0,
        }
    }

    /// The entry at a clean path, without following a final symlink (lstat).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries in path order (a parent before its children).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Everything below `dir` (not `dir` itself), in path order.
    pub fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The direct children of `dir`.
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        self.descendants(dir).filter(move |(p, _)| parent(p) == dir)
    }

    /// Regular files that later layers overwrote or deleted.
    pub fn shadowed(&self) -> &[Shadowed] {
        &self.shadowed
    }

    /// Spooled, decompressed layer files, by layer index.
    pub fn layer_files(&self) -> &[PathBuf] {
        &self.layer_files
    }

    /// Adds or replaces an entry at `path` (cleaned), creating missing parent
    /// directories; a directory replaced by a non-directory loses its
    /// subtree. For building filesystems in tests and tools.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = clean_entry_path(path).map_err(|r| ImageError::UnsafePath {
            what: "insert".into(),
            path: path.to_string(),
            reason: r.into(),
        })?;
        if path == "/" && !entry.is_dir() {
            return Err(ImageError::UnsafePath {
                what: "insert".into(),
                path,
                reason: "the root must stay a directory".into(),
            });
        }
        let layer = entry.layer;
        self.ensure_parents(&path, layer);
        self.put(path, entry, layer);
        Ok(())
    }

    /// Opens a regular file's bytes, following symlinks like open(2).
    pub fn open(&self, path: &str) -> Result<FileReader> {
        let res = self.resolve(path, Default::default())?;
        if !res.exists {
            return Err(ImageError::NotFound(path.to_string()));
        }
        self.open_entry(&res.path)
    }

    /// Opens the regular file at exactly this clean path (no symlinks).
    pub fn open_entry(&self, path: &str) -> Result<FileReader> {
        let entry = self
            .get(path)
            .ok_or_else(|| ImageError::NotFound(path.to_string()))?;
        let EntryKind::File(data) = &entry.kind else {
            return Err(ImageError::NotAFile(path.to_string()));
        };
        self.open_data(data)
    }

    /// Opens file bytes by location.
    pub fn open_data(&self, data: &FileData) -> Result<FileReader> {
        let layer_file = self
            .layer_files
            .get(data.layer)
            .ok_or_else(|| ImageError::NotFound(format!("layer {}", data.layer)))?;
        let file = File::open(layer_file)
            .map_err(|e| ImageError::io(format!("opening {}", layer_file.display()), e))?;
        Ok(FileReader {
            file,
            start: data.offset,
            len: data.size,
            pos: 0,
        })
    }

    /// Reads a whole file (following symlinks) if it is at most `max` bytes.
    pub fn read(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let mut r = self.open(path)?;
        if r.len() > max {
            return Err(ImageError::MetadataTooLarge {
                what: path.to_string(),
                size: r.len(),
                limit: max,
            });
        }
        let mut v = Vec::with_capacity(r.len() as usize);
        r.read_to_end(&mut v)
            .map_err(|e| ImageError::io(format!("reading {path}"), e))?;
        Ok(v)
    }

    /// Applies one layer with overlay semantics: whiteouts and opaque
    /// markers first (they only hide what lower layers made), then the
    /// entries in tar order.
    pub(crate) fn apply_layer(
        &mut self,
        layer: usize,
        file: PathBuf,
        entries: Vec<LayerEntry>,
        what: &str,
    ) -> Result<()> {
        if self.layer_files.len() <= layer {
            self.layer_files.resize(layer + 1, PathBuf::new());
        }
        self.layer_files[layer] = file;
        for e in &entries {
            let name = file_name(&e.path);
            if name == ".wh..wh..opq" {
                let dir = parent(&e.path).to_string();
                if self.get(&dir).is_some_and(Entry::is_dir) {
                    let doomed: Vec<String> =
                        self.descendants(&dir).map(|(p, _)| p.to_string()).collect();
                    for p in doomed {
                        self.forget(&p, layer, true);
                    }
                }
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                if hidden.is_empty() || hidden.starts_with(".wh.") {
                    // Other `.wh..wh.*` names are aufs bookkeeping.
                    continue;
                }
                let dir = parent(&e.path);
                let target = if dir == "/" {
                    format!("/{hidden}")
                } else {
                    format!("{dir}/{hidden}")
                };
                self.remove_tree(&target, layer, true);
            }
        }
        for e in entries {
            let name = file_name(&e.path);
            if name.starts_with(".wh.") {
                // The marker's directory exists in the upper layer.
                self.ensure_parents(&e.path, layer);
                continue;
            }
            self.ensure_parents(&e.path, layer);
            let LayerEntry {
                path,
                kind,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            } = e;
            let mut entry = Entry {
                kind: EntryKind::Dir,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
                layer,
                link_group: None,
            };
            entry.kind = match kind {
                LayerEntryKind::Dir => EntryKind::Dir,
                LayerEntryKind::File {
                    offset,
                    size,
                    sha256,
                } => EntryKind::File(FileData {
                    size,
                    sha256,
                    layer,
                    offset,
                }),
                LayerEntryKind::Symlink(target) => EntryKind::Symlink { target },
                LayerEntryKind::CharDevice { major, minor } => {
                    EntryKind::CharDevice { major, minor }
                }
                LayerEntryKind::BlockDevice { major, minor } => {
                    EntryKind::BlockDevice { major, minor }
                }
                LayerEntryKind::Fifo => EntryKind::Fifo,
                LayerEntryKind::Hardlink(target) => {
                    let bad = |reason: &str| ImageError::BadHardlink {
                        what: what.to_string(),
                        path: path.clone(),
                        target: target.clone(),
                        reason: reason.to_string(),
                    };
                    if target == path {
                        return Err(bad("links to itself"));
                    }
                    let group = match self.entries.get_mut(&target) {
                        None => return Err(bad("target does not exist")),
                        Some(t) if t.is_dir() => return Err(bad("target is a directory")),
                        Some(t) => match t.link_group {
                            Some(g) => g,
                            None => {
                                let g = self.next_link_group;
                                self.next_link_group += 1;
                                t.link_group = Some(g);
                                g
                            }
                        },
                    };
                    // A hardlink shares the inode: its metadata is the target's.
                    let t = &self.entries[&target];
                    entry = Entry {
                        layer,
                        link_group: Some(group),
                        ..t.clone()
                    };
                    entry.kind.clone()
                }
            };
            if path == "/" {
                if !entry.is_dir() {
                    return Err(ImageError::UnsafePath {
                        what: what.to_string(),
                        path,
                        reason: "the root is not a directory".into(),
                    });
                }
                let root = self.entries.get_mut("/").expect("root always exists");
                root.mode = entry.mode;
                root.uid = entry.uid;
                root.gid = entry.gid;
                root.mtime = entry.mtime;
                root.xattrs = entry.xattrs;
                root.layer = layer;
                continue;
            }
            self.put(path, entry, layer);
        }
        Ok(())
    }

    /// Makes every ancestor of `path` a directory, as overlayfs shows it: a
    /// missing one appears with default metadata, a non-directory one is
    /// replaced by a directory.
    fn ensure_parents(&mut self, path: &str, layer: usize) {
        for anc in ancestors(path) {
            match self.entries.get(anc) {
                Some(e) if e.is_dir() => {}
                Some(_) => {
                    let anc = anc.to_string();
                    self.forget(&anc, layer, false);
                    self.entries.insert(anc, Entry::implicit_dir(layer));
                }
                None => {
                    self.entries
                        .insert(anc.to_string(), Entry::implicit_dir(layer));
                }
            }
        }
    }

    /// Puts `entry` at `path`; a directory over a directory keeps the
    /// children, anything else replaces the old subtree.
    fn put(&mut self, path: String, entry: Entry, layer: usize) {
        match self.entries.get_mut(&path) {
            Some(old) if old.is_dir() && entry.is_dir() => {
                *old = entry;
            }
            Some(_) => {
                self.remove_tree(&path, layer, false);
                self.entries.insert(path, entry);
            }
            None => {
                self.entries.insert(path, entry);
            }
        }
    }

    /// Removes `path` and everything below it.
    fn remove_tree(&mut self, path: &str, layer: usize, deleted: bool) {
        if path == "/" || !self.entries.contains_key(path) {
            return;
        }
        let doomed: Vec<String> = self.descendants(path).map(|(p, _)| p.to_string()).collect();
        for p in doomed {
            self.forget(&p, layer, deleted);
        }
        self.forget(path, layer, deleted);
    }

    /// Removes one entry, remembering a regular file's bytes as shadowed.
    fn forget(&mut self, path: &str, layer: usize, deleted: bool) {
        if let Some(old) = self.entries.remove(path)
            && let EntryKind::File(data) = old.kind
        {
            self.shadowed.push(Shadowed {
                path: path.to_string(),
                data,
                by_layer: layer,
                deleted,
            });
        }
    }
}

/// A regular file's bytes inside a spooled layer: `Read + Seek` over exactly
/// the file's range.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl FileReader {
    /// Size of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - self.pos) as usize;
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}
