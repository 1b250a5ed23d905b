//! Benchmark: `slim diff` of two ~1 GB images, time and peak memory. Two
//! synthetic `docker save` archives (B is A with 5% of its files' contents
//! changed, 2% removed, 1% re-moded and 2% more added) are diffed by the
//! helper with the library calls `slim diff --file A --file B --json` makes.
//! The target: under 200 MB RSS.

use std::{fs, process::Command, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Ctx, proc,
    report::{BenchResult, Figure, Target},
    stats::Spread,
};

const TIMEOUT: Duration = Duration::from_secs(900);

fn num(v: &Value, key: &str) -> Result<f64> {
    v[key].as_f64().with_context(|| format!("no {key} in {v}"))
}

pub fn run(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let mb = ctx.size(1000, 100);
    let files = ctx.size(20_000, 2_000);
    let dir = ctx.work.join("diff");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let synth = proc::json(
        Command::new(ctx.bin("slimd-bench"))
            .arg("synth-pair")
            .arg("--dir")
            .arg(&dir)
            .args(["--mb", &mb.to_string(), "--files", &files.to_string()]),
        TIMEOUT,
    )?;
    let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
    let rounds = ctx.rounds().clamp(1, 3);
    let mut runs = Vec::new();
    for _ in 0..rounds {
        runs.push(proc::json(
            Command::new(ctx.bin("slimd-bench"))
                .arg("diff")
                .arg(&a)
                .arg(&b)
                .arg("--scratch")
                .arg(dir.join("scratch")),
            TIMEOUT,
        )?);
    }
    let _ = fs::remove_dir_all(&dir);
    let col = |k: &str| -> Vec<f64> { runs.iter().filter_map(|o| o[k].as_f64()).collect() };
    let gb = num(&runs[0], "input_bytes")? / 1e9;
    r.figures.push(
        Figure::from_spread(
            "diff_s",
            &format!(
                "slim diff of two {:.1} GB archives (read both, diff, JSON)",
                gb / 2.0
            ),
            Spread::of(&col("total_s")),
            "s",
        )
        .in_table(),
    );
    for (id, label) in [("read_s", "step read both"), ("diff_s", "step diff + JSON")] {
        r.figures.push(Figure::from_spread(
            &format!("step_{id}"),
            label,
            Spread::of(&col(id).iter().map(|s| s * 1e3).collect::<Vec<_>>()),
            "ms",
        ));
    }
    let hwm = col("vm_hwm_kib").into_iter().fold(0.0, f64::max);
    r.figures.push(
        Figure::new(
            "vm_hwm_mb",
            "peak RSS of the diff",
            proc::kib_to_mb(hwm as u64),
            "MB",
        )
        .target(Target::lt(200.0)),
    );
    r.method = json!({
        "inputs": synth,
        "rounds": rounds,
        "ours": "slimd-bench diff A B: Image::open of both archives (layers spooled to scratch, files hashed), ImageDiff::compute, the JSON serialised to a counting sink; the same calls as `slim diff --file A --file B --json`",
    });
    r.samples = json!({ "runs": runs });
    Ok(())
}
