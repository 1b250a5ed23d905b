//! From raw events to image paths ([`process`]), and from image paths to a
//! keep set where every entry carries its reason ([`keep`]), with language
//! packages kept whole when used ([`packages`]), the trees the app reads
//! content from by name ([`content`]), and the directories its state lives
//! in ([`state`]); and, while the app runs, the ports it listens on
//! ([`listen`]).

pub mod content;
pub mod keep;
pub mod listen;
pub mod options;
pub mod packages;
pub mod process;
pub mod reason;
pub mod state;
#[cfg(test)]
mod tests;

pub use keep::{KeepInput, KeepSet, KeptRoot};
pub use listen::{ListenTracker, Listener};
pub use packages::Coverage;
pub use process::{Access, AccessKind, ExecRecord, NetOp, NetRecord, Observations, ProcessModel};
pub use reason::KeepReason;
