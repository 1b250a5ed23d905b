//! Typed events decoded from ring-buffer records.
//!
//! Paths, argv words and socket paths are bytes; they become strings through
//! the one lossless encoding of [`crate::image::name`], so a name that is not
//! UTF-8 still matches the image's entry of the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};
use slimd_common::{
    AT_FDCWD, EVENT_ARGV_TRUNCATED, EVENT_GROUP_DEAD, EVENT_READ_FAILED, EVENT_TRUNCATED,
    EventHeader, EventKind, Syscall,
};

use crate::image::name;

/// A path as the app passed it: raw bytes (Linux paths need not be UTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawPath {
    pub bytes: Vec<u8>,
    /// Longer than `slimd_common::MAX_PATH`: the kernel refuses such a path,
    /// and what we hold is only its beginning.
    pub truncated: bool,
    /// The user memory could not be read.
    pub read_failed: bool,
}

impl RawPath {
    /// The path as a path string (lossless; see [`crate::image::name`]).
    pub fn decoded(&self) -> std::borrow::Cow<'_, str> {
        name::decode(&self.bytes)
    }

    pub fn is_absolute(&self) -> bool {
        self.bytes.first() == Some(&b'/')
    }

    /// Usable for resolution: read, complete, not empty.
    pub fn is_usable(&self) -> bool {
        !self.truncated && !self.read_failed && !self.bytes.is_empty()
    }
}

impl Serialize for RawPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.truncated || self.read_failed {
            use serde::ser::SerializeStruct;
            let mut st = s.serialize_struct("RawPath", 3)?;
            st.serialize_field("path", &name::shown(&self.decoded()))?;
            st.serialize_field("truncated", &self.truncated)?;
            st.serialize_field("read_failed", &self.read_failed)?;
            st.end()
        } else {
            s.serialize_str(&name::shown(&self.decoded()))
        }
    }
}

/// A socket address from connect/bind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum SockAddr {
    Inet {
        ip: IpAddr,
        port: u16,
    },
    Inet6 {
        ip: IpAddr,
        port: u16,
    },
    Unix {
        path: String,
        r#abstract: bool,
    },
    /// Another address family (its number).
    Other {
        af: u16,
    },
    Unreadable,
}

impl SockAddr {
    /// Decodes a `struct sockaddr_*` as the app passed it.
    pub fn parse(b: &[u8]) -> Self {
        if b.len() < 2 {
            return Self::Unreadable;
        }
        let family = u16::from_ne_bytes([b[0], b[1]]);
        match family as i32 {
            libc::AF_INET if b.len() >= 8 => Self::Inet {
                port: u16::from_be_bytes([b[2], b[3]]),
                ip: IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
            },
            libc::AF_INET6 if b.len() >= 24 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[8..24]);
                Self::Inet6 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    ip: IpAddr::V6(Ipv6Addr::from(a)),
                }
            }
            libc::AF_UNIX => {
                let p = &b[2..];
                let r#abstract = p.first() == Some(&0) && p.len() > 1;
                let p = if r#abstract { &p[1..] } else { p };
                let end = if r#abstract {
                    p.len()
                } else {
                    p.iter().position(|&c| c == 0).unwrap_or(p.len())
                };
                Self::Unix {
                    path: name::decode(&p[..end]).into_owned(),
                    r#abstract,
                }
            }
            _ => Self::Other { af: family },
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData {
    Open {
        path: RawPath,
        /// None for AT_FDCWD.
        dfd: Option<i32>,
        flags: u64,
        mode: u32,
    },
    Stat {
        path: RawPath,
        dfd: Option<i32>,
        /// AT_* flags (AT_SYMLINK_NOFOLLOW for lstat).
        flags: u64,
    },
    Access {
        path: RawPath,
        dfd: Option<i32>,
        mode: u32,
        flags: u64,
    },
    Readlink {
        path: RawPath,
        dfd: Option<i32>,
    },
    Chdir {
        path: RawPath,
    },
    Fchdir {
        fd: i32,
    },
    /// execve/execveat entry: what the app asked to run.
    ExecArgs {
        path: RawPath,
        dfd: Option<i32>,
        flags: u64,
        argv: Vec<String>,
        argv_truncated: bool,
    },
    /// The kernel ran a new program (sched_process_exec).
    Exec {
        filename: RawPath,
        old_pid: u32,
    },
    ExecFailed,
    Fork {
        child_pid: u32,
    },
    Exit {
        group_dead: bool,
    },
    Connect {
        fd: i32,
        addr: SockAddr,
    },
    Bind {
        fd: i32,
        addr: SockAddr,
    },
    Listen {
        fd: i32,
        backlog: i32,
    },
    /// Watch mode: a new cgroup matched a watch prefix and was tagged.
    CgroupMkdir {
        id: u64,
        level: u32,
        path: RawPath,
    },
}

