//! The HTTP probe: `GET /` on each published port, a bounded same-origin
//! crawl of the links found in HTML (and redirects), the HTML forms the
//! crawl found (see [`super::forms`]), one request per operation of the
//! app's OpenAPI/Swagger documents (see [`super::openapi`]), then the probe
//! file's requests. Replay sends an earlier run's exact request list again,
//! so verify compares the same requests in the same order.
//!
//! HTTPS: the scheme of each port is found on its first request. A plain
//! HTTP request goes first; when it gets no HTTP reply (a TLS server closes
//! or sends an alert), or a `400` (what nginx-like servers answer plain HTTP
//! sent to a TLS port), the same request is sent over TLS, and a response
//! there makes the port an HTTPS port. Every later request to the port uses
//! TLS, and each record says whether TLS was used, so replay needs no
//! detection.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use scraper::Html;
use serde::{Deserialize, Serialize};
use url::Url;

use super::forms::{FormRequest, forms_of, submission};
use super::http::{HttpResponse, send};
use super::links::{Target, links_of, page_base, page_url, resolve_link};
use super::openapi::{self, ApiDoc, SpecSource, WELL_KNOWN_PATHS};
use super::report::{HttpRecord, RequestOrigin};
use super::spec::Endpoint;
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
    /// Submit the HTML forms found by the crawl.
    pub forms: bool,
    /// Form submissions at most (distinct method, action and field names).
    pub max_forms: usize,
    /// Look for an API description at the usual paths
    /// ([`WELL_KNOWN_PATHS`]) on every endpoint.
    pub api_discovery: bool,
    /// API descriptions named by the user (`--http-probe-apispec`).
    pub api_specs: Vec<SpecSource>,
    /// Requests for API operations at most, all documents together.
    pub max_operations: usize,
    /// Bytes of one generated body (a form or an operation); larger ones
    /// are not sent.
    pub max_body: usize,
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
            forms: true,
            max_forms: 50,
            api_discovery: true,
            api_specs: Vec::new(),
            max_operations: 500,
            max_body: 256 << 10,
            request_timeout: Duration::from_secs(10),
            retries: 2,
            startup_window: Duration::from_secs(20),
        }
    }
}

/// Bytes of an HTML body kept for link and form extraction.
const HTML_KEEP: usize = 2 << 20;
/// Bytes of an API description read at most.
const SPEC_KEEP: usize = 16 << 20;
/// Bytes of every body kept in the report.
const SAMPLE_LEN: usize = 256;
/// How long the TLS attempt after a plain `400` may take: a plain HTTP
/// server may sit on the handshake bytes waiting for a request line.
const TLS_AFTER_400: Duration = Duration::from_secs(3);

/// Records plus what limited the probe, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpProbeOutcome {
    pub records: Vec<HttpRecord>,
    pub notes: Vec<String>,
}

/// Runs root, crawl, forms, API operations and `extra` requests (resolved
/// probe-file entries) against `endpoints`, stopping at `deadline`.
pub async fn run_http_probe(
    endpoints: &[Endpoint],
    extra: &[HttpRequest],
    cfg: &HttpProbeConfig,
    deadline: Instant,
) -> HttpProbeOutcome {
    let mut p = Prober::new(endpoints, cfg, deadline);
    if cfg.root {
        p.crawl().await;
    }
    p.submit_forms().await;
    p.api_operations().await;
    p.probe_file(extra).await;
    p.finish()
}

/// Sends `original`'s requests again, in order, against this run's
/// endpoints (same container ports, new host ports, the same scheme).
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
        let sent = request(
            ep,
            &rec.request,
            rec.origin,
            Sending {
                cfg,
                starting: first,
                detect: false,
                keep: 0,
                deadline,
            },
        )
        .await;
        out.records.push(sent.record);
    }
    out
}

/// One probe run's state: records, what each port speaks, what the crawl
/// found for later phases.
struct Prober<'a> {
    endpoints: &'a [Endpoint],
    cfg: &'a HttpProbeConfig,
    deadline: Instant,
    out: HttpProbeOutcome,
    /// Container port -> speaks TLS, once a response settled it.
    tls: HashMap<u16, bool>,
    /// Ports that had their first request (startup retries).
    warmed: HashSet<u16>,
    /// The deadline cut a phase short.
    stopped: bool,
    /// Form submissions found by the crawl, in order.
    forms: Vec<FormRequest>,
    form_keys: HashSet<(String, u16, String, String)>,
    forms_dropped: usize,
    /// Why forms were not submitted (each distinct reason once).
    form_skips: BTreeSet<String>,
    /// API descriptions met by the crawl: (endpoint, document).
    crawled_docs: Vec<(u16, ApiDoc, String)>,
}

