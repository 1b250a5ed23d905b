//! `slim xray`: what an image ships, before anyone trusts a slimmer one.
//!
//! One pass over the flattened filesystem gathers counts, the largest
//! files and directories, special modes and capabilities; the shadowed
//! files give wasted space; content hashes give duplicates; the package
//! databases give packages; ELF headers (read by `pread`, a few bytes per
//! file) give executables and libraries. Memory is per entry, never per
//! byte of content, so images of several GB are fine.
//!
//! The report is for people: its paths and warnings are shown escaped
//! ([`super::name::show`]) as the last step of [`XrayReport::build`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::archive::{ArchiveFormat, Image};
use super::elf::{ElfKind, parse_elf};
use super::fs::{EntryKind, FileData};
use super::packages::{PackageDb, PackageManager};
use super::path::{ancestors, file_name};

/// How many items the "largest"/"wasted"/"duplicates" lists keep.
const TOP: usize = 25;

/// One layer in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerReport {
    pub index: usize,
    pub diff_id: String,
    pub digest: String,
    pub size: u64,
    pub blob_size: u64,
    pub entries: u64,
    pub created_by: Option<String>,
    pub created: Option<String>,
    /// Bytes of the files this layer added that the final image still
    /// shows (hardlinks once).
    #[serde(default)]
    pub visible_bytes: u64,
    /// The largest of those files.
    #[serde(default)]
    pub largest_added: Vec<SizedPath>,
}

/// Largest visible files listed per layer.
const TOP_PER_LAYER: usize = 8;

/// A path and a size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SizedPath {
    pub size: u64,
    pub path: String,
}

/// Bytes a layer stores that the final image does not show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WastedFile {
    pub path: String,
    pub size: u64,
    pub layer: usize,
    pub by_layer: usize,
    /// Deleted (whiteout) rather than overwritten.
    pub deleted: bool,
}

/// The same content stored more than once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DuplicateSet {
    pub sha256: String,
    pub size: u64,
    /// (layer, path) of every copy, visible or shadowed.
    pub copies: Vec<(usize, String)>,
    /// size × (copies − 1).
    pub wasted_bytes: u64,
}

/// A package line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageSummary {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub manager: PackageManager,
    pub files: usize,
}

/// A path with a notable mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModePath {
    pub path: String,
    /// Octal, e.g. "4755".
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub is_dir: bool,
    /// A world-writable directory with the sticky bit (like /tmp) is normal.
    pub sticky: bool,
}

/// A file with file capabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapFile {
    pub path: String,
    /// In getcap's style, e.g. "cap_net_raw=ep".
    pub capabilities: String,
}

/// ELF files by kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ElfSummary {
    pub executables: Vec<String>,
    pub static_executables: Vec<String>,
    pub libraries: Vec<String>,
    pub other: Vec<String>,
    pub unreadable: Vec<String>,
}

/// The run configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigSummary {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    /// Empty user, "root", "0" or a root group/uid: the app runs as root.
    pub runs_as_root: bool,
    pub working_dir: String,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<serde_json::Value>,
}

