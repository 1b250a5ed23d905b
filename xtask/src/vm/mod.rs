//! `cargo xtask vm-test`: slimd's kernel-facing tests on other kernels, each
//! booted under QEMU (KVM when it can run the kernel, TCG otherwise, said
//! so) on a cached Debian 12 root filesystem with pure cgroup v2 and its own
//! Docker engine.
//!
//! - [`kernels`]: the matrix as data, and fetching each kernel.
//! - [`rootfs`]: the debootstrap tarball and the per-kernel disk image.
//! - [`initramfs`]: busybox, the root disk's modules and the two init scripts.
//! - [`plan`]: which test binaries and tests run in the guest.
//! - [`qemu`]: booting, streaming the guest's output, deadlines.
//!
//! The test binaries are built here and run in the guest from the project
//! directory, shared read-only over virtio-9p at the same path (their
//! fixtures are found through the paths compiled into them). Their output
//! is libtest's, streamed as it comes; the run ends with a matrix of
//! kernels, results and times, and fails when any kernel that ran failed.

mod initramfs;
pub mod kernels;
mod plan;
mod qemu;
mod rootfs;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{cargo, project_root, target_dir};
use kernels::{Found, Kernel};
use qemu::{Accel, KvmTry, Launch, Outcome};

/// Kernels, root filesystems and disks: outside the project, shared with
/// the e2e tests' other slow-to-make inputs.
pub const CACHE_DIR: &str = "/var/cache/slimd-tests/vm";

pub fn cache_dir() -> PathBuf {
    PathBuf::from(CACHE_DIR)
}

/// An exclusive lock on `path` (created when missing), held until dropped.
pub fn lock(path: &Path) -> Result<fs::File> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.lock()
        .with_context(|| format!("lock {}", path.display()))?;
    Ok(f)
}

/// How to run the guests' CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when /dev/kvm works and runs the kernel, else TCG (said so).
    Auto,
    /// KVM only: fail when it cannot run the kernel.
    Kvm,
    /// Software emulation only.
    Tcg,
}

/// `cargo xtask vm-test` options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Entry names of [`kernels::KERNELS`] or paths of bzImages; empty: the
    /// default matrix.
    pub kernels: Vec<String>,
    pub accel: AccelChoice,
    /// Look for newer packages of the Debian kernels than the cached ones.
    pub refresh: bool,
    /// Only tests whose name contains this.
    pub filter: Option<String>,
    /// Deadline of one VM run (boot to power-off).
    pub timeout: Option<Duration>,
}

/// One row of the matrix.
struct Row {
    kernel: String,
    release: String,
    accel: Option<Accel>,
    note: Option<String>,
    outcome: Option<Outcome>,
    /// Not run, and not a failure (an entry whose kernel is not here).
    unavailable: Option<String>,
}

/// Deadlines of one VM run, boot to power-off. Under TCG on 2 shared cores
/// the whole run takes 6 to 7 minutes; KVM is several times faster. A run
/// past these is stuck, and fails.
const DEFAULT_KVM_DEADLINE: Duration = Duration::from_secs(10 * 60);
const DEFAULT_TCG_DEADLINE: Duration = Duration::from_secs(25 * 60);

