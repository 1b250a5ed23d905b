//! Bounded requests: what the daemon accepts from a client, checked before
//! anything acts on it. A body has a size limit ([`MAX_BODY`], 413 over
//! it); a JSON body is parsed into a value first, whose strings and lists
//! are bounded ([`MAX_STRING`], [`MAX_LIST`], [`MAX_COMMANDS`]), then into
//! its type with the path of the first bad field named (400). Pure: the
//! fuzz target `api_request` feeds it arbitrary bytes.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::SessionRequest;
use crate::probe::HostCommandResults;

/// Bytes of a request body (probe files and API documents travel in it).
pub const MAX_BODY: usize = 8 << 20;
/// Bytes of a string, except the fields [`long_field`] names.
pub const MAX_STRING: usize = 4096;
/// Entries of a list.
pub const MAX_LIST: usize = 1024;
/// Exec probes and host commands of one request, together.
pub const MAX_COMMANDS: usize = 64;
/// Bytes of a captured output's text a client may report.
pub const MAX_OUTPUT_TEXT: usize = 64 * 1024;
/// Bytes of each file of a Compose bundle (`slim build --compose`): the
/// Compose file, its `.env` and each `env_file:` (all within [`MAX_BODY`]).
pub const MAX_COMPOSE_FILE: usize = 1 << 20;

/// Why a request body was refused: the field and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad request: {}: {message}", if field.is_empty() { "the body" } else { field.as_str() })]
pub struct RequestError {
    /// `probes.exec_probes[2]`, empty for the whole body.
    pub field: String,
    pub message: String,
}

/// A `POST /v1/sessions` body.
pub fn parse_session_request(body: &[u8]) -> Result<SessionRequest, RequestError> {
    let req: SessionRequest = parse(body)?;
    let commands = req.probes.exec_probes.len() + req.probes.probe_cmds.len();
    if commands > MAX_COMMANDS {
        return Err(RequestError {
            field: "probes".into(),
            message: format!(
                "{commands} exec probes and host commands; at most {MAX_COMMANDS} together"
            ),
        });
    }
    Ok(req)
}

/// A `POST /v1/sessions/{id}/host-results` body.
pub fn parse_host_results(body: &[u8]) -> Result<HostCommandResults, RequestError> {
    let res: HostCommandResults = parse(body)?;
    if res.records.len() > MAX_COMMANDS {
        return Err(RequestError {
            field: "records".into(),
            message: format!("{} records; at most {MAX_COMMANDS}", res.records.len()),
        });
    }
    Ok(res)
}

