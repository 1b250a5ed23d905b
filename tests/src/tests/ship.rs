//! Know what you ship: `slim diff` between fixture images, through the
//! daemon (engine images) and from archives read by the CLI itself.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::daemon::{Daemon, bin, failed_with};
use crate::{TestImage, checked, docker};

/// A child of python-app with known changes: one file added, one mode
/// changed, one file removed, dpkg's version raised in its status file,
/// an env var and a layer added.
const DERIVED: &str = "slimd-e2e/diff-derived:latest";
const DOCKERFILE: &str = "FROM slimd-test/python-app:latest\n\
RUN printf added > /etc/slimd-added && chmod 0600 /etc/debian_version && rm /etc/issue.net \
 && sed -i '/^Package: dpkg$/,/^$/ s/^Version: .*/&+slimd1/' /var/lib/dpkg/status\n\
ENV SLIMD_DIFF=1\n";

fn build_derived(dir: &Path) -> Result<()> {
    TestImage::PythonApp.ensure()?;
    let ctx = dir.join("derived");
    std::fs::create_dir_all(&ctx)?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    checked(
        Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", DERIVED])
            .arg(&ctx),
        Duration::from_secs(180),
    )
    .context("docker build of the derived image")?;
    Ok(())
}

fn json(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn change<'a>(d: &'a Value, path: &str) -> Result<&'a Value> {
    d["files"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["path"] == path)
        .with_context(|| format!("no change at {path}"))
}

/// `slim diff` of an image and its child: exact file, package, config and
/// layer changes; the same image is the same (exit 0); a missing image
/// exits 3; a mix of an engine image and an archive works with no daemon
/// needed for the archive side.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn diff_of_an_image_and_its_child() -> Result<()> {
    let d = Daemon::start("diff")?;
    let base = TestImage::PythonApp.ensure()?;
    build_derived(&d.dir)?;
    let result = (|| -> Result<()> {
        let out = d.slim(&["--json", "diff", base, DERIVED])?;
        failed_with(&out, 1)?;
        let r = json(&out)?;
        ensure!(r["same"] == false, "{r}");
        let added = change(&r, "/etc/slimd-added")?;
        ensure!(
            added["change"] == "added" && added["size_b"] == 5,
            "{added}"
        );
        let removed = change(&r, "/etc/issue.net")?;
        ensure!(removed["change"] == "removed", "{removed}");
        let mode = change(&r, "/etc/debian_version")?;
        ensure!(
            mode["aspects"] == serde_json::json!([{"what": "mode", "a": "0644", "b": "0600"}]),
            "{mode}"
        );
        let status = change(&r, "/var/lib/dpkg/status")?;
        ensure!(status["aspects"][0]["what"] == "content", "{status}");
        // Exactly: dpkg upgraded, nothing else moved.
        let pk = &r["packages"]["changes"];
        ensure!(
            pk.as_array().map(Vec::len) == Some(1)
                && pk[0]["name"] == "dpkg"
                && pk[0]["change"] == "upgraded"
                && pk[0]["version_b"]
                    .as_str()
                    .is_some_and(|v| v.ends_with("+slimd1")),
            "packages: {pk}"
        );
        ensure!(
            r["packages"]["count_a"] == r["packages"]["count_b"]
                && r["packages"]["count_a"].as_u64().unwrap_or(0) > 50,
            "{}",
            r["packages"]
        );
        let cfg = &r["config"];
        ensure!(
            cfg == &serde_json::json!([{"field": "env.SLIMD_DIFF", "b": "1"}]),
            "config: {cfg}"
        );
        let layers_a = r["a"]["layers"].as_array().map(Vec::len).unwrap_or(0);
        ensure!(
            r["layers"]["shared_base"] == layers_a
                && r["b"]["layers"].as_array().map(Vec::len) == Some(layers_a + 1),
            "layers: {}",
            r["layers"]
        );
        let etc = r["files"]["by_top_dir"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["dir"] == "/etc")
            .context("no /etc row")?;
        ensure!(
            etc["added"].as_u64() >= Some(1)
                && etc["removed"].as_u64() >= Some(1)
                && etc["changed"].as_u64() >= Some(1),
            "{etc}"
        );

        // Text: summary first, the paths with --details.
        let out = d.slim(&["diff", base, DERIVED])?;
        failed_with(&out, 1)?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.contains("Packages")
                && text.contains("dpkg 1.21")
                && text.contains("+slimd1")
                && !text.contains("/etc/slimd-added  file"),
            "{text}"
        );
        let out = d.slim(&["diff", "--details", base, DERIVED])?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(text.contains("+ /etc/slimd-added  file 5 B"), "{text}");

        // The same image: exit 0.
        let out = d.slim(&["diff", base, base])?;
        failed_with(&out, 0)?;
        ensure!(String::from_utf8_lossy(&out.stdout).contains("the same"));

        // An archive on one side (read by the CLI), the engine on the other.
        let archive = d.dir.join("derived.tar");
        docker(["save", "-o", archive.to_str().unwrap(), DERIVED])?;
        let out = d.slim(&["--json", "diff", base, "--file", archive.to_str().unwrap()])?;
        failed_with(&out, 1)?;
        let r2 = json(&out)?;
        ensure!(
            r2["files"] == r["files"] && r2["packages"] == r["packages"],
            "archive and engine disagree"
        );
        // Both archives: no daemon at all.
        let base_tar = d.dir.join("base.tar");
        docker(["save", "-o", base_tar.to_str().unwrap(), base])?;
        let out = Command::new(bin("slim"))
            .args(["--socket", "/nonexistent.sock", "--json", "diff", "--file"])
            .arg(&base_tar)
            .arg("--file")
            .arg(&archive)
            .output()?;
        failed_with(&out, 1)?;
        ensure!(json(&out)?["files"] == r["files"]);

        // A missing image: 3; one side only: 2.
        let out = d.slim(&["diff", base, "slimd-e2e/no-such-image:1"])?;
        failed_with(&out, 3)?;
        let out = d.slim(&["diff", base])?;
        failed_with(&out, 2)?;
        Ok(())
    })();
    let _ = docker(["rmi", "-f", DERIVED]);
    result?;
    d.assert_clean()
}

