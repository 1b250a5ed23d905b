//! The network of a container slimd runs on containerd, which has no
//! network of its own without CNI: a network namespace slimd makes (only
//! loopback, up; nothing reaches out of it), and the container's ports
//! published on the host's 127.0.0.1 by forwarding.
//!
//! The namespace is held by a thread of the daemon that entered it with
//! `unshare(2)` and stays there: runc joins it by that thread's
//! `/proc/PID/task/TID/ns/net`, and the thread makes every connection into
//! it (a socket keeps the namespace it was created in, so it is then used
//! from anywhere). Each published port is a listener on 127.0.0.1 whose
//! connections are joined to one made inside the namespace, as
//! `docker-proxy` does. Dropping the [`Sandbox`] stops the listeners and
//! ends the thread: nothing is left on the host (the namespace itself goes
//! when the container's last process does).

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a forwarded connection waits for the app to accept it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to make inside the namespace.
struct Dial {
    addr: SocketAddr,
    reply: tokio::sync::oneshot::Sender<io::Result<TcpStream>>,
}

/// A network namespace with loopback up, and the ports forwarded into it.
#[derive(Debug)]
pub struct Sandbox {
    path: PathBuf,
    dial: mpsc::Sender<Dial>,
    ports: BTreeMap<String, u16>,
    stop: CancellationToken,
}

impl Sandbox {
    /// Makes the namespace (on a thread of its own that stays in it).
    pub fn create() -> io::Result<Sandbox> {
        let (dial, requests) = mpsc::channel::<Dial>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<PathBuf>>();
        std::thread::Builder::new()
            .name("slimd-netns".into())
            .spawn(move || {
                match enter_new_netns() {
                    Ok(path) => {
                        let _ = ready_tx.send(Ok(path));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                // Until the Sandbox (every sender) is dropped.
                while let Ok(d) = requests.recv() {
                    let r = TcpStream::connect_timeout(&d.addr, CONNECT_TIMEOUT);
                    let _ = d.reply.send(r);
                }
            })?;
        let path = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the namespace thread ended at once"))??;
        Ok(Sandbox {
            path,
            dial,
            ports: BTreeMap::new(),
            stop: CancellationToken::new(),
        })
    }

    /// The file naming the namespace (for runc and for probes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Container port (`8080/tcp`) -> host port on 127.0.0.1.
    pub fn ports(&self) -> &BTreeMap<String, u16> {
        &self.ports
    }

    /// A connection to `port` on the namespace's loopback.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        connect_via(&self.dial, port).await
    }

    /// Publishes each TCP port of `ports` (`8080/tcp`) on a free port of
    /// the host's 127.0.0.1; other protocols are refused.
    pub async fn publish(&mut self, ports: &[String]) -> io::Result<()> {
        for p in ports {
            let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let port: u16 = num
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("port {p:?}")))?;
            if proto != "tcp" {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{p}: containerd builds forward TCP ports only"),
                ));
            }
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let host_port = listener.local_addr()?.port();
            self.ports.insert(format!("{port}/tcp"), host_port);
            let dial = self.dial.clone();
            let stop = self.stop.clone();
            tokio::spawn(async move {
                loop {
                    let outer = tokio::select! {
                        _ = stop.cancelled() => return,
                        a = listener.accept() => match a {
                            Ok((s, _)) => s,
                            Err(e) => {
                                tracing::debug!("forward of port {port}: accept: {e}");
                                continue;
                            }
                        },
                    };
                    let dial = dial.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let mut outer = outer;
                        let mut inner = match connect_via(&dial, port).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!("forward to port {port} in the container: {e}");
                                return;
                            }
                        };
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut outer, &mut inner) => {}
                        }
                    });
                }
            });
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn connect_via(dial: &mpsc::Sender<Dial>, port: u16) -> io::Result<tokio::net::TcpStream> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    dial.send(Dial {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        reply,
    })
    .map_err(|_| io::Error::other("the container's network namespace is gone"))?;
    let s = rx
        .await
        .map_err(|_| io::Error::other("the container's network namespace is gone"))??;
    s.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(s)
}

/// Moves the calling thread into a new network namespace and brings its
/// loopback up; the namespace's path.
fn enter_new_netns() -> io::Result<PathBuf> {
    // SAFETY: unshare(2) with a flag; it affects this thread only (a thread
    // of its own that never runs anything else).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("unshare(CLONE_NEWNET): {e}"),
        ));
    }
    loopback_up()?;
    // SAFETY: plain syscalls without arguments.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    Ok(PathBuf::from(format!("/proc/{pid}/task/{tid}/ns/net")))
}

/// `ip link set lo up` through the SIOCSIFFLAGS ioctl.
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2); the fd is owned (and closed) by `sock`.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Needs root (CAP_SYS_ADMIN for unshare), as the daemon does.
    #[tokio::test]
    async fn ports_forward_into_a_namespace_of_its_own() {
        let mut sb = Sandbox::create().expect("a network namespace (run as root)");
        let ns = std::fs::File::open(sb.path()).unwrap();
        // A server inside the namespace: a thread that joins it and listens.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            use std::os::fd::AsRawFd;
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase())).unwrap();
        });
        let port = rx.recv().unwrap();
        sb.publish(&[format!("{port}/tcp")]).await.unwrap();
        let host_port = sb.ports()[&format!("{port}/tcp")];
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", host_port))
            .await
            .unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"PING");
        assert!(sb.publish(&["53/udp".into()]).await.is_err());
        let path = sb.path().to_path_buf();
        drop(sb);
        // The holding thread ends once its channel closes.
        let mut gone = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !path.exists() {
                gone = true;
                break;
            }
        }
        assert!(gone, "{} still there", path.display());
    }
}
