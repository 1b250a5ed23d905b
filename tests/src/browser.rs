//! Headless Chromium (Debian's `chromium`, installed by `cargo xtask
//! setup`) for the HTML report suite: the DOM as the browser built it
//! after the page's own script ran (`--dump-dom`), and screenshots. As
//! root Chromium needs `--no-sandbox`; each run gets its own profile
//! directory, removed afterwards, and a deadline.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::run_with_timeout;

/// The browser binary Debian's package installs.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest a page may take to load, render and be dumped.
const DEADLINE: Duration = Duration::from_secs(120);

fn chromium(args: &[&str]) -> Result<(String, Duration)> {
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `cargo xtask setup` (it installs Debian's chromium)"
    );
    let profile = tempfile::Builder::new()
        .prefix("slimd-chromium-")
        .tempdir()
        .context("a profile directory for chromium")?;
    let t = Instant::now();
    let out = run_with_timeout(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--disable-extensions",
                "--disable-background-networking",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args),
        DEADLINE,
    )?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "chromium {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), took))
}

fn url(page: &Path) -> Result<String> {
    let abs = page
        .canonicalize()
        .with_context(|| format!("{}", page.display()))?;
    Ok(format!("file://{}", abs.display()))
}

/// The page's DOM after load, as Chromium serializes it, and how long the
/// browser took (start, load, render, dump).
pub fn dump_dom(page: &Path) -> Result<(String, Duration)> {
    let (dom, took) = chromium(&["--dump-dom", &url(page)?])?;
    ensure!(
        dom.contains("<html"),
        "chromium dumped no document for {}: {dom:?}",
        page.display()
    );
    Ok((dom, took))
}

/// The same, with `fragment` (`#...`) after the page's URL.
pub fn dump_dom_at(page: &Path, fragment: &str) -> Result<(String, Duration)> {
    let (dom, took) = chromium(&["--dump-dom", &format!("{}{fragment}", url(page)?)])?;
    ensure!(
        dom.contains("<html"),
        "chromium dumped no document for {}",
        page.display()
    );
    Ok((dom, took))
}

/// A PNG of the page at `width` x `height` CSS pixels.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> Result<()> {
    let _ = std::fs::remove_file(png);
    chromium(&[
        &format!("--screenshot={}", png.display()),
        &format!("--window-size={width},{height}"),
        &url(page)?,
    ])?;
    let bytes =
        std::fs::read(png).with_context(|| format!("no screenshot at {}", png.display()))?;
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{} is not a rendered page ({} bytes)",
        png.display(),
        bytes.len()
    );
    Ok(())
}
