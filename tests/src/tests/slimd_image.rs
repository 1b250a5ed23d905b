//! The DaemonSet, runnable: the daemon runs from the image `cargo xtask
//! image` built, in a container set up exactly as
//! `deploy/kubernetes/02-daemonset.yaml` says (its command, capabilities,
//! host PID namespace, read-only root, host mounts), read from the manifest
//! so that test and manifest cannot drift; users reach it with an exec into
//! that container (as `kubectl exec` does). In watch mode it profiles a
//! labelled container from its first instruction, leaves an unlabelled one
//! alone, and builds a slim image from the profile that serves like the
//! original. The engine here is Docker: the manifest's variant for a
//! Docker node (`--engine docker` for its `--engine containerd`, and the
//! host's Docker socket mounted, as its comment says); tests::cri runs the
//! manifest as it is under containerd. No kubelet runs on this machine.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::{RUN_LABEL, TestImage, checked, docker, docker_timeout, http_get};

const DAEMONSET: &str = "deploy/kubernetes/02-daemonset.yaml";
const CGROUP_ROOT: &str = "slimd-e2e-image";
const NAME: &str = "slimd-e2e-image-daemon";

/// `slimd/slimd:<workspace version>`, the tag `cargo xtask image` gives.
fn image_tag() -> String {
    format!("slimd/slimd:{}", env!("CARGO_PKG_VERSION"))
}

/// The `docker run` arguments that start the DaemonSet's container as the
/// manifest describes it. Host paths the daemon writes (its state and API
/// socket directories) go to `dir` instead, so the test never touches a
/// real daemon's; an emptyDir becomes a tmpfs. Docker 20.10 does not know
/// the names CAP_BPF and CAP_PERFMON (the manifest says so): they are left
/// out, and CAP_SYS_ADMIN, which the manifest adds too, covers both.
/// Init containers run first, to completion (`docker run --rm`), in order.
struct PodRuns {
    init: Vec<Vec<String>>,
    main: Vec<String>,
    socket: PathBuf,
}