/// Everything `slim xray` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct XrayReport {
    pub image_id: String,
    pub repo_tags: Vec<String>,
    pub format: ArchiveFormat,
    pub os: String,
    pub architecture: String,
    pub created: Option<String>,
    pub layers: Vec<LayerReport>,
    /// Sum of the uncompressed layers.
    pub total_size: u64,
    /// Sum of the stored blobs.
    pub total_blob_size: u64,
    /// Bytes of visible files (hardlinks counted once).
    pub visible_bytes: u64,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub other_entries: u64,
    pub largest_files: Vec<SizedPath>,
    pub largest_directories: Vec<SizedPath>,
    pub wasted_bytes: u64,
    pub wasted: Vec<WastedFile>,
    pub duplicate_bytes: u64,
    pub duplicates: Vec<DuplicateSet>,
    pub packages: Vec<PackageSummary>,
    pub elf: ElfSummary,
    pub setuid: Vec<ModePath>,
    pub setgid: Vec<ModePath>,
    pub world_writable: Vec<ModePath>,
    pub capabilities: Vec<CapFile>,
    pub shells: Vec<String>,
    pub package_managers: Vec<String>,
    pub certificates: Vec<String>,
    pub config: ConfigSummary,
    /// Things worth a look (root user, unreadable databases, ...).
    pub warnings: Vec<String>,
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "fish", "csh", "tcsh", "busybox",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "apt", "apt-get", "aptitude", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "zypper",
    "pacman", "pip", "pip3", "npm", "yarn", "pnpm", "gem", "conda", "mamba",
];
const BIN_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];
const CERT_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ca-certificates.crt",
];
const CERT_NAMES: &[&str] = &[
    "cacert.pem",
    "ca-bundle.crt",
    "ca-certificates.crt",
    "cacerts",
];

/// Reads the first bytes of files through one open handle per layer.
struct HeadReader<'a> {
    image: &'a Image,
    files: Vec<Option<File>>,
}

impl HeadReader<'_> {
    fn head(&mut self, d: &FileData, buf: &mut [u8]) -> bool {
        if self.files.len() <= d.layer {
            self.files.resize_with(d.layer + 1, || None);
        }
        if self.files[d.layer].is_none() {
            let Some(path) = self.image.fs.layer_files().get(d.layer) else {
                return false;
            };
            self.files[d.layer] = File::open(path).ok();
        }
        match &self.files[d.layer] {
            Some(f) => f.read_exact_at(buf, d.offset).is_ok(),
            None => false,
        }
    }
}

/// Keeps the `n` largest items.
struct Top<T: Ord> {
    heap: BinaryHeap<Reverse<T>>,
    n: usize,
}

impl<T: Ord> Top<T> {
    fn new(n: usize) -> Self {
        Top {
            heap: BinaryHeap::new(),
            n,
        }
    }

