//! `slim sbom IMAGE|--file PATH --format spdx-json|cyclonedx-json`: the
//! image read here (an engine image through the daemon's export), its
//! inventory, one document on stdout or in `--output`.

use std::process::ExitCode;

use super::{Failure, SbomArgs, source};
use crate::api::{client::Client, types::FailureKind};
use crate::inventory::Inventory;
use crate::sbom::Sbom;

pub(super) async fn sbom(client: &Client, a: &SbomArgs) -> Result<ExitCode, Failure> {
    let internal = |message: String| Failure {
        kind: FailureKind::Internal,
        message,
    };
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("scratch directory: {e}")))?;
    let src = a.source();
    let img = source::read(client, &src, scratch.path()).await?;
    let label = match &src {
        source::ImageSource::Image(name) => name.clone(),
        source::ImageSource::File(_) => img
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| src.label()),
    };
    let format = a.format;
    let doc = tokio::task::spawn_blocking(move || {
        let inv = Inventory::read(&img.fs);
        Sbom::of_image(&label, &img.config_digest, &img.fs, &inv).render(format)
    })
    .await
    .map_err(|e| internal(e.to_string()))?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| internal(e.to_string()))?;
    match &a.output {
        Some(p) => {
            std::fs::write(p, text + "\n").map_err(|e| internal(format!("{}: {e}", p.display())))?
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
