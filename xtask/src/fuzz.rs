//! The bounded fuzzing run of `cargo xtask test` (and `cargo xtask fuzz`):
//! each cargo-fuzz target of `fuzz/` for a fixed time, from its seeds and
//! the corpus earlier runs left. Needs `cargo fuzz` (`cargo xtask setup`
//! installs it); the stable toolchain builds the targets with
//! `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes nightly-only flags). A crash fails
//! the run and names the input libFuzzer saved under `fuzz/artifacts/`.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{path_with_cargo_bin, project_root, run};

/// The targets, in the order they run.
pub const TARGETS: &[&str] = &["layer_reader", "path_resolver", "api_request"];

/// Whether `cargo fuzz` is installed.
pub fn available() -> bool {
    Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .env("PATH", path_with_cargo_bin())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every target for `seconds` each.
pub fn run_all(seconds: u64) -> Result<()> {
    if !available() {
        bail!("cargo fuzz is missing: run `cargo xtask setup` (it installs cargo-fuzz)");
    }
    let dir = project_root().join("fuzz");
    // One build for all targets; without a sanitizer (the code under test
    // is safe Rust; its few unsafe calls are to libc), with debug
    // assertions (overflow checks), optimised.
    let flags = ["--sanitizer", "none", "--debug-assertions", "-O"];
    run(fuzz_cmd().current_dir(&dir).args(["build"]).args(flags))
        .context("building the fuzz targets")?;
    for t in TARGETS {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        println!("fuzz: {t} for {seconds} s");
        run(fuzz_cmd()
            .current_dir(&dir)
            .args(["run"])
            .args(flags)
            .arg(t)
            .arg(&corpus)
            .arg(dir.join("seeds").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=10"))
        .with_context(|| {
            format!("fuzz target {t} found a crash: see fuzz/artifacts/{t}/ and make it a regression test")
        })?;
    }
    Ok(())
}

fn fuzz_cmd() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.arg("fuzz")
        .env("PATH", path_with_cargo_bin())
        .env("RUSTC_BOOTSTRAP", "1");
    c
}
