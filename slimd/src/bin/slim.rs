//! `slim`: the command-line client of slimd (see `slimd::cli::slim`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = slimd::cli::slim::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(slimd::cli::slim::main(cli))
}
