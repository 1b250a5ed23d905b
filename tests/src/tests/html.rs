//! End-to-end: the HTML reports in a real browser. Real builds and xrays of
//! fixture images through a real daemon (real kernel, real Docker, as
//! root; run by `cargo xtask test`), each page written by `slim ... --html
//! -o FILE`, opened from `file://` in headless Chromium, screenshotted,
//! and checked on the DOM as the browser built it: the icicle holds every
//! byte of the original, a file named like a script tag shows as text and
//! no script from the image ran (only the page's own did).
//!
//! With `SLIMD_UPDATE_DOCS=1` the screenshots also go to `docs/` (the ones
//! the README shows).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use scraper::{ElementRef, Html, Selector};
use serde_json::Value;

use crate::browser::{dump_dom, dump_dom_at, screenshot};
use crate::daemon::{Daemon, tail};
use crate::{HOSTILE_DIR, TestImage, ensure_hostile_image, hostile_path};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("a selector")
}

fn one<'a>(doc: &'a Html, s: &str) -> Result<ElementRef<'a>> {
    doc.select(&sel(s))
        .next()
        .with_context(|| format!("no {s} in the page"))
}

fn attr_u64(e: ElementRef<'_>, name: &str) -> Result<u64> {
    e.value()
        .attr(name)
        .with_context(|| format!("no {name}"))?
        .parse()
        .with_context(|| format!("{name} is not a number"))
}

fn text(e: ElementRef<'_>) -> String {
    e.text().collect()
}

