//! Benchmarks 1 and 2: what tracing costs the traced app, and what a loaded
//! tracer with an active session costs every other process.

use std::{process::Command, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Ctx,
    fixtures::LOOP_IMAGE,
    proc, profile,
    report::{BenchResult, Figure, Target},
    stats::{Paired, Spread, alternate},
};

const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A workload of `loop`: its arguments inside the container and on the host.
struct Workload {
    name: &'static str,
    container_args: Vec<String>,
    host_args: Vec<String>,
    /// Syscalls (or fork+exec+wait cycles) per run, for per-op figures.
    ops: u64,
}

fn workloads(ctx: &Ctx) -> Vec<Workload> {
    let files_n = ctx.size(100_000, 20_000);
    let fork_n = ctx.size(1_000, 200);
    let host_files = ctx.fixtures.host_files.to_string_lossy().into_owned();
    let loop_bin = ctx.fixtures.loop_bin.to_string_lossy().into_owned();
    vec![
        Workload {
            name: "files",
            container_args: vec!["files".into(), files_n.to_string(), "/data/files".into()],
            host_args: vec!["files".into(), files_n.to_string(), host_files],
            ops: files_n * 5,
        },
        Workload {
            name: "forkexec",
            container_args: vec!["forkexec".into(), fork_n.to_string(), "/loop".into()],
            host_args: vec!["forkexec".into(), fork_n.to_string(), loop_bin],
            ops: fork_n,
        },
    ]
}

/// The loop's own wall and CPU time, in ms, from its JSON line.
fn app_ms(app: &Value) -> Result<(f64, f64)> {
    let ms = |k: &str| {
        app[k]
            .as_f64()
            .map(|ns| ns / 1e6)
            .with_context(|| format!("no {k} in {app}"))
    };
    Ok((ms("ns")?, ms("cpu_ns")?))
}

/// Wall and CPU samples of both sides.
#[derive(Default)]
struct Sides {
    wall: Paired,
    cpu: Paired,
}

impl Sides {
    fn a(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.a.push(wall);
        self.cpu.a.push(cpu);
    }
    fn b(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.b.push(wall);
        self.cpu.b.push(cpu);
    }
}

fn untraced_run(ctx: &Ctx, args: &[String]) -> Result<Value> {
    proc::json(
        Command::new(ctx.bin("slimd-bench"))
            .args(["untraced", "--", LOOP_IMAGE])
            .args(args),
        RUN_TIMEOUT,
    )
}

fn traced_run(ctx: &Ctx, args: &[String]) -> Result<Value> {
    proc::json(
        Command::new(ctx.bin("slimd-bench"))
            .args(["traced", "--ring-kib", "16384", "--", LOOP_IMAGE])
            .args(args),
        RUN_TIMEOUT,
    )
}

/// Benchmark 1: the same loop in the same image, in a tagged session cgroup
/// (tracer loaded, events consumed) and in an untagged one with no slimd.
pub fn traced_app(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let rounds = ctx.rounds();
    let work = workloads(ctx);
    let mut samples = serde_json::Map::new();
    for w in &work {
        let sides = std::cell::RefCell::new(Sides::default());
        let mut traced_stats = Vec::new();
        alternate(
            rounds,
            |_| {
                let out = traced_run(ctx, &w.container_args)?;
                sides.borrow_mut().a(app_ms(&out["app"])?);
                traced_stats.push(json!({
                    "records": out["records"], "deduped": out["deduped"],
                    "lost": out["lost"], "received": out["received"],
                }));
                Ok(())
            },
            |_| {
                let out = untraced_run(ctx, &w.container_args)?;
                sides.borrow_mut().b(app_ms(&out["app"])?);
                Ok(())
            },
        )?;
        let sides = sides.into_inner();
        let ratio = sides.wall.ratio();
        let cpu_ratio = sides.cpu.ratio();
        let (label, target) = match w.name {
            "files" => (
                "open+read+close, stat, failed stat loop: traced / untraced",
                1.15,
            ),
            _ => ("fork+exec+wait loop: traced / untraced", 1.10),
        };
        r.figures.push(
            Figure::from_ratio(&format!("{}_ratio", w.name), label, &ratio)
                .target(Target::le(target)),
        );
        r.figures.push(
            Figure::from_ratio(
                &format!("{}_cpu_ratio", w.name),
                &format!("{}: CPU time (user+sys) traced / untraced", w.name),
                &cpu_ratio,
            )
            .in_table(),
        );
        let per_op = |ms: f64| ms * 1e3 / w.ops as f64;
        r.figures.push(Figure::new(
            &format!("{}_traced_us_per_op", w.name),
            &format!("{}: µs per op, traced", w.name),
            per_op(ratio.a.median),
            "µs",
        ));
        r.figures.push(Figure::new(
            &format!("{}_untraced_us_per_op", w.name),
            &format!("{}: µs per op, untraced", w.name),
            per_op(ratio.b.median),
            "µs",
        ));
        samples.insert(
            w.name.into(),
            json!({
                "traced_wall_ms": sides.wall.a, "untraced_wall_ms": sides.wall.b,
                "traced_cpu_ms": sides.cpu.a, "untraced_cpu_ms": sides.cpu.b,
                "traced_stats": traced_stats, "wall_ratio": ratio, "cpu_ratio": cpu_ratio,
            }),
        );
    }
    let missed = missed_targets(r);
    if !missed.is_empty() {
        match profile_traced(ctx, &work[0]) {
            Ok(Some(p)) => {
                r.findings.push(format!(
                    "{}. Profile of the traced open/stat loop: {}. Top programs (self %): {}",
                    missed.join("; "),
                    p.summary(),
                    programs_text(&p)
                ));
                samples.insert("profile".into(), serde_json::to_value(&p)?);
            }
            Ok(None) => r.findings.push(format!(
                "{} (perf unavailable: no profile)",
                missed.join("; ")
            )),
            Err(e) => r
                .findings
                .push(format!("{} (profiling failed: {e:#})", missed.join("; "))),
        }
    }
    r.method = json!({
        "workloads": work.iter().map(|w| json!({"name": w.name, "args": w.container_args, "ops": w.ops})).collect::<Vec<_>>(),
        "rounds": rounds,
        "traced": "slimd-bench traced: tracer loaded (16 MiB ring), container under a tagged session cgroup, events consumed",
        "untraced": "slimd-bench untraced: docker run of the same image under an untagged /slimd-bench/<name> cgroup (same place in the tree, so the same CPU weight), no slimd loaded",
        "time": "the loop's own CLOCK_MONOTONIC time inside the container (start-up excluded); CPU: getrusage self + children",
    });
    r.samples = Value::Object(samples);
    Ok(())
}

