//! End-to-end tests of package granularity and probe coverage (issue 8):
//! code that only an unprobed route loads survives a `package` build,
//! breaks a `file` build, and the coverage report names it. Likewise a page
//! of a static site the crawl never reached (issue 11: content roots). Plus
//! the size cost of `package` over `file` for every test image.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::{LangImage, TestImage, docker, http_get, image_size};
use anyhow::{Context, Result, ensure};
use serde_json::Value;

/// One finished build.
struct Built {
    report: Value,
    slim_bytes: u64,
    secs: f64,
}

/// `slim build IMAGE --tag TARGET --force EXTRA...`; the build must pass
/// verify. Returns its full report.
fn build(d: &Daemon, image: &str, target: &str, extra: &[&str]) -> Result<Built> {
    let mut args = vec![image, "--tag", target, "--force"];
    args.extend_from_slice(extra);
    let (s, secs) = d.build_verified(&args)?;
    let id = s["id"].as_str().context("no session id")?;
    let rep = d.slim(&["--json", "report", id])?;
    let report: Value = serde_json::from_slice(&rep.stdout).context("report JSON")?;
    Ok(Built {
        report,
        slim_bytes: image_size(target)?,
        secs,
    })
}

/// Runs `image` with `port` published and GETs each path once it answers.
fn get_all(image: &str, port: u16, paths: &[&str]) -> Result<Vec<(u16, String)>> {
    let id = docker(["run", "-d", "-p", &format!("127.0.0.1::{port}"), image])?;
    let id = id.trim().to_string();
    let result = (|| {
        let host_port: u16 = docker(["port", &id, &port.to_string()])?
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .context("no published port")?;
        // The app is up once / answers.
        let (status, body) = http_get(host_port, "/", Duration::from_secs(60))?;
        ensure!(status == 200, "GET / on {image}: {status} {body}");
        paths
            .iter()
            .map(|p| http_get(host_port, p, Duration::from_secs(20)))
            .collect()
    })();
    let logs = docker(["logs", &id]).unwrap_or_default();
    let _ = docker(["rm", "-f", &id]);
    result.with_context(|| format!("container logs: {logs}"))
}

fn kept_reason<'a>(report: &'a Value, path: &str) -> Option<&'a Value> {
    report["kept"]
        .as_array()?
        .iter()
        .find(|k| k["path"] == path)
        .map(|k| &k["reasons"])
}

fn ecosystem<'a>(report: &'a Value, name: &str) -> Result<&'a Value> {
    report["coverage"]["ecosystems"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["ecosystem"] == name)
        .with_context(|| format!("no {name} coverage: {}", report["coverage"]))
}

