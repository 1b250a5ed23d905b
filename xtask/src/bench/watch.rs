//! Benchmark: what watch mode costs everyone else on a build node. A
//! realistic host workload, `make -j2` of a generated C project (every
//! object rebuilt each run), runs on the host, outside any container, with
//! `slimd serve --watch` running and one labelled container idle in it
//! (so a tagged cgroup exists and every program is attached), against the
//! same with no slimd; alternating rounds; target ≤ 1.03×.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{
    Ctx,
    daemon::Daemon,
    fixtures::LOOP_IMAGE,
    proc,
    report::{BenchResult, Figure, Target},
    stats::{Paired, alternate},
};

const MAKE_TIMEOUT: Duration = Duration::from_secs(900);

/// Writes `files` C sources (each a few hundred lines of small functions
/// that the compiler has to optimise), a main, and a Makefile.
fn write_project(dir: &Path, files: usize) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut main = String::from("#include <stdio.h>\n");
    let mut calls = String::new();
    for i in 0..files {
        let mut src = format!("#include <string.h>\n#include <stdlib.h>\n/* unit {i} */\n");
        for f in 0..40 {
            writeln!(
                src,
                "unsigned long u{i}_f{f}(unsigned long x) {{\n  unsigned long a[32];\n  for (int k = 0; k < 32; k++) a[k] = x * {m} + k * {f} + (x >> (k % 7));\n  unsigned long s = 0;\n  for (int k = 0; k < 32; k++) s ^= a[k] * (k | 1) + (s << 3);\n  char buf[64];\n  memset(buf, (int)(s & 0x7f), sizeof buf);\n  return s + (unsigned long)buf[x % 64] + (x > 7 ? u{i}_f{g}(x / 2) : 0);\n}}",
                m = i * 40 + f + 3,
                g = f.saturating_sub(1),
            )?;
        }
        // f0 must not recurse into itself forever: give it its own body.
        let src = src.replacen(&format!("(x > 7 ? u{i}_f0(x / 2) : 0)"), "0", 1);
        fs::write(dir.join(format!("u{i}.c")), src)?;
        writeln!(main, "unsigned long u{i}_f39(unsigned long);")?;
        writeln!(calls, "  s += u{i}_f39(s + {i});")?;
    }
    main.push_str("int main(void) {\n  unsigned long s = 1;\n");
    main.push_str(&calls);
    main.push_str("  printf(\"%lu\\n\", s);\n  return 0;\n}\n");
    fs::write(dir.join("main.c"), main)?;
    let objs: Vec<String> = (0..files)
        .map(|i| format!("u{i}.o"))
        .chain(["main.o".into()])
        .collect();
    fs::write(
        dir.join("Makefile"),
        format!(
            "CFLAGS = -O2 -g\nOBJS = {}\napp: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n",
            objs.join(" ")
        ),
    )?;
    Ok(())
}

/// One `make -j2 -B` of the project: wall ms.
fn make(dir: &Path) -> Result<f64> {
    let t = Instant::now();
    let out = proc::output(
        Command::new("make")
            .args(["-s", "-j2", "-B", "-C"])
            .arg(dir),
        MAKE_TIMEOUT,
    )?;
    if !out.status.success() {
        bail!(
            "make in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// `slimd serve --watch` and one labelled container idle in it; the
/// daemon's watch session for it must exist before the workload runs.
struct Watching {
    daemon: Daemon,
    container: String,
}

impl Watching {
    fn start(ctx: &Ctx) -> Result<Watching> {
        let daemon = Daemon::start_with(ctx, "watch-cost", &["--watch"])?;
        let out = proc::output(
            Command::new("docker").args([
                "run",
                "-d",
                "--label",
                "slimd.dev/profile=true",
                LOOP_IMAGE,
                "sleep",
            ]),
            Duration::from_secs(120),
        )?;
        if !out.status.success() {
            bail!(
                "docker run {LOOP_IMAGE}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let w = Watching { daemon, container };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = w.daemon.slim_doc(&["sessions"])?;
            let running = list.as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s["kind"] == "watch" && s["state"] == "running")
            });
            if running {
                return Ok(w);
            }
            if Instant::now() > deadline {
                bail!(
                    "the watched container has no running watch session after 60 s; see {}",
                    w.daemon.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = proc::output(
            Command::new("docker").args(["rm", "-f", &self.container]),
            Duration::from_secs(60),
        );
        self.daemon.stop();
    }
}

/// The benchmark.
pub fn run(ctx: &mut Ctx, r: &mut BenchResult) -> Result<()> {
    let rounds = ctx.rounds();
    let files = ctx.size(48, 8) as usize;
    let dir: PathBuf = ctx.work.join("watch-cost-project");
    write_project(&dir, files)?;
    make(&dir).context("warm-up build")?;
    let mut paired = Paired::default();
    alternate(
        rounds,
        |_| {
            let w = Watching::start(ctx)?;
            paired.a.push(make(&dir)?);
            drop(w);
            Ok(())
        },
        |_| {
            paired.b.push(make(&dir)?);
            Ok(())
        },
    )?;
    let ratio = paired.ratio();
    r.figures.push(
        Figure::from_ratio(
            "make_ratio",
            "host `make -j2` of a C project: watch mode on (one watched container idle) / no slimd",
            &ratio,
        )
        .target(Target::le(1.03)),
    );
    r.method = json!({
        "workload": format!("make -s -j2 -B of {files} generated C files + main (gcc -O2 -g), on the host"),
        "rounds": rounds,
        "watch": "slimd serve --watch started for each round, one container labelled slimd.dev/profile=true idle in it (its watch session running)",
        "none": "no slimd running",
    });
    r.samples = json!({ "watch_ms": paired.a, "none_ms": paired.b, "ratio": ratio });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_project_builds_and_runs() {
        let dir = std::env::temp_dir().join(format!("slimd-watch-cost-{}", std::process::id()));
        write_project(&dir, 2).unwrap();
        assert!(make(&dir).unwrap() > 0.0);
        let out = Command::new(dir.join("app")).output().unwrap();
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
