//! The image for the HTML report suite: the static server of
//! [`super::TestImage::StaticServer`] with names and a page body that are
//! HTML. A directory and the file in it spell `<script>…</script><img
//! onerror=…>` as a path, and the page every probe asks for (`/`) carries an
//! inline script. A report page must show all of it as text, and none of it
//! may run. Cached by its inputs like every fixture image.

use anyhow::Result;

use super::{Entry, Recipe, TestImage, build_cached, ensure_docker, recipe};

/// Tag of the image.
pub const HOSTILE_TAG: &str = "slimd-test/hostile-names:latest";
/// The directory whose name opens a script tag, in the document root.
pub const HOSTILE_DIR: &str = "/srv/www/<script>document.title='pwned'<";
/// A file in it: with its directory, the path reads
/// `…<script>document.title='pwned'</script><img src=x onerror=…>`.
pub const HOSTILE_FILE: &str = "script><img src=x onerror=document.body.dataset.pwned=1>";
/// What `/` answers: a page with an inline script (a hostile probe body).
pub const HOSTILE_INDEX: &str = "<!doctype html><title>hostile</title>\
<script>document.title='pwned by a probe body'</script>\
<p>A page whose <a href=\"/about.html\">body</a> is HTML.</p>\n";

/// The hostile file's full path.
pub fn hostile_path() -> String {
    format!("{HOSTILE_DIR}/{HOSTILE_FILE}")
}

/// Builds the image unless it exists with the same inputs; its tag.
pub fn ensure_hostile_image() -> Result<&'static str> {
    ensure_docker()?;
    let mut r: Recipe = recipe(TestImage::StaticServer)?;
    r.entries
        .retain(|e| !matches!(e, Entry::Bytes { path, .. } if path == "/srv/www/index.html"));
    r.entries.push(Entry::Bytes {
        path: "/srv/www/index.html".into(),
        data: HOSTILE_INDEX.as_bytes().to_vec(),
        mode: 0o644,
    });
    r.entries.push(Entry::Bytes {
        path: hostile_path(),
        data: b"a file with a hostile name\n".to_vec(),
        mode: 0o644,
    });
    build_cached(HOSTILE_TAG, &r)?;
    Ok(HOSTILE_TAG)
}
