//! Benchmark 3: a burst of ≥ 1,000,000 file events over 100,000 distinct
//! files in a traced container: what reaches userspace, how fast, and what
//! is lost; then the largest burst rate that loses nothing. When the default
//! ring loses events, that rate is bisected (and larger rings tried); when
//! it loses none, smaller rings show how much headroom there is.

use std::{process::Command, time::Duration};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Ctx,
    fixtures::{BURST_FILES, LOOP_IMAGE},
    proc,
    report::{BenchResult, Figure, Target},
    stats::Spread,
};

/// The daemon's default ring buffer (slimd serve --ring-buffer-mb 16).
const DEFAULT_RING_KIB: u32 = 16 * 1024;

#[derive(Clone, Debug, Serialize)]
struct Trial {
    ring_kib: u32,
    /// `stat` or `open` (open+close).
    op: &'static str,
    procs: u32,
    /// Ops/s the loop was paced to; 0: as fast as it can.
    paced_rate: u64,
    ops: u64,
    burst_s: f64,
    /// CPU time of the burst processes (user+sys).
    cpu_s: f64,
    /// Ops/s the loop achieved.
    offered_rate: f64,
    records: u64,
    deduped: u64,
    lost: u64,
    received: u64,
    /// Records received per second, from the burst's first open to the
    /// last record the consumer took.
    delivered_rate: f64,
    /// Seconds after the burst's end until the last record was consumed.
    drain_lag_s: f64,
    distinct_paths: u64,
}

/// Burst processes: one per core, so the app offers what the machine can.
fn procs() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn trial(ctx: &Ctx, ring_kib: u32, op: &'static str, total: u64, rate: u64) -> Result<Trial> {
    let out = proc::json(
        Command::new(ctx.bin("slimd-bench"))
            .args([
                "traced",
                "--paths",
                "--ring-kib",
                &ring_kib.to_string(),
                "--",
            ])
            .arg(LOOP_IMAGE)
            .args([
                "burst",
                op,
                &total.to_string(),
                "/burst",
                &BURST_FILES.to_string(),
                &rate.to_string(),
                &procs().to_string(),
            ]),
        Duration::from_secs(900),
    )?;
    let app = &out["app"];
    let num = |v: &Value| v.as_f64().with_context(|| format!("bad figure in {out}"));
    let (start, end) = (num(&app["start_ns"])?, num(&app["end_ns"])?);
    let last = num(&out["last_received_ns"])?;
    let burst_s = (end - start) / 1e9;
    let received = out["received"].as_u64().unwrap_or(0);
    let t = Trial {
        ring_kib,
        op,
        procs: procs(),
        paced_rate: rate,
        ops: total,
        burst_s,
        cpu_s: num(&app["cpu_ns"])? / 1e9,
        offered_rate: total as f64 / burst_s,
        records: out["records"].as_u64().unwrap_or(0),
        deduped: out["deduped"].as_u64().unwrap_or(0),
        lost: out["lost"].as_u64().unwrap_or(0),
        received,
        delivered_rate: received as f64 / ((last - start) / 1e9).max(1e-9),
        drain_lag_s: ((last - end) / 1e9).max(0.0),
        distinct_paths: out["distinct_paths"].as_u64().unwrap_or(0),
    };
    println!(
        "  {} x{}, ring {} KiB, paced {}: {:.0} ops/s offered over {:.1} s, {} records, {} lost, {:.0} delivered/s",
        t.op,
        t.procs,
        t.ring_kib,
        t.paced_rate,
        t.offered_rate,
        t.burst_s,
        t.records,
        t.lost,
        t.delivered_rate
    );
    Ok(t)
}

/// "16 MiB" or "256 KiB".
fn ring_text(kib: u32) -> String {
    if kib >= 1024 {
        format!("{} MiB", kib / 1024)
    } else {
        format!("{kib} KiB")
    }
}

