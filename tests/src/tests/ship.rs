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
            etc["added"] == 1 && etc["removed"] == 1 && etc["changed"].as_u64() >= Some(1),
            "{etc}"
        );

        // Text: summary first, the paths with --details.
        let out = d.slim(&["diff", base, DERIVED])?;
        failed_with(&out, 1)?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.contains("Packages")
                && text.contains("dpkg")
                && !text.contains("/etc/slimd-added"),
            "{text}"
        );
        let out = d.slim(&["diff", "--details", base, DERIVED])?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(text.contains("+ /etc/slimd-added"), "{text}");

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
