//! slimd on rootful Podman (Debian 12's 4.3) through its Docker-compatible
//! API: `--engine podman`, `slim status` naming it, the build suite's
//! static-server and Python fixtures built, slimmed, verified and run under
//! Podman.
//! Podman runs with the cgroupfs manager (this machine has no systemd as
//! PID 1, so the systemd manager cannot run here; slimd refuses it with the
//! way to switch, see the engine's unit tests).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::TestImage;
use crate::daemon::Daemon;
use crate::podman::{load_into_podman, podman, podman_image_size};

/// Builds `image` under Podman and checks verify, the size drop, that the
/// slim image is in Podman's store and that nothing is left behind.
fn build_under_podman(d: &Daemon, image: TestImage) -> Result<(u64, u64, String)> {
    let tag = image.ensure()?;
    load_into_podman(tag)?;
    let target = format!("slimd-e2e/podman-{}:slim", image.name());
    let (s, secs) = d.build_verified(&[tag, "--tag", &target, "--force"])?;
    let orig = podman_image_size(tag)?;
    let slim =
        podman_image_size(&target).with_context(|| format!("{target} is not in Podman's store"))?;
    ensure!(
        slim < orig,
        "{target} ({slim} B) is not smaller than {tag} ({orig} B)"
    );
    println!(
        "podman {}: {orig} -> {slim} bytes ({:.1}% smaller) in {secs:.1} s, verify: {}",
        image.name(),
        100.0 * (1.0 - slim as f64 / orig as f64),
        s["verify"]
    );
    d.assert_clean()?;
    Ok((orig, slim, target))
}

/// Runs `target` with Podman, publishing its port on 127.0.0.1, and checks
/// every page the fixture must serve.
fn serves_under_podman(image: TestImage, target: &str) -> Result<()> {
    let port = image.port().context("no port")?;
    let id = podman([
        "run",
        "-d",
        "--label",
        "slimd-test.run=podman",
        "-p",
        &format!("127.0.0.1::{port}"),
        target,
    ])?;
    let result = (|| {
        let host_port: u16 = podman(["port", &id, &format!("{port}/tcp")])?
            .lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .context("no published port")?;
        for path in image.expected_ok_paths() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match crate::http_get(host_port, path, Duration::from_secs(5)) {
                    Ok((200, _)) => break,
                    r if Instant::now() > deadline => {
                        bail!("GET {path} on {target} under podman: {r:?}")
                    }
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Ok(())
    })();
    let _ = podman(["rm", "-f", &id]);
    result
}

#[test]
#[ignore = "needs root, Podman and Docker: cargo xtask test"]
fn status_names_podman() -> Result<()> {
    let d = Daemon::start_podman("podman-status", &[])?;
    let out = d.slim(&["status"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("engine"))
        .context("no engine line")?;
    ensure!(
        line.contains("Podman 4.") && line.contains("cgroup driver cgroupfs"),
        "slim status does not name Podman: {line}"
    );
    let json = d.slim(&["--json", "status"])?;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    ensure!(v["engine"]["engine"] == "podman", "{}", v["engine"]);
    println!("{line}");
    Ok(())
}

#[test]
#[ignore = "needs root, Podman and Docker: cargo xtask test"]
fn static_server_under_podman() -> Result<()> {
    let d = Daemon::start_podman("podman-static", &[])?;
    let (_, _, target) = build_under_podman(&d, TestImage::StaticServer)?;
    serves_under_podman(TestImage::StaticServer, &target)
}

#[test]
#[ignore = "needs root, Podman and Docker: cargo xtask test"]
fn python_app_under_podman() -> Result<()> {
    let d = Daemon::start_podman("podman-python", &[])?;
    let (orig, slim, target) = build_under_podman(&d, TestImage::PythonApp)?;
    let reduction = 100.0 * (1.0 - slim as f64 / orig as f64);
    ensure!(
        reduction >= 80.0,
        "only {reduction:.1}% smaller under podman ({orig} -> {slim})"
    );
    serves_under_podman(TestImage::PythonApp, &target)
}
