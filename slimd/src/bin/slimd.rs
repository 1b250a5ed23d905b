//! `slimd`: the daemon, and `slimd trace`, a debug entry point that runs one
//! container in a fresh tagged cgroup and prints its events as JSON lines.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "slimd",
    version,
    about = "slimd daemon: traces containers from outside with eBPF"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: slimd::cli::daemon::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Create the daemon's cgroup root (needs full root on hosts whose
    /// cgroup2 root is read-only to the daemon's capability set; the systemd
    /// unit runs it before `serve`).
    Prepare,
    /// Run `docker run ARGS` in a fresh tagged cgroup and print its events as
    /// JSON lines until the container exits.
    Trace(slimd::cli::daemon::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    slimd::cli::init_logging(false);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slimd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Some(Command::Trace(args)) => slimd::cli::daemon::trace(cli.serve, args).await,
            Some(Command::Prepare) => slimd::cli::daemon::prepare(&cli.serve),
            Some(Command::Serve) | None => slimd::cli::daemon::serve(cli.serve).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slimd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
