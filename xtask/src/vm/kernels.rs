//! The kernels of the VM matrix, as data, and getting each one: a Debian
//! kernel package fetched with apt from the Debian mirror (cached by the
//! entry's inputs), the running kernel's own image when /boot has it, or a
//! bzImage given by path.
//!
//! Adding a kernel is one line in [`KERNELS`].

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::{cache_dir, lock};
use crate::run;

/// Where a kernel comes from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// A Debian kernel package (or the metapackage that depends on it),
    /// looked up in the given archives.
    Debian {
        /// `(archive URL, suite)` pairs, all `main`.
        archives: &'static [(&'static str, &'static str)],
        package: &'static str,
    },
    /// The running kernel's image in /boot, when it is there.
    Host,
}

/// One entry of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct KernelSpec {
    /// Its name for `--kernel` and in the matrix.
    pub name: &'static str,
    pub source: Source,
    /// What `uname -r` must start with in the guest (empty: anything).
    pub release_prefix: &'static str,
    /// Part of the default matrix (`cargo xtask vm-test` and `cargo xtask
    /// test`); the others run when named with `--kernel`.
    pub default: bool,
}

const DEBIAN: &str = "http://deb.debian.org/debian";
const DEBIAN_SECURITY: &str = "http://deb.debian.org/debian-security";

/// The matrix `cargo xtask vm-test` runs by default.
pub const KERNELS: &[KernelSpec] = &[
    // Debian 12's stock kernel, the most common on build nodes (its updates
    // come through the security archive).
    KernelSpec {
        name: "debian-6.1",
        source: Source::Debian {
            archives: &[(DEBIAN, "bookworm"), (DEBIAN_SECURITY, "bookworm-security")],
            package: "linux-image-amd64",
        },
        release_prefix: "6.1.",
        default: true,
    },
    // This machine's own kernel, when its image is available.
    KernelSpec {
        name: "host",
        source: Source::Host,
        release_prefix: "",
        default: true,
    },
    // Debian 11's, below the 5.14 that brings cgroup.kill: shows what
    // happens there (the daemon refuses it), so not in the default matrix.
    KernelSpec {
        name: "debian-5.10",
        source: Source::Debian {
            archives: &[(DEBIAN, "bullseye"), (DEBIAN_SECURITY, "bullseye-security")],
            package: "linux-image-amd64",
        },
        release_prefix: "5.10.",
        default: false,
    },
];

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Entry name, or the path given with `--kernel`.
    pub name: String,
    /// Its `uname -r` (from the package, or the bzImage header).
    pub release: String,
    /// Where it came from, for the matrix (package and version, or path).
    pub origin: String,
    pub image: PathBuf,
    /// `lib/modules/<release>` to install in the guest, if the kernel has
    /// modules.
    pub modules: Option<PathBuf>,
    pub release_prefix: String,
}

/// The outcome of looking for a kernel.
pub enum Found {
    Ready(Kernel),
    /// Not a failure: the matrix says why this entry was not run.
    Unavailable(String),
}

/// Finds an entry by name.
pub fn spec(name: &str) -> Option<&'static KernelSpec> {
    KERNELS.iter().find(|k| k.name == name)
}

/// Gets a kernel of the list (fetching and unpacking it when its entry is
/// not cached yet, or when `refresh` asks to look for a newer one).
pub fn get(spec: &KernelSpec, refresh: bool) -> Result<Found> {
    match spec.source {
        Source::Host => Ok(host()),
        Source::Debian { archives, package } => {
            debian(spec, archives, package, refresh).map(Found::Ready)
        }
    }
}

/// A bzImage given by path: its modules are taken from
/// `/lib/modules/<release>` when that exists (otherwise the kernel must
/// have virtio-blk, ext4 and 9p built in).
pub fn from_path(path: &Path) -> Result<Kernel> {
    let release = bzimage_release(path)?;
    let modules = Path::new("/lib/modules").join(&release);
    Ok(Kernel {
        name: path.display().to_string(),
        origin: path.display().to_string(),
        modules: modules.join("modules.order").is_file().then_some(modules),
        image: path.to_path_buf(),
        release,
        release_prefix: String::new(),
    })
}

