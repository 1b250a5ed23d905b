//! `cargo xtask`: slimd's developer tasks.
//!
//! - `setup`: install the toolchain on a fresh Debian machine (idempotent).
//! - `build`: build the eBPF object with Debian's rustc, then slimd with the
//!   object embedded.
//! - `test`: check the free disk space, build, run unit tests, a bounded
//!   fuzzing run (`fuzz`, 60 s per target; cargo-fuzz is required), start
//!   dockerd when no engine answers, end-to-end tests, then the kernel
//!   matrix (`vm-test`).
//! - `fuzz`: run each fuzz target of `fuzz/` for a while.
//! - `demo`: build a demo image locally and run `slim build` on it end to end.
//! - `bench`: the benchmarks of `bench/` (results in bench/results/).
//! - `image`: the slimd container image (release binaries and their ELF
//!   closure on an empty base), tagged as the Kubernetes manifests say.
//! - `install` / `uninstall`: the binaries, systemd units and group.
//! - `lint`: rustfmt (both workspaces) and clippy.
//! - `vm-test`: the tracer suite and one full build on other kernels, in
//!   QEMU VMs (the kernel matrix).

mod bench;
mod demo;
mod disk;
mod docker;
mod fuzz;
mod image;
mod install;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install Debian packages, bpf-linker and Docker (needs root).
    Setup,
    /// Build the eBPF object and slimd with it embedded.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Run unit and end-to-end tests (starts dockerd when needed), then the
    /// kernel matrix in VMs.
    Test {
        /// Only the unit tests (no root, no Docker).
        #[arg(long)]
        unit: bool,
        /// Extra arguments for the test binaries (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        filter: Vec<String>,
    },
    /// Run each fuzz target of fuzz/ for SECONDS (needs cargo-fuzz,
    /// which `cargo xtask setup` installs).
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Build a demo image and minify it with `slim build`, end to end.
    Demo,
    /// Run the benchmarks and regenerate the README table.
    Bench {
        /// Only these benchmarks (names as in bench/results/).
        names: Vec<String>,
        /// Small sizes and two rounds: checks the harness, not the figures.
        #[arg(long)]
        quick: bool,
        /// Rounds of each A/B alternation (default 7; 2 with --quick).
        #[arg(long)]
        rounds: Option<usize>,
        /// Only regenerate the README table from bench/results/.
        #[arg(long)]
        table_only: bool,
    },
    /// Build the slimd container image locally (release binaries and their
    /// shared-library closure on an empty base) and load it into Docker as
    /// slimd/slimd:<workspace version>, the image the manifests run.
    Image {
        /// Also keep the root filesystem tar here.
        #[arg(long)]
        rootfs_tar: Option<PathBuf>,
    },
    /// Install slimd, slim, the systemd units and the `slimd` group.
    Install {
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
    },
    /// Remove what `install` put in place.
    Uninstall {
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
    },
    /// rustfmt --check on both workspaces and clippy -D warnings.
    Lint,
    /// Boot each kernel of the matrix under QEMU and run the tracer suite,
    /// watch mode and one full `slim build` there (needs root).
    VmTest {
        /// A kernel of the list (debian-6.1, host, debian-5.10) or a bzImage
        /// path; repeatable; default: the default matrix (debian-6.1, host).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// KVM when it can run the kernel (else TCG, said so), or force one.
        #[arg(long, value_enum, default_value = "auto")]
        accel: vm::AccelChoice,
        /// Look for newer Debian kernel packages than the cached ones.
        #[arg(long)]
        refresh: bool,
        /// Deadline of one VM run in seconds (default 600 with KVM, 1500
        /// with TCG).
        #[arg(long)]
        timeout: Option<u64>,
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Setup => setup::run_setup(),
        Cmd::Build { release } => build(release).map(|_| ()),
        Cmd::Test { unit, filter } => test(unit, &filter),
        Cmd::Fuzz { seconds } => fuzz::run_all(seconds),
        Cmd::Demo => demo::run_demo(),
        Cmd::Bench {
            names,
            quick,
            rounds,
            table_only,
        } => {
            if table_only {
                bench::table_only()
            } else {
                bench::run(&names, bench::Options { quick, rounds })
            }
        }
        Cmd::Image { rootfs_tar } => image::build_image(rootfs_tar.as_deref()),
        Cmd::Install { prefix } => install::install(&prefix),
        Cmd::Uninstall { prefix } => install::uninstall(&prefix),
        Cmd::Lint => lint(),
        Cmd::VmTest {
            kernels,
            accel,
            refresh,
            timeout,
            filter,
        } => vm::run(&vm::Options {
            kernels,
            accel,
            refresh,
            filter,
            timeout: timeout.map(std::time::Duration::from_secs),
        }),
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// PATH with cargo's bin dir, where `cargo install` put bpf-linker.
pub fn path_with_cargo_bin() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|_| PathBuf::from("/root/.cargo"));
    format!("{path}:{}", home.join("bin").display())
}

