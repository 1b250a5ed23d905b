//! Readiness: the app is ready on a port when one of its processes called
//! `listen()` on it (the tracer sees the call, so the session knows the
//! moment it happens) and a TCP connect to that port made inside the
//! container's network namespace succeeds. Nothing is sent: a server whose
//! protocol is client-first (a key-value store, a database) is as ready as a
//! web server. A connect through the published port proves nothing, since
//! the engine's port proxy accepts connections on its own.
//!
//! Whether a ready port speaks HTTP is a separate question
//! ([`speaks_http`]), asked only when the HTTP probe is on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::error::{ProbeError, Result};
use super::http::{PROBE_USER_AGENT, host_header};
use super::spec::Endpoint;
use crate::engine::Engine;

/// The addresses the app's processes listen on, as the session's event
/// stream reports them (updated as events arrive).
pub type ListenFeed = watch::Receiver<Vec<SocketAddr>>;

/// A port found ready: where the app listens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortReady {
    pub port: u16,
    /// The bound address (`0.0.0.0:6379`, `127.0.0.1:5432`, ...).
    pub bound: SocketAddr,
    pub elapsed: Duration,
}

/// Waits until the app listens on every port of `ports` and a connect inside
/// the container's network namespace succeeds on each; fails early when the
/// container exits, and at `deadline` with what the app did listen on.
pub async fn wait_listening(
    engine: &Engine,
    container_id: &str,
    ports: &[u16],
    feed: &mut ListenFeed,
    deadline: Instant,
) -> Result<Vec<PortReady>> {
    let started = Instant::now();
    let mut ready: BTreeMap<u16, PortReady> = BTreeMap::new();
    let mut last_error: BTreeMap<u16, String> = BTreeMap::new();
    let mut netns: Option<std::path::PathBuf> = None;
    let exited = engine.wait_exit(container_id, deadline);
    tokio::pin!(exited);
    let mut feed_open = true;
    loop {
        let current: Vec<SocketAddr> = feed.borrow_and_update().clone();
        let mut retry_soon = false;
        for &port in ports {
            if ready.contains_key(&port) {
                continue;
            }
            let Some(bound) = current.iter().find(|a| a.port() == port).copied() else {
                continue;
            };
            let ns = match &netns {
                Some(p) => p.clone(),
                None => {
                    let info = engine.inspect_container(container_id).await?;
                    // The engine's handle on the namespace; the init
                    // process's own (which needs ptrace rights) otherwise.
                    let path = match (info.netns, info.state.pid.filter(|p| *p > 0)) {
                        (Some(ns), _) => std::path::PathBuf::from(ns),
                        (None, Some(pid)) => format!("/proc/{pid}/ns/net").into(),
                        (None, None) => {
                            retry_soon = true;
                            continue;
                        }
                    };
                    netns.insert(path).clone()
                }
            };
            let target = connect_target(bound);
            match crate::host::connect_in_netns(&ns, target, Duration::from_secs(2)).await {
                Ok(()) => {
                    ready.insert(
                        port,
                        PortReady {
                            port,
                            bound,
                            elapsed: started.elapsed(),
                        },
                    );
                }
                Err(e) => {
                    last_error.insert(port, format!("connect to {target} in the container: {e}"));
                    retry_soon = true;
                }
            }
        }
        if ready.len() == ports.len() {
            return Ok(ports.iter().map(|p| ready[p].clone()).collect());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(not_listening(ports, &ready, &current, &last_error, started));
        }
        let pause = if retry_soon || !feed_open {
            Duration::from_millis(200)
        } else {
            deadline - now
        };
        tokio::select! {
            changed = feed.changed(), if feed_open => {
                if changed.is_err() {
                    // The event stream ended (the tracer session finished):
                    // nothing new will be reported; wait out the deadline.
                    feed_open = false;
                }
            }
            code = &mut exited => {
                return Err(match code? {
                    Some(code) => exited_error(engine, container_id, code).await,
                    None => not_listening(ports, &ready, &feed.borrow(), &last_error, started),
                });
            }
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Where to connect for a bound address: loopback for a wildcard bind.
fn connect_target(bound: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), bound.port())
    } else {
        bound
    }
}

async fn exited_error(engine: &Engine, container_id: &str, code: i64) -> ProbeError {
    const TAIL: usize = 2000;
    let stderr_tail = match engine.logs(container_id, 1 << 20).await {
        Ok(logs) => {
            let err = &logs.stderr[logs.stderr.len().saturating_sub(TAIL)..];
            String::from_utf8_lossy(err).into_owned()
        }
        Err(e) => format!("(its logs could not be read: {e})"),
    };
    ProbeError::ContainerExited { code, stderr_tail }
}

