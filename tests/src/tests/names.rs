//! End-to-end: names are bytes. An image whose layer holds files named in
//! Latin-1 (not UTF-8) is x-rayed from the engine and from a `docker save`
//! file, and minified through a real daemon (real kernel, real Docker, as
//! root; run by `cargo xtask test`). The app opens its files by their byte
//! names; the slim image must hold exactly those bytes, and every report
//! shows them escaped (`\xe9`).

use std::io::Write;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::{
    CAFE, COPY, MENU, NAMES_TAG, RUN_LABEL, UNUSED, docker, docker_timeout, ensure_names_image,
    long_path,
};
use anyhow::{Context, Result, ensure};
use slimd::image::name;

const TARGET: &str = "slimd-e2e/latin1-names:slim";

/// How reports show a byte name.
fn shown(bytes: &[u8]) -> String {
    name::show(&name::decode(bytes)).to_string()
}

/// No raw escape code point reached a person, and no name was decoded
/// lossily (a replacement character).
fn all_shown(text: &str) -> Result<()> {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| name::escaped_byte(c).is_some() || c == '\u{fffd}')
        .collect();
    ensure!(bad.is_empty(), "unescaped characters {bad:?} in output");
    Ok(())
}

/// `slim --json xray ARGS` must succeed and list the Latin-1 page escaped.
fn xray_shows_names(d: &Daemon, args: &[&str]) -> Result<()> {
    let mut all = vec!["--json", "xray"];
    all.extend_from_slice(args);
    let out = d.slim(&all)?;
    let stdout = String::from_utf8(out.stdout).context("xray output is UTF-8")?;
    ensure!(
        out.status.success(),
        "slim xray {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    all_shown(&stdout)?;
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    let files: Vec<&str> = report["largest_files"]
        .as_array()
        .context("largest_files")?
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for want in [CAFE, UNUSED] {
        ensure!(
            files.contains(&shown(want).as_str()),
            "xray {args:?} does not list {}: {files:?}",
            shown(want)
        );
    }
    // The text form shows the same escapes.
    let mut all = vec!["xray"];
    all.extend_from_slice(args);
    let out = d.slim(&all)?;
    let text = String::from_utf8(out.stdout).context("xray text is UTF-8")?;
    ensure!(
        out.status.success() && text.contains(r"/srv/www/caf\xe9.html"),
        "slim xray {args:?} text does not show the name escaped:\n{text}"
    );
    all_shown(&text)
}

/// A host probe that asks for the pages by their raw bytes (HTTP clients
/// would percent-encode them; the static server does not decode).
const PROBE: &str = r#"import os, socket, sys
ok = True
for path in (b"/caf\xe9.html", b"/men\xfc.html", b"/copy\xe8.html"):
    s = socket.create_connection(
        (os.environ["SLIM_TARGET_HOST"], int(os.environ["SLIM_TARGET_PORT"])), timeout=20)
    s.sendall(b"GET " + path + b" HTTP/1.0\r\n\r\n")
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    s.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0]
    ok = ok and b" 200 " in status
    # Printed as Python reprs: ASCII, whatever the bytes.
    print(repr(path), repr(status), repr(body))
sys.exit(0 if ok else 1)
"#;

/// Paths and link targets, as bytes, of a container made from `image`.
fn exported_names(image: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let label = format!("{RUN_LABEL}=names");
    let id = docker(["create", "--label", &label, image])?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rootfs.tar");
    let res = docker_timeout(
        ["export", "-o", &file.to_string_lossy(), &id],
        Duration::from_secs(300),
    );
    let _ = docker(["rm", "-f", &id]);
    res?;
    let mut a = tar::Archive::new(std::fs::File::open(&file)?);
    let mut out = Vec::new();
    for e in a.entries()? {
        let e = e?;
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let mut path = b"/".to_vec();
        path.extend_from_slice(
            e.path_bytes()
                .strip_prefix(b"./")
                .unwrap_or(&e.path_bytes()),
        );
        out.push((path.strip_suffix(b"/").unwrap_or(&path).to_vec(), link));
    }
    Ok(out)
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn latin1_names_xray_build_and_keep_their_bytes() -> Result<()> {
    let tag = ensure_names_image()?;
    assert_eq!(tag, NAMES_TAG);
    let d = Daemon::start("names")?;

    // xray through the daemon, and of a `docker save` file read here.
    xray_shows_names(&d, &[tag])?;
    let dir = tempfile::tempdir()?;
    let saved = dir.path().join("saved.tar");
    docker_timeout(
        ["save", "-o", &saved.to_string_lossy(), tag],
        Duration::from_secs(300),
    )?;
    xray_shows_names(&d, &["--file", &saved.to_string_lossy()])?;

    // Build: the probe asks for the pages by their bytes; the long
    // non-UTF-8 path is kept by naming it as reports show it.
    let probe = dir.path().join("probe.py");
    std::fs::File::create(&probe)?.write_all(PROBE.as_bytes())?;
    let probe_cmd = format!("python3 {}", probe.display());
    let long_flag = shown(&long_path());
    let (summary, _) = d.build_verified(&[
        tag,
        "--tag",
        TARGET,
        "--force",
        "--probe-cmd",
        &probe_cmd,
        "--include-path",
        &long_flag,
    ])?;
    all_shown(&summary.to_string())?;

    // The report shows the kept names escaped, and the probe saw 200s.
    let report_path = summary["report"].as_str().context("report path")?;
    let report_text = std::fs::read_to_string(report_path)?;
    all_shown(&report_text)?;
    let report: serde_json::Value = serde_json::from_str(&report_text)?;
    let host = &report["probe"]["host_commands"][0];
    ensure!(
        host["exit_code"] == 0,
        "the probe did not get its pages from the original: {host}"
    );
    let kept: Vec<&str> = report["kept"]
        .as_array()
        .context("kept")?
        .iter()
        .filter_map(|k| k["path"].as_str())
        .collect();
    for want in [CAFE, MENU, COPY, &long_path()[..]] {
        ensure!(
            kept.contains(&shown(want).as_str()),
            "{} not kept: {kept:?}",
            shown(want)
        );
    }
    ensure!(!kept.contains(&shown(UNUSED).as_str()), "unused file kept");

    // The slim image holds the exact bytes of the names and link targets.
    let names = exported_names(TARGET)?;
    let has = |path: &[u8]| names.iter().find(|(p, _)| p == path);
    for want in [CAFE, MENU, COPY, &long_path()[..]] {
        ensure!(
            has(want).is_some(),
            "{want:x?} is not in the slim image: {names:x?}"
        );
    }
    ensure!(
        has(UNUSED).is_none(),
        "the unused file is in the slim image"
    );
    ensure!(
        has(MENU).map(|(_, l)| l.as_slice()) == Some(&b"caf\xe9.html"[..]),
        "symlink target changed: {:x?}",
        has(MENU)
    );
    // The hardlink is one inode with the page: docker export writes the
    // second name as a link to the first.
    let copy_link = has(COPY).map(|(_, l)| l.clone()).unwrap_or_default();
    let cafe_link = has(CAFE).map(|(_, l)| l.clone()).unwrap_or_default();
    ensure!(
        copy_link == CAFE[1..] || cafe_link == COPY[1..],
        "hardlink lost: {:x?} / {:x?}",
        has(COPY),
        has(CAFE)
    );
    d.assert_clean()?;
    Ok(())
}
