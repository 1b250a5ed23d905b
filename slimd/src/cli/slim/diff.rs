//! `slim diff A B`: each side an engine image (its `docker save` stream
//! comes through the daemon's export route) or an archive read here; both
//! are read into scratch directories that are removed afterwards, then
//! compared by [`crate::diff`]. Exit codes like diff(1): 0 same, 1
//! different, 2 trouble, 3 image not found; with `--html` too (the page
//! is written either way).

use std::process::ExitCode;

use super::source::{self, ImageSource};
use super::{DiffArgs, Failure};
use crate::api::{client::Client, types::FailureKind};
use crate::diff::ImageDiff;

/// Why the diff could not be made, with its exit code.
struct Trouble {
    code: u8,
    message: String,
}

impl From<Failure> for Trouble {
    fn from(f: Failure) -> Self {
        Trouble {
            code: if f.kind == FailureKind::ImageNotFound {
                3
            } else {
                2
            },
            message: f.message,
        }
    }
}

pub(super) async fn diff(client: &Client, a: &DiffArgs, json: bool) -> ExitCode {
    match run(client, a, json).await {
        Ok(code) => ExitCode::from(code),
        Err(t) => {
            eprintln!("slim diff: {}", t.message);
            ExitCode::from(t.code)
        }
    }
}

async fn run(client: &Client, a: &DiffArgs, json: bool) -> Result<u8, Trouble> {
    super::html::check(&a.html, json)?;
    let [side_a, side_b] = <[ImageSource; 2]>::try_from(a.sides.clone()).map_err(|s| Trouble {
        code: 2,
        message: format!(
            "give two sides, each an IMAGE or --file ARCHIVE ({} given)",
            s.len()
        ),
    })?;
    let scratch = tempfile::tempdir().map_err(|e| Trouble {
        code: 2,
        message: format!("scratch directory: {e}"),
    })?;
    let img_a = source::read(client, &side_a, &scratch.path().join("a")).await?;
    let img_b = source::read(client, &side_b, &scratch.path().join("b")).await?;
    let (la, lb) = (side_a.label(), side_b.label());
    let mut d = tokio::task::spawn_blocking(move || ImageDiff::compute(&img_a, &la, &img_b, &lb))
        .await
        .map_err(|e| Trouble {
            code: 2,
            message: e.to_string(),
        })?;
    d.show_names();
    if a.html.html {
        let page = crate::report::html::render_diff_html(&d).map_err(super::html::failure)?;
        super::html::write_page(&page, a.html.output.as_deref())?;
    } else if json {
        println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
    } else {
        print!("{}", crate::report::diff::render_diff(&d, a.details));
    }
    Ok(d.exit_code())
}
