//! The HTTP probe: `GET /` on each published port, a bounded same-origin
//! crawl of the links found in HTML, then the probe file's requests. Replay
//! sends an earlier run's exact request list again, so verify compares the
//! same requests in the same order.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::http::{HttpResponse, send};
use super::links::{Origin, extract_links, resolve_link};
use super::report::{Endpoint, HttpRecord, RequestOrigin};
use super::spec::HttpRequest;

/// Limits of the HTTP probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpProbeConfig {
    /// Start with `GET /` on every endpoint.
    pub root: bool,
    /// Follow same-origin links found in HTML (and redirects).
    pub crawl: bool,
    /// Pages at most this many links away from `/` are requested.
    pub max_depth: u32,
    /// Requests made by the root and the crawl together (the probe file's
    /// requests are not counted).
    pub max_pages: usize,
    /// One request, connect to last body byte.
    pub request_timeout: Duration,
    /// Extra attempts after a transport error (non-idempotent methods only
    /// when the connection was refused, i.e. nothing was sent).
    pub retries: u32,
    /// The first request on each port keeps retrying transport errors and
    /// 502/503/504 this long: the app may still be starting.
    pub startup_window: Duration,
}

impl Default for HttpProbeConfig {
    fn default() -> Self {
        HttpProbeConfig {
            root: true,
            crawl: true,
            max_depth: 3,
            max_pages: 200,
            request_timeout: Duration::from_secs(10),
            retries: 2,
            startup_window: Duration::from_secs(20),
        }
    }
}

/// Bytes of an HTML body kept for link extraction.
const HTML_KEEP: usize = 2 << 20;
/// Bytes of every body kept in the report.
const SAMPLE_LEN: usize = 256;

/// Records plus what limited the probe, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpProbeOutcome {
    pub records: Vec<HttpRecord>,
    pub notes: Vec<String>,
}

/// Runs root, crawl and `extra` requests (resolved probe-file entries) against
/// `endpoints`, stopping at `deadline`.
pub async fn run_http_probe(
    endpoints: &[Endpoint],
    extra: &[HttpRequest],
    cfg: &HttpProbeConfig,
    deadline: Instant,
) -> HttpProbeOutcome {
    let mut out = HttpProbeOutcome::default();
    let mut pages = 0usize;
    let mut stopped = false;
    'endpoints: for ep in endpoints.iter().filter(|_| cfg.root) {
        let origin = Origin {
            host: &ep.host,
            host_port: ep.host_port,
            container_port: ep.container_port,
        };
        let mut seen: HashSet<String> = HashSet::from(["/".to_string()]);
        let mut queue = VecDeque::from([("/".to_string(), 0u32)]);
        while let Some((path, depth)) = queue.pop_front() {
            if pages >= cfg.max_pages {
                out.notes.push(format!(
                    "crawl stopped at {} pages (max_pages); {} links not requested",
                    cfg.max_pages,
                    queue.len() + 1
                ));
                break 'endpoints;
            }
            if Instant::now() >= deadline {
                stopped = true;
                break 'endpoints;
            }
            let req = HttpRequest::get(path.clone(), ep.container_port);
            let origin_kind = if depth == 0 {
                RequestOrigin::Root
            } else {
                RequestOrigin::Crawl { depth }
            };
            let (record, resp) = request(ep, &req, origin_kind, cfg, depth == 0, deadline).await;
            out.records.push(record);
            pages += 1;
            let Some(resp) = resp else { continue };
            if !cfg.crawl || depth >= cfg.max_depth {
                continue;
            }
            for link in page_links(&origin, &path, &resp) {
                if seen.insert(link.clone()) {
                    queue.push_back((link, depth + 1));
                }
            }
        }
    }
    for (index, req) in extra.iter().enumerate() {
        if Instant::now() >= deadline {
            stopped = true;
            break;
        }
        let Some(ep) = endpoints.iter().find(|e| e.container_port == req.port) else {
            out.notes
                .push(format!("{}: port not published, skipped", req.label()));
            continue;
        };
        let origin = RequestOrigin::ProbeFile { index };
        let (record, _) = request(ep, req, origin, cfg, false, deadline).await;
        out.records.push(record);
    }
    if stopped {
        out.notes.push(format!(
            "HTTP probe stopped at its deadline after {} requests",
            out.records.len()
        ));
    }
    out
}

