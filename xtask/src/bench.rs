//! `cargo xtask bench`.

use anyhow::{Result, bail};

pub fn run(_names: &[String]) -> Result<()> {
    bail!("not implemented yet")
}
