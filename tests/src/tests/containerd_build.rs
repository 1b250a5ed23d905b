//! `slim build` on containerd (`slimd serve --engine containerd`), as on a
//! node without Docker: a private containerd (Debian's 1.6, CRI off) holds
//! a fixture imported (and unpacked) with `ctr` into `k8s.io`; the daemon
//! runs the app through containerd's gRPC API in the session cgroup and a
//! network namespace of its own, probes it through the forwarded port,
//! writes the slim image back into containerd (unpacked) and verifies it by
//! running it the same way. Checked with `ctr`: the slim image is there and
//! runs (`ctr run`), and no container, task, container snapshot, state
//! directory, netns thread, cgroup or scratch is left.
//! Docker builds the fixtures (and only that).

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::containerd::{Containerd, K8S_NAMESPACE};
use crate::daemon::{Daemon, failed_with};
use crate::{ServerImage, TestImage};

/// Where the containerd engine keeps its containers' files (slimd's
/// `engine::containerd::STATE_ROOT`/k8s.io).
const STATE_DIR: &str = "/run/slimd/containerd/k8s.io";

/// A daemon driving the private containerd.
fn daemon(name: &str, c: &Containerd) -> Result<Daemon> {
    Daemon::start_with(
        name,
        &["--engine", "containerd", "--engine-socket", c.address()],
    )
}

/// Nothing of the daemon's sessions is left in containerd or on the host.
fn nothing_left(d: &Daemon, c: &Containerd) -> Result<()> {
    let containers = c.ctr(K8S_NAMESPACE, &["containers", "ls", "-q"])?;
    ensure!(
        containers.trim().is_empty(),
        "leftover containers: {containers}"
    );
    let tasks = c.ctr(K8S_NAMESPACE, &["tasks", "ls", "-q"])?;
    ensure!(tasks.trim().is_empty(), "leftover tasks: {tasks}");
    // Committed layers stay (the images hold them); no container's root.
    let snapshots = c.ctr(K8S_NAMESPACE, &["snapshots", "ls"])?;
    ensure!(
        !snapshots.lines().any(|l| l.starts_with("slimd-")),
        "leftover container snapshots: {snapshots}"
    );
    let leases = c.ctr(K8S_NAMESPACE, &["leases", "ls", "-q"])?;
    ensure!(leases.trim().is_empty(), "leftover leases: {leases}");
    let files: Vec<_> = std::fs::read_dir(STATE_DIR)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure!(files.is_empty(), "leftover container files: {files:?}");
    // The threads that hold the containers' network namespaces.
    let pid = d.child.as_ref().context("daemon not running")?.id();
    let holders = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "slimd-netns")
        })
        .count();
    ensure!(holders == 0, "{holders} network namespaces still held");
    d.assert_clean()
}

/// Builds `tag` (imported) under `target` with `extra` flags: verify
/// passes, the slim image is in containerd's `k8s.io`, nothing is left;
/// returns the summary and the slim image's containerd name.
fn build_tag(
    d: &Daemon,
    c: &Containerd,
    tag: &str,
    target: &str,
    extra: &[&str],
) -> Result<(serde_json::Value, String)> {
    let name = c.import_docker_image(tag, &d.dir, true)?;
    let mut args = vec![name.as_str(), "--tag", target, "--force"];
    args.extend_from_slice(extra);
    let (s, secs) = d.build_verified(&args)?;
    let full = format!("docker.io/{target}");
    let images = c.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
    ensure!(
        images.lines().any(|l| l == full),
        "{full} is not among containerd's images: {images}"
    );
    let orig = s["sizes"]["original_bytes"].as_u64().unwrap_or(0);
    let slim = s["sizes"]["slim_bytes"].as_u64().unwrap_or(0);
    ensure!(
        slim > 0 && slim < orig,
        "slim image ({slim} B) is not smaller than the original ({orig} B): {s}"
    );
    println!(
        "containerd {tag}: {orig} -> {slim} bytes ({:.1}% smaller) in {secs:.1} s, verify: {}",
        100.0 * (1.0 - slim as f64 / orig as f64),
        s["verify"]
    );
    nothing_left(d, c)?;
    Ok((s, full))
}

