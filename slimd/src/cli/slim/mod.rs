//! `slim`: the client. Talks to the daemon through `api::client` only.
//! One file per subcommand family ([`build`] for build, profile and attach;
//! [`xray`]; [`diff`]; [`sbom`]; [`vuln`]; [`sessions`] for sessions, report and cancel;
//! [`status`]), the flags in [`args`], the progress display in [`progress`], writing HTML
//! pages in [`html`].
//!
//! Exit codes: 0 success; 1 daemon/engine/internal error; 2 bad usage;
//! 3 image not found; 4 target tag exists; 5 the app failed (did not start,
//! exited with an error, never answered); 6 verify failed; 7 built but
//! unverified (nothing could be compared; `--verify=false` exits 0);
//! 8 refused: it belongs to another user, or needs root; 130 cancelled. `slim diff` follows diff(1) instead: 0 same, 1 different,
//! 2 trouble (usage, an unreadable archive, the daemon or engine), 3 image
//! not found.

mod args;
mod build;
mod diff;
mod html;
mod load;
mod progress;
mod sbom;
mod sessions;
mod source;
mod status;
mod vuln;
mod xray;

use std::process::ExitCode;

pub use args::{
    BuildArgs, Cli, Command, DiffArgs, HtmlArgs, ImageSource, LoadArgs, SbomArgs, VulnArgs,
    XrayArgs, parse,
};

use crate::api::{
    client::{Client, ClientError},
    types::{FailureKind, SessionKind},
};

/// Runs `slim`.
pub async fn main(cli: Cli) -> ExitCode {
    let client = Client::new(&cli.socket);
    let r = match &cli.command {
        Command::Build(a) => build::session(&client, a, SessionKind::Build, cli.json).await,
        Command::Profile(a) => build::session(&client, a, SessionKind::Profile, cli.json).await,
        Command::Xray(a) => xray::xray(&client, a, cli.json).await,
        Command::Load(a) => load::load(&client, a, cli.json).await,
        Command::Diff(a) => return diff::diff(&client, a, cli.json).await,
        Command::Sbom(a) => sbom::sbom(&client, a).await,
        Command::Vuln(a) => vuln::vuln(&client, a, cli.json).await,
        Command::Sessions => sessions::sessions(&client, cli.json).await,
        Command::Report { id, html } => sessions::show_report(&client, id, html, cli.json).await,
        Command::Attach { id } => match client.follow(id).await {
            Ok(stream) => build::follow(&client, id.clone(), stream, cli.json, false, false).await,
            Err(e) => Err(e.into()),
        },
        Command::Cancel { id } => client
            .cancel(id)
            .await
            .map(|()| {
                eprintln!("cancelling session {id}");
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
        Command::Status => status::status(&client, cli.json).await,
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slim: {}", e.message);
            ExitCode::from(e.kind.exit_code())
        }
    }
}

/// A failure with its exit code.
struct Failure {
    kind: FailureKind,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

fn usage(message: String) -> Failure {
    Failure {
        kind: FailureKind::Usage,
        message,
    }
}
