//! Where the time goes when a loop is slower under tracing: a `perf`
//! profile (software cpu-clock, so it works in VMs without PMU counters),
//! folded into the categories that matter for the tracer's design.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::proc;

/// Shares of the profiled command's CPU time, in percent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Profile {
    pub samples: u64,
    /// Everything syscall tracing adds: `tracepoint_glue` + `bpf`.
    pub tracing_hooks: f64,
    /// Inside BPF programs, their helpers and map operations
    /// (`trace_call_bpf`, children included).
    pub bpf: f64,
    /// Of that, hash-map and LRU operations.
    pub bpf_maps: f64,
    /// The perf-event tracepoint path around the programs (record buffer,
    /// argument copy: what classic tracepoints pay and raw ones do not),
    /// plus the syscall slow-path entry/exit work itself.
    pub tracepoint_glue: f64,
    /// Self time of each BPF program (`bpf_prog_<tag>_<name>`).
    pub programs: Vec<(String, f64)>,
    /// The biggest self-time symbols.
    pub top: Vec<(String, f64)>,
}

impl Profile {
    pub fn summary(&self) -> String {
        format!(
            "perf (cpu-clock, {} samples): {:.0}% of the loop's CPU is syscall tracing work — {:.0}% in BPF programs and helpers (hash/LRU map operations {:.0}%), {:.0}% in the classic-tracepoint path around them (perf record buffers, argument copies)",
            self.samples, self.tracing_hooks, self.bpf, self.bpf_maps, self.tracepoint_glue
        )
    }
}

pub fn perf_works() -> bool {
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Records the whole machine for `secs` (call while the workload runs).
pub fn record_system(data: &Path, secs: u64) -> Result<()> {
    perf_record(
        Command::new("perf")
            .args(["record", "-a", "-g", "-e", "cpu-clock", "-o"])
            .arg(data)
            .args(["--", "sleep", &secs.to_string()]),
        Duration::from_secs(secs + 120),
    )
}

/// Records one command.
pub fn record_command(data: &Path, cmd: &[String]) -> Result<()> {
    perf_record(
        Command::new("perf")
            .args(["record", "-g", "-e", "cpu-clock", "-o"])
            .arg(data)
            .arg("--")
            .args(cmd),
        Duration::from_secs(600),
    )
}

fn perf_record(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let out = proc::output(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "perf record failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Folds a recording, restricted to processes named `comm`; `names` maps
/// program tags to names (perf shows some programs as `bpf_prog_<tag>_F`).
pub fn analyse(
    data: &Path,
    comm: &str,
    names: &serde_json::Map<String, serde_json::Value>,
) -> Result<Profile> {
    let out = proc::output(
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--children",
                "--percentage",
                "relative",
            ])
            .args(["--sort", "sym", "-g", "none", "--comm", comm, "-i"])
            .arg(data),
        Duration::from_secs(300),
    )?;
    if !out.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut p = parse_report(&text);
    for (sym, _) in &mut p.programs {
        if let Some(name) = sym
            .strip_prefix("bpf_prog_")
            .and_then(|rest| names.get(rest.split('_').next()?))
            .and_then(|v| v.as_str())
        {
            *sym = format!("{name} ({sym})");
        }
    }
    p.samples = text
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .and_then(|v| {
            let n = v.split_whitespace().next()?;
            let n = n.trim_end_matches(['K', 'M']);
            let mult = if v.starts_with(&format!("{n}K")) {
                1000.0
            } else if v.starts_with(&format!("{n}M")) {
                1e6
            } else {
                1.0
            };
            n.parse::<f64>().ok().map(|x| (x * mult) as u64)
        })
        .context("no sample count in perf report")?;
    Ok(p)
}

/// Parses `perf report --children --sort sym -g none` lines:
/// `  29.47%     3.05%  [k] trace_call_bpf`.
fn parse_report(text: &str) -> Profile {
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(c), Some(s)) = (it.next(), it.next()) else {
            continue;
        };
        let (Some(c), Some(s)) = (
            c.strip_suffix('%').and_then(|v| v.parse::<f64>().ok()),
            s.strip_suffix('%').and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let _kind = it.next();
        let sym: String = it.collect::<Vec<_>>().join(" ");
        rows.push((sym, c, s));
    }
    let children = |name: &str| rows.iter().find(|(s, _, _)| s == name).map_or(0.0, |r| r.1);
    let is_map_op = |s: &str| {
        s.starts_with("htab_")
            || s.starts_with("__htab_")
            || s.starts_with("bpf_lru_")
            || s.starts_with("prealloc_lru")
            || s == "lookup_nulls_elem_raw"
    };
    let self_of = |name: &str| rows.iter().find(|(s, _, _)| s == name).map_or(0.0, |r| r.2);
    let bpf = children("trace_call_bpf");
    let perf_handlers = children("perf_syscall_enter")
        + children("perf_syscall_exit")
        + children("perf_trace_sys_enter")
        + children("perf_trace_sys_exit");
    let glue = (perf_handlers - bpf).max(0.0)
        + self_of("syscall_trace_enter")
        + self_of("syscall_exit_work");
    let mut programs: Vec<(String, f64)> = rows
        .iter()
        .filter(|(s, _, _)| s.starts_with("bpf_prog_"))
        .map(|(s, _, self_)| (s.clone(), *self_))
        .collect();
    programs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut top: Vec<(String, f64)> = rows.iter().map(|(s, _, v)| (s.clone(), *v)).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(15);
    Profile {
        samples: 0,
        tracing_hooks: bpf + glue,
        bpf,
        bpf_maps: rows
            .iter()
            .filter(|(s, _, _)| is_map_op(s))
            .map(|r| r.2)
            .sum(),
        tracepoint_glue: glue,
        programs,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_a_report() {
        let text = "# Samples: 1K of event 'cpu-clock'\n\
            #\n\
            \x20  103.38%     2.61%  [k] do_syscall_64\n\
            \x20   29.47%     3.05%  [k] trace_call_bpf\n\
            \x20   22.14%     0.96%  [k] syscall_trace_enter\n\
            \x20   17.02%     0.59%  [k] syscall_exit_work\n\
            \x20   12.38%     1.78%  [k] perf_syscall_enter\n\
            \x20   16.42%     0.70%  [k] perf_syscall_exit\n\
            \x20    5.00%     1.00%  [k] perf_trace_sys_enter\n\
            \x20    9.38%     2.19%  [k] bpf_prog_63126953d5530eaf_F\n\
            \x20    6.05%     6.05%  [k] lookup_nulls_elem_raw\n\
            \x20    3.26%     1.26%  [k] htab_lru_map_update_elem\n";
        let p = parse_report(text);
        // glue: 33.80 of perf handlers - 29.47 in BPF + 0.96 + 0.59 self.
        assert!((p.tracepoint_glue - 5.88).abs() < 1e-9);
        assert!((p.tracing_hooks - 35.35).abs() < 1e-9);
        assert!((p.bpf - 29.47).abs() < 1e-9);
        assert!((p.bpf_maps - 7.31).abs() < 1e-9);
        assert_eq!(p.programs[0].0, "bpf_prog_63126953d5530eaf_F");
        assert_eq!(p.top[0].0, "lookup_nulls_elem_raw");
    }
}