/// Sends `original`'s requests again, in order, against this run's
/// endpoints (same container ports, new host ports).
pub async fn replay_http(
    endpoints: &[Endpoint],
    original: &[HttpRecord],
    cfg: &HttpProbeConfig,
    deadline: Instant,
) -> HttpProbeOutcome {
    let mut out = HttpProbeOutcome::default();
    let mut warmed: HashSet<u16> = HashSet::new();
    for rec in original {
        if Instant::now() >= deadline {
            out.notes.push(format!(
                "HTTP replay stopped at its deadline after {} of {} requests",
                out.records.len(),
                original.len()
            ));
            break;
        }
        let Some(ep) = endpoints
            .iter()
            .find(|e| e.container_port == rec.request.port)
        else {
            out.notes
                .push(format!("{}: port not published in this run", rec.label()));
            continue;
        };
        let first = warmed.insert(ep.container_port);
        let (record, _) = request(ep, &rec.request, rec.origin, cfg, first, deadline).await;
        out.records.push(record);
    }
    out
}

/// Same-origin links of a response: the redirect target, and for HTML the
/// `href`/`src` values (relative to `<base href>` when the page has one).
fn page_links(origin: &Origin<'_>, page: &str, resp: &HttpResponse) -> Vec<String> {
    let mut out = Vec::new();
    if (300..400).contains(&resp.status)
        && let Some(loc) = &resp.location
        && let Some(p) = resolve_link(origin, page, loc)
    {
        out.push(p);
    }
    if !(200..300).contains(&resp.status) || !is_html(resp) {
        return out;
    }
    let html = String::from_utf8_lossy(&resp.body_head);
    let links = extract_links(&html);
    let base = links
        .base
        .as_deref()
        .and_then(|b| resolve_link(origin, page, b))
        .unwrap_or_else(|| page.to_string());
    out.extend(
        links
            .links
            .iter()
            .filter_map(|l| resolve_link(origin, &base, l)),
    );
    out
}

fn is_html(resp: &HttpResponse) -> bool {
    match &resp.content_type {
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.contains("html")
        }
        None => {
            let head = String::from_utf8_lossy(&resp.body_head[..resp.body_head.len().min(64)])
                .trim_start()
                .to_ascii_lowercase();
            head.starts_with("<!doctype html") || head.starts_with("<html")
        }
    }
}

fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// One request with retries, as a record (and the response for the crawl).
async fn request(
    ep: &Endpoint,
    req: &HttpRequest,
    origin: RequestOrigin,
    cfg: &HttpProbeConfig,
    starting: bool,
    deadline: Instant,
) -> (HttpRecord, Option<HttpResponse>) {
    let started = Instant::now();
    let startup_until = started + cfg.startup_window;
    let mut attempts = 0u32;
    let result = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err("probe deadline reached".to_string());
        }
        let timeout = cfg.request_timeout.min(left);
        let r = send(ep, req, timeout, HTML_KEEP).await;
        let now = Instant::now();
        let in_startup = starting && now < startup_until && now < deadline;
        let retry = match &r {
            Ok(resp) => in_startup && matches!(resp.status, 502..=504),
            Err(e) => {
                let may_resend = is_idempotent(&req.method) || e.starts_with("connect:");
                may_resend && now < deadline && (in_startup || attempts <= cfg.retries)
            }
        };
        if !retry {
            break r;
        }
        let backoff = Duration::from_millis(250 * u64::from(attempts.min(4)));
        tokio::time::sleep(backoff.min(deadline.saturating_duration_since(now))).await;
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut record = HttpRecord {
        request: req.clone(),
        origin,
        host_port: ep.host_port,
        status: None,
        content_type: None,
        body_len: 0,
        body_sha256: None,
        body_sample: String::new(),
        error: None,
        expectation_failed: None,
        attempts,
        elapsed_ms,
    };
    match result {
        Ok(resp) => {
            record.status = Some(resp.status);
            record.content_type = resp.content_type.clone();
            record.body_len = resp.body_len;
            record.body_sha256 = Some(resp.body_sha256.clone());
            let sample = &resp.body_head[..resp.body_head.len().min(SAMPLE_LEN)];
            record.body_sample = String::from_utf8_lossy(sample).into_owned();
            if let Some(want) = req.expect_status
                && want != resp.status
            {
                record.expectation_failed =
                    Some(format!("expected status {want}, got {}", resp.status));
            }
            (record, Some(resp))
        }
        Err(e) => {
            if let Some(want) = req.expect_status {
                record.expectation_failed =
                    Some(format!("expected status {want}, got no response"));
            }
            record.error = Some(e);
            (record, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A tiny site: path -> (status, content type, body).
    type Site = HashMap<&'static str, (u16, &'static str, String)>;

    async fn serve(site: Site) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint::new("127.0.0.1", l.local_addr().unwrap().port(), 8080);
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let line = text.lines().next().unwrap_or("").to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                log2.lock().unwrap().push(line);
                let (status, ct, body) = site.get(path.as_str()).cloned().unwrap_or((
                    404,
                    "text/plain",
                    "not found".into(),
                ));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nLocation: /redirected\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (ep, log)
    }

    fn html(s: &str) -> (u16, &'static str, String) {
        (200, "text/html; charset=utf-8", s.to_string())
    }

    #[tokio::test]
    async fn crawls_same_origin_links_breadth_first_within_limits() {
        let mut site = Site::new();
        site.insert("/", html(r#"<a href="/a">a</a><a href="b">b</a><a href="http://example.com/x">x</a><img src="/logo.png">"#));
        site.insert(
            "/a",
            html(r#"<a href="/a/deeper">d</a><a href="/">home</a>"#),
        );
        site.insert("/b", (302, "text/plain", String::new()));
        site.insert("/redirected", html(""));
        site.insert("/logo.png", (200, "image/png", "PNG".into()));
        site.insert("/a/deeper", html(r#"<a href="/a/deeper/still">s</a>"#));
        site.insert("/a/deeper/still", html(r#"<a href="/too-deep">t</a>"#));
        let (ep, log) = serve(site).await;
        let cfg = HttpProbeConfig::default();
        let extra = vec![HttpRequest {
            expect_status: Some(200),
            ..HttpRequest::get("/missing", 8080)
        }];
        let out = run_http_probe(
            &[ep],
            &extra,
            &cfg,
            Instant::now() + Duration::from_secs(20),
        )
        .await;
        let paths: Vec<&str> = out
            .records
            .iter()
            .map(|r| r.request.path.as_str())
            .collect();
        assert_eq!(
            paths,
            vec![
                "/",
                "/a",
                "/b",
                "/logo.png",
                "/a/deeper",
                "/redirected",
                "/a/deeper/still",
                "/missing"
            ]
        );
        assert_eq!(out.records[0].origin, RequestOrigin::Root);
        assert_eq!(out.records[6].origin, RequestOrigin::Crawl { depth: 3 });
        assert_eq!(out.records[7].origin, RequestOrigin::ProbeFile { index: 0 });
        assert_eq!(out.records[7].status, Some(404));
        assert!(out.records[7].expectation_failed.is_some());
        assert_eq!(out.records[3].body_len, 3);
        assert_eq!(
            log.lock().unwrap().len(),
            8,
            "no request to /too-deep or other hosts"
        );
        assert!(out.notes.is_empty(), "{:?}", out.notes);

        let cfg = HttpProbeConfig {
            max_pages: 2,
            ..cfg
        };
        let ep = Endpoint::new("127.0.0.1", out.records[0].host_port, 8080);
        let out = run_http_probe(&[ep], &[], &cfg, Instant::now() + Duration::from_secs(20)).await;
        assert_eq!(out.records.len(), 2);
        assert!(out.notes[0].contains("max_pages"), "{:?}", out.notes);
    }

    #[tokio::test]
    async fn replay_sends_the_same_requests_and_records_errors() {
        let mut site = Site::new();
        site.insert("/", html(r#"<a href="/x">x</a>"#));
        let (ep, _) = serve(site).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let cfg = HttpProbeConfig::default();
        let first = run_http_probe(std::slice::from_ref(&ep), &[], &cfg, deadline).await;
        let again = replay_http(&[ep], &first.records, &cfg, deadline).await;
        let key = |r: &HttpRecord| (r.request.path.clone(), r.status, r.body_sha256.clone());
        assert_eq!(
            first.records.iter().map(key).collect::<Vec<_>>(),
            again.records.iter().map(key).collect::<Vec<_>>()
        );

        // Nothing listens: the error is recorded after the retries.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = Endpoint::new("127.0.0.1", l.local_addr().unwrap().port(), 8080);
        drop(l);
        let cfg = HttpProbeConfig {
            startup_window: Duration::from_millis(300),
            ..HttpProbeConfig::default()
        };
        let out = run_http_probe(&[dead], &[], &cfg, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(out.records.len(), 1);
        assert!(
            out.records[0]
                .error
                .as_deref()
                .unwrap()
                .starts_with("connect:")
        );
        assert!(out.records[0].attempts >= 2);
    }
}
