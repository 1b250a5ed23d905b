//! The page of `slim xray IMAGE --html`: layers with their sizes and what
//! each added, wasted and duplicate bytes, packages, ELF files,
//! setuid/setgid and capabilities, shells and package tools, warnings.

use minijinja::Value as Jinja;
use serde::Serialize;

use super::{
    HtmlError, render,
    svg::{self, WIDTH},
};
use crate::{image::XrayReport, report::bytes};

/// One layer's bar: its share of the image.
#[derive(Serialize)]
struct LayerBar {
    index: usize,
    size: u64,
    created_by: String,
    /// Bytes of this layer that later layers overwrote or deleted.
    wasted: u64,
    x: f64,
    w: f64,
}

/// See the module docs.
pub fn render_xray_html(r: &XrayReport) -> Result<String, HtmlError> {
    let parts: Vec<(String, u64)> = r
        .layers
        .iter()
        .map(|l| (l.index.to_string(), l.size))
        .collect();
    let bar = svg::stacked(&parts, bytes);
    let layers: Vec<LayerBar> = r
        .layers
        .iter()
        .zip(&bar)
        .map(|(l, b)| LayerBar {
            index: l.index,
            size: l.size,
            created_by: l.created_by.clone().unwrap_or_default(),
            wasted: r
                .wasted
                .iter()
                .filter(|w| w.layer == l.index)
                .map(|w| w.size)
                .sum(),
            x: b.x,
            w: b.w,
        })
        .collect();
    let tags = if r.repo_tags.is_empty() {
        "<untagged>".to_string()
    } else {
        r.repo_tags.join(", ")
    };
    let ctx = minijinja::context! {
        x => Jinja::from_serialize(r),
        title => format!("slim xray {tags}"),
        tags => tags,
        layers => Jinja::from_serialize(&layers),
        width => WIDTH,
    };
    render("xray.html", ctx)
}
