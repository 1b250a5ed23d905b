//! The deployment files: systemd units checked by `systemd-analyze`, and the
//! Kubernetes manifests validated offline against the Kubernetes API schemas
//! (tests/deploy-validate, node + the `kubernetes-models` package). No root
//! needed; node, npm (with the npm registry reachable for `npm ci`) and
//! systemd-analyze must be installed: a missing tool fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use crate::run_with_timeout;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use slimd::harden::{NetOp, NetworkObservation, network_policy, summarize_network};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn units() -> PathBuf {
    root().join("deploy/systemd")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `Key=value` lines of a unit file, values of repeated keys joined by
/// spaces (as systemd does for list settings).
fn unit_settings(file: &Path) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for line in fs::read_to_string(file).unwrap().lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let e = m.entry(k.to_string()).or_default();
            if !e.is_empty() {
                e.push(' ');
            }
            e.push_str(v);
        }
    }
    m
}

/// The units in a temporary directory, ExecStart pointing at a binary that
/// exists (verify checks that it does).
fn units_copy() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    for name in ["slimd.socket", "slimd.service"] {
        let text = fs::read_to_string(units().join(name))?;
        let text = text.replace("/usr/local/bin/slimd", &exe.display().to_string());
        fs::write(dir.path().join(name), text)?;
    }
    Ok(dir)
}

#[test]
fn systemd_units_pass_verify_without_warnings() -> Result<()> {
    let dir = units_copy()?;
    let out = run_with_timeout(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("slimd.socket"))
            .arg(dir.path().join("slimd.service")),
        Duration::from_secs(60),
    )
    .context("systemd-analyze (package systemd; `cargo xtask setup`)")?;
    // verify exits 0 on settings it ignores (unknown keys, bad values) and
    // only warns: any output is a failure.
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).trim(), "", "systemd-analyze verify warned");
    Ok(())
}

#[test]
fn systemd_service_exposure_stays_low() -> Result<()> {
    let dir = units_copy()?;
    let out = run_with_timeout(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--man=no", "--no-pager"])
            .arg(dir.path().join("slimd.service")),
        Duration::from_secs(60),
    )?;
    let all = text(&out);
    let level: f64 = all
        .lines()
        .find_map(|l| l.split("Overall exposure level for slimd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no exposure level in:\n{all}"))?;
    // 10 is an unsandboxed root service; BPF tracing keeps CAP_SYS_ADMIN and
    // a writable cgroup tree, so "OK" (< 5) is the honest target.
    assert!(level < 5.0, "exposure {level}:\n{all}");
    Ok(())
}

#[test]
fn systemd_units_have_the_promised_settings() {
    let socket = unit_settings(&units().join("slimd.socket"));
    assert_eq!(socket["ListenStream"], "/run/slimd/slimd.sock");
    assert_eq!(socket["SocketMode"], "0660");
    assert_eq!(socket["SocketGroup"], "slimd");

    let service = unit_settings(&units().join("slimd.service"));
    assert_eq!(service["ExecStart"], "/usr/local/bin/slimd serve");
    assert_eq!(service["ProtectSystem"], "strict");
    assert_eq!(service["StateDirectory"], "slimd");
    assert_eq!(service["RuntimeDirectory"], "slimd");
    assert_eq!(service["NoNewPrivileges"], "yes");
    assert!(service["ReadWritePaths"].contains("/sys/fs/cgroup"));
    let caps = |k: &str| -> Vec<String> {
        let mut v: Vec<String> = service[k].split_whitespace().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(caps("CapabilityBoundingSet"), caps("AmbientCapabilities"));
    // systemd ignores capability names it does not know without a word:
    // check them against the kernel's list.
    let header = fs::read_to_string("/usr/include/linux/capability.h")
        .expect("linux-libc-dev (installed with libc6-dev)");
    let known: Vec<&str> = header
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("#define")).then(|| w.next()).flatten()
        })
        .collect();
    for cap in caps("CapabilityBoundingSet") {
        assert!(known.contains(&cap.as_str()), "{cap} is not a capability");
    }
    for needed in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"] {
        assert!(caps("CapabilityBoundingSet").contains(&needed.to_string()));
    }
}

/// `npm ci` in tests/deploy-validate, once per lockfile and node version.
fn validator() -> Result<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("tests/deploy-validate");
    let node = run_with_timeout(
        Command::new("node").arg("--version"),
        Duration::from_secs(30),
    )
    .context("node is not installed (Debian: apt-get install nodejs npm)")?;
    let mut h = Sha256::new();
    h.update(fs::read(dir.join("package-lock.json"))?);
    h.update(&node.stdout);
    let stamp_want = hex::encode(h.finalize());
    let stamp = dir.join("node_modules/.slimd-stamp");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(stamp_want.as_str()) {
        let out = run_with_timeout(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            Duration::from_secs(300),
        )
        .context("npm is not installed")?;
        if !out.status.success() {
            bail!("npm ci in {} failed:\n{}", dir.display(), text(&out));
        }
        fs::write(&stamp, stamp_want)?;
    }
    Ok(dir)
}

