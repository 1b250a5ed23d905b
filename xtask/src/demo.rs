//! `cargo xtask demo`: the main job end to end on a locally built demo
//! image (see tests/src/bin/demo.rs): build, start dockerd if needed, run the demo.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{build, docker, run};

pub fn run_demo() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        bail!("the demo loads eBPF programs and drives Docker: run it as root");
    }
    let bin_dir = build(false)?;
    docker::ensure_engine()?;
    run(Command::new(bin_dir.join("slimd-demo")).env("SLIMD_BIN_DIR", &bin_dir))
}

unsafe extern "C" {
    fn geteuid() -> u32;
}
