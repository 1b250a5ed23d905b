//! What runs inside each VM, as data: the end-to-end test binaries (built on
//! the host, run in the guest from the 9p-shared target directory) and the
//! tests of each, rendered as the shell script the guest init runs. Their
//! output is libtest's own, so CI reads it as it reads any `cargo test`.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};

/// One test binary of `tests/tests/` and which of its tests run.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The `[[test]]` name (its file under tests/tests/).
    pub test: &'static str,
    /// Exact test names; empty runs the whole binary.
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

/// `cargo test` arguments that build exactly the binaries of [`STEPS`].
pub fn cargo_test_args() -> Vec<String> {
    let mut a: Vec<String> = [
        "test",
        "-p",
        "slimd-tests",
        "--no-run",
        "--message-format=json",
    ]
    .map(String::from)
    .to_vec();
    for s in STEPS {
        a.push("--test".into());
        a.push(s.test.into());
    }
    a
}

/// Test binary paths by test name, from `cargo test --no-run
/// --message-format=json` output.
pub fn executables(json_lines: &str) -> Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let is_test = v["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            v["target"]["name"].as_str(),
            v["executable"].as_str(),
        ) {
            found.insert(name.to_string(), exe.to_string());
        }
    }
    for s in STEPS {
        if !found.contains_key(s.test) {
            bail!("cargo built no test binary `{}`", s.test);
        }
    }
    Ok(found)
}

/// Single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `plan.sh`: every step in turn, each test binary's output as
/// is; exits non-zero when any step failed.
pub fn script(
    exes: &BTreeMap<String, String>,
    bin_dir: &Path,
    tests_dir: &Path,
    filter: Option<&str>,
) -> Result<String> {
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
        let exe = exes
            .get(step.test)
            .with_context(|| format!("no binary for {}", step.test))?;
        let mut args = vec![
            quote(exe),
            "--include-ignored".into(),
            "--test-threads=1".into(),
            // The guest's output is a serial port, a tty: no colours.
            "--color=never".into(),
        ];
        if !step.tests.is_empty() {
            args.push("--exact".into());
            args.extend(step.tests.iter().map(|t| quote(t)));
        }
        if let Some(f) = filter {
            if !step.tests.is_empty() && !step.tests.iter().any(|t| t.contains(f)) {
                continue;
            }
            if step.tests.is_empty() {
                args.push(quote(f));
            }
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

    fn all_exes() -> BTreeMap<String, String> {
        STEPS
            .iter()
            .map(|s| (s.test.to_string(), format!("/t/deps/{}-0123", s.test)))
            .collect()
    }

    #[test]
    fn executables_come_from_cargo_json() {
        let mut json = String::new();
        for s in STEPS {
            json.push_str(&format!(
                "{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"{}\",\"kind\":[\"test\"]}},\"executable\":\"/t/deps/{}-0123\"}}\n",
                s.test, s.test
            ));
        }
        json.push_str("{\"reason\":\"build-finished\",\"success\":true}\nnot json\n");
        assert_eq!(executables(&json).unwrap(), all_exes());
        let missing = json.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(executables(&missing).is_err());
    }

    #[test]
    fn script_runs_every_step_and_keeps_failures() {
        let s = script(
            &all_exes(),
            Path::new("/p/target/debug"),
            Path::new("/p/tests"),
            None,
        )
        .unwrap();
        assert!(s.contains("export SLIMD_BIN_DIR='/p/target/debug'"));
        assert!(s.contains(
            "'/t/deps/tracer-0123' --include-ignored --test-threads=1 --color=never || rc=1"
        ));
        assert!(s.contains(
            "'/t/deps/build-0123' --include-ignored --test-threads=1 --color=never --exact 'one_shot_cli' || rc=1"
        ));
        // Step descriptions are quoted: their backquotes stay text.
        assert!(s.contains("and `slim status` lists it)'"));
        assert!(s.trim_end().ends_with("exit $rc"));
        // A filter narrows whole-binary steps and drops named ones it misses.
        let s = script(
            &all_exes(),
            Path::new("/b"),
            Path::new("/p/tests"),
            Some("hot_loop"),
        )
        .unwrap();
        assert!(s.contains(
            "'/t/deps/tracer-0123' --include-ignored --test-threads=1 --color=never 'hot_loop'"
        ));
        assert!(!s.contains("one_shot_cli"));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
