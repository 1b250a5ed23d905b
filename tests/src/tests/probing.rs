//! End-to-end test of the probing that finds more by itself (issue 11,
//! part 4): HTML forms (urlencoded and multipart), OpenAPI documents (at
//! the usual path, and one only `--http-probe-apispec` names) and an HTTPS
//! port with a self-signed certificate, on the probing fixture (see
//! `crate::ProbingApp`). With `--granularity file` the slim image keeps
//! only the handler modules a probe reached: every form and operation must
//! answer exactly like the original on both ports, and, as the control,
//! the operations of the unnamed document must fail when the flag is left
//! out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::{ProbingApp, docker};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use slimd::probe::forms::{FieldValue, multipart};
use slimd::probe::http::send;
use slimd::probe::{Endpoint, HttpRequest};

/// One request the test sends itself, with values other than the probes'
/// (the handlers must work, not only replay what was probed).
struct Check {
    req: HttpRequest,
    /// Only the admin document (`--http-probe-apispec`) reaches it.
    admin: bool,
}

fn checks(port: u16, tls: bool) -> Vec<Check> {
    let req = |method: &str, path: &str, ct: Option<&str>, body: Option<String>| {
        let mut r = HttpRequest::get(path, port);
        r.method = method.into();
        r.tls = tls;
        if let Some(ct) = ct {
            r.headers.insert("Content-Type".into(), ct.into());
        }
        r.body = body;
        r
    };
    let (boundary, upload) = multipart(&[
        ("title".into(), FieldValue::Text("minutes".into())),
        (
            "doc".into(),
            FieldValue::File {
                filename: "notes.txt".into(),
                content_type: "text/plain".into(),
                data: "first line\nsecond line\n".into(),
            },
        ),
    ]);
    let json = Some("application/json");
    let plain = |r| Check {
        req: r,
        admin: false,
    };
    let admin = |r| Check {
        req: r,
        admin: true,
    };
    vec![
        plain(req("GET", "/", None, None)),
        plain(req(
            "POST",
            "/feedback",
            Some("application/x-www-form-urlencoded"),
            Some("name=Ann&email=ann%40example.com&rating=1&comment=Good+work".into()),
        )),
        plain(req(
            "POST",
            "/upload",
            Some(&format!("multipart/form-data; boundary={boundary}")),
            Some(upload),
        )),
        plain(req("GET", "/api/stats?values=2,4,9", None, None)),
        plain(req(
            "POST",
            "/api/slug",
            json,
            Some(r#"{"text": "Crème Brûlée"}"#.into()),
        )),
        plain(req("GET", "/api/items/3", None, None)),
        plain(req(
            "PUT",
            "/api/config",
            json,
            Some(r#"{"name": "x", "debug": false}"#.into()),
        )),
        plain(req("PUT", "/api/config", None, None)),
        admin(req(
            "POST",
            "/admin/report",
            json,
            Some(r#"{"text": "Wrap this sentence at ten columns", "width": 10}"#.into()),
        )),
        admin(req("GET", "/admin/colors/coral", None, None)),
    ]
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    label: String,
    admin: bool,
    status: u16,
    body: String,
}

/// Runs `image` with both ports published, waits until both answer, and
/// sends every check on both ports.
fn answers(image: &str) -> Result<Vec<Answer>> {
    let id = docker([
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1::{}", ProbingApp::HTTP_PORT),
        "-p",
        &format!("127.0.0.1::{}", ProbingApp::HTTPS_PORT),
        image,
    ])?;
    let id = id.trim().to_string();
    let result = (|| {
        let host_port = |p: u16| -> Result<u16> {
            docker(["port", &id, &p.to_string()])?
                .lines()
                .next()
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
                .with_context(|| format!("no published port for {p}"))
        };
        let eps = [
            (
                Endpoint::new(
                    "127.0.0.1",
                    host_port(ProbingApp::HTTP_PORT)?,
                    ProbingApp::HTTP_PORT,
                ),
                false,
            ),
            (
                Endpoint::new(
                    "127.0.0.1",
                    host_port(ProbingApp::HTTPS_PORT)?,
                    ProbingApp::HTTPS_PORT,
                ),
                true,
            ),
        ];
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(async {
            let mut out = Vec::new();
            for (ep, tls) in &eps {
                // The app is up once / answers (docker-proxy accepts earlier).
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut root = HttpRequest::get("/", ep.container_port);
                root.tls = *tls;
                loop {
                    match send(ep, &root, Duration::from_secs(5), 0).await {
                        Ok(r) if r.status == 200 => break,
                        r if Instant::now() > deadline => {
                            bail!(
                                "{image} never answered GET / on {}: {r:?}",
                                ep.container_port
                            )
                        }
                        _ => tokio::time::sleep(Duration::from_millis(250)).await,
                    }
                }
                for c in checks(ep.container_port, *tls) {
                    let r = send(ep, &c.req, Duration::from_secs(20), 1 << 16)
                        .await
                        .map_err(|e| anyhow::anyhow!("{image} {}: {e}", c.req.label()))?;
                    out.push(Answer {
                        label: c.req.label(),
                        admin: c.admin,
                        status: r.status,
                        body: String::from_utf8_lossy(&r.body_head).into_owned(),
                    });
                }
            }
            Ok(out)
        })
    })();
    let logs = docker(["logs", &id]).unwrap_or_default();
    let _ = docker(["rm", "-f", &id]);
    result.with_context(|| format!("{image} container logs: {logs}"))
}

/// `slim build IMAGE --tag TARGET --force --granularity file EXTRA...`,
/// which must pass verify; returns the session's report.
fn build(d: &Daemon, image: &str, target: &str, extra: &[&str]) -> Result<Value> {
    let mut args = vec![image, "--tag", target, "--force", "--granularity", "file"];
    args.extend_from_slice(extra);
    let (s, secs) = d.build_verified(&args)?;
    println!("{target}: built and verified in {secs:.1} s");
    let id = s["id"].as_str().context("no session id")?;
    let rep = d.slim(&["--json", "report", id])?;
    serde_json::from_slice(&rep.stdout).context("report JSON")
}

/// The probe's HTTP records: (origin kind, `METHOD path on port`, tls, status).
fn probed(report: &Value) -> Vec<(String, String, bool, Option<u64>)> {
    report["probe"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let q = &r["request"];
            (
                r["origin"]["kind"].as_str().unwrap_or("").to_string(),
                format!(
                    "{} {} on {}",
                    q["method"].as_str().unwrap_or(""),
                    q["path"].as_str().unwrap_or(""),
                    q["port"]
                ),
                q["tls"].as_bool().unwrap_or(false),
                r["status"].as_u64(),
            )
        })
        .collect()
}

fn kept(report: &Value, path: &str) -> bool {
    report["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|k| k["path"] == path)
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn probing_finds_forms_openapi_and_https_and_their_code_is_kept() -> Result<()> {
    let image = ProbingApp::ensure()?;
    let d = Daemon::start("probing")?;

    let original = answers(image)?;
    for a in &original {
        ensure!(
            a.status == 200,
            "original {}: {} {}",
            a.label,
            a.status,
            a.body
        );
    }
    let body = |label: &str| -> &str {
        original
            .iter()
            .find(|a| a.label == label)
            .map_or("", |a| a.body.as_str())
    };
    ensure!(body("POST /upload on 8443").contains("doc: file notes.txt, 23 bytes"));
    ensure!(body("POST /api/slug on 8000").contains("creme-brulee"));
    ensure!(body("POST /admin/report on 8443").contains("Wrap this\nsentence"));

    // With the flag: every form, every operation of both documents, on both
    // ports, the HTTPS one over TLS.
    let target = "slimd-e2e/probing-app:slim";
    let report = build(
        &d,
        image,
        target,
        &["--http-probe-apispec", ProbingApp::ADMIN_SPEC_PATH],
    )?;
    let records = probed(&report);
    let shown = || {
        records
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut by_kind: BTreeMap<(&str, u16, bool), Vec<&str>> = BTreeMap::new();
    for (kind, label, tls, status) in &records {
        ensure!(
            *status == Some(200) || kind == "api_spec",
            "{label}: {status:?}\n{}",
            shown()
        );
        let port: u16 = label.rsplit(' ').next().unwrap_or("0").parse()?;
        ensure!(
            *tls == (port == ProbingApp::HTTPS_PORT),
            "{label}: tls={tls}\n{}",
            shown()
        );
        by_kind
            .entry((kind.as_str(), port, *tls))
            .or_default()
            .push(label.as_str());
    }
    for port in [ProbingApp::HTTP_PORT, ProbingApp::HTTPS_PORT] {
        let tls = port == ProbingApp::HTTPS_PORT;
        let forms = by_kind
            .get(&("form", port, tls))
            .cloned()
            .unwrap_or_default();
        ensure!(
            forms
                == [
                    format!("POST /feedback on {port}"),
                    format!("POST /upload on {port}")
                ],
            "forms on {port}: {forms:?}\n{}",
            shown()
        );
        let ops = by_kind
            .get(&("api_operation", port, tls))
            .cloned()
            .unwrap_or_default();
        for want in [
            "POST /admin/report",
            "GET /admin/colors/teal",
            "PUT /api/config",
            "GET /api/items/2",
            "POST /api/slug",
            "GET /api/stats?values=1%2C2%2C3%2C4",
        ] {
            let want = format!("{want} on {port}");
            ensure!(
                ops.contains(&want.as_str()),
                "no {want}: {ops:?}\n{}",
                shown()
            );
        }
    }
    for m in ProbingApp::ADMIN_MODULES {
        ensure!(kept(&report, m), "{m} not kept");
    }
    let slim = answers(target)?;
    ensure!(
        slim == original,
        "the slim image answers differently:\n{}",
        diff(&original, &slim)
    );

    // Control: without the flag the admin document is never read, its
    // handlers are not kept, and its operations fail in the slim image;
    // everything else still answers like the original.
    let control = "slimd-e2e/probing-app:control";
    let report = build(&d, image, control, &[])?;
    ensure!(
        !probed(&report).iter().any(|r| r.1.contains("/admin/")),
        "the control probed the admin API: {:?}",
        probed(&report)
    );
    for m in ProbingApp::ADMIN_MODULES {
        ensure!(!kept(&report, m), "{m} kept without the flag");
    }
    let without = answers(control)?;
    for (o, c) in original.iter().zip(&without) {
        if o.admin {
            ensure!(
                c.status == 500 && c.body.contains("ModuleNotFoundError"),
                "control {}: {} {} (expected the missing handler's 500)",
                c.label,
                c.status,
                c.body
            );
        } else {
            ensure!(o == c, "control {}: {c:?}, original {o:?}", c.label);
        }
    }
    d.assert_clean()?;
    Ok(())
}

fn diff(a: &[Answer], b: &[Answer]) -> String {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| {
            format!(
                "{}: {} {:?} -> {} {:?}",
                x.label, x.status, x.body, y.status, y.body
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
