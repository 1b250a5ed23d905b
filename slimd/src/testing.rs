//! Helpers that unit tests share (compiled for tests only).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A loopback port that nothing listens on and that no other test can take
/// while the guard lives: a TCP socket bound to it but not listening, so a
/// connect to it is refused. (Dropping a listener and connecting to its old
/// port races with the tests running beside it: one of them may bind the
/// same port in between.)
pub struct ClosedPort {
    _socket: OwnedFd,
    pub addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> Self {
        // SAFETY: plain socket calls on a descriptor this function owns; the
        // address structures are fully initialised and of the sizes passed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(socket.as_raw_fd(), (&raw const sa).cast(), len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got_len = len;
            let rc = libc::getsockname(socket.as_raw_fd(), (&raw mut sa).cast(), &mut got_len);
            assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
            let port = u16::from_be(sa.sin_port);
            ClosedPort {
                _socket: socket,
                addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            }
        }
    }
}