/// How one request is sent.
#[derive(Clone, Copy)]
struct Sending<'a> {
    cfg: &'a HttpProbeConfig,
    /// The port's first request: retry while the app starts.
    starting: bool,
    /// The port's scheme is unknown: plain HTTP first, then TLS.
    detect: bool,
    /// Bytes of the body to keep in the response (0: none).
    keep: usize,
    deadline: Instant,
}

/// A sent request: its record, the response (for the crawl), and the
/// scheme the port turned out to speak when this request settled it.
struct Sent {
    record: HttpRecord,
    response: Option<HttpResponse>,
    tls: Option<bool>,
}

impl<'a> Prober<'a> {
    fn new(endpoints: &'a [Endpoint], cfg: &'a HttpProbeConfig, deadline: Instant) -> Self {
        Prober {
            endpoints,
            cfg,
            deadline,
            out: HttpProbeOutcome::default(),
            tls: HashMap::new(),
            warmed: HashSet::new(),
            stopped: false,
            forms: Vec::new(),
            form_keys: HashSet::new(),
            forms_dropped: 0,
            form_skips: BTreeSet::new(),
            crawled_docs: Vec::new(),
        }
    }

    fn endpoint(&self, port: u16) -> Option<&'a Endpoint> {
        self.endpoints.iter().find(|e| e.container_port == port)
    }

    /// `true` once the deadline has passed (the outcome's notes say so).
    fn out_of_time(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            self.stopped = true;
        }
        self.stopped
    }

    /// Sends `req` to `ep` with the port's scheme (finding it on the first
    /// response), records it and returns the response.
    async fn send(
        &mut self,
        ep: &Endpoint,
        mut req: HttpRequest,
        origin: RequestOrigin,
        keep: usize,
    ) -> Option<HttpResponse> {
        let port = ep.container_port;
        let known = self.tls.get(&port).copied();
        if known == Some(true) {
            req.tls = true;
        }
        let how = Sending {
            cfg: self.cfg,
            starting: self.warmed.insert(port),
            detect: known.is_none() && !req.tls,
            keep,
            deadline: self.deadline,
        };
        let sent = request(ep, &req, origin, how).await;
        if let Some(tls) = sent.tls
            && self.tls.insert(port, tls).is_none()
            && tls
        {
            self.out.notes.push(format!(
                "container port {port} speaks HTTPS: its requests use TLS (certificate not verified)"
            ));
        }
        self.out.records.push(sent.record);
        sent.response
    }

    /// Root and crawl, endpoint by endpoint; a link to another published
    /// port joins that port's queue.
    async fn crawl(&mut self) {
        let n = self.endpoints.len();
        let mut queues: Vec<VecDeque<(String, u32)>> =
            vec![VecDeque::from([("/".to_string(), 0u32)]); n];
        let mut seen: Vec<HashSet<String>> = vec![HashSet::from(["/".to_string()]); n];
        let mut pages = 0usize;
        while let Some(i) = (0..n).find(|&i| !queues[i].is_empty()) {
            let Some((path, depth)) = queues[i].pop_front() else {
                break;
            };
            if pages >= self.cfg.max_pages {
                let left: usize = queues.iter().map(VecDeque::len).sum::<usize>() + 1;
                self.out.notes.push(format!(
                    "crawl stopped at {} pages (max_pages); {left} links not requested",
                    self.cfg.max_pages
                ));
                return;
            }
            if self.out_of_time() {
                return;
            }
            let endpoints = self.endpoints;
            let ep = &endpoints[i];
            let origin = if depth == 0 {
                RequestOrigin::Root
            } else {
                RequestOrigin::Crawl { depth }
            };
            let req = HttpRequest::get(path.clone(), ep.container_port);
            let resp = self.send(ep, req, origin, HTML_KEEP).await;
            pages += 1;
            let Some(resp) = resp else { continue };
            let tls = self.tls.get(&ep.container_port).copied().unwrap_or(false);
            let Some(page) = page_url(ep, tls, &path) else {
                continue;
            };
            let found = self.read_page(ep, &page, &resp);
            if !self.cfg.crawl || depth >= self.cfg.max_depth {
                continue;
            }
            for t in found {
                let Some(j) = self
                    .endpoints
                    .iter()
                    .position(|e| e.container_port == t.port)
                else {
                    continue;
                };
                if seen[j].insert(t.path.clone()) {
                    queues[j].push_back((t.path, depth + 1));
                }
            }
        }
    }

    /// Same-origin links of a response (the redirect target, and for HTML
    /// the `href`/`src` values relative to `<base href>`); its forms are
    /// queued, and an API description is kept for the API phase.
    fn read_page(&mut self, ep: &Endpoint, page: &Url, resp: &HttpResponse) -> Vec<Target> {
        let mut out = Vec::new();
        if (300..400).contains(&resp.status)
            && let Some(loc) = &resp.location
            && let Some(t) = resolve_link(self.endpoints, page, loc)
        {
            out.push(t);
        }
        if !(200..300).contains(&resp.status) {
            return out;
        }
        if !is_html(resp) {
            if looks_like_api_doc(page, resp)
                && let Ok(doc) = ApiDoc::parse(&resp.body_head)
            {
                self.crawled_docs
                    .push((ep.container_port, doc, page.path().to_string()));
            }
            return out;
        }
        // The parsed page is not Send: keep it inside this function.
        let html = String::from_utf8_lossy(&resp.body_head);
        let doc = Html::parse_document(&html);
        let links = links_of(&doc);
        let base = page_base(page, links.base.as_deref());
        out.extend(
            links
                .links
                .iter()
                .filter_map(|l| resolve_link(self.endpoints, &base, l)),
        );
        if self.cfg.forms {
            for form in forms_of(&doc) {
                match submission(&form, page, &base, self.endpoints, self.cfg.max_body) {
                    Ok(r) => self.queue_form(r),
                    Err(why) => {
                        self.form_skips.insert(why.to_string());
                    }
                }
            }
        }
        out
    }

    /// Keeps a form submission unless the same method, action and field
    /// names were queued already, or the limit is reached.
    fn queue_form(&mut self, r: FormRequest) {
        let action = r.target.path.split('?').next().unwrap_or("").to_string();
        let names = match (&r.body, r.method.as_str()) {
            (_, "GET") => query_names(&r.target.path),
            (Some(body), _) => field_names(r.content_type.as_deref(), body),
            (None, _) => String::new(),
        };
        let key = (r.method.clone(), r.target.port, action, names);
        if !self.form_keys.insert(key) {
            return;
        }
        if self.forms.len() >= self.cfg.max_forms {
            self.forms_dropped += 1;
            return;
        }
        self.forms.push(r);
    }

    /// Submits the queued forms, in the order the crawl found them.
    async fn submit_forms(&mut self) {
        let forms = std::mem::take(&mut self.forms);
        for (index, f) in forms.into_iter().enumerate() {
            if self.out_of_time() {
                return;
            }
            let Some(ep) = self.endpoint(f.target.port) else {
                continue;
            };
            let mut req = HttpRequest::get(f.target.path, f.target.port);
            req.method = f.method;
            if let Some(ct) = f.content_type {
                req.headers.insert("Content-Type".into(), ct);
            }
            req.body = f.body;
            self.send(ep, req, RequestOrigin::Form { index }, 0).await;
        }
    }

    /// Finds the API descriptions (those the crawl met, the user's, and the
    /// first one at the usual paths of each port that answered) and requests
    /// every operation, each (method, port, path, body) once.
    async fn api_operations(&mut self) {
        // (ports the document applies to, document, where it came from)
        let mut docs: Vec<(Vec<u16>, ApiDoc, String)> = Vec::new();
        // (port, path) of documents already read.
        let mut fetched: HashSet<(u16, String)> = HashSet::new();
        for (port, doc, path) in std::mem::take(&mut self.crawled_docs) {
            docs.push((vec![port], doc, format!("{path} on {port}")));
            fetched.insert((port, path));
        }
        let all: Vec<u16> = self.endpoints.iter().map(|e| e.container_port).collect();
        let cfg = self.cfg;
        for src in &cfg.api_specs {
            match src {
                SpecSource::Document { name, text } => match ApiDoc::parse(text.as_bytes()) {
                    Ok(doc) => {
                        // A document naming one of our ports applies to it only.
                        let ports = match doc.server_port().filter(|p| all.contains(p)) {
                            Some(p) => vec![p],
                            None => all.clone(),
                        };
                        docs.push((ports, doc, name.clone()));
                    }
                    Err(e) => self
                        .out
                        .notes
                        .push(format!("API description {name}: {e}; not used")),
                },
                SpecSource::Path(path) => {
                    for ep in self.endpoints {
                        if self.out_of_time() {
                            break;
                        }
                        let label = format!("{path} on {}", ep.container_port);
                        match self.fetch_doc(ep, path).await {
                            Ok(doc) => {
                                fetched.insert((ep.container_port, path.clone()));
                                docs.push((vec![ep.container_port], doc, label));
                            }
                            Err(why) => self
                                .out
                                .notes
                                .push(format!("API description {label}: {why}; not used")),
                        }
                    }
                }
            }
        }
        if self.cfg.api_discovery {
            for ep in self.endpoints {
                // Not on a port that never answered.
                if !self.tls.contains_key(&ep.container_port) {
                    continue;
                }
                for path in WELL_KNOWN_PATHS {
                    if self.out_of_time() {
                        break;
                    }
                    if fetched.contains(&(ep.container_port, path.to_string())) {
                        break; // read already: the first usual path that has one
                    }
                    if let Ok(doc) = self.fetch_doc(ep, path).await {
                        let label = format!("{path} on {}", ep.container_port);
                        docs.push((vec![ep.container_port], doc, label));
                        break;
                    }
                }
            }
        }

        let limits = openapi::Limits {
            max_operations: self.cfg.max_operations,
            max_body: self.cfg.max_body,
        };
        let mut sent: HashSet<(String, u16, String, Option<String>)> = HashSet::new();
        let mut index = 0usize;
        let mut dropped = 0usize;
        for (ports, doc, source) in docs {
            let generated = openapi::operations(&doc, limits);
            self.out.notes.extend(
                generated
                    .notes
                    .iter()
                    .map(|n| format!("API description {source}: {n}")),
            );
            for port in ports {
                let Some(ep) = self.endpoint(port) else {
                    continue;
                };
                for op in &generated.operations {
                    let key = (op.method.clone(), port, op.path.clone(), op.body.clone());
                    if !sent.insert(key) {
                        continue;
                    }
                    if index >= self.cfg.max_operations {
                        dropped += 1;
                        continue;
                    }
                    if self.out_of_time() {
                        return;
                    }
                    let mut req = HttpRequest::get(op.path.clone(), port);
                    req.method = op.method.clone();
                    req.headers = op.headers.clone();
                    req.body = op.body.clone();
                    self.send(ep, req, RequestOrigin::ApiOperation { index }, 0)
                        .await;
                    index += 1;
                }
            }
        }
        if dropped > 0 {
            self.out.notes.push(format!(
                "{dropped} API operations not requested (max_operations {})",
                self.cfg.max_operations
            ));
        }
    }

    /// GETs `path` on `ep` (recorded like every request) and reads it as an
    /// API description.
    async fn fetch_doc(&mut self, ep: &Endpoint, path: &str) -> Result<ApiDoc, String> {
        let req = HttpRequest::get(path, ep.container_port);
        let resp = self
            .send(ep, req, RequestOrigin::ApiSpec, SPEC_KEEP)
            .await
            .ok_or_else(|| "no response".to_string())?;
        if !(200..300).contains(&resp.status) {
            return Err(format!("status {}", resp.status));
        }
        if resp.body_len > resp.body_head.len() as u64 {
            return Err(format!(
                "{} bytes, more than the {SPEC_KEEP} read",
                resp.body_len
            ));
        }
        ApiDoc::parse(&resp.body_head).map_err(|e| e.to_string())
    }

    /// The probe file's requests, each on its port's scheme.
    async fn probe_file(&mut self, extra: &[HttpRequest]) {
        for (index, req) in extra.iter().enumerate() {
            if self.out_of_time() {
                return;
            }
            let Some(ep) = self.endpoint(req.port) else {
                self.out
                    .notes
                    .push(format!("{}: port not published, skipped", req.label()));
                continue;
            };
            self.send(ep, req.clone(), RequestOrigin::ProbeFile { index }, 0)
                .await;
        }
    }

    fn finish(mut self) -> HttpProbeOutcome {
        if self.forms_dropped > 0 {
            self.out.notes.push(format!(
                "{} more forms found but not submitted (max_forms {})",
                self.forms_dropped, self.cfg.max_forms
            ));
        }
        if !self.form_skips.is_empty() {
            const SHOWN: usize = 5;
            let n = self.form_skips.len();
            let mut whys: Vec<&str> = self
                .form_skips
                .iter()
                .take(SHOWN)
                .map(String::as_str)
                .collect();
            let more = format!("{} more", n - SHOWN.min(n));
            if n > SHOWN {
                whys.push(&more);
            }
            self.out
                .notes
                .push(format!("{n} form(s) not submitted: {}", whys.join("; ")));
        }
        if self.stopped {
            self.out.notes.push(format!(
                "HTTP probe stopped at its deadline after {} requests",
                self.out.records.len()
            ));
        }
        self.out
    }
}

