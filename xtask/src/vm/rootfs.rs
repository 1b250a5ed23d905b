//! The guest's root filesystem: a Debian 12 tree made by debootstrap (the
//! host's release, so the test binaries built here run there unchanged),
//! with Docker, gcc and busybox for the tests' fixture images; kept as a
//! tarball, and per kernel as an ext4 disk image with that kernel's modules,
//! both cached under the VM cache by their inputs.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{cache_dir, kernels::Kernel, kernels::hex12, lock};
use crate::run;

/// Bump to rebuild every rootfs and disk after a change to their shape.
const RECIPE_VERSION: &str = "1";
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the guest needs besides `minbase`: the engine and its helpers
/// (containerd, runc, iptables come with docker.io), modprobe for the
/// modules Docker asks for, `ip` for the loopback, and what the tests'
/// fixture images are built from (gcc, libc, zlib, a static busybox).
const INCLUDE: &[&str] = &[
    "docker.io",
    "kmod",
    "iproute2",
    "procps",
    "gcc",
    "libc6-dev",
    "zlib1g-dev",
    "busybox-static",
];
/// Module directories (under `kernel/`) a headless VM with no network
/// card never loads: left out of the disk to keep it small.
const SKIPPED_MODULES: &[&str] = &[
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/usb",
    "drivers/iio",
    "drivers/staging",
    "drivers/scsi",
    "drivers/hid",
    "drivers/input",
    "drivers/hwmon",
    "drivers/bluetooth",
    "drivers/isdn",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
];
/// Size of the (sparse) disk: room for Docker's images and containers.
const DISK_SIZE: &str = "8G";

/// The debootstrap tarball, made when missing (about a minute).
pub fn ensure_tarball() -> Result<PathBuf> {
    let key = {
        let mut h = Sha256::new();
        h.update(format!("{RECIPE_VERSION} {SUITE} {MIRROR} {INCLUDE:?}"));
        hex12(&h.finalize())
    };
    let dir = cache_dir();
    fs::create_dir_all(&dir)?;
    let tar = dir.join(format!("rootfs-{SUITE}-{key}.tar"));
    if tar.is_file() {
        return Ok(tar);
    }
    let _lock = lock(&dir.join("rootfs.lock"))?;
    if tar.is_file() {
        return Ok(tar);
    }
    let tree = dir.join(format!("rootfs-{key}.tmp"));
    let _ = fs::remove_dir_all(&tree);
    println!(
        "vm: debootstrap {SUITE} with {} (about a minute)",
        INCLUDE.join(",")
    );
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", INCLUDE.join(",")))
        .arg(SUITE)
        .arg(&tree)
        .arg(MIRROR))
    .context("debootstrap failed (is the Debian mirror reachable over HTTP?)")?;
    let tmp = tar.with_extension("tar.tmp");
    run(Command::new("tar")
        .args([
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./var/cache/apt/archives/*.deb",
            "--exclude=./var/lib/apt/lists/*",
        ])
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tmp)
        .arg("."))?;
    fs::rename(&tmp, &tar)?;
    fs::remove_dir_all(&tree)?;
    // Tarballs of older recipes.
    for e in fs::read_dir(&dir)?.flatten() {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        if p != tar && n.starts_with("rootfs-") && n.ends_with(".tar") {
            let _ = fs::remove_file(&p);
        }
    }
    Ok(tar)
}

/// The disk image for `kernel`: the tarball plus the kernel's modules
/// (with their `modules.dep`), as ext4. Made when missing (seconds); QEMU
/// opens it with `snapshot=on`, so runs never change it.
pub fn ensure_disk(tarball: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let dir = cache_dir();
    let key = {
        let mut h = Sha256::new();
        h.update(format!(
            "{RECIPE_VERSION} {} {} {} {SKIPPED_MODULES:?} {DISK_SIZE}",
            tarball.display(),
            kernel.origin,
            kernel.release
        ));
        if let Some(m) = &kernel.modules {
            h.update(m.display().to_string());
        }
        hex12(&h.finalize())
    };
    let stem = format!("disk-{}", safe_name(&kernel.name));
    let disk = dir.join(format!("{stem}-{key}.img"));
    if disk.is_file() {
        return Ok(disk);
    }
    let _lock = lock(&dir.join(format!("{stem}.lock")))?;
    if disk.is_file() {
        return Ok(disk);
    }
    println!(
        "vm: making the disk for {} ({})",
        kernel.name, kernel.release
    );
    let tree = dir.join(format!("{stem}.tmp"));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&tree)?;
    run(Command::new("tar")
        .args(["--numeric-owner", "-xf"])
        .arg(tarball)
        .arg("-C")
        .arg(&tree))?;
    if let Some(modules) = &kernel.modules {
        let dest = tree.join("lib/modules").join(&kernel.release);
        fs::create_dir_all(dest.parent().unwrap())?;
        run(Command::new("cp").arg("-a").arg(modules).arg(&dest))?;
        for skip in SKIPPED_MODULES {
            let p = dest.join("kernel").join(skip);
            if p.exists() {
                fs::remove_dir_all(&p)?;
            }
        }
        // Stale build links of the package point nowhere in the guest.
        for l in ["build", "source"] {
            let _ = fs::remove_file(dest.join(l));
        }
        run(Command::new("depmod")
            .arg("-b")
            .arg(&tree)
            .arg(&kernel.release))
        .context("depmod for the guest's modules")?;
    }
    let tmp = disk.with_extension("img.tmp");
    let _ = fs::remove_file(&tmp);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "slimd-vm", "-E", "root_owner=0:0", "-d"])
        .arg(&tree)
        .arg(&tmp)
        .arg(DISK_SIZE))
    .context("mkfs.ext4 -d (e2fsprogs >= 1.43)")?;
    fs::rename(&tmp, &disk)?;
    fs::remove_dir_all(&tree)?;
    // Disks of this kernel made from older inputs.
    for e in fs::read_dir(&dir)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if e.path() != disk && n.starts_with(&format!("{stem}-")) && n.ends_with(".img") {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(disk)
}

/// A kernel's name as part of a file name (paths given with `--kernel`).
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_plain_file_names() {
        assert_eq!(safe_name("debian-6.1"), "debian-6.1");
        assert_eq!(safe_name("/boot/vmlinuz-6.18.0"), "boot_vmlinuz-6.18.0");
    }
}
