//! Session cgroups: the tag the kernel programs match on.
//!
//! Each session gets `<cgroup2 root>/<root name>/<session>` *before* its
//! container exists; the engine then starts the container with
//! `CgroupParent=/<root name>/<session>`, so the app's very first instruction
//! already runs under a tagged ancestor. On hybrid hosts (v1 controllers,
//! cgroup2 at `/sys/fs/cgroup/unified`) runc places the container in the v2
//! tree too, and creates matching v1 directories that we remove afterwards.

use std::{
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::TracerError;

/// How the host mounts cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only cgroup2 (`/sys/fs/cgroup` is cgroup2).
    Unified,
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid,
}

/// The host's cgroup mounts, read from `/proc/self/mountinfo`.
#[derive(Clone, Debug, Serialize)]
pub struct CgroupHost {
    pub mode: CgroupMode,
    /// Where cgroup2 is mounted.
    pub v2_mount: PathBuf,
    /// v1 hierarchies (controllers and named ones), for cleanup.
    pub v1_mounts: Vec<PathBuf>,
}

/// A session's cgroup in the v2 tree.
#[derive(Clone, Debug, Serialize)]
pub struct SessionCgroup {
    /// Directory in the cgroup2 mount.
    pub path: PathBuf,
    /// Path as the engine's `CgroupParent` wants it: `/<root name>/<session>`.
    pub parent: String,
    /// The cgroup id (inode number of the directory): the session tag.
    pub id: u64,
    /// Depth below the cgroup2 root (root = 0).
    pub level: u32,
}

impl CgroupHost {
    /// Finds the cgroup mounts of this host.
    pub fn discover() -> Result<Self, TracerError> {
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(|e| TracerError::Cgroup {
            path: "/proc/self/mountinfo".into(),
            source: e,
        })?;
        Self::from_mountinfo(&text)
    }

    /// Parses mountinfo text (split out for tests).
    pub fn from_mountinfo(text: &str) -> Result<Self, TracerError> {
        let mut v2 = None;
        let mut v1 = Vec::new();
        for line in text.lines() {
            // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split_whitespace().next().unwrap_or("");
            let Some(mount_point) = left.split_whitespace().nth(4) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            match fstype {
                "cgroup2" if v2.is_none() => v2 = Some(mount_point),
                "cgroup" => v1.push(mount_point),
                _ => {}
            }
        }
        let v2_mount = v2.ok_or(TracerError::NoCgroup2)?;
        let mode = if v1.is_empty() {
            CgroupMode::Unified
        } else {
            CgroupMode::Hybrid
        };
        Ok(Self {
            mode,
            v2_mount,
            v1_mounts: v1,
        })
    }

    /// Creates `<v2>/<root_name>` if missing (the directory every session
    /// cgroup lives in). On hosts whose cgroup2 root is mode 0555 (hybrid
    /// layouts) this needs CAP_DAC_OVERRIDE, which the daemon itself does
    /// not hold: `slimd prepare` does it before the daemon starts.
    pub fn create_root(&self, root_name: &str) -> Result<PathBuf, TracerError> {
        check_name(root_name)?;
        let root = self.v2_mount.join(root_name);
        match fs::create_dir(&root) {
            Ok(()) => Ok(root),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(root),
            Err(source) => Err(TracerError::Cgroup { path: root, source }),
        }
    }

