//! The process model: from raw events to absolute container paths.
//!
//! Syscalls name files relative to the process's cwd or to a directory fd,
//! so this replays the session's process tree in event order: forks copy the
//! parent's cwd and fd table, `chdir`/`fchdir` move the cwd, opens bind fds,
//! execs change the program. Each file event then becomes an [`Access`] with
//! an absolute path as the app saw it inside the container (symlinks not yet
//! followed: that needs the image, see `resolve::keep`).
//!
//! Events of the container runtime itself (runc, before it execs the app) are
//! not the app's: before `pivot_root` they even name host paths. Only its
//! final `chdir` (the WORKDIR) and its exec of the entrypoint are kept.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tracer::{EventData, RawPath, SockAddr, TraceEvent};

/// What a process did with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    Open,
    Stat,
    Access,
    Readlink,
    Chdir,
    /// The file an exec ran (sched_process_exec).
    Exec,
    /// The path an execve asked for (may have failed, e.g. a PATH search).
    ExecRequest,
    /// A Unix socket path given to connect, or created by bind (then a
    /// write).
    Socket,
}

/// One file access, resolved to an absolute container path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Absolute path inside the container, as named (cwd/dfd applied,
    /// symlinks and `..` not yet resolved against the image).
    pub path: String,
    pub kind: AccessKind,
    /// The syscall succeeded.
    pub ok: bool,
    /// The last component is not followed (lstat, readlink, O_NOFOLLOW...).
    pub nofollow: bool,
    /// Opened for writing or creating.
    pub write: bool,
    pub pid: u32,
    pub comm: String,
}

/// An exec the app made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    pub pid: u32,
    pub ppid: u32,
    pub path: String,
    pub argv: Vec<String>,
    pub ok: bool,
}

/// A socket operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRecord {
    pub pid: u32,
    pub comm: String,
    pub op: NetOp,
    pub addr: Option<SockAddr>,
    pub ok: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetOp {
    Connect,
    Bind,
    Listen,
}

/// Everything the model extracted from a session's events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Observations {
    pub accesses: Vec<Access>,
    pub execs: Vec<ExecRecord>,
    pub network: Vec<NetRecord>,
    /// Processes seen (app and runtime).
    pub processes: usize,
    /// Paths that could not be used (truncated, unreadable, unknown dfd).
    pub unresolved: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct Proc {
    ppid: u32,
    cwd: String,
    exe: String,
    fds: HashMap<i32, String>,
    /// Sockets bound by this process: fd -> address (for listen records).
    bound: HashMap<i32, SockAddr>,
    /// Pending execve request (path, argv) until the exec or its failure.
    exec_request: Option<(String, Vec<String>)>,
    /// The container runtime setting the container up: it re-executed
    /// itself from a file descriptor (runc's memfd copy of its binary)
    /// and has not run the app yet.
    runtime: bool,
}

/// Maps a directory path to its symlink-free form in the image.
pub type Canonicalizer = Box<dyn Fn(&str) -> String + Send>;

/// Replays events; see the module docs.
#[derive(Default)]
pub struct ProcessModel {
    procs: HashMap<u32, Proc>,
    out: Observations,
    /// Canonicalises a directory path (follows symlinks in the image) so that
    /// `..` after a `chdir` through a symlink goes where the kernel went.
    canon: Option<Canonicalizer>,
    /// The app's first exec has been seen (the runtime's set-up is over).
    app_started: bool,
}

const O_WRONLY: u64 = libc::O_WRONLY as u64;
const O_RDWR: u64 = libc::O_RDWR as u64;
const O_CREAT: u64 = libc::O_CREAT as u64;
const O_TRUNC: u64 = libc::O_TRUNC as u64;
const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;

/// True for processes of the container runtime (runc and its init stages).
fn is_runtime(comm: &str) -> bool {
    comm.starts_with("runc")
}

