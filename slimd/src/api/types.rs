//! Request and response types of the daemon's socket API, shared by the
//! server (`api::server`) and the client (`api::client`). JSON over HTTP/1.1
//! on a Unix socket; a session's progress streams as newline-delimited JSON.

use serde::{Deserialize, Serialize};

/// API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// Default socket path of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/slimd/slimd.sock";

/// What a session produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Trace, probe, and build the slim image.
    #[default]
    Build,
    /// Trace, probe and report; no image.
    Profile,
    /// A container someone else started, profiled in watch mode.
    Watch,
}

/// When to stop watching the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "when", content = "seconds")]
pub enum ContinueAfter {
    /// After the probes (default when the image exposes ports).
    Probes,
    /// When the container exits by itself (default for one-shot images).
    Exit,
    /// After this many seconds.
    Timeout(u64),
    /// When the client sends the continue signal (Enter or SIGUSR1 in `slim`).
    Signal,
}

impl ContinueAfter {
    /// Parses `probes`, `exit`, `timeout:N`, `signal` (also `enter`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "probes" | "probe" => Ok(Self::Probes),
            "exit" => Ok(Self::Exit),
            "signal" | "enter" | "sigusr1" => Ok(Self::Signal),
            _ => match s.strip_prefix("timeout:") {
                Some(n) => n
                    .parse()
                    .map(Self::Timeout)
                    .map_err(|_| format!("bad timeout in {s:?}: expected timeout:SECONDS")),
                None => Err(format!(
                    "unknown --continue-after {s:?}: expected probes, exit, timeout:N or signal"
                )),
            },
        }
    }
}

/// How the app's container is run (overrides of the image's config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// docker `-v`/`--mount` forms.
    pub mounts: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// Extra container ports to publish (on 127.0.0.1).
    pub expose: Vec<String>,
    /// Network mode for the container (default bridge).
    pub network: Option<String>,
}

/// How the app is exercised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeOptions {
    /// The HTTP probe (GET / and crawl) on exposed ports.
    pub http_probe: bool,
    /// Contents of a `--http-probe-file` (JSON list of requests).
    pub http_probe_file: Option<String>,
    /// `--exec-probe CMD`: commands run inside the container.
    pub exec_probes: Vec<String>,
    /// `--probe-cmd CMD`: host commands given SLIM_TARGET_HOST/PORT.
    pub probe_cmds: Vec<String>,
    pub continue_after: Option<ContinueAfter>,
    /// Seconds to wait for each port to answer.
    pub ready_timeout_secs: u64,
    /// Seconds for all probes together.
    pub probe_timeout_secs: u64,
    /// Seconds a one-shot container may run before it is stopped.
    pub run_timeout_secs: u64,
    /// Seconds each exec probe and host command may run (within
    /// `probe_timeout_secs`); one that runs longer is killed and reported.
    pub command_timeout_secs: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            http_probe: true,
            http_probe_file: None,
            exec_probes: Vec::new(),
            probe_cmds: Vec::new(),
            continue_after: None,
            ready_timeout_secs: 60,
            probe_timeout_secs: 300,
            run_timeout_secs: 600,
            command_timeout_secs: 60,
        }
    }
}

/// What goes into the slim image besides what the app used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeepOptions {
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
            let clean = crate::image::path::normalize(rest);
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
            OverrideTarget::Path(p) => write!(f, "{}:{p}", self.granularity.name()),
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

/// `POST /v1/sessions`: start a build or profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionRequest {
    pub kind: SessionKind,
    /// Image reference, e.g. `myapp:latest`.
    pub image: String,
    /// Target tag; default `<repo>.slim:<tag>`.
    pub tag: Option<String>,
    /// Overwrite an existing target tag.
    pub force: bool,
    pub run: RunOptions,
    pub probes: ProbeOptions,
    pub keep: KeepOptions,
    /// Run the slim image and compare (default: on when there was a probe).
    pub verify: Option<bool>,
    /// Also run the slim image under the generated seccomp profile and
    /// compare again.
    pub verify_seccomp: bool,
    /// Keep the session running if the client disconnects.
    pub detach: bool,
    /// Build from a finished watch/profile session's observations instead
    /// of running the app (`slim build --from-profile ID`).
    pub from_profile: Option<String>,
}

/// The phases of a session, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Inspect,
    Start,
    Probe,
    Collect,
    Assemble,
    Load,
    Verify,
    Report,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Inspect,
        Phase::Start,
        Phase::Probe,
        Phase::Collect,
        Phase::Assemble,
        Phase::Load,
        Phase::Verify,
        Phase::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Inspect => "inspect",
            Phase::Start => "start",
            Phase::Probe => "probe",
            Phase::Collect => "collect",
            Phase::Assemble => "assemble",
            Phase::Load => "load",
            Phase::Verify => "verify",
            Phase::Report => "report",
        }
    }
}

