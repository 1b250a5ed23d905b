//! The daemon's HTTP API on a Unix socket (axum on a tokio `UnixListener`).
//!
//! Access is the socket file's: mode 0660, group `slimd` when that group
//! exists. Each connection's peer credentials (SO_PEERCRED) are checked as
//! well — root, the daemon's own user, or a member of the `slimd` group — and
//! logged. A session's progress is streamed as newline-delimited JSON; if
//! the client goes away, the session is cancelled unless it asked to detach
//! (blank keep-alive lines let a broken connection show up between phases).

use std::{
    convert::Infallible,
    ffi::CString,
    os::{
        fd::FromRawFd,
        unix::fs::{PermissionsExt, chown},
    },
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Path as UrlPath, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::IncomingStream,
};
use futures_util::stream;
use tokio::{net::UnixListener, sync::broadcast};

use super::types::{ApiError, FailureKind, Progress, SessionRequest, XrayRequest};
use crate::session::{Daemon, SessionHandle, valid_id};

/// Credentials of the process at the other end of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer {
                pid: c.pid(),
                uid: c.uid(),
                gid: c.gid(),
            },
            // Unknown peer: uid u32::MAX is never allowed.
            Err(_) => Peer {
                pid: None,
                uid: u32::MAX,
                gid: u32::MAX,
            },
        }
    }
}

/// Who may use the API.
#[derive(Clone, Debug)]
struct Access {
    daemon_uid: u32,
    group: Option<u32>,
}

impl Access {
    fn allows(&self, p: &Peer) -> bool {
        if p.uid == 0 || p.uid == self.daemon_uid {
            return true;
        }
        let Some(g) = self.group else { return false };
        if p.gid == g {
            return true;
        }
        // Supplementary groups of the peer process.
        p.pid
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .map(|groups| groups.split_whitespace().any(|x| x.parse::<u32>() == Ok(g)))
            })
            .unwrap_or(false)
    }
}

#[derive(Clone)]
struct AppState {
    daemon: Arc<Daemon>,
    access: Access,
}

/// The group id of `slimd`, if the group exists.
pub fn slimd_group() -> Option<u32> {
    let name = CString::new("slimd").ok()?;
    // SAFETY: getgrnam returns a pointer to static storage or null; we copy
    // the gid out at once.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    if gr.is_null() {
        None
    } else {
        // SAFETY: non-null pointer from getgrnam.
        Some(unsafe { (*gr).gr_gid })
    }
}

/// A listening socket: handed over by systemd (socket activation), or bound
/// at `path` with mode 0660 and group `slimd`.
pub async fn listen(path: &Path) -> anyhow::Result<(UnixListener, Option<PathBuf>)> {
    if let Some(l) = systemd_listener()? {
        tracing::info!("using the socket passed by systemd");
        return Ok((l, None));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A socket file from a daemon that died; refuse if one still answers.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "another slimd is already serving {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(g) = slimd_group() {
        chown(path, None, Some(g))?;
    }
    Ok((l, Some(path.to_path_buf())))
}

/// `LISTEN_FDS`/`LISTEN_PID` from systemd: the socket is fd 3.
fn systemd_listener() -> anyhow::Result<Option<UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if !pid_ok || fds == 0 {
        return Ok(None);
    }
    // SAFETY: systemd passes the listening socket as fd 3 to this pid and no
    // one else owns it; we take ownership exactly once.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    std_listener.set_nonblocking(true)?;
    // SAFETY: clearing the variables before other threads read the environment.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
    }
    Ok(Some(UnixListener::from_std(std_listener)?))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState {
        daemon,
        // SAFETY: geteuid has no preconditions.
        access: Access {
            daemon_uid: unsafe { libc::geteuid() },
            group: slimd_group(),
        },
    };
    let app = router(state.clone()).layer(middleware::from_fn_with_state(state, check_peer));
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/sessions", post(start_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(report).delete(cancel))
        .route("/v1/sessions/{id}/progress", get(follow))
        .route("/v1/sessions/{id}/continue", post(continue_session))
        .route("/v1/xray", post(xray))
        .with_state(state)
}

async fn check_peer(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    if !state.access.allows(&peer) {
        tracing::warn!(uid = peer.uid, pid = ?peer.pid, "refused API request from a peer outside the slimd group");
        return error(
            StatusCode::FORBIDDEN,
            FailureKind::Usage,
            "not allowed: use slimd as root or as a member of the slimd group".into(),
        );
    }
    tracing::debug!(uid = peer.uid, pid = ?peer.pid, method = %req.method(), path = %req.uri().path(), "API request");
    next.run(req).await
}