pub fn run(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let total = 1_000_000;
    let mut trials = Vec::new();
    // Flat out with the default ring, a few times: the headline figures.
    let repeats = ctx.rounds().clamp(1, 3);
    for _ in 0..repeats {
        trials.push(trial(ctx, DEFAULT_RING_KIB, "stat", total, 0)?);
    }
    let spread =
        |ts: &[Trial], f: &dyn Fn(&Trial) -> f64| Spread::of(&ts.iter().map(f).collect::<Vec<_>>());
    let delivered = spread(&trials, &|t| t.delivered_rate);
    let offered = spread(&trials, &|t| t.offered_rate);
    let records = spread(&trials, &|t| t.records as f64);
    let lost = spread(&trials, &|t| t.lost as f64);
    let burst_s = spread(&trials, &|t| t.burst_s);
    let max_lost = trials.iter().map(|t| t.lost).max().unwrap_or(0);
    let distinct = trials.iter().map(|t| t.distinct_paths).min().unwrap_or(0);
    // The same burst as open+close, once: a heavier syscall, a lower rate.
    trials.push(trial(ctx, DEFAULT_RING_KIB, "open", total, 0)?);

    let mut best: Option<(f64, u32)> = None;
    let note_best = |best: &mut Option<(f64, u32)>, t: &Trial| {
        if t.lost == 0 && best.is_none_or(|(rate, _)| t.offered_rate > rate) {
            *best = Some((t.offered_rate, t.ring_kib));
        }
    };
    for t in &trials {
        note_best(&mut best, t);
    }
    // Headroom: the smallest ring that still loses nothing flat out.
    let mut smallest_clean = None;
    if max_lost > 0 {
        for ring in [64 * 1024, 256 * 1024] {
            let t = trial(ctx, ring, "stat", total, 0)?;
            note_best(&mut best, &t);
            trials.push(t);
        }
        let (mut lo, mut hi) = (0.0f64, offered.median);
        for _ in 0..ctx.size(5, 2) {
            let rate = (lo + hi) / 2.0;
            let t = trial(ctx, DEFAULT_RING_KIB, "stat", total, rate as u64)?;
            if t.lost == 0 {
                lo = rate;
            } else {
                hi = rate;
            }
            note_best(&mut best, &t);
            trials.push(t);
        }
    } else {
        smallest_clean = Some(DEFAULT_RING_KIB);
        for ring in [1024, 256, 64] {
            let t = trial(ctx, ring, "stat", total, 0)?;
            let clean = t.lost == 0;
            trials.push(t);
            if !clean {
                break;
            }
            smallest_clean = Some(ring);
        }
    }

    let procs = procs();
    r.figures.push(
        Figure::from_spread(
            "offered_rate",
            &format!("burst: stats/s the app made flat out ({procs} processes)"),
            offered,
            "events/s",
        )
        .in_table(),
    );
    r.figures.push(Figure::from_spread(
        "burst_s",
        "burst: duration of 1,000,000 stats",
        burst_s.map(|s| s * 1e3),
        "ms",
    ));
    r.figures.push(
        Figure::from_spread(
            "delivered_rate",
            "burst: records delivered to userspace per second (16 MiB ring)",
            delivered,
            "events/s",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::from_spread(
            "records",
            "burst: ring-buffer records emitted",
            records,
            "events",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::from_spread(
            "lost",
            "burst: events lost (16 MiB ring, flat out)",
            lost,
            "events",
        )
        .target(Target::eq(0.0)),
    );
    r.figures.push(Figure::new(
        "distinct_paths",
        "burst: distinct paths delivered (min over runs)",
        distinct as f64,
        "events",
    ));
    match best {
        Some((rate, ring)) => r.figures.push(
            Figure::new(
                "max_zero_loss_rate",
                &format!(
                    "largest burst rate with zero loss ({} ring{})",
                    ring_text(ring),
                    if max_lost == 0 {
                        "; the app's own limit here"
                    } else {
                        ""
                    }
                ),
                rate,
                "events/s",
            )
            .in_table(),
        ),
        None => r.figures.push(
            Figure::new(
                "max_zero_loss_rate",
                "largest burst rate with zero loss",
                0.0,
                "events/s",
            )
            .in_table()
            .note("every trial lost events"),
        ),
    }
    if let Some(kib) = smallest_clean {
        r.figures.push(
            Figure::new(
                "smallest_clean_ring_kib",
                "smallest ring with zero loss at that rate (KiB)",
                kib as f64,
                "KiB",
            )
            .in_table(),
        );
    }
    if max_lost > 0 {
        r.findings.push(format!(
            "the 16 MiB ring lost events flat out (up to {max_lost} of {total}); see the trials in event-capacity.json"
        ));
    }
    r.method = json!({
        "burst": format!("{total} stats of existing files, cycling over {BURST_FILES} distinct paths in 100 directories, split over {procs} processes in one traced container; once more as open+close"),
        "consumer": "slimd-bench traced: the tracer library's reader task decodes each record and hands it over a channel; the consumer counts it and records its path",
        "delivered_rate": "records received / (last record consumed - first op), CLOCK_MONOTONIC",
        "search": "flat out with the 16 MiB default ring; if anything was lost, 64 and 256 MiB rings and a bisection of the paced rate; if not, smaller rings (1 MiB, 256 KiB, 64 KiB) until one loses",
    });
    r.samples = json!({ "trials": trials });
    Ok(())
}
