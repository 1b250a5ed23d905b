//! `slimd-bench`: the parts of `cargo xtask bench` that need slimd's own
//! library in-process — a tracer session around a container, a session held
//! open while something else is timed, and image assembly with its peak
//! memory. Each subcommand prints one JSON object on stdout; the harness in
//! xtask does the alternating, the statistics and the reporting.

use std::{
    collections::HashSet,
    fs::File,
    io::{BufReader, BufWriter, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

mod synth;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use slimd::{
    image::{Image, ImageWriter, Selection, WriteOptions},
    tracer::{EventData, TraceEvent, Tracer, TracerOptions},
};

/// cgroup directory of benchmark sessions, apart from a daemon's `slimd`.
const CGROUP_ROOT: &str = "slimd-bench";

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Loads the tracer, runs `docker run --rm ARGS` in a fresh session while
    /// consuming its events, and reports the app's own JSON line, the
    /// session counters and the delivery times.
    Traced {
        /// Ring buffer size in KiB (a power of two, at least a page).
        #[arg(long, default_value_t = 16 * 1024)]
        ring_kib: u32,
        /// Also count distinct paths of opens and stats (costs a hash set).
        #[arg(long)]
        paths: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        docker_args: Vec<String>,
    },
    /// The same as `traced` with no tracer loaded: the container still runs
    /// under `/slimd-bench/<name>`, so both sides get the same place in the
    /// cgroup tree (and the same CPU weight on a busy host).
    Untraced {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        docker_args: Vec<String>,
    },
    /// Loads the tracer and keeps a session active, with `docker run -d ARGS`
    /// inside it, until stdin closes. Prints `ready` once it is in place.
    Hold {
        #[arg(long, default_value_t = 16 * 1024)]
        ring_kib: u32,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        docker_args: Vec<String>,
    },
    /// Reads an image (a `docker save` file, or `docker save IMAGE` piped
    /// in as the daemon streams it), selects every path and writes the
    /// one-layer image; reports the time of each step and the peak RSS.
    Assemble {
        /// A `docker save` archive on disk.
        #[arg(long, conflicts_with = "image")]
        save: Option<PathBuf>,
        /// An image to export with `docker save` (export included in the time).
        #[arg(long)]
        image: Option<String>,
        /// Scratch directory (layer spools, the staged output layer).
        #[arg(long)]
        scratch: PathBuf,
    },
    /// Builds the fixture images the end-to-end benchmark uses (cached).
    Images,
    /// Writes two synthetic `docker save` archives (`DIR/a.tar`, `DIR/b.tar`)
    /// for the diff benchmark.
    SynthPair {
        #[arg(long)]
        dir: PathBuf,
        /// File bytes per image, in MB.
        #[arg(long, default_value_t = 1000)]
        mb: u64,
        #[arg(long, default_value_t = 20_000)]
        files: usize,
    },
    /// `slim diff --file A --file B` in-process (the same library calls):
    /// read both archives, diff, render the JSON; reports the time of each
    /// step and the peak RSS.
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[arg(long)]
        scratch: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Traced {
            ring_kib,
            paths,
            docker_args,
        } => runtime()?.block_on(traced(ring_kib, paths, &docker_args))?,
        Cmd::Untraced { docker_args } => untraced(&docker_args)?,
        Cmd::Hold {
            ring_kib,
            docker_args,
        } => runtime()?.block_on(hold(ring_kib, &docker_args))?,
        Cmd::Assemble {
            save,
            image,
            scratch,
        } => assemble(save.as_deref(), image.as_deref(), &scratch)?,
        Cmd::Images => images()?,
        Cmd::SynthPair { dir, mb, files } => synth::pair(&dir, mb, files)?,
        Cmd::Diff { a, b, scratch } => diff(&a, &b, &scratch)?,
    };
    println!("{out}");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn load_tracer(ring_kib: u32) -> Result<(Tracer, f64)> {
    if ring_kib < 4 || !ring_kib.is_power_of_two() {
        bail!("--ring-kib must be a power of two, at least 4");
    }
    let t0 = Instant::now();
    let tracer = Tracer::load(TracerOptions {
        ring_bytes: ring_kib << 10,
        ..TracerOptions::default()
    })?;
    Ok((tracer, t0.elapsed().as_secs_f64() * 1e3))
}

/// The kernel symbol tag (`bpf_prog_<tag>_<name>` in perf profiles) of each
/// loaded slimd program, so profiles can name them.
fn program_tags() -> serde_json::Map<String, Value> {
    const OURS: [&str; 6] = [
        "sys_enter",
        "sys_exit",
        "dedup_submit",
        "sched_fork",
        "sched_exec",
        "sched_exit",
    ];
    aya::programs::loaded_programs()
        .flatten()
        .filter_map(|p| {
            let name = p.name_as_str()?.to_string();
            OURS.contains(&name.as_str())
                .then(|| (format!("{:016x}", p.tag()), Value::String(name)))
        })
        .collect()
}

/// CLOCK_MONOTONIC in ns: the clock of the kernel's event timestamps and of
/// the `loop` program's own start/end marks.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the consumer saw.
#[derive(Default)]
struct Consumed {
    events: u64,
    /// Opens and stats.
    file_events: u64,
    first_event_ns: Option<u64>,
    last_received_ns: u64,
    paths: Option<HashSet<Vec<u8>>>,
}

impl Consumed {
    fn add(&mut self, ev: TraceEvent) {
        self.events += 1;
        self.last_received_ns = monotonic_ns();
        if self.first_event_ns.is_none() {
            self.first_event_ns = Some(ev.ts_ns);
        }
        if let EventData::Open { path, .. } | EventData::Stat { path, .. } = ev.data {
            self.file_events += 1;
            if let Some(set) = self.paths.as_mut() {
                set.insert(path.bytes);
            }
        }
    }
}

/// The last line of the app's stdout that is a JSON object.
fn app_report(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or(Value::Null)
}

async fn traced(ring_kib: u32, count_paths: bool, docker_args: &[String]) -> Result<Value> {
    let (tracer, load_ms) = load_tracer(ring_kib)?;
    let name = format!("traced-{}", slimd::session::new_session_id());
    let mut session = tracer.start_session(CGROUP_ROOT, &name)?;
    let mut rx = session.take_events().context("fresh session")?;
    let consumer = tokio::spawn(async move {
        let mut c = Consumed {
            paths: count_paths.then(HashSet::new),
            ..Consumed::default()
        };
        while let Some(ev) = rx.recv().await {
            c.add(ev);
        }
        c
    });
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--cgroup-parent"])
        .arg(&session.cgroup.parent)
        .args(docker_args)
        .stdin(Stdio::null())
        .output()
        .await;
    // finish() drops the subscriber, so the consumer ends once drained.
    let summary = session.finish().await;
    let consumed = consumer.await?;
    session.remove_cgroup()?;
    let out = docker_ok(out, docker_args)?;
    let s = summary.stats;
    Ok(json!({
        "ring_kib": ring_kib,
        "load_ms": load_ms,
        "app": app_report(&out.stdout),
        "records": s.records,
        "deduped": s.deduped,
        "lost": s.lost,
        "pending_full": s.pending_full,
        "received": s.received,
        "consumed": consumed.events,
        "file_events": consumed.file_events,
        "distinct_paths": consumed.paths.map(|p| p.len()),
        "first_event_ns": consumed.first_event_ns,
        "last_received_ns": consumed.last_received_ns,
        "decode_errors": tracer.decode_errors(),
        "programs": program_tags(),
    }))
}

fn untraced(docker_args: &[String]) -> Result<Value> {
    let host = slimd::tracer::CgroupHost::discover()?;
    let name = format!("untraced-{}", slimd::session::new_session_id());
    let cg = host.create_session(CGROUP_ROOT, &name)?;
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--cgroup-parent"])
        .arg(&cg.parent)
        .args(docker_args)
        .stdin(Stdio::null())
        .output();
    host.remove_session(CGROUP_ROOT, &name)?;
    let out = docker_ok(out, docker_args)?;
    Ok(json!({ "app": app_report(&out.stdout) }))
}

async fn hold(ring_kib: u32, docker_args: &[String]) -> Result<Value> {
    let (tracer, load_ms) = load_tracer(ring_kib)?;
    let id = slimd::session::new_session_id();
    let mut session = tracer.start_session(CGROUP_ROOT, &format!("hold-{id}"))?;
    let mut rx = session.take_events().context("fresh session")?;
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    let container = format!("slimd-bench-hold-{id}");
    let started = tokio::process::Command::new("docker")
        .args(["run", "-d", "--rm", "--network", "none", "--name"])
        .arg(&container)
        .arg("--cgroup-parent")
        .arg(&session.cgroup.parent)
        .args(docker_args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("docker run -d")?;
    if started.status.success() {
        println!("ready");
        // Hold until the harness closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
    }
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let summary = session.finish().await;
    let consumed = consumer.await?;
    let _ = session.remove_cgroup();
    if !started.status.success() {
        bail!(
            "docker run -d failed: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    Ok(json!({
        "load_ms": load_ms,
        "records": summary.stats.records,
        "lost": summary.stats.lost,
        "consumed": consumed,
        "programs": program_tags(),
    }))
}

/// Peak and current resident set of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn assemble(save: Option<&Path>, image: Option<&str>, scratch: &Path) -> Result<Value> {
    std::fs::create_dir_all(scratch)?;
    let spool = scratch.join("image");
    let t0 = Instant::now();
    let img = match (save, image) {
        (Some(path), _) => {
            let f = File::open(path).with_context(|| path.display().to_string())?;
            Image::from_save_stream(BufReader::with_capacity(1 << 20, f), &spool)?
        }
        (None, Some(name)) => {
            let mut child = Command::new("docker")
                .args(["save", name])
                .stdout(Stdio::piped())
                .spawn()
                .context("docker save")?;
            let stdout = child.stdout.take().context("piped stdout")?;
            let img = Image::from_save_stream(BufReader::with_capacity(1 << 20, stdout), &spool);
            let status = child.wait()?;
            if !status.success() {
                bail!("docker save {name} failed ({status})");
            }
            img?
        }
        (None, None) => bail!("give --save FILE or --image NAME"),
    };
    let read_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut selection = Selection::new();
    for (path, _) in img.fs.iter() {
        selection.insert(path);
    }
    let select_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let out_path = scratch.join("out.tar");
    let out = BufWriter::with_capacity(1 << 20, File::create(&out_path)?);
    let written = ImageWriter::new(&img, &selection, &WriteOptions::default())
        .write_docker_archive(out, scratch)?;
    let write_s = t2.elapsed().as_secs_f64();
    let (hwm, rss) = memory_kib();
    let input_bytes = img.total_size();
    let entries = img.fs.len();
    drop(img);
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_dir_all(&spool);
    Ok(json!({
        "input_bytes": input_bytes,
        "entries": entries,
        "selected": selection.len(),
        "read_s": read_s,
        "select_s": select_s,
        "write_s": write_s,
        "total_s": read_s + select_s + write_s,
        "written_layer_bytes": written.layer_size,
        "written_entries": written.entry_count,
        "vm_hwm_kib": hwm,
        "vm_rss_kib": rss,
    }))
}

