//! `cargo xtask install` / `uninstall`: the binaries, the systemd units and
//! the `slimd` group.
//!
//! `install [--prefix P]` (default /usr/local) builds release binaries with
//! the eBPF object embedded, copies `slimd` and `slim` to `P/bin`, the units
//! to /etc/systemd/system with ExecStart pointing at `P/bin/slimd`, creates
//! the `slimd` system group (members may use the API socket), and reloads
//! systemd when it runs (otherwise it says so). Running it again rewrites
//! nothing that is already in place. It records what it put where, with
//! content hashes, in `P/share/slimd/install.json`.
//!
//! `uninstall [--prefix P]` stops and disables the units when systemd runs,
//! then removes exactly what that record lists (and the directories install
//! created, when empty): a file changed since install (an edited unit) is
//! kept and named, and the group is removed only if
//! install created it and nobody is in it. A group with members is left:
//! they were added by an administrator, and deleting it would leave their
//! accounts naming a group that no longer exists. slimd's state in
//! /var/lib/slimd (reports, profiles) is kept too; remove it by hand.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{cargo, project_root, run, target_dir};

const GROUP: &str = "slimd";
const UNITS: [&str; 2] = ["slimd.socket", "slimd.service"];
/// The daemon's path in the units as shipped in deploy/systemd.
const SHIPPED_EXEC: &str = "/usr/local/bin/slimd";

/// Where things go for one prefix.
#[derive(Debug, Clone)]
struct Layout {
    prefix: PathBuf,
    bin_dir: PathBuf,
    unit_dir: PathBuf,
    record: PathBuf,
}

impl Layout {
    fn new(prefix: &Path, unit_dir: &Path) -> Result<Layout> {
        // systemd needs an absolute ExecStart, and treats whitespace, quotes,
        // `%` and `$` specially: refuse rather than quote.
        let shown = prefix.display().to_string();
        if !prefix.is_absolute()
            || shown.contains(|c: char| c.is_whitespace() || "\"'%$\\".contains(c))
        {
            bail!("--prefix must be an absolute path without spaces, quotes, % or $: {shown:?}");
        }
        Ok(Layout {
            prefix: prefix.to_path_buf(),
            bin_dir: prefix.join("bin"),
            unit_dir: unit_dir.to_path_buf(),
            record: prefix.join("share/slimd/install.json"),
        })
    }
}

/// What install put in place.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    files: Vec<RecordedFile>,
    /// Install created the group (it did not exist before).
    created_group: bool,
    /// Directories install created, deepest first (removed when empty).
    #[serde(default)]
    created_dirs: Vec<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct RecordedFile {
    path: PathBuf,
    sha256: String,
}

/// The host operations, so that the file logic can be tested unprivileged.
trait Host {
    fn group_exists(&self) -> Result<bool>;
    fn create_group(&mut self) -> Result<()>;
    /// Users that have the group as primary or supplementary group.
    fn group_members(&self) -> Result<Vec<String>>;
    fn remove_group(&mut self) -> Result<()>;
    fn systemd_running(&self) -> bool;
    fn systemctl(&mut self, args: &[&str]) -> Result<()>;
}

struct RealHost;

impl Host for RealHost {
    fn group_exists(&self) -> Result<bool> {
        Ok(getent(&["group", GROUP])?.is_some())
    }

    fn create_group(&mut self) -> Result<()> {
        run(Command::new("groupadd").args(["--system", GROUP]))
    }

    fn group_members(&self) -> Result<Vec<String>> {
        let Some(line) = getent(&["group", GROUP])? else {
            return Ok(Vec::new());
        };
        // name:x:gid:member,member
        let fields: Vec<&str> = line.trim().split(':').collect();
        let gid = fields.get(2).copied().unwrap_or_default();
        let mut members: Vec<String> = fields
            .get(3)
            .map(|m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        for user in getent(&["passwd"])?.unwrap_or_default().lines() {
            let f: Vec<&str> = user.split(':').collect();
            if f.len() > 3 && f[3] == gid {
                members.push(f[0].to_string());
            }
        }
        members.sort();
        members.dedup();
        Ok(members)
    }

    fn remove_group(&mut self) -> Result<()> {
        run(Command::new("groupdel").arg(GROUP))
    }

    /// The test sd_booted(3) makes.
    fn systemd_running(&self) -> bool {
        Path::new("/run/systemd/system").is_dir()
    }

    fn systemctl(&mut self, args: &[&str]) -> Result<()> {
        run(Command::new("systemctl").args(args))
    }
}

/// `getent ARGS`: Some(stdout), or None when the key is not found (exit 2).
fn getent(args: &[&str]) -> Result<Option<String>> {
    let out = Command::new("getent")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run getent")?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        Some(2) => Ok(None),
        _ => bail!("getent {} failed ({})", args.join(" "), out.status),
    }
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { crate::libc_geteuid() } != 0 {
        bail!(
            "`cargo xtask {what}` writes to /etc/systemd/system and manages groups: run it as root"
        );
    }
    Ok(())
}

