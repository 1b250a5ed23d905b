//! The socket API's request parsing, fed arbitrary bytes as a body: the
//! session request, the host command results and any JSON body
//! (`slimd::api::limits`). Oracle: typed errors only (no panic, no
//! unbounded work), and what is accepted is within the limits: a parsed
//! request has at most `MAX_COMMANDS` commands and every string of it is
//! bounded, and it serializes and parses back to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slimd::api::limits::{
    MAX_COMMANDS, MAX_STRING, parse, parse_host_results, parse_session_request,
};
use slimd::api::types::{SessionRequest, XrayRequest};

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(0) => {
            if let Ok(r) = parse_host_results(&data[1..]) {
                assert!(r.records.len() <= MAX_COMMANDS);
            }
        }
        Some(1) => {
            if let Ok(x) = parse::<XrayRequest>(&data[1..]) {
                assert!(x.image.len() <= MAX_STRING);
            }
        }
        _ => {
            if let Ok(req) = parse_session_request(data) {
                let p = &req.probes;
                assert!(p.exec_probes.len() + p.probe_cmds.len() <= MAX_COMMANDS);
                assert!(req.image.len() <= MAX_STRING);
                for s in p.exec_probes.iter().chain(&p.probe_cmds).chain(&req.run.mounts) {
                    assert!(s.len() <= MAX_STRING);
                }
                let again = serde_json::to_vec(&req).expect("a parsed request serializes");
                let back: SessionRequest =
                    parse_session_request(&again).expect("a parsed request parses again");
                assert_eq!(back, req);
            }
        }
    }
});
