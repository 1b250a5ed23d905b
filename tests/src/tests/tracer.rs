//! End-to-end tests of the tracer: real kernel, real Docker engine, as root.
//! Run by `cargo xtask test` (they are ignored by a plain `cargo test`).

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use slimd::tracer::{EventData, SockAddr, TraceEvent, TraceSummary, Tracer, TracerOptions};

/// The cgroup directory tests use, apart from a daemon's `slimd`.
const ROOT: &str = "slimd-test";

/// Runs `docker run IMAGE ARGS` under a fresh session; returns every event,
/// the counters and the container's output.
async fn traced_run(
    tracer: &Tracer,
    image: &str,
    args: &[&str],
) -> Result<(Vec<TraceEvent>, TraceSummary, std::process::Output)> {
    let name = slimd::session::new_session_id();
    let mut session = tracer.start_session(ROOT, &name)?;
    let mut rx = session.take_events().unwrap();
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--cgroup-parent"])
        .arg(&session.cgroup.parent)
        .arg(image)
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .context("container did not finish within 300 s")??;
    let summary = session.finish().await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    session.remove_cgroup()?;
    ensure!(
        out.status.success(),
        "container failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        tracer.decode_errors() == 0,
        "records that did not decode: {}",
        tracer.decode_errors()
    );
    Ok((events, summary, out))
}

/// Whether a process name is runc's while it sets the container up: `runc
/// init` starts as `/proc/self/exe` (comm `exe`), re-executes itself from a
/// memfd (`/dev/fd/N`, comm `N`), then names itself `runc:[N:...]`. When the
/// container's cgroup is tagged before the first two steps is a matter of
/// timing (a slow VM sees them; this machine usually does not).
fn is_runc_setup(comm: &str) -> bool {
    comm.starts_with("runc")
        || comm == "exe"
        || (!comm.is_empty() && comm.bytes().all(|b| b.is_ascii_digit()))
}

fn tracee_events(events: &[TraceEvent]) -> impl Iterator<Item = &TraceEvent> {
    events.iter().filter(|e| e.comm == "tracee")
}

fn open_path(e: &TraceEvent) -> Option<(&[u8], Option<i32>, i64)> {
    match &e.data {
        EventData::Open { path, dfd, .. } => Some((&path.bytes, *dfd, e.ret)),
        _ => None,
    }
}

/// Test 1: the entrypoint's exec and the dynamic loader's library opens are
/// seen: the tag exists before the container's first instruction.
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn sees_entrypoint_exec_and_loader_opens() -> Result<()> {
    let image = crate::tracee::tracee_image()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let (events, summary, _) = traced_run(&tracer, image, &["true"]).await?;
    let exec_pos = events
        .iter()
        .position(|e| matches!(&e.data, EventData::Exec { filename, .. } if filename.bytes == b"/usr/bin/tracee"))
        .context("no exec of the entrypoint /usr/bin/tracee")?;
    // Nothing of the app ran before its exec: every earlier event is the
    // runtime's own set-up (runc).
    for e in &events[..exec_pos] {
        assert!(
            is_runc_setup(&e.comm),
            "event before the entrypoint exec: {e:?}"
        );
    }
    let exec_args = events[..exec_pos]
        .iter()
        .rev()
        .find(|e| matches!(e.data, EventData::ExecArgs { .. }))
        .context("no execve entry before the exec")?;
    match &exec_args.data {
        EventData::ExecArgs { path, argv, .. } => {
            assert_eq!(path.bytes, b"/usr/bin/tracee");
            assert_eq!(argv, &["/usr/bin/tracee", "true"]);
        }
        _ => unreachable!(),
    }
    let libc = events[exec_pos..].iter().find(|e| {
        e.comm == "tracee"
            && e.ret >= 0
            && open_path(e).is_some_and(|(p, _, _)| p.ends_with(b"libc.so.6"))
    });
    assert!(
        libc.is_some(),
        "the loader's open of libc.so.6 was not seen"
    );
    assert_eq!(summary.stats.lost, 0);
    Ok(())
}

/// Test 2: a busy process outside the tag, running at the same time, yields
/// no events.
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn ignores_untagged_processes() -> Result<()> {
    let image = crate::tracee::tracee_image()?;
    let marker = format!("/tmp/slimd-untagged-marker-{}", std::process::id());
    std::fs::write(&marker, "x")?;
    let mut busy = Command::new("sh")
        .arg("-c")
        .arg(format!("while :; do cat {marker} >/dev/null; done"))
        .spawn()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let result = traced_run(&tracer, image, &["hot", "20000", "50"]).await;
    let _ = busy.kill();
    let _ = busy.wait();
    let _ = std::fs::remove_file(&marker);
    let (events, _, _) = result?;
    assert!(!events.is_empty());
    let host_pid = busy.id();
    for e in &events {
        let text = serde_json::to_string(e)?;
        assert!(
            !text.contains("slimd-untagged-marker"),
            "untagged event leaked: {text}"
        );
        assert_ne!(e.comm, "cat", "untagged process traced: {text}");
        assert_ne!(e.tgid, host_pid);
    }
    Ok(())
}

