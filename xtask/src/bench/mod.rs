//! `cargo xtask bench`: measures slimd on this machine, writes
//! `bench/results/<name>.json`, and regenerates the README's results table.
//!
//! Every comparison is a ratio measured in one run, alternating the two
//! sides (A B B A ...) so that drift in the machine's load hits both alike;
//! figures are medians with their spread. Programs that need slimd's library
//! in-process live in the `slimd-bench` helper (bench/src); the workloads
//! are the static C program bench/loop.c.

mod assembly;
mod capacity;
mod daemon;
mod diff;
mod fixtures;
mod overhead;
mod proc;
mod profile;
mod report;
mod stats;
mod watch;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};

use report::{BenchResult, Machine};

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Smaller loops and fewer rounds: checks that the harness works, the
    /// figures are not worth keeping.
    pub quick: bool,
    /// Rounds of each alternation (default: 7, or 2 with `quick`).
    pub rounds: Option<usize>,
}

/// What every benchmark gets.
pub struct Ctx {
    pub opts: Options,
    /// Release binaries: slimd, slim, slimd-bench.
    pub bin_dir: PathBuf,
    /// Scratch space (under target/, never committed).
    pub work: PathBuf,
    pub fixtures: fixtures::Fixtures,
}

impl Ctx {
    pub fn rounds(&self) -> usize {
        self.opts
            .rounds
            .unwrap_or(if self.opts.quick { 2 } else { 7 })
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// `quick` or full size of a parameter.
    pub fn size(&self, full: u64, quick: u64) -> u64 {
        if self.opts.quick { quick } else { full }
    }
}

type BenchFn = fn(&mut Ctx, &mut BenchResult) -> Result<()>;

/// The benchmarks, in the order they run and appear in the README.
pub const BENCHES: &[(&str, &str, BenchFn)] = &[
    (
        "tracing-overhead",
        "Tracing overhead on the traced app",
        overhead::traced_app,
    ),
    ("host-overhead", "Overhead on everyone else", overhead::host),
    (
        "watch-cost",
        "Watch mode's cost to a host build",
        watch::run,
    ),
    ("event-capacity", "Event capacity", capacity::run),
    ("image-assembly", "Image assembly throughput", assembly::run),
    ("image-diff", "Image diff", diff::run),
    ("e2e-build", "End-to-end build", daemon::e2e_build),
    ("idle", "Idle cost of the daemon", daemon::idle),
];

pub fn results_dir() -> PathBuf {
    crate::project_root().join("bench/results")
}

pub fn run(names: &[String], opts: Options) -> Result<()> {
    for n in names {
        if !BENCHES.iter().any(|(name, _, _)| name == n) {
            let known: Vec<&str> = BENCHES.iter().map(|b| b.0).collect();
            bail!("no benchmark {n:?}; known: {}", known.join(", "));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { crate::libc_geteuid() } != 0 {
        bail!("the benchmarks load eBPF programs and start containers: run as root");
    }
    let bin_dir = crate::build(true)?;
    crate::docker::ensure_engine()?;
    let work = crate::target_dir().join("bench");
    std::fs::create_dir_all(&work)?;
    let fixtures = fixtures::Fixtures::prepare(&work, &bin_dir, opts.quick)?;
    let mut ctx = Ctx {
        opts,
        bin_dir,
        work,
        fixtures,
    };
    std::fs::create_dir_all(results_dir())?;
    for (name, title, f) in BENCHES {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        println!("bench: {name} — {title}");
        let started = Instant::now();
        let mut result = BenchResult::new(name, title, Machine::now()?, opts.quick);
        f(&mut ctx, &mut result).with_context(|| format!("benchmark {name}"))?;
        result.finish(started.elapsed());
        let path = results_dir().join(format!("{name}.json"));
        result.write(&path)?;
        for fig in &result.figures {
            println!("  {}", fig.one_line());
        }
        println!("  -> {}", path.display());
    }
    let readme = crate::project_root().join("README.md");
    report::update_readme(&readme, &results_dir())?;
    println!(
        "bench: README table regenerated from {}",
        rel(&results_dir())
    );
    Ok(())
}

/// Regenerates the README table from the results already there.
pub fn table_only() -> Result<()> {
    report::update_readme(&crate::project_root().join("README.md"), &results_dir())
}

fn rel(p: &Path) -> String {
    p.strip_prefix(crate::project_root())
        .unwrap_or(p)
        .display()
        .to_string()
}
