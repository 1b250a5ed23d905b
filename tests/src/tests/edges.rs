//! The daemon's edges, with a real daemon and real users the test creates
//! (and removes, even when it fails): what a member of the socket's group
//! can do and what not — host commands run as the member, host paths checked
//! with the member's rights, sessions that belong to their creator — and
//! requests that are too large, malformed or slow.

use std::{
    io::{Read, Write},
    os::unix::{fs::MetadataExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::TestImage;
use crate::daemon::{Daemon, failed_with, tail};

/// The socket's group, as the daemon names it.
const GROUP: &str = "slimd";
const MEMBER_A: &str = "slimde2ea";
const MEMBER_B: &str = "slimde2eb";
const STRANGER: &str = "slimde2ex";

/// Users (and the group, when it did not exist) made for one test; removed
/// on drop, whatever happened.
struct Users {
    names: Vec<&'static str>,
    made_group: bool,
}

impl Users {
    fn create(members: &[&'static str], others: &[&'static str]) -> Result<Users> {
        for tool in ["useradd", "userdel", "groupadd", "groupdel", "setpriv"] {
            ensure!(
                which(tool),
                "{tool} is missing: apt-get install passwd util-linux"
            );
        }
        let made_group = !group_exists(GROUP);
        let mut users = Users {
            names: Vec::new(),
            made_group,
        };
        if made_group {
            run(Command::new("groupadd").args(["--system", GROUP]))?;
        }
        for (name, member) in members
            .iter()
            .map(|n| (n, true))
            .chain(others.iter().map(|n| (n, false)))
        {
            // A crashed earlier run may have left it.
            let _ = Command::new("userdel").arg(name).output();
            let mut c = Command::new("useradd");
            c.args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
            if member {
                c.args(["--groups", GROUP]);
            }
            run(c.arg(name))?;
            users.names.push(name);
        }
        Ok(users)
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("userdel").arg(n).output();
        }
        if self.made_group {
            let _ = Command::new("groupdel").arg(GROUP).output();
        }
    }
}

fn which(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(c: &mut Command) -> Result<()> {
    let out = c.output().with_context(|| format!("{c:?}"))?;
    ensure!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn uid_of(name: &str) -> Result<u32> {
    let out = Command::new("id").args(["-u", name]).output()?;
    ensure!(out.status.success(), "no user {name}");
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// `slim` where every test user may run it (the build tree may not be
/// searchable for them).
fn slim_for_users(d: &Daemon) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dst = d.dir.join("slim");
    if !dst.exists() {
        std::fs::copy(crate::daemon::bin("slim"), &dst)?;
    }
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
    Ok(dst)
}

/// `slim ARGS` as `user` (with that user's groups), against `d`.
fn slim_as(d: &Daemon, user: &str) -> Result<Command> {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={user}"),
        &format!("--regid={user}"),
        "--init-groups",
        "--",
    ])
    .arg(slim_for_users(d)?)
    .arg("--socket")
    .arg(&d.socket)
    .current_dir("/")
    .stdin(Stdio::null());
    Ok(c)
}

fn output(mut c: Command, timeout: Duration) -> Result<Output> {
    crate::run_with_timeout(&mut c, timeout)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The id in a `--json` run's first line.
fn first_id(out: &str) -> Result<String> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["event"] == "session")
        .and_then(|l| l["id"].as_str().map(str::to_string))
        .with_context(|| format!("no session line in {out}"))
}

