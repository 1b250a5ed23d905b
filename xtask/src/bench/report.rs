//! The results files (`bench/results/<name>.json`) and the README table
//! made from them.

use std::{
    path::Path,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stats::{Ratio, Spread};

pub const TABLE_START: &str = "<!-- bench-table:start -->";
pub const TABLE_END: &str = "<!-- bench-table:end -->";

/// Where and when a result was measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub commit: String,
    /// Uncommitted changes in the tree that was measured.
    pub dirty: bool,
    /// 1/5/15-minute load averages when the benchmark started and ended:
    /// this machine is shared, and a busy neighbour moves the figures.
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    /// Other slimd processes running meanwhile (their tracers are loaded
    /// too, and count in an "untraced" baseline).
    pub other_slimd: usize,
}

impl Machine {
    pub fn now() -> Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let git = |args: &[&str]| -> String {
            Command::new("git")
                .args(args)
                .current_dir(crate::project_root())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        Ok(Machine {
            cpu,
            cores,
            kernel,
            date: utc_now(),
            commit: git(&["rev-parse", "HEAD"]),
            dirty: !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty(),
            load_start: load_avg(),
            load_end: [0.0; 3],
            other_slimd: other_slimd_processes(),
        })
    }
}

pub fn load_avg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Processes named `slimd` that are not ours.
fn other_slimd_processes() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "slimd")
        })
        .count()
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm), so the date needs no crate and no `date` binary.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A target a figure is held to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// "<=", "<", ">=", ">" or "==".
    pub op: Op,
    pub value: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum Op {
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

impl Target {
    pub fn le(value: f64) -> Option<Target> {
        Some(Target { op: Op::Le, value })
    }
    pub fn lt(value: f64) -> Option<Target> {
        Some(Target { op: Op::Lt, value })
    }
    pub fn ge(value: f64) -> Option<Target> {
        Some(Target { op: Op::Ge, value })
    }
    pub fn eq(value: f64) -> Option<Target> {
        Some(Target { op: Op::Eq, value })
    }

    pub fn met_by(&self, v: f64) -> bool {
        match self.op {
            Op::Le => v <= self.value,
            Op::Lt => v < self.value,
            Op::Ge => v >= self.value,
            Op::Eq => v == self.value,
        }
    }

    fn symbol(&self) -> &'static str {
        match self.op {
            Op::Le => "≤",
            Op::Lt => "<",
            Op::Ge => "≥",
            Op::Eq => "=",
        }
    }
}

/// One reported number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    pub id: String,
    pub label: String,
    /// The figure (a median where there are several samples).
    pub value: f64,
    /// "ratio", "ms", "s", "MB/s", "events/s", "events", "MiB", "%".
    pub unit: String,
    /// Range of the samples (for ratios: of the per-round ratios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Shown in the README table (the rest stays in the JSON).
    #[serde(default)]
    pub table: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Figure {
    pub fn new(id: &str, label: &str, value: f64, unit: &str) -> Figure {
        Figure {
            id: id.into(),
            label: label.into(),
            value,
            unit: unit.into(),
            spread: None,
            target: None,
            met: None,
            table: false,
            note: None,
        }
    }

    pub fn from_ratio(id: &str, label: &str, r: &Ratio) -> Figure {
        Figure {
            spread: Some(r.rounds),
            ..Figure::new(id, label, r.value, "ratio")
        }
    }

    pub fn from_spread(id: &str, label: &str, s: Spread, unit: &str) -> Figure {
        Figure {
            spread: Some(s),
            ..Figure::new(id, label, s.median, unit)
        }
    }

    pub fn target(mut self, t: Option<Target>) -> Figure {
        self.met = t.map(|t| t.met_by(self.value));
        self.target = t;
        self.table = true;
        self
    }

    pub fn in_table(mut self) -> Figure {
        self.table = true;
        self
    }

    pub fn note(mut self, n: impl Into<String>) -> Figure {
        self.note = Some(n.into());
        self
    }

    fn value_text(&self) -> String {
        let mut s = format_value(self.value, &self.unit);
        if let Some(sp) = &self.spread
            && sp.n > 1
        {
            s.push_str(&format!(
                " ({}–{}, n={})",
                format_bare(sp.min, &self.unit),
                format_bare(sp.max, &self.unit),
                sp.n
            ));
        }
        s
    }

    fn target_text(&self) -> String {
        self.target.map_or_else(
            || "—".into(),
            |t| format!("{} {}", t.symbol(), format_value(t.value, &self.unit)),
        )
    }

    fn met_text(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        }
    }

    pub fn one_line(&self) -> String {
        let mut s = format!("{}: {}", self.label, self.value_text());
        if self.target.is_some() {
            s.push_str(&format!(
                "  [target {}: {}]",
                self.target_text(),
                self.met_text()
            ));
        }
        s
    }
}

