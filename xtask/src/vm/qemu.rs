//! Booting one VM under QEMU and following it to the end: KVM when it can
//! run the kernel, TCG (software emulation) otherwise, said loudly; the
//! kernel's console to a log file, the guest's plan output (second serial
//! port) streamed to our stdout as it comes; one deadline for the whole run.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// How the guest's CPU is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

/// One VM to boot.
pub struct Launch<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub disk: &'a Path,
    /// Shared read-only with tag `project`.
    pub project: &'a Path,
    /// Shared read-only with tag `target` when outside the project.
    pub target: Option<&'a Path>,
    /// Shared read-write with tag `vmrun` (env, plan, results).
    pub run_dir: &'a Path,
    pub cpus: u32,
    pub memory_mib: u32,
    /// For the whole run, boot to power-off.
    pub deadline: Duration,
}

/// What one run gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The plan's exit status, from the guest's last line.
    pub exit: Option<i32>,
    /// Seconds from starting QEMU to the guest init's first line.
    pub boot_s: Option<f64>,
    /// ... to dockerd answering.
    pub docker_s: Option<f64>,
    /// ... to the plan's end.
    pub plan_s: Option<f64>,
    pub total_s: f64,
    /// Summed over the `test result:` lines of libtest.
    pub passed: u64,
    pub failed: u64,
    /// Why the run did not end with a plan exit status.
    pub error: Option<String>,
    /// The guest's first line (`Linux <release> ...`).
    pub guest_release: Option<String>,
}

/// Whether /dev/kvm can be opened for use.
pub fn kvm_device_usable() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// `qemu-system-x86_64`, or an error with the install command.
pub fn check_installed() -> Result<()> {
    match Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "qemu-system-x86_64 not found: `cargo xtask setup` installs it (apt-get install qemu-system-x86)"
        ),
    }
}

fn command(l: &Launch, accel: Accel, console: &Path) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
    ]);
    match accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg", "-cpu", "max"]),
    };
    c.args([
        "-smp",
        &l.cpus.to_string(),
        "-m",
        &format!("{}M", l.memory_mib),
    ])
    .arg("-kernel")
    .arg(l.kernel)
    .arg("-initrd")
    .arg(l.initramfs)
    // No systemd in the guest, and no v1 hierarchy either: pure cgroup v2.
    .args([
        "-append",
        "console=ttyS0 panic=-1 loglevel=4 cgroup_no_v1=all random.trust_cpu=on",
    ])
    .arg("-drive")
    .arg(format!(
        "file={},format=raw,if=virtio,snapshot=on",
        l.disk.display()
    ))
    .arg("-virtfs")
    .arg(virtfs(l.project, "project", true))
    .arg("-virtfs")
    .arg(virtfs(l.run_dir, "vmrun", false));
    if let Some(t) = l.target {
        c.arg("-virtfs").arg(virtfs(t, "target", true));
    }
    c.arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-serial", "stdio", "-nic", "none"]);
    c
}

fn virtfs(path: &Path, tag: &str, readonly: bool) -> String {
    format!(
        "local,path={},mount_tag={tag},security_model=none,multidevs=remap{}",
        path.display(),
        if readonly { ",readonly=on" } else { "" }
    )
}

/// How long a kernel under KVM may take to reach the guest init (a few
/// seconds where KVM works) before KVM is taken as unable to run it.
const KVM_BANNER: Duration = Duration::from_secs(60);

/// Result of trying KVM.
pub enum KvmTry {
    Ran(Outcome),
    /// KVM could not run this kernel: why.
    Refused(String),
}