/// One traced action of one process of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Monotonic kernel time (ns since boot).
    pub ts_ns: u64,
    /// Session tag (the session cgroup id).
    pub session: u64,
    pub pid: u32,
    pub tgid: u32,
    /// Known in the kernel for fork events; 0 otherwise (the process tree
    /// in `resolve` knows the rest).
    #[serde(skip_serializing_if = "is_zero")]
    pub ppid: u32,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall: Option<&'static str>,
    /// Syscall result: fd / 0 / -errno (0 for sched events).
    pub ret: i64,
    #[serde(flatten)]
    pub data: EventData,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl TraceEvent {
    pub fn succeeded(&self) -> bool {
        self.ret >= 0
    }
}

/// A record that does not decode (a kernel/userspace layout mismatch).
#[derive(Debug, thiserror::Error)]
#[error("malformed trace record ({0})")]
pub struct DecodeError(pub &'static str);

const HDR: usize = std::mem::size_of::<EventHeader>();

fn dfd(v: i64) -> Option<i32> {
    if v == AT_FDCWD { None } else { Some(v as i32) }
}

/// Decodes one ring-buffer record.
pub fn decode(rec: &[u8]) -> Result<TraceEvent, DecodeError> {
    if rec.len() < HDR {
        return Err(DecodeError("short header"));
    }
    // SAFETY: EventHeader is plain integers; read_unaligned copes with any alignment.
    let h: EventHeader = unsafe { std::ptr::read_unaligned(rec.as_ptr() as *const EventHeader) };
    let path_end = HDR + h.path_len as usize;
    let aux_end = path_end + h.aux_len as usize;
    if aux_end > rec.len() {
        return Err(DecodeError("lengths past the record"));
    }
    let path = RawPath {
        bytes: rec[HDR..path_end].to_vec(),
        truncated: h.flags & EVENT_TRUNCATED != 0,
        read_failed: h.flags & EVENT_READ_FAILED != 0,
    };
    let aux = &rec[path_end..aux_end];
    let kind = EventKind::from_u16(h.kind).ok_or(DecodeError("unknown kind"))?;
    let syscall = Syscall::from_u8(h.syscall as u8).map(Syscall::name);
    let data = match kind {
        EventKind::Open => EventData::Open {
            path,
            dfd: dfd(h.arg0),
            flags: h.arg1,
            mode: h.arg2 as u32,
        },
        EventKind::Stat => EventData::Stat {
            path,
            dfd: dfd(h.arg0),
            flags: h.arg1,
        },
        EventKind::Access => EventData::Access {
            path,
            dfd: dfd(h.arg0),
            mode: h.arg2 as u32,
            flags: h.arg1,
        },
        EventKind::Readlink => EventData::Readlink {
            path,
            dfd: dfd(h.arg0),
        },
        EventKind::Chdir => EventData::Chdir { path },
        EventKind::Fchdir => EventData::Fchdir { fd: h.arg0 as i32 },
        EventKind::ExecArgs => EventData::ExecArgs {
            path,
            dfd: dfd(h.arg0),
            flags: h.arg1,
            argv: aux
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| name::decode(s).into_owned())
                .collect(),
            argv_truncated: h.flags & EVENT_ARGV_TRUNCATED != 0,
        },
        EventKind::Exec => EventData::Exec {
            filename: path,
            old_pid: h.arg0 as u32,
        },
        EventKind::ExecFailed => EventData::ExecFailed,
        EventKind::Fork => EventData::Fork {
            child_pid: h.arg0 as u32,
        },
        EventKind::Exit => EventData::Exit {
            group_dead: h.flags & EVENT_GROUP_DEAD != 0,
        },
        EventKind::Connect => EventData::Connect {
            fd: h.arg0 as i32,
            addr: sockaddr(aux, h.flags),
        },
        EventKind::Bind => EventData::Bind {
            fd: h.arg0 as i32,
            addr: sockaddr(aux, h.flags),
        },
        EventKind::Listen => EventData::Listen {
            fd: h.arg0 as i32,
            backlog: h.arg2 as i32,
        },
        EventKind::CgroupMkdir => EventData::CgroupMkdir {
            id: h.arg0 as u64,
            level: h.arg1 as u32,
            path,
        },
    };
    let comm_end = h.comm.iter().position(|&c| c == 0).unwrap_or(h.comm.len());
    Ok(TraceEvent {
        ts_ns: h.ts_ns,
        session: h.tag,
        pid: h.pid,
        tgid: h.tgid,
        ppid: h.ppid,
        comm: String::from_utf8_lossy(&h.comm[..comm_end]).into_owned(),
        syscall,
        ret: h.ret,
        data,
    })
}

