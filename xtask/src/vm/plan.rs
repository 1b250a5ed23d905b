//! What runs inside each VM, as data: suites of the end-to-end test binary
//! (the slimd-tests crate, built on the host, run in the guest from the
//! 9p-shared target directory) and the tests of each, rendered as the shell
//! script the guest init runs. Their output is libtest's own, so CI reads
//! it as it reads any `cargo test`.

use std::{fmt::Write as _, path::Path};

use anyhow::{Result, bail};

/// One suite of `tests/src/tests/` and which of its tests run.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The suite's module (its file under tests/src/tests/).
    pub test: &'static str,
    /// Exact test names within the suite; empty runs the whole suite.
    pub tests: &'static [&'static str],
    /// What it proves on the guest's kernel.
    pub why: &'static str,
}

/// The VM suite: the tracer's end-to-end tests, watch mode, and one full
/// `slim build` with verify.
pub const STEPS: &[Step] = &[
    Step {
        test: "kernel_features",
        tests: &[],
        why: "the daemon's feature probe finds everything it uses, and `slim status` lists it",
    },
    Step {
        test: "tracer",
        tests: &[],
        why: "load and attach, tag, events from the first instruction, untagged processes ignored, dedup and loss accounting, the syscall set, pure cgroup v2",
    },
    Step {
        test: "watch",
        tests: &["labelled_containers_are_profiled_from_their_first_exec"],
        why: "watch-mode tagging at cgroup_mkdir",
    },
    Step {
        test: "build",
        tests: &["one_shot_cli"],
        why: "one full `slim build` of a small fixture, verified",
    },
];

/// `cargo test` arguments that build the end-to-end test binary.
pub fn cargo_test_args() -> Vec<String> {
    [
        "test",
        "-p",
        "slimd-tests",
        "--lib",
        "--no-run",
        "--message-format=json",
    ]
    .map(String::from)
    .to_vec()
}

/// The end-to-end test binary's path, from `cargo test --no-run
/// --message-format=json` output.
pub fn executable(json_lines: &str) -> Result<String> {
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "slimd_tests"
            && v["profile"]["test"] == true
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(exe.to_string());
        }
    }
    bail!("cargo built no slimd-tests test binary")
}

/// A suite's tests as libtest names them.
fn suite_path(suite: &str) -> String {
    format!("tests::{suite}::")
}

/// Single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `plan.sh`: every step in turn, each test binary's output as
/// is; exits non-zero when any step failed.
pub fn script(exe: &str, bin_dir: &Path, tests_dir: &Path, filter: Option<&str>) -> Result<String> {
    let mut s = String::new();
    writeln!(
        s,
        "# Written by `cargo xtask vm-test`; run by the guest init."
    )?;
    writeln!(s, "set -u")?;
    writeln!(
        s,
        "export SLIMD_BIN_DIR={} RUST_BACKTRACE=1",
        quote(&bin_dir.display().to_string())
    )?;
    // Test binaries run from their package directory, as under cargo.
    writeln!(
        s,
        "cd {} || exit 1",
        quote(&tests_dir.display().to_string())
    )?;
    writeln!(s, "rc=0")?;
    for step in STEPS {
        let mut args = vec![
            quote(exe),
            "--include-ignored".into(),
            "--test-threads=1".into(),
            // The guest's output is a serial port, a tty: no colours.
            "--color=never".into(),
        ];
        let suite = suite_path(step.test);
        if let Some(f) = filter
            && !step.tests.is_empty()
            && !step.tests.iter().any(|t| t.contains(f))
        {
            continue;
        }
        if step.tests.is_empty() {
            // libtest's filters are alternatives: a user filter narrows the
            // suite by following its path.
            args.push(quote(&format!("{suite}{}", filter.unwrap_or(""))));
        } else {
            args.push("--exact".into());
            args.extend(step.tests.iter().map(|t| quote(&format!("{suite}{t}"))));
        }
        writeln!(
            s,
            "echo {}",
            quote(&format!("slimd-vm: step {} ({})", step.test, step.why))
        )?;
        writeln!(s, "{} || rc=1", args.join(" "))?;
    }
    writeln!(s, "exit $rc")?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_comes_from_cargo_json() {
        let json = "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"slimd_tests\",\"kind\":[\"lib\"]},\"profile\":{\"test\":false},\"executable\":null}\n\
                    {\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"slimd_tests\",\"kind\":[\"lib\"]},\"profile\":{\"test\":true},\"executable\":\"/t/deps/slimd_tests-0123\"}\n\
                    {\"reason\":\"build-finished\",\"success\":true}\nnot json\n";
        assert_eq!(executable(json).unwrap(), "/t/deps/slimd_tests-0123");
        let missing = json.lines().take(1).collect::<Vec<_>>().join("\n");
        assert!(executable(&missing).is_err());
    }

    #[test]
    fn script_runs_every_step_and_keeps_failures() {
        let exe = "/t/deps/slimd_tests-0123";
        let s = script(
            exe,
            Path::new("/p/target/debug"),
            Path::new("/p/tests"),
            None,
        )
        .unwrap();
        assert!(s.contains("export SLIMD_BIN_DIR='/p/target/debug'"));
        assert!(s.contains(
            "'/t/deps/slimd_tests-0123' --include-ignored --test-threads=1 --color=never 'tests::tracer::' || rc=1"
        ));
        assert!(s.contains(
            "'/t/deps/slimd_tests-0123' --include-ignored --test-threads=1 --color=never --exact 'tests::build::one_shot_cli' || rc=1"
        ));
        // Step descriptions are quoted: their backquotes stay text.
        assert!(s.contains("and `slim status` lists it)'"));
        assert!(s.trim_end().ends_with("exit $rc"));
        // A filter narrows whole suites and drops named tests it misses.
        let s = script(
            exe,
            Path::new("/b"),
            Path::new("/p/tests"),
            Some("hot_loop"),
        )
        .unwrap();
        assert!(s.contains(
            "'/t/deps/slimd_tests-0123' --include-ignored --test-threads=1 --color=never 'tests::tracer::hot_loop'"
        ));
        assert!(!s.contains("one_shot_cli"));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