fn format_bare(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    match unit {
        "ratio" => format!("{v:.3}"),
        "events" => format!("{}", v.round() as i64),
        "events/s" if v >= 1e6 => format!("{:.2} M", v / 1e6),
        "events/s" if v >= 1e3 => format!("{:.0} k", v / 1e3),
        "ms" if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        "ms" => format!("{v:.0} ms"),
        _ if v.abs() >= 100.0 => format!("{v:.0}"),
        _ if v.abs() >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn format_value(v: f64, unit: &str) -> String {
    let bare = format_bare(v, unit);
    match unit {
        "ratio" => format!("{bare}×"),
        "ms" | "events" => bare,
        "events/s" => format!("{bare} events/s"),
        _ => format!("{bare} {unit}"),
    }
}

/// One benchmark's results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    pub name: String,
    pub title: String,
    pub machine: Machine,
    /// Measured with `--quick` (smaller, fewer rounds).
    pub quick: bool,
    pub seconds: f64,
    /// What was measured and how (sizes, rounds, what each side is).
    pub method: Value,
    pub figures: Vec<Figure>,
    /// Where a target is missed: what the profile shows.
    #[serde(default)]
    pub findings: Vec<String>,
    /// Raw samples.
    pub samples: Value,
}

impl BenchResult {
    pub fn new(name: &str, title: &str, machine: Machine, quick: bool) -> BenchResult {
        BenchResult {
            name: name.into(),
            title: title.into(),
            machine,
            quick,
            seconds: 0.0,
            method: Value::Null,
            figures: Vec::new(),
            findings: Vec::new(),
            samples: Value::Null,
        }
    }

    pub fn finish(&mut self, took: Duration) {
        self.seconds = (took.as_secs_f64() * 10.0).round() / 10.0;
        self.machine.load_end = load_avg();
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| path.display().to_string())
    }
}

/// Reads every results file, in the benchmarks' order.
fn read_results(dir: &Path) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    for (name, _, _) in super::BENCHES {
        let path = dir.join(format!("{name}.json"));
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        out.push(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(out)
}

/// The Markdown between the README markers.
pub fn render_table(results: &[BenchResult]) -> String {
    if results.is_empty() {
        return "Not measured yet.\n".into();
    }
    let mut s = String::new();
    s.push_str("| Benchmark | Figure | Result: median (spread, rounds) | Target | |\n");
    s.push_str("|---|---|---|---|---|\n");
    for r in results {
        let title = if r.quick {
            format!("{} (quick run)", r.title)
        } else {
            r.title.clone()
        };
        let mut first = true;
        for f in r.figures.iter().filter(|f| f.table) {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                if first { title.as_str() } else { "" },
                f.label,
                f.value_text(),
                f.target_text(),
                f.met_text()
            ));
            first = false;
        }
    }
    let mut machines: Vec<String> = Vec::new();
    for r in results {
        let m = &r.machine;
        let line = format!("{}, {} cores, Linux {}", m.cpu.trim(), m.cores, m.kernel);
        if !machines.contains(&line) {
            machines.push(line);
        }
    }
    let dates: Vec<&str> = results.iter().map(|r| r.machine.date.as_str()).collect();
    let commits: Vec<&str> = {
        let mut c: Vec<&str> = results
            .iter()
            .map(|r| r.machine.commit.get(..10).unwrap_or(&r.machine.commit))
            .collect();
        c.sort();
        c.dedup();
        c
    };
    let loads: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{:.1}–{:.1}",
                r.machine.load_start[0], r.machine.load_end[0]
            )
        })
        .collect();
    s.push_str(&format!(
        "\nMeasured on {} ({} to {}; commit {}; 1-min load average during each benchmark, in table order: {}). Release build; ratios alternate the two sides round by round. Details and raw samples: `bench/results/*.json`.\n",
        machines.join("; "),
        dates.iter().min().unwrap_or(&""),
        dates.iter().max().unwrap_or(&""),
        commits.join(", "),
        loads.join(", ")
    ));
    let findings: Vec<(&str, &String)> = results
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r.title.as_str(), f)))
        .collect();
    if !findings.is_empty() {
        s.push_str("\nWhere targets are missed:\n\n");
        for (title, f) in findings {
            s.push_str(&format!("- *{title}*: {f}\n"));
        }
    }
    s
}

/// Replaces the text between the markers, and nothing else.
pub fn replace_between_markers(text: &str, body: &str) -> Result<String> {
    let Some(start) = text.find(TABLE_START) else {
        bail!("README has no {TABLE_START} marker");
    };
    let after_start = start + TABLE_START.len();
    let Some(end_rel) = text[after_start..].find(TABLE_END) else {
        bail!("README has no {TABLE_END} marker after {TABLE_START}");
    };
    let end = after_start + end_rel;
    Ok(format!(
        "{}\n{}{}",
        &text[..after_start],
        body,
        &text[end..]
    ))
}

pub fn update_readme(readme: &Path, results_dir: &Path) -> Result<()> {
    let results = read_results(results_dir)?;
    let text = std::fs::read_to_string(readme)?;
    let new = replace_between_markers(&text, &render_table(&results))?;
    if new != text {
        std::fs::write(readme, new)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn only_the_text_between_markers_changes() {
        let text =
            "# T\nbefore\n<!-- bench-table:start -->\nold\nrows\n<!-- bench-table:end -->\nafter\n";
        let new = replace_between_markers(text, "new\n").unwrap();
        assert_eq!(
            new,
            "# T\nbefore\n<!-- bench-table:start -->\nnew\n<!-- bench-table:end -->\nafter\n"
        );
        assert_eq!(replace_between_markers(&new, "new\n").unwrap(), new);
        assert!(replace_between_markers("no markers", "x").is_err());
        assert!(
            replace_between_markers("<!-- bench-table:end --><!-- bench-table:start -->", "x")
                .is_err()
        );
    }

    #[test]
    fn targets_and_table_cells() {
        let f = Figure::new("r", "traced / untraced", 1.07, "ratio").target(Target::le(1.15));
        assert_eq!(f.met, Some(true));
        assert_eq!(f.target_text(), "≤ 1.150×");
        let g = Figure::new("m", "peak RSS", 250.0, "MiB").target(Target::lt(200.0));
        assert_eq!(g.met, Some(false));
        assert_eq!(g.met_text(), "**missed**");
        assert_eq!(format_value(1_500_000.0, "events/s"), "1.50 M events/s");
        assert_eq!(format_value(2500.0, "ms"), "2.50 s");
    }
}