/// Boots under KVM; gives up (killing QEMU) when QEMU exits or the guest
/// reaches neither its initramfs nor its init within [`KVM_BANNER`] (the
/// kernel's own messages below warnings are not printed), so that the
/// caller can fall back.
pub fn run_kvm(l: &Launch) -> Result<KvmTry> {
    let console = l.run_dir.join("console.log");
    let mut child = spawn(l, Accel::Kvm, &console)?;
    let start = Instant::now();
    loop {
        if fs::read_to_string(&console).is_ok_and(|t| t.contains("slimd-vm")) {
            break;
        }
        if let Some(st) = child.try_wait()? {
            let err = stderr_text(&mut child);
            return Ok(KvmTry::Refused(format!(
                "QEMU stopped before the kernel started ({st}): {}",
                err.lines().next().unwrap_or("").trim()
            )));
        }
        if start.elapsed() > KVM_BANNER {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(KvmTry::Refused(format!(
                "the guest did not reach its init within {} s",
                KVM_BANNER.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    follow(child, l, start, None).map(KvmTry::Ran)
}

/// A kernel under TCG reaches its init in 3 to 10 s here; one that has not
/// after this long has stalled (seen: an emulated CPU stuck before init,
/// RCU stall reports and nothing else on the console, on a loaded host).
const TCG_BOOT_DEADLINE: Duration = Duration::from_secs(240);
/// Boots tried under TCG before the run counts as failed.
const TCG_BOOT_TRIES: u32 = 2;

/// Boots under TCG; a boot that stalls before the kernel reaches its init
/// is killed and tried again once, said so (the stalled console is kept as
/// `console-stalled.log`).
pub fn run_tcg(l: &Launch) -> Result<Outcome> {
    let console = l.run_dir.join("console.log");
    let mut attempt = 1;
    loop {
        let child = spawn(l, Accel::Tcg, &console)?;
        let out = follow(child, l, Instant::now(), Some(TCG_BOOT_DEADLINE))?;
        if out.boot_s.is_some() || attempt == TCG_BOOT_TRIES {
            return Ok(out);
        }
        let kept = l.run_dir.join("console-stalled.log");
        let _ = fs::rename(&console, &kept);
        println!(
            "vm: NOTE: the kernel did not reach its init within {} s under TCG (console: {}); booting it again",
            TCG_BOOT_DEADLINE.as_secs(),
            kept.display()
        );
        attempt += 1;
    }
}

fn spawn(l: &Launch, accel: Accel, console: &Path) -> Result<Child> {
    let _ = fs::remove_file(console);
    command(l, accel, console)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start qemu-system-x86_64")
}

fn stderr_text(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Streams the guest's lines until it powers off or the deadline passes
/// (or, with `boot_deadline`, until then when the guest has not booted).
fn follow(
    mut child: Child,
    l: &Launch,
    start: Instant,
    boot_deadline: Option<Duration>,
) -> Result<Outcome> {
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf).replace('\r', "");
            if tx.send(line.trim_end_matches('\n').to_string()).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut out = Outcome::default();
    let deadline = start + l.deadline;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => {
                println!("{line}");
                parse_line(&line, start.elapsed().as_secs_f64(), &mut out);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            out.error = Some(format!(
                "the VM did not finish within {} s (killed)",
                l.deadline.as_secs()
            ));
            break;
        }
        if let Some(b) = boot_deadline
            && out.boot_s.is_none()
            && start.elapsed() > b
        {
            let _ = child.kill();
            out.error = Some(format!(
                "the kernel did not reach its init within {} s (killed)",
                b.as_secs()
            ));
            break;
        }
    }
    let status = child.wait()?;
    out.total_s = start.elapsed().as_secs_f64();
    let qemu_err = err_thread.join().unwrap_or_default();
    if out.exit.is_none() && out.error.is_none() {
        out.error = Some(format!(
            "QEMU ended ({status}) before the guest reported an exit status{}",
            if qemu_err.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", qemu_err.trim())
            }
        ));
    }
    Ok(out)
}

/// Reads the guest's markers and libtest's summary lines.
fn parse_line(line: &str, at: f64, out: &mut Outcome) {
    if let Some(rest) = line.strip_prefix("slimd-vm: ") {
        if let Some(r) = rest.strip_prefix("booted: ") {
            out.boot_s = Some(at);
            out.guest_release = r.split(" at ").next().map(str::to_string);
        } else if rest.starts_with("dockerd ") && rest.contains(" ready") {
            out.docker_s = Some(at);
        } else if rest.starts_with("plan finished") {
            out.plan_s = Some(at);
        } else if let Some(code) = rest.strip_prefix("exit ") {
            out.exit = code.trim().parse().ok();
        }
    } else if let Some(rest) = line.strip_prefix("test result: ") {
        // test result: ok. 7 passed; 0 failed; 0 ignored; ...
        for part in rest.split(';') {
            let mut w = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (w.next(), w.next()) else {
                continue;
            };
            let n: u64 = n.parse().unwrap_or(0);
            match kind {
                "passed" => out.passed += n,
                "failed" => out.failed += n,
                _ => {}
            }
        }
    }
}

/// The last `n` lines of the console log, for failure reports.
pub fn console_tail(run_dir: &Path, n: usize) -> String {
    let text = fs::read_to_string(run_dir.join("console.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The run directory's console log path, for messages.
pub fn console_path(run_dir: &Path) -> PathBuf {
    run_dir.join("console.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_lines_are_read() {
        let mut o = Outcome::default();
        parse_line(
            "slimd-vm: booted: Linux 6.1.0-57-amd64 at 8.04 s of uptime",
            9.5,
            &mut o,
        );
        parse_line("slimd-vm: dockerd 20.10.24 ready at 40.95 s", 42.0, &mut o);
        parse_line(
            "test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.21s",
            50.0,
            &mut o,
        );
        parse_line(
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 3 filtered out; finished in 1s",
            60.0,
            &mut o,
        );
        parse_line("slimd-vm: plan finished at 70 s", 71.0, &mut o);
        parse_line("slimd-vm: exit 1", 71.5, &mut o);
        assert_eq!(o.boot_s, Some(9.5));
        assert_eq!(o.guest_release.as_deref(), Some("Linux 6.1.0-57-amd64"));
        assert_eq!(o.docker_s, Some(42.0));
        assert_eq!(o.plan_s, Some(71.0));
        assert_eq!((o.passed, o.failed), (8, 2));
        assert_eq!(o.exit, Some(1));
    }

    #[test]
    fn the_command_line_shares_the_project_and_streams_the_second_port() {
        let l = Launch {
            kernel: Path::new("/k/vmlinuz"),
            initramfs: Path::new("/r/initramfs.cpio"),
            disk: Path::new("/c/disk.img"),
            project: Path::new("/p"),
            target: Some(Path::new("/t")),
            run_dir: Path::new("/r"),
            cpus: 2,
            memory_mib: 3072,
            deadline: Duration::from_secs(60),
        };
        let c = command(&l, Accel::Tcg, Path::new("/r/console.log"));
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg -cpu max"));
        assert!(joined.contains("file=/c/disk.img,format=raw,if=virtio,snapshot=on"));
        assert!(
            joined.contains(
                "path=/p,mount_tag=project,security_model=none,multidevs=remap,readonly=on"
            )
        );
        assert!(joined.contains("mount_tag=vmrun,security_model=none,multidevs=remap "));
        assert!(joined.contains("mount_tag=target"));
        assert!(joined.contains("-serial file:/r/console.log -serial stdio"));
        assert!(joined.contains("cgroup_no_v1=all"));
    }
}
