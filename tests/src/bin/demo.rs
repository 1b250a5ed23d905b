//! The demo behind `cargo xtask demo`: builds a Debian-based Python web
//! image locally, starts a daemon, minifies the image with `slim build`,
//! then runs the slim image and asks it for its pages.

use std::{
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use slimd_tests::{TestImage, docker, http_get, image_size};

const TARGET: &str = "slimd-demo/python-app:slim";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bin(name: &str) -> PathBuf {
    std::env::var_os("SLIMD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
        .join(name)
}

/// A daemon on a private socket, stopped (SIGTERM) when dropped.
struct Daemon {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn run() -> Result<()> {
    slimd_tests::ensure_docker()?;
    println!(
        "== building the demo image (Debian bookworm + Python web app; the first time runs debootstrap, ~2 min)"
    );
    let image = TestImage::PythonApp.ensure()?;
    println!("   {image}: {:.1} MB", image_size(image)? as f64 / 1e6);

    let dir = std::env::temp_dir().join("slimd-demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("slimd.sock");
    let log = std::fs::File::create(dir.join("slimd.log"))?;
    println!(
        "== starting slimd (log: {})",
        dir.join("slimd.log").display()
    );
    let child = Command::new(bin("slimd"))
        .args(["serve", "--cgroup-root", "slimd-demo"])
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start slimd (built by `cargo xtask build`?)")?;
    let daemon = Daemon { child, socket };
    let slim = || {
        let mut c = Command::new(bin("slim"));
        c.arg("--socket").arg(&daemon.socket);
        c
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !slim()
        .arg("status")
        .stdout(Stdio::null())
        .status()?
        .success()
    {
        if Instant::now() > deadline {
            bail!(
                "slimd did not come up; see {}",
                dir.join("slimd.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    slim().arg("status").status()?;

    println!("\n== slim build {image} --tag {TARGET}");
    let status = slim()
        .args([
            "build",
            image,
            "--tag",
            TARGET,
            "--force",
            "--verify-seccomp",
        ])
        .status()?;
    if !status.success() {
        bail!("slim build failed ({status})");
    }

    println!("\n== running the slim image");
    let port = TestImage::PythonApp.port().unwrap_or(8000);
    let id = docker(["run", "-d", "-p", &format!("127.0.0.1::{port}"), TARGET])?;
    let id = id.trim().to_string();
    let result = (|| -> Result<()> {
        let mapped = docker(["port", &id, &port.to_string()])?;
        let host_port: u16 = mapped
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .context("no published port")?;
        for path in TestImage::PythonApp.expected_ok_paths() {
            let (status, body) = http_get(host_port, path, Duration::from_secs(20))?;
            let first = body
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(70)
                .collect::<String>();
            println!("   GET {path:<24} -> {status}  {first}");
            if status != 200 {
                bail!("{path} answered {status} on the slim image");
            }
        }
        Ok(())
    })();
    let _ = docker(["rm", "-f", &id]);
    result?;
    let (orig, slim_size) = (image_size(image)?, image_size(TARGET)?);
    println!(
        "\n== {image} {:.1} MB -> {TARGET} {:.1} MB ({:.1}% smaller)",
        orig as f64 / 1e6,
        slim_size as f64 / 1e6,
        100.0 * (1.0 - slim_size as f64 / orig as f64)
    );
    drop(daemon);
    Ok(())
}