fn not_listening(
    ports: &[u16],
    ready: &BTreeMap<u16, PortReady>,
    current: &[SocketAddr],
    last_error: &BTreeMap<u16, String>,
    started: Instant,
) -> ProbeError {
    let missing: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| !ready.contains_key(p))
        .collect();
    let mut others: Vec<u16> = current
        .iter()
        .map(SocketAddr::port)
        .filter(|p| !ports.contains(p))
        .collect();
    others.sort_unstable();
    others.dedup();
    let detail = missing
        .iter()
        .filter_map(|p| last_error.get(p))
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    ProbeError::NotListening {
        missing,
        elsewhere: others,
        secs: started.elapsed().as_secs_f64(),
        detail,
    }
}

/// What a ready port answered to an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpCheck {
    /// An HTTP status line came back.
    Http { status: u16 },
    /// No HTTP reply in plain text, but a TLS handshake completes: the crawl
    /// speaks HTTPS there (see [`super::tls`]).
    Tls,
    /// The port does not speak HTTP: a banner (SSH, SMTP, MySQL), a reply
    /// that is not HTTP (Redis's `-ERR`), or the server closed on us.
    NotHttp { why: String },
}

/// Asks a ready port whether it speaks HTTP: waits briefly for a banner
/// (servers that speak first), then sends `GET /` and reads the first bytes;
/// without an HTTP reply, tries a TLS handshake. One attempt each within
/// `timeout`; the answer is a fact about the protocol.
pub async fn speaks_http(ep: &Endpoint, timeout: Duration) -> HttpCheck {
    let plain = match tokio::time::timeout(timeout, http_attempt(ep)).await {
        Ok(r) => r,
        Err(_) => HttpCheck::NotHttp {
            why: format!("no reply to GET / within {:.1}s", timeout.as_secs_f64()),
        },
    };
    match plain {
        HttpCheck::NotHttp { why } => match super::tls::handshake(ep, timeout).await {
            Ok(()) => HttpCheck::Tls,
            Err(tls) => HttpCheck::NotHttp {
                why: format!("{why}; no TLS either ({tls})"),
            },
        },
        other => other,
    }
}

async fn http_attempt(ep: &Endpoint) -> HttpCheck {
    let not = |why: String| HttpCheck::NotHttp { why };
    let mut s = match TcpStream::connect((ep.host.as_str(), ep.host_port)).await {
        Ok(s) => s,
        Err(e) => return not(format!("connect: {e}")),
    };
    let mut buf = [0u8; 512];
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
        return match r {
            Ok(0) => not("the connection closed before anything was sent".into()),
            Ok(n) => classify(&buf[..n]),
            Err(e) => not(format!("read: {e}")),
        };
    }
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: {PROBE_USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        host_header(ep)
    );
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return not(format!("write: {e}"));
    }
    match s.read(&mut buf).await {
        Ok(0) => not("the connection closed without a reply to GET /".into()),
        Ok(n) => classify(&buf[..n]),
        Err(e) => not(format!("read: {e}")),
    }
}

fn classify(first: &[u8]) -> HttpCheck {
    if first.starts_with(b"HTTP/") {
        let status = std::str::from_utf8(first)
            .ok()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok());
        if let Some(status) = status {
            return HttpCheck::Http { status };
        }
    }
    let shown = String::from_utf8_lossy(&first[..first.len().min(60)]);
    HttpCheck::NotHttp {
        why: format!("it answered {:?}, not HTTP", shown.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, Endpoint) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, Endpoint::new("127.0.0.1", port, 8080))
    }

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(
            classify(b"HTTP/1.0 404 Not Found\r\n"),
            HttpCheck::Http { status: 404 }
        );
        assert!(matches!(
            classify(b"SSH-2.0-OpenSSH"),
            HttpCheck::NotHttp { .. }
        ));
        assert!(matches!(
            classify(b"HTTP/garbage"),
            HttpCheck::NotHttp { .. }
        ));
        assert_eq!(
            connect_target("0.0.0.0:6379".parse().unwrap()),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(
            connect_target("[::]:6379".parse().unwrap()),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(
            connect_target("10.0.0.2:80".parse().unwrap()),
            "10.0.0.2:80".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn a_server_that_closes_on_http_does_not_speak_it() {
        // What a database does with `GET /`.
        let (l, ep) = listener().await;
        tokio::spawn(async move {
            // Reads what comes (a request, or a TLS hello) and closes.
            while let Ok((mut s, _)) = l.accept().await {
                let mut req = Vec::new();
                let mut buf = [0u8; 256];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                    if req.first() == Some(&0x16) {
                        break;
                    }
                }
            }
        });
        let r = speaks_http(&ep, Duration::from_secs(5)).await;
        assert!(
            matches!(&r, HttpCheck::NotHttp { why } if why.contains("closed without a reply")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn banners_and_http_replies_are_told_apart() {
        let (l, ep) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"+OK hello\r\n").await;
            }
        });
        let r = speaks_http(&ep, Duration::from_secs(5)).await;
        assert!(
            matches!(&r, HttpCheck::NotHttp { why } if why.contains("+OK")),
            "{r:?}"
        );

        let (l, ep) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        assert_eq!(
            speaks_http(&ep, Duration::from_secs(5)).await,
            HttpCheck::Http { status: 200 }
        );
    }
}
