//! OpenAPI and Swagger documents: finding them on the app (the usual paths,
//! or `--http-probe-apispec`), reading them (JSON or YAML; OpenAPI 3.0/3.1
//! and Swagger 2), and one request for every operation, with parameters and
//! bodies filled from what the document says: examples (on parameters,
//! media types and schemas), enums, defaults, `const`, and values made from
//! the schema's type and format. `$ref`s within the document are followed.
//! A request body is sent whether or not it is required: the code that
//! parses it is what the slim image must keep.
//!
//! Everything here is pure: the crawl fetches documents and sends the
//! requests ([`super::crawl`]).

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::form_urlencoded;

use super::forms::{FieldValue, multipart};

/// Where API descriptions come from besides the usual paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecSource {
    /// A path on the app (fetched from every published port).
    Path(String),
    /// A document read by the client (`name` is its file name, for notes).
    Document { name: String, text: String },
}

/// Paths where apps and frameworks usually serve their API description
/// (FastAPI, Springdoc, Swashbuckle, connexion, flasgger, NestJS, ...),
/// tried in this order until one answers with a document.
pub const WELL_KNOWN_PATHS: &[&str] = &[
    "/openapi.json",
    "/swagger.json",
    "/openapi.yaml",
    "/swagger.yaml",
    "/v3/api-docs",
    "/v2/api-docs",
    "/api-docs",
    "/api/openapi.json",
    "/api/swagger.json",
    "/swagger/v1/swagger.json",
    "/apispec_1.json",
    "/api-json",
];

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("neither JSON nor YAML ({0})")]
    Syntax(String),
    #[error("not an OpenAPI 3 or Swagger 2 document (no `openapi: 3.x` or `swagger: \"2.0\"`)")]
    NotApiDoc,
    #[error("no `paths` object")]
    NoPaths,
}

/// Which dialect a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Swagger2,
    OpenApi3,
}

/// A parsed API description.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiDoc {
    pub dialect: Dialect,
    root: Value,
}

impl ApiDoc {
    /// Reads a JSON or YAML document and checks it is OpenAPI 3 or Swagger 2.
    pub fn parse(bytes: &[u8]) -> Result<ApiDoc, SpecError> {
        let root: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(json) => serde_norway::from_slice(bytes)
                .map_err(|yaml| SpecError::Syntax(format!("JSON: {json}; YAML: {yaml}")))?,
        };
        let version = |k: &str| root.get(k).map(scalar_text);
        let dialect = match (version("openapi"), version("swagger")) {
            (Some(v), _) if v.starts_with("3.") => Dialect::OpenApi3,
            (_, Some(v)) if v.starts_with("2.") => Dialect::Swagger2,
            _ => return Err(SpecError::NotApiDoc),
        };
        if !root.get("paths").is_some_and(Value::is_object) {
            return Err(SpecError::NoPaths);
        }
        Ok(ApiDoc { dialect, root })
    }

    /// Follows `$ref`s (local JSON pointers) until a value without one;
    /// `None` for a reference that leaves the document or loops.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> Option<&'a Value> {
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Some(v);
            };
            v = self.follow(r)?;
        }
        None
    }

    /// The value one local reference (`#/components/schemas/Pet`) points at.
    fn follow(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        let pointer = percent_encoding::percent_decode_str(pointer).decode_utf8_lossy();
        self.root.pointer(&pointer)
    }

    /// The path prefix and port of the document's first server
    /// (OpenAPI 3 `servers`, Swagger 2 `basePath` and `host`).
    fn server(&self, servers: Option<&Value>) -> (String, Option<u16>) {
        match self.dialect {
            Dialect::Swagger2 => {
                let base = self
                    .root
                    .get("basePath")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let port = self
                    .root
                    .get("host")
                    .and_then(Value::as_str)
                    .and_then(|h| h.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok());
                (base.trim_end_matches('/').to_string(), port)
            }
            Dialect::OpenApi3 => {
                let Some(first) = servers
                    .and_then(Value::as_array)
                    .and_then(|s| s.first())
                    .and_then(|s| self.resolve(s))
                else {
                    return (String::new(), None);
                };
                let mut url = first
                    .get("url")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(vars) = first.get("variables").and_then(Value::as_object) {
                    for (name, var) in vars {
                        let value = var.get("default").map(scalar_text).unwrap_or_default();
                        url = url.replace(&format!("{{{name}}}"), &value);
                    }
                }
                match url::Url::parse(&url) {
                    Ok(u) => (
                        u.path().trim_end_matches('/').to_string(),
                        u.port_or_known_default().filter(|_| u.has_host()),
                    ),
                    // Relative: `/api/v1` or `v1`.
                    Err(_) => {
                        let p = url.trim_end_matches('/');
                        if p.is_empty() || p.starts_with('/') {
                            (p.to_string(), None)
                        } else {
                            (format!("/{p}"), None)
                        }
                    }
                }
            }
        }
    }

    /// The port the document's first server names (`http://host:8080/`),
    /// when it names one.
    pub fn server_port(&self) -> Option<u16> {
        self.server(self.root.get("servers")).1
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Limits on what one document generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_operations: usize,
    /// Bytes of one generated body; an operation whose body is larger is skipped.
    pub max_body: usize,
}

