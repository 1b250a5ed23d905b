//! HTTP/1.1 over a fresh TCP connection per request (hyper's low-level
//! client), over TLS when the request says so (see [`super::tls`]).
//! Readiness lives in [`super::ready`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::spec::Endpoint;
use super::spec::HttpRequest;

/// Sent on every probe request.
pub const PROBE_USER_AGENT: &str = concat!("slimd-probe/", env!("CARGO_PKG_VERSION"));

/// A response, with the body hashed whole and its head kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body_len: u64,
    pub body_sha256: String,
    /// The first `keep` bytes of the body.
    pub body_head: Vec<u8>,
}

/// The `Host` header the app sees: its own view (`localhost:<container
/// port>`), identical in the original and the slim run whatever the host port.
pub fn host_header(ep: &Endpoint) -> String {
    format!("localhost:{}", ep.container_port)
}

/// Sends one request; the whole exchange (connect, send, read the body) must
/// fit in `timeout`. Errors come back as text: they are probe results.
pub async fn send(
    ep: &Endpoint,
    req: &HttpRequest,
    timeout: Duration,
    keep: usize,
) -> std::result::Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, send_inner(ep, req, keep)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete response within {:.1}s",
            timeout.as_secs_f64()
        )),
    }
}

async fn send_inner(
    ep: &Endpoint,
    req: &HttpRequest,
    keep: usize,
) -> std::result::Result<HttpResponse, String> {
    let method = hyper::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(&req.path)
        .header(HOST, host_header(ep))
        .header(USER_AGENT, PROBE_USER_AGENT)
        .header(CONNECTION, "close");
    let has = |name: &str| req.headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    if !has("accept") {
        builder = builder.header("accept", "*/*");
    }
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("host") {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = req.body.clone().unwrap_or_default();
    if req.body.is_some() && !has("content-length") {
        builder = builder.header(CONTENT_LENGTH, body.len());
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;

    let stream = TcpStream::connect((ep.host.as_str(), ep.host_port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    if req.tls {
        exchange(super::tls::connect(stream).await?, request, keep).await
    } else {
        exchange(stream, request, keep).await
    }
}

/// Sends `request` on a connected stream and reads the whole response.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
    keep: usize,
) -> std::result::Result<HttpResponse, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| describe_hyper_error(&e))?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let status = resp.status().as_u16();
        let content_type = header(CONTENT_TYPE);
        let location = header(LOCATION);
        let mut body = resp.into_body();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut head = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading body: {}", describe_hyper_error(&e)))?;
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                len += data.len() as u64;
                let room = keep.saturating_sub(head.len());
                head.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        Ok(HttpResponse {
            status,
            content_type,
            location,
            body_len: len,
            body_sha256: hex::encode(hasher.finalize()),
            body_head: head,
        })
    }
    .await;
    conn.abort();
    result
}

fn describe_hyper_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "connection closed before a complete response".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, Endpoint) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, Endpoint::new("127.0.0.1", port, 8080))
    }

    #[tokio::test]
    async fn send_hashes_the_body_and_reports_headers() {
        let (l, ep) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8(req).unwrap();
            assert!(text.starts_with("POST /x?y=1 HTTP/1.1\r\n"), "{text}");
            assert!(
                text.to_ascii_lowercase().contains("host: localhost:8080"),
                "{text}"
            );
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
                .await
                .unwrap();
        });
        let mut req = HttpRequest::get("/x?y=1", 8080);
        req.method = "POST".into();
        req.body = Some("a=b".into());
        let r = send(&ep, &req, Duration::from_secs(5), 3).await.unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(r.body_len, 5);
        assert_eq!(r.body_head, b"hel");
        assert_eq!(r.body_sha256, super::super::report::sha256_hex(b"hello"));
    }
}
