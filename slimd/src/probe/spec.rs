//! What to probe and where: the endpoints (container ports published on the
//! host), the HTTP requests (from the crawl or `--http-probe-file`)
//! and command lines for exec and host-command probes.
//!
//! The probe file is a JSON list of requests:
//! `[{"method": "POST", "path": "/api/notes", "port": 8080,
//!    "headers": {"Content-Type": "application/json"}, "body": {"text": "hi"},
//!    "expect_status": 201, "ignore_body": true}]`.
//! Only `path` is required. DockerSlim's `{"commands": [{"resource": ...,
//! "headers": ["Name: value"], "protocol": "https"}]}` form is read too, so
//! users can keep theirs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ProbeError, Result};

/// Where the app is reachable: a container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host address to connect to (`127.0.0.1`).
    pub host: String,
    /// Published port on the host (differs between runs; never compared).
    pub host_port: u16,
    /// The port the app listens on inside the container (what reports name).
    pub container_port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, host_port: u16, container_port: u16) -> Self {
        Endpoint {
            host: host.into(),
            host_port,
            container_port,
        }
    }

    /// The endpoints on 127.0.0.1 of those `ports` (`8080/tcp`) that the
    /// engine has published for the container so far.
    pub fn published(container: &crate::engine::ContainerInfo, ports: &[String]) -> Vec<Endpoint> {
        ports
            .iter()
            .filter_map(|p| {
                let cp = crate::engine::port_number(p)?;
                container
                    .host_port(p)
                    .map(|hp| Endpoint::new("127.0.0.1", hp, cp))
            })
            .collect()
    }
}

/// One HTTP request, fully resolved (method upper-case, port chosen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Container port.
    pub port: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// The body is known to vary between runs (timestamps, ids): verify
    /// compares the status only.
    #[serde(default)]
    pub ignore_body: bool,
    /// Sent over TLS (an HTTPS port; the certificate is not verified).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
}

impl HttpRequest {
    /// A plain GET, as the crawl sends.
    pub fn get(path: impl Into<String>, port: u16) -> Self {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            port,
            headers: BTreeMap::new(),
            body: None,
            expect_status: None,
            ignore_body: false,
            tls: false,
        }
    }

    /// `GET /x on 8080`.
    pub fn label(&self) -> String {
        format!("{} {} on {}", self.method, self.path, self.port)
    }

    /// Method, port and path: what must line up between two runs.
    pub fn key(&self) -> (&str, u16, &str) {
        (&self.method, self.port, &self.path)
    }
}

/// Headers as a map, or DockerSlim's list of `Name: value` lines.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Headers {
    Map(BTreeMap<String, String>),
    Lines(Vec<String>),
}

/// A text body, or JSON sent as JSON.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Text(String),
    Json(serde_json::Value),
}

/// One entry as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    method: Option<String>,
    #[serde(alias = "resource")]
    path: String,
    port: Option<u16>,
    headers: Option<Headers>,
    body: Option<Body>,
    #[serde(alias = "status")]
    expect_status: Option<u16>,
    #[serde(default, alias = "vary_body")]
    ignore_body: bool,
    /// DockerSlim's field: `http` or `https` (TLS; the certificate is not
    /// verified). Without it, the port's own scheme is used: a port found
    /// to speak HTTPS gets TLS.
    protocol: Option<String>,
}

/// A parsed probe file: requests whose port may still be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFile {
    /// Requests with `port == 0` when the file named none.
    requests: Vec<HttpRequest>,
}

impl ProbeFile {
    /// Reads and parses a probe file.
    pub fn load(path: &Path) -> Result<ProbeFile> {
        let text = std::fs::read_to_string(path).map_err(|source| ProbeError::ProbeFileRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|why| ProbeError::ProbeFileInvalid {
            path: path.to_path_buf(),
            why,
        })
    }

    /// Parses probe-file JSON; the error says which entry is wrong and why.
    pub fn parse(text: &str) -> std::result::Result<ProbeFile, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let entries = match doc {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(mut o) => match o.remove("commands") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err("expected a JSON list of requests".into()),
            },
            _ => return Err("expected a JSON list of requests".into()),
        };
        let mut requests = Vec::with_capacity(entries.len());
        for (i, v) in entries.into_iter().enumerate() {
            let e: FileEntry =
                serde_json::from_value(v).map_err(|e| format!("request #{}: {e}", i + 1))?;
            requests.push(entry_to_request(e).map_err(|e| format!("request #{}: {e}", i + 1))?);
        }
        Ok(ProbeFile { requests })
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The requests with their ports settled: a request without a port goes
    /// to the first endpoint; a port that is not published is an error.
    pub fn resolve(&self, endpoints: &[Endpoint]) -> Result<Vec<HttpRequest>> {
        let published = || {
            endpoints
                .iter()
                .map(|e| e.container_port.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.requests
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if r.port == 0 {
                    r.port = match endpoints.first() {
                        Some(e) => e.container_port,
                        None => {
                            return Err(ProbeError::UnknownPort {
                                request: format!("{} {}", r.method, r.path),
                                port: 0,
                                published: "none".into(),
                            });
                        }
                    };
                } else if !endpoints.iter().any(|e| e.container_port == r.port) {
                    return Err(ProbeError::UnknownPort {
                        request: r.label(),
                        port: r.port,
                        published: published(),
                    });
                }
                Ok(r)
            })
            .collect()
    }
}

