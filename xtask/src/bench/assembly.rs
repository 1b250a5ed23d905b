//! Benchmark 4: reading, flattening, selecting and writing a ≥ 500 MB image,
//! against the hashing floor (`sha256sum` of the same bytes, same run), and
//! the peak memory of doing it — in the helper (same library calls as the
//! daemon) and in a real daemon building the image.

use std::{
    fs,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    Ctx,
    daemon::{self, Daemon},
    fixtures, proc,
    report::{BenchResult, Figure, Target},
    stats::{Paired, Spread, alternate},
};

const TIMEOUT: Duration = Duration::from_secs(900);

fn assemble(ctx: &Ctx, source: &[&str], scratch: &std::path::Path) -> Result<Value> {
    let _ = fs::remove_dir_all(scratch);
    let out = proc::json(
        Command::new(ctx.bin("slimd-bench"))
            .arg("assemble")
            .args(source)
            .arg("--scratch")
            .arg(scratch),
        TIMEOUT,
    );
    let _ = fs::remove_dir_all(scratch);
    out
}

fn sha256sum_secs(path: &std::path::Path) -> Result<f64> {
    let t = Instant::now();
    let st = Command::new("sha256sum")
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .context("sha256sum")?;
    if !st.success() {
        bail!("sha256sum {} failed", path.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

fn num(v: &Value, key: &str) -> Result<f64> {
    v[key].as_f64().with_context(|| format!("no {key} in {v}"))
}

pub fn run(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let images = daemon::fixture_images(ctx)?;
    let base = images["python_base"].as_str().context("python_base")?;
    let small = images["python_app"]
        .as_str()
        .context("python_app")?
        .to_string();
    let big = fixtures::ensure_big_image(&ctx.work, base)?;
    let dir = ctx.work.join("assembly");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let save = dir.join("big.tar");
    let scratch = dir.join("scratch");

    // Export once to a file: both sides then read the same bytes from the
    // page cache, so the ratio compares our processing with hashing alone.
    let t = Instant::now();
    let file = fs::File::create(&save)?;
    let st = Command::new("docker")
        .args(["save", big])
        .stdout(file)
        .status()?;
    if !st.success() {
        bail!("docker save {big} failed");
    }
    let export_s = t.elapsed().as_secs_f64();
    let save_bytes = fs::metadata(&save)?.len() as f64;
    println!(
        "  docker save: {:.0} MB in {export_s:.1} s",
        save_bytes / 1e6
    );

    let rounds = ctx.rounds().clamp(1, 5);
    let save_arg = save.to_string_lossy().into_owned();
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let mut runs = Vec::new();
    let mut sha_s = Vec::new();
    alternate(
        rounds,
        |_| {
            let out = assemble(ctx, &["--save", &save_arg], &scratch)?;
            ours.push(num(&out, "input_bytes")? / 1e6 / num(&out, "total_s")?);
            runs.push(out);
            Ok(())
        },
        |_| {
            let s = sha256sum_secs(&save)?;
            floor.push(save_bytes / 1e6 / s);
            sha_s.push(s);
            Ok(())
        },
    )?;
    let p = Paired { a: ours, b: floor };
    let ratio = p.ratio();
    r.figures.push(
        Figure::from_spread(
            "throughput",
            &format!(
                "read + flatten + select all + write, {:.0} MB image from a save file",
                num(&runs[0], "input_bytes")? / 1e6
            ),
            ratio.a,
            "MB/s",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::from_spread(
            "floor",
            "sha256sum of the same bytes (the floor)",
            ratio.b,
            "MB/s",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::from_ratio("ratio", "throughput / hashing floor", &ratio).target(Target::ge(0.5)),
    );
    for step in ["read_s", "select_s", "write_s"] {
        let v: Vec<f64> = runs.iter().filter_map(|o| o[step].as_f64()).collect();
        r.figures.push(Figure::from_spread(
            &format!("step_{step}"),
            &format!("step {}", step.trim_end_matches("_s")),
            Spread::of(&v.iter().map(|s| s * 1e3).collect::<Vec<_>>()),
            "ms",
        ));
    }
    let hwm_file = runs
        .iter()
        .filter_map(|o| o["vm_hwm_kib"].as_u64())
        .max()
        .unwrap_or(0);

    // The daemon's path: `docker save` streamed straight into the reader.
    let piped = assemble(ctx, &["--image", big], &scratch)?;
    let piped_small = assemble(ctx, &["--image", &small], &scratch)?;
    r.figures.push(
        Figure::new(
            "throughput_with_export",
            "the same with `docker save` piped in (export included)",
            num(&piped, "input_bytes")? / 1e6 / num(&piped, "total_s")?,
            "MB/s",
        )
        .in_table(),
    );
    let hwm_big = proc::kib_to_mb(hwm_file.max(piped["vm_hwm_kib"].as_u64().unwrap_or(0)));
    let hwm_small = proc::kib_to_mb(piped_small["vm_hwm_kib"].as_u64().unwrap_or(0));
    r.figures.push(
        Figure::new(
            "helper_vm_hwm_mb",
            &format!(
                "peak RSS doing it ({:.0} MB image; {:.0} MB image: {hwm_small:.0} MB)",
                num(&piped, "input_bytes")? / 1e6,
                num(&piped_small, "input_bytes")? / 1e6
            ),
            hwm_big,
            "MB",
        )
        .target(Target::lt(200.0)),
    );

    // A real daemon building the big image (a one-shot `cat`).
    let mut d = Daemon::start(ctx, "assembly")?;
    let b = daemon::build(&d, big, "slimd-bench/big:slim", &[])?;
    let daemon_hwm = d.vm_hwm_mb();
    d.stop();
    let assemble_ms = b.phases.get("assemble").copied().unwrap_or(f64::NAN);
    let original = b.summary["sizes"]["original_bytes"]
        .as_f64()
        .unwrap_or(f64::NAN);
    r.figures.push(
        Figure::new(
            "daemon_assemble_rate",
            "slim build of the same image: assemble phase (export, flatten, select, write)",
            num(&piped, "input_bytes")? / 1e6 / (assemble_ms / 1e3),
            "MB/s",
        )
        .in_table(),
    );
    r.figures.push(
        Figure::new(
            "daemon_vm_hwm_mb",
            "daemon peak RSS after that build",
            daemon_hwm,
            "MB",
        )
        .target(Target::lt(200.0)),
    );
    let _ = fs::remove_file(&save);
    r.method = json!({
        "image": big,
        "image_bytes_docker": original,
        "save_file_bytes": save_bytes,
        "export_s": export_s,
        "rounds": rounds,
        "ours": "slimd-bench assemble --save FILE: Image::from_save_stream (spool each layer, hash layers and files, flatten), a Selection of every path, ImageWriter::write_docker_archive to a file; MB/s of layer bytes (Image::total_size)",
        "floor": "sha256sum FILE (the whole docker save archive: the layer bytes plus a few KB of JSON), page-cached like ours",
        "daemon": "slim build through a fresh daemon; the assemble phase includes docker save over the API, reading the events, the keep set and writing the slim layer",
    });
    r.samples = json!({
        "runs": runs, "sha256sum_s": sha_s, "piped": piped, "piped_small": piped_small,
        "daemon_build": b, "ratio": ratio,
    });
    Ok(())
}
