//! Running the helper, the workloads and Docker with deadlines, and reading
//! `/proc` figures of other processes.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::process::CommandExt,
    process::{Child, ChildStdin, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Runs a command to completion within `timeout`, capturing its output; on
/// the deadline its whole process group is killed (a stuck `docker run`
/// must not hang the benchmark run).
pub fn output(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_deadline(&mut child, Instant::now() + timeout)
        .with_context(|| format!("{shown} did not finish within {} s", timeout.as_secs()))?;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

fn wait_deadline(child: &mut Child, deadline: Instant) -> Result<std::process::ExitStatus> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.wait();
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL to the process group `pid` leads (children started with
/// `process_group(0)`).
pub fn kill_group(pid: u32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) takes no pointers; 9 is SIGKILL.
    unsafe { kill(-(pid as i32), 9) };
}

/// Sends SIGTERM to one process (not its group).
pub fn terminate(pid: u32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) takes no pointers; 15 is SIGTERM.
    unsafe { kill(pid as i32, 15) };
}

/// Runs a command that must succeed and print a JSON object as its last
/// stdout line; returns that object.
pub fn json(cmd: &mut Command, timeout: Duration) -> Result<Value> {
    let shown = format!("{cmd:?}");
    let out = output(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    last_json(&out.stdout).with_context(|| {
        format!(
            "{shown} printed no JSON object: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn last_json(stdout: &[u8]) -> Option<Value> {
    String::from_utf8_lossy(stdout).lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(Value::is_object)
    })
}

/// A helper process that holds something (a tracer session) until its
/// stdin closes.
pub struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

impl Held {
    /// Starts `cmd` and waits until it prints `ready` on a line of its own.
    pub fn start(cmd: &mut Command, timeout: Duration) -> Result<Held> {
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let stdin = child.stdin.take();
        let mut reader = BufReader::new(child.stdout.take().context("piped")?);
        let (tx, rx) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut line = String::new();
            let ready = reader.read_line(&mut line).is_ok() && line.trim() == "ready";
            let _ = tx.send(ready);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            rest
        });
        match rx.recv_timeout(timeout) {
            Ok(true) => Ok(Held {
                child,
                stdin,
                stdout,
            }),
            _ => {
                kill_group(child.id());
                let _ = child.wait();
                bail!(
                    "{shown} did not become ready within {} s",
                    timeout.as_secs()
                )
            }
        }
    }

    /// Closes its stdin and waits for it; returns its final JSON line.
    pub fn release(mut self, timeout: Duration) -> Result<Value> {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let status = wait_deadline(&mut self.child, Instant::now() + timeout)?;
        let out = self.stdout.join().unwrap_or_default();
        if !status.success() {
            bail!("held helper failed ({status})");
        }
        last_json(&out).context("held helper printed no JSON")
    }
}

/// Fields of `/proc/<pid>/status` in KiB (VmRSS, VmHWM, ...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident KiB of a process's BPF map mappings (the ring buffer: its data
/// pages are mapped twice, so a 16 MiB ring shows as 32 MiB), from
/// `/proc/<pid>/smaps`.
pub fn bpf_map_rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_map = false;
    let mut total = 0;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.contains("bpf-map");
        } else if in_map && let Some(v) = line.strip_prefix("Rss:") {
            total += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// KiB (as /proc reports) to MB (10^6 bytes, as the targets are stated).
pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// User + system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm; utime and stime are fields 14
    // and 15 overall, i.e. 12 and 13 after it.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn clock_ticks_per_second() -> u64 {
    unsafe extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    // SAFETY: sysconf takes an integer; _SC_CLK_TCK is 2 on Linux.
    let v = unsafe { sysconf(2) };
    if v > 0 { v as u64 } else { 100 }
}