fn diff(a: &Path, b: &Path, scratch: &Path) -> Result<Value> {
    std::fs::create_dir_all(scratch)?;
    let t0 = Instant::now();
    let img_a = Image::open(a, &scratch.join("a"))?;
    let img_b = Image::open(b, &scratch.join("b"))?;
    let read_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut d = slimd::diff::ImageDiff::compute(&img_a, "a", &img_b, "b");
    d.show_names();
    let mut sink = CountingSink(0);
    serde_json::to_writer(&mut sink, &d)?;
    let diff_s = t1.elapsed().as_secs_f64();
    let (hwm, rss) = memory_kib();
    let input_bytes = img_a.total_size() + img_b.total_size();
    drop((img_a, img_b));
    let _ = std::fs::remove_dir_all(scratch);
    Ok(json!({
        "input_bytes": input_bytes,
        "changes": d.files.changes.len(),
        "added": d.files.totals.added,
        "removed": d.files.totals.removed,
        "changed": d.files.totals.changed,
        "json_bytes": sink.0,
        "read_s": read_s,
        "diff_s": diff_s,
        "total_s": read_s + diff_s,
        "vm_hwm_kib": hwm,
        "vm_rss_kib": rss,
    }))
}

/// Counts what is written and drops it.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every fixture image of the end-to-end tests, each with the `slim build`
/// flags that exercise it (servers that do not speak HTTP get their own
/// client as exec probes), for the end-to-end build benchmark.
fn images() -> Result<Value> {
    use slimd_tests::{LangImage, ProbingApp, ServerImage, TestImage};
    let mut fixtures = Vec::new();
    for t in TestImage::ALL {
        fixtures.push(json!({"name": t.name(), "image": t.ensure()?, "flags": []}));
    }
    for l in LangImage::ALL {
        fixtures.push(json!({"name": l.name(), "image": l.ensure()?, "flags": []}));
    }
    for s in ServerImage::ALL {
        let mut flags = Vec::new();
        for probe in s.exec_probes() {
            flags.push("--exec-probe".to_string());
            flags.push(probe.to_string());
        }
        fixtures.push(json!({"name": s.name(), "image": s.ensure()?, "flags": flags}));
    }
    fixtures
        .push(json!({"name": "fragile-app", "image": slimd_tests::fragile_app()?, "flags": []}));
    fixtures.push(json!({"name": "probing-app", "image": ProbingApp::ensure()?, "flags": []}));
    Ok(json!({
        "python_app": TestImage::PythonApp.ensure()?,
        "cli_oneshot": TestImage::CliOneshot.ensure()?,
        "python_base": slimd_tests::PYTHON_BASE_TAG,
        "fixtures": fixtures,
    }))
}

/// The output of a `docker run` that must have succeeded.
fn docker_ok(
    out: std::io::Result<std::process::Output>,
    docker_args: &[String],
) -> Result<std::process::Output> {
    let out = out.context("docker run")?;
    if !out.status.success() {
        bail!(
            "docker run {docker_args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