/// `slim ARGS` that must succeed; its stdout.
fn slim_ok(d: &Daemon, args: &[&str]) -> Result<String> {
    let out = d.slim(args)?;
    ensure!(
        out.status.success(),
        "slim {args:?} failed ({}): {}\ndaemon log tail: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log())
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Writes a page with `slim ARGS --html -o FILE`; its size and how long
/// `slim` took (fetch the report from the daemon, render, write).
fn write_page(d: &Daemon, args: &[&str], file: &Path) -> Result<(u64, Duration)> {
    let mut all = args.to_vec();
    let f = file.to_string_lossy().into_owned();
    all.extend_from_slice(&["--html", "-o", &f]);
    let t = Instant::now();
    let out = d.slim(&all)?;
    let took = t.elapsed();
    ensure!(
        out.status.success(),
        "slim {all:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains("wrote "),
        "slim said nothing about the page: {stderr}"
    );
    let size = std::fs::metadata(file)?.len();
    Ok((size, took))
}

/// The checks every page gets in the browser: the page's own script ran
/// (it marks `<html class="has-js">`), nothing else did (the title is the
/// page's, no element an injected script or handler would make), and the
/// page names no resource outside itself.
fn only_the_page_ran(doc: &Html, dom: &str, title: &str) -> Result<()> {
    let html = one(doc, "html")?;
    ensure!(
        html.value().classes().any(|c| c == "has-js"),
        "the page's own script did not run"
    );
    let shown = text(one(doc, "title")?);
    ensure!(
        shown == title,
        "the title is {shown:?}: a script from the image ran"
    );
    ensure!(
        doc.select(&sel("img")).next().is_none() && !dom.contains("data-pwned"),
        "an injected element or handler made it into the DOM"
    );
    ensure!(
        doc.select(&sel("script")).count() == 1,
        "more than one script element"
    );
    if let Some(e) = doc.select(&sel("[src], link[href]")).next() {
        anyhow::bail!("the page loads {:?}: it must be self-contained", e.value());
    }
    Ok(())
}

/// The icicle in the browser's DOM holds every byte of the original: the
/// root equals `expected`, and the top-level directories add up to it.
fn icicle_total(doc: &Html, expected: u64) -> Result<()> {
    let svg = one(doc, "svg#icicle")?;
    let total = attr_u64(svg, "data-total")?;
    ensure!(
        total == expected,
        "the icicle shows {total} bytes, the original has {expected}"
    );
    let nodes: Vec<ElementRef<'_>> = doc.select(&sel("#icicle g.node")).collect();
    let root = nodes.first().context("an empty icicle")?;
    ensure!(root.value().attr("data-path") == Some("/"));
    ensure!(attr_u64(*root, "data-bytes")? == expected);
    let mut top = 0;
    for n in &nodes {
        if n.value().attr("data-depth") == Some("1") {
            top += attr_u64(*n, "data-bytes")?;
        }
    }
    ensure!(
        top == expected,
        "top-level directories add up to {top}, not {expected}"
    );
    Ok(())
}

fn out_dir(d: &Daemon) -> Result<PathBuf> {
    let dir = d.dir.join("html");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Copies a screenshot to `docs/` when asked to (see the module docs).
fn keep_for_docs(png: &Path, name: &str) -> Result<()> {
    if std::env::var_os("SLIMD_UPDATE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::create_dir_all(&docs)?;
        std::fs::copy(png, docs.join(name))?;
        println!("screenshot kept as docs/{name}");
    }
    Ok(())
}

/// A build of the image whose names and page body are HTML: its page
/// renders them as text, and none of it runs.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn build_report_shows_hostile_names_as_text() -> Result<()> {
    let tag = ensure_hostile_image()?;
    let mut d = Daemon::start("html-build")?;
    let target = "slimd-e2e/hostile-names:slim";
    let hostile = hostile_path();
    let (s, _) =
        d.build_verified(&[tag, "--tag", target, "--force", "--include-path", &hostile])?;
    let id = s["id"]
        .as_str()
        .context("no id in the summary")?
        .to_string();
    let report: Value = serde_json::from_str(&slim_ok(&d, &["--json", "report", &id])?)?;
    let dir = out_dir(&d)?;
    let page = dir.join("build.html");
    let (size, took) = write_page(&d, &["report", &id], &page)?;
    let (dom, browser) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim report {id}"))?;

    // The hostile file, kept by its flag, is a row whose text is its name.
    let kept: Vec<String> = doc.select(&sel("#kept-table td.path")).map(text).collect();
    ensure!(
        kept.contains(&hostile),
        "the kept table does not show {hostile:?} as text: {:?}",
        kept.iter()
            .filter(|k| k.contains("srv"))
            .collect::<Vec<_>>()
    );
    ensure!(
        doc.select(&sel("#icicle g.node"))
            .any(|g| g.value().attr("data-path") == Some(HOSTILE_DIR)),
        "the icicle has no box for {HOSTILE_DIR:?}"
    );
    // The probe body with its script is shown, original beside slim.
    let bodies: Vec<String> = doc.select(&sel("#probe-table pre")).map(text).collect();
    ensure!(
        bodies
            .iter()
            .filter(|b| b.contains("<script>document.title='pwned by a probe body'</script>"))
            .count()
            >= 2,
        "the probe body is not shown as text on both sides: {bodies:?}"
    );
    ensure!(
        text(one(&doc, "#verify-outcome")?) == "passed",
        "verify outcome not shown"
    );

    // Every byte of the original, as the report counts them and as the
    // image library counts the image's visible files.
    let file_bytes = report["sizes"]["original_file_bytes"]
        .as_u64()
        .context("no original_file_bytes")?;
    icicle_total(&doc, file_bytes)?;
    let xray: Value = serde_json::from_str(&slim_ok(&d, &["--json", "xray", tag])?)?;
    ensure!(
        xray["visible_bytes"].as_u64() == Some(file_bytes),
        "xray counts {} visible bytes, the report {file_bytes}",
        xray["visible_bytes"]
    );
    let sizes = one(&doc, "#sizes")?;
    ensure!(
        attr_u64(sizes, "data-original-bytes")?
            == report["sizes"]["original_bytes"].as_u64().unwrap_or(0)
    );

    let png = dir.join("build.png");
    screenshot(&page, &png, 1280, 1800)?;
    println!(
        "build page of {tag}: {size} bytes, written in {:.0} ms, loaded and dumped by chromium in {:.1} s",
        took.as_secs_f64() * 1000.0,
        browser.as_secs_f64()
    );
    d.assert_clean()?;
    d.stop()
}

/// The largest build report of the fixtures (the Python app on a Debian
/// rootfs): its page, how long it takes, and its screenshot for the docs.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn largest_build_report_renders() -> Result<()> {
    let tag = TestImage::PythonApp.ensure()?;
    let mut d = Daemon::start("html-python")?;
    let (s, _) = d.build_verified(&[tag, "--tag", "slimd-e2e/python-app:html", "--force"])?;
    let id = s["id"]
        .as_str()
        .context("no id in the summary")?
        .to_string();
    let report: Value = serde_json::from_str(&slim_ok(&d, &["--json", "report", &id])?)?;
    let dir = out_dir(&d)?;
    let page = dir.join("build.html");
    let (size, took) = write_page(&d, &["report", &id], &page)?;
    let (dom, browser) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim report {id}"))?;
    // This image has hardlinks: the chart counts their bytes once, as
    // xray does.
    let file_bytes = report["sizes"]["original_file_bytes"]
        .as_u64()
        .context("no original_file_bytes")?;
    icicle_total(&doc, file_bytes)?;
    let xray: Value = serde_json::from_str(&slim_ok(&d, &["--json", "xray", tag])?)?;
    ensure!(
        xray["visible_bytes"].as_u64() == Some(file_bytes),
        "xray counts {} visible bytes, the report {file_bytes}",
        xray["visible_bytes"]
    );
    // dpkg packages of the Debian rootfs, with python3 among them.
    let packages: Vec<String> = doc
        .select(&sel("#packages tbody td:first-child"))
        .map(text)
        .collect();
    ensure!(
        packages
            .iter()
            .any(|p| p.starts_with("libpython3") || p.starts_with("python3")),
        "no python package in the bytes-by-package table: {packages:?}"
    );
    // The script zooms: a link to /usr/lib opens with that box full width.
    let (dom, _) = dump_dom_at(&page, "#dir=%2Fusr%2Flib")?;
    let doc = Html::parse_document(&dom);
    ensure!(
        text(one(&doc, "#icicle-focus")?) == "/usr/lib",
        "the icicle did not zoom into /usr/lib"
    );
    let lib = doc
        .select(&sel("#icicle g.node"))
        .find(|g| g.value().attr("data-path") == Some("/usr/lib"))
        .context("no /usr/lib box")?;
    let frame = lib.select(&sel("rect.frame")).next().context("no frame")?;
    ensure!(
        frame.value().attr("width") == Some("1000"),
        "/usr/lib is {:?} wide after the zoom",
        frame.value().attr("width")
    );

    let png = dir.join("build.png");
    screenshot(&page, &png, 1280, 1700)?;
    keep_for_docs(&png, "report-build.png")?;
    println!(
        "largest build page ({tag}, {} kept paths): {size} bytes, rendered and written by `slim report --html` in {:.0} ms, loaded and dumped by chromium in {:.1} s",
        report["kept"].as_array().map_or(0, Vec::len),
        took.as_secs_f64() * 1000.0,
        browser.as_secs_f64()
    );
    d.assert_clean()?;
    d.stop()
}

/// `slim xray --html` of the hostile image (names as text) and of the
/// Python app (layers, packages, shells), through the daemon.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn xray_report_pages() -> Result<()> {
    let hostile = ensure_hostile_image()?;
    let python = TestImage::PythonApp.ensure()?;
    let mut d = Daemon::start("html-xray")?;
    let dir = out_dir(&d)?;

    let page = dir.join("hostile.html");
    write_page(&d, &["xray", hostile], &page)?;
    let (dom, _) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim xray {hostile}"))?;
    let files: Vec<String> = doc.select(&sel("#largest td.path")).map(text).collect();
    ensure!(
        files.contains(&hostile_path()),
        "the largest files do not show the hostile name as text: {files:?}"
    );

    // The same page from a `docker save` archive read by the CLI itself.
    let archive = dir.join("hostile.tar");
    let a = archive.to_string_lossy().into_owned();
    crate::docker_timeout(["save", "-o", &a, hostile], Duration::from_secs(120))?;
    let page = dir.join("hostile-file.html");
    write_page(&d, &["xray", "--file", &a], &page)?;
    let (dom, _) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim xray {hostile}"))?;
    let files: Vec<String> = doc.select(&sel("#largest td.path")).map(text).collect();
    ensure!(
        files.contains(&hostile_path()),
        "xray --file: the largest files do not show the hostile name as text: {files:?}"
    );
    std::fs::remove_file(&archive)?;

    let page = dir.join("python.html");
    let (size, took) = write_page(&d, &["xray", python], &page)?;
    let xray: Value = serde_json::from_str(&slim_ok(&d, &["--json", "xray", python])?)?;
    let (dom, browser) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim xray {python}"))?;
    let summary = one(&doc, "#summary")?;
    ensure!(Some(attr_u64(summary, "data-total-size")?) == xray["total_size"].as_u64());
    let layers: u64 = doc
        .select(&sel("#layer-table tbody tr"))
        .map(|tr| attr_u64(tr, "data-size"))
        .sum::<Result<u64>>()?;
    ensure!(
        Some(layers) == xray["total_size"].as_u64(),
        "layer rows add up to {layers}, the image has {}",
        xray["total_size"]
    );
    let shown: u64 = doc
        .select(&sel("#layer-table tbody tr"))
        .map(|tr| attr_u64(tr, "data-visible"))
        .sum::<Result<u64>>()?;
    ensure!(
        Some(shown) == xray["visible_bytes"].as_u64(),
        "what the layers added and the image still shows adds up to {shown}, not {}",
        xray["visible_bytes"]
    );
    ensure!(
        doc.select(&sel("#layer-table ul.added li"))
            .next()
            .is_some(),
        "no layer lists the files it added"
    );
    let packages = doc.select(&sel("#package-table tbody tr")).count();
    ensure!(
        packages == xray["packages"].as_array().map_or(0, Vec::len) && packages > 10,
        "{packages} package rows"
    );
    ensure!(
        doc.select(&sel("#shells li"))
            .map(text)
            .any(|s| s == "/bin/sh"
                || s == "/usr/bin/sh"
                || s.ends_with("/bash")
                || s.ends_with("/dash")),
        "no shell listed"
    );
    let png = dir.join("xray.png");
    screenshot(&page, &png, 1280, 1500)?;
    keep_for_docs(&png, "report-xray.png")?;
    println!(
        "xray page of {python}: {size} bytes, written in {:.0} ms, loaded and dumped by chromium in {:.1} s",
        took.as_secs_f64() * 1000.0,
        browser.as_secs_f64()
    );
    d.stop()
}