/// Any JSON body: bounded, then typed, naming the field that does not fit.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    if body.len() > MAX_BODY {
        return Err(RequestError {
            field: String::new(),
            message: format!("{} bytes; at most {MAX_BODY}", body.len()),
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError {
        field: String::new(),
        message: format!("not JSON: {e}"),
    })?;
    bounded(&value, &mut String::new())?;
    serde_path_to_error::deserialize(value).map_err(|e| RequestError {
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// Strings allowed to be long: probe files, API documents, captured
/// output, the files of a Compose bundle.
fn long_field(path: &str) -> Option<usize> {
    const BUNDLE: &str = "compose.bundle.";
    if let Some(field) = path.strip_prefix(BUNDLE)
        && (field == "text" || field == "dot_env" || field.starts_with("env_files."))
    {
        return Some(MAX_COMPOSE_FILE);
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    match last {
        "http_probe_file" | "contents" => Some(MAX_BODY),
        "text" => Some(MAX_OUTPUT_TEXT),
        _ => None,
    }
}

fn bounded(v: &Value, path: &mut String) -> Result<(), RequestError> {
    let err = |path: &str, message: String| RequestError {
        field: path.to_string(),
        message,
    };
    match v {
        Value::String(s) => {
            let max = long_field(path).unwrap_or(MAX_STRING);
            if s.len() > max {
                return Err(err(path, format!("{} bytes; at most {max}", s.len())));
            }
        }
        Value::Array(items) => {
            if items.len() > MAX_LIST {
                return Err(err(
                    path,
                    format!("{} entries; at most {MAX_LIST}", items.len()),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                bounded(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            if map.len() > MAX_LIST {
                return Err(err(path, format!("{} keys; at most {MAX_LIST}", map.len())));
            }
            for (k, item) in map {
                if k.len() > MAX_STRING {
                    return Err(err(path, format!("a key of {} bytes", k.len())));
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                bounded(item, path)?;
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_request_parses() {
        let r =
            parse_session_request(br#"{"image":"a:b","probes":{"exec_probes":["true"]}}"#).unwrap();
        assert_eq!(r.image, "a:b");
    }

    #[test]
    fn a_malformed_field_is_named() {
        let e =
            parse_session_request(br#"{"image":"a","probes":{"exec_probes":[1]}}"#).unwrap_err();
        assert_eq!(e.field, "probes.exec_probes[0]");
        assert!(e.to_string().contains("probes.exec_probes[0]"), "{e}");
        let e = parse_session_request(br#"{"image":"a","detach":"yes"}"#).unwrap_err();
        assert_eq!(e.field, "detach");
        let e = parse_session_request(b"{\"image\":").unwrap_err();
        assert_eq!(e.field, "");
        assert!(e.message.starts_with("not JSON"), "{e}");
    }

    #[test]
    fn strings_lists_and_commands_are_bounded() {
        let long = "x".repeat(MAX_STRING + 1);
        let e = parse_session_request(format!(r#"{{"image":"{long}"}}"#).as_bytes()).unwrap_err();
        assert_eq!(e.field, "image");
        let e = parse_session_request(
            format!(r#"{{"image":"a","run":{{"env":["{long}"]}}}}"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "run.env[0]");
        // A probe file may be long.
        let file = format!(r#"{{"image":"a","probes":{{"http_probe_file":"{long}"}}}}"#);
        assert!(parse_session_request(file.as_bytes()).is_ok());
        let many: Vec<String> = (0..=MAX_COMMANDS).map(|i| format!("\"c{i}\"")).collect();
        let e = parse_session_request(
            format!(
                r#"{{"image":"a","probes":{{"probe_cmds":[{}]}}}}"#,
                many.join(",")
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "probes");
        let list: Vec<&str> = vec!["1"; MAX_LIST + 1];
        let e = parse_session_request(
            format!(r#"{{"image":"a","run":{{"expose":[{}]}}}}"#, list.join(",")).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "run.expose");
    }

    #[test]
    fn a_compose_bundle_may_carry_its_files_within_a_bound() {
        let big = "x".repeat(MAX_STRING * 4);
        let req = |field: &str, len: usize| {
            let text = "x".repeat(len);
            let files = if field == "env_files" {
                format!(r#""env_files":{{"./web.env":"{text}"}}"#)
            } else {
                format!(r#""{field}":"{text}""#)
            };
            format!(r#"{{"image":"compose:c.yml","compose":{{"bundle":{{{files}}}}}}}"#)
        };
        for field in ["text", "dot_env", "env_files"] {
            let r = parse_session_request(req(field, big.len()).as_bytes()).unwrap();
            assert!(r.compose.is_some(), "{field}");
            let e = parse_session_request(req(field, MAX_COMPOSE_FILE + 1).as_bytes()).unwrap_err();
            assert!(e.field.starts_with("compose.bundle."), "{field}: {e}");
        }
        // Other strings of the bundle keep the usual bound.
        let e = parse_session_request(
            format!(r#"{{"image":"a","compose":{{"bundle":{{"file":"{big}"}}}}}}"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "compose.bundle.file");
    }

    #[test]
    fn host_results_are_bounded_too() {
        let ok = br#"{"round":0,"records":[{"cmd":"x","exit_code":0,"stdout":{"text":"","len":0,"sha256":"","truncated":false},"stderr":{"text":"","len":0,"sha256":"","truncated":false},"timed_out":false,"error":null,"ignore_output":false,"elapsed_ms":1}]}"#;
        assert_eq!(parse_host_results(ok).unwrap().records.len(), 1);
        let e = parse_host_results(br#"{"round":"x","records":[]}"#).unwrap_err();
        assert_eq!(e.field, "round");
    }
}