    /// Creates `<v2>/<root_name>/<session>` and returns its id.
    pub fn create_session(
        &self,
        root_name: &str,
        session: &str,
    ) -> Result<SessionCgroup, TracerError> {
        check_name(root_name)?;
        check_name(session)?;
        let root = self.v2_mount.join(root_name);
        let path = root.join(session);
        for dir in [&root, &path] {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir == &root => {}
                Err(e) => {
                    return Err(TracerError::Cgroup {
                        path: dir.clone(),
                        source: e,
                    });
                }
            }
        }
        let id = cgroup_id(&path)?;
        Ok(SessionCgroup {
            parent: format!("/{root_name}/{session}"),
            level: 2,
            path,
            id,
        })
    }

    /// Names of session cgroups that exist under `root_name` (for cleanup of
    /// leftovers after a crash).
    pub fn list_sessions(&self, root_name: &str) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.v2_mount.join(root_name)) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Removes a session's cgroups, in the v2 tree and every v1 hierarchy
    /// where the runtime made a copy. Processes still inside are killed
    /// (see [`kill_all`]), then the directories are removed deepest first.
    pub fn remove_session(&self, root_name: &str, session: &str) -> Result<(), TracerError> {
        check_name(root_name)?;
        check_name(session)?;
        let v2 = self.v2_mount.join(root_name).join(session);
        if v2.exists() {
            kill_all(&v2);
        }
        let mut first_err = None;
        for base in std::iter::once(&self.v2_mount).chain(self.v1_mounts.iter()) {
            let dir = base.join(root_name).join(session);
            if dir.exists()
                && let Err(e) = remove_tree(&dir)
                && first_err.is_none()
            {
                first_err = Some(TracerError::Cgroup {
                    path: dir,
                    source: e,
                });
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The cgroup id of a cgroup2 directory is its inode number.
pub fn cgroup_id(path: &Path) -> Result<u64, TracerError> {
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| TracerError::Cgroup {
            path: path.to_path_buf(),
            source: e,
        })
}

/// Session and root names become directory names: keep them plain.
pub(crate) fn check_name(name: &str) -> Result<(), TracerError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(TracerError::Cgroup {
            path: name.into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "invalid cgroup name"),
        })
    }
}

/// Kills every process in a cgroup2 tree: `cgroup.kill` (Linux 5.14, which
/// the daemon and `slimd trace` require at start-up, see
/// [`super::features`]); where it is missing anyway (a library user that
/// skipped the probe), SIGKILL to each pid in `cgroup.procs` of the tree,
/// a few passes over it for processes forked meanwhile.
pub fn kill_all(dir: &Path) {
    match fs::write(dir.join("cgroup.kill"), "1") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
            for _ in 0..3 {
                let pids = procs_in_tree(dir);
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    // SAFETY: kill(2) with a pid read from the cgroup; no memory involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Err(e) => tracing::warn!("{}: {e}", dir.join("cgroup.kill").display()),
    }
}

/// The pids in `cgroup.procs` of `dir` and every cgroup below it.
fn procs_in_tree(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(procs_in_tree(&e.path()));
            }
        }
    }
    pids
}

/// Removes a cgroup directory tree (cgroupfs only allows rmdir of empty
/// cgroups, so children first). A cgroup whose last process is still exiting
/// refuses with EBUSY for a moment: retry until a deadline.
fn remove_tree(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_cgroup_kill_every_pid_of_the_tree_is_found() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cgroup.procs"), "").unwrap();
        fs::create_dir(d.path().join("child")).unwrap();
        fs::write(d.path().join("child/cgroup.procs"), "0\n").unwrap();
        assert!(procs_in_tree(d.path()).is_empty(), "pid 0 is never killed");
        fs::write(d.path().join("child/cgroup.procs"), "123\n456\n").unwrap();
        let mut pids = procs_in_tree(d.path());
        pids.sort();
        assert_eq!(pids, vec![123, 456]);
    }

    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu rw,nosuid shared:15 - cgroup cgroup rw,cpu
";
    const UNIFIED: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn hybrid_host() {
        let h = CgroupHost::from_mountinfo(HYBRID).unwrap();
        assert_eq!(h.mode, CgroupMode::Hybrid);
        assert_eq!(h.v2_mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.v1_mounts.len(), 2);
    }

    #[test]
    fn unified_host() {
        let h = CgroupHost::from_mountinfo(UNIFIED).unwrap();
        assert_eq!(h.mode, CgroupMode::Unified);
        assert_eq!(h.v2_mount, Path::new("/sys/fs/cgroup"));
        assert!(h.v1_mounts.is_empty());
    }

    #[test]
    fn no_cgroup2_is_an_error() {
        let only_v1 = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(
            CgroupHost::from_mountinfo(&only_v1),
            Err(TracerError::NoCgroup2)
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("slimd").is_ok());
        assert!(check_name("s-0123_ab.c").is_ok());
        for bad in ["", "..", ".", "a/b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
    }
}