fn host() -> Found {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let image = Path::new("/boot").join(format!("vmlinuz-{release}"));
    if !image.is_file() {
        return Found::Unavailable(format!(
            "the running kernel {release} has no image at {} on this machine",
            image.display()
        ));
    }
    let modules = Path::new("/lib/modules").join(&release);
    Found::Ready(Kernel {
        name: "host".into(),
        origin: image.display().to_string(),
        modules: modules.join("modules.order").is_file().then_some(modules),
        image,
        release,
        release_prefix: String::new(),
    })
}

/// The kernel release a bzImage names in its setup header (the
/// `kernel_version` field at 0x20e points at a string 0x200 bytes further;
/// Documentation/arch/x86/boot.rst).
pub fn bzimage_release(path: &Path) -> Result<String> {
    let data = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    parse_bzimage_release(&data).with_context(|| {
        format!(
            "{} is not an x86 bzImage with a version string",
            path.display()
        )
    })
}

fn parse_bzimage_release(data: &[u8]) -> Option<String> {
    if data.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*data.get(0x20e)?, *data.get(0x20f)?]) as usize + 0x200;
    let text = data.get(ptr..ptr.checked_add(256)?.min(data.len()))?;
    let end = text.iter().position(|&b| b == 0)?;
    let version = std::str::from_utf8(&text[..end]).ok()?;
    version.split_whitespace().next().map(str::to_string)
}

