//! The `slimd` subcommands: `serve` (the daemon), `prepare` (its one
//! privileged set-up step) and `trace` (debugging), one file each, with
//! their flags in [`args`].

mod args;
mod prepare;
mod serve;
mod trace;

pub use args::{ServeArgs, TraceArgs};
pub use prepare::prepare;
pub use serve::serve;
pub use trace::trace;
