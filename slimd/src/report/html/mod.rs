//! Reports as one self-contained HTML page each: the styles, the charts
//! (SVG drawn from the data in [`svg`]) and a little script are inlined, so
//! the page needs no network and works from `file://`; everything essential
//! reads without JavaScript (the script only zooms the icicle and filters
//! the keep reasons).
//!
//! Pages are MiniJinja templates with auto-escaping on: every name and
//! body that came from the image or the app (file names, probe bodies,
//! exec output) is hostile input and reaches the page only as escaped
//! text. Nothing in the templates marks data `safe`.
//!
//! A build's page renders from the report's JSON, like [`super::text`], so
//! reports written by older daemons stay readable (sections whose data an
//! old report lacks say so).

mod build;
mod diff;
pub mod svg;
mod xray;

use minijinja::{AutoEscape, Environment, Value as Jinja};

pub use build::render_build_html;
pub use diff::render_diff_html;
pub use xray::render_xray_html;

/// A page could not be rendered (a template bug, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the HTML report ({template})")]
pub struct HtmlError {
    template: &'static str,
    #[source]
    source: minijinja::Error,
}

/// The templates, with escaping on for every one of them.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("bytes", |n: Option<u64>| super::bytes(n.unwrap_or(0)));
    env.add_filter("ms", |n: Option<u64>| svg::duration(n.unwrap_or(0)));
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("build.html", include_str!("templates/build.html")),
        ("diff.html", include_str!("templates/diff.html")),
        ("xray.html", include_str!("templates/xray.html")),
        // Included verbatim: template text is never escaped, only values.
        ("style.css", include_str!("templates/style.css")),
    ] {
        env.add_template(name, text)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
    }
    env
}

/// The page's one script: it only zooms and filters (see the module docs).
const SCRIPT: &str = include_str!("templates/page.js");

/// The script's hash for the page's Content-Security-Policy, which lets
/// only that script run: no other inline script, no network at all.
fn script_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(SCRIPT.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Renders `template` with `ctx` (and the script).
fn render(template: &'static str, ctx: Jinja) -> Result<String, HtmlError> {
    let env = environment();
    let ctx = minijinja::context! {
        // Our own constant, not data: the one value the page takes unescaped.
        script => Jinja::from_safe_string(SCRIPT.to_string()),
        script_hash => script_hash(),
        ..ctx
    };
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|source| HtmlError { template, source })
}

#[cfg(test)]
mod tests;