/// apt with a private configuration for one entry: its own sources list,
/// lists and caches under the VM cache, nothing of the host's apt state.
fn apt(dir: &Path, tool: &str) -> Command {
    let mut c = Command::new(tool);
    for (k, v) in [
        ("Dir::State", dir.join("state")),
        ("Dir::State::status", dir.join("state/status")),
        ("Dir::Cache", dir.join("cache")),
        ("Dir::Etc::SourceList", dir.join("sources.list")),
        ("Dir::Etc::SourceParts", dir.join("sources.list.d")),
        ("Dir::Etc::Preferences", dir.join("preferences")),
        ("Dir::Etc::PreferencesParts", dir.join("preferences.d")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    c.args(["-o", "APT::Sandbox::User=root", "-q"]);
    c
}

fn debian(
    spec: &KernelSpec,
    archives: &[(&str, &str)],
    package: &str,
    refresh: bool,
) -> Result<Kernel> {
    let root = cache_dir().join("kernels").join(spec.name);
    fs::create_dir_all(&root)?;
    let _lock = lock(&root.join(".lock"))?;
    // The entry's inputs name the cached unpacked package.
    let key = {
        let mut h = Sha256::new();
        h.update(format!("{archives:?} {package}"));
        hex12(&h.finalize())
    };
    let current = root.join(format!("current-{key}"));
    if !refresh
        && let Ok(dir) = fs::read_to_string(&current)
        && let Some(k) = read_unpacked(spec, &root.join(dir.trim()))
    {
        return Ok(k);
    }
    let apt_dir = root.join("apt");
    for d in [
        "state/lists/partial",
        "cache/archives/partial",
        "sources.list.d",
        "preferences.d",
    ] {
        fs::create_dir_all(apt_dir.join(d))?;
    }
    fs::write(apt_dir.join("state/status"), "")?;
    let sources: String = archives
        .iter()
        .map(|(url, suite)| {
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {url} {suite} main\n"
            )
        })
        .collect();
    fs::write(apt_dir.join("sources.list"), sources)?;
    println!("vm: {}: looking up {package} ({archives:?})", spec.name);
    run(apt(&apt_dir, "apt-get").arg("update"))
        .context("apt-get update for the kernel's archives failed (is the Debian mirror reachable over HTTP?)")?;
    // The metapackage depends on the versioned image package.
    let real = resolve_image_package(&apt_dir, package)?;
    let version = apt_field(&apt_dir, &real, "Version")?;
    let dl = root.join("download");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl)?;
    println!("vm: {}: downloading {real} {version}", spec.name);
    run(apt(&apt_dir, "apt-get")
        .current_dir(&dl)
        .args(["download", &format!("{real}={version}")]))?;
    let deb = fs::read_dir(&dl)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let name = format!("{real}_{version}").replace([':', '/'], "_");
    let unpacked = root.join(&name);
    if read_unpacked(spec, &unpacked).is_none() {
        let tmp = root.join(format!("{name}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        fs::write(tmp.join("origin"), format!("{real} {version}"))?;
        let _ = fs::remove_dir_all(&unpacked);
        fs::rename(&tmp, &unpacked)?;
    }
    let _ = fs::remove_dir_all(&dl);
    // Older unpacked versions of this entry are not needed any more.
    for e in fs::read_dir(&root)?.flatten() {
        let p = e.path();
        if p.is_dir() && p != unpacked && p != apt_dir {
            let _ = fs::remove_dir_all(&p);
        }
    }
    fs::write(&current, &name)?;
    read_unpacked(spec, &unpacked)
        .with_context(|| format!("{real} {version} has no /boot/vmlinuz-* and modules"))
}

/// The `linux-image-*` package a metapackage stands for (itself if it is
/// one already).
fn resolve_image_package(apt_dir: &Path, package: &str) -> Result<String> {
    let out = apt(apt_dir, "apt-cache")
        .args(["depends", package])
        .output()
        .context("apt-cache depends")?;
    if !out.status.success() {
        bail!(
            "apt-cache depends {package}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.trim().to_string())
        .find(|d| d.starts_with("linux-image-") && d != package)
        .unwrap_or_else(|| package.to_string()))
}

/// A field of the candidate version of a package.
fn apt_field(apt_dir: &Path, package: &str, field: &str) -> Result<String> {
    let out = apt(apt_dir, "apt-cache")
        .args(["show", "--no-all-versions", package])
        .output()
        .context("apt-cache show")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("apt-cache show {package}: no {field}"))
}

/// A kernel unpacked from its package: `boot/vmlinuz-<release>` and
/// `lib/modules/<release>`.
fn read_unpacked(spec: &KernelSpec, dir: &Path) -> Option<Kernel> {
    let origin = fs::read_to_string(dir.join("origin")).ok()?;
    let image = fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })?;
    let release = image
        .file_name()?
        .to_string_lossy()
        .strip_prefix("vmlinuz-")?
        .to_string();
    let modules = dir.join("lib/modules").join(&release);
    Some(Kernel {
        name: spec.name.into(),
        origin: origin.trim().to_string(),
        modules: modules.is_dir().then_some(modules),
        image,
        release,
        release_prefix: spec.release_prefix.into(),
    })
}

pub fn hex12(digest: &[u8]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_debian_entries_say_what_they_expect() {
        let mut names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KERNELS.len());
        for k in KERNELS {
            if let Source::Debian { archives, package } = k.source {
                assert!(!archives.is_empty() && package.starts_with("linux-image-"));
                assert!(!k.release_prefix.is_empty(), "{}", k.name);
            }
        }
        assert!(spec("debian-6.1").is_some_and(|k| k.default));
        assert!(spec("debian-5.10").is_some_and(|k| !k.default));
        assert!(spec("nope").is_none());
    }

    #[test]
    fn bzimage_header_gives_the_release() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        // kernel_version points 0x200 bytes before the string.
        let at = 0x800usize;
        img[0x20e..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        let s = b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        img[at..at + s.len()].copy_from_slice(s);
        assert_eq!(
            parse_bzimage_release(&img).as_deref(),
            Some("6.1.0-57-amd64")
        );
        img[0x202] = b'X';
        assert_eq!(parse_bzimage_release(&img), None);
        assert_eq!(parse_bzimage_release(&[0u8; 16]), None);
    }
}
