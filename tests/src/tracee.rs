//! Helpers shared by the tracer end-to-end tests: the `tracee` image and
//! running a container under a session cgroup.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use anyhow::{Context, Result, bail};

pub const TRACEE_IMAGE: &str = "slimd-test/tracee:latest";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tracee")
}

/// Runs a command; fails with its stderr.
pub fn sh(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Builds (once per test binary, and only when the source changed) an image
/// holding the dynamically linked `tracee` with just its loader and libc,
/// a static `/bin/true`, and a small `/data` tree with a symlink.
pub fn tracee_image() -> Result<&'static str> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_tracee().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(TRACEE_IMAGE)
}

fn build_tracee() -> Result<()> {
    let src = fixtures().join("tracee.c");
    let source = fs::read(&src)?;
    let hash = format!("{:x}", fnv(&source));
    let current = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"slimd.test.hash\"}}",
            TRACEE_IMAGE,
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if current.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let dir = tempfile_dir("tracee")?;
    let root = dir.join("root");
    for d in [
        "usr/bin",
        "bin",
        "lib/x86_64-linux-gnu",
        "lib64",
        "data/sub",
        "tmp",
        "etc",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    sh(Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(root.join("usr/bin/tracee"))
        .arg(&src))?;
    fs::write(dir.join("true.c"), "int main(void){return 0;}\n")?;
    sh(Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(root.join("bin/true"))
        .arg(dir.join("true.c")))?;
    for lib in [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ] {
        fs::copy(lib, root.join(&lib[1..]))?;
    }
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )?;
    fs::write(root.join("data/rel.txt"), "rel\n")?;
    fs::write(root.join("data/target.txt"), "target\n")?;
    fs::write(root.join("data/sub/f.txt"), "f\n")?;
    symlink("target.txt", root.join("data/link"))?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/true\n")?;
    let tar = dir.join("rootfs.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    sh(Command::new("docker")
        .arg("import")
        .args(["--change", "ENTRYPOINT [\"/usr/bin/tracee\"]"])
        .args(["--change", &format!("LABEL slimd.test.hash={hash}")])
        .arg(&tar)
        .arg(TRACEE_IMAGE))?;
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("slimd-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100000001b3)
    })
}

/// Where `cargo xtask test` put the binaries.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SLIMD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    dir.join(name)
}