/// A diff of the hostile-names fixture against the Python fixture: the
/// page's counts are `slim diff --json`'s, the hostile name shows as text,
/// nothing from the images ran, and the exit code stays diff(1)'s.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn diff_report_page() -> Result<()> {
    let hostile = ensure_hostile_image()?;
    let python = TestImage::PythonApp.ensure()?;
    let mut d = Daemon::start("html-diff")?;
    let dir = out_dir(&d)?;
    let page = dir.join("diff.html");
    let f = page.to_string_lossy().into_owned();
    let t = Instant::now();
    let out = d.slim(&["diff", python, hostile, "--html", "-o", &f])?;
    let took = t.elapsed();
    ensure!(
        out.status.code() == Some(1),
        "slim diff --html of two different images exited {} (want 1): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.slim(&["--json", "diff", python, hostile])?;
    ensure!(
        out.status.code() == Some(1),
        "slim --json diff exited {}",
        out.status
    );
    let diff: Value = serde_json::from_slice(&out.stdout)?;
    let (dom, browser) = dump_dom(&page)?;
    let doc = Html::parse_document(&dom);
    only_the_page_ran(&doc, &dom, &format!("slim diff {python} {hostile}"))?;
    let summary = one(&doc, "#summary")?;
    let totals = &diff["files"]["totals"];
    for k in ["added", "removed", "changed"] {
        ensure!(
            Some(attr_u64(summary, &format!("data-{k}"))?) == totals[k].as_u64(),
            "the page's {k} count differs from --json's {}",
            totals[k]
        );
        let shown = text(one(&doc, &format!("#count-{k}"))?);
        ensure!(
            Some(shown.trim().parse::<u64>()?) == totals[k].as_u64(),
            "{k} shows {shown}"
        );
    }
    let rows = doc.select(&sel("#file-table tbody tr")).count();
    let changes = diff["files"]["changes"].as_array().map_or(0, Vec::len);
    ensure!(
        rows == changes && changes > 0,
        "{rows} path rows, --json has {changes}"
    );
    let paths: Vec<String> = doc.select(&sel("#file-table td.path")).map(text).collect();
    ensure!(
        paths.contains(&hostile_path()),
        "the hostile name is not shown as text among {} paths",
        paths.len()
    );
    let pkgs = doc.select(&sel("#package-table tbody tr.added, #package-table tbody tr.removed, #package-table tbody tr.upgraded, #package-table tbody tr.downgraded, #package-table tbody tr.changed")).count();
    ensure!(
        pkgs == diff["packages"]["changes"].as_array().map_or(0, Vec::len),
        "{pkgs} package rows"
    );
    ensure!(
        doc.select(&sel("#dirs svg rect")).count() >= 2,
        "no directory bars"
    );
    let png = dir.join("diff.png");
    screenshot(&page, &png, 1280, 1500)?;
    keep_for_docs(&png, "report-diff.png")?;
    println!(
        "diff page: {} bytes, written in {:.0} ms, loaded and dumped by chromium in {:.1} s",
        std::fs::metadata(&page)?.len(),
        took.as_secs_f64() * 1000.0,
        browser.as_secs_f64()
    );
    d.stop()
}