fn error(status: StatusCode, kind: FailureKind, message: String) -> Response {
    (status, Json(ApiError { kind, message })).into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    Json(s.daemon.status().await).into_response()
}

async fn list_sessions(State(s): State<AppState>) -> Response {
    Json(s.daemon.list()).into_response()
}

async fn report(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(r) = s.daemon.report(&id) {
        return Json(r).into_response();
    }
    if s.daemon.session(&id).is_some() {
        return error(
            StatusCode::CONFLICT,
            FailureKind::Usage,
            format!("session {id} is still running: its report comes when it ends"),
        );
    }
    error(
        StatusCode::NOT_FOUND,
        FailureKind::Usage,
        format!("no session {id} (see `slim sessions`)"),
    )
}

async fn cancel(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if s.daemon.cancel(&id) {
        StatusCode::ACCEPTED.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no running session {id}"),
        )
    }
}

async fn continue_session(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.daemon.session(&id) {
        Some(h) => {
            h.signal_continue();
            StatusCode::ACCEPTED.into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no running session {id}"),
        ),
    }
}

async fn start_session(State(s): State<AppState>, Json(req): Json<SessionRequest>) -> Response {
    let started = if req.compose.is_some() {
        crate::stack::start(&s.daemon, req)
    } else {
        s.daemon.start_session(req)
    };
    match started {
        Ok(h) => progress_response(h, true),
        Err(e) => (StatusCode::BAD_REQUEST, Json(e)).into_response(),
    }
}

/// Attaches to a running session's progress (e.g. after a detach). Leaving
/// never cancels it.
async fn follow(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    if !valid_id(&id) {
        return error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no session {id}"),
        );
    }
    match s.daemon.session(&id) {
        Some(h) => progress_response(h, false),
        None => error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no running session {id}"),
        ),
    }
}

/// Cancels a session when its client's stream is dropped early.
struct CancelOnDrop {
    handle: Arc<SessionHandle>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && !self.handle.detach && !self.handle.is_finished() {
            tracing::info!(session = %self.handle.id, "client went away: cancelling the session");
            self.handle.cancel.cancel();
        }
    }
}

struct StreamState {
    past: std::vec::IntoIter<Progress>,
    rx: broadcast::Receiver<Progress>,
    guard: CancelOnDrop,
    ended: bool,
}

fn is_last(p: &Progress) -> bool {
    matches!(p, Progress::Done { .. } | Progress::Failed { .. })
}

fn line(p: &Progress) -> Bytes {
    let mut v = serde_json::to_vec(p).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn progress_response(handle: Arc<SessionHandle>, cancel_on_drop: bool) -> Response {
    let (past, rx) = handle.subscribe();
    let st = StreamState {
        past: past.into_iter(),
        rx,
        guard: CancelOnDrop {
            handle,
            armed: cancel_on_drop,
        },
        ended: false,
    };
    let body = stream::unfold(st, |mut st| async move {
        if st.ended {
            return None;
        }
        if let Some(p) = st.past.next() {
            if is_last(&p) {
                st.ended = true;
                st.guard.armed = false;
            }
            return Some((Ok::<_, Infallible>(line(&p)), st));
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(2), st.rx.recv()).await {
                // Keep-alive: lets a vanished client be noticed.
                Err(_) => return Some((Ok(Bytes::from_static(b"\n")), st)),
                Ok(Ok(p)) => {
                    if is_last(&p) {
                        st.ended = true;
                        st.guard.armed = false;
                    }
                    return Some((Ok(line(&p)), st));
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                // The session ended without a last line (it always sends one).
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn xray(State(s): State<AppState>, Json(req): Json<XrayRequest>) -> Response {
    match crate::session::xray(&s.daemon, &req.image).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let status = match e.kind {
                FailureKind::ImageNotFound => StatusCode::NOT_FOUND,
                FailureKind::Usage => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(e)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        let a = Access {
            daemon_uid: 0,
            group: Some(4242),
        };
        let peer = |uid, gid| Peer {
            pid: None,
            uid,
            gid,
        };
        assert!(a.allows(&peer(0, 0)));
        assert!(a.allows(&peer(1000, 4242)));
        assert!(!a.allows(&peer(1000, 1000)));
        assert!(!a.allows(&peer(u32::MAX, u32::MAX)));
        let no_group = Access {
            daemon_uid: 0,
            group: None,
        };
        assert!(!no_group.allows(&peer(1000, 4242)));
    }
}