/// Test 3: relative opens after chdir, opens through a symlink and opens
/// with a dfd carry what is needed to resolve them.
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn reports_relative_symlink_and_dfd_opens() -> Result<()> {
    let image = crate::tracee::tracee_image()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let (events, _, out) = traced_run(&tracer, image, &["paths"]).await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "paths ok");
    let ev: Vec<&TraceEvent> = tracee_events(&events).collect();
    let pos = |pred: &dyn Fn(&TraceEvent) -> bool| ev.iter().position(|e| pred(e));

    let chdir = pos(&|e| {
        matches!(&e.data, EventData::Chdir { path } if path.bytes == b"/data") && e.ret == 0
    })
    .context("chdir /data not seen")?;
    let rel =
        pos(&|e| open_path(e).is_some_and(|(p, d, r)| p == b"rel.txt" && d.is_none() && r >= 0))
            .context("relative open of rel.txt not seen")?;
    assert!(chdir < rel, "the chdir must come before the relative open");
    pos(&|e| open_path(e).is_some_and(|(p, _, r)| p == b"/data/link" && r >= 0))
        .context("open through the symlink not seen")?;
    let dir = ev
        .iter()
        .find(|e| open_path(e).is_some_and(|(p, _, r)| p == b"/data/sub" && r >= 0))
        .context("directory open not seen")?;
    let dirfd = dir.ret as i32;
    pos(&|e| open_path(e).is_some_and(|(p, d, r)| p == b"f.txt" && d == Some(dirfd) && r >= 0))
        .context("openat(dirfd, f.txt) not seen with its dfd")?;
    pos(&|e| {
        matches!(&e.data, EventData::Stat { path, .. } if path.bytes == b"/data/missing.txt")
            && e.ret < 0
    })
    .context("failed stat of a missing file not marked as failed")?;
    pos(&|e| matches!(&e.data, EventData::Readlink { path, .. } if path.bytes == b"/data/link"))
        .context("readlink not seen")?;
    pos(&|e| matches!(&e.data, EventData::Access { path, .. } if path.bytes == b"/data/rel.txt"))
        .context("access not seen")?;
    pos(&|e| open_path(e).is_some_and(|(p, d, _)| p == b"../rel.txt" && d.is_none()))
        .context("open of ../rel.txt after chdir sub not seen")?;

    // And the resolver turns them into absolute image paths.
    let resolved = slimd::resolve::ProcessModel::resolve_all(&events);
    for want in [
        "/data/rel.txt",
        "/data/link",
        "/data/sub/f.txt",
        "/data/sub",
        "/data/missing.txt",
    ] {
        assert!(
            resolved.iter().any(|r| r.path == want),
            "{want} not resolved; got {:?}",
            resolved.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Test 4: connect to a listening 127.0.0.1 port, bind and listen.
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn reports_connect_bind_listen() -> Result<()> {
    let image = crate::tracee::tracee_image()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let (events, _, _) = traced_run(&tracer, image, &["net", "7777"]).await?;
    let want = SockAddr::Inet {
        ip: "127.0.0.1".parse()?,
        port: 7777,
    };
    let bind = tracee_events(&events)
        .find(|e| matches!(&e.data, EventData::Bind { addr, .. } if *addr == want) && e.ret == 0)
        .context("bind 127.0.0.1:7777 not seen")?;
    let bound_fd = match bind.data {
        EventData::Bind { fd, .. } => fd,
        _ => unreachable!(),
    };
    assert!(
        tracee_events(&events).any(|e| matches!(e.data, EventData::Listen { fd, backlog } if fd == bound_fd && backlog == 8) && e.ret == 0),
        "listen on the bound socket not seen"
    );
    assert!(
        tracee_events(&events).any(
            |e| matches!(&e.data, EventData::Connect { addr, .. } if *addr == want) && e.ret == 0
        ),
        "connect to 127.0.0.1:7777 not seen"
    );
    Ok(())
}

/// The syscall set: every syscall the app made is counted, whether or not
/// it has an event (socket and accept have none), and a syscall nobody in
/// the container made is not. (runc's own calls, the exec that starts the
/// app included, are left out by design: see slimd-ebpf's record_syscall.)
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn records_the_syscall_set() -> Result<()> {
    use slimd::harden::syscall_number;
    let image = crate::tracee::tracee_image()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let (_, summary, _) = traced_run(&tracer, image, &["net", "7778"]).await?;
    let names = |nrs: &std::collections::BTreeSet<u32>| -> Vec<&str> {
        nrs.iter()
            .filter_map(|&n| slimd::harden::syscall_name(n))
            .collect()
    };
    println!(
        "syscall set of `tracee net`: {} syscalls: {:?}",
        summary.syscalls.len(),
        names(&summary.syscalls)
    );
    for want in [
        "socket",
        "setsockopt",
        "bind",
        "listen",
        "connect",
        "exit_group",
    ] {
        let nr = syscall_number(want).context("unknown syscall")?;
        ensure!(
            summary.syscalls.contains(&nr),
            "{want} missing from the syscall set {:?}",
            names(&summary.syscalls)
        );
    }
    // glibc's accept() is accept or accept4, by version.
    ensure!(
        ["accept", "accept4"]
            .iter()
            .filter_map(|n| syscall_number(n))
            .any(|nr| summary.syscalls.contains(&nr)),
        "accept missing from the syscall set {:?}",
        names(&summary.syscalls)
    );
    for never in ["reboot", "kexec_load", "init_module"] {
        let nr = syscall_number(never).context("unknown syscall")?;
        ensure!(
            !summary.syscalls.contains(&nr),
            "{never} in the syscall set"
        );
    }
    Ok(())
}

/// Test 5: a million opens over a few hundred files make few records and
/// lose none.
#[tokio::test]
#[ignore = "needs root and Docker: cargo xtask test"]
async fn hot_loop_is_deduplicated_without_loss() -> Result<()> {
    let image = crate::tracee::tracee_image()?;
    let tracer = Tracer::load(TracerOptions::default())?;
    let (events, summary, out) = traced_run(&tracer, image, &["hot", "1000000", "300"]).await?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hot ok 1000000"
    );
    let s = summary.stats;
    println!(
        "hot loop: 1000000 opens over 300 files: {} records emitted, {} repeats dropped in the kernel, {} lost, {} received",
        s.records, s.deduped, s.lost, s.received
    );
    assert_eq!(s.lost, 0, "events were lost");
    assert_eq!(s.received, s.records, "records emitted but not received");
    assert_eq!(events.len() as u64, s.received);
    assert!(s.records < 5_000, "too many records: {}", s.records);
    assert!(s.deduped >= 999_000, "dedup dropped only {}", s.deduped);
    // Every one of the 300 files is still reported once.
    for i in 0..300 {
        let want = format!("/tmp/hot/f{i}");
        assert!(
            tracee_events(&events)
                .any(|e| open_path(e).is_some_and(|(p, _, r)| p == want.as_bytes() && r >= 0)),
            "{want} missing"
        );
    }
    Ok(())
}

/// Test 6: without privileges, loading fails with a readable message.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn unprivileged_load_fails_clearly() -> Result<()> {
    let slimd = crate::tracee::bin("slimd");
    ensure!(slimd.exists(), "{} not built", slimd.display());
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&slimd)
        .args(["trace", "--", "busybox", "true"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "unprivileged trace succeeded?");
    assert!(
        stderr.contains("not allowed to load eBPF programs")
            && stderr.contains("CAP_BPF")
            && stderr.contains("root"),
        "unclear error: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    Ok(())
}

/// A pure cgroup-v2 host: in a private mount namespace, the v1 hierarchies
/// are unmounted and cgroup2 is mounted at /sys/fs/cgroup, as on such
/// hosts; tracefs is unmounted too, as on a fresh machine. `slimd trace --host` makes the session cgroup by hand-equivalent
/// means (mkdir, then the child writes itself into `cgroup.procs` before
/// exec) and must see the command's exec and opens.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn pure_cgroup2_layout() -> Result<()> {
    let slimd = crate::tracee::bin("slimd");
    let script = format!(
        "umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && umount /sys/kernel/tracing && exec {} trace --cgroup-root slimd-v2test --host -- /bin/cat /etc/hostname",
        slimd.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "trace failed: {stderr}");
    ensure!(
        stderr.contains("cgroup2 at /sys/fs/cgroup (Unified)")
            && stderr.contains("/sys/fs/cgroup/slimd-v2test/"),
        "not the pure-v2 layout: {stderr}"
    );
    ensure!(stderr.contains(" 0 lost"), "{stderr}");
    // tracefs was unmounted in that namespace: slimd mounts it itself.
    ensure!(stderr.contains("mounted tracefs"), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    ensure!(
        lines
            .iter()
            .any(|e| e["type"] == "exec" && e["filename"] == "/bin/cat"),
        "no exec of /bin/cat"
    );
    ensure!(
        lines
            .iter()
            .any(|e| e["type"] == "open" && e["path"] == "/etc/hostname" && e["comm"] == "cat"),
        "no open of /etc/hostname"
    );
    Ok(())
}
