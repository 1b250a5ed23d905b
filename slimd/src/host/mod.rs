//! What slimd reads from the host kernel about a container's processes,
//! through `/proc` of the host: whether its init process catches a signal
//! (so a stop need not wait out a grace period), and a TCP connect made
//! inside its network namespace (the only connect that proves something
//! listens: the engine's port proxy accepts connections on its own).
//!
//! And whether a user may read or write a host path ([`access`]), for the
//! host sources of a client's mounts.
//!
//! Knows nothing about images, engines or sessions: callers pass host pids
//! and paths.

pub mod access;
pub mod netns;
pub mod signals;

pub use netns::connect_in_netns;
pub use signals::{SignalError, catches_signal, signal_number};
