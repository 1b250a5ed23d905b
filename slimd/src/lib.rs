//! slimd: what is in a container image, what its app uses, and the smallest
//! image that still does the same job.
//!
//! The data flows one way (the README's "How it is built" has the map):
//! `stack` (a Compose stack: one session per service, run together) ->
//! `tracer` (kernel events) -> `session` (one build) -> `resolve` (events to
//! image paths, keep set) -> `image` (read, analyse, write) -> `engine` (load),
//! with `probe` exercising the app, `harden` writing the profiles learned
//! from the run, `host` reading what the host kernel says about a
//! container's processes, `compose` reading Compose files, and `report`
//! explaining the result. `model` is the
//! session vocabulary everyone shares; `api` is the socket protocol between
//! the daemon and the `slim` CLI, and `cli` their front ends. Beside the
//! image library, `inventory` (one package list across every database),
//! `diff`, `sbom` and `vuln` answer *what do you ship*: pure functions over
//! read images, usable on archives without a daemon. No module imports one
//! that imports it back.

pub mod api;
pub mod cli;
pub mod compose;
pub mod containerd;
pub mod diff;
pub mod engine;
pub mod harden;
pub mod host;
pub mod image;
pub mod inventory;
pub mod model;
pub mod probe;
pub mod report;
pub mod resolve;
pub mod sbom;
pub mod session;
pub mod stack;
#[cfg(test)]
mod testing;
pub mod tracer;
pub mod vuln;