/// An exec of a file descriptor or of the running binary itself: how runc
/// re-executes its own copy (`/proc/self/exe`, then a memfd as `/dev/fd/N`)
/// before it names itself `runc:[...]` and runs the app. Before the app's
/// first exec only the runtime does this (when the tag lands early enough
/// to see it); an app may do it too later, and then it is the app's.
fn is_self_reexec(path: &str) -> bool {
    path == "/proc/self/exe"
        || ["/dev/fd/", "/proc/self/fd/"].iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

impl ProcessModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `canon` to canonicalise directories entered with chdir.
    pub fn with_canonicalizer(canon: impl Fn(&str) -> String + Send + 'static) -> Self {
        Self {
            canon: Some(Box::new(canon)),
            ..Self::default()
        }
    }

    /// Convenience: replay all events and return the observations.
    pub fn resolve_all(events: &[TraceEvent]) -> Vec<Access> {
        let mut m = Self::new();
        for e in events {
            m.feed(e);
        }
        m.finish().accesses
    }

    pub fn finish(mut self) -> Observations {
        self.out.processes = self.procs.len();
        self.out
    }

    fn proc_mut(&mut self, tgid: u32) -> &mut Proc {
        self.procs.entry(tgid).or_insert_with(|| Proc {
            cwd: "/".into(),
            ..Proc::default()
        })
    }

    /// Turns a path argument into an absolute container path.
    fn absolute(&mut self, tgid: u32, path: &RawPath, dfd: Option<i32>) -> Option<String> {
        if !path.is_usable() {
            if path.truncated || path.read_failed {
                self.out
                    .unresolved
                    .push(format!("{} (pid {tgid})", path.decoded()));
            }
            return None;
        }
        let p = path.decoded().into_owned();
        let proc_ = self.procs.get(&tgid);
        let abs = if p.starts_with('/') {
            p
        } else {
            let base = match dfd {
                None => proc_.map(|pr| pr.cwd.clone()).unwrap_or_else(|| "/".into()),
                Some(fd) => match proc_.and_then(|pr| pr.fds.get(&fd)) {
                    Some(dir) => dir.clone(),
                    None => {
                        self.out
                            .unresolved
                            .push(format!("{p} relative to unknown fd {fd} (pid {tgid})"));
                        return None;
                    }
                },
            };
            join(&base, &p)
        };
        Some(self.proc_paths(tgid, abs))
    }

    /// `/proc/self/exe`, `/proc/<pid>/exe` and `/proc/self/fd/N` name files
    /// the process already knows.
    fn proc_paths(&self, tgid: u32, abs: String) -> String {
        let Some(rest) = abs.strip_prefix("/proc/") else {
            return abs;
        };
        let (who, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let pid = if who == "self" || who == "thread-self" {
            Some(tgid)
        } else {
            who.parse().ok()
        };
        let Some(pr) = pid.and_then(|p| self.procs.get(&p)) else {
            return abs;
        };
        if tail == "exe" && !pr.exe.is_empty() {
            return pr.exe.clone();
        }
        if let Some(fd) = tail.strip_prefix("fd/").and_then(|f| f.parse::<i32>().ok())
            && let Some(p) = pr.fds.get(&fd)
        {
            return p.clone();
        }
        abs
    }

    fn push(
        &mut self,
        e: &TraceEvent,
        path: String,
        kind: AccessKind,
        nofollow: bool,
        write: bool,
    ) {
        self.out.accesses.push(Access {
            path,
            kind,
            ok: e.ret >= 0,
            nofollow,
            write,
            pid: e.tgid,
            comm: e.comm.clone(),
        });
    }

    /// Feeds one event (in ring-buffer order).
    pub fn feed(&mut self, e: &TraceEvent) {
        let tgid = e.tgid;
        let runtime = is_runtime(&e.comm) || self.procs.get(&tgid).is_some_and(|p| p.runtime);
        self.proc_mut(tgid);
        match &e.data {
            EventData::Fork { child_pid } => {
                let mut child = self.procs.get(&tgid).cloned().unwrap_or_default();
                child.ppid = tgid;
                child.exec_request = None;
                self.procs.insert(*child_pid, child);
            }
            EventData::Exit { .. } | EventData::CgroupMkdir { .. } => {}
            EventData::Chdir { path } => {
                if e.ret != 0 {
                    if !runtime && let Some(abs) = self.absolute(tgid, path, None) {
                        self.push(e, abs, AccessKind::Chdir, false, false);
                    }
                    return;
                }
                if let Some(abs) = self.absolute(tgid, path, None) {
                    let cwd = self.canonical(&abs);
                    self.proc_mut(tgid).cwd = cwd;
                    if !runtime {
                        self.push(e, abs, AccessKind::Chdir, false, false);
                    }
                }
            }
            EventData::Fchdir { fd } => {
                if e.ret == 0
                    && let Some(dir) = self.procs.get(&tgid).and_then(|p| p.fds.get(fd)).cloned()
                {
                    self.proc_mut(tgid).cwd = dir;
                }
            }
            EventData::Open {
                path, dfd, flags, ..
            } => {
                let Some(abs) = self.absolute(tgid, path, *dfd) else {
                    return;
                };
                if e.ret >= 0 {
                    let fd = e.ret as i32;
                    self.proc_mut(tgid).fds.insert(fd, abs.clone());
                }
                if !runtime {
                    let write = flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0;
                    let nofollow = flags & O_NOFOLLOW != 0;
                    self.push(e, abs, AccessKind::Open, nofollow, write);
                }
            }
            EventData::Stat { path, dfd, flags } => {
                if !runtime && let Some(abs) = self.absolute(tgid, path, *dfd) {
                    let nofollow = flags & AT_SYMLINK_NOFOLLOW != 0;
                    self.push(e, abs, AccessKind::Stat, nofollow, false);
                }
            }
            EventData::Access {
                path, dfd, flags, ..
            } => {
                if !runtime && let Some(abs) = self.absolute(tgid, path, *dfd) {
                    let nofollow = flags & AT_SYMLINK_NOFOLLOW != 0;
                    self.push(e, abs, AccessKind::Access, nofollow, false);
                }
            }
            EventData::Readlink { path, dfd } => {
                if !runtime && let Some(abs) = self.absolute(tgid, path, *dfd) {
                    self.push(e, abs, AccessKind::Readlink, true, false);
                }
            }
            EventData::ExecArgs {
                path, dfd, argv, ..
            } => {
                // The runtime's exec of the entrypoint is the app's first act.
                let abs = if path.bytes.is_empty() {
                    // execveat(fd, "", AT_EMPTY_PATH): the fd's file.
                    dfd.and_then(|fd| self.procs.get(&tgid).and_then(|p| p.fds.get(&fd)).cloned())
                } else {
                    self.absolute(tgid, path, *dfd)
                };
                if let Some(abs) = abs {
                    self.proc_mut(tgid).exec_request = Some((abs.clone(), argv.clone()));
                    // Recorded as a request now: a failed PATH-search attempt is
                    // still a path the app's behaviour depended on.
                    self.out.accesses.push(Access {
                        path: abs,
                        kind: AccessKind::ExecRequest,
                        ok: true,
                        nofollow: false,
                        write: false,
                        pid: tgid,
                        comm: e.comm.clone(),
                    });
                }
            }
            EventData::ExecFailed => {
                let ppid = self.procs.get(&tgid).map(|p| p.ppid).unwrap_or(0);
                if let Some((path, argv)) = self.proc_mut(tgid).exec_request.take() {
                    if let Some(last) = self
                        .out
                        .accesses
                        .iter_mut()
                        .rev()
                        .find(|a| a.pid == tgid && a.kind == AccessKind::ExecRequest)
                    {
                        last.ok = false;
                    }
                    self.out.execs.push(ExecRecord {
                        pid: tgid,
                        ppid,
                        path,
                        argv,
                        ok: false,
                    });
                }
            }
            EventData::Exec { filename, .. } => {
                let request = self.proc_mut(tgid).exec_request.take();
                let Some(abs) = self.absolute(tgid, filename, None) else {
                    return;
                };
                // Before the app runs, the runtime's copy of itself: not the
                // app's exec; the process stays the runtime's until it execs
                // the app.
                let reexec = !self.app_started
                    && (is_self_reexec(&filename.decoded()) || is_self_reexec(&abs));
                self.proc_mut(tgid).runtime = reexec;
                if reexec {
                    return;
                }
                self.app_started = true;
                let ppid = self.procs.get(&tgid).map(|p| p.ppid).unwrap_or(0);
                let argv = request.map(|(_, a)| a).unwrap_or_default();
                self.proc_mut(tgid).exe = abs.clone();
                self.push(e, abs.clone(), AccessKind::Exec, false, false);
                self.out.execs.push(ExecRecord {
                    pid: tgid,
                    ppid,
                    path: abs,
                    argv,
                    ok: true,
                });
            }
            EventData::Connect { fd: _, addr } => {
                if runtime {
                    return;
                }
                if let Some(raw) = unix_socket_path(addr)
                    && let Some(abs) = self.absolute(tgid, &raw, None)
                {
                    self.push(e, abs, AccessKind::Socket, false, false);
                }
                self.net(e, NetOp::Connect, Some(addr.clone()));
            }
            EventData::Bind { fd, addr } => {
                if runtime {
                    return;
                }
                if e.ret == 0 {
                    self.proc_mut(tgid).bound.insert(*fd, addr.clone());
                }
                // Binding a Unix socket path creates a file there: a write.
                if let Some(raw) = unix_socket_path(addr)
                    && let Some(abs) = self.absolute(tgid, &raw, None)
                {
                    self.push(e, abs, AccessKind::Socket, true, true);
                }
                self.net(e, NetOp::Bind, Some(addr.clone()));
            }
            EventData::Listen { fd, .. } => {
                if runtime {
                    return;
                }
                let addr = self.procs.get(&tgid).and_then(|p| p.bound.get(fd)).cloned();
                self.net(e, NetOp::Listen, addr);
            }
        }
    }

    fn net(&mut self, e: &TraceEvent, op: NetOp, addr: Option<SockAddr>) {
        // A non-blocking connect reports EINPROGRESS: it was attempted.
        let ok = e.ret >= 0 || e.ret == -(libc::EINPROGRESS as i64);
        self.out.network.push(NetRecord {
            pid: e.tgid,
            comm: e.comm.clone(),
            op,
            addr,
            ok,
        });
    }

    fn canonical(&self, dir: &str) -> String {
        match &self.canon {
            Some(f) => f(dir),
            // No image at hand: the directory is taken as named.
            None => crate::image::path::normalize(dir),
        }
    }
}

/// Joins a relative path to an absolute base. `.` and empty components go
/// (always safe); `..` stays for the image resolver, because after a symlink
/// it does not mean "drop the previous name".
/// The file a Unix socket address names (abstract and unnamed sockets have
/// none), as a path the process model resolves like an open's.
fn unix_socket_path(addr: &SockAddr) -> Option<RawPath> {
    match addr {
        SockAddr::Unix {
            path,
            r#abstract: false,
        } if !path.is_empty() => Some(RawPath {
            bytes: path.clone().into_bytes(),
            ..RawPath::default()
        }),
        _ => None,
    }
}

fn join(base: &str, rel: &str) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    for c in rel.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() { "/".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tgid: u32, comm: &str, ret: i64, data: EventData) -> TraceEvent {
        TraceEvent {
            ts_ns: 0,
            session: 1,
            pid: tgid,
            tgid,
            ppid: 0,
            comm: comm.into(),
            syscall: None,
            ret,
            data,
        }
    }

    fn raw(p: &str) -> RawPath {
        RawPath {
            bytes: p.as_bytes().to_vec(),
            ..RawPath::default()
        }
    }

    fn open(tgid: u32, p: &str, dfd: Option<i32>, ret: i64) -> TraceEvent {
        ev(
            tgid,
            "app",
            ret,
            EventData::Open {
                path: raw(p),
                dfd,
                flags: 0,
                mode: 0,
            },
        )
    }

    fn paths(o: &Observations) -> Vec<(&str, AccessKind, bool)> {
        o.accesses
            .iter()
            .map(|a| (a.path.as_str(), a.kind, a.ok))
            .collect()
    }

    #[test]
    fn relative_paths_follow_chdir_and_dfd() {
        let mut m = ProcessModel::new();
        m.feed(&ev(1, "app", 0, EventData::Chdir { path: raw("/data") }));
        m.feed(&open(1, "rel.txt", None, 3));
        m.feed(&open(1, "/data/sub", None, 4));
        m.feed(&open(1, "f.txt", Some(4), 5));
        m.feed(&ev(1, "app", 0, EventData::Fchdir { fd: 4 }));
        m.feed(&open(1, "../x", None, -2));
        let o = m.finish();
        assert_eq!(
            paths(&o),
            [
                ("/data", AccessKind::Chdir, true),
                ("/data/rel.txt", AccessKind::Open, true),
                ("/data/sub", AccessKind::Open, true),
                ("/data/sub/f.txt", AccessKind::Open, true),
                ("/data/sub/../x", AccessKind::Open, false),
            ]
        );
    }

    #[test]
    fn kernel_paths_are_bytes() {
        let mut m = ProcessModel::new();
        let latin1 = |b: &[u8]| RawPath {
            bytes: b.to_vec(),
            ..RawPath::default()
        };
        m.feed(&ev(
            1,
            "app",
            0,
            EventData::Chdir {
                path: latin1(b"/srv/caf\xe9"),
            },
        ));
        m.feed(&ev(
            1,
            "app",
            3,
            EventData::Open {
                path: latin1(b"men\xfc.html"),
                dfd: None,
                flags: 0,
                mode: 0,
            },
        ));
        let o = m.finish();
        let got: Vec<Vec<u8>> = o
            .accesses
            .iter()
            .map(|a| crate::image::name::encode(&a.path).into_owned())
            .collect();
        assert_eq!(got, [&b"/srv/caf\xe9"[..], b"/srv/caf\xe9/men\xfc.html"]);
    }

    #[test]
    fn fork_copies_cwd_and_fds_but_not_later_changes() {
        let mut m = ProcessModel::new();
        m.feed(&ev(1, "sh", 0, EventData::Chdir { path: raw("/a") }));
        m.feed(&open(1, "/d", None, 7));
        m.feed(&ev(1, "sh", 0, EventData::Fork { child_pid: 2 }));
        m.feed(&ev(1, "sh", 0, EventData::Chdir { path: raw("/b") }));
        m.feed(&open(2, "x", None, 3));
        m.feed(&open(2, "y", Some(7), 3));
        let o = m.finish();
        let ps: Vec<_> = o
            .accesses
            .iter()
            .filter(|a| a.pid == 2)
            .map(|a| a.path.as_str())
            .collect();
        assert_eq!(ps, ["/a/x", "/d/y"]);
    }

    #[test]
    fn runtime_events_are_not_the_apps_but_its_exec_and_workdir_are() {
        let mut m = ProcessModel::new();
        let runc = "runc:[2:INIT]";
        m.feed(&ev(
            9,
            runc,
            3,
            EventData::Open {
                path: raw("/var/lib/docker/overlay2/x/merged/proc"),
                dfd: None,
                flags: 0,
                mode: 0,
            },
        ));
        m.feed(&ev(9, runc, 0, EventData::Chdir { path: raw("/app") }));
        m.feed(&ev(
            9,
            runc,
            0,
            EventData::ExecArgs {
                path: raw("./run.sh"),
                dfd: None,
                flags: 0,
                argv: vec!["./run.sh".into()],
                argv_truncated: false,
            },
        ));
        m.feed(&ev(
            9,
            "run.sh",
            0,
            EventData::Exec {
                filename: raw("./run.sh"),
                old_pid: 9,
            },
        ));
        let o = m.finish();
        assert_eq!(
            paths(&o),
            [
                ("/app/run.sh", AccessKind::ExecRequest, true),
                ("/app/run.sh", AccessKind::Exec, true)
            ]
        );
        assert_eq!(o.execs.len(), 1);
        assert_eq!(o.execs[0].argv, ["./run.sh"]);
    }

    #[test]
    fn runc_re_executing_itself_before_the_app_is_the_runtime() {
        let exec = |tgid, comm: &str, path: &str| {
            ev(
                tgid,
                comm,
                0,
                EventData::Exec {
                    filename: raw(path),
                    old_pid: tgid,
                },
            )
        };
        let mut m = ProcessModel::new();
        // runc init as /proc/self/exe (comm `exe`), then its memfd copy.
        m.feed(&open(5, "/proc/self/fd", None, 3));
        m.feed(&exec(5, "exe", "/dev/fd/7"));
        m.feed(&ev(5, "7", 0, EventData::Fchdir { fd: 3 }));
        m.feed(&open(5, "/etc/runc-only", None, 4));
        m.feed(&exec(5, "7", "/app/server"));
        m.feed(&open(5, "/app/data", None, 5));
        // Later, the app itself re-executes through /proc/self/exe: the app's.
        m.feed(&exec(5, "server", "/proc/self/exe"));
        m.feed(&open(5, "/app/child-data", None, 6));
        let o = m.finish();
        let execs: Vec<&str> = o.execs.iter().map(|x| x.path.as_str()).collect();
        // /proc/self/exe names the running binary: the app again.
        assert_eq!(execs, ["/app/server", "/app/server"]);
        let opened: Vec<&str> = o
            .accesses
            .iter()
            .filter(|a| a.kind == AccessKind::Open)
            .map(|a| a.path.as_str())
            .collect();
        assert!(!opened.contains(&"/etc/runc-only"), "{opened:?}");
        assert!(opened.contains(&"/app/data") && opened.contains(&"/app/child-data"));
    }

    #[test]
    fn failed_exec_requests_are_marked() {
        let mut m = ProcessModel::new();
        for p in ["/usr/local/bin/python3", "/usr/bin/python3"] {
            m.feed(&ev(
                1,
                "sh",
                0,
                EventData::ExecArgs {
                    path: raw(p),
                    dfd: None,
                    flags: 0,
                    argv: vec!["python3".into()],
                    argv_truncated: false,
                },
            ));
            if p.starts_with("/usr/local") {
                m.feed(&ev(1, "sh", -2, EventData::ExecFailed));
            }
        }
        m.feed(&ev(
            1,
            "python3",
            0,
            EventData::Exec {
                filename: raw("/usr/bin/python3"),
                old_pid: 1,
            },
        ));
        let o = m.finish();
        assert_eq!(
            paths(&o),
            [
                ("/usr/local/bin/python3", AccessKind::ExecRequest, false),
                ("/usr/bin/python3", AccessKind::ExecRequest, true),
                ("/usr/bin/python3", AccessKind::Exec, true),
            ]
        );
        assert!(!o.execs[0].ok && o.execs[1].ok);
    }

    #[test]
    fn proc_self_exe_and_fd_links() {
        let mut m = ProcessModel::new();
        m.feed(&ev(
            1,
            "busybox",
            0,
            EventData::Exec {
                filename: raw("/bin/sh"),
                old_pid: 1,
            },
        ));
        m.feed(&open(1, "/etc/x", None, 5));
        m.feed(&ev(
            1,
            "sh",
            12,
            EventData::Readlink {
                path: raw("/proc/self/exe"),
                dfd: None,
            },
        ));
        m.feed(&open(1, "/proc/self/fd/5", None, 6));
        let o = m.finish();
        let ps: Vec<_> = o.accesses.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(ps, ["/bin/sh", "/etc/x", "/bin/sh", "/etc/x"]);
    }

    #[test]
    fn unusable_paths_are_reported_not_guessed() {
        let mut m = ProcessModel::new();
        let mut p = raw("/very/long");
        p.truncated = true;
        m.feed(&ev(
            1,
            "app",
            -36,
            EventData::Open {
                path: p,
                dfd: None,
                flags: 0,
                mode: 0,
            },
        ));
        m.feed(&open(1, "x", Some(42), 3));
        let o = m.finish();
        assert!(o.accesses.is_empty());
        assert_eq!(o.unresolved.len(), 2);
    }

    #[test]
    fn binding_a_unix_socket_path_is_a_write_there() {
        let mut m = ProcessModel::new();
        m.feed(&ev(
            1,
            "postgres",
            0,
            EventData::Chdir {
                path: raw("/var/lib/pg"),
            },
        ));
        for (path, r#abstract) in [
            ("/var/run/postgresql/.s.PGSQL.5432", false),
            ("rel.sock", false),
            ("hidden", true),
        ] {
            m.feed(&ev(
                1,
                "postgres",
                0,
                EventData::Bind {
                    fd: 3,
                    addr: SockAddr::Unix {
                        path: path.into(),
                        r#abstract,
                    },
                },
            ));
        }
        let o = m.finish();
        let socks: Vec<_> = o
            .accesses
            .iter()
            .filter(|a| a.kind == AccessKind::Socket)
            .map(|a| (a.path.as_str(), a.write))
            .collect();
        assert_eq!(
            socks,
            [
                ("/var/run/postgresql/.s.PGSQL.5432", true),
                ("/var/lib/pg/rel.sock", true)
            ]
        );
        assert_eq!(o.network.len(), 3);
    }

    #[test]
    fn listen_takes_the_bound_address() {
        let mut m = ProcessModel::new();
        let addr = SockAddr::Inet {
            ip: "0.0.0.0".parse().unwrap(),
            port: 80,
        };
        m.feed(&ev(
            1,
            "srv",
            0,
            EventData::Bind {
                fd: 3,
                addr: addr.clone(),
            },
        ));
        m.feed(&ev(1, "srv", 0, EventData::Listen { fd: 3, backlog: 5 }));
        let o = m.finish();
        assert_eq!(o.network[1].op, NetOp::Listen);
        assert_eq!(o.network[1].addr, Some(addr));
    }
}
