//! End-to-end tests of `slim build` through a real daemon: real kernel, real
//! Docker engine, as root (run by `cargo xtask test`).

use std::time::{Duration, Instant};

use crate::daemon::{Daemon, failed_with, session_id, tail};
use crate::{TestImage, docker, image_size};
use anyhow::{Context, Result, ensure};

/// Builds `image` with `args`; checks success, verify and the size drop;
/// returns (original, slim) sizes and the summary.
fn build_ok(d: &Daemon, image: TestImage, extra: &[&str]) -> Result<(u64, u64, serde_json::Value)> {
    let tag = image.ensure()?;
    let target = format!("slimd-e2e/{}:slim", image.name());
    let mut args = vec![tag, "--tag", &target, "--force", "--verify-seccomp"];
    args.extend_from_slice(extra);
    let (s, secs) = d.build_verified(&args)?;
    ensure!(
        s["verify_seccomp"]["passed"] == true,
        "the slim image fails its probes under the generated seccomp profile: {s}"
    );
    let orig = image_size(tag)?;
    let slim = image_size(&target)?;
    ensure!(
        slim < orig,
        "{target} ({slim} B) is not smaller than {tag} ({orig} B)"
    );
    println!(
        "{}: {} -> {} bytes ({:.1}% smaller) in {secs:.1} s; seccomp profile allows {} syscalls, probes pass under it",
        image.name(),
        orig,
        slim,
        100.0 * (1.0 - slim as f64 / orig as f64),
        s["seccomp_allowed"]
    );
    d.assert_clean()?;
    Ok((orig, slim, s))
}