/// Why a session failed: decides the CLI's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Bad request or flags.
    Usage,
    /// The image does not exist locally.
    ImageNotFound,
    /// The target tag exists and `force` was not given.
    TagExists,
    /// The app did not start, exited with an error, or never answered.
    App,
    /// The slim image does not behave like the original.
    Verify,
    /// Cancelled (client went away, or asked).
    Cancelled,
    /// The daemon, kernel or engine failed.
    Internal,
}

/// Exit code of `slim build` when the slim image was built and loaded but
/// nothing verified it (no probe result to compare), unless the user turned
/// verify off (`--verify=false`), which exits 0.
pub const UNVERIFIED_EXIT_CODE: u8 = 7;

impl FailureKind {
    /// Exit code of `slim` for this failure.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Usage => 2,
            FailureKind::ImageNotFound => 3,
            FailureKind::TagExists => 4,
            FailureKind::App => 5,
            FailureKind::Verify => 6,
            FailureKind::Cancelled => 130,
            FailureKind::Internal => 1,
        }
    }
}

/// One line of a session's progress stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// The session exists (first line).
    Session {
        id: String,
    },
    PhaseStarted {
        phase: Phase,
    },
    PhaseDone {
        phase: Phase,
        ms: u64,
        detail: Option<String>,
    },
    /// A phase that does not apply (e.g. load in a profile).
    PhaseSkipped {
        phase: Phase,
        why: String,
    },
    /// Something the user should know, not an error.
    Note {
        message: String,
    },
    Warning {
        message: String,
    },
    /// Last line on success: the report summary.
    Done {
        summary: serde_json::Value,
    },
    /// Last line on failure.
    Failed {
        kind: FailureKind,
        message: String,
    },
}

/// A session as listed by `GET /v1/sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub kind: SessionKind,
    pub image: String,
    /// `running`, `succeeded`, `failed`, `cancelled`, `interrupted`.
    pub state: String,
    pub phase: Option<Phase>,
    /// Unix seconds.
    pub started: u64,
    pub finished: Option<u64>,
    pub target: Option<String>,
    pub message: Option<String>,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub daemon_version: String,
    pub pid: u32,
    pub kernel: String,
    pub btf: bool,
    /// `hybrid` or `unified`.
    pub cgroup_mode: Option<String>,
    pub cgroup_v2_mount: Option<String>,
    /// Why tracing is unavailable, when it is.
    pub tracer_error: Option<String>,
    /// The kernel features slimd uses, as probed at start-up.
    #[serde(default)]
    pub features: Vec<crate::tracer::features::Feature>,
    pub tracepoints: Vec<String>,
    pub engine: Option<crate::engine::EngineVersion>,
    pub engine_error: Option<String>,
    pub sessions_running: usize,
    pub state_dir: String,
}

/// `POST /v1/xray`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XrayRequest {
    pub image: String,
}

/// Error body of a failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: FailureKind,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_after_forms() {
        assert_eq!(ContinueAfter::parse("probes"), Ok(ContinueAfter::Probes));
        assert_eq!(ContinueAfter::parse("exit"), Ok(ContinueAfter::Exit));
        assert_eq!(
            ContinueAfter::parse("timeout:30"),
            Ok(ContinueAfter::Timeout(30))
        );
        assert_eq!(ContinueAfter::parse("signal"), Ok(ContinueAfter::Signal));
        assert!(ContinueAfter::parse("timeout:x").is_err());
        assert!(ContinueAfter::parse("later").is_err());
    }

    #[test]
    fn progress_lines_round_trip() {
        let p = Progress::PhaseDone {
            phase: Phase::Probe,
            ms: 12,
            detail: Some("3 requests".into()),
        };
        let line = serde_json::to_string(&p).unwrap();
        assert!(line.contains("\"event\":\"phase_done\""));
        assert_eq!(serde_json::from_str::<Progress>(&line).unwrap(), p);
    }

    #[test]
    fn request_defaults_fill_in() {
        let r: SessionRequest = serde_json::from_str(r#"{"image":"a:b"}"#).unwrap();
        assert_eq!(r.kind, SessionKind::Build);
        assert!(r.probes.http_probe);
        assert!(r.keep.include_cert_all);
        assert!(!r.detach);
    }

    #[test]
    fn granularity_overrides_parse_and_round_trip() {
        let o: GranularityOverride = "file:/usr/lib/python3/dist-packages/foo/".parse().unwrap();
        assert_eq!(o.granularity, Granularity::File);
        assert_eq!(
            o.target,
            OverrideTarget::Path("/usr/lib/python3/dist-packages/foo".into())
        );
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

    #[test]
    fn exit_codes_are_distinct() {
        let kinds = [
            FailureKind::Usage,
            FailureKind::ImageNotFound,
            FailureKind::TagExists,
            FailureKind::App,
            FailureKind::Verify,
            FailureKind::Cancelled,
            FailureKind::Internal,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.push(UNVERIFIED_EXIT_CODE);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len() + 1);
    }
}
