//! `slim xray` for a terminal: the image library's [`XrayReport`] in
//! words, sizes in the units every other report uses.

use crate::image::{ModePath, SizedPath, XrayReport};

use super::bytes;

/// A readable summary of an xray report.
pub fn render_xray(r: &XrayReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let tags = if r.repo_tags.is_empty() {
        "<untagged>".to_string()
    } else {
        r.repo_tags.join(", ")
    };
    let _ = writeln!(o, "Image     {tags}");
    let _ = writeln!(o, "Id        {}", r.image_id);
    let _ = writeln!(o, "Platform  {}/{}", r.os, r.architecture);
    if let Some(c) = &r.created {
        let _ = writeln!(o, "Created   {c}");
    }
    let _ = writeln!(
        o,
        "Size      {} in {} layers ({} stored); {} files, {} directories, {} symlinks",
        bytes(r.total_size),
        r.layers.len(),
        bytes(r.total_blob_size),
        r.files,
        r.directories,
        r.symlinks
    );

    let _ = writeln!(o, "\nLayers");
    for l in &r.layers {
        let by = l.created_by.as_deref().unwrap_or("");
        let _ = writeln!(
            o,
            "  {:>3}  {:>10}  {}",
            l.index,
            bytes(l.size),
            truncate(by.trim(), 100)
        );
    }

    let _ = writeln!(o, "\nRun configuration");
    let c = &r.config;
    let _ = writeln!(o, "  Entrypoint  {}", json_list(&c.entrypoint));
    let _ = writeln!(o, "  Cmd         {}", json_list(&c.cmd));
    let _ = writeln!(
        o,
        "  User        {}{}",
        if c.user.is_empty() {
            "(empty)"
        } else {
            &c.user
        },
        if c.runs_as_root { "  [root]" } else { "" }
    );
    if !c.working_dir.is_empty() {
        let _ = writeln!(o, "  WorkingDir  {}", c.working_dir);
    }
    if !c.exposed_ports.is_empty() {
        let _ = writeln!(o, "  Ports       {}", c.exposed_ports.join(" "));
    }
    if !c.volumes.is_empty() {
        let _ = writeln!(o, "  Volumes     {}", c.volumes.join(" "));
    }
    for e in &c.env {
        let _ = writeln!(o, "  Env         {e}");
    }
    if let Some(h) = &c.healthcheck {
        let _ = writeln!(o, "  Healthcheck {h}");
    }

    let section = |o: &mut String, title: &str, items: &[SizedPath]| {
        let _ = writeln!(o, "\n{title}");
        for i in items.iter().take(15) {
            let _ = writeln!(o, "  {:>10}  {}", bytes(i.size), i.path);
        }
    };
    section(&mut o, "Largest files", &r.largest_files);
    section(&mut o, "Largest directories", &r.largest_directories);

    let _ = writeln!(
        o,
        "\nWasted space  {} in files later layers overwrote or deleted",
        bytes(r.wasted_bytes)
    );
    for w in r.wasted.iter().take(10) {
        let _ = writeln!(
            o,
            "  {:>10}  {} (layer {}, {} by layer {})",
            bytes(w.size),
            w.path,
            w.layer,
            if w.deleted { "deleted" } else { "overwritten" },
            w.by_layer
        );
    }
    let _ = writeln!(
        o,
        "\nDuplicates    {} in identical files stored more than once",
        bytes(r.duplicate_bytes)
    );
    for d in r.duplicates.iter().take(10) {
        let paths: Vec<String> = d
            .copies
            .iter()
            .map(|(l, p)| format!("{p} (layer {l})"))
            .collect();
        let _ = writeln!(o, "  {:>10}  {}", bytes(d.wasted_bytes), paths.join(", "));
    }

    let _ = writeln!(o, "\nPackages      {}", r.packages.len());
    for p in &r.packages {
        let _ = writeln!(o, "  {:<40} {}", p.name, p.version);
    }

    let e = &r.elf;
    let _ = writeln!(
        o,
        "\nELF           {} executables, {} static executables, {} libraries",
        e.executables.len(),
        e.static_executables.len(),
        e.libraries.len()
    );
    for p in e.executables.iter().chain(&e.static_executables).take(40) {
        let _ = writeln!(o, "  {p}");
    }
    if e.executables.len() + e.static_executables.len() > 40 {
        let _ = writeln!(o, "  ... (all in --json)");
    }

    let list = |o: &mut String, title: &str, items: &[String]| {
        if items.is_empty() {
            let _ = writeln!(o, "\n{title:<13} none");
        } else {
            let _ = writeln!(o, "\n{title:<13} {}", items.len());
        }
        for i in items {
            let _ = writeln!(o, "  {i}");
        }
    };
    list(&mut o, "Shells", &r.shells);
    list(&mut o, "Package tools", &r.package_managers);
    list(&mut o, "CA bundles", &r.certificates);
    let modes = |v: &[ModePath]| -> Vec<String> {
        v.iter()
            .map(|m| format!("{} {} ({}:{})", m.mode, m.path, m.uid, m.gid))
            .collect()
    };
    list(&mut o, "Setuid", &modes(&r.setuid));
    list(&mut o, "Setgid", &modes(&r.setgid));
    list(&mut o, "World-writable", &modes(&r.world_writable));
    let caps: Vec<String> = r
        .capabilities
        .iter()
        .map(|c| format!("{} {}", c.path, c.capabilities))
        .collect();
    list(&mut o, "Capabilities", &caps);
    if !r.warnings.is_empty() {
        let _ = writeln!(o, "\nWarnings");
        for w in &r.warnings {
            let _ = writeln!(o, "  ! {w}");
        }
    }
    o
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let t: String = s.chars().take(max - 1).collect();
        format!("{t}…")
    }
}

fn json_list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        serde_json::to_string(v).unwrap_or_default()
    }
}
