//! The pages as a parser reads them: hostile names and bodies stay text,
//! the one script is ours, and old reports still render.

use scraper::{Html, Selector};
use serde_json::{Value, json};

use super::*;
use crate::report::tree::{Fate, FileFate, NODE_BUDGET, SizeTree};

/// A directory and file that together spell a script tag in a path.
const HOSTILE_DIR: &str = "<script>document.title='pwned'<";
const HOSTILE_FILE: &str = "script><img src=x onerror=alert(1)>";

fn hostile_path() -> String {
    format!("/srv/www/{HOSTILE_DIR}/{HOSTILE_FILE}")
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn report() -> Value {
    let path = hostile_path();
    let tree = SizeTree::build(
        [
            FileFate {
                path: &path,
                size: 40,
                fate: Fate::Rule,
                package: Some("<b>pkg</b>"),
            },
            FileFate {
                path: "/bin/app",
                size: 1000,
                fate: Fate::Used,
                package: None,
            },
            FileFate {
                path: "/usr/share/doc/big",
                size: 5000,
                fate: Fate::Dropped,
                package: None,
            },
        ],
        NODE_BUDGET,
    );
    let body = "<script>document.title='body'</script><p>hello</p>";
    let http = |status: u16| {
        json!({"request": {"method": "GET", "path": "/<x>", "port": 8080}, "origin": {"kind": "root"},
               "host_port": 1, "status": status, "body_len": body.len(), "body_sha256": "ab".repeat(32),
               "body_sample": body, "attempts": 1, "elapsed_ms": 3})
    };
    json!({
        "id": "s1", "kind": "build", "image": "app:<1>", "target": "app.slim:latest", "state": "succeeded",
        "sizes": {"original_bytes": 9000, "slim_bytes": 1100, "reduction_percent": 87.8,
                  "original_files": 3, "slim_files": 2, "removed_files": 1, "removed_bytes": 5000,
                  "original_file_bytes": 6040, "slim_file_bytes": 1040},
        "phases": [{"phase": "inspect", "ms": 10}, {"phase": "probe", "ms": 300}, {"phase": "verify", "ms": 1200}],
        "kept": [
            {"path": path, "kind": "file", "size": 40, "reasons": [{"rule": "user_flag", "flag": format!("--include-path {path}")}]},
            {"path": "/bin/app", "kind": "file", "size": 1000, "reasons": [{"rule": "used", "how": "exec", "pid": 1, "comm": "app"}]}
        ],
        "probe": {"http": [http(200)], "exec": [], "host_commands": [], "notes": [], "endpoints": [], "elapsed_ms": 1},
        "verify": {"outcome": "passed", "passed": true, "mismatches": [], "problems": [], "compared": ["GET /<x> on 8080"],
                   "probe": {"http": [http(200)], "exec": [], "host_commands": [], "notes": [], "endpoints": [], "elapsed_ms": 1}},
        "seccomp": {"arch": "x86_64", "observed": ["read"], "unknown": [], "runtime_added": [], "setup_dropped": [], "allowed": ["read", "write"]},
        "listening": ["0.0.0.0:8080"], "connections": [],
        "warnings": ["<script>document.title='warning'</script>"],
        "tree": serde_json::to_value(&tree).unwrap(),
    })
}

/// The only script is the page's own, and the policy lets only it run.
fn only_our_script(page: &str) {
    let doc = Html::parse_document(page);
    let scripts: Vec<_> = doc.select(&sel("script")).collect();
    assert_eq!(scripts.len(), 1, "one script element");
    assert_eq!(scripts[0].text().collect::<String>(), SCRIPT);
    assert!(doc.select(&sel("img")).next().is_none(), "no injected img");
    let csp = doc
        .select(&sel("meta[http-equiv=Content-Security-Policy]"))
        .next()
        .expect("a CSP")
        .value()
        .attr("content")
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!("script-src '{}'", script_hash())),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // No attribute anywhere starts a handler.
    for el in doc.select(&sel("*")) {
        for (name, _) in el.value().attrs() {
            assert!(!name.starts_with("on"), "handler attribute {name}");
        }
    }
}