fn programs_text(p: &profile::Profile) -> String {
    p.programs
        .iter()
        .take(5)
        .map(|(name, pct)| format!("{name} {pct:.1}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A longer traced run of `w`, recorded machine-wide by perf while it runs.
fn profile_traced(ctx: &Ctx, w: &Workload) -> Result<Option<profile::Profile>> {
    if !profile::perf_works() {
        return Ok(None);
    }
    let data = ctx.work.join("perf-traced.data");
    let mut args = w.container_args.clone();
    // Long enough to outlast the recording on a busy machine.
    args[1] = (ctx.size(100_000, 20_000) * 4).to_string();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| traced_run(ctx, &args));
        // Past the tracer load and the container start.
        std::thread::sleep(Duration::from_secs(4));
        let rec = profile::record_system(&data, 6);
        let out = run
            .join()
            .map_err(|_| anyhow::anyhow!("traced run panicked"))??;
        rec.map(|()| out)
    })?;
    let names = out["programs"].as_object().cloned().unwrap_or_default();
    Ok(Some(profile::analyse(&data, "loop", &names)?))
}

fn host_run(ctx: &Ctx, args: &[String]) -> Result<(f64, f64)> {
    app_ms(&proc::json(
        Command::new(&ctx.fixtures.loop_bin).args(args),
        RUN_TIMEOUT,
    )?)
}

/// The host loop under perf while a session is held.
fn profile_host(ctx: &Ctx, w: &Workload) -> Result<Option<profile::Profile>> {
    if !profile::perf_works() {
        return Ok(None);
    }
    let data = ctx.work.join("perf-host.data");
    let h = hold_session(ctx)?;
    let mut cmd = vec![ctx.fixtures.loop_bin.to_string_lossy().into_owned()];
    cmd.extend(w.host_args.iter().cloned());
    let rec = profile::record_command(&data, &cmd);
    let out = h.release(Duration::from_secs(60))?;
    rec?;
    let names = out["programs"].as_object().cloned().unwrap_or_default();
    Ok(Some(profile::analyse(&data, "loop", &names)?))
}

