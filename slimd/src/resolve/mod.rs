//! From raw events to image paths ([`process`]), and from image paths to a
//! keep set where every entry carries its reason ([`keep`]), with language
//! packages kept whole when used ([`packages`]); and, while the app runs,
//! the ports it listens on ([`listen`]).

pub mod keep;
pub mod listen;
pub mod packages;
pub mod process;

pub use keep::{KeepInput, KeepReason, KeepSet};
pub use listen::{ListenTracker, Listener};
pub use packages::Coverage;
pub use process::{Access, AccessKind, ExecRecord, NetOp, NetRecord, Observations, ProcessModel};