fn validate(files: &[PathBuf]) -> Result<Output> {
    let dir = validator()?;
    run_with_timeout(
        Command::new("node")
            .arg(dir.join("validate.mjs"))
            .args(files)
            .current_dir(&dir),
        Duration::from_secs(120),
    )
}

#[test]
fn kubernetes_manifests_match_the_api_schemas() -> Result<()> {
    let files = manifests();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00-namespace.yaml",
            "01-serviceaccount.yaml",
            "02-daemonset.yaml"
        ]
    );
    let out = validate(&files)?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("manifests: 3 passed, 0 failed"),
        "{}",
        text(&out)
    );
    Ok(())
}

/// The validator is not a no-op: an unknown field, a wrong type, a bad enum
/// value and a duplicate key each fail.
#[test]
fn schema_validator_rejects_broken_manifests() -> Result<()> {
    let ds = fs::read_to_string(root().join("deploy/kubernetes/02-daemonset.yaml"))?;
    let dir = tempfile::tempdir()?;
    let broken = [
        (
            "unknown-field",
            ds.replace(
                "      hostPID: true\n",
                "      hostPID: true\n      hostPid: true\n",
            ),
        ),
        (
            "wrong-type",
            ds.replace("periodSeconds: 30", "periodSeconds: \"30\""),
        ),
        (
            "bad-enum",
            ds.replace("type: DirectoryOrCreate", "type: DirectoryOrMake"),
        ),
        (
            "duplicate-key",
            ds.replace("hostPID: true\n", "hostPID: true\n      hostPID: false\n"),
        ),
    ];
    let mut files = Vec::new();
    for (name, text) in &broken {
        assert_ne!(text, &ds, "{name}: the edit did not apply");
        let f = dir.path().join(format!("{name}.yaml"));
        fs::write(&f, text)?;
        files.push(f);
    }
    let out = validate(&files)?;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    for (name, _) in &broken {
        assert!(
            all.lines()
                .any(|l| l.starts_with("FAIL") && l.contains(&format!("{name}.yaml"))),
            "{name} was not rejected:\n{all}"
        );
    }
    assert!(all.contains("manifests: 0 passed, 4 failed"), "{all}");
    Ok(())
}

/// The NetworkPolicy `slimd::harden` suggests is a valid API object too.
#[test]
fn learned_network_policy_matches_the_api_schema() -> Result<()> {
    let rec = |op, ip: &str, port| NetworkObservation {
        op,
        family: slimd::harden::AddressFamily::Inet,
        ip: Some(ip.parse().unwrap()),
        port: Some(port),
        unix_path: None,
        ok: true,
    };
    let summary = summarize_network(&[
        rec(NetOp::Bind, "0.0.0.0", 8080),
        rec(NetOp::Listen, "0.0.0.0", 8080),
        rec(NetOp::Connect, "10.1.2.3", 5432),
        rec(NetOp::Connect, "2001:db8::7", 443),
        rec(NetOp::Connect, "10.96.0.10", 53),
    ]);
    let policy = network_policy("slimd-test/python-app:latest", &BTreeMap::new(), &summary);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.yaml");
    fs::write(&file, policy.to_yaml()?)?;
    let out = validate(&[file])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("NetworkPolicy python-app-latest-learned"));
    Ok(())
}

#[test]
fn daemonset_runs_on_build_nodes_with_host_access() -> Result<()> {
    let ds: serde_norway::Value = serde_norway::from_str(&fs::read_to_string(
        root().join("deploy/kubernetes/02-daemonset.yaml"),
    )?)?;
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(
        pod["nodeSelector"]["slimd.dev/build-node"].as_str(),
        Some("true")
    );
    assert_eq!(pod["serviceAccountName"].as_str(), Some("slimd"));
    let host_paths: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    for p in [
        "/sys/fs/cgroup",
        "/sys/kernel/tracing",
        "/sys/fs/bpf",
        "/proc",
        "/run/containerd",
        "/var/lib/slimd",
    ] {
        assert!(host_paths.contains(&p), "no hostPath {p}: {host_paths:?}");
    }
    let c = &pod["containers"][0];
    let command: Vec<&str> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["--engine", "containerd"]),
        "Kubernetes nodes run containerd: {command:?}"
    );
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert!(c["livenessProbe"]["exec"]["command"].is_sequence());
    let add: Vec<&str> = c["securityContext"]["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(add, ["BPF", "PERFMON", "SYS_ADMIN"]);
    Ok(())
}
