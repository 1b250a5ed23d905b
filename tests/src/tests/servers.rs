//! End-to-end tests of state (issue 11): client-first servers from Debian
//! packages, probed with their own clients, must come out of `slim build`
//! as images that start as the original does (same user, same supplementary
//! groups, data directories with their owner and mode), answer the same
//! client commands, hold the data seeded at image build time but nothing a
//! build probe wrote, and keep what they are given across a restart.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::{Container, ServerImage, docker, docker_timeout, image_size};
use anyhow::{Context, Result, ensure};
use serde_json::Value;

/// How long a server may take to answer after its container starts.
const START: Duration = Duration::from_secs(90);

/// What a running server looks like from the host.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    /// `Uid:` and `Groups:` of the container's main process.
    uid: String,
    groups: String,
    /// (uid, gid, mode) of each directory the server needs.
    dirs: BTreeMap<String, (u32, u32, u32)>,
}

fn identity(server: ServerImage, c: &Container) -> Result<Identity> {
    let pid = docker(["inspect", "--format", "{{.State.Pid}}", &c.id])?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("status of pid {pid}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let mut dirs = BTreeMap::new();
    for d in server.owned_dirs() {
        let m = std::fs::metadata(format!("/proc/{pid}/root{d}"))
            .with_context(|| format!("{d} in {}", c.id))?;
        ensure!(m.is_dir(), "{d} is not a directory in {}", c.id);
        dirs.insert(d.to_string(), (m.uid(), m.gid(), m.mode() & 0o7777));
    }
    Ok(Identity {
        uid: field("Uid:")?,
        groups: field("Groups:")?,
        dirs,
    })
}

fn kept_reasons<'a>(report: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    report["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["path"] == path)
        .and_then(|k| k["reasons"].as_array())
        .with_context(|| format!("{path} is not kept"))
}

fn has_rule(reasons: &[Value], rule: &str) -> bool {
    reasons.iter().any(|r| r["rule"] == rule)
}

fn state_roots(report: &Value) -> Vec<&str> {
    report["state_roots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["root"].as_str())
        .collect()
}

/// What the report must say about this server's state.
fn check_report(server: ServerImage, r: &Value) -> Result<()> {
    let roots = state_roots(r);
    match server {
        ServerImage::Redis => {
            ensure!(
                roots.contains(&"/var/lib/redis") && roots.contains(&"/var/log/redis"),
                "state roots: {roots:?}"
            );
            ensure!(has_rule(
                kept_reasons(r, "/var/lib/redis/dump.rdb")?,
                "volume"
            ));
            ensure!(has_rule(
                kept_reasons(r, "/run/redis")?,
                "scratch_directory"
            ));
        }
        ServerImage::Postgres => {
            ensure!(
                roots.contains(&"/var/lib/postgresql"),
                "state roots: {roots:?}"
            );
            // An empty directory of the cluster no probe touched.
            let tblspc = kept_reasons(r, "/var/lib/postgresql/15/main/pg_tblspc")?;
            ensure!(
                tblspc
                    .iter()
                    .any(|x| x["rule"] == "state_directory" && x["root"] == "/var/lib/postgresql"),
                "{tblspc:?}"
            );
            ensure!(has_rule(
                kept_reasons(r, "/run/postgresql")?,
                "scratch_directory"
            ));
            ensure!(has_rule(
                kept_reasons(r, "/etc/postgresql/15/main/conf.d")?,
                "used"
            ));
            // The seed script sits in the image; nothing reads it at run time.
            ensure!(kept_reasons(r, "/usr/local/share/slimd-test/seed.sql").is_err());
        }
    }
    Ok(())
}

/// Build with exec probes (verify must pass), then run the original and
/// the slim image side by side and compare them; then write, restart, read.
fn server_keeps_state(server: ServerImage) -> Result<()> {
    let d = Daemon::start(&format!("server-{}", server.name()))?;
    let tag = server.ensure()?;
    let target = format!("slimd-e2e/{}:slim", server.name());
    let mut args = vec![tag, "--tag", &target, "--force", "--http-probe=false"];
    for p in server.exec_probes() {
        args.extend(["--exec-probe", p]);
    }
    let (s, secs) = d.build_verified(&args)?;
    let id = s["id"].as_str().context("no session id")?;
    let rep = d.slim(&["--json", "report", id])?;
    let report: Value = serde_json::from_slice(&rep.stdout).context("report JSON")?;
    check_report(server, &report)?;
    let (orig, slim) = (image_size(tag)?, image_size(&target)?);
    ensure!(
        slim < orig,
        "{target} ({slim} B) not smaller than {tag} ({orig} B)"
    );
    println!(
        "{}: {orig} -> {slim} bytes ({:.1}% smaller) in {secs:.1} s; state roots {:?}",
        server.name(),
        100.0 * (1.0 - slim as f64 / orig as f64),
        state_roots(&report)
    );

    let original = server.run(tag)?;
    let minified = server.run(&target)?;
    for c in [&original, &minified] {
        server.wait_answering(c, START)?;
    }
    // Same user, same supplementary groups, same directories.
    let want = identity(server, &original)?;
    let got = identity(server, &minified)?;
    ensure!(!want.uid.starts_with("0 "), "{tag} runs as root: {want:?}");
    ensure!(got == want, "slim {got:?}\noriginal {want:?}");

    // Seeded data is there; what the build's probes wrote is not.
    for (statement, answer) in [server.seeded(), server.probe_data_absent()] {
        for c in [&original, &minified] {
            let out = server.query(c, statement)?;
            ensure!(
                out == answer,
                "{statement:?} in {}: {out:?}, want {answer:?}",
                c.id
            );
        }
    }

    // Write, restart, read back.
    let (write, read, answer) = server.write_then_read();
    server.query(&minified, write)?;
    docker_timeout(
        ["restart", "--time", "30", &minified.id],
        Duration::from_secs(120),
    )?;
    server.wait_answering(&minified, START)?;
    let out = server.query(&minified, read)?;
    ensure!(
        out == answer,
        "after a restart {read:?}: {out:?}, want {answer:?}"
    );
    let (statement, seeded) = server.seeded();
    ensure!(server.query(&minified, statement)? == seeded);
    drop((original, minified));
    d.assert_clean()
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn redis_keeps_its_volume_log_and_data_across_a_restart() -> Result<()> {
    server_keeps_state(ServerImage::Redis)
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn postgres_keeps_its_seeded_cluster_socket_directory_and_data_across_a_restart() -> Result<()> {
    server_keeps_state(ServerImage::Postgres)
}