/// One request for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: String,
    /// Path and query, percent-encoded.
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// `operationId`, or `METHOD /template`.
    pub label: String,
}

/// The operations and what was left out, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub operations: Vec<Operation>,
    pub notes: Vec<String>,
}

const METHODS: [&str; 8] = [
    "post", "put", "patch", "get", "head", "options", "trace", "delete",
];

/// Deepest schema nesting filled in (deeper objects are `{}`, arrays `[]`).
const MAX_DEPTH: usize = 8;

/// One request per operation of `doc`: paths in document-key order, within
/// a path creating methods before reading ones; every `DELETE` comes last
/// so the others see what was created.
pub fn operations(doc: &ApiDoc, limits: Limits) -> Generated {
    let mut out = Generated::default();
    let mut deletes = Vec::new();
    let mut total = 0usize;
    let paths = doc.root["paths"].as_object().cloned().unwrap_or_default();
    for (template, item) in &paths {
        if !template.starts_with('/') {
            continue; // `x-` extensions
        }
        let Some(item) = doc.resolve(item) else {
            out.notes
                .push(format!("{template}: unresolvable $ref, skipped"));
            continue;
        };
        for method in METHODS {
            let Some(op) = item.get(method).and_then(|o| doc.resolve(o)) else {
                continue;
            };
            total += 1;
            let label = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
            match operation(doc, template, method, item, op, limits) {
                Ok(mut o) => {
                    o.label = label;
                    if method == "delete" {
                        deletes.push(o);
                    } else {
                        out.operations.push(o);
                    }
                }
                Err(why) => out.notes.push(format!("{label}: {why}, skipped")),
            }
        }
    }
    out.operations.extend(deletes);
    if out.operations.len() > limits.max_operations {
        out.notes.push(format!(
            "{} of {total} operations requested (max_operations)",
            limits.max_operations
        ));
        out.operations.truncate(limits.max_operations);
    }
    out
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
    Header,
    Cookie,
    Body,
    FormData,
}

struct Param<'a> {
    name: String,
    location: In,
    value: Value,
    spec: &'a Value,
}

fn operation(
    doc: &ApiDoc,
    template: &str,
    method: &str,
    item: &Value,
    op: &Value,
    limits: Limits,
) -> Result<Operation, String> {
    let params = parameters(doc, item, op);
    let servers = op
        .get("servers")
        .or_else(|| item.get("servers"))
        .or_else(|| doc.root.get("servers"));
    let (base, _) = doc.server(servers);

    // Path: every `{name}`, declared or not.
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        path.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = params
            .iter()
            .find(|p| p.location == In::Path && p.name == name)
            .map_or_else(|| "1".to_string(), |p| joined(&p.value, ","));
        path.push_str(&utf8_percent_encode(&value, PATH_SEGMENT).to_string());
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    let mut path = format!("{base}{path}");
    if !path.starts_with('/') {
        path.insert(0, '/');
    }

    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut has_query = false;
    let mut headers = BTreeMap::new();
    let mut cookies = Vec::new();
    for p in &params {
        match p.location {
            In::Query => {
                for (k, v) in query_pairs(doc, p) {
                    query.append_pair(&k, &v);
                    has_query = true;
                }
            }
            In::Header => {
                let skip = ["accept", "content-type", "authorization"];
                if !skip.iter().any(|s| p.name.eq_ignore_ascii_case(s)) {
                    headers.insert(p.name.clone(), joined(&p.value, ","));
                }
            }
            In::Cookie => cookies.push(format!("{}={}", p.name, joined(&p.value, ","))),
            _ => {}
        }
    }
    if !cookies.is_empty() {
        headers.insert("Cookie".into(), cookies.join("; "));
    }
    if has_query {
        path.push('?');
        path.push_str(&query.finish());
    }

    let body = match doc.dialect {
        Dialect::OpenApi3 => op
            .get("requestBody")
            .and_then(|b| doc.resolve(b))
            .map(|b| body_v3(doc, b))
            .transpose()?
            .flatten(),
        Dialect::Swagger2 => body_v2(doc, op, &params),
    };
    let body = match body {
        Some((ct, text)) => {
            if text.len() > limits.max_body {
                return Err(format!(
                    "its body would be {} bytes (limit {})",
                    text.len(),
                    limits.max_body
                ));
            }
            headers.insert("Content-Type".into(), ct);
            Some(text)
        }
        None => None,
    };
    Ok(Operation {
        method: method.to_ascii_uppercase(),
        path,
        headers,
        body,
        label: String::new(),
    })
}