fn sockaddr(aux: &[u8], flags: u32) -> SockAddr {
    if flags & EVENT_READ_FAILED != 0 {
        SockAddr::Unreadable
    } else {
        SockAddr::parse(aux)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        kind: EventKind,
        path: &[u8],
        aux: &[u8],
        f: impl FnOnce(&mut EventHeader),
    ) -> Vec<u8> {
        let mut h = EventHeader {
            ts_ns: 1,
            tag: 77,
            ret: 3,
            arg0: AT_FDCWD,
            arg1: 0,
            arg2: 0,
            pid: 10,
            tgid: 10,
            ppid: 0,
            kind: kind as u16,
            syscall: Syscall::Openat as u16,
            flags: 0,
            path_len: path.len() as u32,
            aux_len: aux.len() as u32,
            _pad: 0,
            comm: *b"app\0\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        f(&mut h);
        let mut v = vec![0u8; HDR];
        // SAFETY: v has HDR bytes.
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr() as *mut EventHeader, h) };
        v.extend_from_slice(path);
        v.extend_from_slice(aux);
        v
    }

    #[test]
    fn decodes_open() {
        let r = record(EventKind::Open, b"etc/passwd", b"", |h| h.arg0 = 5);
        let e = decode(&r).unwrap();
        assert_eq!(e.comm, "app");
        assert_eq!(e.syscall, Some("openat"));
        match e.data {
            EventData::Open { path, dfd, .. } => {
                assert_eq!(path.bytes, b"etc/passwd");
                assert_eq!(dfd, Some(5));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_exec_args_and_flags() {
        let r = record(EventKind::ExecArgs, b"/bin/sh", b"sh\0-c\0echo hi\0", |h| {
            h.flags = EVENT_ARGV_TRUNCATED
        });
        match decode(&r).unwrap().data {
            EventData::ExecArgs {
                argv,
                argv_truncated,
                path,
                ..
            } => {
                assert_eq!(argv, ["sh", "-c", "echo hi"]);
                assert!(argv_truncated);
                assert_eq!(path.bytes, b"/bin/sh");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_paths_are_marked() {
        let r = record(EventKind::Stat, b"/x", b"", |h| h.flags = EVENT_TRUNCATED);
        match decode(&r).unwrap().data {
            EventData::Stat { path, .. } => {
                assert!(path.truncated);
                assert!(!path.is_usable());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut r = record(EventKind::Open, b"/a", b"", |_| {});
        r.truncate(HDR + 1);
        assert!(decode(&r).is_err());
        assert!(decode(&[0u8; 10]).is_err());
        let r = record(EventKind::Open, b"/a", b"", |h| h.kind = 999);
        assert!(decode(&r).is_err());
    }

    #[test]
    fn sockaddrs() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            SockAddr::parse(&v4),
            SockAddr::Inet {
                ip: "127.0.0.1".parse().unwrap(),
                port: 8080
            }
        );
        let mut un = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        un.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(
            SockAddr::parse(&un),
            SockAddr::Unix {
                path: "/run/x.sock".into(),
                r#abstract: false
            }
        );
        let mut abs = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        abs.extend_from_slice(b"\0hidden");
        assert_eq!(
            SockAddr::parse(&abs),
            SockAddr::Unix {
                path: "hidden".into(),
                r#abstract: true
            }
        );
        let mut v6 = vec![0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&443u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(
            SockAddr::parse(&v6),
            SockAddr::Inet6 {
                ip: "::1".parse().unwrap(),
                port: 443
            }
        );
    }

    #[test]
    fn names_are_bytes() {
        let r = record(
            EventKind::ExecArgs,
            b"/opt/caf\xe9",
            b"caf\xe9\0-x\0",
            |_| {},
        );
        let e = decode(&r).unwrap();
        match &e.data {
            EventData::ExecArgs { path, argv, .. } => {
                assert_eq!(path.decoded(), crate::image::name::decode(b"/opt/caf\xe9"));
                assert_eq!(argv[0], crate::image::name::decode(b"caf\xe9"));
            }
            other => panic!("{other:?}"),
        }
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["path"], "/opt/caf\\xe9");
    }

    #[test]
    fn json_shape() {
        let r = record(EventKind::Open, b"/etc/hosts", b"", |_| {});
        let j = serde_json::to_value(decode(&r).unwrap()).unwrap();
        assert_eq!(j["type"], "open");
        assert_eq!(j["path"], "/etc/hosts");
        assert_eq!(j["tgid"], 10);
    }
}
