//! Reading one layer blob: detect its compression from its first bytes,
//! decompress it into a file in the scratch directory (so later reads can
//! seek), and index its entries on the way, in a single pass.
//!
//! The decompressed bytes pass through a tee: one copy goes to the spool
//! file and to the sha256 that becomes the layer's diff_id, the other to the
//! tar reader that records each entry and hashes each file's data. Nothing
//! larger than one tar header (or one bounded extension header) is held in
//! memory.

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{ImageError, Result};
use super::path::clean_entry_path;
use super::tar_read::{TarError, TarReader, TarType};

/// How a layer blob is compressed, as found from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What the first bytes of a blob look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
    Tar,
    Json,
    Unknown,
}

/// Classifies a blob from up to its first 512 bytes.
pub(crate) fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
    {
        // A zstd frame, or a zstd skippable frame in front of one.
        Sniffed::Zstd
    } else if head.starts_with(b"BZh") {
        Sniffed::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniffed::Xz
    } else if head.is_empty() || looks_like_tar(head) {
        Sniffed::Tar
    } else if head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[')
    {
        Sniffed::Json
    } else {
        Sniffed::Unknown
    }
}

/// A full first block that is all zeros (an empty archive) or carries a
/// valid header checksum.
fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let block = &head[..512];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u64::from_str_radix(digits.trim(), 8) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == stored
}

/// Limits that keep hostile input bounded.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    /// Tar entries allowed across all layers of one image.
    pub max_entries: u64,
    /// Largest PAX header or GNU long name kept in memory.
    pub max_meta: u64,
    /// Decompressed bytes allowed across all layers (a gzip bomb stops here
    /// instead of filling the disk).
    pub max_spool_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_entries: 2_000_000,
            max_meta: 1 << 20,
            max_spool_bytes: 256 << 30,
        }
    }
}

/// Counts entries against [`ReadLimits::max_entries`] across layers.
#[derive(Debug)]
pub(crate) struct EntryBudget {
    pub used: u64,
    pub limit: u64,
    /// Decompressed bytes spooled so far, against `max_spool_bytes`.
    pub spooled: u64,
}

/// A layer entry as the tar says it, path cleaned, not yet merged.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    pub path: String,
    pub kind: LayerEntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// What a layer entry is.
#[derive(Debug, Clone)]
pub enum LayerEntryKind {
    /// Data at `offset` in the decompressed layer file.
    File {
        offset: u64,
        size: u64,
        sha256: [u8; 32],
    },
    Dir,
    /// Target kept verbatim.
    Symlink(String),
    /// Target as a cleaned absolute image path.
    Hardlink(String),
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

/// A layer blob after spooling: its decompressed file and its index.
#[derive(Debug)]
pub struct SpooledLayer {
    /// The decompressed tar, inside the scratch directory.
    pub file: PathBuf,
    /// `sha256:` of the decompressed tar.
    pub diff_id: String,
    /// Bytes of the decompressed tar.
    pub size: u64,
    /// `sha256:` of the blob as it was read (compressed).
    pub blob_digest: String,
    /// Bytes of the blob as it was read.
    pub blob_size: u64,
    pub compression: Compression,
    pub entries: Vec<LayerEntry>,
}

/// Hashes and counts bytes as they are read.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream, then returns (`sha256:` digest, size).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((digest_string(self.hasher.finalize().into()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// `sha256:<hex>`.
pub(crate) fn digest_string(d: [u8; 32]) -> String {
    format!("sha256:{}", hex::encode(d))
}

/// Marks errors that came out of a decompressor.
#[derive(Debug)]
struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

type Source<R> = io::Chain<Cursor<Vec<u8>>, HashingReader<R>>;

enum Decoder<R: Read> {
    Plain(Source<R>),
    Gzip(flate2::read::MultiGzDecoder<Source<R>>),
    Zstd(zstd::stream::read::Decoder<'static, io::BufReader<Source<R>>>),
}

impl<R: Read> Decoder<R> {
    fn into_source(self) -> HashingReader<R> {
        match self {
            Decoder::Plain(s) => s.into_inner().1,
            Decoder::Gzip(d) => d.into_inner().into_inner().1,
            Decoder::Zstd(d) => d.finish().into_inner().into_inner().1,
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tag = |e: io::Error| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                e
            } else {
                io::Error::new(e.kind(), DecodeError(e.to_string()))
            }
        };
        match self {
            Decoder::Plain(s) => s.read(buf),
            Decoder::Gzip(d) => d.read(buf).map_err(tag),
            Decoder::Zstd(d) => d.read(buf).map_err(tag),
        }
    }
}

/// Marks the error raised when the spool limit is reached.
#[derive(Debug)]
struct SpoolLimit(u64);

impl std::fmt::Display for SpoolLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spool limit of {} bytes reached", self.0)
    }
}

