//! What slimd reads from the host kernel about a container's processes,
//! through `/proc` of the host: whether its init process catches a signal
//! (so a stop need not wait out a grace period), and a TCP connect made
//! inside its network namespace (the only connect that proves something
//! listens: the engine's port proxy accepts connections on its own).
//!
//! Knows nothing about images, engines or sessions: callers pass host pids.

pub mod netns;
pub mod signals;

pub use netns::connect_in_netns;
pub use signals::{SignalError, catches_signal, signal_number};
