//! `slim status`: daemon, kernel, cgroups, tracer and engine facts.

use std::process::ExitCode;

use super::Failure;
use crate::api::client::Client;

pub(super) async fn status(client: &Client, json: bool) -> Result<ExitCode, Failure> {
    let s = client.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!("slimd      {} (pid {})", s.daemon_version, s.pid);
    println!(
        "kernel     {}  BTF: {}",
        s.kernel,
        if s.btf { "yes" } else { "NO" }
    );
    println!(
        "cgroups    {} (cgroup2 at {})",
        s.cgroup_mode.as_deref().unwrap_or("unknown"),
        s.cgroup_v2_mount.as_deref().unwrap_or("?")
    );
    match &s.tracer_error {
        None => println!("tracer     loaded, {} tracepoints", s.tracepoints.len()),
        Some(e) => println!("tracer     UNAVAILABLE: {e}"),
    }
    for f in &s.features {
        use crate::tracer::features::Presence;
        let (mark, detail) = match f.presence {
            Presence::Present => ("yes", String::new()),
            Presence::Missing => ("MISSING", format!(": {}", f.detail)),
            Presence::Unknown => ("unknown", format!(": {}", f.detail)),
        };
        println!(
            "feature    {:<36} {mark:<7} (Linux >= {}){detail}",
            f.name, f.since
        );
    }
    match (&s.engine, &s.engine_error) {
        (Some(e), _) => println!(
            "engine     {} {} (API {}), cgroup driver {}, cgroup v{}",
            e.engine.display_name(),
            e.version,
            e.api_version,
            e.cgroup_driver,
            e.cgroup_version
        ),
        (None, Some(err)) => println!("engine     UNREACHABLE: {err}"),
        _ => println!("engine     unknown"),
    }
    println!("sessions   {} running", s.sessions_running);
    // Containers watch mode follows now (a pod's, on a CRI node).
    if s.sessions_running > 0
        && let Ok(list) = client.sessions().await
    {
        for w in list
            .iter()
            .filter(|w| w.kind == crate::api::types::SessionKind::Watch && w.state == "running")
        {
            println!(
                "watching   {} {}{}",
                w.id,
                w.image,
                w.pod
                    .as_ref()
                    .map(|p| format!("  ({p})"))
                    .unwrap_or_default()
            );
        }
    }
    println!("state      {}", s.state_dir);
    Ok(ExitCode::from(
        if s.tracer_error.is_some() || s.engine.is_none() {
            1
        } else {
            0
        },
    ))
}
