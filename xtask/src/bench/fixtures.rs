//! What the benchmarks run: the static `loop` program (bench/loop.c), an
//! image holding it with the files its loops use, and a large Debian-based
//! image for the assembly benchmark. Images are rebuilt only when their
//! inputs change (a hash in a label).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::proc;

pub const LOOP_IMAGE: &str = "slimd-bench/loop:latest";
pub const BIG_IMAGE: &str = "slimd-bench/big:latest";
const INPUTS_LABEL: &str = "slimd-bench.inputs";
/// Bump when a recipe changes shape.
const RECIPE: &str = "2";

/// Distinct files the event-capacity burst opens.
pub const BURST_FILES: u64 = 100_000;

pub struct Fixtures {
    /// The static loop binary on the host.
    pub loop_bin: PathBuf,
    /// bench/tp_cost.c: the cost of hooking syscalls at all.
    pub tp_cost: PathBuf,
    /// Directory with f0..f63 on the host (for the host-overhead loop).
    pub host_files: PathBuf,
}

impl Fixtures {
    pub fn prepare(work: &Path, _bin_dir: &Path, _quick: bool) -> Result<Fixtures> {
        let src = crate::project_root().join("bench/loop.c");
        let loop_bin = work.join("loop");
        crate::run(
            Command::new("gcc")
                .args(["-O2", "-static", "-Wall", "-o"])
                .arg(&loop_bin)
                .arg(&src),
        )
        .context("compiling bench/loop.c (static; needs gcc and libc6-dev)")?;
        let tp_cost = work.join("tp_cost");
        crate::run(
            Command::new("gcc")
                .args(["-O2", "-Wall", "-o"])
                .arg(&tp_cost)
                .arg(crate::project_root().join("bench/tp_cost.c")),
        )
        .context("compiling bench/tp_cost.c")?;
        let host_files = work.join("host-files");
        crate::run(Command::new(&loop_bin).arg("mkfiles").arg(&host_files))?;
        let hash = hex(Sha256::digest(
            [
                RECIPE.as_bytes(),
                &fs::read(&src)?,
                BURST_FILES.to_string().as_bytes(),
            ]
            .concat(),
        ));
        if image_inputs(LOOP_IMAGE).as_deref() != Some(hash.as_str()) {
            build_loop_image(work, &loop_bin, &hash)?;
        }
        Ok(Fixtures {
            loop_bin,
            tp_cost,
            host_files,
        })
    }
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs hash an image was built from, if it exists.
fn image_inputs(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            &format!("{{{{index .Config.Labels \"{INPUTS_LABEL}\"}}}}"),
            tag,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `/loop` (also the exec target: `loop true`), `/data/files/f0..f63`,
/// `/burst/dD/fF` (the burst's distinct files) and a sticky `/tmp`.
fn build_loop_image(work: &Path, loop_bin: &Path, hash: &str) -> Result<()> {
    println!("bench: building {LOOP_IMAGE}");
    let root = work.join("loop-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("data"))?;
    fs::create_dir_all(root.join("tmp"))?;
    fs::copy(loop_bin, root.join("loop"))?;
    crate::run(
        Command::new(loop_bin)
            .arg("mkfiles")
            .arg(root.join("data/files")),
    )?;
    crate::run(
        Command::new(loop_bin)
            .arg("mkburst")
            .arg(root.join("burst"))
            .arg(BURST_FILES.to_string()),
    )?;
    crate::run(Command::new("chmod").arg("1777").arg(root.join("tmp")))?;
    let tar = work.join("loop-rootfs.tar");
    crate::run(
        Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    let label = format!("LABEL {INPUTS_LABEL}={hash}");
    docker(
        &[
            "import",
            "--change",
            "ENTRYPOINT [\"/loop\"]",
            "--change",
            &label,
            &tar.to_string_lossy(),
            LOOP_IMAGE,
        ],
        600,
    )?;
    let _ = fs::remove_file(&tar);
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

pub fn docker(args: &[&str], timeout_s: u64) -> Result<String> {
    let out = proc::output(
        Command::new("docker")
            .args(args)
            .env("DOCKER_BUILDKIT", "0"),
        Duration::from_secs(timeout_s),
    )?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Bytes of random-looking filler (xorshift): incompressible and the same
/// on every run, so the image's inputs hash stays stable.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sizes of the large image's added layers.
const BLOBS: usize = 3;
const BLOB_BYTES: usize = 128 << 20;
const SMALL_FILES: usize = 20_000;

/// A ≥ 500 MB image: the Debian bookworm + python3 base the Python fixture
/// uses, a layer of three 128 MiB files and a layer of 20,000 small files
/// (1–8 KiB). Its entrypoint is a one-shot `cat /etc/os-release`, so
/// `slim build` can run it too.
pub fn ensure_big_image(work: &Path, base: &str) -> Result<&'static str> {
    let base_id = docker(&["image", "inspect", "-f", "{{.Id}}", base], 60)?;
    let hash = hex(Sha256::digest(
        format!("{RECIPE} {base_id} {BLOBS} {BLOB_BYTES} {SMALL_FILES}").as_bytes(),
    ));
    if image_inputs(BIG_IMAGE).as_deref() == Some(hash.as_str()) {
        return Ok(BIG_IMAGE);
    }
    println!("bench: building {BIG_IMAGE} (about 650 MB)");
    let ctx = work.join("big-context");
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(ctx.join("blobs"))?;
    for i in 0..BLOBS {
        fs::write(
            ctx.join(format!("blobs/blob{i}.bin")),
            filler(BLOB_BYTES, 0x5eed + i as u64),
        )?;
    }
    for i in 0..SMALL_FILES {
        let dir = ctx.join(format!("small/d{}", i % 200));
        if i < 200 {
            fs::create_dir_all(&dir)?;
        }
        let len = 1024 + (i * 7919) % (7 * 1024);
        fs::write(dir.join(format!("f{i}.dat")), filler(len, i as u64))?;
    }
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             COPY blobs/ /opt/blobs/\n\
             COPY small/ /opt/small/\n\
             ENTRYPOINT [\"/bin/cat\"]\n\
             CMD [\"/etc/os-release\"]\n\
             LABEL {INPUTS_LABEL}={hash}\n"
        ),
    )?;
    docker(
        &["build", "-q", "-t", BIG_IMAGE, &ctx.to_string_lossy()],
        1200,
    )?;
    let _ = fs::remove_dir_all(&ctx);
    Ok(BIG_IMAGE)
}