pub fn install(prefix: &Path) -> Result<()> {
    require_root("install")?;
    let layout = Layout::new(prefix, Path::new("/etc/systemd/system"))?;
    let bins = build_release()?;
    install_with(
        &layout,
        &bins,
        &project_root().join("deploy/systemd"),
        &mut RealHost,
    )
}

pub fn uninstall(prefix: &Path) -> Result<()> {
    require_root("uninstall")?;
    let layout = Layout::new(prefix, Path::new("/etc/systemd/system"))?;
    uninstall_with(&layout, &mut RealHost)
}

/// Release `slimd` and `slim` with the kernel object embedded (only the two
/// binaries: `build(true)` would build every test in release too).
fn build_release() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "slimd", "--bins"]))?;
    Ok(target_dir().join("release"))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The unit text for this prefix: ExecStart and ExecStartPre lines (with
/// or without systemd's `+`) name `<prefix>/bin/slimd`.
fn unit_for_prefix(text: &str, layout: &Layout) -> String {
    let exe = layout.bin_dir.join("slimd");
    let mut out = String::new();
    for line in text.lines() {
        let exec = ["ExecStart=", "ExecStartPre=+", "ExecStartPre="]
            .iter()
            .find_map(|k| line.strip_prefix(k).map(|cmd| (*k, cmd)));
        match exec {
            Some((key, cmd)) if cmd.starts_with(SHIPPED_EXEC) => {
                out.push_str(key);
                out.push_str(&exe.display().to_string());
                out.push_str(&cmd[SHIPPED_EXEC.len()..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes `bytes` to `dest` (mode `mode`) through a temporary file and a
/// rename, so that a running `slimd` keeps its old binary instead of
/// failing with "text file busy". Returns false when `dest` already had
/// exactly this content and mode.
fn put(dest: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if let Ok(old) = fs::read(dest)
        && old == bytes
        && fs::metadata(dest)?.permissions().mode() & 0o7777 == mode
    {
        return Ok(false);
    }
    let dir = dest.parent().context("destination has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.xtask-{}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dest).with_context(|| format!("rename to {}", dest.display()))?;
    Ok(true)
}

fn read_record(layout: &Layout) -> Result<Option<Record>> {
    match fs::read(&layout.record) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{} is not an install record", layout.record.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", layout.record.display())),
    }
}

fn install_with(layout: &Layout, bins: &Path, units: &Path, host: &mut dyn Host) -> Result<()> {
    let previous = read_record(layout)?.unwrap_or_default();
    let mut record = Record {
        created_dirs: previous.created_dirs.clone(),
        ..Record::default()
    };
    for dir in [
        &layout.bin_dir,
        &layout.unit_dir,
        layout.record.parent().context("record path")?,
    ] {
        for d in missing_dirs(dir) {
            if !record.created_dirs.contains(&d) {
                record.created_dirs.push(d);
            }
        }
    }
    // Deepest first, so that removal empties children before parents.
    record
        .created_dirs
        .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut changed_units = false;
    let mut changed_daemon = false;

    for name in ["slimd", "slim"] {
        let src = bins.join(name);
        let bytes = fs::read(&src).with_context(|| format!("read {}", src.display()))?;
        let dest = layout.bin_dir.join(name);
        let changed = put(&dest, &bytes, 0o755)?;
        report(&dest, changed);
        changed_daemon |= changed && name == "slimd";
        record.files.push(RecordedFile {
            path: dest,
            sha256: sha256(&bytes),
        });
    }
    for name in UNITS {
        let src = units.join(name);
        let text = fs::read_to_string(&src).with_context(|| format!("read {}", src.display()))?;
        let text = unit_for_prefix(&text, layout);
        let dest = layout.unit_dir.join(name);
        let changed = put(&dest, text.as_bytes(), 0o644)?;
        report(&dest, changed);
        changed_units |= changed;
        record.files.push(RecordedFile {
            path: dest,
            sha256: sha256(text.as_bytes()),
        });
    }

    if host.group_exists()? {
        println!("install: group {GROUP} exists");
        record.created_group = previous.created_group;
    } else {
        host.create_group()?;
        println!("install: created system group {GROUP}");
        record.created_group = true;
    }

    let json = serde_json::to_vec_pretty(&record)?;
    put(&layout.record, &json, 0o644)?;

    if host.systemd_running() {
        if changed_units {
            host.systemctl(&["daemon-reload"])?;
        }
        if changed_daemon {
            // Restarts the daemon only if it is running.
            host.systemctl(&["try-restart", "slimd.service"])?;
        }
        println!("install: start it with `systemctl enable --now slimd.socket`");
    } else {
        println!(
            "install: systemd is not running here: no daemon-reload; start the daemon by hand (`{} serve`)",
            layout.bin_dir.join("slimd").display()
        );
    }
    println!(
        "install: add users to the {GROUP} group to let them use `slim` (prefix {})",
        layout.prefix.display()
    );
    Ok(())
}

/// `dir` and those of its ancestors that do not exist yet.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

fn report(dest: &Path, changed: bool) {
    let what = if changed { "installed" } else { "unchanged" };
    println!("install: {what} {}", dest.display());
}

fn uninstall_with(layout: &Layout, host: &mut dyn Host) -> Result<()> {
    let Some(record) = read_record(layout)? else {
        println!(
            "uninstall: no install record at {}: nothing installed by `cargo xtask install` with this prefix",
            layout.record.display()
        );
        return Ok(());
    };
    let systemd = host.systemd_running();
    if systemd {
        // Fails when the units are not loaded; that is fine here.
        let _ = host.systemctl(&["disable", "--now", "slimd.socket", "slimd.service"]);
    }
    let mut kept = Vec::new();
    for f in &record.files {
        match fs::read(&f.path) {
            Ok(bytes) if sha256(&bytes) == f.sha256 => {
                fs::remove_file(&f.path).with_context(|| format!("remove {}", f.path.display()))?;
                println!("uninstall: removed {}", f.path.display());
            }
            Ok(_) => kept.push(f.path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", f.path.display())),
        }
    }
    if record.created_group && host.group_exists()? {
        let members = host.group_members()?;
        if members.is_empty() {
            host.remove_group()?;
            println!("uninstall: removed group {GROUP}");
        } else {
            println!(
                "uninstall: kept group {GROUP}: {} still in it",
                members.join(", ")
            );
        }
    }
    fs::remove_file(&layout.record)?;
    for dir in &record.created_dirs {
        // Only if empty: something else may have moved in since.
        if fs::remove_dir(dir).is_ok() {
            println!("uninstall: removed {}", dir.display());
        }
    }
    if systemd {
        host.systemctl(&["daemon-reload"])?;
    }
    for p in &kept {
        println!(
            "uninstall: kept {} (changed since install; remove it yourself if it is not needed)",
            p.display()
        );
    }
    println!("uninstall: state in /var/lib/slimd is kept");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct FakeHost {
        group: bool,
        members: Vec<String>,
        systemd: bool,
        calls: Vec<String>,
    }

    impl Host for FakeHost {
        fn group_exists(&self) -> Result<bool> {
            Ok(self.group)
        }
        fn create_group(&mut self) -> Result<()> {
            self.group = true;
            self.calls.push("groupadd".into());
            Ok(())
        }
        fn group_members(&self) -> Result<Vec<String>> {
            Ok(self.members.clone())
        }
        fn remove_group(&mut self) -> Result<()> {
            self.group = false;
            self.calls.push("groupdel".into());
            Ok(())
        }
        fn systemd_running(&self) -> bool {
            self.systemd
        }
        fn systemctl(&mut self, args: &[&str]) -> Result<()> {
            self.calls.push(format!("systemctl {}", args.join(" ")));
            Ok(())
        }
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p =
                std::env::temp_dir().join(format!("xtask-install-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn setup(s: &Scratch) -> (Layout, PathBuf, PathBuf) {
        let bins = s.0.join("build");
        fs::create_dir_all(&bins).unwrap();
        fs::write(bins.join("slimd"), b"daemon v1").unwrap();
        fs::write(bins.join("slim"), b"cli v1").unwrap();
        let layout = Layout::new(&s.0.join("prefix"), &s.0.join("units")).unwrap();
        (layout, bins, project_root().join("deploy/systemd"))
    }

    /// Every file and directory under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        let mut v = Vec::new();
        walk(dir, dir, &mut v);
        v.sort();
        v
    }

    #[test]
    fn install_is_idempotent_and_uninstall_removes_exactly_it() {
        let s = Scratch::new("idem");
        let (layout, bins, units) = setup(&s);
        fs::create_dir_all(&layout.bin_dir).unwrap();
        fs::write(layout.bin_dir.join("other-tool"), b"not ours").unwrap();
        let before = tree(&s.0);

        let mut host = FakeHost::default();
        install_with(&layout, &bins, &units, &mut host).unwrap();
        assert_eq!(host.calls, ["groupadd"], "no systemd here: no systemctl");
        let service = fs::read_to_string(layout.unit_dir.join("slimd.service")).unwrap();
        let exec = format!("ExecStart={}/bin/slimd serve\n", layout.prefix.display());
        assert!(service.contains(&exec), "{service}");
        assert!(!service.contains(SHIPPED_EXEC));
        let mode = fs::metadata(layout.bin_dir.join("slimd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let installed = tree(&s.0);

        // Again: nothing changes, the group is not created twice.
        let stamp = fs::metadata(layout.bin_dir.join("slimd"))
            .unwrap()
            .modified()
            .unwrap();
        install_with(&layout, &bins, &units, &mut host).unwrap();
        assert_eq!(host.calls, ["groupadd"]);
        assert_eq!(tree(&s.0), installed);
        assert_eq!(
            fs::metadata(layout.bin_dir.join("slimd"))
                .unwrap()
                .modified()
                .unwrap(),
            stamp
        );
        let record = read_record(&layout).unwrap().unwrap();
        assert!(record.created_group, "still ours on the second run");

        uninstall_with(&layout, &mut host).unwrap();
        assert_eq!(host.calls, ["groupadd", "groupdel"]);
        assert_eq!(tree(&s.0), before, "exactly what install added is gone");
    }

    #[test]
    fn with_systemd_units_are_reloaded_and_the_daemon_restarted_on_change() {
        let s = Scratch::new("systemd");
        let (layout, bins, units) = setup(&s);
        let mut host = FakeHost {
            group: true,
            systemd: true,
            ..FakeHost::default()
        };
        install_with(&layout, &bins, &units, &mut host).unwrap();
        assert_eq!(
            host.calls,
            [
                "systemctl daemon-reload",
                "systemctl try-restart slimd.service"
            ]
        );
        host.calls.clear();
        fs::write(bins.join("slimd"), b"daemon v2").unwrap();
        install_with(&layout, &bins, &units, &mut host).unwrap();
        assert_eq!(host.calls, ["systemctl try-restart slimd.service"]);
        host.calls.clear();
        uninstall_with(&layout, &mut host).unwrap();
        assert_eq!(
            host.calls,
            [
                "systemctl disable --now slimd.socket slimd.service",
                "systemctl daemon-reload"
            ],
            "the group existed before install: it stays"
        );
        assert!(host.group);
    }

    #[test]
    fn uninstall_keeps_edited_files_and_a_group_with_members() {
        let s = Scratch::new("keep");
        let (layout, bins, units) = setup(&s);
        let mut host = FakeHost::default();
        install_with(&layout, &bins, &units, &mut host).unwrap();
        let unit = layout.unit_dir.join("slimd.service");
        fs::write(&unit, "edited by the admin\n").unwrap();
        host.members = vec!["alice".into()];
        uninstall_with(&layout, &mut host).unwrap();
        assert!(unit.exists(), "edited unit kept");
        assert!(!layout.bin_dir.join("slimd").exists());
        assert!(!layout.record.exists());
        assert!(host.group, "group with members kept");
        assert_eq!(host.calls, ["groupadd"]);
        // Without a record there is nothing to do.
        uninstall_with(&layout, &mut host).unwrap();
        assert!(unit.exists());
    }

    #[test]
    fn prefixes_systemd_cannot_take_are_refused() {
        let units = Path::new("/etc/systemd/system");
        assert!(Layout::new(Path::new("relative"), units).is_err());
        assert!(Layout::new(Path::new("/opt/my slimd"), units).is_err());
        assert!(Layout::new(Path::new("/opt/100%"), units).is_err());
        let l = Layout::new(Path::new("/opt/slimd"), units).unwrap();
        assert_eq!(l.bin_dir, Path::new("/opt/slimd/bin"));
        assert_eq!(l.record, Path::new("/opt/slimd/share/slimd/install.json"));
    }
}
