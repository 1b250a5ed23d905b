//! The image library: read a container image, see its flattened filesystem,
//! analyse what its programs need, and write a new, smaller image.
//!
//! Pure and synchronous: no eBPF, no Docker API, no network. The daemon calls
//! it from `spawn_blocking`; `slim xray` can call it on a tar file.
//!
//! Data model:
//! - An [`Image`] is what an archive or layout holds: the config (entrypoint,
//!   env, history...), its [`Layer`]s, and the flattened [`ImageFs`].
//! - Reading streams the input once. Each layer blob is decompressed into a
//!   file in a caller-given scratch directory (so later reads can seek) while
//!   its sha256 (the diff_id) and each file's sha256 are computed. Nothing is
//!   extracted; no file of the image is ever written to disk as itself.
//! - Names are bytes: a path that is not UTF-8 lives in a `String` through
//!   the lossless encoding of [`name`], which also shows paths to people.
//! - [`ImageFs`] maps clean absolute paths ("/usr/bin/python3") to [`Entry`]s:
//!   kind, mode, owner, mtime, xattrs, and for regular files only where their
//!   bytes are (layer, offset, size) plus their sha256. Paths resolve with the
//!   image root as `/` ([`ImageFs::resolve`]), returning every symlink passed.
//! - Analysis reads file bytes through [`ImageFs::open`]: ELF closures
//!   ([`elf_closure`]), shebangs ([`Shebang`]), package databases
//!   ([`PackageDb`]), and the [`XrayReport`].
//! - Writing ([`ImageWriter`]) takes a [`Selection`] of paths and emits one
//!   deterministic layer with the original config carried over, as a
//!   `docker save` tar or an OCI layout directory.

mod archive;
mod config;
mod elf;
mod error;
mod fs;
mod layer;
pub mod name;
mod packages;
pub mod path;
mod script;
mod tar_read;
mod tar_write;
mod write;
mod xray;

#[cfg(test)]
pub(crate) mod tests;

pub use archive::{ArchiveFormat, Image, Layer, ReadOptions};
pub use config::{
    ContainerConfig, Descriptor, History, ImageConfig, MT_DOCKER_LIST, MT_DOCKER_MANIFEST,
    MT_OCI_INDEX, MT_OCI_MANIFEST, Platform, RootFs,
};
pub use elf::{
    ElfClosure, ElfInfo, ElfKind, ElfOptions, FoundVia, LibcFlavor, MissingLib, ResolvedLib,
    elf_closure, read_elf_info,
};
pub use error::{ImageError, Result};
pub use fs::{Entry, EntryKind, FileData, FileReader, ImageFs, Shadowed};
pub use fs::{Resolution, ResolveOptions};
pub use layer::{Compression, LayerEntry, LayerEntryKind, ReadLimits, SpooledLayer, spool_layer};
pub use packages::{Package, PackageDb, PackageManager, parse_apk_installed, parse_dpkg_status};
pub use script::{Shebang, ShebangTarget, resolve_shebang, which};
pub use write::{
    ImageWriter, Selection, SyntheticEntry, SyntheticKind, WriteOptions, WrittenImage,
};
pub use xray::{
    CapFile, ConfigSummary, DuplicateSet, ElfSummary, LayerReport, ModePath, PackageSummary,
    SizedPath, WastedFile, XrayReport,
};
