//! The end-to-end suites: real kernel, real Docker engine, as root (run by
//! `cargo xtask test`; each test is `#[ignore]`d so that a plain
//! `cargo test` skips it). One module per suite; the helpers they share are
//! the crate's own modules ([`crate::daemon`], [`crate::tracee`], the
//! fixture images).

mod build;
mod compose;
mod containerd;
mod containerd_build;
mod cri;
mod deploy;
mod edges;
mod engine_docker;
mod fixture_images;
mod granularity;
mod harden_docker;
mod harness;
mod html;
mod kernel_features;
mod names;
mod podman;
mod probe_docker;
mod probing;
mod servers;
mod ship;
mod slimd_image;
mod tracer;
mod verify;
mod watch;
