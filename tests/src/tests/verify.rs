//! Verify cannot be fooled: for each way a broken slim image used to pass
//! (nothing compared, failures counted as agreement, a server that died
//! after answering, a listener gone, errors only in the logs, a module
//! loaded after start-up removed), a build that now fails with exit code 6
//! or ends unverified with exit code 7. Plus readiness of a server from
//! its own `listen()` and probe deadlines. Real kernel, real engine.

use crate::daemon::{Daemon, failed_with, last_event};
use crate::fragile_app;
use anyhow::{Result, ensure};

/// `slim --json build` of the fragile app with `extra` flags: the exit code,
/// the last progress line and the whole output.
fn build(
    d: &Daemon,
    name: &str,
    extra: &[&str],
) -> Result<(Option<i32>, serde_json::Value, String)> {
    let image = fragile_app()?;
    let target = format!("slimd-e2e/fragile-{name}:slim");
    let mut args = vec![image, "--tag", &target, "--force"];
    args.extend_from_slice(extra);
    let (out, lines) = d.build_json(&args)?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), last_event(&lines).clone(), text))
}

/// A probe file that ends with `GET /audit` (the crawl finds the rest).
fn audit_probe(d: &Daemon) -> Result<String> {
    let path = d.dir.join("audit-probe.json");
    std::fs::write(&path, r#"[{"path": "/audit"}]"#)?;
    Ok(path.to_string_lossy().into_owned())
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn the_fragile_app_verifies_when_nothing_is_removed() -> Result<()> {
    let d = Daemon::start("fragile-ok")?;
    let probe = audit_probe(&d)?;
    let (code, last, text) = build(&d, "ok", &["--http-probe-file", &probe])?;
    ensure!(code == Some(0), "exit {code:?}: {text}");
    let v = &last["summary"]["verify"];
    ensure!(v["outcome"] == "passed", "{last}");
    ensure!(
        v["compared"].as_u64().unwrap_or(0) >= 4,
        "/, /report, /hello and /audit compared: {v}"
    );
    ensure!(
        last["summary"]["state"] == "succeeded",
        "state: {}",
        last["summary"]["state"]
    );
    let id = last["summary"]["id"].as_str().unwrap_or_default();
    let report: serde_json::Value =
        serde_json::from_slice(&d.slim(&["--json", "report", id])?.stdout)?;
    ensure!(
        report["verify"]["listening"]["slim"] == serde_json::json!([8000, 9100]),
        "ports: {}",
        report["verify"]["listening"]
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_module_loaded_after_start_up_removed_fails_verify() -> Result<()> {
    let d = Daemon::start("fragile-status")?;
    let (code, _, text) = build(&d, "status", &["--exclude-pattern", "**/textwrap.py"])?;
    ensure!(code == Some(6), "exit {code:?}: {text}");
    ensure!(
        text.contains("GET /report on 8000: status 200 -> error"),
        "the difference is not shown: {text}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_server_that_dies_after_answering_fails_verify() -> Result<()> {
    let d = Daemon::start("fragile-dies")?;
    let probe = audit_probe(&d)?;
    let (code, _, text) = build(
        &d,
        "dies",
        &[
            "--http-probe-file",
            &probe,
            "--exclude-pattern",
            "**/mailbox.py",
        ],
    )?;
    ensure!(code == Some(6), "exit {code:?}: {text}");
    ensure!(
        text.contains(
            "the slim container exited (code 3) after the probes; the original kept running"
        ),
        "{text}"
    );
    ensure!(
        !text.contains("GET /audit on 8000: status"),
        "the answer itself was the same: {text}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_listener_gone_from_the_slim_image_fails_verify() -> Result<()> {
    let d = Daemon::start("fragile-ports")?;
    let (code, _, text) = build(&d, "ports", &["--exclude-pattern", "**/wsgiref/**"])?;
    ensure!(code == Some(6), "exit {code:?}: {text}");
    ensure!(
        text.contains("does not listen on 9100 (the original did)"),
        "{text}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn errors_only_in_the_logs_fail_verify() -> Result<()> {
    let d = Daemon::start("fragile-logs")?;
    let (code, _, text) = build(&d, "logs", &["--exclude-pattern", "**/colorsys.py"])?;
    ensure!(code == Some(6), "exit {code:?}: {text}");
    ensure!(
        text.contains("logged errors the original did not")
            && text.contains("colour tables missing"),
        "{text}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_server_with_nothing_to_compare_ends_unverified() -> Result<()> {
    let d = Daemon::start("fragile-unverified")?;
    let (code, last, text) = build(&d, "unverified", &["--http-probe=false"])?;
    ensure!(code == Some(7), "exit {code:?}: {text}");
    let s = &last["summary"];
    ensure!(s["state"] == "unverified", "{s}");
    ensure!(s["verify"]["outcome"] == "unverified", "{s}");
    ensure!(
        text.contains("nothing exercised the app"),
        "no warning that nothing exercised the app: {text}"
    );
    // Asked for: built, unverified, not an error.
    let (code, last, text) = build(&d, "unverified", &["--http-probe=false", "--verify=false"])?;
    ensure!(code == Some(0), "exit {code:?}: {text}");
    ensure!(last["summary"]["state"] == "unverified", "{last}");
    // The human summary says it loudly.
    let image = fragile_app()?;
    let out = d.slim(&[
        "build",
        image,
        "--tag",
        "slimd-e2e/fragile-unverified:slim",
        "--force",
        "--http-probe=false",
    ])?;
    failed_with(&out, 7)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(stdout.contains("verify    UNVERIFIED"), "{stdout}");
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn probes_that_fail_on_the_original_are_not_agreement() -> Result<()> {
    let d = Daemon::start("fragile-problems")?;
    let (code, last, text) = build(
        &d,
        "problems",
        &[
            "--http-probe=false",
            "--exec-probe",
            "python3 -c 'import sys; sys.exit(4)'",
        ],
    )?;
    ensure!(code == Some(7), "exit {code:?}: {text}");
    let problems = last["summary"]["verify"]["problems"].to_string();
    ensure!(
        problems.contains("failed on the original too (exit code 4)"),
        "{last}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_probe_that_hangs_is_named_at_its_deadline() -> Result<()> {
    let d = Daemon::start("fragile-deadline")?;
    let (code, last, text) = build(
        &d,
        "deadline",
        &["--command-timeout", "2", "--exec-probe", "sleep 30"],
    )?;
    // The crawl still proves the slim image; the hung probe proves nothing.
    ensure!(code == Some(0), "exit {code:?}: {text}");
    let s = &last["summary"];
    ensure!(
        s["warnings"]
            .to_string()
            .contains(r#"exec probe \"sleep 30\" timed out after 2 s"#),
        "{s}"
    );
    ensure!(
        s["verify"]["problems"].to_string().contains("timed out"),
        "{s}"
    );
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn readiness_names_the_port_the_app_listens_on() -> Result<()> {
    let d = Daemon::start("fragile-port")?;
    let t = std::time::Instant::now();
    let (code, _, text) = build(&d, "port", &["--env", "PORT=8001", "--ready-timeout", "5"])?;
    ensure!(code == Some(5), "exit {code:?}: {text}");
    ensure!(
        text.contains("did not listen on container port 8000")
            && text.contains("it listens on 8001, 9100 instead"),
        "{text}"
    );
    ensure!(t.elapsed().as_secs() < 120, "took {:?}", t.elapsed());
    d.assert_clean()
}
