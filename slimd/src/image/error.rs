//! One error type for the whole image library, so callers can match on what
//! went wrong (a hostile archive, a missing blob, a bad request) instead of
//! parsing messages.
//!
//! Paths in messages are path strings as they are (see [`super::name`]):
//! the daemon shows them escaped where text leaves it (progress lines,
//! reports, the CLI), once.

use std::io;

/// Everything that can go wrong while reading, analysing or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An I/O error from the source, the scratch directory or the output.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A stream ended before its format said it would.
    #[error("{what} is truncated (unexpected end at byte {offset})")]
    Truncated { what: String, offset: u64 },
    /// A tar stream that is not valid tar.
    #[error("{what} is not a valid tar stream at byte {offset}: {reason}")]
    CorruptTar {
        what: String,
        offset: u64,
        reason: String,
    },
    /// gzip or zstd data that does not decompress.
    #[error("{what} does not decompress: {reason}")]
    CorruptCompression { what: String, reason: String },
    /// A compression we do not read (bzip2, xz).
    #[error("{what} uses unsupported compression {compression}")]
    UnsupportedCompression { what: String, compression: String },
    /// A tar entry type we refuse to interpret (sparse files, unknown type
    /// flags).
    #[error("{what}: unsupported entry \"{path}\": {reason}")]
    UnsupportedEntry {
        what: String,
        path: String,
        reason: String,
    },
    /// An entry whose name leaves the image root (`../..`) or is otherwise unsafe.
    #[error("{what}: unsafe entry name \"{path}\": {reason}")]
    UnsafePath {
        what: String,
        path: String,
        reason: String,
    },
    /// A hardlink whose target is missing, a directory, or outside the root.
    #[error("{what}: hardlink \"{path}\" -> \"{target}\": {reason}")]
    BadHardlink {
        what: String,
        path: String,
        target: String,
        reason: String,
    },
    /// More tar entries than [`crate::image::ReadOptions::max_entries`] allows.
    #[error("the image has more than {limit} entries (limit set by ReadOptions::max_entries)")]
    TooManyEntries { limit: u64 },
    /// More decompressed layer bytes than [`crate::image::ReadLimits::max_spool_bytes`].
    #[error(
        "the layers decompress to more than {limit} bytes (limit set by ReadLimits::max_spool_bytes)"
    )]
    TooLarge { limit: u64 },
    /// A metadata file or tar extension header larger than we keep in memory.
    #[error("{what} is {size} bytes, more than the {limit}-byte limit for metadata")]
    MetadataTooLarge { what: String, size: u64, limit: u64 },
    /// The input has neither `manifest.json` nor `index.json`.
    #[error("not an image archive or layout: {0}")]
    NotAnImage(String),
    /// A JSON document (manifest, index, config) that does not parse.
    #[error("invalid {what}: {reason}")]
    InvalidJson { what: String, reason: String },
    /// The manifest names a blob the archive does not contain.
    #[error("the manifest names {0}, which the archive does not contain")]
    MissingBlob(String),
    /// A blob the manifest names exists but could not be read as a layer.
    #[error("blob {blob} is unusable: {reason}")]
    UnusableBlob { blob: String, reason: String },
    /// A layer or manifest media type we do not understand.
    #[error("unsupported media type {media_type:?} for {digest}")]
    UnsupportedMediaType { media_type: String, digest: String },
    /// Content whose sha256 differs from the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The config's `rootfs.diff_ids` and the manifest's layers disagree.
    #[error("the manifest lists {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCountMismatch { layers: usize, diff_ids: usize },
    /// An archive with several images and no tag to choose one.
    #[error("the archive holds {count} images ({tags}); choose one with ReadOptions::tag")]
    AmbiguousImage { count: usize, tags: String },
    /// No image in the archive carries the requested tag.
    #[error("no image tagged {0:?} in the archive")]
    NoSuchTag(String),
    /// A path that is not in the image.
    #[error("{0} is not in the image")]
    NotFound(String),
    /// A path that exists but is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// Symlinks nested deeper than the kernel allows (a loop, usually).
    #[error("too many levels of symbolic links resolving {0}")]
    SymlinkLoop(String),
    /// An ELF file we cannot parse.
    #[error("{path} is not a usable ELF file: {reason}")]
    Elf { path: String, reason: String },
    /// A write request that cannot be satisfied (a selected path missing
    /// from the image, a synthetic entry with a bad path, ...).
    #[error("invalid selection: {0}")]
    InvalidSelection(String),
}

impl ImageError {
    /// Wraps an I/O error with what we were doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Short alias used throughout the module.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
