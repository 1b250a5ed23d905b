//! Builds the kernel programs and embeds the object into the slimd binary.
//!
//! `slimd-ebpf` is built with Debian's cargo and rustc (the rustup toolchain
//! here has no `rust-src` for `-Z build-std`) into its own target directory.
//! `SLIMD_EBPF_OBJECT` embeds a prebuilt object instead. When the toolchain
//! is missing, a plain `cargo build` embeds nothing (the daemon then says so
//! when asked to trace), so unit tests still build anywhere; `cargo xtask`
//! sets `SLIMD_REQUIRE_EBPF=1`, which turns that into a build error.
use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("slimd-ebpf.o");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let ebpf_dir = manifest.parent().unwrap().join("slimd-ebpf");
    println!("cargo:rerun-if-env-changed=SLIMD_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=SLIMD_REQUIRE_EBPF");
    let required = env::var_os("SLIMD_REQUIRE_EBPF").is_some_and(|v| v == "1");
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest
            .parent()
            .unwrap()
            .join("slimd-common/src")
            .display()
    );

    if let Some(obj) = env::var_os("SLIMD_EBPF_OBJECT") {
        let obj = PathBuf::from(obj);
        println!("cargo:rerun-if-changed={}", obj.display());
        fs::copy(&obj, &out).unwrap_or_else(|e| panic!("copy {}: {e}", obj.display()));
        return;
    }
    match build_ebpf(&ebpf_dir) {
        Ok(obj) => {
            fs::copy(&obj, &out).unwrap();
        }
        Err(why) if required => {
            panic!("building the eBPF object failed: {why}; run `cargo xtask setup` first")
        }
        Err(why) => {
            println!(
                "cargo:warning=slimd is built without its eBPF object ({why}); run `cargo xtask setup` then `cargo xtask build`"
            );
            fs::write(&out, b"").unwrap();
        }
    }
}

/// Builds the kernel programs with Debian's toolchain into their own target dir
/// (the outer cargo holds the lock on ours).
fn build_ebpf(dir: &std::path::Path) -> Result<PathBuf, String> {
    let debian_cargo = PathBuf::from("/usr/bin/cargo");
    let debian_rustc = PathBuf::from("/usr/bin/rustc");
    if !debian_cargo.exists() || !debian_rustc.exists() {
        return Err("Debian's cargo/rustc not found".into());
    }
    let target_dir = dir.join("target");
    let mut cmd = Command::new(&debian_cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Nothing of the outer build may leak into the inner one (clippy sets a
    // rustc wrapper, cargo sets flags for the host target).
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO") || k.starts_with("RUSTC") || k.starts_with("RUST") {
            cmd.env_remove(&k);
        }
    }
    let home = env::var_os("CARGO_HOME");
    if let Some(h) = home {
        cmd.env("CARGO_HOME", h);
    }
    let path = env::var("PATH").unwrap_or_default();
    let cargo_bin = env::var("HOME")
        .map(|h| format!("{h}/.cargo/bin"))
        .unwrap_or_default();
    cmd.env("PATH", format!("{path}:{cargo_bin}"))
        .env("RUSTC", &debian_rustc)
        .env("RUSTC_BOOTSTRAP", "1");
    cmd.stdout(std::process::Stdio::null());
    let status = cmd
        .status()
        .map_err(|e| format!("running {}: {e}", debian_cargo.display()))?;
    if !status.success() {
        return Err(format!("building slimd-ebpf failed ({status})"));
    }
    Ok(target_dir.join("bpfel-unknown-none/release/slimd-ebpf"))
}
