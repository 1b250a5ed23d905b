//! Which TCP ports the app listens on, as its events say, while it runs:
//! `listen(fd)` names only a socket, so the address comes from the `bind`
//! on the same fd of the same process (inherited across fork).
//!
//! The session feeds every event here as it arrives; readiness waits on the
//! result, and verify compares the ports of the original and the slim run.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::tracer::{EventData, SockAddr, TraceEvent};

/// One listening socket of the app.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    /// The bound address (`0.0.0.0`, `::`, `127.0.0.1`, ...).
    pub ip: IpAddr,
    pub port: u16,
    pub pid: u32,
    pub comm: String,
}

impl Listener {
    /// The address a connect from inside the container's network namespace
    /// should use: the bound one, or loopback for a wildcard bind.
    pub fn connect_addr(&self) -> SocketAddr {
        let ip = match self.ip {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        SocketAddr::new(ip, self.port)
    }

    /// Bound to loopback only: unreachable through a published port.
    pub fn loopback_only(&self) -> bool {
        self.ip.is_loopback()
    }
}

/// Most remembered bound sockets (a runaway app cannot grow this forever).
const MAX_BOUND: usize = 1 << 14;

/// Folds events into the set of listening TCP sockets.
#[derive(Debug, Default)]
pub struct ListenTracker {
    /// (tgid, fd) -> bound inet address.
    bound: HashMap<(u32, i32), SocketAddr>,
    /// Every listener seen since the start, in order of appearance.
    ever: Vec<Listener>,
}

impl ListenTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event; returns the listener it started, if any.
    pub fn feed(&mut self, e: &TraceEvent) -> Option<Listener> {
        match &e.data {
            EventData::Bind { fd, addr } if e.ret == 0 => {
                let sa = match addr {
                    SockAddr::Inet { ip, port } | SockAddr::Inet6 { ip, port } => {
                        SocketAddr::new(*ip, *port)
                    }
                    _ => return None,
                };
                if self.bound.len() < MAX_BOUND {
                    self.bound.insert((e.tgid, *fd), sa);
                }
                None
            }
            EventData::Listen { fd, .. } if e.ret == 0 => {
                let sa = *self.bound.get(&(e.tgid, *fd))?;
                // Port 0: the kernel chose one; we cannot name it.
                if sa.port() == 0 {
                    return None;
                }
                let l = Listener {
                    ip: sa.ip(),
                    port: sa.port(),
                    pid: e.tgid,
                    comm: e.comm.clone(),
                };
                if !self.ever.iter().any(|x| x.ip == l.ip && x.port == l.port) {
                    self.ever.push(l.clone());
                }
                Some(l)
            }
            EventData::Fork { child_pid } => {
                let inherited: Vec<(i32, SocketAddr)> = self
                    .bound
                    .iter()
                    .filter(|((tgid, _), _)| *tgid == e.tgid)
                    .map(|((_, fd), sa)| (*fd, *sa))
                    .collect();
                for (fd, sa) in inherited {
                    if self.bound.len() >= MAX_BOUND {
                        break;
                    }
                    self.bound.insert((*child_pid, fd), sa);
                }
                None
            }
            EventData::Exit { group_dead: true } => {
                self.bound.retain(|(tgid, _), _| *tgid != e.tgid);
                None
            }
            _ => None,
        }
    }

    /// Every listener seen so far.
    pub fn listeners(&self) -> &[Listener] {
        &self.ever
    }

    /// The ports listened on so far.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.ever.iter().map(|l| l.port).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tgid: u32, ret: i64, data: EventData) -> TraceEvent {
        TraceEvent {
            ts_ns: 0,
            session: 1,
            pid: tgid,
            tgid,
            ppid: 0,
            comm: "srv".into(),
            syscall: None,
            ret,
            data,
        }
    }

    fn bind(tgid: u32, fd: i32, ip: &str, port: u16) -> TraceEvent {
        ev(
            tgid,
            0,
            EventData::Bind {
                fd,
                addr: SockAddr::Inet {
                    ip: ip.parse().unwrap(),
                    port,
                },
            },
        )
    }

    fn listen(tgid: u32, fd: i32) -> TraceEvent {
        ev(tgid, 0, EventData::Listen { fd, backlog: 128 })
    }

    #[test]
    fn listen_takes_the_address_bound_on_the_same_fd() {
        let mut t = ListenTracker::new();
        assert_eq!(t.feed(&bind(10, 3, "0.0.0.0", 6379)), None);
        let l = t.feed(&listen(10, 3)).unwrap();
        assert_eq!(l.port, 6379);
        assert_eq!(l.connect_addr(), "127.0.0.1:6379".parse().unwrap());
        assert!(!l.loopback_only());
        // Another process's fd 3 is another socket.
        assert_eq!(t.feed(&listen(11, 3)), None);
        assert_eq!(t.ports(), BTreeSet::from([6379]));
    }

    #[test]
    fn children_inherit_bound_sockets_and_exits_forget_them() {
        let mut t = ListenTracker::new();
        t.feed(&bind(10, 4, "127.0.0.1", 5432));
        t.feed(&ev(10, 0, EventData::Fork { child_pid: 20 }));
        t.feed(&ev(10, 0, EventData::Exit { group_dead: true }));
        assert_eq!(t.feed(&listen(10, 4)), None, "the parent is gone");
        let l = t.feed(&listen(20, 4)).unwrap();
        assert!(l.loopback_only());
        assert_eq!(l.pid, 20);
    }

    #[test]
    fn failed_calls_and_port_zero_are_not_listeners() {
        let mut t = ListenTracker::new();
        t.feed(&ev(
            10,
            -98,
            EventData::Bind {
                fd: 3,
                addr: SockAddr::Inet {
                    ip: "0.0.0.0".parse().unwrap(),
                    port: 80,
                },
            },
        ));
        assert_eq!(t.feed(&listen(10, 3)), None);
        t.feed(&bind(10, 5, "::", 0));
        assert_eq!(t.feed(&listen(10, 5)), None);
        t.feed(&bind(10, 6, "::", 8080));
        assert_eq!(
            t.feed(&ev(10, -22, EventData::Listen { fd: 6, backlog: 1 })),
            None
        );
        let l = t.feed(&listen(10, 6)).unwrap();
        assert_eq!(l.connect_addr(), "127.0.0.1:8080".parse().unwrap());
        assert!(t.listeners().len() == 1);
    }
}
