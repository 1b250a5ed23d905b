//! `--html [-o FILE]`: where a rendered page goes. A file is written
//! beside its final name and renamed into place, so a reader never sees
//! half a page and a failed write leaves nothing behind.

use std::{io::Write, path::Path};

use super::{Failure, HtmlArgs, usage};
use crate::{api::types::FailureKind, report::html::HtmlError};

pub(super) fn failure(e: HtmlError) -> Failure {
    Failure {
        kind: FailureKind::Internal,
        message: format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
    }
}

/// `--html` and `--json` ask for two different outputs.
pub(super) fn check(html: &HtmlArgs, json: bool) -> Result<(), Failure> {
    if html.html && json {
        return Err(usage(
            "--html and --json ask for different outputs: give one".into(),
        ));
    }
    Ok(())
}

/// Writes `page` to `out`, or to standard output without one.
pub(super) fn write_page(page: &str, out: Option<&Path>) -> Result<(), Failure> {
    let Some(out) = out else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(page.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| io_failure(Path::new("standard output"), e));
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".slim-report-")
        .suffix(".html")
        .tempfile_in(dir)
        .map_err(|e| io_failure(dir, e))?;
    tmp.write_all(page.as_bytes())
        .and_then(|()| tmp.flush())
        .map_err(|e| io_failure(out, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Readable like any file a user writes (tempfile makes it 0600).
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(out).map_err(|e| io_failure(out, e.error))?;
    eprintln!(
        "wrote {} ({})",
        out.display(),
        crate::report::bytes(page.len() as u64)
    );
    Ok(())
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure {
        kind: FailureKind::Usage,
        message: format!("cannot write {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn html_and_json_are_refused_together() {
        let html = HtmlArgs {
            html: true,
            output: None,
        };
        let e = check(&html, true).err().unwrap();
        assert_eq!(e.kind.exit_code(), 2);
        assert!(check(&html, false).is_ok());
    }

    #[test]
    fn pages_land_whole_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.html");
        std::fs::write(&out, "old").unwrap();
        assert!(write_page("<p>page</p>", Some(&out)).is_ok());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "<p>page</p>");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Nothing else left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_page("x", Some(&dir.path().join("no/such/dir/r.html")))
            .err()
            .unwrap();
        assert!(e.message.contains("cannot write"), "{}", e.message);
    }
}
