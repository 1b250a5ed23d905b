//! `cargo xtask image`: the slimd container image, built here with no
//! registry. The release binaries `slimd` and `slim` (debug sections
//! stripped) and their
//! shared-library closure (the ELF interpreter and every DT_NEEDED library,
//! transitively, found where the host's loader finds them) go onto an empty
//! base: no shell, no package manager, nothing else. The tag comes from the
//! workspace version (the one version source), and must be exactly the
//! image the Kubernetes manifests run: a manifest that names another is an
//! error, not a second truth.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use object::{
    Endianness,
    elf::{DT_NEEDED, FileHeader64, PT_INTERP},
    read::elf::{Dyn, FileHeader, ProgramHeader},
};

use crate::{cargo, project_root, run, target_dir};

/// The image's repository; the tag is the workspace version.
pub const REPOSITORY: &str = "slimd/slimd";
/// The manifest whose container image must be the one built here.
pub const DAEMONSET: &str = "deploy/kubernetes/02-daemonset.yaml";
/// Where the binaries live in the image (the manifests' command paths).
const BIN_DIR: &str = "/usr/local/bin";
/// Directories the loader searches without an ld.so.cache (Debian's
/// multiarch paths first), in its order.
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// `slimd/slimd:<workspace version>`.
pub fn image_tag() -> String {
    format!("{REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// The `image:` values of a manifest, in order.
pub fn manifest_images(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("image:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// One file of the image: where it goes and where its bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    image_path: String,
    host_file: PathBuf,
    mode: u32,
}

/// The ELF interpreter and DT_NEEDED names of one file.
fn elf_deps(path: &Path) -> Result<(Option<String>, Vec<String>)> {
    let data = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let data = data.as_slice();
    let header = FileHeader64::<Endianness>::parse(data)
        .with_context(|| format!("{} is not a 64-bit ELF file", path.display()))?;
    let endian = header.endian()?;
    let mut interp = None;
    for ph in header.program_headers(endian, data)? {
        if ph.p_type(endian) == PT_INTERP
            && let Some(i) = ph.interpreter(endian, data)?
        {
            interp = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let sections = header.sections(endian, data)?;
    let mut needed = Vec::new();
    // The dynamic table and the index of its string table (its sh_link).
    if let Some((dynamic, strtab)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, strtab)?;
        for d in dynamic {
            if d.tag32(endian).map(i64::from) == Some(DT_NEEDED) {
                let name = d.string(endian, strings)?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok((interp, needed))
}

/// The closure of `bins`: each binary at [`BIN_DIR`], the interpreter at the
/// path its PT_INTERP names, each library at the first [`LIB_DIRS`] entry
/// that has it (its real bytes: symlinks are followed on the host, and the
/// image gets plain files where the loader will look).
fn closure(bins: &[PathBuf]) -> Result<Vec<Placed>> {
    let mut placed = BTreeMap::new();
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    for b in bins {
        let name = b.file_name().context("binary without a name")?;
        placed.insert(
            format!("{BIN_DIR}/{}", name.to_string_lossy()),
            (b.clone(), 0o755),
        );
        queue.push_back(b.clone());
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some(file) = queue.pop_front() {
        let (interp, needed) = elf_deps(&file)?;
        if let Some(i) = interp
            && seen.insert(i.clone())
        {
            let real = fs::canonicalize(&i).with_context(|| format!("interpreter {i}"))?;
            placed.insert(i, (real, 0o755));
        }
        for n in needed {
            if !seen.insert(n.clone()) {
                continue;
            }
            let (dir, real) = LIB_DIRS
                .iter()
                .find_map(|d| {
                    let p = Path::new(d).join(&n);
                    fs::canonicalize(&p).ok().map(|r| (*d, r))
                })
                .with_context(|| {
                    format!(
                        "{n} (needed by {}) is in none of {LIB_DIRS:?}",
                        file.display()
                    )
                })?;
            placed.insert(format!("{dir}/{n}"), (real.clone(), 0o755));
            queue.push_back(real);
        }
    }
    Ok(placed
        .into_iter()
        .map(|(image_path, (host_file, mode))| Placed {
            image_path,
            host_file,
            mode,
        })
        .collect())
}

/// Writes the root filesystem tar: the placed files, their parent
/// directories, and the empty directories the DaemonSet mounts over or the
/// daemon writes to. Owner root, mtime 0, sorted: the same inputs give the
/// same tar.
fn write_rootfs(files: &[Placed], out: &Path) -> Result<u64> {
    let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
    for d in [
        "/proc",
        "/sys",
        "/sys/fs/cgroup",
        "/sys/fs/bpf",
        "/sys/kernel/tracing",
        "/run/slimd",
        "/var/lib/slimd",
        "/host/proc",
        "/etc",
    ] {
        let mut p = Path::new(d);
        loop {
            dirs.insert(p.to_string_lossy().into_owned(), 0o755);
            match p.parent() {
                Some(q) if q != Path::new("/") => p = q,
                _ => break,
            }
        }
    }
    dirs.insert("/tmp".into(), 0o1777);
    for f in files {
        let mut p = Path::new(&f.image_path);
        while let Some(q) = p.parent().filter(|q| *q != Path::new("/")) {
            dirs.insert(q.to_string_lossy().into_owned(), 0o755);
            p = q;
        }
    }
    let file = fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut tar = tar::Builder::new(file);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    };
    for (d, mode) in &dirs {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        tar.append_data(&mut h, d.trim_start_matches('/'), std::io::empty())?;
    }
    let mut total = 0;
    for f in files {
        let data =
            fs::read(&f.host_file).with_context(|| format!("read {}", f.host_file.display()))?;
        total += data.len() as u64;
        let mut h = header(tar::EntryType::Regular, f.mode, data.len() as u64);
        tar.append_data(
            &mut h,
            f.image_path.trim_start_matches('/'),
            data.as_slice(),
        )?;
    }
    // Name services read these; an empty base has none. root only.
    for (path, text) in [
        ("etc/passwd", "root:x:0:0:root:/:/nonexistent\n"),
        ("etc/group", "root:x:0:\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        tar.append_data(&mut h, path, text.as_bytes())?;
    }
    tar.into_inner()?.sync_all()?;
    Ok(total)
}

/// Checks that every manifest under deploy/kubernetes runs exactly `tag`.
fn check_manifests(tag: &str) -> Result<()> {
    let path = project_root().join(DAEMONSET);
    let yaml = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let images = manifest_images(&yaml);
    if images.is_empty() {
        bail!("{DAEMONSET} names no image");
    }
    for i in images {
        if i != tag {
            bail!(
                "{DAEMONSET} runs {i}, but this build is {tag} (the workspace version in Cargo.toml): change the manifest to {tag}"
            );
        }
    }
    Ok(())
}

/// Builds the release binaries and the image, and loads it into Docker
/// (`docker import`) under [`image_tag`]. With `tar_out`, also leaves the
/// root filesystem tar there.
pub fn build_image(tar_out: Option<&Path>) -> Result<()> {
    let tag = image_tag();
    check_manifests(&tag)?;
    run(cargo().args(["build", "--release", "-p", "slimd", "--bins"]))?;
    let release = target_dir().join("release");
    let dir = target_dir().join("image");
    fs::create_dir_all(&dir)?;
    // The release profile keeps line tables (for backtraces on the host);
    // the image gets the binaries without debug sections (symbols stay).
    let mut bins = Vec::new();
    for name in ["slimd", "slim"] {
        let out = dir.join(name);
        run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(release.join(name))
            .arg(&out))
        .context("objcopy (binutils) strips the binaries' debug sections")?;
        bins.push(out);
    }
    let files = closure(&bins)?;
    let tar_path = tar_out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("slimd-rootfs.tar"));
    let bytes = write_rootfs(&files, &tar_path)?;
    println!("image: {} files, {bytes} bytes:", files.len());
    for f in &files {
        println!("  {} <- {}", f.image_path, f.host_file.display());
    }
    crate::docker::ensure_engine()?;
    let version = env!("CARGO_PKG_VERSION");
    run(Command::new("docker")
        .arg("import")
        .args([
            "--change",
            &format!("ENTRYPOINT [\"{BIN_DIR}/slimd\"]"),
            "--change",
            "CMD [\"serve\"]",
            "--change",
            &format!("LABEL org.opencontainers.image.version={version}"),
            "--change",
            "LABEL org.opencontainers.image.title=slimd",
        ])
        .arg(&tar_path)
        .arg(&tag))?;
    let size = String::from_utf8(
        Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Size}}", &tag])
            .output()?
            .stdout,
    )?;
    println!("image: {tag}, {} bytes", size.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_runs_the_image_this_version_builds() {
        let yaml = fs::read_to_string(project_root().join(DAEMONSET)).unwrap();
        let images = manifest_images(&yaml);
        assert!(!images.is_empty());
        assert!(images.iter().all(|i| *i == image_tag()), "{images:?}");
    }

    #[test]
    fn image_lines_are_read() {
        let y = "containers:\n  - name: a\n    image: \"x/y:1\"\n    imagePullPolicy: Never\n";
        assert_eq!(manifest_images(y), vec!["x/y:1".to_string()]);
    }

    #[test]
    fn closure_of_a_host_binary_has_its_loader_and_libc() {
        // Any dynamic binary of the host will do: the test runner itself.
        let me = std::env::current_exe().unwrap();
        let files = closure(std::slice::from_ref(&me)).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.image_path.as_str()).collect();
        assert!(paths.contains(&"/lib64/ld-linux-x86-64.so.2"), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with("/libc.so.6")), "{paths:?}");
        assert!(files.iter().all(|f| f.host_file.is_file()));
    }
}
