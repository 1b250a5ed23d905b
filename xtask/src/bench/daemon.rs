//! Benchmarks 5 and 6, through a real daemon: `slim build` end to end with
//! its phase timings, and what the daemon costs while it waits.

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    Ctx, proc,
    report::{BenchResult, Figure, Target},
    stats::Spread,
};

/// A `slimd serve` of our own, with its own socket, state and cgroup root.
pub struct Daemon {
    child: Option<Child>,
    pub pid: u32,
    socket: PathBuf,
    slim: PathBuf,
    pub log: PathBuf,
}

/// Phases that are the app's own time: starting and probing it, and the
/// same again for the slim image in verify.
const APP_PHASES: [&str; 3] = ["start", "probe", "verify"];

impl Daemon {
    pub fn start(ctx: &Ctx, name: &str) -> Result<Daemon> {
        Self::start_with(ctx, name, &[])
    }

    pub fn start_with(ctx: &Ctx, name: &str, extra: &[&str]) -> Result<Daemon> {
        let dir = ctx.work.join(format!("daemon-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("slimd.log");
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let socket = dir.join("slimd.sock");
        let child = Command::new(ctx.bin("slimd"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--cgroup-root", "slimd-bench-daemon"])
            .args(extra)
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("starting slimd serve")?;
        let mut d = Daemon {
            pid: child.id(),
            child: Some(child),
            socket,
            slim: ctx.bin("slim"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = proc::output(
                Command::new(&d.slim)
                    .arg("--socket")
                    .arg(&d.socket)
                    .arg("status"),
                Duration::from_secs(30),
            )
            .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(d);
            }
            if Instant::now() > deadline {
                d.stop();
                bail!("slimd did not answer within 60 s; see {}", d.log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `slim --json ARGS`: the NDJSON lines, wall seconds, exit status.
    pub fn slim_json(&self, args: &[&str]) -> Result<(Vec<Value>, f64, ExitStatus)> {
        let t = Instant::now();
        let out = proc::output(
            Command::new(&self.slim)
                .arg("--socket")
                .arg(&self.socket)
                .arg("--json")
                .args(args),
            Duration::from_secs(900),
        )?;
        let secs = t.elapsed().as_secs_f64();
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok((lines, secs, out.status))
    }

    /// `slim --json ARGS` that prints one JSON document (`sessions`,
    /// `report`): the document.
    pub fn slim_doc(&self, args: &[&str]) -> Result<Value> {
        let out = proc::output(
            Command::new(&self.slim)
                .arg("--socket")
                .arg(&self.socket)
                .arg("--json")
                .args(args),
            Duration::from_secs(60),
        )?;
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("slim --json {args:?} printed no JSON document"))
    }

    /// Peak resident set since start, in MB (10^6 bytes).
    pub fn vm_hwm_mb(&self) -> f64 {
        proc::status_kib(self.pid, "VmHWM").map_or(0.0, proc::kib_to_mb)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            proc::terminate(c.id());
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            proc::kill_group(c.id());
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `slim build`: phase -> ms, and the wall time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Build {
    pub phases: BTreeMap<String, f64>,
    pub wall_ms: f64,
    pub summary: Value,
}

impl Build {
    pub fn total_ms(&self) -> f64 {
        self.phases.values().sum()
    }
    pub fn app_ms(&self) -> f64 {
        APP_PHASES.iter().filter_map(|p| self.phases.get(*p)).sum()
    }
    pub fn own_ms(&self) -> f64 {
        self.total_ms() - self.app_ms()
    }
}

/// Runs `slim build IMAGE --tag TARGET --force EXTRA...` and checks it
/// succeeded.
pub fn build(d: &Daemon, image: &str, target: &str, extra: &[&str]) -> Result<Build> {
    let mut args = vec!["build", image, "--tag", target, "--force"];
    args.extend_from_slice(extra);
    let (lines, secs, status) = d.slim_json(&args)?;
    let last = lines.last().cloned().unwrap_or(Value::Null);
    if !status.success() || last["event"] != "done" {
        bail!(
            "slim build {image} failed ({status}): {last}; daemon log: {}",
            d.log.display()
        );
    }
    let phases = lines
        .iter()
        .filter(|l| l["event"] == "phase_done")
        .filter_map(|l| Some((l["phase"].as_str()?.to_string(), l["ms"].as_f64()?)))
        .collect();
    Ok(Build {
        phases,
        wall_ms: secs * 1e3,
        summary: last["summary"].clone(),
    })
}

/// Wall time of `docker save IMAGE` into nothing: the export the assemble
/// phase starts with, without us reading it.
fn docker_save_ms(image: &str) -> Result<f64> {
    let t = Instant::now();
    let st = Command::new("docker")
        .args(["save", image])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("docker save {image} failed");
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// The fixture images of the end-to-end tests, built by the helper.
pub fn fixture_images(ctx: &Ctx) -> Result<Value> {
    proc::json(
        Command::new(ctx.bin("slimd-bench")).arg("images"),
        Duration::from_secs(3600),
    )
}

/// Images at most this big must build in under [`OWN_TIME_TARGET_MS`] of
/// our own time.
const TARGET_MAX_BYTES: f64 = 250e6;
/// Our own time per build (everything but the app starting and answering).
const OWN_TIME_TARGET_MS: f64 = 3000.0;

/// Benchmark 5: `slim build` of every fixture image of the end-to-end tests
/// (with the flags that exercise it), phase by phase; for python-app and
/// cli-oneshot also `docker save` alone, the floor of the assemble phase.
pub fn e2e_build(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let images = fixture_images(ctx)?;
    let fixtures: Vec<(String, String, Vec<String>)> = images["fixtures"]
        .as_array()
        .context("fixtures")?
        .iter()
        .map(|f| {
            let flags = f["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            (
                f["name"].as_str().unwrap_or("?").to_string(),
                f["image"].as_str().unwrap_or("?").to_string(),
                flags,
            )
        })
        .collect();
    let rounds = ctx.rounds().clamp(1, 5);
    // The other fixtures: fewer rounds, the whole set stays within minutes.
    let few = rounds.min(3);
    let mut d = Daemon::start(ctx, "e2e")?;
    let mut samples = serde_json::Map::new();
    let mut missed = Vec::new();
    for (name, image, flags) in &fixtures {
        let detailed = name == "python-app" || name == "cli-oneshot";
        let target = format!("slimd-bench/{name}:slim");
        let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut builds = Vec::new();
        let mut saves = Vec::new();
        for i in 0..if detailed { rounds } else { few } {
            let b = build(&d, image, &target, &flag_refs)?;
            let save_ms = if detailed {
                // What Docker alone takes to export the image, right after.
                Some(docker_save_ms(image)?)
            } else {
                None
            };
            println!(
                "  {name} #{i}: total {:.0} ms, own {:.0} ms, app {:.0} ms{}",
                b.total_ms(),
                b.own_ms(),
                b.app_ms(),
                save_ms
                    .map(|s| format!("; docker save alone {s:.0} ms"))
                    .unwrap_or_default()
            );
            builds.push(b);
            saves.extend(save_ms);
        }
        let own = Spread::of(&builds.iter().map(Build::own_ms).collect::<Vec<_>>());
        let total = Spread::of(&builds.iter().map(Build::total_ms).collect::<Vec<_>>());
        let app = Spread::of(&builds.iter().map(Build::app_ms).collect::<Vec<_>>());
        let bytes = builds[0].summary["sizes"]["original_bytes"]
            .as_f64()
            .unwrap_or(0.0);
        let size = format!("{:.0} MB", bytes / 1e6);
        let mut own_fig = Figure::from_spread(
            &format!("{name}_own_ms"),
            &format!("{name} ({size}): our own time (total − start, probe, verify)"),
            own,
            "ms",
        );
        if bytes <= TARGET_MAX_BYTES {
            own_fig = own_fig.target(Target::lt(OWN_TIME_TARGET_MS));
            if own.median >= OWN_TIME_TARGET_MS {
                missed.push(format!(
                    "{name} ({size}): {:.1} s of our own time per build (target < {:.0} s)",
                    own.median / 1e3,
                    OWN_TIME_TARGET_MS / 1e3
                ));
            }
        } else {
            own_fig = own_fig.in_table();
        }
        r.figures.push(own_fig);
        r.figures.push(
            Figure::from_spread(
                &format!("{name}_total_ms"),
                &format!("{name}: whole build"),
                total,
                "ms",
            )
            .in_table(),
        );
        if !saves.is_empty() {
            r.figures.push(
                Figure::from_spread(
                    &format!("{name}_docker_save_ms"),
                    &format!("{name}: of our own time, `docker save` alone (timed separately)"),
                    Spread::of(&saves),
                    "ms",
                )
                .in_table(),
            );
        }
        r.figures.push(Figure::from_spread(
            &format!("{name}_app_ms"),
            &format!("{name}: the app's start-up and probes (start, probe, verify)"),
            app,
            "ms",
        ));
        let mut phases = BTreeMap::new();
        for p in builds[0].phases.keys() {
            let v: Vec<f64> = builds
                .iter()
                .filter_map(|b| b.phases.get(p).copied())
                .collect();
            let s = Spread::of(&v);
            r.figures.push(Figure::from_spread(
                &format!("{name}_{p}_ms"),
                &format!("{name}: phase {p}"),
                s,
                "ms",
            ));
            phases.insert(p.clone(), s);
        }
        samples.insert(
            name.clone(),
            json!({"image": image, "flags": flags, "builds": builds, "phases": phases, "docker_save_ms": saves}),
        );
    }
    r.figures.push(Figure::new(
        "daemon_vm_hwm_mb",
        "daemon peak RSS after the builds",
        d.vm_hwm_mb(),
        "MB",
    ));
    d.stop();
    r.findings.extend(missed);
    r.method = json!({
        "rounds": rounds,
        "rounds_other_fixtures": few,
        "build": "slim --json build IMAGE --tag slimd-bench/NAME:slim --force [the fixture's exec probes], through a fresh slimd serve; phase times from its phase_done lines",
        "own_time": "sum of the phases minus start, probe and verify (the app starting and answering, for the original and then the slim image)",
        "target": format!("own time < {OWN_TIME_TARGET_MS} ms for images up to {TARGET_MAX_BYTES} bytes"),
    });
    r.samples = Value::Object(samples);
    Ok(())
}

/// Benchmark 6: a fresh daemon with no session: RSS and CPU over a minute.
pub fn idle(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let window = Duration::from_secs(ctx.size(60, 10));
    let mut d = Daemon::start(ctx, "idle")?;
    // Let start-up (loading and attaching the programs) settle first.
    std::thread::sleep(Duration::from_secs(5));
    let ticks0 = proc::cpu_ticks(d.pid).context("daemon /proc/PID/stat")?;
    let t0 = Instant::now();
    let mut rss = Vec::new();
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(kib) = proc::status_kib(d.pid, "VmRSS") {
            rss.push(proc::kib_to_mb(kib));
        }
    }
    let ticks1 = proc::cpu_ticks(d.pid).context("daemon /proc/PID/stat")?;
    let secs = t0.elapsed().as_secs_f64();
    let hwm = d.vm_hwm_mb();
    let ring_mb = proc::kib_to_mb(proc::bpf_map_rss_kib(d.pid));
    let anon_mb = proc::status_kib(d.pid, "RssAnon").map_or(0.0, proc::kib_to_mb);
    d.stop();
    let cpu_pct = (ticks1 - ticks0) as f64 / proc::clock_ticks_per_second() as f64 / secs * 100.0;
    let rss_s = Spread::of(&rss);
    r.figures.push(
        Figure::new(
            "rss_max_mb",
            "daemon RSS, idle (max over the window)",
            rss_s.max,
            "MB",
        )
        .target(Target::lt(25.0)),
    );
    r.figures.push(
        Figure::new(
            "cpu_percent",
            "daemon CPU, idle (% of one core)",
            cpu_pct,
            "%",
        )
        .target(Target::lt(0.5)),
    );
    r.figures.push(Figure::new(
        "vm_hwm_mb",
        "daemon peak RSS since start (includes loading the programs)",
        hwm,
        "MB",
    ));
    r.figures.push(
        Figure::new(
            "ring_rss_mb",
            "of the idle RSS: the ring buffer's mapping (slimd maps it only while a session runs)",
            ring_mb,
            "MB",
        )
        .in_table(),
    );
    r.figures.push(Figure::new(
        "anon_rss_mb",
        "of the idle RSS: anonymous memory (heap, stacks)",
        anon_mb,
        "MB",
    ));
    if rss_s.max >= 25.0 {
        r.findings.push(format!(
            "idle RSS {:.1} MB (target < 25 MB): {ring_mb:.1} MB of it is the ring buffer's mmap, {anon_mb:.1} MB anonymous memory",
            rss_s.max
        ));
    }
    r.method = json!({
        "window_s": secs,
        "how": "fresh slimd serve, 5 s to settle, then VmRSS every second and utime+stime from /proc/PID/stat over the window",
    });
    r.samples = json!({ "rss_mb": rss, "cpu_ticks": ticks1 - ticks0 });
    Ok(())
}
