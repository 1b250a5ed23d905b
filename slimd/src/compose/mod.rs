//! Compose files: what `slim build --compose FILE` reads and sends, and the
//! stack the daemon brings up from it.
//!
//! A pure library (no engine, no daemon): [`ComposeBundle`] is the file and
//! the files it refers to (`.env`, `env_file:`), read by the client;
//! [`StackSpec::parse`] turns a bundle into the services to run, in
//! dependency order, with every part slimd does not support refused by the
//! key that names it; [`override_file`] writes `compose.slim.yml`. The
//! Compose model itself comes from the `docker-compose-types` crate.

pub mod bundle;
pub mod error;
pub mod interpolate;
pub mod override_file;
pub mod spec;

pub use bundle::ComposeBundle;
pub use error::ComposeError;
pub use spec::{
    Condition, Dependency, HealthSpec, MountSpec, ServiceSpec, SlimExtension, StackSpec,
};