/// Benchmark 2: the loop on the host, outside any tag, while a session (with
/// an idle container in it) is active, and with no slimd loaded.
pub fn host(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let rounds = ctx.rounds();
    let work = workloads(ctx);
    let mut with: Vec<Sides> = work.iter().map(|_| Sides::default()).collect();
    let mut without: Vec<Sides> = work.iter().map(|_| Sides::default()).collect();
    let mut held = Vec::new();
    alternate(
        rounds,
        |_| {
            let h = hold_session(ctx)?;
            let res: Result<()> = work.iter().zip(with.iter_mut()).try_for_each(|(w, s)| {
                s.a(host_run(ctx, &w.host_args)?);
                Ok(())
            });
            held.push(h.release(Duration::from_secs(60))?);
            res
        },
        |_| {
            for (w, s) in work.iter().zip(without.iter_mut()) {
                s.b(host_run(ctx, &w.host_args)?);
            }
            Ok(())
        },
    )?;
    let mut samples = serde_json::Map::new();
    for ((w, a), b) in work.iter().zip(with).zip(without) {
        let wall = Paired {
            a: a.wall.a,
            b: b.wall.b,
        };
        let cpu = Paired {
            a: a.cpu.a,
            b: b.cpu.b,
        };
        let ratio = wall.ratio();
        let cpu_ratio = cpu.ratio();
        let label = match w.name {
            "files" => "host open/stat loop: session active / no slimd",
            _ => "host fork+exec loop: session active / no slimd",
        };
        r.figures.push(
            Figure::from_ratio(&format!("{}_ratio", w.name), label, &ratio)
                .target(Target::le(1.03)),
        );
        r.figures.push(
            Figure::from_ratio(
                &format!("{}_cpu_ratio", w.name),
                &format!("{}: CPU time session active / no slimd", w.name),
                &cpu_ratio,
            )
            .in_table(),
        );
        samples.insert(
            w.name.into(),
            json!({
                "session_wall_ms": wall.a, "none_wall_ms": wall.b,
                "session_cpu_ms": cpu.a, "none_cpu_ms": cpu.b,
                "wall_ratio": ratio, "cpu_ratio": cpu_ratio,
            }),
        );
    }
    samples.insert("held".into(), Value::Array(held));
    let missed = missed_targets(r);

    // The floor: what hooking every syscall costs before any program work.
    let tp = proc::json(
        Command::new(&ctx.fixtures.tp_cost)
            .arg(ctx.size(1_000_000, 200_000).to_string())
            .arg(rounds.to_string()),
        RUN_TIMEOUT,
    )?;
    let col = |k: &str| -> Vec<f64> {
        tp["rounds"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r[k].as_f64()).collect())
            .unwrap_or_default()
    };
    let (none, classic, raw) = (col("none_ns"), col("classic_ns"), col("raw_ns"));
    let extra = |with: &[f64]| -> Vec<f64> { with.iter().zip(&none).map(|(w, n)| w - n).collect() };
    r.figures.push(Figure::from_spread(
        "getppid_ns",
        "getppid() CPU time, nothing attached",
        Spread::of(&none),
        "ns",
    ));
    r.figures.push(
        Figure::from_spread(
            "classic_tp_extra_ns",
            "+ per syscall: empty BPF program on raw_syscalls:sys_enter as a classic tracepoint (as slimd attaches its per-syscall exit programs)",
            Spread::of(&extra(&classic)),
            "ns",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::from_spread(
            "raw_tp_extra_ns",
            "+ per syscall: the same program as a raw tracepoint (as slimd attaches its one sys_enter program)",
            Spread::of(&extra(&raw)),
            "ns",
        )
        .in_table(),
    );
    samples.insert("tp_cost".into(), tp);
    if !missed.is_empty() {
        let floor = format!(
            "an empty program on raw_syscalls:sys_enter alone adds {:.0} ns per syscall as a classic tracepoint ({:.0} ns as a raw one) to a {:.0} ns getppid()",
            Spread::of(&extra(&classic)).median,
            Spread::of(&extra(&raw)).median,
            Spread::of(&none).median
        );
        match profile_host(ctx, &work[0]) {
            Ok(Some(p)) => {
                r.findings.push(format!(
                    "{}. Profile of the host loop (not traced) while a session is active: {}. Programs (self %): {}. The floor: {floor}",
                    missed.join("; "),
                    p.summary(),
                    programs_text(&p)
                ));
                samples.insert("profile".into(), serde_json::to_value(&p)?);
            }
            Ok(None) => r.findings.push(format!("{}. {floor}", missed.join("; "))),
            Err(e) => r.findings.push(format!(
                "{} (profiling failed: {e:#}). {floor}",
                missed.join("; ")
            )),
        }
    }
    r.method = json!({
        "workloads": work.iter().map(|w| json!({"name": w.name, "args": w.host_args, "ops": w.ops})).collect::<Vec<_>>(),
        "rounds": rounds,
        "session": "slimd-bench hold: tracer loaded, one session tagged with an idle container in it; the loop runs on the host in the harness's own cgroup",
        "none": "no slimd loaded by this run",
    });
    r.samples = Value::Object(samples);
    Ok(())
}

/// "<figure> is <value>× (target ≤ <t>)" for each ratio that missed its target.
fn missed_targets(r: &BenchResult) -> Vec<String> {
    r.figures
        .iter()
        .filter(|f| f.met == Some(false))
        .map(|f| {
            format!(
                "{} is {:.2}× (target ≤ {:.2})",
                f.label,
                f.value,
                f.target.map_or(0.0, |t| t.value)
            )
        })
        .collect()
}

/// A session held by `slimd-bench hold` (tracer loaded, an idle container
/// tagged) until released.
fn hold_session(ctx: &Ctx) -> Result<proc::Held> {
    proc::Held::start(
        Command::new(ctx.bin("slimd-bench")).args([
            "hold",
            "--ring-kib",
            "16384",
            "--",
            LOOP_IMAGE,
            "sleep",
        ]),
        Duration::from_secs(120),
    )
}