fn docker_run_args(manifest: &str, dir: &Path) -> Result<PodRuns> {
    let ds: serde_norway::Value = serde_norway::from_str(manifest)?;
    let pod = &ds["spec"]["template"]["spec"];
    let state = dir.join("state");
    let sock_dir = dir.join("run");
    std::fs::create_dir_all(&state)?;
    std::fs::create_dir_all(&sock_dir)?;
    let mut init = Vec::new();
    for (i, c) in pod["initContainers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .enumerate()
    {
        init.push(container_run_args(
            pod,
            c,
            dir,
            &format!("{NAME}-init{i}"),
            false,
        )?);
    }
    let main = container_run_args(pod, &pod["containers"][0], dir, NAME, true)?;
    Ok(PodRuns {
        init,
        main,
        socket: sock_dir.join("slimd.sock"),
    })
}

/// One container of the pod as `docker run` arguments (see [`docker_run_args`]).
fn container_run_args(
    pod: &serde_norway::Value,
    c: &serde_norway::Value,
    dir: &Path,
    name: &str,
    detach: bool,
) -> Result<Vec<String>> {
    let strings = |v: &serde_norway::Value| -> Vec<String> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let image = c["image"].as_str().context("no image")?;
    ensure!(
        image == image_tag(),
        "the manifest runs {image}, cargo xtask image builds {}",
        image_tag()
    );
    let command = strings(&c["command"]);
    let (entry, args) = command.split_first().context("no command")?;
    let sc = &c["securityContext"];
    ensure!(
        sc["privileged"].as_bool() != Some(true),
        "the DaemonSet must not be privileged"
    );
    let mut run: Vec<String> = vec![
        "run".into(),
        if detach { "-d" } else { "--rm" }.into(),
        "--name".into(),
        name.into(),
        "--label".into(),
        format!("{RUN_LABEL}=slimd-image"),
        "--entrypoint".into(),
        entry.clone(),
    ];
    if pod["hostPID"].as_bool() == Some(true) {
        run.extend(["--pid".into(), "host".into()]);
    }
    if let (Some(u), Some(g)) = (sc["runAsUser"].as_i64(), sc["runAsGroup"].as_i64()) {
        run.extend(["--user".into(), format!("{u}:{g}")]);
    }
    if sc["readOnlyRootFilesystem"].as_bool() == Some(true) {
        run.push("--read-only".into());
    }
    if sc["allowPrivilegeEscalation"].as_bool() == Some(false) {
        run.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for cap in strings(&sc["capabilities"]["drop"]) {
        run.extend(["--cap-drop".into(), cap]);
    }
    let add = strings(&sc["capabilities"]["add"]);
    ensure!(
        !add.iter().any(|c| c == "BPF" || c == "PERFMON") || add.iter().any(|c| c == "SYS_ADMIN"),
        "BPF/PERFMON without SYS_ADMIN, which Docker 20.10 needs in their place: {add:?}"
    );
    for cap in add.into_iter().filter(|c| c != "BPF" && c != "PERFMON") {
        run.extend(["--cap-add".into(), cap]);
    }
    let state = dir.join("state");
    let sock_dir = dir.join("run");
    let volumes = pod["volumes"].as_sequence().context("no volumes")?;
    for m in c["volumeMounts"].as_sequence().context("no mounts")? {
        let name = m["name"].as_str().context("mount without name")?;
        let target = m["mountPath"].as_str().context("mount without path")?;
        let v = volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .with_context(|| format!("no volume {name}"))?;
        if v.get("emptyDir").is_some() {
            run.extend(["--tmpfs".into(), target.into()]);
            continue;
        }
        let host = v["hostPath"]["path"]
            .as_str()
            .with_context(|| format!("volume {name} is neither hostPath nor emptyDir"))?;
        let host = match host {
            "/var/lib/slimd" => state.to_string_lossy().into_owned(),
            "/run/slimd" => sock_dir.to_string_lossy().into_owned(),
            h => h.to_string(),
        };
        let ro = if m["readOnly"].as_bool() == Some(true) {
            ":ro"
        } else {
            ""
        };
        run.extend(["-v".into(), format!("{host}:{target}{ro}")]);
    }
    run.push(image.to_string());
    // The Docker node's variant of the manifest (see its comment).
    let mut args = args.to_vec();
    if let Some(w) = args
        .windows(2)
        .position(|w| w == ["--engine", "containerd"])
    {
        args[w + 1] = "docker".into();
        let at = run.len() - 1;
        run.splice(
            at..at,
            [
                "-v".to_string(),
                "/var/run/docker.sock:/var/run/docker.sock".to_string(),
            ],
        );
    }
    run.extend(args);
    // A cgroup root of its own, so it never meets another daemon's.
    run.extend(["--cgroup-root".into(), CGROUP_ROOT.into()]);
    Ok(run)
}

/// The daemon's container; removed (and its cgroup root) on drop.
struct PodDaemon {
    _dir: tempfile::TempDir,
}

impl PodDaemon {
    fn start() -> Result<Self> {
        crate::ensure_docker()?;
        if docker(["image", "inspect", "--format", "{{.Id}}", &image_tag()]).is_err() {
            bail!(
                "no image {}: build it with `cargo xtask image`",
                image_tag()
            );
        }
        let _ = docker(["rm", "-f", NAME]);
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DAEMONSET),
        )?;
        let dir = tempfile::tempdir()?;
        let runs = docker_run_args(&manifest, dir.path())?;
        for init in &runs.init {
            println!("docker {}", init.join(" "));
            docker(init)?;
        }
        println!("docker {}", runs.main.join(" "));
        docker(&runs.main)?;
        let d = PodDaemon { _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match d.slim(&["status"]) {
                Ok(out) => {
                    println!("{out}");
                    return Ok(d);
                }
                Err(e) if Instant::now() > deadline => {
                    let logs = docker(["logs", NAME]).unwrap_or_default();
                    bail!("the daemon in {NAME} did not answer within 60 s: {e}\n{logs}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// `slim ARGS` inside the daemon's container, as `kubectl exec` runs it.
    fn slim(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", NAME, "/usr/local/bin/slim"]).args(args);
        checked(&mut cmd, Duration::from_secs(300))
    }

    /// The same, for a run that must exit with `code`: its stdout and stderr.
    fn slim_exit(&self, args: &[&str], code: i32) -> Result<String> {
        let out = crate::run_with_timeout(
            Command::new("docker")
                .args(["exec", NAME, "/usr/local/bin/slim"])
                .args(args),
            Duration::from_secs(300),
        )?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            out.status.code() == Some(code),
            "slim {args:?} exited {:?}, expected {code}: {said}",
            out.status.code()
        );
        Ok(said)
    }
}

impl Drop for PodDaemon {
    fn drop(&mut self) {
        let _ = docker_timeout(
            ["rm", "-f", &format!("{NAME}-init0")],
            Duration::from_secs(60),
        );
        // SIGTERM first: the daemon removes what its sessions left.
        let _ = docker_timeout(["stop", "-t", "60", NAME], Duration::from_secs(90));
        let _ = docker_timeout(["rm", "-f", NAME], Duration::from_secs(60));
        if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
            for r in roots.flatten() {
                let _ = std::fs::remove_dir(r.path().join(CGROUP_ROOT));
            }
        }
    }
}

#[test]
fn the_daemonset_maps_to_a_container_run() -> Result<()> {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DAEMONSET),
    )?;
    let dir = tempfile::tempdir()?;
    let runs = docker_run_args(&manifest, dir.path())?;
    let joined = runs.main.join(" ");
    for want in [
        "--entrypoint /usr/local/bin/slimd",
        "--pid host",
        "--read-only",
        "--cap-drop ALL",
        "--cap-add SYS_ADMIN",
        "--security-opt no-new-privileges",
        "-v /sys/fs/cgroup:/sys/fs/cgroup",
        "-v /sys/kernel/tracing:/sys/kernel/tracing",
        "-v /sys/fs/bpf:/sys/fs/bpf",
        "-v /proc:/host/proc:ro",
        "--tmpfs /tmp",
        " serve --watch ",
    ] {
        ensure!(joined.contains(want), "no {want:?} in docker {joined}");
    }
    ensure!(!joined.contains("--privileged"), "{joined}");
    ensure!(
        runs.socket.starts_with(dir.path()),
        "{}",
        runs.socket.display()
    );
    // The cgroup root is made first, by the one container that may.
    ensure!(runs.init.len() == 1, "{:?}", runs.init);
    let init = runs.init[0].join(" ");
    for want in [
        "--rm",
        "--cap-drop ALL",
        "--cap-add DAC_OVERRIDE",
        "-v /sys/fs/cgroup:/sys/fs/cgroup",
        " prepare --cgroup-root ",
    ] {
        ensure!(init.contains(want), "no {want:?} in docker {init}");
    }
    ensure!(!init.contains("SYS_ADMIN"), "{init}");
    Ok(())
}

#[test]
#[ignore = "needs root, Docker and `cargo xtask image`: cargo xtask test"]
fn the_image_runs_the_daemonset_and_profiles_labelled_containers() -> Result<()> {
    let image = TestImage::StaticServer.ensure()?;
    let d = PodDaemon::start()?;
    let status = d.slim(&["status"])?;
    ensure!(
        status.contains("engine     Docker") && status.contains("tracer     loaded"),
        "{status}"
    );
    // The init container made the cgroup root (on this hybrid host the
    // cgroup2 root is mode 0555), so the daemon can make session cgroups.
    let cgroup_kill = status
        .lines()
        .find(|l| l.contains("cgroup.kill"))
        .unwrap_or_default();
    ensure!(cgroup_kill.contains(" yes "), "{cgroup_kill}");
    // Labelled: profiled from its first instruction; the probe is ours.
    let id = docker([
        "run",
        "-d",
        "--label",
        "slimd.dev/profile=true",
        "--label",
        &format!("{RUN_LABEL}=slimd-image"),
        "-p",
        "127.0.0.1::8080",
        image,
    ])?;
    let result = (|| -> Result<()> {
        let port: u16 = docker(["port", &id, "8080/tcp"])?
            .lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .context("no published port")?;
        for path in TestImage::StaticServer.expected_ok_paths() {
            let (code, _) = http_get(port, path, Duration::from_secs(20))?;
            ensure!(code == 200, "GET {path}: {code}");
        }
        Ok(())
    })();
    docker(["stop", "-t", "5", &id])?;
    docker(["rm", "-f", &id])?;
    result?;
    // Unlabelled, the same image and traffic: no session.
    let other = docker([
        "run",
        "-d",
        "--label",
        &format!("{RUN_LABEL}=slimd-image"),
        "-p",
        "127.0.0.1::8080",
        image,
    ])?;
    let asked = (|| -> Result<u16> {
        let port: u16 = docker(["port", &other, "8080/tcp"])?
            .lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .context("no published port")?;
        Ok(http_get(port, "/", Duration::from_secs(20))?.0)
    })();
    docker(["rm", "-f", &other])?;
    ensure!(asked? == 200, "the unlabelled server did not answer");
    let deadline = Instant::now() + Duration::from_secs(90);
    let watch = loop {
        let list: Vec<serde_json::Value> = serde_json::from_str(&d.slim(&["--json", "sessions"])?)?;
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
            "no finished watch session; daemon log: {}",
            docker(["logs", NAME]).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let sid = watch["id"].as_str().context("no id")?;
    let report: serde_json::Value = serde_json::from_str(&d.slim(&["--json", "report", sid])?)?;
    let kept: Vec<&str> = report["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["path"].as_str())
        .collect();
    ensure!(
        kept.iter().any(|p| p.starts_with("/srv/www/")),
        "the served pages are not in the profile: {kept:?}"
    );
    println!(
        "watch session {sid}: {} execs, {} paths kept",
        report["execs"].as_array().map(Vec::len).unwrap_or(0),
        kept.len()
    );
    // The slim image from the profile: built (unverified: nothing was
    // probed by slimd), and it serves every page the original served.
    let target = "slimd-e2e/image-watched:slim";
    let said = d.slim_exit(
        &["build", "--from-profile", sid, "--tag", target, "--force"],
        7,
    )?;
    ensure!(said.contains("UNVERIFIED"), "{said}");
    let slim = docker(["run", "-d", "-p", "127.0.0.1::8080", target])?;
    let served = (|| -> Result<()> {
        let port: u16 = docker(["port", &slim, "8080/tcp"])?
            .lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .context("no published port")?;
        for path in TestImage::StaticServer.expected_ok_paths() {
            let (code, _) = http_get(port, path, Duration::from_secs(20))?;
            ensure!(code == 200, "GET {path} on the slim image: {code}");
        }
        Ok(())
    })();
    let _ = docker(["rm", "-f", &slim]);
    served
}
