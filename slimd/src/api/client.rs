//! The client side of the socket API (used by `slim`): HTTP/1.1 over a Unix
//! stream with hyper, JSON bodies, and NDJSON progress streams.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::UnixStream;

use super::types::{
    ApiError, ContainerdTarget, ExportRequest, FailureKind, LOAD_REQUEST_HEADER, LoadRequest,
    Loaded, Progress, SessionInfo, SessionRequest, StatusInfo, XrayRequest,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach slimd at {path}: {source} (is the daemon running? `systemctl start slimd`, or run `slimd` as root; set --socket/SLIMD_SOCKET if it listens elsewhere)"
    )]
    Unreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("slimd refused: {}", .0.message)]
    Api(ApiError),
    #[error("talking to slimd failed: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The failure kind, for the CLI's exit code.
    pub fn kind(&self) -> FailureKind {
        match self {
            ClientError::Api(e) => e.kind,
            _ => FailureKind::Internal,
        }
    }
}

/// A connection factory for the daemon's socket.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

/// A streaming progress response.
pub struct ProgressStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl ProgressStream {
    /// The next progress line, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Progress>, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue; // keep-alive
                }
                return serde_json::from_slice(line)
                    .map(Some)
                    .map_err(|e| ClientError::Protocol(format!("bad progress line: {e}")));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A fresh HTTP/1 connection to the daemon's socket, its driver
    /// spawned; `B` is the request body's type.
    async fn connection<B>(&self) -> Result<hyper::client::conn::http1::SendRequest<B>, ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Unreachable {
                    path: self.socket.clone(),
                    source,
                })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let mut sender = self.connection().await?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "slimd")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends a request and decodes a JSON answer (or the API's error).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("bad answer: {e}")))
    }

    async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let resp = self.send(method, path, None).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(api_error(status, &read_body(resp).await?))
    }

    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, ClientError> {
        self.call(Method::GET, "/v1/sessions", None::<&()>).await
    }

    pub async fn report(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, &format!("/v1/sessions/{id}"), None::<&()>)
            .await
    }

    pub async fn cancel(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/v1/sessions/{id}"))
            .await
    }

    pub async fn signal_continue(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &format!("/v1/sessions/{id}/continue"))
            .await
    }

    /// Posts the results of host commands the session asked this client
    /// to run.
    pub async fn host_results(
        &self,
        id: &str,
        results: &crate::probe::HostCommandResults,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(results).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self
            .send(
                Method::POST,
                &format!("/v1/sessions/{id}/host-results"),
                Some(body),
            )
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(api_error(status, &read_body(resp).await?))
    }

    pub async fn xray(
        &self,
        image: &str,
        containerd: Option<ContainerdTarget>,
    ) -> Result<serde_json::Value, ClientError> {
        let req = XrayRequest {
            image: image.into(),
            containerd,
        };
        self.call(Method::POST, "/v1/xray", Some(&req)).await
    }

    /// Streams an OCI layout tar to the daemon, which writes it into
    /// containerd.
    pub async fn load_containerd(
        &self,
        req: &LoadRequest,
        archive: tokio::fs::File,
    ) -> Result<Loaded, ClientError> {
        use futures_util::TryStreamExt;
        let header =
            serde_json::to_string(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut sender = self.connection().await?;
        let body = http_body_util::StreamBody::new(
            tokio_util::io::ReaderStream::with_capacity(archive, 1 << 20)
                .map_ok(hyper::body::Frame::data),
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/containerd/load")
            .header("host", "slimd")
            .header("content-type", "application/x-tar")
            .header(LOAD_REQUEST_HEADER, header)
            .body(body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let status = resp.status();
        let bytes = read_body(resp).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("bad answer: {e}")))
    }

    /// An engine image's `docker save` tar, as a stream of bytes.
    pub async fn export(
        &self,
        image: &str,
    ) -> Result<
        impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        ClientError,
    > {
        use futures_util::TryStreamExt;
        let body = serde_json::to_vec(&ExportRequest {
            image: image.into(),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self
            .send(Method::POST, "/v1/images/export", Some(body))
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(api_error(status, &read_body(resp).await?));
        }
        Ok(resp
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other))
    }

    /// Starts a session; its progress streams back.
    pub async fn start(&self, req: &SessionRequest) -> Result<ProgressStream, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream(Method::POST, "/v1/sessions", Some(body)).await
    }

    /// Follows a running session's progress.
    pub async fn follow(&self, id: &str) -> Result<ProgressStream, ClientError> {
        self.stream(Method::GET, &format!("/v1/sessions/{id}/progress"), None)
            .await
    }

    async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<ProgressStream, ClientError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(api_error(status, &read_body(resp).await?));
        }
        Ok(ProgressStream {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

async fn read_body(resp: hyper::Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .to_bytes())
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => ClientError::Api(e),
        Err(_) => ClientError::Api(ApiError {
            kind: if status == StatusCode::NOT_FOUND {
                FailureKind::Usage
            } else {
                FailureKind::Internal
            },
            message: format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()),
        }),
    }
}
