//! Free space, checked before the long tasks: a full disk shows up minutes
//! later as a linker's or dockerd's cryptic failure (`linking with cc
//! failed`), so `cargo xtask test` says it first, naming what takes the
//! room.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Fails unless the file system holding `path` has `need_gib` GiB free;
/// `what` says what will use it.
pub fn ensure_free(path: &Path, need_gib: u64, what: &str) -> Result<()> {
    let mut at = path;
    // The target directory may not exist yet: ask its nearest ancestor.
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let st = rustix::fs::statvfs(at).with_context(|| format!("statvfs {}", at.display()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let gib = 1u64 << 30;
    if free < need_gib * gib {
        bail!(
            "only {:.1} GiB free on the file system of {} ({what} need about {need_gib} GiB): free some space (`cargo clean`, `docker system prune`) and run again",
            free as f64 / gib as f64,
            at.display()
        );
    }
    Ok(())
}