/// A member drives the daemon with their own rights: their host command
/// runs as them (the report shows their uid), host paths they may not read
/// (or may not bind read-write) are refused, and their sessions are theirs:
/// another member neither lists, reads, follows nor cancels them (403),
/// and the report on disk is the owner's alone.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn members_act_with_their_own_rights() -> Result<()> {
    let _users = Users::create(&[MEMBER_A, MEMBER_B], &[])?;
    let d = Daemon::start("edges")?;
    let tag = TestImage::StaticServer.ensure()?;
    let uid_a = uid_of(MEMBER_A)?;
    // Tags an earlier run left were built by its daemon, not this one's
    // sessions: a member may not replace them.
    for t in ["slimd-e2e/edges:slim", "slimd-e2e/edges-b:slim"] {
        let _ = crate::docker(["rmi", t]);
    }

    // A's host command runs in A's client, as A.
    let mut build = slim_as(&d, MEMBER_A)?;
    build.args([
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/edges:slim",
        "--force",
        "--probe-cmd",
        "id -u",
    ]);
    let out = output(build, Duration::from_secs(600))?;
    let text = stdout(&out);
    ensure!(
        out.status.success(),
        "member A's build failed: {text}\n{}\ndaemon log: {}",
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log())
    );
    let id_a = first_id(&text)?;
    let asked = text
        .lines()
        .any(|l| l.contains("\"host_commands\"") && l.contains("id -u"));
    ensure!(asked, "the daemon never asked the client to run it: {text}");
    let report_path = d.state.join("sessions").join(&id_a).join("report.json");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
    for run in [&report["probe"], &report["verify"]["probe"]] {
        let host = &run["host_commands"][0];
        ensure!(
            host["stdout"]["text"] == format!("{uid_a}\n").as_str(),
            "the host command did not run as member A (uid {uid_a}): {host}"
        );
    }
    let meta = std::fs::metadata(&report_path)?;
    ensure!(
        meta.uid() == uid_a && meta.mode() & 0o777 == 0o600,
        "report.json is uid {} mode {:o}, expected uid {uid_a} mode 600",
        meta.uid(),
        meta.mode() & 0o777
    );
    let own = output(
        {
            let mut c = slim_as(&d, MEMBER_A)?;
            c.args(["report", &id_a]);
            c
        },
        Duration::from_secs(30),
    )?;
    ensure!(
        own.status.success(),
        "A cannot read A's report: {}",
        String::from_utf8_lossy(&own.stderr)
    );

    // --force replaces only an image the member's own sessions built: not
    // one that root tagged, nor A's from B; A's own, yes.
    let root_tag = "slimd-e2e/edges-root:latest";
    // Any image but the original (whose own tags are refused earlier).
    crate::docker(["tag", TestImage::ShellEntrypoint.ensure()?, root_tag])?;
    let id_of = |t: &str| crate::docker(["image", "inspect", "-f", "{{.Id}}", t]);
    let before = [id_of(root_tag)?, id_of("slimd-e2e/edges:slim")?];
    for (user, target) in [(MEMBER_A, root_tag), (MEMBER_B, "slimd-e2e/edges:slim")] {
        let mut c = slim_as(&d, user)?;
        c.args(["build", tag, "--tag", target, "--force"]);
        let err = failed_with(&output(c, Duration::from_secs(60))?, 8)?;
        ensure!(
            err.contains("no session of yours built"),
            "{user} --force onto {target}: {err}"
        );
    }
    let after = [id_of(root_tag)?, id_of("slimd-e2e/edges:slim")?];
    ensure!(before == after, "a refused --force moved a tag");
    crate::docker(["rmi", root_tag])?;
    let mut again = slim_as(&d, MEMBER_A)?;
    again.args(["build", tag, "--tag", "slimd-e2e/edges:slim", "--force"]);
    let again = output(again, Duration::from_secs(600))?;
    ensure!(
        again.status.success(),
        "A cannot replace A's own image: {}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Host paths: what A may not read, and read-write binds, are refused.
    for (mount, why) in [
        ("/etc/shadow:/x", "read-write"),
        ("/etc/shadow:/x:ro", "permission denied"),
        ("/dev/null:/x:ro", "device node"),
        ("type=bind,src=/etc,target=/x,readonly", "permission denied"),
    ] {
        let mut c = slim_as(&d, MEMBER_A)?;
        c.args([
            "build",
            tag,
            "--tag",
            "slimd-e2e/edges:never",
            "--mount",
            mount,
        ]);
        let out = output(c, Duration::from_secs(60))?;
        let err = failed_with(&out, 8)?;
        ensure!(err.contains(why), "--mount {mount}: {err}");
    }
    ensure!(
        d.containers()?.is_empty(),
        "a refused build made a container"
    );

    // B sees nothing of A's, and may touch none of it.
    let mut list = slim_as(&d, MEMBER_B)?;
    list.args(["--json", "sessions"]);
    let listed = stdout(&output(list, Duration::from_secs(30))?);
    ensure!(!listed.contains(&id_a), "B lists A's session: {listed}");
    for args in [["report", &id_a], ["attach", &id_a], ["cancel", &id_a]] {
        let mut c = slim_as(&d, MEMBER_B)?;
        c.args(args);
        let err = failed_with(&output(c, Duration::from_secs(30))?, 8)?;
        ensure!(err.contains("belongs to another user"), "B {args:?}: {err}");
    }

    // A running session of B's: A may neither cancel nor follow it.
    let mut c = slim_as(&d, MEMBER_B)?;
    c.args([
        "--json",
        "build",
        tag,
        "--tag",
        "slimd-e2e/edges-b:slim",
        "--force",
        "--continue-after",
        "signal",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let b_client = c.spawn()?;
    let id_b = wait_for_running(&d)?;
    for args in [["cancel", &id_b], ["attach", &id_b]] {
        let mut c = slim_as(&d, MEMBER_A)?;
        c.args(args);
        let err = failed_with(&output(c, Duration::from_secs(30))?, 8)?;
        ensure!(err.contains("belongs to another user"), "A {args:?}: {err}");
    }
    ensure!(
        !d.containers()?.is_empty(),
        "B's session did not survive A's cancel"
    );
    let mut c = slim_as(&d, MEMBER_B)?;
    c.args(["cancel", &id_b]);
    ensure!(
        output(c, Duration::from_secs(30))?.status.success(),
        "B cannot cancel B's session"
    );
    let b_out = b_client.wait_with_output()?;
    ensure!(
        b_out.status.code() == Some(130),
        "B's build after B's cancel: {:?} {}",
        b_out.status.code(),
        stdout(&b_out)
    );
    // containerd through the daemon: a member reaches only the node's own
    // socket (the daemon, root, would connect wherever they point it).
    let mut c = slim_as(&d, MEMBER_A)?;
    c.args(["xray", "--containerd", "/var/run/docker.sock", "debian:12"]);
    let err = failed_with(&output(c, Duration::from_secs(30))?, 8)?;
    ensure!(
        err.contains("only root may point the daemon at another containerd socket"),
        "A's xray through another socket: {err}"
    );
    d.assert_clean()
}

/// The one running session of `d`, once its container is up.
fn wait_for_running(d: &Daemon) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let out = d.slim(&["--json", "sessions"])?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(s) = list.iter().find(|s| s["state"] == "running")
            && !d.containers()?.is_empty()
        {
            return Ok(s["id"].as_str().unwrap_or_default().to_string());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!("no session came to run; log: {}", tail(&d.log()))
}

/// A user outside the group who gets past the socket's file mode is
/// refused by the daemon's peer-credential check.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn a_stranger_is_refused_by_peer_credentials() -> Result<()> {
    let _users = Users::create(&[MEMBER_A], &[STRANGER])?;
    let d = Daemon::start("edges-stranger")?;
    let mut c = slim_as(&d, STRANGER)?;
    c.arg("status");
    let err = failed_with(&output(c, Duration::from_secs(30))?, 1)?;
    ensure!(err.contains("Permission denied"), "file mode: {err}");
    // Past the file mode: the daemon itself must say no.
    std::fs::set_permissions(
        &d.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )?;
    let mut c = slim_as(&d, STRANGER)?;
    c.arg("status");
    let err = failed_with(&output(c, Duration::from_secs(30))?, 8)?;
    ensure!(err.contains("not allowed"), "peer check: {err}");
    ensure!(
        d.log()
            .contains("refused API request from a peer outside the slimd group"),
        "the refusal was not logged"
    );
    // A member (by a supplementary group) passes the same check.
    let mut c = slim_as(&d, MEMBER_A)?;
    c.arg("status");
    let out = output(c, Duration::from_secs(30))?;
    ensure!(
        out.status.success(),
        "member: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// One raw HTTP/1.1 request on the socket: the status code and body.
fn raw(socket: &Path, head: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(head.as_bytes())?;
    // The daemon may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((code, body))
}

fn post(socket: &Path, path: &str, body: &[u8]) -> Result<(u16, String)> {
    raw(
        socket,
        &format!(
            "POST {path} HTTP/1.1\r\nhost: slimd\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ),
        body,
    )
}

/// Oversized, malformed and half-sent requests get 413, 400 (naming the
/// field) and a closed connection, and the daemon goes on serving others
/// meanwhile and afterwards.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn bad_requests_are_bounded_and_others_still_served() -> Result<()> {
    let d = Daemon::start("edges-requests")?;
    let big = vec![b' '; 9 << 20];
    let (code, body) = post(&d.socket, "/v1/sessions", &big)?;
    ensure!(code == 413, "oversized: {code} {body}");
    ensure!(body.contains("larger than"), "{body}");

    let (code, body) = post(
        &d.socket,
        "/v1/sessions",
        br#"{"image":"x","probes":{"exec_probes":[1]}}"#,
    )?;
    ensure!(code == 400, "malformed: {code} {body}");
    ensure!(body.contains("probes.exec_probes[0]"), "{body}");
    let (code, body) = post(&d.socket, "/v1/sessions", b"{\"image\":")?;
    ensure!(code == 400 && body.contains("not JSON"), "{code} {body}");
    let long = format!(r#"{{"image":"{}"}}"#, "a".repeat(5000));
    let (code, body) = post(&d.socket, "/v1/sessions", long.as_bytes())?;
    ensure!(code == 400 && body.contains("image"), "{code} {body}");
    let (code, body) = post(
        &d.socket,
        "/v1/sessions",
        br#"{"image":"x","detach":true,"probes":{"probe_cmds":["id"]}}"#,
    )?;
    ensure!(
        code == 400 && body.contains("--detach cannot be used with --probe-cmd"),
        "{code} {body}"
    );

    // A client that connects and sends half a request holds only itself.
    let mut slow = UnixStream::connect(&d.socket)?;
    slow.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: sl")?;
    let t = Instant::now();
    let status = d.slim(&["status"])?;
    ensure!(
        status.status.success() && t.elapsed() < Duration::from_secs(5),
        "status while a slow client is connected: {:?} after {:?}",
        status.status,
        t.elapsed()
    );
    // ...and is dropped once its time to send the head is up.
    slow.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let t = Instant::now();
    let _ = slow.read_to_end(&mut buf);
    ensure!(
        t.elapsed() < Duration::from_secs(25),
        "the half-sent request was held for {:?}",
        t.elapsed()
    );

    let after = d.slim(&["status"])?;
    ensure!(after.status.success(), "the daemon stopped serving");
    Ok(())
}

/// `--detach` returns once the session has started, printing its id;
/// `slim attach ID` follows it to the end with the build's exit code, and
/// again once it has ended.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn detach_returns_and_attach_follows_to_the_end() -> Result<()> {
    let d = Daemon::start("edges-detach")?;
    let tag = TestImage::StaticServer.ensure()?;
    let t = Instant::now();
    let out = d.slim(&[
        "build",
        tag,
        "--tag",
        "slimd-e2e/edges-detach:slim",
        "--force",
        "--detach",
    ])?;
    ensure!(
        out.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout(&out).trim().to_string();
    ensure!(
        t.elapsed() < Duration::from_secs(10) && !id.is_empty(),
        "--detach took {:?} and printed {id:?}",
        t.elapsed()
    );
    let attached = d.slim(&["attach", &id])?;
    let text = stdout(&attached);
    ensure!(
        attached.status.success() && !text.trim().is_empty(),
        "attach: {:?} {text} {}",
        attached.status.code(),
        String::from_utf8_lossy(&attached.stderr)
    );
    let again = d.slim(&["attach", &id])?;
    ensure!(
        again.status.code() == attached.status.code() && stdout(&again) == text,
        "attach after the end: {:?} {}",
        again.status.code(),
        stdout(&again)
    );
    let refused = d.slim(&["build", tag, "--detach", "--probe-cmd", "true"])?;
    let err = failed_with(&refused, 2)?;
    ensure!(err.contains("--probe-cmd"), "{err}");
    d.assert_clean()
}
