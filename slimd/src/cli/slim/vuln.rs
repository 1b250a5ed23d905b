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
    if !a.scanner.is_empty() && a.against().is_none() {
        return Err(Failure {
            kind: FailureKind::Usage,
            message: "--scanner compares two images: give --against or --against-file".into(),
        });
    }
    // A scanner that is not installed is said at once, before any work.
    if let Some(s) = a.scanner.iter().find(|s| !s.installed()) {
        return Err(Failure {
            kind: FailureKind::Usage,
            message: crate::vuln::scanner::ScannerError::NotInstalled(s.program()).to_string(),
        });
    }
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
    let mut scanners = Vec::new();
    if let Some(against) = a.against()
        && !a.scanner.is_empty()
    {
        let orig = source::archive(client, &a.source(), &scratch.path().join("xa")).await?;
        let slim = source::archive(client, &against, &scratch.path().join("xb")).await?;
        for s in a.scanner.clone() {
            let (o, sl) = (orig.clone(), slim.clone());
            let d = tokio::task::spawn_blocking(move || s.delta(&o, &sl))
                .await
                .map_err(|e| internal(e.to_string()))?
                .map_err(|e| internal(e.to_string()))?;
            scanners.push(d);
        }
    }
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
        let mut v = serde_json::to_value(&report).map_err(|e| internal(e.to_string()))?;
        if !scanners.is_empty() {
            v["scanners"] = serde_json::to_value(&scanners).map_err(|e| internal(e.to_string()))?;
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", crate::report::vuln::render_vuln(&report));
        for s in &scanners {
            println!(
                "{:<12} {} -> {}  ({} removed by slimming)",
                s.scanner.program(),
                s.original.len(),
                s.slim.len(),
                s.removed.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
