//! The daemon's HTTP API on a Unix socket (axum on a tokio `UnixListener`,
//! one hyper connection task per client, so a slow client holds only its
//! own connection).
//!
//! Access is the socket file's: mode 0660, group `slimd` when that group
//! exists. Each connection's peer credentials (SO_PEERCRED, and the
//! supplementary groups from SO_PEERGROUPS) are checked as well — root, the
//! daemon's own user, or a member of the `slimd` group — and logged; they
//! are the [`Caller`] every request acts as. A session belongs to its
//! caller: anyone but root lists, reads, follows, continues and cancels
//! only their own (403 otherwise).
//!
//! Requests are bounded ([`super::limits`]): the body's size (413), its
//! strings, lists and commands, malformed JSON (400 naming the field), the
//! time to send the request head ([`HEADER_TIMEOUT`]) and body
//! ([`BODY_TIMEOUT`]), and the number of connections open at once
//! ([`MAX_CONNECTIONS`]).
//!
//! A session's progress is streamed as newline-delimited JSON; if the client
//! goes away, the session is cancelled unless it asked to detach (blank
//! keep-alive lines let a broken connection show up between phases).

use std::{
    convert::Infallible,
    ffi::CString,
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::{PermissionsExt, chown},
    },
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{Path as UrlPath, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::stream;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::{Semaphore, broadcast},
};
use tower::ServiceExt;

use super::limits::{self, MAX_BODY, RequestError};
use super::types::{ApiError, Caller, ExportRequest, FailureKind, Progress, XrayRequest};
use crate::session::{Daemon, SessionHandle, valid_id};

/// Time a client has to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the socket's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Credentials of the process at the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub pid: Option<i32>,
    pub caller: Caller,
}

impl Peer {
    /// The kernel's credentials for `stream`'s peer, taken when it
    /// connected. Unknown: uid `u32::MAX`, which is never allowed.
    fn of(stream: &UnixStream) -> Peer {
        match stream.peer_cred() {
            Ok(c) => Peer {
                pid: c.pid(),
                caller: Caller {
                    uid: c.uid(),
                    gid: c.gid(),
                    groups: peer_groups(stream),
                },
            },
            Err(_) => Peer {
                pid: None,
                caller: Caller {
                    uid: u32::MAX,
                    gid: u32::MAX,
                    groups: Vec::new(),
                },
            },
        }
    }
}

/// The peer's supplementary groups as of its connect (SO_PEERGROUPS).
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `groups` and
    // stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

/// Who may use the API.
#[derive(Clone, Debug)]
struct Access {
    daemon_uid: u32,
    group: Option<u32>,
}

impl Access {
    fn allows(&self, c: &Caller) -> bool {
        if c.uid == 0 || c.uid == self.daemon_uid {
            return true;
        }
        self.group.is_some_and(|g| c.in_group(g))
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

/// Serves until `shutdown` resolves, each connection in its own task;
/// then waits for open connections to end (progress streams end with their
/// sessions, which shutdown cancels), 10 s at most.
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
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let peer = Peer::of(&stream);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            app.clone().oneshot(req.map(Body::new))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open 10 s after shutdown; closing them");
        }
    }
    Ok(())
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/sessions", post(start_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(report).delete(cancel))
        .route("/v1/sessions/{id}/progress", get(follow))
        .route("/v1/sessions/{id}/continue", post(continue_session))
        .route("/v1/sessions/{id}/host-results", post(host_results))
        .route("/v1/xray", post(xray))
        .route("/v1/images/export", post(export_image))
        .route("/v1/containerd/load", post(load_containerd))
        .with_state(state)
}

async fn check_peer(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let c = &peer.caller;
    if !state.access.allows(c) {
        tracing::warn!(uid = c.uid, pid = ?peer.pid, "refused API request from a peer outside the slimd group");
        return error(
            StatusCode::FORBIDDEN,
            FailureKind::Forbidden,
            "not allowed: use slimd as root or as a member of the slimd group".into(),
        );
    }
    tracing::debug!(uid = c.uid, pid = ?peer.pid, method = %req.method(), path = %req.uri().path(), "API request");
    next.run(req).await
}

/// Reads a JSON body within [`BODY_TIMEOUT`] and [`MAX_BODY`], parsed by
/// `parse`: 408, 413 or 400 (naming the field) otherwise.
async fn json_body<T>(
    req: Request,
    parse: impl FnOnce(&[u8]) -> Result<T, RequestError>,
) -> Result<T, Response> {
    let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                FailureKind::Usage,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return Err(if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    FailureKind::Usage,
                    format!("the request body is larger than {MAX_BODY} bytes"),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    FailureKind::Usage,
                    format!("reading the request body: {e}"),
                )
            });
        }
        Ok(Ok(b)) => b,
    };
    parse(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, FailureKind::Usage, e.to_string()))
}

