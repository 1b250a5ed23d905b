//! Why a path is in the slim image: the vocabulary every keep rule
//! ([`super::keep`], [`super::packages`], [`super::state`],
//! [`super::content`]) and the report share.

use serde::Serialize;

use super::process::AccessKind;
use crate::resolve::options::Ecosystem;

/// Why a path is in the slim image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum KeepReason {
    /// The app opened, stat'ed, checked, or read the link of this path.
    Used {
        how: AccessKind,
        pid: u32,
        comm: String,
    },
    /// A symlink passed on the way to a used path.
    SymlinkTo { path: String },
    /// The ELF interpreter of a program.
    ElfInterpreter { of: String },
    /// A shared library a program or library needs.
    ElfDependency { of: String },
    /// The interpreter named by a script's `#!` line.
    ScriptInterpreter { of: String },
    /// The source beside a used compiled Python file, or the reverse.
    PythonPair { of: String },
    /// Part of the tree (`root`) the app keeps its data in, kept whole with
    /// its original contents because the app wrote `written` there.
    StateDirectory { root: String, written: String },
    /// A scratch directory the app writes runtime files into (`written`),
    /// kept bare with its owner and mode.
    ScratchDirectory { written: String },
    /// Part of a VOLUME directory of the image (`path`), kept whole.
    Volume { path: String },
    /// Part of a tree (`root`) the app reads files from by name (`read` is
    /// the first), kept whole.
    ContentRoot { root: String, read: String },
    /// Part of what every working container needs.
    AlwaysKeep { why: String },
    /// Asked for by a flag.
    UserFlag { flag: String },
    /// Part of the app's own source tree, kept whole.
    AppSource { root: String },
    /// Part of a language package one of whose files (`used`) the app used.
    Package {
        ecosystem: Ecosystem,
        name: String,
        used: String,
    },
    /// Part of a package that a kept package (or the app) declares as a
    /// dependency.
    PackageDependency {
        ecosystem: Ecosystem,
        name: String,
        required_by: String,
    },
}

impl KeepReason {
    /// The trace shows the path used, or needed by what was used (as
    /// opposed to kept by a rule: always-keep, a flag, a tree or package
    /// kept whole).
    pub fn is_traced(&self) -> bool {
        matches!(
            self,
            KeepReason::Used { .. }
                | KeepReason::SymlinkTo { .. }
                | KeepReason::ElfInterpreter { .. }
                | KeepReason::ElfDependency { .. }
                | KeepReason::ScriptInterpreter { .. }
                | KeepReason::PythonPair { .. }
        )
    }

    /// Kept because every working container needs it.
    pub(super) fn always(why: &str) -> Self {
        KeepReason::AlwaysKeep { why: why.into() }
    }
}
