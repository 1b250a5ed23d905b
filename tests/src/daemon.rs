//! A `slimd serve` process for end-to-end tests, with its own socket, state
//! directory and cgroup root (so it never touches a real daemon's sessions),
//! and a `slim` runner bound to it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SLIMD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    dir.join(name)
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub cgroup_root: String,
    /// Extra `slimd serve` flags.
    pub extra: Vec<String>,
    /// A command the daemon runs under (e.g. `setpriv` with a capability
    /// bounding set); empty: none.
    pub wrapper: Vec<String>,
    /// The CLI of the engine the daemon drives (`docker`, `podman`): lists
    /// and removes what its sessions leave.
    pub engine_cli: &'static str,
}

impl Daemon {
    /// Starts a daemon named `name` and waits until it answers.
    pub fn start(name: &str) -> Result<Self> {
        Self::start_with(name, &[])
    }

    /// Same, with extra `slimd serve` flags.
    pub fn start_with(name: &str, extra: &[&str]) -> Result<Self> {
        Self::start_wrapped(name, &[], extra)
    }

    /// Same, run under `wrapper` (a command that then runs slimd).
    pub fn start_wrapped(name: &str, wrapper: &[&str], extra: &[&str]) -> Result<Self> {
        crate::ensure_docker()?;
        let dir = std::env::temp_dir().join(format!("slimd-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut d = Daemon {
            child: None,
            socket: dir.join("slimd.sock"),
            state: dir.join("state"),
            cgroup_root: format!("slimd-e2e-{name}"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            engine_cli: "docker",
            dir,
        };
        d.spawn()?;
        Ok(d)
    }

    /// A daemon driving rootful Podman (`--engine podman`, its default
    /// socket), started when none answers; `extra` are more flags.
    pub fn start_podman(name: &str, extra: &[&str]) -> Result<Self> {
        crate::podman::ensure_podman()?;
        let mut flags = vec!["--engine", "podman"];
        flags.extend_from_slice(extra);
        let mut d = Self::start_with(name, &flags)?;
        d.engine_cli = "podman";
        Ok(d)
    }

    /// (Re)starts the process on the same socket, state and cgroup root.
    pub fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        let mut cmd = match self.wrapper.split_first() {
            Some((w, args)) => {
                let mut c = Command::new(w);
                c.args(args).arg(bin("slimd"));
                c
            }
            None => Command::new(bin("slimd")),
        };
        let child = cmd
            .arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--cgroup-root")
            .arg(&self.cgroup_root)
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start slimd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self
                .slim(&["status"])
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("slimd did not answer within 60 s; log:\n{}", self.log())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Runs `slim ARGS` against this daemon.
    pub fn slim(&self, args: &[&str]) -> Result<Output> {
        Command::new(bin("slim"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run slim")
    }

    /// Spawns `slim ARGS` without waiting.
    pub fn slim_spawn(&self, args: &[&str]) -> Result<Child> {
        Command::new(bin("slim"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn slim")
    }

    /// `slim --json build ...`: every progress line, parsed.
    pub fn build_json(&self, args: &[&str]) -> Result<(Output, Vec<serde_json::Value>)> {
        let mut all = vec!["--json", "build"];
        all.extend_from_slice(args);
        let out = self.slim(&all)?;
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad line {l:?}")))
            .collect::<Result<Vec<_>>>()?;
        Ok((out, lines))
    }

    /// `slim --json build ARGS...` that must finish and pass verify: its
    /// summary and wall time.
    pub fn build_verified(&self, args: &[&str]) -> Result<(serde_json::Value, f64)> {
        let t = Instant::now();
        let (out, lines) = self.build_json(args)?;
        let secs = t.elapsed().as_secs_f64();
        let last = last_event(&lines);
        ensure!(
            out.status.success() && last["event"] == "done",
            "build {args:?} failed ({}): {last}\nstderr: {}\ndaemon log tail: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log())
        );
        let s = last["summary"].clone();
        ensure!(s["verify"]["passed"] == true, "verify did not pass: {s}");
        Ok((s, secs))
    }

    /// Kills the daemon with SIGKILL (no cleanup: a crash).
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc_kill(c.id() as i32, 15) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if c.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            bail!("slimd did not stop within 60 s of SIGTERM");
        }
        Ok(())
    }

    /// Containers this daemon instance has (any state).
    pub fn containers(&self) -> Result<Vec<String>> {
        let out = crate::checked(
            Command::new(self.engine_cli).args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=slimd.instance={}", self.cgroup_root),
            ]),
            Duration::from_secs(60),
        )?;
        Ok(out.split_whitespace().map(str::to_string).collect())
    }

    /// Session cgroups of this instance, in any hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
            for r in roots.flatten() {
                for base in [r.path(), r.path().join("")] {
                    let dir = base.join(&self.cgroup_root);
                    if let Ok(sessions) = std::fs::read_dir(&dir) {
                        for s in sessions.flatten() {
                            if s.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                                found.push(s.path());
                            }
                        }
                    }
                }
            }
        }
        // Pure cgroup2 hosts have the root at /sys/fs/cgroup itself.
        if let Ok(sessions) = std::fs::read_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_root))
        {
            for s in sessions.flatten() {
                if s.file_type().map(|t| t.is_dir()).unwrap_or(false) && !found.contains(&s.path())
                {
                    found.push(s.path());
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    pub fn scratch_entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.join("scratch"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Asserts that nothing of this daemon's sessions is left behind.
    pub fn assert_clean(&self) -> Result<()> {
        let c = self.containers()?;
        if !c.is_empty() {
            bail!("leftover containers: {c:?}");
        }
        let g = self.cgroups();
        if !g.is_empty() {
            bail!("leftover cgroups: {g:?}");
        }
        let s = self.scratch_entries();
        if !s.is_empty() {
            bail!("leftover scratch: {s:?}");
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
        // Whatever a failed test left: remove it, so the next run starts clean.
        if let Ok(ids) = self.containers() {
            for id in ids {
                let _ = crate::checked(
                    Command::new(self.engine_cli).args(["rm", "-f", &id]),
                    Duration::from_secs(60),
                );
            }
        }
        // The (now empty) cgroup root of this test instance.
        if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
            for r in roots.flatten() {
                let _ = std::fs::remove_dir(r.path().join(&self.cgroup_root));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_root));
        // Its socket, state and log: removed (a state directory holds
        // whole images, hundreds of MB a test; a failing test's message
        // already carries the log's tail), kept only after a panic.
        if std::thread::panicking() {
            eprintln!(
                "daemon's files kept for the post-mortem: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The last progress line of a `--json` run.
pub fn last_event(lines: &[serde_json::Value]) -> &serde_json::Value {
    lines.last().expect("no progress lines")
}

pub fn session_id(lines: &[serde_json::Value]) -> String {
    lines
        .iter()
        .find(|l| l["event"] == "session")
        .and_then(|l| l["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The stderr of a `slim` run that had to fail with exit code `code`.
pub fn failed_with(out: &Output, code: i32) -> Result<String> {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.code() == Some(code),
        "exit code {:?}, expected {code}: {err}",
        out.status.code()
    );
    Ok(err)
}

/// The last 3000 bytes of a log, for failure messages.
pub fn tail(s: &str) -> &str {
    let i = s.len().saturating_sub(3000);
    let i = (i..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[i..]
}