/// A 403 unless `caller` may act on session `id` (its owner, or root); a
/// 404 when there is no such session; `None` when the caller may go on.
fn refusal(s: &AppState, caller: &Caller, id: &str) -> Option<Response> {
    match s.daemon.owner_of(id) {
        None => Some(error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no session {id} (see `slim sessions`)"),
        )),
        Some(owner) if !caller.may_use(Some(owner)) => {
            tracing::warn!(uid = caller.uid, session = %id, owner, "refused: another user's session");
            Some(error(
                StatusCode::FORBIDDEN,
                FailureKind::Forbidden,
                format!(
                    "session {id} belongs to another user (uid {owner}): only its owner and root may see or change it"
                ),
            ))
        }
        Some(_) => None,
    }
}

fn error(status: StatusCode, kind: FailureKind, message: String) -> Response {
    (status, Json(ApiError { kind, message })).into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    Json(s.daemon.status().await).into_response()
}

async fn list_sessions(State(s): State<AppState>, Extension(p): Extension<Peer>) -> Response {
    Json(s.daemon.list_for(&p.caller)).into_response()
}

async fn report(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(r) = refusal(&s, &p.caller, &id) {
        return r;
    }
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
        format!("no report of session {id}"),
    )
}

async fn cancel(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(r) = refusal(&s, &p.caller, &id) {
        return r;
    }
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

async fn continue_session(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(r) = refusal(&s, &p.caller, &id) {
        return r;
    }
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

/// The results of host commands the session's client ran (see
/// [`crate::probe::host`]); only the session's owner (or root) may post
/// them.
async fn host_results(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> Response {
    if let Some(r) = refusal(&s, &p.caller, &id) {
        return r;
    }
    let results = match json_body(req, limits::parse_host_results).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(h) = s.daemon.session(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no running session {id}"),
        );
    };
    match h.deliver_host_results(results) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(why) => error(StatusCode::CONFLICT, FailureKind::Usage, why),
    }
}

async fn start_session(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    req: Request,
) -> Response {
    let req = match json_body(req, limits::parse_session_request).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // The mount check may walk a large tree: off the async workers.
    let (daemon, caller) = (s.daemon.clone(), p.caller.clone());
    let started = tokio::task::spawn_blocking(move || {
        if req.compose.is_some() {
            crate::stack::start(&daemon, req, &caller)
        } else {
            daemon.start_session(req, &caller)
        }
    })
    .await
    .unwrap_or_else(|e| {
        Err(ApiError {
            kind: FailureKind::Internal,
            message: format!("starting the session: {e}"),
        })
    });
    match started {
        Ok(h) => progress_response(h, true),
        Err(e) if e.kind == FailureKind::Forbidden => {
            tracing::warn!(uid = p.caller.uid, "refused session: {}", e.message);
            (StatusCode::FORBIDDEN, Json(e)).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(e)).into_response(),
    }
}

/// Follows a session's progress (e.g. after a detach) to its end; a
/// session that has ended gives its last line at once. Leaving never
/// cancels it.
async fn follow(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !valid_id(&id) {
        return error(
            StatusCode::NOT_FOUND,
            FailureKind::Usage,
            format!("no session {id}"),
        );
    }
    if let Some(r) = refusal(&s, &p.caller, &id) {
        return r;
    }
    match s.daemon.session(&id) {
        Some(h) => progress_response(h, false),
        None => match s.daemon.ended(&id) {
            Some(last) => {
                let lines = [Progress::Session { id }, last]
                    .iter()
                    .map(line)
                    .map(Ok::<_, Infallible>)
                    .collect::<Vec<_>>();
                Response::builder()
                    .header("content-type", "application/x-ndjson")
                    .body(Body::from_stream(stream::iter(lines)))
                    .unwrap()
            }
            None => error(
                StatusCode::NOT_FOUND,
                FailureKind::Usage,
                format!("session {id} is not running and left no report"),
            ),
        },
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

async fn xray(State(s): State<AppState>, Extension(p): Extension<Peer>, req: Request) -> Response {
    let req: XrayRequest = match json_body(req, limits::parse).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let result = match &req.containerd {
        Some(c) => crate::session::xray_containerd(&s.daemon, &p.caller, c, &req.image).await,
        None => crate::session::xray(&s.daemon, &req.image).await,
    };
    match result {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let status = match e.kind {
                FailureKind::ImageNotFound => StatusCode::NOT_FOUND,
                FailureKind::Usage => StatusCode::BAD_REQUEST,
                FailureKind::Forbidden => StatusCode::FORBIDDEN,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(e)).into_response()
        }
    }
}

async fn export_image(State(s): State<AppState>, Json(req): Json<ExportRequest>) -> Response {
    match crate::session::export_stream(&s.daemon, &req.image).await {
        Ok(stream) => Response::builder()
            .header("content-type", "application/x-tar")
            .body(Body::from_stream(stream))
            .unwrap(),
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

/// `POST /v1/containerd/load`: the request (bounded like every JSON body)
/// in a header; the body (an OCI layout tar, of any size: it goes to the
/// scratch disk, never to memory) is unpacked into the daemon's scratch as
/// it arrives, then written into containerd.
async fn load_containerd(
    State(s): State<AppState>,
    Extension(p): Extension<Peer>,
    req: Request,
) -> Response {
    let load = req
        .headers()
        .get(super::types::LOAD_REQUEST_HEADER)
        .map(|v| limits::parse::<super::types::LoadRequest>(v.as_bytes()));
    let load = match load {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                FailureKind::Usage,
                format!("bad load request: {e}"),
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                FailureKind::Usage,
                format!("missing {} header", super::types::LOAD_REQUEST_HEADER),
            );
        }
    };
    let body = drained_when_dropped(req.into_body());
    match crate::session::load_containerd(&s.daemon, &p.caller, &load, body).await {
        Ok(loaded) => Json(loaded).into_response(),
        Err(e) => {
            let status = match e.kind {
                FailureKind::ImageNotFound => StatusCode::NOT_FOUND,
                FailureKind::Usage => StatusCode::BAD_REQUEST,
                FailureKind::Forbidden => StatusCode::FORBIDDEN,
                FailureKind::TagExists => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(e)).into_response()
        }
    }
}

/// How long a request body that its handler stopped reading (a refused or
/// failed upload) is still read and discarded.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The body of an upload as a stream for its handler. What the handler
/// leaves unread when it stops early (a refusal before the first byte, a
/// bad archive halfway) is read and discarded, for [`DRAIN_LIMIT`] at most:
/// a client still sending would otherwise get a broken pipe instead of the
/// answer that says why.
fn drained_when_dropped(
    body: Body,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut incoming = body.into_data_stream();
    tokio::spawn(async move {
        while let Some(chunk) = incoming.next().await {
            if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                break;
            }
        }
        let rest = async { while incoming.next().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN_LIMIT, rest).await;
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client uploading far more than the socket buffers hold, when the
    /// handler refuses before reading a byte, can finish sending and then
    /// reads the answer (without the drain the daemon closes the
    /// connection after answering and the client's write fails).
    #[tokio::test]
    async fn an_upload_refused_early_still_gets_its_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const BODY: usize = 64 << 20;
        let (server, mut client) = UnixStream::pair().unwrap();
        let service =
            hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                drop(drained_when_dropped(Body::new(req.into_body())));
                Ok::<_, Infallible>(error(
                    StatusCode::CONFLICT,
                    FailureKind::TagExists,
                    "exists".into(),
                ))
            });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        let sent = async {
            client
                .write_all(
                    format!("POST /v1/containerd/load HTTP/1.1\r\nhost: slimd\r\ncontent-length: {BODY}\r\n\r\n")
                        .as_bytes(),
                )
                .await?;
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..BODY / chunk.len() {
                client.write_all(&chunk).await?;
            }
            let mut answer = vec![0u8; 4096];
            let n = client.read(&mut answer).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer[..n]).into_owned())
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), sent)
            .await
            .expect("done within 30 s")
            .expect("the whole body sent and the answer read");
        assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    }

    #[test]
    fn access_rules() {
        let a = Access {
            daemon_uid: 0,
            group: Some(4242),
        };
        let peer = |uid, gid| Caller {
            uid,
            gid,
            groups: vec![],
        };
        assert!(a.allows(&peer(0, 0)));
        assert!(a.allows(&peer(1000, 4242)));
        assert!(!a.allows(&peer(1000, 1000)));
        assert!(!a.allows(&peer(u32::MAX, u32::MAX)));
        let supplementary = Caller {
            uid: 1000,
            gid: 1000,
            groups: vec![27, 4242],
        };
        assert!(a.allows(&supplementary));
        let no_group = Access {
            daemon_uid: 0,
            group: None,
        };
        assert!(!no_group.allows(&peer(1000, 4242)));
    }
}