/// `cargo` for this workspace, with cargo's bin directory (bpf-linker) on
/// PATH for slimd/build.rs, which builds the eBPF object.
pub fn cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.env("PATH", path_with_cargo_bin());
    c
}

/// Builds everything; returns the directory with `slimd` and `slim`.
pub fn build(release: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--all-targets"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    Ok(target_dir().join(if release { "release" } else { "debug" }))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_SECONDS: u64 = 60;

/// GiB a whole `cargo xtask test` writes on a clean clone: the debug and
/// release builds, the fuzz targets' build, fixture images and the VM's
/// disks.
const TEST_DISK_GIB: u64 = 12;

fn test(unit_only: bool, filter: &[String]) -> Result<()> {
    disk::ensure_free(
        &target_dir(),
        TEST_DISK_GIB,
        "the builds, fuzz targets, fixture images and VM disks of the tests",
    )?;
    let bin_dir = build(false)?;
    // Unit tests of every crate: fast, no privileges.
    let mut unit = cargo();
    unit.args(["test", "--workspace", "--lib", "--bins"])
        .arg("--")
        .args(filter);
    run(&mut unit)?;
    if unit_only {
        return Ok(());
    }
    // Fuzzing, bounded: about a minute per target.
    if !fuzz::available() {
        bail!("cargo fuzz is not installed: run `cargo xtask setup`, which installs it");
    }
    fuzz::run_all(FUZZ_SECONDS)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!(
            "the end-to-end tests need root (real kernel, real Docker): run `sudo cargo xtask test`, or `cargo xtask test --unit`"
        );
    }
    docker::ensure_engine()?;
    // The slimd image (release binaries): the slimd_image suite runs the
    // DaemonSet's container from it.
    image::build_image(None)?;
    // End-to-end tests, ignored ones included (they are marked so that a
    // plain `cargo test` skips them), one at a time: they share the kernel,
    // the engine and two cores. The suites are modules of the slimd-tests
    // crate (one test binary, `tests/src/tests/`); slimd has integration
    // tests of its own image library. Both run; either failing fails.
    let e2e = |args: &[&str]| {
        let mut c = cargo();
        c.arg("test")
            .args(args)
            .env("SLIMD_BIN_DIR", &bin_dir)
            .args(["--", "--include-ignored", "--test-threads=1"])
            .args(filter);
        run(&mut c)
    };
    let suites = e2e(&["-p", "slimd-tests", "--lib"]);
    let image_lib = e2e(&["-p", "slimd", "--test", "*"]);
    suites.and(image_lib)?;
    // The kernel matrix: the tracer suite and one full build on the other
    // kernels, in VMs (minutes with KVM; several more under TCG, bounded).
    vm::run(&vm::Options {
        kernels: Vec::new(),
        accel: vm::AccelChoice::Auto,
        refresh: false,
        filter: filter.iter().find(|f| !f.starts_with('-')).cloned(),
        timeout: None,
    })
}

fn lint() -> Result<()> {
    run(Command::new(env!("CARGO")).args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new(env!("CARGO"))
        .current_dir(project_root().join("slimd-ebpf"))
        .args(["fmt", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