impl std::error::Error for SpoolLimit {}

/// Copies everything read to the spool file and the diff_id hasher.
struct Tee<R: Read> {
    inner: Decoder<R>,
    out: BufWriter<File>,
    hasher: Sha256,
    count: u64,
    /// Bytes this tee may still pass before the image's spool limit.
    allowance: u64,
    limit: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.allowance - self.count.min(self.allowance) {
            return Err(io::Error::other(SpoolLimit(self.limit)));
        }
        self.out.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Turns a tar reading error into the library's error, naming the layer.
pub(crate) fn tar_error(what: &str, e: TarError) -> ImageError {
    match e {
        TarError::Io(e) => io_error(what, e),
        TarError::Truncated { offset } => ImageError::Truncated {
            what: what.to_string(),
            offset,
        },
        TarError::Corrupt { offset, reason } => ImageError::CorruptTar {
            what: what.to_string(),
            offset,
            reason,
        },
        TarError::Unsupported { path, reason } => ImageError::UnsupportedEntry {
            what: what.to_string(),
            path,
            reason,
        },
        TarError::MetaTooLarge { size, limit } => ImageError::MetadataTooLarge {
            what: format!("a tar extension header in {what}"),
            size,
            limit,
        },
    }
}

/// Classifies an I/O error that surfaced while reading a (possibly
/// compressed) stream.
pub(crate) fn io_error(what: &str, e: io::Error) -> ImageError {
    if let Some(err) = spool_limit(&e) {
        return err;
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return ImageError::Truncated {
            what: what.to_string(),
            offset: 0,
        };
    }
    if let Some(d) = e.get_ref().and_then(|r| r.downcast_ref::<DecodeError>()) {
        return ImageError::CorruptCompression {
            what: what.to_string(),
            reason: d.0.clone(),
        };
    }
    ImageError::io(format!("reading {what}"), e)
}

/// The limit error, if this I/O error is one.
fn spool_limit(e: &io::Error) -> Option<ImageError> {
    e.get_ref()
        .and_then(|r| r.downcast_ref::<SpoolLimit>())
        .map(|l| ImageError::TooLarge { limit: l.0 })
}

/// Reads up to `buf.len()` bytes, stopping early only at EOF.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Spools one layer blob (plain, gzip or zstd tar) into `scratch`,
/// decompressed, and indexes its entries. `what` names the blob in errors.
pub fn spool_layer<R: Read>(
    blob: R,
    scratch: &Path,
    what: &str,
    limits: &ReadLimits,
) -> Result<SpooledLayer> {
    let mut budget = EntryBudget {
        used: 0,
        limit: limits.max_entries,
        spooled: 0,
    };
    spool_layer_counted(blob, scratch, what, limits, &mut budget)
}

pub(crate) fn spool_layer_counted<R: Read>(
    blob: R,
    scratch: &Path,
    what: &str,
    limits: &ReadLimits,
    budget: &mut EntryBudget,
) -> Result<SpooledLayer> {
    let mut src = HashingReader::new(blob);
    let mut head = vec![0u8; 512];
    let n = read_up_to(&mut src, &mut head).map_err(|e| io_error(what, e))?;
    head.truncate(n);
    let kind = sniff(&head);
    let source = Cursor::new(head).chain(src);
    let (decoder, compression) = match kind {
        Sniffed::Gzip => (
            Decoder::Gzip(flate2::read::MultiGzDecoder::new(source)),
            Compression::Gzip,
        ),
        Sniffed::Zstd => (
            Decoder::Zstd(zstd::stream::read::Decoder::new(source).map_err(|e| io_error(what, e))?),
            Compression::Zstd,
        ),
        Sniffed::Tar => (Decoder::Plain(source), Compression::None),
        Sniffed::Bzip2 | Sniffed::Xz => {
            return Err(ImageError::UnsupportedCompression {
                what: what.to_string(),
                compression: if kind == Sniffed::Bzip2 {
                    "bzip2"
                } else {
                    "xz"
                }
                .into(),
            });
        }
        Sniffed::Json | Sniffed::Unknown => {
            return Err(ImageError::CorruptTar {
                what: what.to_string(),
                offset: 0,
                reason: "neither a tar stream nor gzip/zstd-compressed data".into(),
            });
        }
    };
    std::fs::create_dir_all(scratch)
        .map_err(|e| ImageError::io(format!("creating {}", scratch.display()), e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".spool-")
        .tempfile_in(scratch)
        .map_err(|e| {
            ImageError::io(format!("creating a spool file in {}", scratch.display()), e)
        })?;
    let out = BufWriter::with_capacity(
        1 << 16,
        tmp.reopen()
            .map_err(|e| ImageError::io("reopening the spool file", e))?,
    );
    let tee = Tee {
        inner: decoder,
        out,
        hasher: Sha256::new(),
        count: 0,
        allowance: limits.max_spool_bytes.saturating_sub(budget.spooled),
        limit: limits.max_spool_bytes,
    };
    let mut tar = TarReader::new(tee, limits.max_meta);
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Some(e) = tar.next_entry().map_err(|e| tar_error(what, e))? {
        budget.used += 1;
        if budget.used > budget.limit {
            return Err(ImageError::TooManyEntries {
                limit: budget.limit,
            });
        }
        let path = clean_entry_path(&e.name).map_err(|reason| ImageError::UnsafePath {
            what: what.to_string(),
            path: e.name.clone(),
            reason: reason.to_string(),
        })?;
        let kind = match e.kind {
            TarType::File => {
                let mut h = Sha256::new();
                loop {
                    let n = tar.read_data(&mut buf).map_err(|e| tar_error(what, e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                LayerEntryKind::File {
                    offset: e.data_offset,
                    size: e.size,
                    sha256: h.finalize().into(),
                }
            }
            TarType::Dir => LayerEntryKind::Dir,
            TarType::Symlink => {
                if e.link.is_empty() {
                    return Err(ImageError::UnsupportedEntry {
                        what: what.to_string(),
                        path,
                        reason: "symlink with an empty target".into(),
                    });
                }
                LayerEntryKind::Symlink(e.link.clone())
            }
            TarType::Hardlink => {
                let target =
                    clean_entry_path(&e.link).map_err(|reason| ImageError::BadHardlink {
                        what: what.to_string(),
                        path: path.clone(),
                        target: e.link.clone(),
                        reason: reason.to_string(),
                    })?;
                LayerEntryKind::Hardlink(target)
            }
            TarType::CharDevice => LayerEntryKind::CharDevice {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            TarType::BlockDevice => LayerEntryKind::BlockDevice {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            TarType::Fifo => LayerEntryKind::Fifo,
        };
        entries.push(LayerEntry {
            path,
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            xattrs: e.xattrs,
        });
    }
    // The diff_id covers every byte of the decompressed stream, including
    // the end-of-archive blocks and any padding after them.
    let mut tee = tar.finish().map_err(|e| tar_error(what, e))?;
    io::copy(&mut tee, &mut io::sink()).map_err(|e| io_error(what, e))?;
    let Tee {
        inner,
        mut out,
        hasher,
        count,
        ..
    } = tee;
    budget.spooled += count;
    out.flush()
        .map_err(|e| ImageError::io("writing the spool file", e))?;
    drop(out);
    let diff = hasher.finalize();
    let diff_id = digest_string(diff.into());
    let (blob_digest, blob_size) = inner
        .into_source()
        .finish()
        .map_err(|e| io_error(what, e))?;
    let file = scratch.join(format!("layer-{}.tar", hex::encode(diff)));
    if file.exists() {
        // Same content already spooled (a layer shared by two blobs).
        drop(tmp);
    } else {
        tmp.persist(&file)
            .map_err(|e| ImageError::io(format!("saving {}", file.display()), e.error))?;
    }
    Ok(SpooledLayer {
        file,
        diff_id,
        size: count,
        blob_digest,
        blob_size,
        compression,
        entries,
    })
}
