//! `slim xray`: what an image contains, through the daemon or from an
//! archive read here.

use std::process::ExitCode;

use super::{Failure, XrayArgs, usage};
use crate::api::{client::Client, types::FailureKind};

pub(super) async fn xray(client: &Client, a: &XrayArgs, json: bool) -> Result<ExitCode, Failure> {
    super::html::check(&a.html, json)?;
    let report = match (&a.image, &a.file) {
        (_, Some(file)) => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || local_xray(&file))
                .await
                .map_err(|e| Failure {
                    kind: FailureKind::Internal,
                    message: e.to_string(),
                })??
        }
        (Some(image), None) => client.xray(image, a.containerd.target()).await?,
        (None, None) if a.containerd.containerd.is_some() => {
            return Err(usage(
                "give an IMAGE: `slim xray --containerd [SOCKET] IMAGE` (a word right after --containerd is its socket; put the image first to use the default socket)".into(),
            ));
        }
        (None, None) => return Err(usage("give an IMAGE, or --file ARCHIVE".into())),
    };
    if a.html.html {
        let r =
            serde_json::from_value::<crate::image::XrayReport>(report).map_err(|e| Failure {
                kind: FailureKind::Internal,
                message: format!("the daemon's xray report does not read: {e}"),
            })?;
        let page = crate::report::html::render_xray_html(&r).map_err(super::html::failure)?;
        super::html::write_page(&page, a.html.output.as_deref())?;
    } else if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        match serde_json::from_value::<crate::image::XrayReport>(report.clone()) {
            Ok(r) => print!("{}", crate::report::xray::render_xray(&r)),
            Err(_) => println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads an archive or OCI layout here, with a scratch directory that is
/// removed afterwards.
fn local_xray(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let scratch = tempfile::tempdir().map_err(|e| Failure {
        kind: FailureKind::Internal,
        message: format!("scratch directory: {e}"),
    })?;
    let image = crate::image::Image::open(path, scratch.path()).map_err(|e| Failure {
        kind: FailureKind::Usage,
        message: format!(
            "{}: {}",
            path.display(),
            crate::image::name::show(&e.to_string())
        ),
    })?;
    let report = crate::image::XrayReport::build(&image);
    serde_json::to_value(report).map_err(|e| Failure {
        kind: FailureKind::Internal,
        message: e.to_string(),
    })
}
