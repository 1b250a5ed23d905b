//! `slim load --containerd`: streams an OCI image layout archive to the
//! daemon, which writes its blobs and the image record into containerd.

use std::process::ExitCode;

use super::{Failure, LoadArgs, usage};
use crate::api::{client::Client, types::LoadRequest};

pub(super) async fn load(client: &Client, a: &LoadArgs, json: bool) -> Result<ExitCode, Failure> {
    let Some(containerd) = a.containerd.target() else {
        return Err(usage(
            "slim load writes into containerd only: give --containerd [SOCKET] (Docker and Podman load with `docker load`)".into(),
        ));
    };
    let file = tokio::fs::File::open(&a.file)
        .await
        .map_err(|e| usage(format!("{}: {e}", a.file.display())))?;
    let req = LoadRequest {
        containerd,
        name: a.tag.clone(),
        force: a.force,
        snapshotter: (!a.no_unpack).then(|| a.snapshotter.clone()),
    };
    let loaded = client.load_containerd(&req, file).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&loaded).unwrap_or_default()
        );
    } else {
        println!(
            "{} {} in containerd namespace {} ({}, {} blobs written, {} already there, {} bytes)",
            if loaded.replaced {
                "replaced"
            } else {
                "loaded"
            },
            loaded.name,
            loaded.namespace,
            loaded.target.digest,
            loaded.blobs_written,
            loaded.blobs_present,
            loaded.bytes_written
        );
        if let Some(u) = &loaded.unpacked {
            println!(
                "unpacked into {}: {} layers applied, {} already there, top snapshot {}",
                u.snapshotter, u.layers_applied, u.layers_present, u.chain_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
