//! `cargo xtask install` / `uninstall`.

use std::path::Path;

use anyhow::{Result, bail};

pub fn install(_prefix: &Path) -> Result<()> {
    bail!("not implemented yet")
}

pub fn uninstall(_prefix: &Path) -> Result<()> {
    bail!("not implemented yet")
}