pub fn run(opts: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { crate::libc_geteuid() } != 0 {
        bail!("`cargo xtask vm-test` needs root (debootstrap, mkfs, KVM): run it with sudo");
    }
    qemu::check_installed()?;
    for (tool, pkg) in [
        ("debootstrap", "debootstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("cpio", "cpio"),
        ("modinfo", "kmod"),
        ("depmod", "kmod"),
        ("dpkg-deb", "dpkg"),
    ] {
        if which(tool).is_none() {
            bail!("{tool} not found: `cargo xtask setup` installs it (apt-get install {pkg})");
        }
    }

    let specs: Vec<Selected> = if opts.kernels.is_empty() {
        kernels::KERNELS
            .iter()
            .filter(|k| k.default)
            .map(Selected::Entry)
            .collect()
    } else {
        opts.kernels
            .iter()
            .map(|k| match kernels::spec(k) {
                Some(s) => Ok(Selected::Entry(s)),
                None if Path::new(k).is_file() => Ok(Selected::Path(PathBuf::from(k))),
                None => bail!(
                    "--kernel {k}: neither a kernel of the list ({}) nor a file",
                    kernels::KERNELS
                        .iter()
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect::<Result<_>>()?
    };

    let (bin_dir, exe) = build()?;
    let tarball = rootfs::ensure_tarball()?;
    let project = project_root();
    let target = target_dir();
    let target_share = (!target.starts_with(&project)).then_some(target.clone());

    let mut rows = Vec::new();
    for sel in specs {
        let kernel = match sel {
            Selected::Entry(spec) => match kernels::get(spec, opts.refresh)? {
                Found::Ready(k) => k,
                Found::Unavailable(why) => {
                    println!("vm: {}: not run: {why}", spec.name);
                    rows.push(Row {
                        kernel: spec.name.into(),
                        release: "-".into(),
                        accel: None,
                        note: None,
                        outcome: None,
                        unavailable: Some(why),
                    });
                    continue;
                }
            },
            Selected::Path(p) => kernels::from_path(&p)?,
        };
        let row = run_kernel(
            &kernel,
            &tarball,
            &project,
            target_share.as_deref(),
            &bin_dir,
            &exe,
            opts,
        )?;
        rows.push(row);
    }
    print_matrix(&rows);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.unavailable.is_none() && !row_passed(r))
        .map(|r| r.kernel.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("vm-test failed on: {}", failed.join(", "));
    }
    if rows.iter().all(|r| r.unavailable.is_some()) {
        bail!("vm-test ran on no kernel");
    }
    Ok(())
}

enum Selected {
    Entry(&'static kernels::KernelSpec),
    Path(PathBuf),
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Builds slimd, slim and the end-to-end test binary.
fn build() -> Result<(PathBuf, String)> {
    crate::run(cargo().args(["build", "-p", "slimd", "--bins"]))?;
    let out = cargo()
        .args(plan::cargo_test_args())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binaries failed");
    }
    let exe = plan::executable(&String::from_utf8_lossy(&out.stdout))?;
    Ok((target_dir().join("debug"), exe))
}

fn run_kernel(
    kernel: &Kernel,
    tarball: &Path,
    project: &Path,
    target_share: Option<&Path>,
    bin_dir: &Path,
    exe: &str,
    opts: &Options,
) -> Result<Row> {
    println!(
        "vm: ==== {} ({}, {}) ====",
        kernel.name, kernel.release, kernel.origin
    );
    let disk = rootfs::ensure_disk(tarball, kernel)?;
    let run_dir = target_dir()
        .join("vm")
        .join(rootfs::safe_name(&kernel.name));
    let _ = fs::remove_dir_all(&run_dir);
    fs::create_dir_all(&run_dir)?;
    let initramfs = initramfs::build(kernel, &run_dir)?;
    fs::write(
        run_dir.join("env"),
        format!(
            "PROJECT='{}'\nTARGET='{}'\n",
            project.display(),
            target_share
                .map(|t| t.display().to_string())
                .unwrap_or_default()
        ),
    )?;
    fs::write(
        run_dir.join("plan.sh"),
        plan::script(exe, bin_dir, &project.join("tests"), opts.filter.as_deref())?,
    )?;
    let mut launch = Launch {
        kernel: &kernel.image,
        initramfs: &initramfs,
        disk: &disk,
        project,
        target: target_share,
        run_dir: &run_dir,
        cpus: 2,
        memory_mib: 3072,
        deadline: opts.timeout.unwrap_or(DEFAULT_KVM_DEADLINE),
    };
    let mut note = None;
    let kvm = match opts.accel {
        AccelChoice::Tcg => None,
        AccelChoice::Kvm | AccelChoice::Auto => {
            if qemu::kvm_device_usable() {
                Some(qemu::run_kvm(&launch)?)
            } else {
                Some(KvmTry::Refused("/dev/kvm cannot be opened".into()))
            }
        }
    };
    let (accel, outcome) = match kvm {
        Some(KvmTry::Ran(o)) => (Accel::Kvm, o),
        Some(KvmTry::Refused(why)) if opts.accel == AccelChoice::Kvm => {
            bail!("{}: KVM cannot run it: {why}", kernel.name)
        }
        other => {
            if let Some(KvmTry::Refused(why)) = other {
                let pvm = Path::new("/sys/module/kvm_pvm").exists()
                    && !Path::new("/sys/module/kvm_intel").exists()
                    && !Path::new("/sys/module/kvm_amd").exists();
                let why = if pvm {
                    format!(
                        "{why}; this host's KVM is kvm_pvm, which runs only kernels built as PVM guests"
                    )
                } else {
                    why
                };
                let n = format!(
                    "KVM could not run this kernel ({why}): falling back to TCG, software emulation, several times slower"
                );
                println!("vm: NOTE: {n}");
                note = Some(n);
            } else {
                println!("vm: NOTE: TCG (software emulation) as asked");
            }
            launch.deadline = opts.timeout.unwrap_or(DEFAULT_TCG_DEADLINE);
            (Accel::Tcg, qemu::run_tcg(&launch)?)
        }
    };
    if let Some(release) = &outcome.guest_release
        && !release
            .trim_start_matches("Linux ")
            .starts_with(&kernel.release_prefix)
    {
        bail!(
            "{}: the guest runs {release}, expected {}*",
            kernel.name,
            kernel.release_prefix
        );
    }
    if outcome.exit != Some(0) {
        println!(
            "vm: {}: console log {} (last lines):\n{}",
            kernel.name,
            qemu::console_path(&run_dir).display(),
            qemu::console_tail(&run_dir, 40)
        );
    }
    Ok(Row {
        kernel: kernel.name.clone(),
        release: kernel.release.clone(),
        accel: Some(accel),
        note,
        outcome: Some(outcome),
        unavailable: None,
    })
}

fn row_passed(r: &Row) -> bool {
    r.outcome
        .as_ref()
        .is_some_and(|o| o.exit == Some(0) && o.failed == 0 && o.passed > 0)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "-".into())
}

fn print_matrix(rows: &[Row]) {
    println!();
    println!("vm-test matrix");
    println!(
        "{:<14} {:<20} {:<5} {:>7} {:>8} {:>8} {:>8}  result",
        "kernel", "release", "accel", "boot", "docker", "tests", "total"
    );
    for r in rows {
        match (&r.outcome, &r.unavailable) {
            (_, Some(why)) => println!(
                "{:<14} {:<20} {:<5} {:>7} {:>8} {:>8} {:>8}  not run: {why}",
                r.kernel, r.release, "-", "-", "-", "-", "-"
            ),
            (Some(o), None) => {
                let tests = match (o.docker_s, o.plan_s) {
                    (Some(d), Some(p)) => Some(p - d),
                    _ => None,
                };
                let result = match &o.error {
                    Some(e) => format!("FAILED: {e}"),
                    None if row_passed(r) => format!("ok: {} passed", o.passed),
                    None => format!(
                        "FAILED: {} passed, {} failed, exit {:?}",
                        o.passed, o.failed, o.exit
                    ),
                };
                println!(
                    "{:<14} {:<20} {:<5} {:>7} {:>8} {:>8} {:>8}  {result}",
                    r.kernel,
                    r.release,
                    r.accel.map(Accel::name).unwrap_or("-"),
                    secs(o.boot_s),
                    secs(o.docker_s),
                    secs(tests),
                    secs(Some(o.total_s)),
                );
                if let Some(n) = &r.note {
                    println!("{:<14} note: {n}", "");
                }
            }
            (None, None) => {}
        }
    }
    let (passed, failed) = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref())
        .fold((0, 0), |(p, f), o| (p + o.passed, f + o.failed));
    println!("vm-test: {passed} passed, {failed} failed");
}
