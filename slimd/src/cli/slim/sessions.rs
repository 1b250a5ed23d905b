//! `slim sessions` and `slim report`: the daemon's sessions, and one
//! session's report.

use std::process::ExitCode;

use super::{Failure, HtmlArgs};
use crate::{
    api::{client::Client, types::Phase},
    report,
};

pub(super) async fn sessions(client: &Client, json: bool) -> Result<ExitCode, Failure> {
    let list = client.sessions().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no sessions");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<22} {:<8} {:<12} {:<10} IMAGE",
        "ID", "KIND", "STATE", "PHASE"
    );
    for s in list {
        println!(
            "{:<22} {:<8} {:<12} {:<10} {}{}{}",
            s.id,
            format!("{:?}", s.kind).to_lowercase(),
            s.state,
            s.phase.map(Phase::name).unwrap_or("-"),
            s.image,
            s.target.map(|t| format!(" -> {t}")).unwrap_or_default(),
            s.pod.map(|p| format!("  ({p})")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn show_report(
    client: &Client,
    id: &str,
    html: &HtmlArgs,
    json: bool,
) -> Result<ExitCode, Failure> {
    super::html::check(html, json)?;
    let r = client.report(id).await?;
    if html.html {
        let page = report::html::render_build_html(&r).map_err(super::html::failure)?;
        super::html::write_page(&page, html.output.as_deref())?;
    } else if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        print!("{}", report::render_report(&r));
    }
    Ok(ExitCode::SUCCESS)
}