#[test]
fn hostile_names_and_bodies_render_as_text() {
    let page = render_build_html(&report()).unwrap();
    only_our_script(&page);
    assert!(
        !page.contains("<script>document"),
        "raw script text in the page"
    );
    let doc = Html::parse_document(&page);
    let cells: Vec<String> = doc
        .select(&sel("#kept-table td.path"))
        .map(|td| td.text().collect())
        .collect();
    assert!(cells.contains(&hostile_path()), "{cells:?}");
    let pre: Vec<String> = doc
        .select(&sel("#probe-table pre"))
        .map(|p| p.text().collect())
        .collect();
    assert_eq!(pre.len(), 2, "original and slim bodies");
    assert!(pre[0].starts_with("<script>document.title='body'</script>"));
    let paths: Vec<&str> = doc
        .select(&sel("#icicle g.node"))
        .filter_map(|g| g.value().attr("data-path"))
        .collect();
    assert!(
        paths.contains(&format!("/srv/www/{HOSTILE_DIR}").as_str()),
        "{paths:?}"
    );
    let warn: String = doc
        .select(&sel("#warnings"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert!(warn.contains("<script>document.title='warning'</script>"));
    let title: String = doc.select(&sel("title")).next().unwrap().text().collect();
    assert_eq!(title, "slim report s1");
}

#[test]
fn the_icicle_holds_every_original_byte() {
    let page = render_build_html(&report()).unwrap();
    let doc = Html::parse_document(&page);
    let svg = doc.select(&sel("svg#icicle")).next().unwrap();
    assert_eq!(svg.value().attr("data-total"), Some("6040"));
    let root = doc.select(&sel("#icicle g.node")).next().unwrap();
    assert_eq!(root.value().attr("data-path"), Some("/"));
    assert_eq!(root.value().attr("data-bytes"), Some("6040"));
    assert_eq!(root.value().attr("data-used"), Some("1000"));
    assert_eq!(root.value().attr("data-rule"), Some("40"));
    let sizes = doc.select(&sel("#sizes")).next().unwrap();
    assert_eq!(sizes.value().attr("data-original-file-bytes"), Some("6040"));
    // Probes: same on both sides.
    let verdicts: Vec<String> = doc
        .select(&sel("#probe-table .badge"))
        .map(|b| b.text().collect())
        .collect();
    assert_eq!(verdicts, ["same"]);
    // Phase bar and its total.
    let phases = doc.select(&sel("#phases")).next().unwrap();
    assert_eq!(phases.value().attr("data-total-ms"), Some("1510"));
    let allowed: Vec<String> = doc
        .select(&sel("#seccomp-allowed span"))
        .map(|b| b.text().collect())
        .collect();
    assert_eq!(allowed, ["read", "write"]);
}

#[test]
fn old_reports_without_a_tree_still_render() {
    let mut r = report();
    let o = r.as_object_mut().unwrap();
    o.remove("tree");
    o.remove("seccomp");
    o.remove("verify");
    let page = render_build_html(&r).unwrap();
    assert!(page.contains("This report has no size tree"));
    assert!(page.contains("Verify did not run."));
    // A failed session with almost nothing in it.
    let page = render_build_html(&json!({"id": "x", "state": "failed",
        "failure": {"kind": "app_failed", "message": "<b>no</b>"}}))
    .unwrap();
    only_our_script(&page);
    assert!(page.contains("&lt;b&gt;no&lt;&#x2f;b&gt;") || page.contains("&lt;b&gt;no&lt;/b&gt;"));
}

#[test]
fn xray_pages_escape_names_too() {
    let report: crate::image::XrayReport = serde_json::from_value(json!({
        "image_id": "sha256:1", "repo_tags": ["x:<1>"], "format": "docker_archive", "os": "linux",
        "architecture": "amd64", "created": null,
        "layers": [
            {"index": 0, "diff_id": "a", "digest": "a", "size": 3000, "blob_size": 3000, "entries": 4,
             "created_by": "COPY <script>document.title='layer'</script> /",
             "visible_bytes": 2500, "largest_added": [{"size": 100, "path": "/<b>added</b>"}]},
            {"index": 1, "diff_id": "b", "digest": "b", "size": 1000, "blob_size": 1000, "entries": 1, "created_by": null}
        ],
        "total_size": 4000, "total_blob_size": 4000, "visible_bytes": 3500, "files": 4, "directories": 1,
        "symlinks": 0, "other_entries": 0,
        "largest_files": [{"size": 100, "path": hostile_path()}], "largest_directories": [],
        "wasted_bytes": 500, "wasted": [{"path": "/a", "size": 500, "layer": 0, "by_layer": 1, "deleted": true}],
        "duplicate_bytes": 0, "duplicates": [],
        "packages": [{"name": "<i>p</i>", "version": "1", "arch": null, "manager": "dpkg", "files": 2}],
        "elf": {"executables": [], "static_executables": [], "libraries": [], "other": [], "unreadable": []},
        "setuid": [{"path": "/bin/su", "mode": "4755", "uid": 0, "gid": 0, "is_dir": false, "sticky": false}],
        "setgid": [], "world_writable": [],
        "capabilities": [{"path": "/bin/ping", "capabilities": "cap_net_raw=ep"}],
        "shells": ["/bin/sh"], "package_managers": [], "certificates": [],
        "config": {"entrypoint": ["</script><script>alert(1)</script>"], "cmd": [], "user": "", "runs_as_root": true,
                   "working_dir": "", "env": [], "exposed_ports": [], "volumes": [], "labels": {},
                   "stop_signal": null, "healthcheck": null},
        "warnings": ["runs as root"]
    }))
    .expect("an xray report");
    let page = render_xray_html(&report).unwrap();
    only_our_script(&page);
    let doc = Html::parse_document(&page);
    let text: String = doc.select(&sel("body")).next().unwrap().text().collect();
    assert!(text.contains(&hostile_path()));
    assert!(text.contains("COPY <script>document.title='layer'</script> /"));
    assert!(text.contains("<i>p</i>"));
    assert!(text.contains("</script><script>alert(1)</script>"));
    let wasted: Vec<String> = doc
        .select(&sel("#layer-table tbody tr td:nth-child(6)"))
        .map(|t| t.text().collect())
        .collect();
    assert_eq!(wasted, ["500 B", "0 B"]);
    assert!(text.contains("cap_net_raw=ep") && text.contains("/bin/su"));
    let added: Vec<String> = doc
        .select(&sel("#layer-table ul.added li .path"))
        .map(|t| t.text().collect())
        .collect();
    assert_eq!(added, ["/<b>added</b>"]);
}

/// A diff whose paths, package names, config values and history are hostile.
fn image_diff() -> crate::diff::ImageDiff {
    let t = |dir: &str, added: u64, removed: u64| {
        json!({"dir": dir, "files_a": 3, "files_b": 3, "bytes_a": 100, "bytes_b": 140,
               "added": added, "removed": removed, "changed": 1,
               "added_bytes": 40, "removed_bytes": 0, "changed_bytes_delta": 0})
    };
    let mut totals = t("", 1, 1);
    totals.as_object_mut().unwrap().remove("dir");
    serde_json::from_value(json!({
        "a": {"name": "app:<a>", "id": "sha256:aa", "size": 100, "layers": [{"diff_id": "sha256:1", "size": 10}]},
        "b": {"name": "app:b", "id": "sha256:bb", "size": 140, "layers": []},
        "same": false,
        "files": {"totals": totals, "by_top_dir": [t("/srv", 1, 0), t("/<svg onload=alert(1)>", 0, 1)],
                  "changes": [
                      {"path": hostile_path(), "change": "added", "kind": "file", "size_a": 0, "size_b": 40},
                      {"path": "/etc/<b>x</b>", "change": "removed", "kind": "file", "size_a": 5, "size_b": 0},
                      {"path": "/bin/app", "change": "changed", "kind": "file", "size_a": 5, "size_b": 5,
                       "aspects": [{"what": "mode", "a": "0755", "b": "<i>0700</i>"}]}]},
        "packages": {"count_a": 1, "count_b": 1, "changes": [
            {"change": "upgraded", "ecosystem": "Debian", "name": "<script>document.title='pkg'</script>",
             "version_a": "1", "version_b": "2"}]},
        "config": [{"field": "Env", "a": "A=<script>", "b": null}],
        "layers": {"shared_base": 0, "same": false, "history_a": ["RUN <script>document.title='h'</script>"], "history_b": []},
    }))
    .unwrap()
}

#[test]
fn diff_page_shows_hostile_names_as_text_and_the_counts() {
    let page = render_diff_html(&image_diff()).unwrap();
    only_our_script(&page);
    assert!(!page.contains("<script>document"), "raw script text");
    assert!(!page.contains("<svg onload"), "raw svg tag");
    let doc = Html::parse_document(&page);
    let text =
        |s: &str| -> Vec<String> { doc.select(&sel(s)).map(|e| e.text().collect()).collect() };
    assert!(text("#file-table td.path").contains(&hostile_path()));
    assert!(text("#file-table td.path").contains(&"/etc/<b>x</b>".to_string()));
    assert_eq!(text("#file-table tbody tr").len(), 3);
    assert_eq!(text("#count-added"), ["1"]);
    assert_eq!(text("#count-removed"), ["1"]);
    assert_eq!(text("#count-changed"), ["1"]);
    assert!(
        text("#package-table td").contains(&"<script>document.title='pkg'</script>".to_string())
    );
    assert!(text("#dirs svg text").contains(&"/<svg onload=alert(1)>".to_string()));
    assert_eq!(
        doc.select(&sel("#dirs svg rect")).count(),
        4,
        "A and B bar per directory"
    );
    assert_eq!(doc.select(&sel("svg svg")).count(), 0, "no injected svg");
    assert!(text("#layers code").contains(&"RUN <script>document.title='h'</script>".to_string()));
    assert!(text("h1")[0].contains("app:<a>"));
    assert_eq!(
        doc.select(&sel("input[data-filter=file-table]")).count(),
        1,
        "a search box"
    );
}
