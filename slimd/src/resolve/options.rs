//! What the keep rules take from the user: [`KeepOptions`] (paths to keep
//! or drop, certificates, zoneinfo) and the granularity of language packages
//! with its per-path and per-package overrides. The API carries them as they
//! are (`api::types` re-exports them).

use serde::{Deserialize, Serialize};

/// What goes into the slim image besides what the app used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeepOptions {
    // Paths and patterns are text as reports show names: `\xNN` is a byte
    // (see `crate::image::name::parse`), so a non-UTF-8 path can be named.
    /// Paths kept whole (a directory with everything below it).
    pub include_paths: Vec<String>,
    /// Binaries kept with their shared-library closure.
    pub include_bins: Vec<String>,
    /// Keep /bin/sh (and what it needs).
    pub include_shell: bool,
    /// Glob patterns of paths never kept (applied last).
    pub exclude_patterns: Vec<String>,
    /// Paths kept exactly as in the original image (whole trees).
    pub preserve_paths: Vec<String>,
    /// CA certificate bundles and directories (default on).
    pub include_cert_all: bool,
    /// /usr/share/zoneinfo whole (default off).
    pub include_zoneinfo: bool,
    /// How much a used file of a language package keeps (default: the
    /// whole package and its declared dependencies).
    pub granularity: Granularity,
    /// Per-package or per-path exceptions to `granularity`; the most
    /// specific one wins (a package name beats a path, a longer path a
    /// shorter one).
    pub granularity_overrides: Vec<GranularityOverride>,
}

impl Default for KeepOptions {
    fn default() -> Self {
        Self {
            include_paths: Vec::new(),
            include_bins: Vec::new(),
            include_shell: false,
            exclude_patterns: Vec::new(),
            preserve_paths: Vec::new(),
            include_cert_all: true,
            include_zoneinfo: false,
            granularity: Granularity::Package,
            granularity_overrides: Vec::new(),
        }
    }
}

/// How much of a language package (or of the app's own source tree) one
/// used file keeps. Probes rarely reach every code path; a package is the
/// unit its authors ship and test, so keeping it whole is what makes the
/// next, unprobed request work. Operating-system files are always kept
/// file by file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Only the files the app used (and what the kernel loads for them).
    File,
    /// Whole packages and app source trees, plus declared dependencies.
    #[default]
    Package,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::File => "file",
            Granularity::Package => "package",
        }
    }
}

impl std::str::FromStr for Granularity {
    type Err = GranularityOverrideError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(Granularity::File),
            "package" => Ok(Granularity::Package),
            _ => Err(GranularityOverrideError::Mode(s.to_string())),
        }
    }
}

/// A language ecosystem whose packages slimd recognises, plus the app's
/// own source tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Distributions in `site-packages`/`dist-packages` (virtualenvs too).
    Python,
    /// Packages in `node_modules`.
    Node,
    /// Gems of a gem home (`specifications/*.gemspec`).
    Ruby,
    /// Jars, and the JDK's runtime.
    Java,
    /// The app's own source tree (WORKDIR, or its entrypoint script's directory).
    App,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 5] = [
        Ecosystem::Python,
        Ecosystem::Node,
        Ecosystem::Ruby,
        Ecosystem::Java,
        Ecosystem::App,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Python => "python",
            Ecosystem::Node => "node",
            Ecosystem::Ruby => "ruby",
            Ecosystem::Java => "java",
            Ecosystem::App => "app",
        }
    }
}

/// What a [`GranularityOverride`] applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OverrideTarget {
    /// Every package or app tree at, below, or around this image path.
    Path(String),
    /// One package by ecosystem and name (`python:Flask`, `node:@scope/x`).
    Package { ecosystem: Ecosystem, name: String },
}

/// `MODE:TARGET`, e.g. `file:/usr/lib/python3/dist-packages/foo`,
/// `package:node:lodash`, `file:/app`. On the wire it is that string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GranularityOverride {
    pub granularity: Granularity,
    pub target: OverrideTarget,
}

/// Why a granularity or override does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GranularityOverrideError {
    #[error("unknown granularity {0:?}: expected file or package")]
    Mode(String),
    #[error(
        "bad granularity override {0:?}: expected MODE:/PATH or MODE:ECOSYSTEM:NAME (MODE is file or package, ECOSYSTEM python, node, ruby, java or app)"
    )]
    Form(String),
}

impl std::str::FromStr for GranularityOverride {
    type Err = GranularityOverrideError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = || GranularityOverrideError::Form(s.to_string());
        let (mode, rest) = s.split_once(':').ok_or_else(form)?;
        let granularity: Granularity = mode.parse()?;
        let target = if rest.starts_with('/') {
            // A non-UTF-8 path is named as it is shown (`\xNN` is a byte).
            let clean = crate::image::path::normalize(&crate::image::name::parse(rest));
            OverrideTarget::Path(clean)
        } else {
            let (eco, name) = rest.split_once(':').ok_or_else(form)?;
            let ecosystem = Ecosystem::ALL
                .into_iter()
                .find(|e| e.name() == eco)
                .ok_or_else(form)?;
            if name.is_empty() {
                return Err(form());
            }
            OverrideTarget::Package {
                ecosystem,
                name: name.to_string(),
            }
        };
        Ok(GranularityOverride {
            granularity,
            target,
        })
    }
}

impl std::fmt::Display for GranularityOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            OverrideTarget::Path(p) => write!(
                f,
                "{}:{}",
                self.granularity.name(),
                crate::image::name::show(p)
            ),
            OverrideTarget::Package { ecosystem, name } => {
                write!(f, "{}:{}:{name}", self.granularity.name(), ecosystem.name())
            }
        }
    }
}

impl TryFrom<String> for GranularityOverride {
    type Error = GranularityOverrideError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<GranularityOverride> for String {
    fn from(o: GranularityOverride) -> String {
        o.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionRequest;

    #[test]
    fn granularity_overrides_parse_and_round_trip() {
        let o: GranularityOverride = "file:/usr/lib/python3/dist-packages/foo/".parse().unwrap();
        assert_eq!(o.granularity, Granularity::File);
        assert_eq!(
            o.target,
            OverrideTarget::Path("/usr/lib/python3/dist-packages/foo".into())
        );
        // A non-UTF-8 path is written as reports show it, and shown back so.
        let o: GranularityOverride = "file:/srv/caf\\xE9/".parse().unwrap();
        assert_eq!(
            o.target,
            OverrideTarget::Path(crate::image::name::decode(b"/srv/caf\xe9").into_owned())
        );
        assert_eq!(o.to_string(), "file:/srv/caf\\xe9");
        let o: GranularityOverride = "package:node:@scope/x".parse().unwrap();
        assert_eq!(
            o.target,
            OverrideTarget::Package {
                ecosystem: Ecosystem::Node,
                name: "@scope/x".into()
            }
        );
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(json, "\"package:node:@scope/x\"");
        assert_eq!(
            serde_json::from_str::<GranularityOverride>(&json).unwrap(),
            o
        );
        for bad in [
            "file",
            "files:/x",
            "file:python",
            "file:perl:x",
            "package:node:",
        ] {
            assert!(bad.parse::<GranularityOverride>().is_err(), "{bad}");
        }
        let r: SessionRequest = serde_json::from_str(r#"{"image":"a"}"#).unwrap();
        assert_eq!(r.keep.granularity, Granularity::Package);
        assert!(
            serde_json::from_str::<SessionRequest>(
                r#"{"image":"a","keep":{"granularity_overrides":["nope"]}}"#
            )
            .is_err()
        );
    }
}
