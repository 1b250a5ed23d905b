//! A TCP connect from inside a container's network namespace.
//!
//! The namespace is named by a file: the engine's bind mount of it (opening
//! that needs only file permissions) or `/proc/PID/ns/net` (which needs
//! ptrace rights over the process: CAP_SYS_PTRACE for another user's).
//! `setns(2)` changes the network namespace of the calling thread only, so
//! the connect runs on a short-lived thread of its own (never on a pooled
//! runtime thread, which would stay in the container's namespace).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// Connects to `addr` from inside the network namespace that the file
/// `ns_path` names, and closes the connection at once. `Ok` means a socket
/// in that namespace accepted: something listens there.
pub async fn connect_in_netns(
    ns_path: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<()> {
    let ns = File::open(ns_path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", ns_path.display())))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("slimd-netns".into())
        .spawn(move || {
            let r = enter_and_connect(&ns, addr, timeout);
            let _ = tx.send(r);
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(io::Error::other(
            "the namespace thread ended without a result",
        ))
    })
}

fn enter_and_connect(ns: &File, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    // SAFETY: setns(2) with a valid namespace fd; it affects this thread only,
    // which ends right after the connect.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns(net): {e}")));
    }
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    drop(stream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_in_our_own_namespace_and_reports_refusal() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let me = Path::new("/proc/self/ns/net");
        connect_in_netns(me, addr, Duration::from_secs(5))
            .await
            .unwrap();
        let closed = crate::testing::ClosedPort::new();
        let err = connect_in_netns(me, closed.addr, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        let missing = Path::new("/proc/4294967295/ns/net");
        let err = connect_in_netns(missing, addr, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/proc/4294967295"), "{err}");
    }
}