fn untouched_app_modules(report: &Value) -> Vec<String> {
    report["coverage"]["app"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["untouched_modules"].as_array().into_iter().flatten())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

/// The lazy routes work on the original and the package-granular slim
/// image, fail with 500 on the file-granular one; both reports name the
/// lazily loaded app module as never touched.
fn lazy_code(image: LangImage) -> Result<()> {
    let d = Daemon::start(&format!("gran-{}", image.name()))?;
    let tag = image.ensure()?;
    let lazy: Vec<&str> = image.lazy_routes().iter().map(|(p, _)| *p).collect();

    let check_ok = |target: &str| -> Result<()> {
        let mut paths: Vec<&str> = image.crawled_paths().to_vec();
        paths.extend(&lazy);
        let got = get_all(target, image.port(), &paths)?;
        for (path, (status, body)) in paths.iter().zip(&got) {
            ensure!(*status == 200, "{target} GET {path}: {status} {body}");
        }
        for ((path, want), (_, body)) in image
            .lazy_routes()
            .iter()
            .zip(&got[paths.len() - lazy.len()..])
        {
            ensure!(
                body.contains(want),
                "{target} GET {path}: {body:?} lacks {want:?}"
            );
        }
        Ok(())
    };
    check_ok(tag)?;

    // Default: package granularity.
    let target = format!("slimd-e2e/{}:slim", image.name());
    let pkg = build(&d, tag, &target, &[])?;
    check_ok(&target)?;
    let r = &pkg.report;
    ensure!(
        r["coverage"]["granularity"] == "package",
        "{}",
        r["coverage"]
    );
    let module = image.lazy_app_module();
    ensure!(
        untouched_app_modules(r).iter().any(|m| m == module),
        "coverage does not name {module}: {}",
        r["coverage"]["app"]
    );
    let reasons = kept_reason(r, module).with_context(|| format!("{module} not kept"))?;
    ensure!(reasons[0]["rule"] == "app_source", "{module}: {reasons}");
    let (eco, deps) = image.dependency_only();
    let e = ecosystem(r, eco)?;
    let dep_only: Vec<&str> = e["dependency_only"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for dep in deps {
        ensure!(
            dep_only.contains(dep),
            "{dep} not reported as kept only by dependency closure: {dep_only:?}"
        );
    }
    println!(
        "{}: {} {} packages present, {} used, {} kept only as dependencies: {dep_only:?}",
        image.name(),
        e["packages_present"],
        eco,
        e["used"].as_array().map_or(0, |u| u.len()),
        dep_only.len()
    );

    // File granularity: the lazy routes break.
    let file_target = format!("slimd-e2e/{}:slim-file", image.name());
    let file = build(&d, tag, &file_target, &["--granularity", "file"])?;
    let got = get_all(&file_target, image.port(), &lazy)?;
    for (path, (status, body)) in lazy.iter().zip(&got) {
        ensure!(
            *status == 500,
            "{file_target} GET {path}: expected 500, got {status} {body}"
        );
    }
    let r = &file.report;
    ensure!(r["coverage"]["granularity"] == "file");
    ensure!(
        untouched_app_modules(r).iter().any(|m| m == module),
        "file coverage does not name {module}"
    );
    ensure!(
        kept_reason(r, module).is_none(),
        "{module} kept at file granularity"
    );
    println!(
        "{}: original {} B, package {} B ({:.1} s), file {} B ({:.1} s)",
        image.name(),
        image_size(tag)?,
        pkg.slim_bytes,
        pkg.secs,
        file.slim_bytes,
        file.secs
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn flask_lazy_imports_need_package_granularity() -> Result<()> {
    lazy_code(LangImage::FlaskApp)
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn node_lazy_requires_need_package_granularity() -> Result<()> {
    lazy_code(LangImage::NodeApp)
}

/// A page only a script asks for: the static site's document root is a
/// content root, kept whole by a `package` build and served by its slim
/// image; a `file` build keeps only what the crawl read. Unused files
/// outside the document root go either way.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn static_site_keeps_pages_the_crawl_never_reached() -> Result<()> {
    let image = TestImage::StaticServer;
    let d = Daemon::start("gran-content")?;
    let tag = image.ensure()?;
    let port = image.port().context("no port")?;
    let unreached = ["/pages/from-script.html", "/unused/README.txt"];
    let never_kept = ["/srv/drafts/draft.html", "/opt/unused/blob.bin"];
    let kept_paths = |r: &Value| -> Vec<String> {
        r["kept"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["path"].as_str().map(String::from))
            .collect()
    };
    let www = |r: &Value| -> Result<Value> {
        r["content_roots"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["root"] == "/srv/www")
            .cloned()
            .with_context(|| format!("no content root /srv/www: {}", r["content_roots"]))
    };

    let target = "slimd-e2e/static-server:content";
    let pkg = build(&d, tag, target, &[])?;
    let crawled: Vec<&str> = pkg.report["probe"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["request"]["path"].as_str())
        .collect();
    for page in unreached {
        ensure!(
            !crawled.contains(&page),
            "the crawl reached {page}: {crawled:?}"
        );
    }
    for (page, (status, body)) in unreached.iter().zip(get_all(target, port, &unreached)?) {
        ensure!(status == 200, "{target} GET {page}: {status} {body}");
    }
    let r = &pkg.report;
    let reasons = kept_reason(r, "/srv/www/pages/from-script.html")
        .context("/srv/www/pages/from-script.html not kept")?;
    ensure!(
        reasons[0]["rule"] == "content_root" && reasons[0]["root"] == "/srv/www",
        "{reasons}"
    );
    let root = www(r)?;
    ensure!(
        root["kept_whole"] == true && root["added_files"].as_u64() >= Some(2),
        "{root}"
    );
    let kept = kept_paths(r);
    for p in never_kept {
        ensure!(!kept.iter().any(|k| k == p), "{p} kept by a package build");
    }
    println!(
        "static-server: content root /srv/www added {} files ({} bytes) the crawl never read",
        root["added_files"], root["added_bytes"]
    );

    let file_target = "slimd-e2e/static-server:content-file";
    let file = build(&d, tag, file_target, &["--granularity", "file"])?;
    for (page, (status, body)) in unreached
        .iter()
        .zip(get_all(file_target, port, &unreached)?)
    {
        ensure!(status == 404, "{file_target} GET {page}: {status} {body}");
    }
    let r = &file.report;
    ensure!(kept_reason(r, "/srv/www/pages/from-script.html").is_none());
    ensure!(www(r)?["kept_whole"] == false, "{}", r["content_roots"]);
    let kept = kept_paths(r);
    for p in never_kept {
        ensure!(!kept.iter().any(|k| k == p), "{p} kept by a file build");
    }
    ensure!(file.slim_bytes < pkg.slim_bytes);
    for t in [target, file_target] {
        let _ = docker(["rmi", t]);
    }
    d.assert_clean()
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// Slim sizes with `file` and `package` granularity for every test image
/// (printed as a Markdown table; run with --nocapture to see it).
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn granularity_sizes_table() -> Result<()> {
    let d = Daemon::start("gran-sizes")?;
    let mut images: Vec<(String, &str)> = Vec::new();
    for i in TestImage::ALL {
        images.push((i.name().to_string(), i.ensure()?));
    }
    for i in LangImage::ALL {
        images.push((i.name().to_string(), i.ensure()?));
    }
    let mut rows = vec![
        "| image | original | slim, file | slim, package | package - file | build file / package |"
            .to_string(),
        "|---|---:|---:|---:|---:|---:|".to_string(),
    ];
    for (name, tag) in &images {
        let orig = image_size(tag)?;
        let file = build(
            &d,
            tag,
            &format!("slimd-e2e/{name}:sizes-file"),
            &["--granularity", "file"],
        )?;
        let pkg = build(&d, tag, &format!("slimd-e2e/{name}:sizes-package"), &[])?;
        ensure!(
            pkg.slim_bytes >= file.slim_bytes,
            "{name}: package ({}) smaller than file ({})",
            pkg.slim_bytes,
            file.slim_bytes
        );
        rows.push(format!(
            "| {name} | {} | {} | {} | +{:.1} kB | {:.1} s / {:.1} s |",
            mb(orig),
            mb(file.slim_bytes),
            mb(pkg.slim_bytes),
            (pkg.slim_bytes - file.slim_bytes) as f64 / 1e3,
            file.secs,
            pkg.secs
        ));
        for t in ["sizes-file", "sizes-package"] {
            let _ = docker(["rmi", &format!("slimd-e2e/{name}:{t}")]);
        }
    }
    println!("\n{}\n", rows.join("\n"));
    d.assert_clean()
}