/// What may stay unencoded in a path segment: RFC 3986's unreserved set.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Path-level parameters overridden by operation-level ones (same name and
/// location), each with its value.
fn parameters<'a>(doc: &'a ApiDoc, item: &'a Value, op: &'a Value) -> Vec<Param<'a>> {
    let mut out: Vec<Param<'a>> = Vec::new();
    let lists = [item.get("parameters"), op.get("parameters")];
    for list in lists.into_iter().flatten().filter_map(Value::as_array) {
        for p in list {
            let Some(p) = doc.resolve(p) else { continue };
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => In::Path,
                Some("query") => In::Query,
                Some("header") => In::Header,
                Some("cookie") => In::Cookie,
                Some("body") => In::Body,
                Some("formData") => In::FormData,
                _ => continue,
            };
            let value = param_value(doc, p, location);
            out.retain(|o| !(o.name == name && o.location == location));
            out.push(Param {
                name: name.to_string(),
                location,
                value,
                spec: p,
            });
        }
    }
    out
}

/// A parameter's value: its own example(s), then its schema (OpenAPI 3:
/// `schema` or `content`; Swagger 2: `x-example`, and the parameter itself
/// holds type, format, enum and default; body parameters have `schema`).
fn param_value(doc: &ApiDoc, p: &Value, location: In) -> Value {
    if let Some(v) = p.get("example").or_else(|| p.get("x-example")) {
        return v.clone();
    }
    if let Some(v) = first_example(doc, p.get("examples")) {
        return v;
    }
    if let Some(media) = p
        .get("content")
        .and_then(Value::as_object)
        .and_then(|c| c.values().next())
        .and_then(|m| doc.resolve(m))
    {
        return media_value(doc, media);
    }
    match p.get("schema") {
        Some(s) => schema_value(doc, s, 0),
        None if doc.dialect == Dialect::Swagger2 && location != In::Body => schema_value(doc, p, 0),
        None => Value::String("x".into()),
    }
}

/// The first of an OpenAPI `examples` map (`{name: {value}}`, resolving
/// `$ref`s) or a JSON Schema `examples` array.
fn first_example(doc: &ApiDoc, examples: Option<&Value>) -> Option<Value> {
    match examples? {
        Value::Object(m) => m
            .values()
            .filter_map(|e| doc.resolve(e))
            .find_map(|e| e.get("value").cloned()),
        Value::Array(a) => a.first().cloned(),
        _ => None,
    }
}

/// A media type object's value: `example`, `examples`, then its schema.
fn media_value(doc: &ApiDoc, media: &Value) -> Value {
    if let Some(v) = media.get("example") {
        return v.clone();
    }
    if let Some(v) = first_example(doc, media.get("examples")) {
        return v;
    }
    match media.get("schema") {
        Some(s) => schema_value(doc, s, 0),
        None => Value::Object(Map::new()),
    }
}

/// A value that fits `schema` (see the module doc for the order). A
/// reference back into a schema being filled (a recursive type) ends there:
/// an optional property is left out, a required one is `{}`.
pub fn schema_value(doc: &ApiDoc, schema: &Value, depth: usize) -> Value {
    value_of(doc, schema, depth, &mut Vec::new()).unwrap_or(Value::Null)
}

