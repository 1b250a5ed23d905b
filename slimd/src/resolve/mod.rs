//! From raw events to image paths, and from image paths to a keep set where
//! every entry carries its reason.

pub mod process;

pub use process::{
    Access, AccessKind, ExecRecord, NetOp, NetRecord, Observations, ProcessModel, lexical_clean,
};
