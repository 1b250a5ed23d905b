//! slimd: what is in a container image, what its app uses, and the smallest
//! image that still does the same job.
//!
//! The data flows one way (see `../shared/notes/architecture.md`):
//! `tracer` (kernel events) -> `session` (one build) -> `resolve` (events to
//! image paths, keep set) -> `image` (read, analyse, write) -> `engine` (load),
//! with `probe` exercising the app and `report` explaining the result. `api`
//! is the socket protocol between the daemon and the `slim` CLI.

pub mod api;
pub mod cli;
pub mod engine;
pub mod harden;
pub mod host;
pub mod image;
pub mod model;
pub mod probe;
pub mod report;
pub mod resolve;
pub mod session;
pub mod tracer;