/// [`schema_value`] with the `$ref`s being expanded; `None` on a cycle.
fn value_of(doc: &ApiDoc, s: &Value, depth: usize, refs: &mut Vec<String>) -> Option<Value> {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        if refs.iter().any(|x| x == r) {
            return None;
        }
        let Some(target) = doc.follow(r) else {
            return Some(Value::String("x".into()));
        };
        refs.push(r.to_string());
        let v = value_of(doc, target, depth, refs);
        refs.pop();
        return v;
    }
    if let Some(v) = s.get("example").or_else(|| s.get("x-example")) {
        return Some(v.clone());
    }
    if let Some(Value::Array(a)) = s.get("examples")
        && let Some(v) = a.first()
    {
        return Some(v.clone());
    }
    if let Some(v) = s.get("default") {
        return Some(v.clone());
    }
    if let Some(v) = s.get("const") {
        return Some(v.clone());
    }
    if let Some(Value::Array(values)) = s.get("enum")
        && let Some(v) = values.iter().find(|v| !v.is_null()).or(values.first())
    {
        return Some(v.clone());
    }
    if let Some(Value::Array(parts)) = s.get("allOf") {
        let mut merged = Map::new();
        let mut other = None;
        for part in parts {
            match value_of(doc, part, depth + 1, refs) {
                Some(Value::Object(m)) => merged.extend(m),
                Some(v) => {
                    other.get_or_insert(v);
                }
                None => {}
            }
        }
        return Some(match other {
            Some(v) if merged.is_empty() => v,
            _ => Value::Object(merged),
        });
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = s.get(key) {
            let is_null = |o: &Value| {
                doc.resolve(o).and_then(|o| o.get("type")) == Some(&Value::from("null"))
            };
            let mut picks: Vec<&Value> = options.iter().filter(|o| !is_null(o)).collect();
            picks.extend(options.iter().filter(|o| is_null(o)));
            return picks
                .into_iter()
                .find_map(|o| value_of(doc, o, depth + 1, refs));
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // 3.1: a list of types.
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.get("properties").is_some() => "object",
        _ if s.get("items").is_some() => "array",
        _ => "string",
    };
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    Some(match ty {
        "object" => {
            let mut m = Map::new();
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if depth < MAX_DEPTH
                && let Some(props) = s.get("properties").and_then(Value::as_object)
            {
                for (name, prop) in props {
                    let read_only = doc
                        .resolve(prop)
                        .and_then(|p| p.get("readOnly"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if read_only {
                        continue;
                    }
                    match value_of(doc, prop, depth + 1, refs) {
                        Some(v) => {
                            m.insert(name.clone(), v);
                        }
                        None if required.contains(&name.as_str()) => {
                            m.insert(name.clone(), Value::Object(Map::new()));
                        }
                        None => {}
                    }
                }
            }
            Value::Object(m)
        }
        "array" => {
            let item = match s.get("items") {
                _ if depth >= MAX_DEPTH => None,
                Some(i) => value_of(doc, i, depth + 1, refs),
                None => Some(Value::String("x".into())),
            };
            let n = num("minItems").map_or(1, |n| (n as usize).clamp(1, 3));
            Value::Array(item.map(|i| vec![i; n]).unwrap_or_default())
        }
        "integer" | "number" => {
            let mut v = 1.0f64;
            let min = num("minimum").map(|m| match s.get("exclusiveMinimum") {
                Some(Value::Bool(true)) => m + 1.0,
                _ => m,
            });
            let min = match (min, num("exclusiveMinimum")) {
                (Some(a), Some(b)) => Some(a.max(b + 1.0)),
                (a, b) => a.or(b.map(|b| b + 1.0)),
            };
            if let Some(m) = min {
                v = v.max(m);
            }
            let max = num("maximum").map(|m| match s.get("exclusiveMaximum") {
                Some(Value::Bool(true)) => m - 1.0,
                _ => m,
            });
            let max = match (max, num("exclusiveMaximum")) {
                (Some(a), Some(b)) => Some(a.min(b - 1.0)),
                (a, b) => a.or(b.map(|b| b - 1.0)),
            };
            if let Some(m) = max {
                v = v.min(m);
            }
            if let Some(step) = num("multipleOf").filter(|s| *s > 0.0) {
                v = (v / step).ceil() * step;
            }
            if ty == "integer" || v.fract() == 0.0 {
                Value::from(v.round() as i64)
            } else {
                Value::from(v)
            }
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => {
            let format = s.get("format").and_then(Value::as_str).unwrap_or("");
            let mut text = match format {
                "date" => "2024-01-01",
                "date-time" => "2024-01-01T00:00:00Z",
                "time" => "00:00:00Z",
                "email" => "probe@example.com",
                "uuid" => "00000000-0000-4000-8000-000000000001",
                "uri" | "url" | "iri" => "http://example.com/",
                "uri-reference" | "iri-reference" => "/",
                "hostname" | "idn-hostname" => "example.com",
                "ipv4" => "127.0.0.1",
                "ipv6" => "::1",
                "byte" => "cHJvYmU=",
                "password" => "probe-password",
                _ => "probe",
            }
            .to_string();
            if let Some(min) = num("minLength").map(|m| m as usize) {
                let have = text.chars().count();
                if have < min {
                    text.extend(std::iter::repeat_n('x', min - have));
                }
            }
            if let Some(max) = num("maxLength").map(|m| m as usize)
                && let Some((i, _)) = text.char_indices().nth(max)
            {
                text.truncate(i);
            }
            Value::String(text)
        }
    })
}

/// A value as text in a path, header or simple list: scalars as written,
/// arrays and objects (`k,v,...`) joined with `sep`.
fn joined(v: &Value, sep: &str) -> String {
    match v {
        Value::Array(a) => a.iter().map(scalar_text).collect::<Vec<_>>().join(sep),
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| [k.clone(), scalar_text(v)])
            .collect::<Vec<_>>()
            .join(sep),
        other => scalar_text(other),
    }
}

/// Query pairs of a parameter: OpenAPI 3's `form` style (arrays repeated
/// unless `explode: false`, objects as their properties), Swagger 2's
/// `collectionFormat`.
fn query_pairs(doc: &ApiDoc, p: &Param<'_>) -> Vec<(String, String)> {
    let name = p.name.clone();
    let explode = p
        .spec
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let (repeat, sep) = match doc.dialect {
        Dialect::OpenApi3 => match p.spec.get("style").and_then(Value::as_str) {
            Some("spaceDelimited") => (false, " "),
            Some("pipeDelimited") => (false, "|"),
            Some("deepObject") => {
                if let Value::Object(m) = &p.value {
                    return m
                        .iter()
                        .map(|(k, v)| (format!("{name}[{k}]"), scalar_text(v)))
                        .collect();
                }
                (explode, ",")
            }
            _ => (explode, ","),
        },
        Dialect::Swagger2 => match p.spec.get("collectionFormat").and_then(Value::as_str) {
            Some("multi") => (true, ","),
            Some("ssv") => (false, " "),
            Some("tsv") => (false, "\t"),
            Some("pipes") => (false, "|"),
            _ => (false, ","),
        },
    };
    match &p.value {
        Value::Array(a) if repeat => a.iter().map(|v| (name.clone(), scalar_text(v))).collect(),
        Value::Object(m) if repeat => m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect(),
        v => vec![(name, joined(v, sep))],
    }
}

/// The media types a body could be sent as, most useful first.
fn media_rank(ct: &str) -> u8 {
    let ct = ct.to_ascii_lowercase();
    if ct.starts_with("application/json") {
        0
    } else if ct.contains("+json") || ct.contains("/json") {
        1
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        2
    } else if ct.starts_with("multipart/form-data") {
        3
    } else if ct.starts_with("text/plain") {
        4
    } else if ct.contains('*') {
        6
    } else {
        5
    }
}

/// OpenAPI 3 `requestBody`: (content type, body), `None` when it has no
/// content.
fn body_v3(doc: &ApiDoc, body: &Value) -> Result<Option<(String, String)>, String> {
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some((ct, media)) = content.iter().min_by_key(|(ct, _)| media_rank(ct)) else {
        return Ok(None);
    };
    let media = doc.resolve(media).ok_or("unresolvable $ref in its body")?;
    let value = media_value(doc, media);
    let schema = media.get("schema").and_then(|s| doc.resolve(s));
    Ok(Some(encode_body(
        doc,
        ct,
        &value,
        schema,
        media.get("encoding"),
    )))
}

/// Swagger 2: a `body` parameter, or `formData` parameters.
fn body_v2(doc: &ApiDoc, op: &Value, params: &[Param<'_>]) -> Option<(String, String)> {
    let consumes: Vec<String> = op
        .get("consumes")
        .or_else(|| doc.root.get("consumes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = params.iter().find(|p| p.location == In::Body) {
        let ct = consumes
            .iter()
            .min_by_key(|c| media_rank(c))
            .cloned()
            .unwrap_or_else(|| "application/json".into());
        let schema = p.spec.get("schema").and_then(|s| doc.resolve(s));
        return Some(encode_body(doc, &ct, &p.value, schema, None));
    }
    let form: Vec<&Param<'_>> = params
        .iter()
        .filter(|p| p.location == In::FormData)
        .collect();
    if form.is_empty() {
        return None;
    }
    let files = form
        .iter()
        .any(|p| p.spec.get("type").and_then(Value::as_str) == Some("file"));
    let multipart_wanted = files
        || consumes
            .iter()
            .any(|c| c.starts_with("multipart/form-data"));
    if multipart_wanted {
        let fields = form
            .iter()
            .map(|p| {
                let v = if p.spec.get("type").and_then(Value::as_str) == Some("file") {
                    probe_file("application/octet-stream")
                } else {
                    FieldValue::Text(joined(&p.value, ","))
                };
                (p.name.clone(), v)
            })
            .collect::<Vec<_>>();
        let (boundary, body) = multipart(&fields);
        return Some((format!("multipart/form-data; boundary={boundary}"), body));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|p| (p.name.clone(), joined(&p.value, ","))))
        .finish();
    Some(("application/x-www-form-urlencoded".into(), body))
}

fn probe_file(content_type: &str) -> FieldValue {
    FieldValue::File {
        filename: "slimd-probe.bin".into(),
        content_type: content_type.into(),
        data: "slimd probe upload\n".into(),
    }
}

/// Encodes `value` as `ct`: JSON for JSON and wildcard types, form fields
/// for urlencoded and multipart (properties of format `binary`/`base64`
/// become file parts), text as is.
fn encode_body(
    doc: &ApiDoc,
    ct: &str,
    value: &Value,
    schema: Option<&Value>,
    encoding: Option<&Value>,
) -> (String, String) {
    let rank = media_rank(ct);
    let field_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
        other => scalar_text(other),
    };
    let pairs = |v: &Value| -> Vec<(String, Value)> {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            other => vec![("value".into(), other.clone())],
        }
    };
    match rank {
        2 => {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs(value) {
                match &v {
                    Value::Array(items) => {
                        for i in items {
                            s.append_pair(&k, &field_text(i));
                        }
                    }
                    _ => {
                        s.append_pair(&k, &field_text(&v));
                    }
                }
            }
            ("application/x-www-form-urlencoded".into(), s.finish())
        }
        3 => {
            let props = schema.and_then(|s| s.get("properties"));
            let fields = pairs(value)
                .into_iter()
                .map(|(k, v)| {
                    let prop = props.and_then(|p| p.get(&k)).and_then(|p| doc.resolve(p));
                    let format = prop.and_then(|p| p.get("format")).and_then(Value::as_str);
                    let media = prop
                        .and_then(|p| p.get("contentMediaType"))
                        .and_then(Value::as_str);
                    let declared = encoding
                        .and_then(|e| e.get(&k))
                        .and_then(|e| e.get("contentType"))
                        .and_then(Value::as_str);
                    let field = if matches!(format, Some("binary" | "base64")) || media.is_some() {
                        probe_file(declared.or(media).unwrap_or("application/octet-stream"))
                    } else {
                        FieldValue::Text(field_text(&v))
                    };
                    (k, field)
                })
                .collect::<Vec<_>>();
            let (boundary, body) = multipart(&fields);
            (format!("multipart/form-data; boundary={boundary}"), body)
        }
        0 | 1 | 6 => {
            let ct = if rank == 6 { "application/json" } else { ct };
            (ct.to_string(), value.to_string())
        }
        _ => (ct.to_string(), field_text(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_operations: 100,
        max_body: 1 << 16,
    };

    fn ops(text: &str) -> Generated {
        operations(&ApiDoc::parse(text.as_bytes()).unwrap(), LIMITS)
    }

    fn find<'a>(g: &'a Generated, label: &str) -> &'a Operation {
        g.operations
            .iter()
            .find(|o| o.label == label)
            .unwrap_or_else(|| panic!("no {label} in {:?}", g.operations))
    }

    const PETSTORE_V3: &str = r##"{
      "openapi": "3.0.3",
      "info": {"title": "t", "version": "1"},
      "servers": [{"url": "http://localhost:{port}/api/{version}",
                   "variables": {"port": {"default": "8080"}, "version": {"default": "v1"}}}],
      "paths": {
        "/pets": {
          "get": {"operationId": "listPets", "parameters": [
             {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 5, "maximum": 10}},
             {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": ["cat", "dog"]}}},
             {"name": "sort", "in": "query", "example": "name asc"},
             {"name": "X-Trace", "in": "header", "schema": {"type": "string", "format": "uuid"}},
             {"name": "Accept", "in": "header", "schema": {"type": "string"}},
             {"name": "session", "in": "cookie", "schema": {"type": "string", "default": "s1"}}
          ]},
          "post": {"operationId": "createPet", "requestBody": {"$ref": "#/components/requestBodies/Pet"}}
        },
        "/pets/{petId}": {
          "parameters": [{"$ref": "#/components/parameters/PetId"}],
          "get": {"operationId": "showPet"},
          "delete": {"operationId": "deletePet"},
          "put": {"operationId": "updatePet", "requestBody": {"required": false, "content": {
             "application/xml": {"schema": {"type": "string"}},
             "application/json": {"examples": {"b": {"$ref": "#/components/examples/Rex"}}}}}}
        },
        "/pets/{petId}/photo": {
          "post": {"operationId": "uploadPhoto", "parameters": [
             {"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}, "examples": {"one": {"value": "a b/c"}}}],
           "requestBody": {"content": {"multipart/form-data": {
             "schema": {"type": "object", "properties": {
               "caption": {"type": "string", "maxLength": 3},
               "file": {"type": "string", "format": "binary"}}},
             "encoding": {"file": {"contentType": "image/png"}}}}}}
        },
        "/search": {
          "post": {"operationId": "search", "requestBody": {"content": {
             "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
               "q": {"type": "string", "example": "x y"}, "page": {"type": "integer", "exclusiveMinimum": true, "minimum": 1},
               "kinds": {"type": "array", "items": {"enum": ["a", "b"]}}}}}}}}
        },
        "x-extension": {}
      },
      "components": {
        "parameters": {"PetId": {"name": "petId", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Id"}}},
        "schemas": {
          "Id": {"type": "integer", "format": "int64", "enum": [7, 8]},
          "Pet": {"type": "object", "required": ["name"], "properties": {
             "id": {"type": "integer", "readOnly": true},
             "name": {"type": "string"},
             "born": {"type": "string", "format": "date"},
             "kind": {"$ref": "#/components/schemas/Kind"},
             "owner": {"allOf": [{"$ref": "#/components/schemas/Person"}, {"type": "object", "properties": {"vip": {"type": "boolean"}}}]},
             "tags": {"type": "array", "minItems": 2, "items": {"type": "string"}},
             "weight": {"type": "number", "default": 4.5},
             "parent": {"$ref": "#/components/schemas/Pet"}}},
          "Kind": {"oneOf": [{"type": "null"}, {"type": "string", "enum": ["cat"]}]},
          "Person": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
        },
        "requestBodies": {"Pet": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}},
        "examples": {"Rex": {"value": {"name": "Rex"}}}
      }
    }"##;

    #[test]
    fn openapi3_every_operation_with_values_from_the_document() {
        let g = ops(PETSTORE_V3);
        let labels: Vec<&str> = g.operations.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "createPet",
                "listPets",
                "updatePet",
                "showPet",
                "uploadPhoto",
                "search",
                "deletePet"
            ]
        );
        assert!(g.notes.is_empty(), "{:?}", g.notes);

        let list = find(&g, "listPets");
        assert_eq!(list.method, "GET");
        assert_eq!(list.path, "/api/v1/pets?limit=5&tags=cat&sort=name+asc");
        assert_eq!(
            list.headers["X-Trace"],
            "00000000-0000-4000-8000-000000000001"
        );
        assert_eq!(list.headers["Cookie"], "session=s1");
        assert!(!list.headers.contains_key("Accept"));
        assert_eq!(list.body, None);

        let create = find(&g, "createPet");
        assert_eq!(create.path, "/api/v1/pets");
        assert_eq!(create.headers["Content-Type"], "application/json");
        let body: Value = serde_json::from_str(create.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["name"], "probe");
        assert_eq!(body["born"], "2024-01-01");
        assert_eq!(body["kind"], "cat");
        assert_eq!(body["owner"]["email"], "probe@example.com");
        assert_eq!(body["owner"]["vip"], true);
        assert_eq!(body["tags"], serde_json::json!(["probe", "probe"]));
        assert_eq!(body["weight"], 4.5);
        assert!(body.get("id").is_none(), "readOnly properties are not sent");
        // A recursive reference ends where it loops back.
        assert!(body.get("parent").is_none(), "{body}");

        assert_eq!(find(&g, "showPet").path, "/api/v1/pets/7");
        let update = find(&g, "updatePet");
        assert_eq!(update.method, "PUT");
        assert_eq!(update.body.as_deref(), Some(r#"{"name":"Rex"}"#));
        assert_eq!(find(&g, "deletePet").method, "DELETE");

        let upload = find(&g, "uploadPhoto");
        assert_eq!(upload.path, "/api/v1/pets/a%20b%2Fc/photo");
        let ct = &upload.headers["Content-Type"];
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let body = upload.body.as_deref().unwrap();
        assert!(body.contains("name=\"caption\"\r\n\r\npro\r\n"), "{body}");
        assert!(
            body.contains(
                "name=\"file\"; filename=\"slimd-probe.bin\"\r\nContent-Type: image/png\r\n"
            ),
            "{body}"
        );
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));

        let search = find(&g, "search");
        assert_eq!(
            search.headers["Content-Type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(search.body.as_deref(), Some("kinds=a&page=2&q=x+y"));
    }

    #[test]
    fn openapi31_yaml_types_lists_const_and_examples_arrays() {
        let g = ops(r#"
openapi: 3.1.0
info: {title: t, version: "1"}
servers:
  - url: /v2/
paths:
  /things/{kind}:
    post:
      operationId: make
      parameters:
        - name: kind
          in: path
          required: true
          schema: {const: gadget}
        - name: n
          in: query
          schema: {type: [integer, "null"], exclusiveMinimum: 3, multipleOf: 5}
        - name: ids
          in: query
          explode: false
          schema: {type: array, items: {type: integer}, examples: [[1, 2]]}
        - name: filter
          in: query
          style: deepObject
          schema: {type: object, properties: {a: {type: string}}}
      requestBody:
        content:
          application/vnd.api+json:
            schema:
              type: object
              properties:
                note: {type: [string, "null"], minLength: 7}
                flag: {type: boolean}
"#);
        let op = find(&g, "make");
        assert_eq!(
            op.path,
            "/v2/things/gadget?n=5&ids=1%2C2&filter%5Ba%5D=probe"
        );
        assert_eq!(op.headers["Content-Type"], "application/vnd.api+json");
        assert_eq!(
            op.body.as_deref(),
            Some(r#"{"flag":true,"note":"probexx"}"#)
        );
    }

    #[test]
    fn swagger2_body_form_and_parameter_values() {
        let g = ops(r##"{
          "swagger": "2.0",
          "host": "localhost:8000",
          "basePath": "/v1/",
          "consumes": ["application/json"],
          "paths": {
            "/users": {
              "post": {"operationId": "addUser", "parameters": [
                {"name": "user", "in": "body", "schema": {"$ref": "#/definitions/User"}}]},
              "get": {"operationId": "findUsers", "parameters": [
                {"name": "status", "in": "query", "type": "array", "items": {"type": "string", "enum": ["active", "gone"]}, "collectionFormat": "multi"},
                {"name": "names", "in": "query", "type": "array", "items": {"type": "string"}, "x-example": ["a", "b"]},
                {"name": "page", "in": "query", "type": "integer", "default": 3}]}
            },
            "/users/{id}/avatar": {
              "post": {"operationId": "avatar", "consumes": ["multipart/form-data"], "parameters": [
                {"name": "id", "in": "path", "type": "integer", "required": true},
                {"name": "caption", "in": "formData", "type": "string"},
                {"name": "image", "in": "formData", "type": "file"}]}
            },
            "/login": {
              "post": {"operationId": "login", "consumes": ["application/x-www-form-urlencoded"], "parameters": [
                {"name": "user", "in": "formData", "type": "string", "format": "email"},
                {"name": "remember", "in": "formData", "type": "boolean"}]}
            }
          },
          "definitions": {"User": {"type": "object", "properties": {
             "name": {"type": "string", "example": "ann"}, "age": {"type": "integer", "minimum": 18}}}}
        }"##);
        let doc =
            ApiDoc::parse(b"{\"swagger\": \"2.0\", \"host\": \"h:8000\", \"paths\": {}}").unwrap();
        assert_eq!(doc.dialect, Dialect::Swagger2);
        assert_eq!(doc.server_port(), Some(8000));

        let add = find(&g, "addUser");
        assert_eq!(add.path, "/v1/users");
        assert_eq!(add.body.as_deref(), Some(r#"{"age":18,"name":"ann"}"#));
        assert_eq!(add.headers["Content-Type"], "application/json");
        assert_eq!(
            find(&g, "findUsers").path,
            "/v1/users?status=active&names=a%2Cb&page=3"
        );
        let avatar = find(&g, "avatar");
        assert_eq!(avatar.path, "/v1/users/1/avatar");
        let body = avatar.body.as_deref().unwrap();
        assert!(body.contains("name=\"caption\"\r\n\r\nprobe\r\n"), "{body}");
        assert!(body.contains("filename=\"slimd-probe.bin\""), "{body}");
        let login = find(&g, "login");
        assert_eq!(
            login.body.as_deref(),
            Some("user=probe%40example.com&remember=true")
        );
    }

    #[test]
    fn recursive_types_stay_small() {
        let g = ops(
            r##"{"openapi": "3.0.0", "paths": {"/tree": {"post": {"operationId": "plant",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
              "components": {"schemas": {"Node": {"type": "object", "required": ["value", "left"],
                "properties": {"value": {"type": "string"}, "left": {"$ref": "#/components/schemas/Node"},
                  "right": {"$ref": "#/components/schemas/Node"},
                  "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}}"##,
        );
        assert_eq!(
            find(&g, "plant").body.as_deref(),
            Some(r#"{"kids":[],"left":{},"value":"probe"}"#)
        );
    }

    #[test]
    fn rejects_what_is_not_an_api_description() {
        assert!(matches!(
            ApiDoc::parse(b"<html>"),
            Err(SpecError::NotApiDoc | SpecError::Syntax(_))
        ));
        assert_eq!(
            ApiDoc::parse(br#"{"openapi": "2.5", "paths": {}}"#),
            Err(SpecError::NotApiDoc)
        );
        assert_eq!(
            ApiDoc::parse(br#"{"openapi": "3.0.0"}"#),
            Err(SpecError::NoPaths)
        );
        assert!(matches!(ApiDoc::parse(b"{: ["), Err(SpecError::Syntax(_))));
        // YAML numbers for versions are read as text.
        assert_eq!(
            ApiDoc::parse(b"swagger: 2.0\npaths: {}\n").unwrap().dialect,
            Dialect::Swagger2
        );
    }

    #[test]
    fn limits_and_broken_references_are_reported() {
        let text = r##"{"openapi": "3.0.0", "paths": {
            "/a": {"get": {}, "post": {"requestBody": {"content": {"text/plain": {"example": "0123456789"}}}}},
            "/b": {"$ref": "#/nowhere"},
            "/c": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}},
            "/d/{x}": {"get": {}}
        }}"##;
        let doc = ApiDoc::parse(text.as_bytes()).unwrap();
        let g = operations(
            &doc,
            Limits {
                max_operations: 2,
                max_body: 5,
            },
        );
        assert_eq!(
            g.operations
                .iter()
                .map(|o| format!("{} {}", o.method, o.path))
                .collect::<Vec<_>>(),
            vec!["GET /a", "GET /c"]
        );
        let notes = g.notes.join("\n");
        assert!(
            notes.contains("POST /a: its body would be 10 bytes (limit 5), skipped"),
            "{notes}"
        );
        assert!(notes.contains("/b: unresolvable $ref"), "{notes}");
        assert!(
            notes.contains("2 of 4 operations requested (max_operations)"),
            "{notes}"
        );
        // An undeclared path parameter still gets a value.
        let g = operations(&doc, LIMITS);
        assert!(g.operations.iter().any(|o| o.path == "/d/1"));
    }
}