/// The Debian packages of an image as its own dpkg sees them:
/// `dpkg-query -W` run inside it (the image's entrypoint bypassed).
fn dpkg_query(image: &str) -> Result<std::collections::BTreeSet<(String, String)>> {
    dpkg_query_with(image, &[], &[])
}

/// `dpkg-query -W` run inside `image` with extra `docker run` arguments
/// and dpkg options (e.g. another database through `--admindir`).
fn dpkg_query_with(
    image: &str,
    run_args: &[&str],
    dpkg_args: &[&str],
) -> Result<std::collections::BTreeSet<(String, String)>> {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(run_args);
    args.extend_from_slice(&["--entrypoint", "dpkg-query", image]);
    args.extend_from_slice(dpkg_args);
    args.extend_from_slice(&["-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n"]);
    let out = docker(args)?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (p, v, st) = (w.next()?, w.next()?, w.next()?);
            (st == "installed").then(|| (p.to_string(), v.to_string()))
        })
        .collect())
}

/// The (name, version) of every Debian package a CycloneDX SBOM lists.
fn cdx_debian(doc: &Value) -> std::collections::BTreeSet<(String, String)> {
    doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:deb/"))
        })
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn prop<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
}

/// `slim sbom` of python-app in both formats: CycloneDX valid against the
/// official schema, its Debian packages exactly `dpkg-query -W` inside the
/// image, SPDX 2.3 with the same packages and purls; `slim build` writes
/// both SBOMs of the slim image, listing the packages that still have files
/// with kept/total counts.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn sboms_of_an_image_and_its_slim_build() -> Result<()> {
    let d = Daemon::start("sbom")?;
    let image = TestImage::PythonApp.ensure()?;
    let out = d.slim(&["sbom", image, "--format", "cyclonedx-json"])?;
    failed_with(&out, 0)?;
    let cdx = json(&out)?;
    crate::sbom_schema::validate_cyclonedx(&cdx)?;
    let want = dpkg_query(image)?;
    let got = cdx_debian(&cdx);
    ensure!(
        got == want,
        "SBOM and dpkg-query differ:\n only in the SBOM: {:?}\n only in dpkg: {:?}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>()
    );
    let python3 = cdx["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "python3.11" || c["name"] == "python3")
        .context("no python3 package")?;
    ensure!(
        python3["purl"].as_str().is_some_and(
            |p| p.starts_with("pkg:deb/debian/python3") && p.contains("distro=debian-12")
        ),
        "{python3}"
    );

    let archive = d.dir.join("python-app.tar");
    docker(["save", "-o", archive.to_str().unwrap(), image])?;
    let spdx_path = d.dir.join("python-app.spdx.json");
    let out = Command::new(bin("slim"))
        .args([
            "--socket",
            "/nonexistent.sock",
            "sbom",
            "--format",
            "spdx-json",
            "--file",
        ])
        .arg(&archive)
        .arg("--output")
        .arg(&spdx_path)
        .output()?;
    failed_with(&out, 0)?;
    crate::sbom_schema::validate_spdx(&spdx_path)?;
    let spdx: Value = serde_json::from_slice(&std::fs::read(&spdx_path)?)?;
    ensure!(spdx["spdxVersion"] == "SPDX-2.3" && spdx["dataLicense"] == "CC0-1.0");
    let spdx_pkgs = spdx["packages"].as_array().map(Vec::len).unwrap_or(0);
    let cdx_pkgs = cdx["components"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(
        spdx_pkgs == cdx_pkgs + 1,
        "SPDX {spdx_pkgs} packages (image included), CycloneDX {cdx_pkgs}"
    );

    // A database with one advisory for every Debian package of the image
    // (fixed in a later version), for `slim build --vuln-db`.
    let all_db = d.dir.join("osv-all");
    std::fs::create_dir_all(&all_db)?;
    for (i, (name, ver)) in want.iter().enumerate() {
        let rec = serde_json::json!({
            "id": format!("ALL-{i:03}"),
            "affected": [{"package": {"ecosystem": "Debian:12", "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("{ver}+zz1")}]}]}],
        });
        std::fs::write(all_db.join(format!("ALL-{i:03}.json")), rec.to_string())?;
    }

    // slim build writes both SBOMs of the slim image next to its report.
    let target = "slimd-e2e/sbom-python-app:slim";
    let (s, _) = d.build_verified(&[
        image,
        "--tag",
        target,
        "--force",
        "--vuln-db",
        all_db.to_str().unwrap(),
    ])?;
    let arts = &s["artifacts"];
    let cdx_file = arts["python-app-sbom.cdx.json"]
        .as_str()
        .with_context(|| format!("no CycloneDX SBOM among {arts}"))?;
    let slim_spdx = arts["python-app-sbom.spdx.json"]
        .as_str()
        .with_context(|| format!("no SPDX SBOM among {arts}"))?;
    crate::sbom_schema::validate_spdx(Path::new(slim_spdx))?;
    let slim_cdx: Value = serde_json::from_slice(&std::fs::read(cdx_file)?)?;
    crate::sbom_schema::validate_cyclonedx(&slim_cdx)?;
    let slim_pkgs = cdx_debian(&slim_cdx);
    ensure!(
        !slim_pkgs.is_empty() && slim_pkgs.is_subset(&want) && slim_pkgs.len() < want.len(),
        "slim SBOM: {} of {} Debian packages",
        slim_pkgs.len(),
        want.len()
    );
    for c in slim_cdx["components"].as_array().into_iter().flatten() {
        let kept: usize = prop(c, "slimd:files:kept").unwrap_or("0").parse()?;
        let total: usize = prop(c, "slimd:files:total").unwrap_or("0").parse()?;
        ensure!(kept >= 1 && kept <= total, "{}: {kept}/{total}", c["name"]);
    }
    ensure!(
        s["packages"]["original"] == cdx_pkgs
            && s["packages"]["slim"]
                == slim_cdx["components"].as_array().map(Vec::len).unwrap_or(0),
        "summary packages {} vs SBOMs",
        s["packages"]
    );
    // The slim image carries a trimmed dpkg database: the original's dpkg,
    // pointed at it, lists exactly the slim SBOM's Debian packages.
    let db_dir = d.dir.join("slim-dpkg");
    let _ = std::fs::remove_dir_all(&db_dir);
    let cid = docker(["create", target])?.trim().to_string();
    let copied = docker([
        "cp",
        &format!("{cid}:/var/lib/dpkg"),
        db_dir.to_str().unwrap(),
    ]);
    let _ = docker(["rm", "-f", &cid]);
    copied.context("the slim image has no /var/lib/dpkg")?;
    let mount = format!("{}:/slim-dpkg:ro", db_dir.display());
    let slim_dpkg = dpkg_query_with(image, &["-v", &mount], &["--admindir=/slim-dpkg"])?;
    ensure!(
        slim_dpkg == slim_pkgs,
        "trimmed dpkg database and slim SBOM differ:\n only in dpkg: {:?}\n only in the SBOM: {:?}",
        slim_dpkg.difference(&slim_pkgs).collect::<Vec<_>>(),
        slim_pkgs.difference(&slim_dpkg).collect::<Vec<_>>()
    );
    let list = std::fs::read_to_string(db_dir.join("info/libc6:amd64.list"))
        .or_else(|_| std::fs::read_to_string(db_dir.join("info/libc6.list")))
        .context("libc6's list is gone from the slim image")?;
    let original_list = docker([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "cat",
        image,
        "/var/lib/dpkg/info/libc6:amd64.list",
    ])?;
    ensure!(
        list.lines().count() < original_list.lines().count()
            && list.lines().all(|l| original_list.lines().any(|o| o == l)),
        "libc6's list is not trimmed: {} of {} lines",
        list.lines().count(),
        original_list.lines().count()
    );
    // The vulnerability delta against a fixture OSV database written here
    // for packages this image has: one the slim image keeps (R) and one it
    // dropped (G).
    // Debian advisories name source packages and match every binary built
    // from one: pick packages that are their own only binary, so that each
    // record matches exactly one package.
    let sources = docker([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "dpkg-query",
        image,
        "-W",
        "-f",
        "${Package} ${source:Package}\\n",
    ])?;
    let sources: Vec<(String, String)> = sources
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, s)| (p.to_string(), s.trim().to_string()))
        .collect();
    let alone = |name: &str| {
        sources.iter().all(|(p, s)| {
            p == name || (s != name && !sources.iter().any(|(q, t)| q == name && t == s))
        })
    };
    let (r_name, r_ver) = slim_pkgs
        .iter()
        .find(|(n, _)| alone(n))
        .context("no kept package that is its source's only binary")?
        .clone();
    let (g_name, g_ver) = want
        .difference(&slim_pkgs)
        .find(|(n, _)| alone(n))
        .context("slimming removed no package that is its source's only binary")?
        .clone();
    let osv = d.dir.join("osv");
    std::fs::create_dir_all(&osv)?;
    let rec = |id: &str, name: &str, events: Value| {
        serde_json::json!({
            "id": id,
            "summary": format!("fixture advisory for {name}"),
            "affected": [{"package": {"ecosystem": "Debian:12", "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
            "database_specific": {"severity": "medium"},
        })
    };
    let fixed_r = format!("{r_ver}+zz1");
    for (id, v) in [
        (
            "TEST-FIXED-R",
            rec(
                "TEST-FIXED-R",
                &r_name,
                serde_json::json!([{"introduced": "0"}, {"fixed": fixed_r}]),
            ),
        ),
        (
            "TEST-LAST-G",
            rec(
                "TEST-LAST-G",
                &g_name,
                serde_json::json!([{"introduced": "0"}, {"last_affected": g_ver}]),
            ),
        ),
        (
            "TEST-UNAFFECTED-R",
            rec(
                "TEST-UNAFFECTED-R",
                &r_name,
                serde_json::json!([{"introduced": "0"}, {"fixed": r_ver}]),
            ),
        ),
        (
            "TEST-UNAFFECTED-G",
            rec(
                "TEST-UNAFFECTED-G",
                &g_name,
                serde_json::json!([{"introduced": "0"}, {"fixed": format!("{g_ver}~")}]),
            ),
        ),
    ] {
        std::fs::write(osv.join(format!("{id}.json")), v.to_string())?;
    }
    let out = d.slim(&[
        "--json",
        "vuln",
        image,
        "--against",
        target,
        "--db",
        osv.to_str().unwrap(),
    ])?;
    failed_with(&out, 0)?;
    let v = json(&out)?;
    let ids = |k: &str| -> Vec<String> {
        v[k].as_array()
            .into_iter()
            .flatten()
            .map(|f| f["id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    ensure!(
        ids("original") == ["TEST-FIXED-R", "TEST-LAST-G"],
        "original: {}",
        v["original"]
    );
    ensure!(ids("slim") == ["TEST-FIXED-R"], "slim: {}", v["slim"]);
    ensure!(
        ids("removed") == ["TEST-LAST-G"],
        "removed: {}",
        v["removed"]
    );
    ensure!(
        v["remaining"][0]["fixed"] == fixed_r.as_str()
            && v["remaining"][0]["kept_files"][0].as_u64() >= Some(1),
        "remaining: {}",
        v["remaining"]
    );
    // Other scanners beside ours: their delta is checked when installed
    // (none is packaged for Debian 12, nor on a registry this machine
    // reaches); otherwise what is checked is that slim refuses, exit 2,
    // naming the missing scanner, rather than pretend.
    for scanner in ["trivy", "grype", "osv-scanner"] {
        let installed = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(scanner).is_file()));
        let out = d.slim(&[
            "--json",
            "vuln",
            image,
            "--against",
            target,
            "--db",
            osv.to_str().unwrap(),
            "--scanner",
            scanner,
        ])?;
        if installed {
            failed_with(&out, 0)?;
            let v = json(&out)?;
            ensure!(v["scanners"][0]["scanner"] == scanner, "{}", v["scanners"]);
            println!(
                "{scanner}: {} -> {}",
                v["scanners"][0]["original"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0),
                v["scanners"][0]["slim"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0)
            );
        } else {
            let err = failed_with(&out, 2)?;
            ensure!(
                err.contains(&format!("{scanner} is not installed")),
                "{err}"
            );
            println!(
                "{scanner} is not installed: slim vuln --scanner {scanner} refused, as it must"
            );
        }
    }

    // The build's advisories agree with `slim vuln --against` on the same
    // database.
    let out = d.slim(&[
        "--json",
        "vuln",
        image,
        "--against",
        target,
        "--db",
        all_db.to_str().unwrap(),
    ])?;
    failed_with(&out, 0)?;
    let all = json(&out)?;
    let n = |k: &str| all[k].as_array().map(Vec::len).unwrap_or(usize::MAX);
    ensure!(
        n("original") >= want.len()
            && s["advisories"]
                == serde_json::json!({"original": n("original"), "slim": n("slim"), "removed": n("removed")}),
        "build summary {} vs slim vuln {}/{}/{}",
        s["advisories"],
        n("original"),
        n("slim"),
        n("removed")
    );
    println!(
        "python-app: advisories with one per Debian package {} -> {}",
        n("original"),
        n("slim")
    );
    println!(
        "python-app: advisories with the fixture database {} -> {}",
        ids("original").len(),
        ids("slim").len()
    );
    println!(
        "python-app: packages {} -> {} (Debian {} -> {})",
        cdx_pkgs,
        s["packages"]["slim"],
        want.len(),
        slim_pkgs.len()
    );
    let _ = docker(["rmi", "-f", target]);
    d.assert_clean()
}
