//! Watch mode end to end: containers started by someone else (`docker run`)
//! are profiled only when labelled, from their first instruction, and a
//! slim image can be built from the profile later.

use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::{TestImage, docker};
use anyhow::{Context, Result, ensure};

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn labelled_containers_are_profiled_from_their_first_exec() -> Result<()> {
    let d = Daemon::start_with("watch", &["--watch"])?;
    let image = TestImage::ShellEntrypoint.ensure()?;
    // Labelled: its first exec is the shell with this exact command line.
    // `&&`: the shell's exit status depends on every command.
    let labelled = "cat /etc/passwd >/dev/null && ls /usr/share >/dev/null && echo ran";
    docker([
        "run",
        "--rm",
        "--label",
        "slimd.dev/profile=true",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        labelled,
    ])?;
    // Not labelled: must leave no trace anywhere.
    docker([
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "cat /etc/slimd-unlabelled-marker 2>/dev/null; true",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let watch = loop {
        let out = d.slim(&["--json", "sessions"])?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
        let watches: Vec<_> = list.into_iter().filter(|s| s["kind"] == "watch").collect();
        if watches.iter().any(|s| s["state"] == "succeeded") {
            ensure!(
                watches.len() == 1,
                "expected one watch session: {watches:?}"
            );
            break watches[0].clone();
        }
        ensure!(
            Instant::now() < deadline,
            "no finished watch session; log: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let id = watch["id"].as_str().context("no id")?;
    ensure!(
        watch["image"] == image,
        "image named {} not {image}",
        watch["image"]
    );
    let out = d.slim(&["--json", "report", id])?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // The app's first exec comes first: runc re-executing itself from a
    // memfd (seen when the kernel tagged the cgroup before it) is the
    // runtime's, and the process model leaves it out.
    let first = &report["execs"][0];
    ensure!(
        first["path"] == "/bin/sh"
            && first["argv"] == serde_json::json!(["/bin/sh", "-c", labelled]),
        "the first exec is not the entrypoint: {first}"
    );
    let text = serde_json::to_string(&report)?;
    ensure!(
        !text.contains("slimd-unlabelled-marker"),
        "the unlabelled container was traced"
    );
    ensure!(
        report["kept"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["path"] == "/etc/passwd"),
        "/etc/passwd not in the profile"
    );
    ensure!(
        report["artifacts"]
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.ends_with("-seccomp.json"))),
        "no seccomp profile: {}",
        report["artifacts"]
    );

    // And a slim image from that profile, without running the app again:
    // built, but nothing was probed, so it is unverified (exit 7), loudly.
    let out = d.slim(&[
        "build",
        "--from-profile",
        id,
        "--tag",
        "slimd-e2e/watched:slim",
        "--force",
    ])?;
    let err = crate::daemon::failed_with(&out, 7)?;
    let said = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    ensure!(
        said.contains("UNVERIFIED") && said.contains("no probe results to compare"),
        "build --from-profile does not say it is unverified: {said}"
    );
    let ran = docker([
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        "slimd-e2e/watched:slim",
        "-c",
        labelled,
    ])?;
    ensure!(
        ran == "ran",
        "the slim image ran the profiled command: {ran:?}"
    );
    d.assert_clean()
}
