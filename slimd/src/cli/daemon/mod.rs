//! The `slimd` subcommands: `serve` (the daemon) and `trace` (debugging),
//! one file each, with their flags in [`args`].

mod args;
mod serve;
mod trace;

pub use args::{ServeArgs, TraceArgs};
pub use serve::serve;
pub use trace::trace;
