//! The small initramfs each VM boots with: a static busybox, the modules the
//! kernel needs to mount its root disk (virtio-pci, virtio-blk, ext4 and
//! what they depend on, in load order), `/init` (initramfs-init.sh) and the
//! guest init it installs on the root disk (guest-init.sh). Made for each
//! run (a few MB, well under a second).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use super::kernels::Kernel;
use crate::run;

const INIT: &str = include_str!("initramfs-init.sh");
const GUEST_INIT: &str = include_str!("guest-init.sh");
/// Where `busybox-static` puts it.
const BUSYBOX: &str = "/bin/busybox";
/// Modules needed before the root disk is mounted (those the kernel has
/// built in are simply absent from its module tree). ext4 asks for crc32c
/// through the crypto API, which no `depends` names.
const ROOT_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];

/// Writes `<dir>/initramfs.cpio` for `kernel`; returns its path.
pub fn build(kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    let stage = dir.join("initramfs");
    let _ = fs::remove_dir_all(&stage);
    for d in ["bin", "dev", "proc", "sys", "modules", "newroot"] {
        fs::create_dir_all(stage.join(d))?;
    }
    fs::copy(BUSYBOX, stage.join("bin/busybox")).with_context(|| {
        format!(
            "{BUSYBOX} (a static busybox: apt-get install busybox-static, or `cargo xtask setup`)"
        )
    })?;
    write_exec(&stage.join("init"), INIT)?;
    write_exec(&stage.join("guest-init"), GUEST_INIT)?;
    let mut order = String::new();
    if let Some(modules) = &kernel.modules {
        let index = index_modules(modules)?;
        for path in load_order(&index, ROOT_MODULES, &|p| depends(p))? {
            let name = module_file_name(&path);
            decompress_into(&path, &stage.join("modules").join(&name))?;
            order.push_str(&name);
            order.push('\n');
        }
    }
    fs::write(stage.join("modules.order"), order)?;
    let cpio = dir.join("initramfs.cpio");
    let out = fs::File::create(&cpio)?;
    // `find` lists the tree, `cpio -H newc` packs it as the kernel reads it.
    let list = Command::new("find")
        .arg(".")
        .current_dir(&stage)
        .output()
        .context("find")?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(&stage)
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("cpio (apt-get install cpio, or `cargo xtask setup`)")?;
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&list.stdout)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cpio failed ({status})");
    }
    fs::remove_dir_all(&stage)?;
    Ok(cpio)
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Module name (dashes as underscores, as the kernel names them) -> file.
fn index_modules(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![dir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if let Some(name) = module_name(&p) {
                index.insert(name, p);
            }
        }
    }
    Ok(index)
}

/// `ext4` for `.../ext4.ko`, `.ko.xz` or `.ko.zst`.
fn module_name(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_str()?;
    let stem = n
        .strip_suffix(".ko")
        .or_else(|| n.strip_suffix(".ko.xz"))
        .or_else(|| n.strip_suffix(".ko.zst"))?;
    Some(stem.replace('-', "_"))
}

fn module_file_name(p: &Path) -> String {
    format!("{}.ko", module_name(p).unwrap_or_default())
}

/// Files of `wanted` and their dependencies, each after what it needs.
/// Names missing from the index are taken as built in.
fn load_order(
    index: &BTreeMap<String, PathBuf>,
    wanted: &[&str],
    deps: &dyn Fn(&Path) -> Result<Vec<String>>,
) -> Result<Vec<PathBuf>> {
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        deps: &dyn Fn(&Path) -> Result<Vec<String>>,
        seen: &mut Vec<String>,
        out: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let name = name.replace('-', "_");
        if seen.contains(&name) {
            return Ok(());
        }
        seen.push(name.clone());
        let Some(path) = index.get(&name) else {
            return Ok(());
        };
        for d in deps(path)? {
            visit(&d, index, deps, seen, out)?;
        }
        out.push(path.clone());
        Ok(())
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for w in wanted {
        visit(w, index, deps, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// What a module file says it depends on (`modinfo -F depends`).
fn depends(path: &Path) -> Result<Vec<String>> {
    let out = Command::new("modinfo")
        .args(["-F", "depends"])
        .arg(path)
        .output()
        .context("modinfo (apt-get install kmod, or `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!(
            "modinfo {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// busybox's insmod takes plain `.ko` files.
fn decompress_into(src: &Path, dest: &Path) -> Result<()> {
    let name = src.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => {
            fs::copy(src, dest)?;
        }
        Some(t) => {
            let out = fs::File::create(dest)?;
            run(Command::new(t).arg("-dc").arg(src).stdout(out))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_follow_the_kernel() {
        assert_eq!(
            module_name(Path::new("/m/kernel/fs/ext4/ext4.ko")).as_deref(),
            Some("ext4")
        );
        assert_eq!(
            module_name(Path::new("/m/crc32c-intel.ko.xz")).as_deref(),
            Some("crc32c_intel")
        );
        assert_eq!(module_name(Path::new("/m/modules.dep")), None);
    }

    #[test]
    fn dependencies_load_first_once_and_built_ins_are_skipped() {
        let index: BTreeMap<String, PathBuf> = [
            "virtio_ring",
            "virtio",
            "virtio_pci",
            "virtio_blk",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4",
        ]
        .iter()
        .map(|n| (n.to_string(), PathBuf::from(format!("/m/{n}.ko"))))
        .collect();
        let deps = |p: &Path| -> Result<Vec<String>> {
            let n = module_name(p).unwrap();
            Ok(match n.as_str() {
                "virtio" => vec!["virtio_ring".into()],
                "virtio_pci" => vec!["virtio_ring".into(), "virtio".into()],
                "virtio_blk" => vec!["virtio".into(), "virtio_ring".into()],
                "ext4" => vec!["jbd2".into(), "mbcache".into(), "crc16".into()],
                _ => vec![],
            })
        };
        let order = load_order(&index, ROOT_MODULES, &deps).unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p).unwrap()).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_pci",
                "virtio_blk",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        // crc32c_generic is not in this index: built in, nothing to load.
        assert!(
            load_order(&BTreeMap::new(), ROOT_MODULES, &deps)
                .unwrap()
                .is_empty()
        );
    }
}