    fn push(&mut self, t: T) {
        self.heap.push(Reverse(t));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    fn into_sorted_desc(self) -> Vec<T> {
        let mut v: Vec<T> = self.heap.into_iter().map(|Reverse(t)| t).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

impl XrayReport {
    /// Analyses an image.
    pub fn build(image: &Image) -> XrayReport {
        let fs = &image.fs;
        let mut warnings = Vec::new();
        let mut files = 0u64;
        let mut directories = 0u64;
        let mut symlinks = 0u64;
        let mut other_entries = 0u64;
        let mut visible_bytes = 0u64;
        let mut largest = Top::new(TOP);
        let mut per_layer: Vec<(u64, Top<SizedPath>)> = image
            .layers
            .iter()
            .map(|_| (0, Top::new(TOP_PER_LAYER)))
            .collect();
        let mut dir_sizes: HashMap<&str, u64> = HashMap::new();
        let mut seen_groups = HashSet::new();
        let mut setuid = Vec::new();
        let mut setgid = Vec::new();
        let mut world_writable = Vec::new();
        let mut capabilities = Vec::new();
        let mut certificates = Vec::new();
        let mut elf = ElfSummary::default();
        let mut heads = HeadReader {
            image,
            files: Vec::new(),
        };
        for (path, e) in fs.iter() {
            let mp = || ModePath {
                path: path.to_string(),
                mode: octal(e.mode),
                uid: e.uid,
                gid: e.gid,
                is_dir: e.is_dir(),
                sticky: e.mode & 0o1000 != 0,
            };
            match &e.kind {
                EntryKind::Dir => directories += 1,
                EntryKind::Symlink { .. } => symlinks += 1,
                EntryKind::File(_) => files += 1,
                _ => other_entries += 1,
            }
            if !e.is_symlink() {
                if e.mode & 0o4000 != 0 && !e.is_dir() {
                    setuid.push(mp());
                }
                if e.mode & 0o2000 != 0 && !e.is_dir() {
                    setgid.push(mp());
                }
                // Device nodes like /dev/null are meant to be 0666.
                let device = matches!(
                    e.kind,
                    EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
                );
                if e.mode & 0o002 != 0 && !device {
                    world_writable.push(mp());
                }
            }
            if let Some(cap) = e.xattr("security.capability") {
                capabilities.push(CapFile {
                    path: path.to_string(),
                    capabilities: describe_caps(cap),
                });
            }
            let EntryKind::File(d) = &e.kind else {
                continue;
            };
            if CERT_BUNDLES.contains(&path) || CERT_NAMES.contains(&file_name(path)) {
                certificates.push(path.to_string());
            }
            // Hardlinks share bytes: count them once.
            if let Some(g) = e.link_group
                && !seen_groups.insert(g)
            {
                continue;
            }
            visible_bytes += d.size;
            largest.push(SizedPath {
                size: d.size,
                path: path.to_string(),
            });
            if let Some((bytes, top)) = per_layer.get_mut(d.layer) {
                *bytes += d.size;
                top.push(SizedPath {
                    size: d.size,
                    path: path.to_string(),
                });
            }
            for a in ancestors(path) {
                *dir_sizes.entry(a).or_default() += d.size;
            }
            *dir_sizes.entry("/").or_default() += d.size;
            let mut magic = [0u8; 4];
            if d.size >= 52 && heads.head(d, &mut magic) && magic == *b"\x7fELF" {
                match fs.open_data(d).ok().and_then(|r| parse_elf(r, path).ok()) {
                    Some(info) => match info.kind {
                        ElfKind::StaticExecutable | ElfKind::StaticPie => {
                            elf.static_executables.push(path.to_string())
                        }
                        k if k.is_executable() => elf.executables.push(path.to_string()),
                        ElfKind::SharedLibrary => elf.libraries.push(path.to_string()),
                        _ => elf.other.push(path.to_string()),
                    },
                    None => elf.unreadable.push(path.to_string()),
                }
            }
        }
        let mut largest_dirs = Top::new(TOP);
        for (dir, size) in dir_sizes {
            largest_dirs.push(SizedPath {
                size,
                path: dir.to_string(),
            });
        }

        // Wasted space: shadowed bytes, each stored copy counted once.
        let mut wasted_locs = HashSet::new();
        let mut wasted_bytes = 0;
        let mut wasted_top = Top::new(TOP);
        for s in fs.shadowed() {
            if wasted_locs.insert((s.data.layer, s.data.offset)) {
                wasted_bytes += s.data.size;
                wasted_top.push((
                    s.data.size,
                    s.path.clone(),
                    s.data.layer,
                    s.by_layer,
                    s.deleted,
                ));
            }
        }
        let wasted = wasted_top
            .into_sorted_desc()
            .into_iter()
            .map(|(size, path, layer, by_layer, deleted)| WastedFile {
                path,
                size,
                layer,
                by_layer,
                deleted,
            })
            .collect();

        let (duplicate_bytes, duplicates) = duplicates(image);

        let packages = match PackageDb::read(fs) {
            Ok(db) => db
                .packages
                .iter()
                .map(|p| PackageSummary {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    arch: p.arch.clone(),
                    manager: p.manager,
                    files: p.files.len(),
                })
                .collect(),
            Err(e) => {
                warnings.push(format!("package database unreadable: {e}"));
                Vec::new()
            }
        };
        if fs.get("/var/lib/rpm").is_some() || fs.get("/usr/lib/sysimage/rpm").is_some() {
            warnings.push("an rpm database is present; rpm packages are not listed".into());
        }

        let in_bin_dirs = |names: &[&str]| -> Vec<String> {
            let mut v = Vec::new();
            for dir in BIN_DIRS {
                for (p, e) in fs.children(dir) {
                    if (e.is_file() || e.is_symlink()) && names.contains(&file_name(p)) {
                        v.push(p.to_string());
                    }
                }
            }
            v.sort();
            v
        };
        let shells = in_bin_dirs(SHELLS);
        let package_managers = in_bin_dirs(PACKAGE_MANAGERS);

        let c = &image.config.config;
        let user = c.user.clone().unwrap_or_default();
        let runs_as_root = {
            let u = user.split(':').next().unwrap_or("");
            u.is_empty() || u == "root" || u == "0"
        };
        if runs_as_root {
            warnings.push(format!(
                "runs as root (User is {})",
                if user.is_empty() {
                    "empty".to_string()
                } else {
                    format!("{user:?}")
                }
            ));
        }
        let config = ConfigSummary {
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            user,
            runs_as_root,
            working_dir: c.working_dir.clone().unwrap_or_default(),
            env: c.env.clone().unwrap_or_default(),
            exposed_ports: c
                .exposed_ports
                .as_ref()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            volumes: c
                .volumes
                .as_ref()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            labels: c.labels.clone().unwrap_or_default(),
            stop_signal: c.stop_signal.clone(),
            healthcheck: c.healthcheck.clone(),
        };
        for w in &world_writable {
            if !w.sticky {
                warnings.push(format!("{} is world-writable ({})", w.path, w.mode));
            }
        }

        let report = XrayReport {
            image_id: image.config_digest.clone(),
            repo_tags: image.repo_tags.clone(),
            format: image.format,
            os: image.config.os.clone(),
            architecture: image.config.architecture.clone(),
            created: image.config.created.clone(),
            layers: image
                .layers
                .iter()
                .zip(per_layer)
                .map(|(l, (visible, top))| LayerReport {
                    index: l.index,
                    diff_id: l.diff_id.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    blob_size: l.blob_size,
                    entries: l.entries,
                    // `docker import` leaves created_by empty and says
                    // what happened in the comment.
                    created_by: l.history.as_ref().and_then(|h| {
                        h.created_by
                            .clone()
                            .filter(|c| !c.trim().is_empty())
                            .or_else(|| h.comment.clone())
                    }),
                    created: l.history.as_ref().and_then(|h| h.created.clone()),
                    visible_bytes: visible,
                    largest_added: top.into_sorted_desc(),
                })
                .collect(),
            total_size: image.total_size(),
            total_blob_size: image.layers.iter().map(|l| l.blob_size).sum(),
            visible_bytes,
            files,
            directories,
            symlinks,
            other_entries,
            largest_files: largest.into_sorted_desc(),
            largest_directories: largest_dirs.into_sorted_desc(),
            wasted_bytes,
            wasted,
            duplicate_bytes,
            duplicates,
            packages,
            elf,
            setuid,
            setgid,
            world_writable,
            capabilities,
            shells,
            package_managers,
            certificates,
            config,
            warnings,
        };
        report.show_names()
    }

    /// Every path and warning as people read it (non-UTF-8 bytes as `\xNN`).
    fn show_names(mut self) -> Self {
        use super::name::show_in_place as show;
        let sized = self
            .largest_files
            .iter_mut()
            .chain(self.largest_directories.iter_mut())
            .chain(
                self.layers
                    .iter_mut()
                    .flat_map(|l| l.largest_added.iter_mut()),
            );
        sized.for_each(|p| show(&mut p.path));
        self.wasted.iter_mut().for_each(|w| show(&mut w.path));
        for d in &mut self.duplicates {
            d.copies.iter_mut().for_each(|(_, p)| show(p));
        }
        let e = &mut self.elf;
        e.executables
            .iter_mut()
            .chain(&mut e.static_executables)
            .chain(&mut e.libraries)
            .chain(&mut e.other)
            .chain(&mut e.unreadable)
            .for_each(show);
        self.setuid
            .iter_mut()
            .chain(&mut self.setgid)
            .chain(&mut self.world_writable)
            .for_each(|m| show(&mut m.path));
        self.capabilities.iter_mut().for_each(|c| show(&mut c.path));
        self.shells
            .iter_mut()
            .chain(&mut self.package_managers)
            .chain(&mut self.certificates)
            .chain(&mut self.warnings)
            .for_each(show);
        self
    }
}

/// Identical contents stored at more than one place in the layers.
fn duplicates(image: &Image) -> (u64, Vec<DuplicateSet>) {
    let fs = &image.fs;
    let all = || {
        fs.iter()
            .filter_map(|(p, e)| match &e.kind {
                EntryKind::File(d) => Some((p, d)),
                _ => None,
            })
            .chain(fs.shadowed().iter().map(|s| (s.path.as_str(), &s.data)))
            .filter(|(_, d)| d.size > 0)
    };
    // Only sizes seen twice can hold duplicates: keeps the hash map small.
    let mut sizes: HashMap<u64, u32> = HashMap::new();
    for (_, d) in all() {
        *sizes.entry(d.size).or_default() += 1;
    }
    let mut groups: HashMap<[u8; 32], Vec<(&str, &FileData)>> = HashMap::new();
    for (p, d) in all() {
        if sizes[&d.size] > 1 {
            groups.entry(d.sha256).or_default().push((p, d));
        }
    }
    let mut total = 0;
    let mut top = Top::new(TOP);
    for (sha, copies) in groups {
        let mut locs: Vec<(usize, u64, &str)> = copies
            .iter()
            .map(|(p, d)| (d.layer, d.offset, *p))
            .collect();
        locs.sort();
        locs.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        if locs.len() < 2 {
            continue;
        }
        let size = copies[0].1.size;
        let wasted = size * (locs.len() as u64 - 1);
        total += wasted;
        let copies: Vec<(usize, String)> =
            locs.iter().map(|(l, _, p)| (*l, p.to_string())).collect();
        top.push((wasted, hex::encode(sha), size, copies));
    }
    let sets = top
        .into_sorted_desc()
        .into_iter()
        .map(|(wasted_bytes, sha256, size, copies)| DuplicateSet {
            sha256,
            size,
            copies,
            wasted_bytes,
        })
        .collect();
    (total, sets)
}

const CAP_NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Decodes a `security.capability` value (vfs_cap_data v1/v2/v3) into
/// getcap's notation.
pub(crate) fn describe_caps(raw: &[u8]) -> String {
    let word = |i: usize| -> Option<u32> {
        raw.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(magic) = word(0) else {
        return "invalid".into();
    };
    let effective = magic & 1 != 0;
    let (permitted, inheritable) = match magic & 0xff00_0000 {
        0x0100_0000 => (
            u64::from(word(1).unwrap_or(0)),
            u64::from(word(2).unwrap_or(0)),
        ),
        0x0200_0000 | 0x0300_0000 => (
            u64::from(word(1).unwrap_or(0)) | (u64::from(word(3).unwrap_or(0)) << 32),
            u64::from(word(2).unwrap_or(0)) | (u64::from(word(4).unwrap_or(0)) << 32),
        ),
        _ => return format!("unknown format {magic:#x}"),
    };
    let mut parts = Vec::new();
    // Group capabilities by their flag set, as getcap prints them.
    let mut by_flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in (0..64).filter(|i| (permitted | inheritable) & (1u64 << i) != 0) {
        let name = match CAP_NAMES.get(i) {
            Some(n) => format!("cap_{n}"),
            None => format!("cap_{i}"),
        };
        let mut flags = String::new();
        if effective {
            flags.push('e');
        }
        if inheritable & (1u64 << i) != 0 {
            flags.push('i');
        }
        if permitted & (1u64 << i) != 0 {
            flags.push('p');
        }
        by_flags.entry(flags).or_default().push(name);
    }
    for (flags, caps) in by_flags {
        parts.push(format!("{}={}", caps.join(","), flags));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::{LayerBuilder, Meta, image_from};

    #[test]
    fn report_covers_the_rules() {
        let cap =
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        let big = vec![1u8; 5000];
        let l0 = LayerBuilder::new()
            .symlink("bin", "usr/bin")
            .exe("usr/bin/bash", b"bash")
            .symlink("usr/bin/sh", "bash")
            .exe("usr/bin/apt-get", b"apt")
            .file_meta(
                "usr/bin/passwd",
                b"pw",
                &Meta {
                    mode: 0o4755,
                    ..Meta::default()
                },
            )
            .file_meta(
                "usr/bin/wall",
                b"w",
                &Meta {
                    mode: 0o2755,
                    ..Meta::default()
                },
            )
            .xattr_file("usr/bin/ping", b"ping", &[("security.capability", cap)])
            .dir("tmp", 0o1777)
            .file_meta(
                "srv/open",
                b"o",
                &Meta {
                    mode: 0o666,
                    ..Meta::default()
                },
            )
            .file("etc/ssl/certs/ca-certificates.crt", b"-----BEGIN")
            .file("opt/big", &big)
            .file("opt/replaced", &[2u8; 3000])
            .build();
        let l1 = LayerBuilder::new()
            .file("opt/replaced", b"small")
            .file("opt/big-copy", &big)
            .whiteout("opt", "big")
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![l0, l1], s.path()).unwrap();
        let r = XrayReport::build(&img);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[0].created_by.as_deref(), Some("ADD rootfs"));
        assert_eq!(r.wasted_bytes, 5000 + 3000);
        assert_eq!(r.duplicate_bytes, 5000);
        assert_eq!(r.duplicates[0].copies.len(), 2);
        assert_eq!(r.largest_files[0].path, "/opt/big-copy");
        // What each layer added that the image still shows.
        assert_eq!(r.layers[1].visible_bytes, 5000 + 5);
        assert_eq!(r.layers[1].largest_added[0].path, "/opt/big-copy");
        assert_eq!(r.layers[1].largest_added[1].path, "/opt/replaced");
        assert_eq!(
            r.layers[0].visible_bytes + r.layers[1].visible_bytes,
            r.visible_bytes
        );
        assert!(
            !r.layers[0]
                .largest_added
                .iter()
                .any(|f| f.path.starts_with("/opt/"))
        );
        assert!(r.largest_directories.iter().any(|d| d.path == "/opt"));
        assert_eq!(r.setuid[0].path, "/usr/bin/passwd");
        assert_eq!(r.setgid[0].path, "/usr/bin/wall");
        assert_eq!(r.capabilities[0].capabilities, "cap_net_raw=ep");
        let ww: Vec<_> = r
            .world_writable
            .iter()
            .map(|w| (w.path.as_str(), w.sticky))
            .collect();
        assert_eq!(ww, vec![("/srv/open", false), ("/tmp", true)]);
        assert_eq!(r.shells, vec!["/usr/bin/bash", "/usr/bin/sh"]);
        assert_eq!(r.package_managers, vec!["/usr/bin/apt-get"]);
        assert_eq!(r.certificates, vec!["/etc/ssl/certs/ca-certificates.crt"]);
        assert_eq!(r.config.entrypoint, vec!["/app/run"]);
        assert!(!r.config.runs_as_root);
        assert_eq!(r.config.exposed_ports, vec!["8080/tcp"]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["config"]["user"], "app");
    }

    #[test]
    fn capability_formats() {
        // v2, cap_net_bind_service + cap_net_raw permitted, effective.
        let mut v = vec![0x01, 0, 0, 0x02];
        v.extend((1u32 << 10 | 1 << 13).to_le_bytes());
        v.extend([0u8; 12]);
        assert_eq!(describe_caps(&v), "cap_net_bind_service,cap_net_raw=ep");
        // Permitted only, not effective.
        let mut v = vec![0x00, 0, 0, 0x02];
        v.extend((1u32 << 21).to_le_bytes());
        v.extend([0u8; 12]);
        assert_eq!(describe_caps(&v), "cap_sys_admin=p");
        assert_eq!(describe_caps(&[1, 2]), "invalid");
    }
}