/// Builds `image` through containerd: verify passes, the slim image is in
/// containerd's `k8s.io`, nothing is left; returns the summary and the
/// slim image's containerd name.
fn build(d: &Daemon, c: &Containerd, image: TestImage) -> Result<(serde_json::Value, String)> {
    let tag = image.ensure()?;
    build_tag(
        d,
        c,
        tag,
        &format!("slimd-e2e/ctd-{}:slim", image.name()),
        &[],
    )
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn status_names_containerd() -> Result<()> {
    let c = Containerd::start("status")?;
    let d = daemon("ctd-status", &c)?;
    let out = d.slim(&["status"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("engine"))
        .context("no engine line")?;
    ensure!(
        line.contains("containerd 1.") && line.contains("gRPC"),
        "slim status does not name containerd: {line}"
    );
    let json = d.slim(&["--json", "status"])?;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    ensure!(v["engine"]["engine"] == "containerd", "{}", v["engine"]);
    println!("{line}");
    Ok(())
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn static_server_builds_on_containerd() -> Result<()> {
    let c = Containerd::start("build")?;
    let d = daemon("ctd-build", &c)?;
    let (s, _) = build(&d, &c, TestImage::StaticServer)?;
    // The crawl went through the forwarded port into the namespace.
    let requests = s["probe_requests"].as_u64().unwrap_or(0);
    let ok_paths = TestImage::StaticServer.expected_ok_paths().len() as u64;
    ensure!(
        requests >= ok_paths,
        "only {requests} probe requests reached the app: {s}"
    );
    // What containerd has no counterpart for is refused, saying why.
    let tag = TestImage::StaticServer.tag();
    let out = d.slim(&["build", tag, "--network", "somenet", "--tag", "x/none:1"])?;
    let err = failed_with_any(&out)?;
    ensure!(err.contains("loopback only"), "{err}");
    ensure!(
        out.status.code() == Some(2),
        "exit {:?}: {err}",
        out.status.code()
    );
    nothing_left(&d, &c)
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn cli_oneshot_builds_and_runs_on_containerd() -> Result<()> {
    let c = Containerd::start("cli")?;
    let d = daemon("ctd-cli", &c)?;
    let (_, slim) = build(&d, &c, TestImage::CliOneshot)?;
    // The slim image runs under containerd by itself (ctr, not slimd).
    let out = c.ctr(K8S_NAMESPACE, &["run", "--rm", &slim, "slimd-e2e-cli-run"])?;
    let want = TestImage::CliOneshot.expected_stdout().unwrap_or_default();
    // (the harness trims a command's output)
    ensure!(
        out.trim_end() == want.trim_end(),
        "ctr run of {slim} printed {out:?}, not {want:?}"
    );
    println!("ctr run {slim}: the fixture's report, unchanged");
    ensure!(!Path::new(&format!("{STATE_DIR}/slimd-e2e-cli-run")).exists());
    Ok(())
}

/// The error output of a command that must have failed (any exit code but 0).
fn failed_with_any(out: &std::process::Output) -> Result<String> {
    ensure!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let code = out.status.code().unwrap_or(-1);
    failed_with(out, code)
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn redis_with_exec_probes_on_containerd() -> Result<()> {
    let c = Containerd::start("redis")?;
    let d = daemon("ctd-redis", &c)?;
    let server = ServerImage::Redis;
    let tag = server.ensure()?;
    let mut extra = vec!["--http-probe=false"];
    for p in server.exec_probes() {
        extra.extend(["--exec-probe", p]);
    }
    let (s, _) = build_tag(&d, &c, tag, "slimd-e2e/ctd-redis:slim", &extra)?;
    // Every exec probe ran inside the container (as the image's user) and
    // succeeded; `redis-cli get probe-key` read what the probe before wrote.
    let id = s["id"].as_str().context("no session id")?;
    let rep = d.slim(&["--json", "report", id])?;
    let report: serde_json::Value = serde_json::from_slice(&rep.stdout).context("report JSON")?;
    let execs = report["probe"]["exec"]
        .as_array()
        .context("no exec probes in the report")?;
    ensure!(
        execs.len() == server.exec_probes().len(),
        "{} exec probes ran of {}",
        execs.len(),
        server.exec_probes().len()
    );
    for e in execs {
        ensure!(
            e["exit_code"] == 0 && e["error"].is_null(),
            "exec probe failed: {e}"
        );
    }
    ensure!(
        report["probe"]["exec"][4]["stdout"]
            .to_string()
            .contains("from-probe"),
        "get probe-key: {}",
        report["probe"]["exec"][4]
    );
    Ok(())
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn daemon_killed_mid_build_leaves_nothing_after_restart() -> Result<()> {
    let c = Containerd::start("crash")?;
    let mut d = daemon("ctd-crash", &c)?;
    let tag = TestImage::StaticServer.ensure()?;
    let name = c.import_docker_image(tag, &d.dir, true)?;
    let mut client = d.slim_spawn(&[
        "--json",
        "build",
        &name,
        "--tag",
        "slimd-e2e/ctd-crash:slim",
        "--force",
        "--continue-after",
        "signal",
        "--detach",
    ])?;
    // Until the app runs in containerd.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let tasks = c.ctr(K8S_NAMESPACE, &["tasks", "ls", "-q"])?;
        if !tasks.trim().is_empty() && !d.cgroups().is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the session never started its container; log: {}",
            crate::daemon::tail(&d.log())
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    d.kill_hard();
    let _ = client.kill();
    let _ = client.wait();
    let containers = c.ctr(K8S_NAMESPACE, &["containers", "ls", "-q"])?;
    ensure!(
        !containers.trim().is_empty(),
        "the crash left no container to clean? (test is wrong)"
    );
    d.spawn()?;
    nothing_left(&d, &c)?;
    println!(
        "after the restart: container {} removed with its task, snapshot and files",
        containers.trim()
    );
    Ok(())
}

#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn compose_stack_is_refused_on_containerd() -> Result<()> {
    let c = Containerd::start("compose")?;
    let d = daemon("ctd-compose", &c)?;
    let tag = TestImage::StaticServer.ensure()?;
    let name = c.import_docker_image(tag, &d.dir, true)?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("compose.yml");
    std::fs::write(
        &file,
        format!("services:\n  web:\n    image: {name}\n    ports: [\"8080\"]\n"),
    )?;
    let out = d.slim(&["build", "--compose", &file.to_string_lossy()])?;
    let err = failed_with(&out, 2)?;
    ensure!(
        err.contains("containerd cannot") && err.contains("Compose"),
        "{err}"
    );
    println!("compose on containerd: {}", err.trim());
    nothing_left(&d, &c)
}

/// The engine interface on containerd, call by call, as
/// `tests::engine_docker::` checks it on Docker.
#[test]
#[ignore = "needs root, containerd and Docker (fixtures): cargo xtask test"]
fn engine_calls_on_containerd_match_docker() -> Result<()> {
    use slimd::engine::{ContainerSpec, Engine, EngineError, EngineKind, ExecRequest};
    use std::time::{Duration, Instant};

    let c = Containerd::start("engine")?;
    let d = daemon("ctd-engine", &c)?;
    let tag = TestImage::ShellEntrypoint.ensure()?;
    let name = c.import_docker_image(tag, &d.dir, true)?;
    let socket = c.socket.clone();
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine =
            Engine::connect_in(Some(EngineKind::Containerd), Some(&socket), K8S_NAMESPACE).await?;
        assert_eq!(engine.kind(), EngineKind::Containerd);
        let v = engine.version().await?;
        assert!(v.version.starts_with("1."), "{v:?}");

        // Images: by short name, full name, id and id prefix.
        let info = engine.inspect_image(tag).await?;
        assert!(info.id.starts_with("sha256:"), "{info:?}");
        assert_eq!(info.repo_tags, vec![tag.to_string()]);
        assert_eq!(info.config.exposed_ports, vec!["8080/tcp".to_string()]);
        assert_eq!(info.config.stop_signal.as_deref(), Some("SIGKILL"));
        assert!(info.size > 0);
        assert_eq!(engine.inspect_image(&name).await?.id, info.id);
        assert_eq!(engine.inspect_image(&info.id).await?.id, info.id);
        assert_eq!(engine.inspect_image(&info.id[7..19]).await?.id, info.id);
        assert!(matches!(
            engine
                .inspect_image("slimd-test/does-not-exist:never")
                .await,
            Err(EngineError::ImageNotFound(_))
        ));
        let labelled = engine
            .list_images_by_label(crate::INPUTS_LABEL, None)
            .await?;
        assert_eq!(labelled, vec![info.id.clone()]);

        // Tag, remove by name (an id is refused), export and load back.
        engine.tag_image(tag, "slimd-e2e/ctd-tagged", "1").await?;
        let tagged = engine.inspect_image("slimd-e2e/ctd-tagged:1").await?;
        assert_eq!(tagged.id, info.id);
        assert!(
            tagged
                .repo_tags
                .contains(&"slimd-e2e/ctd-tagged:1".to_string())
        );
        assert!(matches!(
            engine.remove_image(&info.id, true).await,
            Err(EngineError::InvalidSpec { .. })
        ));
        let archive = d.dir.join("ctd-export.tar");
        let size = engine
            .export_image_to_file("slimd-e2e/ctd-tagged:1", &archive)
            .await?;
        assert!(size > 0);
        engine.remove_image("slimd-e2e/ctd-tagged:1", false).await?;
        assert!(!engine.tag_exists("slimd-e2e/ctd-tagged:1").await?);
        let loaded = engine.load_image_file(&archive).await?;
        assert!(
            loaded.iter().any(|m| m.contains("slimd-e2e/ctd-tagged:1")),
            "{loaded:?}"
        );
        assert_eq!(
            engine.inspect_image("slimd-e2e/ctd-tagged:1").await?.id,
            info.id
        );
        engine.remove_image("slimd-e2e/ctd-tagged:1", false).await?;
        let _ = std::fs::remove_file(&archive);

        // A container: ports forwarded, exec, logs, stop, remove.
        let spec = ContainerSpec {
            name: Some("slimd-e2e-engine".into()),
            labels: [("slimd.session".to_string(), "test-ctd-engine".to_string())].into(),
            publish: vec!["8080".into()],
            ..ContainerSpec::new(tag)
        };
        let id = engine.create_container(&spec).await?;
        let result = async {
            let found = engine
                .list_containers_by_label("slimd.session", Some("test-ctd-engine"))
                .await?;
            ensure!(found == vec![id.clone()], "{found:?}");
            engine.start(&id).await?;
            let ci = engine.inspect_container(&id).await?;
            ensure!(ci.state.running && ci.state.pid.unwrap_or(0) > 0, "{ci:?}");
            ensure!(ci.netns.is_some(), "{ci:?}");
            let host_port = ci.host_port("8080").expect("8080 forwarded");
            tokio::task::spawn_blocking(move || {
                crate::http_get(host_port, "/", Duration::from_secs(30))
            })
            .await??;

            let deadline = || Instant::now() + Duration::from_secs(20);
            let out = engine
                .exec(
                    &id,
                    &ExecRequest::new(vec!["cat".into(), "/etc/app/app.env".into()]),
                    deadline(),
                )
                .await?;
            ensure!(out.exit_code == Some(0), "{out:?}");
            ensure!(String::from_utf8_lossy(&out.stdout).contains("PORT=8080"));
            let mut req =
                ExecRequest::new(vec!["sh".into(), "-c".into(), "echo $X >&2; exit 7".into()]);
            req.env = vec!["X=from-exec".into()];
            let out = engine.exec(&id, &req, deadline()).await?;
            ensure!(out.exit_code == Some(7), "{out:?}");
            ensure!(out.stderr == b"from-exec\n", "{out:?}");
            let out = engine
                .exec(
                    &id,
                    &ExecRequest::new(vec!["/no/such/binary".into()]),
                    deadline(),
                )
                .await?;
            ensure!(matches!(out.exit_code, Some(126 | 127)), "{out:?}");
            let out = engine
                .exec(
                    &id,
                    &ExecRequest::new(vec!["sleep".into(), "30".into()]),
                    Instant::now() + Duration::from_millis(500),
                )
                .await?;
            ensure!(out.timed_out && out.exit_code.is_none(), "{out:?}");

            let logs = engine.logs(&id, 1 << 20).await?;
            ensure!(
                String::from_utf8_lossy(&logs.stdout)
                    .contains("entrypoint: serving /run/www on port 8080"),
                "{logs:?}"
            );
            let early = engine
                .wait_exit(&id, Instant::now() + Duration::from_millis(200))
                .await?;
            ensure!(early.is_none(), "exited: {early:?}");
            engine.stop(&id, None, Duration::from_secs(5)).await?;
            let code = engine.wait_exit(&id, deadline()).await?;
            ensure!(code == Some(137), "STOPSIGNAL SIGKILL: {code:?}");
            ensure!(!engine.inspect_container(&id).await?.state.running);
            engine.stop(&id, None, Duration::from_secs(1)).await?;
            ensure!(matches!(
                engine.kill(&id, "SIGKILL").await,
                Err(EngineError::ContainerNotRunning(_))
            ));
            Ok::<_, anyhow::Error>(())
        }
        .await;
        engine.remove(&id, true).await?;
        result?;
        assert!(matches!(
            engine.inspect_container(&id).await,
            Err(EngineError::ContainerNotFound(_))
        ));
        Ok::<_, anyhow::Error>(())
    })?;
    nothing_left(&d, &c)
}