/// Names of a query string, in order (`a,b,a`).
fn query_names(path: &str) -> String {
    let q = path.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// Field names of a form body, in order, for de-duplication.
fn field_names(content_type: Option<&str>, body: &str) -> String {
    match content_type {
        Some(ct) if ct.starts_with("multipart/") => body
            .split("Content-Disposition: form-data; name=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect::<Vec<_>>()
            .join(","),
        Some(ct) if ct.starts_with("text/plain") => body
            .split("\r\n")
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect::<Vec<_>>()
            .join(","),
        _ => query_names(&format!("?{body}")),
    }
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

/// A crawled response worth reading as an API description: JSON or YAML
/// by its type or name, starting like one.
fn looks_like_api_doc(page: &Url, resp: &HttpResponse) -> bool {
    let ct = resp
        .content_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let path = page.path().to_ascii_lowercase();
    let typed = ct.contains("json")
        || ct.contains("yaml")
        || [".json", ".yaml", ".yml"].iter().any(|e| path.ends_with(e));
    let head = String::from_utf8_lossy(&resp.body_head[..resp.body_head.len().min(4096)]);
    typed
        && (head.contains("\"openapi\"")
            || head.contains("\"swagger\"")
            || head.contains("openapi:")
            || head.contains("swagger:"))
        && resp.body_len == resp.body_head.len() as u64
}

fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// One attempt: the request as it is, or, while the port's scheme is
/// unknown, plain HTTP and then TLS (see the module doc). Returns the
/// response, and the scheme when the attempt settled it.
async fn attempt(
    ep: &Endpoint,
    req: &HttpRequest,
    timeout: Duration,
    keep: usize,
    detect: bool,
) -> (Result<HttpResponse, String>, Option<bool>) {
    if !detect {
        return (send(ep, req, timeout, keep).await, None);
    }
    let over_tls = || {
        let mut r = req.clone();
        r.tls = true;
        r
    };
    match send(ep, req, timeout, keep).await {
        Ok(resp) if resp.status != 400 => (Ok(resp), Some(false)),
        Ok(plain) => match send(ep, &over_tls(), timeout.min(TLS_AFTER_400), keep).await {
            Ok(resp) => (Ok(resp), Some(true)),
            Err(_) => (Ok(plain), Some(false)),
        },
        Err(e) if e.starts_with("connect:") => (Err(e), None),
        Err(plain) => match send(ep, &over_tls(), timeout, keep).await {
            Ok(resp) => (Ok(resp), Some(true)),
            Err(tls) => (Err(format!("{plain} (over TLS: {tls})")), None),
        },
    }
}

/// One request with retries, as a record (and the response for the crawl).
async fn request(
    ep: &Endpoint,
    req: &HttpRequest,
    origin: RequestOrigin,
    how: Sending<'_>,
) -> Sent {
    let Sending {
        cfg,
        starting,
        detect,
        keep,
        deadline,
    } = how;
    let started = Instant::now();
    let startup_until = started + cfg.startup_window;
    let mut attempts = 0u32;
    let mut tls = None;
    let keep = keep.max(SAMPLE_LEN);
    let mut req = req.clone();
    let result = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err("probe deadline reached".to_string());
        }
        let timeout = cfg.request_timeout.min(left);
        let (r, settled) = attempt(ep, &req, timeout, keep, detect && tls.is_none()).await;
        if tls.is_none() && settled.is_some() {
            tls = settled;
            // Retries go the way that answered.
            req.tls = settled == Some(true);
        }
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
    let expect_status = req.expect_status;
    let mut record = HttpRecord {
        request: req,
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
            if let Some(want) = expect_status
                && want != resp.status
            {
                record.expectation_failed =
                    Some(format!("expected status {want}, got {}", resp.status));
            }
            Sent {
                record,
                response: Some(resp),
                tls,
            }
        }
        Err(e) => {
            if let Some(want) = expect_status {
                record.expectation_failed =
                    Some(format!("expected status {want}, got no response"));
            }
            record.error = Some(e);
            Sent {
                record,
                response: None,
                tls,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A tiny site: path (with query, or without as a fallback) ->
    /// (status, content type, body). Unknown paths get 404.
    type Site = HashMap<&'static str, (u16, &'static str, String)>;

    /// What a test server speaks.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Speaks {
        Http,
        /// TLS only: plain HTTP gets the connection closed.
        Tls,
        /// TLS, and plain HTTP gets a `400` (as nginx answers).
        TlsOr400,
    }

    /// One request as the server read it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        head: String,
        body: String,
        tls: bool,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<String> {
            self.head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        }
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = key.cert.der().clone();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], der)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    }

    async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<(String, String)> {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            req.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&req[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while req.len() < end + len {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        Some((head, String::from_utf8_lossy(&req[end..]).into_owned()))
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        site: &Site,
        log: &Log,
        tls: bool,
        port: u16,
    ) {
        let Some((head, body)) = read_request(&mut s).await else {
            return;
        };
        let line = head.lines().next().unwrap_or("").to_string();
        let mut words = line.split(' ');
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("").to_string();
        log.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            head: head.clone(),
            body: body.clone(),
            tls,
        });
        let bare = path.split('?').next().unwrap_or("");
        let (status, ct, text) = site
            .get(path.as_str())
            .or_else(|| site.get(bare))
            .cloned()
            .unwrap_or((404, "text/plain", "not found".into()));
        // Pages may name this server's own port.
        let text = text.replace("{port}", &port.to_string());
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nLocation: /redirected\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.shutdown().await;
    }

    /// Serves `site` on 127.0.0.1 as container port `container_port`.
    async fn serve_as(site: Site, speaks: Speaks, container_port: u16) -> (Endpoint, Log) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host_port = l.local_addr().unwrap().port();
        let ep = Endpoint::new("127.0.0.1", host_port, container_port);
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let site = Arc::new(site);
        let acceptor = tls_acceptor();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let (site, log, acceptor) = (site.clone(), log2.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let tls = match speaks {
                        Speaks::Http => false,
                        Speaks::Tls => true,
                        Speaks::TlsOr400 => {
                            matches!(s.peek(&mut first).await, Ok(1) if first[0] == 0x16)
                        }
                    };
                    if !tls && speaks == Speaks::TlsOr400 {
                        let mut s: TcpStream = s;
                        let _ = read_request(&mut s).await;
                        let body = "plain HTTP sent to an HTTPS port";
                        let _ = s
                            .write_all(format!("HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                    } else if tls {
                        // A plain request fails the handshake: the connection closes.
                        if let Ok(t) = acceptor.accept(s).await {
                            answer(t, &site, &log, true, container_port).await;
                        }
                    } else {
                        answer(s, &site, &log, false, container_port).await;
                    }
                });
            }
        });
        (ep, log)
    }

    async fn serve(site: Site) -> (Endpoint, Log) {
        serve_as(site, Speaks::Http, 8080).await
    }

    fn html(s: &str) -> (u16, &'static str, String) {
        (200, "text/html; charset=utf-8", s.to_string())
    }

    fn ok(s: &str) -> (u16, &'static str, String) {
        (200, "text/plain", s.to_string())
    }

    fn lines(log: &Log) -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// Root and crawl only: the other phases have their own tests.
    fn crawl_only() -> HttpProbeConfig {
        HttpProbeConfig {
            api_discovery: false,
            forms: false,
            ..HttpProbeConfig::default()
        }
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
        let cfg = crawl_only();
        let extra = vec![HttpRequest {
            expect_status: Some(200),
            ..HttpRequest::get("/missing", 8080)
        }];
        let out = run_http_probe(&[ep], &extra, &cfg, soon()).await;
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
        assert!(out.records.iter().all(|r| !r.request.tls));
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
        let out = run_http_probe(&[ep], &[], &cfg, soon()).await;
        assert_eq!(out.records.len(), 2);
        assert!(out.notes[0].contains("max_pages"), "{:?}", out.notes);
    }

    #[tokio::test]
    async fn replay_sends_the_same_requests_and_records_errors() {
        let mut site = Site::new();
        site.insert("/", html(r#"<a href="/x">x</a>"#));
        let (ep, _) = serve(site).await;
        let deadline = soon();
        let cfg = HttpProbeConfig::default();
        let first = run_http_probe(std::slice::from_ref(&ep), &[], &cfg, deadline).await;
        let again = replay_http(&[ep], &first.records, &cfg, deadline).await;
        let key = |r: &HttpRecord| (r.request.path.clone(), r.status, r.body_sha256.clone());
        assert_eq!(
            first.records.iter().map(key).collect::<Vec<_>>(),
            again.records.iter().map(key).collect::<Vec<_>>()
        );

        // Nothing listens: the error is recorded after the retries, and no
        // API description is looked for on a port that never answered.
        let closed = crate::testing::ClosedPort::new();
        let dead = Endpoint::new("127.0.0.1", closed.addr.port(), 8080);
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

    /// A page on an HTTPS port with a link and a form; the port speaks TLS
    /// only, or answers plain HTTP with 400.
    #[tokio::test]
    async fn https_ports_are_found_and_used_for_everything_and_replayed() {
        for speaks in [Speaks::Tls, Speaks::TlsOr400] {
            let mut site = Site::new();
            site.insert(
                "/",
                html(r#"<a href="/next">n</a><a href="https://localhost:{port}/abs">a</a><form method=post action=/f><input name=a></form>"#),
            );
            site.insert("/next", html("next"));
            site.insert("/abs", html("abs"));
            site.insert("/f", ok("posted"));
            let (ep, log) = serve_as(site, speaks, 8443).await;
            let cfg = HttpProbeConfig {
                api_discovery: false,
                ..HttpProbeConfig::default()
            };
            let extra = vec![HttpRequest::get("/next?from=file", 8443)];
            let out = run_http_probe(std::slice::from_ref(&ep), &extra, &cfg, soon()).await;
            let got: Vec<(String, Option<u16>, bool)> = out
                .records
                .iter()
                .map(|r| (r.label(), r.status, r.request.tls))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("GET / on 8443".to_string(), Some(200), true),
                    ("GET /next on 8443".to_string(), Some(200), true),
                    ("GET /abs on 8443".to_string(), Some(200), true),
                    ("POST /f on 8443".to_string(), Some(200), true),
                    ("GET /next?from=file on 8443".to_string(), Some(200), true),
                ]
            );
            assert!(
                out.notes
                    .iter()
                    .any(|n| n.contains("port 8443 speaks HTTPS")),
                "{:?}",
                out.notes
            );
            let served = log.lock().unwrap().clone();
            assert!(
                served.iter().all(|s| s.tls),
                "the app only saw TLS requests"
            );
            assert_eq!(served.len(), 5);

            // Replay uses TLS because the records say so.
            log.lock().unwrap().clear();
            let again = replay_http(std::slice::from_ref(&ep), &out.records, &cfg, soon()).await;
            assert!(again.records.iter().all(|r| r.status == Some(200)));
            assert_eq!(
                lines(&log),
                served
                    .iter()
                    .map(|s| format!("{} {}", s.method, s.path))
                    .collect::<Vec<_>>()
            );
            assert!(again.notes.is_empty(), "{:?}", again.notes);
        }
    }

    #[tokio::test]
    async fn a_plain_400_stays_plain_when_tls_fails() {
        let mut site = Site::new();
        site.insert("/", (400, "text/plain", "bad".into()));
        let (ep, log) = serve(site).await;
        let out = run_http_probe(&[ep], &[], &crawl_only(), soon()).await;
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].status, Some(400));
        assert!(!out.records[0].request.tls);
        assert_eq!(log.lock().unwrap().len(), 1, "the handshake was no request");
    }

    #[tokio::test]
    async fn links_to_another_published_port_are_crawled_there() {
        let mut site = Site::new();
        site.insert(
            "/",
            html(r#"<a href="https://localhost:8443/secure">s</a>"#),
        );
        let (plain, plain_log) = serve_as(site, Speaks::Http, 8080).await;
        let mut site = Site::new();
        site.insert("/", html("root"));
        site.insert(
            "/secure",
            html(r#"<a href="http://localhost:8080/back">b</a>"#),
        );
        let (secure, secure_log) = serve_as(site, Speaks::Tls, 8443).await;
        let out = run_http_probe(&[plain, secure], &[], &crawl_only(), soon()).await;
        let labels: Vec<String> = out.records.iter().map(HttpRecord::label).collect();
        assert_eq!(
            labels,
            vec![
                "GET / on 8080",
                "GET / on 8443",
                "GET /secure on 8443",
                "GET /back on 8080"
            ]
        );
        assert_eq!(lines(&plain_log), vec!["GET /", "GET /back"]);
        assert_eq!(lines(&secure_log), vec!["GET /", "GET /secure"]);
    }

    #[tokio::test]
    async fn forms_are_submitted_once_each_in_both_encodings() {
        let mut site = Site::new();
        let page = r#"<a href="/again">again</a>
            <form action="/search"><input name=q><input type=submit value=Go></form>
            <form method=post action="/contact"><input name=name><textarea name=msg>hi
there</textarea></form>
            <form method=post action="/upload" enctype="multipart/form-data">
              <input name=title value="T"><input type=file name=doc></form>
            <form method=post action="http://example.com/elsewhere"><input name=x></form>"#;
        site.insert("/", html(page));
        site.insert("/again", html(page));
        for p in ["/search", "/contact", "/upload"] {
            site.insert(p, ok("thanks"));
        }
        let (ep, log) = serve(site).await;
        let cfg = HttpProbeConfig {
            api_discovery: false,
            ..HttpProbeConfig::default()
        };
        let out = run_http_probe(&[ep], &[], &cfg, soon()).await;
        let labels: Vec<String> = out.records.iter().map(HttpRecord::label).collect();
        assert_eq!(
            labels,
            vec![
                "GET / on 8080",
                "GET /again on 8080",
                "GET /search?q=probe on 8080",
                "POST /contact on 8080",
                "POST /upload on 8080",
            ]
        );
        assert_eq!(out.records[2].origin, RequestOrigin::Form { index: 0 });
        assert_eq!(out.records[4].origin, RequestOrigin::Form { index: 2 });
        let seen = log.lock().unwrap().clone();
        let contact = &seen[3];
        assert_eq!(
            contact.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(contact.body, "name=probe&msg=hi%0D%0Athere");
        let upload = &seen[4];
        let ct = upload.header("content-type").unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert!(upload.body.starts_with(&format!("--{boundary}\r\n")));
        assert!(upload.body.contains("filename=\"slimd-probe.txt\""));
        assert_eq!(
            out.records[4].request.body.as_deref(),
            Some(upload.body.as_str()),
            "the record holds the exact body for replay"
        );
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("1 form(s) not submitted") && n.contains("example.com")),
            "{:?}",
            out.notes
        );

        let cfg = HttpProbeConfig {
            max_forms: 1,
            ..cfg
        };
        let ep = Endpoint::new("127.0.0.1", out.records[0].host_port, 8080);
        let out = run_http_probe(&[ep], &[], &cfg, soon()).await;
        assert_eq!(out.records.len(), 3);
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("2 more forms found but not submitted (max_forms 1)")),
            "{:?}",
            out.notes
        );
    }

    const SPEC: &str = r#"{"openapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "paths": {
          "/api/items": {"post": {"requestBody": {"content": {"application/json": {
              "schema": {"type": "object", "properties": {"name": {"type": "string", "example": "pen"}}}}}}},
            "get": {"parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "default": 5}}]}},
          "/api/items/{id}": {"delete": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]}}
        }}"#;

    #[tokio::test]
    async fn api_descriptions_at_usual_paths_are_found_and_every_operation_sent() {
        let mut site = Site::new();
        site.insert("/", html("<p>no links</p>"));
        site.insert("/swagger.json", (200, "application/json", SPEC.into()));
        for p in ["/api/items", "/api/items/1"] {
            site.insert(p, ok("done"));
        }
        let (ep, log) = serve(site).await;
        let out = run_http_probe(&[ep], &[], &HttpProbeConfig::default(), soon()).await;
        let labels: Vec<String> = out.records.iter().map(HttpRecord::label).collect();
        assert_eq!(
            labels,
            vec![
                "GET / on 8080",
                "GET /openapi.json on 8080",
                "GET /swagger.json on 8080",
                "POST /api/items on 8080",
                "GET /api/items?limit=5 on 8080",
                "DELETE /api/items/1 on 8080",
            ]
        );
        assert_eq!(out.records[1].origin, RequestOrigin::ApiSpec);
        assert_eq!(
            out.records[5].origin,
            RequestOrigin::ApiOperation { index: 2 }
        );
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen[3].body, r#"{"name":"pen"}"#);
        assert_eq!(
            seen[3].header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }

    #[tokio::test]
    async fn named_and_crawled_api_descriptions_are_used() {
        let yaml = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /y:\n    get: {}\n";
        let mut site = Site::new();
        site.insert("/", html(r#"<a href="/docs/api.yaml">API</a>"#));
        site.insert("/docs/api.yaml", (200, "application/yaml", yaml.into()));
        site.insert("/internal/spec", (200, "application/json", SPEC.into()));
        site.insert("/y", ok("y"));
        let (ep, _) = serve(site).await;
        let local = r#"{"swagger": "2.0", "paths": {"/local": {"put": {}}}}"#;
        let cfg = HttpProbeConfig {
            api_specs: vec![
                SpecSource::Path("/internal/spec".into()),
                SpecSource::Path("/nowhere".into()),
                SpecSource::Document {
                    name: "local.json".into(),
                    text: local.into(),
                },
                SpecSource::Document {
                    name: "bad.json".into(),
                    text: "{}".into(),
                },
            ],
            ..HttpProbeConfig::default()
        };
        let out = run_http_probe(&[ep], &[], &cfg, soon()).await;
        let labels: Vec<String> = out.records.iter().map(HttpRecord::label).collect();
        assert_eq!(
            labels,
            vec![
                "GET / on 8080",
                "GET /docs/api.yaml on 8080",
                "GET /internal/spec on 8080",
                "GET /nowhere on 8080",
                // The usual paths: none has a document here.
                "GET /openapi.json on 8080",
                "GET /swagger.json on 8080",
                "GET /openapi.yaml on 8080",
                "GET /swagger.yaml on 8080",
                "GET /v3/api-docs on 8080",
                "GET /v2/api-docs on 8080",
                "GET /api-docs on 8080",
                "GET /api/openapi.json on 8080",
                "GET /api/swagger.json on 8080",
                "GET /swagger/v1/swagger.json on 8080",
                "GET /apispec_1.json on 8080",
                "GET /api-json on 8080",
                // The crawled YAML document, then the named ones in order.
                "GET /y on 8080",
                "POST /api/items on 8080",
                "GET /api/items?limit=5 on 8080",
                "DELETE /api/items/1 on 8080",
                "PUT /local on 8080",
            ]
        );
        let notes = out.notes.join("\n");
        assert!(
            notes.contains("API description /nowhere on 8080: status 404; not used"),
            "{notes}"
        );
        assert!(
            notes.contains("API description bad.json: not an OpenAPI 3 or Swagger 2 document"),
            "{notes}"
        );
    }

    #[tokio::test]
    async fn api_operations_are_bounded() {
        let mut site = Site::new();
        site.insert("/", html(""));
        site.insert("/openapi.json", (200, "application/json", SPEC.into()));
        let (ep, _) = serve(site).await;
        let cfg = HttpProbeConfig {
            max_operations: 1,
            ..HttpProbeConfig::default()
        };
        let out = run_http_probe(&[ep], &[], &cfg, soon()).await;
        let ops = out
            .records
            .iter()
            .filter(|r| matches!(r.origin, RequestOrigin::ApiOperation { .. }))
            .count();
        assert_eq!(ops, 1);
        assert!(
            out.notes.iter().any(|n| n.contains("max_operations")),
            "{:?}",
            out.notes
        );
    }
}