fn entry_to_request(e: FileEntry) -> std::result::Result<HttpRequest, String> {
    let tls = match e
        .protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("http") => false,
        Some("https") => true,
        Some(p) => return Err(format!("protocol {p:?} is not supported (http or https)")),
    };
    let method = e
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("bad method {method:?}"));
    }
    if !e.path.starts_with('/') || e.path.chars().any(char::is_whitespace) {
        return Err(format!(
            "path {:?} must start with / and contain no spaces",
            e.path
        ));
    }
    let mut headers = BTreeMap::new();
    match e.headers {
        Some(Headers::Map(m)) => headers = m,
        Some(Headers::Lines(lines)) => {
            for l in lines {
                let (k, v) = l
                    .split_once(':')
                    .ok_or_else(|| format!("header {l:?} is not `Name: value`"))?;
                headers.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        None => {}
    }
    let has_content_type = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    let body = match e.body {
        Some(Body::Text(t)) => Some(t),
        Some(Body::Json(v)) => {
            if !has_content_type {
                headers.insert("Content-Type".into(), "application/json".into());
            }
            Some(v.to_string())
        }
        None => None,
    };
    Ok(HttpRequest {
        method,
        path: e.path,
        port: e.port.unwrap_or(0),
        headers,
        body,
        expect_status: e.expect_status,
        ignore_body: e.ignore_body,
        tls,
    })
}

/// Splits a command line into words like a POSIX shell does for quoting
/// (`'...'`, `"..."`, `\`), without expansion. Used for `--exec-probe`, which
/// runs the words directly: the slim image may have no shell.
pub fn split_command_line(cmd: &str) -> Result<Vec<String>> {
    let bad = |why: &str| ProbeError::InvalidCommand {
        cmd: cmd.to_string(),
        why: why.into(),
    };
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(bad("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(bad("unterminated double quote")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(bad("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err(bad("trailing backslash")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err(bad("empty command"));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        vec![
            Endpoint::new("127.0.0.1", 32768, 8080),
            Endpoint::new("127.0.0.1", 32769, 9090),
        ]
    }

    #[test]
    fn parses_the_list_form_with_defaults() {
        let f = ProbeFile::parse(
            r#"[
              {"path": "/"},
              {"method": "post", "path": "/api/notes", "port": 9090,
               "headers": {"X-A": "1"}, "body": {"text": "hi"},
               "expect_status": 201, "ignore_body": true},
              {"method": "PUT", "path": "/raw", "body": "a=b",
               "headers": {"content-type": "application/x-www-form-urlencoded"}}
            ]"#,
        )
        .unwrap();
        let reqs = f.resolve(&eps()).unwrap();
        assert_eq!(reqs[0], HttpRequest::get("/", 8080));
        assert_eq!(reqs[1].method, "POST");
        assert_eq!(reqs[1].port, 9090);
        assert_eq!(reqs[1].body.as_deref(), Some(r#"{"text":"hi"}"#));
        assert_eq!(reqs[1].headers["Content-Type"], "application/json");
        assert_eq!(reqs[1].headers["X-A"], "1");
        assert_eq!(reqs[1].expect_status, Some(201));
        assert!(reqs[1].ignore_body);
        assert_eq!(reqs[2].headers.len(), 1, "an explicit content-type is kept");
        assert_eq!(reqs[2].body.as_deref(), Some("a=b"));
    }

    #[test]
    fn parses_dockerslim_commands_form() {
        let f = ProbeFile::parse(
            r#"{"commands": [{"protocol": "http", "method": "GET", "resource": "/health",
                              "headers": ["Accept: text/plain"]}]}"#,
        )
        .unwrap();
        let r = &f.resolve(&eps()).unwrap()[0];
        assert_eq!(r.path, "/health");
        assert_eq!(r.headers["Accept"], "text/plain");
        assert!(!r.tls);
        let f = ProbeFile::parse(r#"[{"path": "/s", "protocol": "HTTPS"}]"#).unwrap();
        assert!(f.resolve(&eps()).unwrap()[0].tls);
    }

    #[test]
    fn reports_bad_entries_by_number() {
        let cases = [
            (r#"{"x": 1}"#, "expected a JSON list"),
            (r#"[{"method": "GET"}]"#, "request #1: missing field `path`"),
            (r#"[{"path": "/"}, {"path": "nope"}]"#, "request #2: path"),
            (
                r#"[{"path": "/", "colour": "red"}]"#,
                "unknown field `colour`",
            ),
            (r#"[{"path": "/", "protocol": "ftp"}]"#, "http or https"),
            (r#"[{"path": "/", "headers": ["bad"]}]"#, "Name: value"),
            ("[", "not valid JSON"),
        ];
        for (text, want) in cases {
            let err = ProbeFile::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let f = ProbeFile::parse(r#"[{"path": "/", "port": 1234}]"#).unwrap();
        let err = f.resolve(&eps()).unwrap_err().to_string();
        assert!(
            err.contains("port 1234") && err.contains("8080, 9090"),
            "{err}"
        );
        assert!(f.resolve(&[]).is_err());
    }

    #[test]
    fn splits_command_lines_like_sh() {
        let s = |c| split_command_line(c).unwrap();
        assert_eq!(s("redis-cli ping"), vec!["redis-cli", "ping"]);
        assert_eq!(
            s(r#"sh -c 'echo "a b"' x"#),
            vec!["sh", "-c", r#"echo "a b""#, "x"]
        );
        assert_eq!(
            s(r#"echo "a \"q\" \n" b\ c ''"#),
            vec!["echo", r#"a "q" \n"#, "b c", ""]
        );
        assert!(split_command_line("echo 'x").is_err());
        assert!(split_command_line("   ").is_err());
    }
}
