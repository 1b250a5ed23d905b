//! Watch mode on a Kubernetes node whose runtime is containerd: the
//! private containerd runs with its CRI plugin on, the test acts as kubelet
//! through the CRI gRPC API ([`crate::kubelet`]), and the daemon runs
//! `slimd serve --watch --engine containerd --engine-socket <its socket>`.
//! A pod annotated `slimd.dev/profile=true` is profiled from its
//! container's first instruction and its session names the pod; an
//! unannotated pod beside it is not traced at all; when the annotated
//! container stops, the profile is written; `slim build --from-profile`
//! reads the image from containerd's content store and writes the slim
//! image back into `k8s.io`, unpacked, where a new pod runs it and it
//! answers like the original.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::containerd::{Containerd, K8S_NAMESPACE};
use crate::daemon::Daemon;
use crate::kubelet::{self, ContainerSpec, Kubelet};
use crate::{TestImage, docker, http_get};

/// A TCP port nobody listens on now (the pods share the node's network).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The static server's arguments on `port`.
fn server_args(port: u16) -> Vec<String> {
    ["-p", &port.to_string(), "-d", "/srv/www"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The daemon's watch sessions.
fn watch_sessions(d: &Daemon) -> Result<Vec<serde_json::Value>> {
    let out = d.slim(&["--json", "sessions"])?;
    ensure!(
        out.status.success(),
        "slim sessions: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(list.into_iter().filter(|s| s["kind"] == "watch").collect())
}

/// Polls the watch sessions until `done` holds, for `limit` at most.
fn wait_sessions(
    d: &Daemon,
    limit: Duration,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Result<Vec<serde_json::Value>> {
    let deadline = Instant::now() + limit;
    loop {
        let w = watch_sessions(d)?;
        if done(&w) {
            return Ok(w);
        }
        ensure!(
            Instant::now() < deadline,
            "{what} within {}s; sessions: {w:?}\ndaemon log: {}",
            limit.as_secs(),
            crate::daemon::tail(&d.log())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs root, Docker (fixtures) and containerd: cargo xtask test"]
fn annotated_pods_are_profiled_and_built_from_on_containerd() -> Result<()> {
    let app_tag = TestImage::StaticServer.ensure()?;
    let pause_tag = kubelet::ensure_pause_image()?;
    let c = Containerd::start_cri("cri", kubelet::PAUSE_NAME)?;
    let d = Daemon::start_with(
        "cri",
        &[
            "--watch",
            "--engine",
            "containerd",
            "--engine-socket",
            c.address(),
        ],
    )?;
    let pause = c.import_docker_image(pause_tag, &d.dir, true)?;
    ensure!(pause == kubelet::PAUSE_NAME, "pause image named {pause}");
    let app = c.import_docker_image(app_tag, &d.dir, true)?;
    // Declared after the containerd and the daemon: dropped first, so its
    // pods are removed while containerd still runs.
    let mut k = Kubelet::connect(&c.socket, &d.dir.join("pods"))?;
    k.wait_image(&pause)?;
    k.wait_image(&app)?;
    let (runtime, version, api) = k.version()?;
    println!("CRI: {runtime} {version}, API {api}");
    ensure!(api == "v1", "CRI API {api}");

    // Pod B, not annotated: must leave no trace.
    let port_b = free_port()?;
    let pod_b = k.run_pod("builds", "plain", &[], false)?;
    let spec_b = ContainerSpec {
        name: "web".into(),
        image: app.clone(),
        args: server_args(port_b),
        ..Default::default()
    };
    let cb = k.start_container(&pod_b, &spec_b)?;
    // Pod A, annotated.
    let port_a = free_port()?;
    let pod_a = k.run_pod("builds", "watched", &[("slimd.dev/profile", "true")], false)?;
    let spec_a = ContainerSpec {
        name: "web".into(),
        image: app.clone(),
        args: server_args(port_a),
        ..Default::default()
    };
    let ca = k.start_container(&pod_a, &spec_a)?;
    let paths = TestImage::StaticServer.expected_ok_paths();
    let mut original = Vec::new();
    for p in paths {
        let answer = http_get(port_a, p, Duration::from_secs(30))?;
        ensure!(answer.0 == 200, "pod A: GET {p}: {}", answer.0);
        original.push(answer);
    }
    let (status, _) = http_get(port_b, "/slimd-unannotated-marker", Duration::from_secs(30))?;
    ensure!(status == 404, "pod B: marker answered {status}");

    // A's session runs now, and names the pod and container.
    let running = wait_sessions(&d, Duration::from_secs(30), "no watch session", |w| {
        !w.is_empty()
    })?;
    ensure!(
        running.len() == 1,
        "one watch session expected (pod B and the sandboxes not adopted): {running:?}"
    );
    let id = running[0]["id"].as_str().context("no id")?.to_string();
    let pod = &running[0]["pod"];
    ensure!(
        pod["namespace"] == "builds"
            && pod["name"] == "watched"
            && pod["uid"] == pod_a.uid.as_str()
            && pod["container"] == "web",
        "the session does not name pod A: {}",
        running[0]
    );
    let listed = d.slim(&["sessions"])?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    ensure!(
        listed.contains("pod builds/watched container web"),
        "slim sessions does not show the pod: {listed}"
    );

    let status = d.slim(&["status"])?;
    let status = String::from_utf8_lossy(&status.stdout);
    ensure!(
        status.contains("engine     containerd")
            && status.contains(&format!("watching   {id}"))
            && status.contains("pod builds/watched container web"),
        "slim status does not show the engine and the watched pod: {status}"
    );

    // kubelet stops the container: the profile is written.
    k.stop_container(&ca, Duration::from_secs(5))?;
    let (state, code) = k.container_state(&ca)?;
    println!("pod A's container: {state}, exit {code}");
    wait_sessions(
        &d,
        Duration::from_secs(120),
        "the watch session did not end",
        |w| {
            w.iter()
                .any(|s| s["id"] == id.as_str() && s["state"] != "running")
        },
    )?;
    let out = d.slim(&["--json", "report", &id])?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        report["state"] == "succeeded",
        "the watch session: {}\ndaemon log: {}",
        report["failure"],
        crate::daemon::tail(&d.log())
    );
    ensure!(report["pod"] == *pod, "report's pod: {}", report["pod"]);
    // From the first instruction: the first exec is the entrypoint with
    // the pod's arguments.
    let first = &report["execs"][0];
    let mut argv = vec!["/usr/local/bin/static-server".to_string()];
    argv.extend(server_args(port_a));
    ensure!(
        first["path"] == "/usr/local/bin/static-server" && first["argv"] == serde_json::json!(argv),
        "the first exec is not the entrypoint: {first}"
    );
    let text = serde_json::to_string(&report)?;
    ensure!(
        !text.contains("slimd-unannotated-marker"),
        "pod B was traced"
    );
    ensure!(
        report["kept"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["path"] == "/srv/www/about.html"),
        "/srv/www/about.html not in the profile"
    );
    let rendered = String::from_utf8_lossy(&d.slim(&["report", &id])?.stdout).into_owned();
    ensure!(
        rendered.contains("pod builds/watched container web"),
        "slim report does not show the pod: {rendered}"
    );
    println!(
        "pod builds/watched profiled: {} execs, {} kept paths, {} syscalls",
        report["execs"].as_array().map_or(0, Vec::len),
        report["kept"].as_array().map_or(0, Vec::len),
        report["syscalls"].as_array().map_or(0, Vec::len)
    );
    ensure!(
        watch_sessions(&d)?.len() == 1,
        "pod B or a sandbox got a session"
    );
    k.remove_pod(&pod_a.sandbox_id)?;
    k.remove_pod(&pod_b.sandbox_id)?;
    let _ = cb;

    // The slim image from the profile, into containerd: built, nothing
    // probed, so unverified (exit 7), loudly.
    let slim_tag = "slimd-e2e/static-server:cri-slim";
    let out = d.slim(&["build", "--from-profile", &id, "--tag", slim_tag, "--force"])?;
    let err = crate::daemon::failed_with(&out, 7)?;
    let said = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    ensure!(
        said.contains("UNVERIFIED"),
        "build --from-profile does not say it is unverified: {said}"
    );
    let names = c.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
    let slim = names
        .lines()
        .find(|n| n.ends_with(slim_tag))
        .with_context(|| format!("{slim_tag} not in containerd's k8s.io: {names}"))?
        .to_string();

    // --output oci:PATH: an OCI archive on the host, and nothing new in
    // containerd.
    let before = c.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
    let oci = d.dir.join("slim-oci.tar");
    let out = d.slim(&[
        "build",
        "--from-profile",
        &id,
        "--tag",
        "slimd-e2e/static-server:cri-oci",
        "--output",
        &format!("oci:{}", oci.display()),
    ])?;
    crate::daemon::failed_with(&out, 7)?;
    let entries: Vec<String> = tar::Archive::new(std::fs::File::open(&oci)?)
        .entries()?
        .map(|e| Ok(e?.path()?.to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    ensure!(
        entries.iter().any(|e| e == "index.json") && entries.iter().any(|e| e == "oci-layout"),
        "not an OCI layout archive: {entries:?}"
    );
    let after = c.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
    ensure!(before == after, "--output wrote into containerd: {after}");

    // kubelet runs it as a new pod: it answers like the original.
    k.wait_image(&slim)?;
    let port_c = free_port()?;
    let pod_c = k.run_pod("builds", "slim", &[], false)?;
    let spec_c = ContainerSpec {
        name: "web".into(),
        image: slim.clone(),
        args: server_args(port_c),
        ..Default::default()
    };
    k.start_container(&pod_c, &spec_c)?;
    for (p, want) in paths.iter().zip(&original) {
        let got = http_get(port_c, p, Duration::from_secs(30)).with_context(|| {
            format!(
                "the slim pod; its log: {}",
                k.container_log(&pod_c, &spec_c)
            )
        })?;
        ensure!(&got == want, "GET {p}: slim {got:?}, original {want:?}");
    }
    println!(
        "{slim} ran as pod builds/slim and answered {} paths like the original",
        paths.len()
    );
    k.remove_pod(&pod_c.sandbox_id)?;
    drop(k);
    d.assert_clean()
}

/// The DaemonSet's manifest, from the repository.
const DAEMONSET: &str = "deploy/kubernetes/02-daemonset.yaml";
/// The pod daemon's cgroup root, so it never meets another daemon's.
const POD_CGROUP_ROOT: &str = "slimd-e2e-cri-image";

/// One container of the DaemonSet's pod as the CRI is asked for it, read
/// from the manifest: image, command, user, read-only root, no new
/// privileges, seccomp, the capabilities it drops and adds, and every
/// mount. Host paths the daemon writes (its state and API socket
/// directories) and emptyDirs go under `dir`; containerd's socket
/// directory is the private containerd's, where `containerd.sock` leads to
/// its socket.
fn pod_container(
    pod: &serde_norway::Value,
    c: &serde_norway::Value,
    dir: &std::path::Path,
    containerd_dir: &std::path::Path,
) -> Result<ContainerSpec> {
    let strings = |v: &serde_norway::Value| -> Vec<String> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let sc = &c["securityContext"];
    anyhow::ensure!(
        sc["privileged"].as_bool() != Some(true),
        "the DaemonSet must not be privileged"
    );
    let command = strings(&c["command"]);
    anyhow::ensure!(!command.is_empty(), "no command");
    let volumes = pod["volumes"].as_sequence().context("no volumes")?;
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_sequence().context("no mounts")? {
        let name = m["name"].as_str().context("mount without name")?;
        let target = m["mountPath"].as_str().context("mount without path")?;
        let v = volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .with_context(|| format!("no volume {name}"))?;
        let host = if v.get("emptyDir").is_some() {
            let d = dir.join(format!("empty-{name}"));
            std::fs::create_dir_all(&d)?;
            d
        } else {
            let host = v["hostPath"]["path"]
                .as_str()
                .with_context(|| format!("volume {name} is neither hostPath nor emptyDir"))?;
            match host {
                "/var/lib/slimd" | "/run/slimd" => {
                    let d = dir.join(name);
                    std::fs::create_dir_all(&d)?;
                    d
                }
                "/run/containerd" => containerd_dir.to_path_buf(),
                h => h.into(),
            }
        };
        mounts.push((
            host.to_string_lossy().into_owned(),
            target.to_string(),
            m["readOnly"].as_bool() == Some(true),
        ));
    }
    let caps = &sc["capabilities"];
    let drop = strings(&caps["drop"]);
    anyhow::ensure!(
        drop.is_empty() || drop == ["ALL"],
        "drops other than ALL: {drop:?}"
    );
    Ok(ContainerSpec {
        name: c["name"].as_str().context("no name")?.into(),
        image: c["image"].as_str().context("no image")?.into(),
        command,
        mounts,
        add_capabilities: strings(&caps["add"]),
        drop_all_capabilities: drop == ["ALL"],
        run_as: sc["runAsUser"].as_i64().zip(sc["runAsGroup"].as_i64()),
        readonly_rootfs: sc["readOnlyRootFilesystem"].as_bool() == Some(true),
        no_new_privs: sc["allowPrivilegeEscalation"].as_bool() == Some(false),
        seccomp_runtime_default: sc["seccompProfile"]["type"].as_str() == Some("RuntimeDefault"),
        ..Default::default()
    })
}

/// `slim ARGS` in the DaemonSet's container (as `kubectl exec` runs it).
fn pod_slim(k: &Kubelet, id: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let mut cmd = vec!["/usr/local/bin/slim", "--socket", "/run/slimd/slimd.sock"];
    cmd.extend_from_slice(args);
    k.exec(id, &cmd, Duration::from_secs(300))
}

/// The DaemonSet's pod under containerd, as kubelet would run it.
#[test]
#[ignore = "needs root, Docker, containerd and `cargo xtask image`: cargo xtask test"]
fn the_daemonset_profiles_annotated_pods_under_containerd() -> Result<()> {
    let image_tag = format!("slimd/slimd:{}", env!("CARGO_PKG_VERSION"));
    if docker(["image", "inspect", "--format", "{{.Id}}", &image_tag]).is_err() {
        anyhow::bail!("no image {image_tag}: build it with `cargo xtask image`");
    }
    let app_tag = TestImage::StaticServer.ensure()?;
    let pause_tag = kubelet::ensure_pause_image()?;
    let c = Containerd::start_cri("cri-ds", kubelet::PAUSE_NAME)?;
    // The node's socket name, in the private containerd's directory.
    std::os::unix::fs::symlink("c.sock", c.dir.join("containerd.sock"))?;
    let dir = tempfile::tempdir()?;
    let pause = c.import_docker_image(pause_tag, dir.path(), true)?;
    let app = c.import_docker_image(app_tag, dir.path(), true)?;
    let slimd_image = c.import_docker_image(&image_tag, dir.path(), true)?;
    let mut k = Kubelet::connect(&c.socket, &dir.path().join("pods"))?;
    for i in [&pause, &app, &slimd_image] {
        k.wait_image(i)?;
    }
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DAEMONSET),
    )?;
    let ds: serde_norway::Value = serde_norway::from_str(&manifest)?;
    let spec = &ds["spec"]["template"]["spec"];
    let host_pid = spec["hostPID"].as_bool() == Some(true);
    let ds_pod = k.run_pod("slimd", "slimd-node", &[], host_pid)?;
    for init in spec["initContainers"].as_sequence().into_iter().flatten() {
        let mut s = pod_container(spec, init, dir.path(), &c.dir)?;
        s.command
            .extend(["--cgroup-root".to_string(), POD_CGROUP_ROOT.to_string()]);
        let id = k.start_container(&ds_pod, &s)?;
        let code = k.wait_exited(&id, Duration::from_secs(60))?;
        anyhow::ensure!(
            code == 0,
            "init container {} exited {code}: {}",
            s.name,
            k.container_log(&ds_pod, &s)
        );
    }
    let mut main = pod_container(spec, &spec["containers"][0], dir.path(), &c.dir)?;
    // What the manifest tells a containerd node to add, if it has not.
    if !main.command.iter().any(|a| a == "--engine") {
        main.command
            .extend(["--engine".to_string(), "containerd".to_string()]);
    }
    main.command
        .extend(["--cgroup-root".to_string(), POD_CGROUP_ROOT.to_string()]);
    println!("the DaemonSet's container: {}", main.command.join(" "));
    let slimd = k.start_container(&ds_pod, &main)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (code, out, err) = pod_slim(&k, &slimd, &["status"])?;
        if code == 0 {
            break out;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "slim status in the pod: exit {code}: {out}{err}\nlog: {}",
            k.container_log(&ds_pod, &main)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ensure!(
        status.contains("engine     containerd") && status.contains("tracer     loaded"),
        "{status}"
    );

    // An annotated pod and a plain one beside it.
    let (port_a, port_b) = (free_port()?, free_port()?);
    let pod_b = k.run_pod("builds", "plain", &[], false)?;
    let spec_b = ContainerSpec {
        name: "web".into(),
        image: app.clone(),
        args: server_args(port_b),
        ..Default::default()
    };
    k.start_container(&pod_b, &spec_b)?;
    let pod_a = k.run_pod("builds", "watched", &[("slimd.dev/profile", "true")], false)?;
    let spec_a = ContainerSpec {
        name: "web".into(),
        image: app.clone(),
        args: server_args(port_a),
        ..Default::default()
    };
    let ca = k.start_container(&pod_a, &spec_a)?;
    for p in TestImage::StaticServer.expected_ok_paths() {
        let (s, _) = http_get(port_a, p, Duration::from_secs(30))?;
        ensure!(s == 200, "pod A: GET {p}: {s}");
    }
    http_get(port_b, "/slimd-unannotated-marker", Duration::from_secs(30))?;
    k.stop_container(&ca, Duration::from_secs(5))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let watch = loop {
        let (_, out, _) = pod_slim(&k, &slimd, &["--json", "sessions"])?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        let w: Vec<_> = list.into_iter().filter(|s| s["kind"] == "watch").collect();
        if w.iter().any(|s| s["state"] != "running") {
            ensure!(w.len() == 1, "one watch session expected: {w:?}");
            break w[0].clone();
        }
        ensure!(
            Instant::now() < deadline,
            "no finished watch session in the pod: {w:?}\nlog: {}",
            k.container_log(&ds_pod, &main)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ensure!(
        watch["state"] == "succeeded"
            && watch["pod"]["name"] == "watched"
            && watch["pod"]["namespace"] == "builds"
            && watch["pod"]["container"] == "web",
        "{watch}\nlog: {}",
        k.container_log(&ds_pod, &main)
    );
    let id = watch["id"].as_str().context("no id")?;
    let (_, out, _) = pod_slim(&k, &slimd, &["--json", "report", id])?;
    let report: serde_json::Value = serde_json::from_str(&out)?;
    ensure!(
        report["execs"][0]["path"] == "/usr/local/bin/static-server",
        "the first exec is not the entrypoint: {}",
        report["execs"][0]
    );
    ensure!(
        !out.contains("slimd-unannotated-marker"),
        "the plain pod was traced"
    );
    let slim_tag = "slimd-e2e/static-server:cri-ds-slim";
    let (code, out, err) = pod_slim(
        &k,
        &slimd,
        &["build", "--from-profile", id, "--tag", slim_tag, "--force"],
    )?;
    ensure!(
        code == 7,
        "build --from-profile in the pod: exit {code}: {out}{err}"
    );
    let names = c.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
    ensure!(
        names.lines().any(|n| n.ends_with(slim_tag)),
        "{slim_tag} not in containerd: {names}"
    );
    println!(
        "the DaemonSet's pod profiled pod builds/watched and built {slim_tag} into containerd"
    );
    // kubelet stops the daemon with its grace period: it cleans up.
    k.stop_container(&slimd, Duration::from_secs(60))?;
    drop(k);
    // The (now empty) cgroup root the init container made.
    if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
        for r in roots.flatten() {
            let _ = std::fs::remove_dir(r.path().join(POD_CGROUP_ROOT));
        }
    }
    let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(POD_CGROUP_ROOT));
    Ok(())
}
