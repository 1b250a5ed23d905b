//! `cargo xtask setup`: the toolchain on a fresh Debian machine, idempotently.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::{path_with_cargo_bin, run};

/// Debian packages the build, the tests and the demo need.
const PACKAGES: &[&str] = &[
    // Container engine (tests and demo start dockerd themselves).
    "docker.io",
    // Rootful Podman 4.3 and its Docker-compatible API service (the podman
    // suite starts `podman system service`); CNI plugins for its bridge.
    "podman",
    "containernetworking-plugins",
    // containerd 1.6 and ctr: the containerd suite starts its own (never
    // dockerd's); protoc builds containerd-client's protobufs.
    "containerd",
    "protobuf-compiler",
    // bpf-linker links against LLVM 22.
    "llvm-22-dev",
    "libpolly-22-dev",
    // Debian's rustc with its library source: builds the eBPF crate with
    // -Z build-std=core (the rustup toolchain here has no rust-src).
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    // Test images: a Debian rootfs, a static busybox, static C programs.
    "debootstrap",
    "busybox-static",
    "gcc",
    // libFuzzer (built by cargo-fuzz's libfuzzer-sys) is C++.
    "g++",
    // The daemon's edge tests create and remove users and groups, and run
    // slim as them.
    "passwd",
    "util-linux",
    // objcopy: `cargo xtask image` strips the binaries' debug sections.
    "binutils",
    "libc6-dev",
    "zlib1g-dev",
    // The compose test checks the generated compose.slim.yml with
    // `docker-compose -f FILE -f compose.slim.yml config` (slimd itself
    // drives the engine through its API, not through docker-compose).
    "docker-compose",
    // systemd-analyze verify for the unit files test.
    "systemd",
    // `cargo xtask vm-test`: QEMU, and what builds the guests' initramfs and
    // disks (cpio, modinfo/depmod, mkfs.ext4 -d).
    "qemu-system-x86",
    "cpio",
    "kmod",
    "e2fsprogs",
    // Language packages of the granularity test images, installed on the
    // host (containers reach Debian's mirror, not PyPI or npm).
    "python3-pip",
    "npm",
    // A venv for the SPDX validator (spdx-tools from PyPI).
    "python3-venv",
    // The HTML report suite opens pages in headless Chromium (screenshots,
    // the DOM as the browser built it); fonts so text renders in them.
    "chromium",
    "fonts-dejavu-core",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

/// The SPDX project's own validator (`pyspdxtools`), in a venv of its own;
/// the ship suite validates every SPDX document with it (the same path is
/// in tests/src/sbom_schema.rs).
const SPDX_TOOLS: &str = "/var/cache/slimd-tests/spdx-tools/bin/pyspdxtools";
const SPDX_TOOLS_VERSION: &str = "0.8.5";

pub fn run_setup() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        bail!(
            "`cargo xtask setup` installs system packages: run it as root (sudo -E cargo xtask setup)"
        );
    }
    if !Path::new("/etc/debian_version").exists() {
        bail!(
            "`cargo xtask setup` supports Debian (bookworm) only. Elsewhere install by hand: {}, and bpf-linker {BPF_LINKER_VERSION} built against LLVM 22",
            PACKAGES.join(" ")
        );
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p) && !provided_otherwise(p))
        .collect();
    if missing.is_empty() {
        println!("setup: Debian packages present");
    } else {
        println!("setup: installing {}", missing.join(" "));
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .context("apt-get install failed")?;
    }
    if bpf_linker_ok() {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
    } else {
        println!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)");
        run(Command::new(env!("CARGO"))
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env(
                "PATH",
                format!("/usr/lib/llvm-22/bin:{}", path_with_cargo_bin()),
            )
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22"))
        .context("building bpf-linker failed")?;
    }
    if crate::fuzz::available() {
        println!("setup: cargo-fuzz present");
    } else {
        println!("setup: installing cargo-fuzz (the bounded fuzzing run of `cargo xtask test`)");
        run(Command::new(env!("CARGO"))
            .args(["install", "cargo-fuzz", "--locked"])
            .env("PATH", path_with_cargo_bin()))
        .context("installing cargo-fuzz failed")?;
    }
    if Command::new(SPDX_TOOLS)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("setup: spdx-tools {SPDX_TOOLS_VERSION} present");
    } else {
        println!(
            "setup: installing spdx-tools {SPDX_TOOLS_VERSION} from PyPI (the SPDX validator of the ship suite)"
        );
        let venv = Path::new(SPDX_TOOLS)
            .ancestors()
            .nth(2)
            .expect("a venv path");
        run(Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(venv))?;
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            &format!("spdx-tools=={SPDX_TOOLS_VERSION}"),
        ]))
        .context("installing spdx-tools failed")?;
    }
    for tool in ["rustfmt", "clippy"] {
        let ok = Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(tool))
            .unwrap_or(true);
        if !ok {
            let _ = Command::new("rustup")
                .args(["component", "add", tool])
                .status();
        }
    }
    println!("setup: done");
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Tools some machines get from elsewhere than Debian's package: NodeSource's
/// `nodejs` bundles npm and conflicts with Debian's `npm`; pyenv brings its
/// own pip. A working command is enough for the tests that use them.
fn provided_otherwise(pkg: &str) -> bool {
    let probe: &[&str] = match pkg {
        "npm" => &["npm", "--version"],
        "python3-pip" => &["python3", "-m", "pip", "--version"],
        _ => return false,
    };
    Command::new(probe[0])
        .args(&probe[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn bpf_linker_ok() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .env("PATH", path_with_cargo_bin())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false)
}

unsafe extern "C" {
    fn geteuid() -> u32;
}