/// Runs the slim image once more by hand and checks it serves its pages.
fn serves(image: TestImage, target: &str) -> Result<()> {
    let port = image.port().context("no port")?;
    let id = docker(["run", "-d", "-p", &format!("127.0.0.1::{port}"), target])?;
    let id = id.trim().to_string();
    let result = (|| {
        let host_port: u16 = docker(["port", &id, &port.to_string()])?
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .context("no published port")?;
        for path in image.expected_ok_paths() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match crate::http_get(host_port, path, Duration::from_secs(5)) {
                    Ok((200, _)) => break,
                    r if Instant::now() > deadline => {
                        anyhow::bail!("GET {path} on {target}: {r:?}")
                    }
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Ok(())
    })();
    let _ = docker(["rm", "-f", &id]);
    result
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn static_binary_server() -> Result<()> {
    let d = Daemon::start("static")?;
    build_ok(&d, TestImage::StaticServer, &[])?;
    serves(TestImage::StaticServer, "slimd-e2e/static-server:slim")
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn dynamic_c_program_drops_unused_libraries() -> Result<()> {
    let d = Daemon::start("dynamic")?;
    let (_, _, s) = build_ok(&d, TestImage::DynamicC, &[])?;
    serves(TestImage::DynamicC, "slimd-e2e/dynamic-c:slim")?;
    let report = d.slim(&["--json", "report", s["id"].as_str().unwrap_or("")])?;
    let r: serde_json::Value = serde_json::from_slice(&report.stdout)?;
    let kept: Vec<&str> = r["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["path"].as_str())
        .collect();
    ensure!(
        kept.iter().any(|p| p.contains("libz.so")),
        "libz not kept: {kept:?}"
    );
    ensure!(
        kept.iter().any(|p| p.contains("libm.so")),
        "libm not kept: {kept:?}"
    );
    // The fixture ships unused libraries: none of them may survive.
    for unused in [
        "libssl",
        "libcrypto",
        "libsqlite3",
        "libxml2",
        "libstdc++",
        "libbz2",
        "liblzma",
    ] {
        ensure!(
            !kept.iter().any(|p| p.contains(unused)),
            "unused {unused} kept: {kept:?}"
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn python_app_shrinks_by_at_least_80_percent() -> Result<()> {
    let d = Daemon::start("python")?;
    let (orig, slim, _) = build_ok(&d, TestImage::PythonApp, &[])?;
    let reduction = 100.0 * (1.0 - slim as f64 / orig as f64);
    ensure!(
        reduction >= 80.0,
        "only {reduction:.1}% smaller ({orig} -> {slim})"
    );
    serves(TestImage::PythonApp, "slimd-e2e/python-app:slim")
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn shell_script_entrypoint() -> Result<()> {
    let d = Daemon::start("shell")?;
    build_ok(&d, TestImage::ShellEntrypoint, &[])?;
    serves(
        TestImage::ShellEntrypoint,
        "slimd-e2e/shell-entrypoint:slim",
    )
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn one_shot_cli() -> Result<()> {
    let d = Daemon::start("oneshot")?;
    build_ok(&d, TestImage::CliOneshot, &[])?;
    let out = docker(["run", "--rm", "slimd-e2e/cli-oneshot:slim"])?;
    if let Some(want) = TestImage::CliOneshot.expected_stdout() {
        ensure!(
            out.contains(want.trim()),
            "slim output {out:?} lacks {want:?}"
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn missing_image_is_refused_clearly() -> Result<()> {
    let d = Daemon::start("missing")?;
    let out = d.slim(&["build", "slimd-e2e/does-not-exist:nope"])?;
    let err = failed_with(&out, 3)?;
    ensure!(
        err.contains("not found") && err.contains("does not pull"),
        "unclear: {err}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn container_that_fails_at_once() -> Result<()> {
    let d = Daemon::start("failing")?;
    let tag = TestImage::ShellEntrypoint.ensure()?;
    let out = d.slim(&[
        "build",
        tag,
        "--tag",
        "slimd-e2e/failing:slim",
        "--force",
        "--entrypoint",
        "/bin/sh",
        "--cmd",
        "-c 'echo broken config >&2; exit 3'",
    ])?;
    let err = failed_with(&out, 5)?;
    ensure!(
        err.contains("exited with code 3") && err.contains("broken config"),
        "unclear: {err}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn app_that_never_listens_times_out_clearly() -> Result<()> {
    let d = Daemon::start("silent")?;
    let tag = TestImage::ShellEntrypoint.ensure()?;
    let t = Instant::now();
    let out = d.slim(&[
        "build",
        tag,
        "--tag",
        "slimd-e2e/silent:slim",
        "--force",
        "--entrypoint",
        "/bin/sleep",
        "--cmd",
        "600",
        "--expose",
        "9999",
        "--ready-timeout",
        "5",
    ])?;
    let err = failed_with(&out, 5)?;
    ensure!(
        err.contains("9999"),
        "the message does not name the port: {err}"
    );
    ensure!(
        t.elapsed() < Duration::from_secs(120),
        "took {:?}",
        t.elapsed()
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn two_builds_at_once() -> Result<()> {
    let d = Daemon::start("parallel")?;
    let a = TestImage::StaticServer.ensure()?;
    let b = TestImage::CliOneshot.ensure()?;
    let ca = d.slim_spawn(&[
        "--json",
        "build",
        a,
        "--tag",
        "slimd-e2e/par-a:slim",
        "--force",
    ])?;
    let cb = d.slim_spawn(&[
        "--json",
        "build",
        b,
        "--tag",
        "slimd-e2e/par-b:slim",
        "--force",
    ])?;
    let (oa, ob) = (ca.wait_with_output()?, cb.wait_with_output()?);
    for (o, name) in [(oa, a), (ob, b)] {
        ensure!(
            o.status.success(),
            "parallel build of {name} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let sessions = d.slim(&["--json", "sessions"])?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&sessions.stdout)?;
    ensure!(
        list.iter().filter(|s| s["state"] == "succeeded").count() >= 2,
        "{list:?}"
    );
    d.assert_clean()
}

/// Waits until the session is in its probe phase (holding a container).
fn wait_for_container(d: &Daemon) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !d.containers()?.is_empty() && !d.cgroups().is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!(
        "the session never started its container; log: {}",
        tail(&d.log())
    )
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn daemon_killed_mid_session_cleans_up_on_restart() -> Result<()> {
    let mut d = Daemon::start("crash")?;
    let tag = TestImage::StaticServer.ensure()?;
    let mut client = d.slim_spawn(&[
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/crash:slim",
        "--force",
        "--continue-after",
        "signal",
        "--detach",
    ])?;
    wait_for_container(&d)?;
    d.kill_hard();
    let _ = client.kill();
    let out = client.wait_with_output()?;
    let id = session_id(
        &String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect::<Vec<_>>(),
    );
    ensure!(
        !d.containers()?.is_empty(),
        "the crash left nothing to clean? (test is wrong)"
    );
    ensure!(
        !d.cgroups().is_empty(),
        "no cgroup left by the crash? (test is wrong)"
    );
    d.spawn()?;
    d.assert_clean()?;
    let sessions = d.slim(&["--json", "sessions"])?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&sessions.stdout)?;
    let s = list
        .iter()
        .find(|s| s["id"] == id.as_str())
        .with_context(|| format!("session {id} not listed: {list:?}"))?;
    ensure!(s["state"] == "interrupted", "state after the crash: {s}");
    Ok(())
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn client_that_disconnects_cancels_its_session() -> Result<()> {
    let d = Daemon::start("disconnect")?;
    let tag = TestImage::StaticServer.ensure()?;
    let mut client = d.slim_spawn(&[
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/gone:slim",
        "--force",
        "--continue-after",
        "signal",
    ])?;
    wait_for_container(&d)?;
    client.kill()?;
    client.wait()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if d.assert_clean().is_ok() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not cleaned up after the client left: {:?}",
            d.assert_clean()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let sessions = d.slim(&["--json", "sessions"])?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&sessions.stdout)?;
    ensure!(list.iter().any(|s| s["state"] == "cancelled"), "{list:?}");
    ensure!(
        docker(["image", "inspect", "slimd-e2e/gone:slim"]).is_err(),
        "a cancelled build must not produce an image"
    );
    Ok(())
}

/// Issue 5: the generated seccomp profile runs the slim image through the
/// same probes, and refuses a syscall the app never made.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn seccomp_profile_runs_the_app_and_refuses_the_rest() -> Result<()> {
    let d = Daemon::start("seccomp")?;
    let (_, _, s) = build_ok(&d, TestImage::ShellEntrypoint, &[])?;
    ensure!(
        s["verify_seccomp"]["passed"] == true,
        "verify under seccomp: {s}"
    );
    let profile = s["artifacts"]["shell-entrypoint-seccomp.json"]
        .as_str()
        .with_context(|| format!("no seccomp artifact: {}", s["artifacts"]))?
        .to_string();
    println!(
        "shell-entrypoint: {} syscalls allowed",
        s["seccomp_allowed"]
    );
    let target = "slimd-e2e/shell-entrypoint:slim";
    // The app never makes a fifo: mknodat is not in its profile.
    let probe = |opts: &[&str]| -> Result<(bool, String)> {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(opts);
        args.push(target);
        let id = docker(args)?.trim().to_string();
        std::thread::sleep(Duration::from_millis(500));
        let out = std::process::Command::new("docker")
            .args(["exec", &id, "busybox", "mkfifo", "/tmp/slimd-fifo"])
            .output()?;
        let _ = docker(["rm", "-f", &id]);
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (ok_plain, err_plain) = probe(&[])?;
    ensure!(
        ok_plain,
        "control: mkfifo fails even without the profile: {err_plain}"
    );
    let opt = format!("seccomp={profile}");
    let (ok_profiled, err) = probe(&["--security-opt", &opt])?;
    ensure!(
        !ok_profiled,
        "mkfifo was allowed under the generated profile"
    );
    ensure!(
        err.contains("Operation not permitted"),
        "unexpected error: {err}"
    );
    d.assert_clean()
}

/// `slim xray` through the daemon (engine export) and locally (a file).
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn xray_through_the_daemon_and_from_a_file() -> Result<()> {
    let d = Daemon::start("xray")?;
    let image = TestImage::PythonApp.ensure()?;
    let out = d.slim(&["--json", "xray", image])?;
    ensure!(
        out.status.success(),
        "xray failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages: Vec<&str> = r["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in ["python3", "libc6", "dpkg"] {
        ensure!(
            packages.contains(&want),
            "{want} not among {} packages",
            packages.len()
        );
    }
    ensure!(
        r["shells"].as_array().is_some_and(|s| !s.is_empty()),
        "no shell found"
    );
    // The human form names the entrypoint and the packages.
    let text = d.slim(&["xray", image])?;
    let text = String::from_utf8_lossy(&text.stdout);
    ensure!(text.contains("python3"), "{text}");

    // The same from a `docker save` file, with no daemon involved.
    let archive = d.dir.join("save.tar");
    docker([
        "save",
        "-o",
        archive.to_str().unwrap(),
        TestImage::CliOneshot.ensure()?,
    ])?;
    let out = std::process::Command::new(crate::daemon::bin("slim"))
        .args(["--socket", "/nonexistent.sock", "--json", "xray", "--file"])
        .arg(&archive)
        .output()?;
    ensure!(
        out.status.success(),
        "local xray failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(r["files"].as_u64().unwrap_or(0) > 0, "{r}");

    // A missing image is a clear error, exit code 3.
    let out = d.slim(&["xray", "slimd-e2e/no-such-image:1"])?;
    failed_with(&out, 3)?;
    d.assert_clean()
}

/// The target tag is never overwritten without --force, and the original
/// image is never touched.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn existing_tag_needs_force() -> Result<()> {
    let d = Daemon::start("tagexists")?;
    let image = TestImage::CliOneshot.ensure()?;
    let before = docker(["image", "inspect", "-f", "{{.Id}}", image])?;
    let target = "slimd-e2e/tagexists:slim";
    // The target name is taken by some other image.
    docker(["tag", TestImage::ShellEntrypoint.ensure()?, target])?;
    let out = d.slim(&["build", image, "--tag", target])?;
    let err = failed_with(&out, 4)?;
    ensure!(
        err.contains("already exists") && err.contains("--force"),
        "unclear: {err}"
    );
    let out = d.slim(&["build", image, "--tag", image])?;
    failed_with(&out, 2).context("building onto the original must be refused")?;
    let out = d.slim(&["build", image, "--tag", target, "--force"])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = docker(["image", "inspect", "-f", "{{.Id}}", image])?;
    ensure!(before == after, "the original image changed");
    d.assert_clean()
}

/// SIGTERM cancels running sessions and removes what they made.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn sigterm_cancels_sessions_and_cleans_up() -> Result<()> {
    let mut d = Daemon::start("sigterm")?;
    let tag = TestImage::StaticServer.ensure()?;
    let client = d.slim_spawn(&[
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/sigterm:slim",
        "--force",
        "--continue-after",
        "signal",
    ])?;
    wait_for_container(&d)?;
    d.stop()?;
    let out = client.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("\"cancelled\""),
        "the client was not told: {text}"
    );
    d.assert_clean()
}

/// Only root and the slimd group may use the socket.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn other_users_are_refused() -> Result<()> {
    let d = Daemon::start("perms")?;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::daemon::bin("slim"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("status")
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "an unprivileged user used the API");
    ensure!(
        err.contains("Permission denied") || err.contains("not allowed"),
        "{err}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&d.socket)?.permissions());
    ensure!(mode & 0o777 == 0o660, "socket mode {mode:o}");
    // Past the file mode, the daemon's peer-credential check says no.
    std::fs::set_permissions(
        &d.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )?;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::daemon::bin("slim"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("status")
        .output()?;
    let err = failed_with(&out, 8)?;
    ensure!(err.contains("not allowed"), "{err}");
    ensure!(
        d.log()
            .contains("refused API request from a peer outside the slimd group"),
        "the peer check did not log its refusal"
    );
    Ok(())
}

/// `--continue-after signal`: the build waits until the user sends SIGUSR1
/// to `slim` (or presses Enter), then finishes.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn continue_after_signal() -> Result<()> {
    let d = Daemon::start("signal")?;
    let tag = TestImage::StaticServer.ensure()?;
    let client = d.slim_spawn(&[
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/signal:slim",
        "--force",
        "--continue-after",
        "signal",
    ])?;
    wait_for_container(&d)?;
    // Still waiting: nothing has been collected yet.
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        !d.containers()?.is_empty(),
        "the build went on without the signal"
    );
    std::process::Command::new("kill")
        .args(["-USR1", &client.id().to_string()])
        .status()?;
    let out = client.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "build failed after the signal: {text}"
    );
    d.assert_clean()
}

/// The capabilities `deploy/systemd/slimd.service` grants are enough: a
/// daemon whose bounding set is exactly the unit's builds and verifies a
/// server that runs as an unprivileged user (its readiness connect enters
/// the container's network namespace, which must not need CAP_SYS_PTRACE).
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn the_systemd_units_capabilities_are_enough() -> Result<()> {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/slimd.service"),
    )?;
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .context("no CapabilityBoundingSet= in slimd.service")?
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    ensure!(!caps.is_empty(), "empty capability set");
    let bounding = format!("--bounding-set=-all,{}", caps.join(","));
    ensure!(
        which("setpriv"),
        "setpriv is missing: apt-get install util-linux"
    );
    // As the unit does: `slimd prepare` with full privileges first
    // (ExecStartPre=+), then the daemon with only the unit's capabilities.
    ensure!(
        unit.contains("ExecStartPre=+/usr/local/bin/slimd prepare"),
        "the unit no longer prepares the cgroup root"
    );
    let prepared = std::process::Command::new(crate::daemon::bin("slimd"))
        .args(["prepare", "--cgroup-root", "slimd-e2e-caps"])
        .output()?;
    ensure!(
        prepared.status.success(),
        "slimd prepare: {}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let d = Daemon::start_wrapped("caps", &["setpriv", &bounding, "--"], &[])?;
    let status = d.slim(&["status"])?;
    ensure!(
        status.status.success(),
        "status under {bounding}: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    // dynamic-c runs as uid 65534.
    build_ok(&d, TestImage::DynamicC, &[])?;
    Ok(())
}

fn which(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
