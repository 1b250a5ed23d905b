//! `slim vuln IMAGE|--file PATH [--against SLIM|--against-file PATH] --db
//! PATH`: advisories from an offline OSV database, and the delta slimming
//! made. The images are read here, like `slim diff` reads its sides.

use std::process::ExitCode;

use super::{Failure, VulnArgs, source};
use crate::api::{client::Client, types::FailureKind};
use crate::inventory::Inventory;
use crate::vuln::{VulnReport, osv::Database};

pub(super) async fn vuln(client: &Client, a: &VulnArgs, json: bool) -> Result<ExitCode, Failure> {
    let internal = |message: String| Failure {
        kind: FailureKind::Internal,
        message,
    };
    let db_path = a.db.clone();
    let db = tokio::task::spawn_blocking(move || Database::open(&db_path))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| Failure {
            kind: FailureKind::Usage,
            message: e.to_string(),
        })?;
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("scratch directory: {e}")))?;
    let img = source::read(client, &a.source(), &scratch.path().join("a")).await?;
    let slim = match a.against() {
        Some(s) => Some(source::read(client, &s, &scratch.path().join("b")).await?),
        None => None,
    };
    let report = tokio::task::spawn_blocking(move || {
        let inv = Inventory::read(&img.fs);
        match slim {
            Some(s) => VulnReport::delta(&inv, &Inventory::read(&s.fs), &db),
            None => VulnReport::of_image(&inv, &db),
        }
    })
    .await
    .map_err(|e| internal(e.to_string()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::vuln::render_vuln(&report));
    }
    Ok(ExitCode::SUCCESS)
}
