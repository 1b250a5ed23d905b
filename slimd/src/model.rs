//! The vocabulary of a session that the daemon, its reports and the API
//! share: what a user asks for ([`SessionRequest`]), what a session is
//! doing and how it ended ([`Phase`], [`Progress`], [`FailureKind`],
//! [`ApiError`]), and the facts `slim sessions` and `slim status` show.
//!
//! A leaf: its types name the keep options ([`crate::resolve::options`]) and
//! probe options ([`crate::probe::options`]) and nothing here imports a
//! module that imports it. `api::types` re-exports it for the wire.

use serde::{Deserialize, Serialize};

use crate::compose::ComposeBundle;
use crate::probe::host::HostCommandBatch;
use crate::probe::options::ProbeOptions;
use crate::resolve::options::KeepOptions;

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
    /// An offline OSV database (directory or `all.zip`, an absolute path the
    /// daemon reads): the build report gets the vulnerability delta.
    pub vuln_db: Option<std::path::PathBuf>,
    /// `slim build --output oci:PATH`: write the slim image as an OCI
    /// image-layout archive at this absolute path on the daemon's host
    /// instead of loading it into the engine.
    pub oci_output: Option<std::path::PathBuf>,
    /// `slim build --compose FILE`: build every chosen service of a Compose
    /// stack (the image, tag and run options above are then unused; probe,
    /// keep and verify options apply to every service).
    pub compose: Option<ComposeRequest>,
}

/// The Compose part of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComposeRequest {
    pub bundle: ComposeBundle,
    /// `--service`: the services to slim (empty: every enabled service).
    pub services: Vec<String>,
    /// `--profile`: active Compose profiles.
    pub profiles: Vec<String>,
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
    /// The caller may not do this (another user's session, a host path
    /// they may not read, a protected path).
    Forbidden,
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
            FailureKind::Forbidden => 8,
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
    /// The client that started the session runs these host commands
    /// (`--probe-cmd`) as its user and posts the results back; no one
    /// else runs them, and the daemon never does.
    HostCommands {
        batch: HostCommandBatch,
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
    /// The uid of the user who started it (`None`: before owners were
    /// recorded, read as root's).
    #[serde(default)]
    pub owner: Option<u32>,
    /// A watch session of a Kubernetes pod's container: which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
}

/// The Kubernetes pod and container a watch session profiles (read
/// through the CRI on a containerd node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The container's name in the pod spec.
    pub container: String,
}

impl std::fmt::Display for PodRef {
    /// `namespace/name container NAME`, as `kubectl` users name them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pod {}/{} container {}",
            self.namespace, self.name, self.container
        )
    }
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

/// Who sent a request: the peer's credentials, as the kernel gave them for
/// the connection (SO_PEERCRED, SO_PEERGROUPS). Sessions belong to their
/// caller's uid, and host paths are checked with these ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// Root (the daemon itself, watch mode, tests).
    pub fn root() -> Self {
        Caller::default()
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the caller's primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether the caller may see and act on a session of `owner` (root
    /// may act on every session; a session without an owner is root's).
    pub fn may_use(&self, owner: Option<u32>) -> bool {
        self.is_root() || owner.unwrap_or(0) == self.uid
    }
}

/// Error body of a failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: FailureKind,
    pub message: String,
}

/// A containerd the daemon talks to: its socket and the namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerdTarget {
    pub socket: std::path::PathBuf,
    pub namespace: String,
}

/// `POST /v1/containerd/load`: this request as JSON in the API's
/// `x-slimd-load` header, the OCI layout tar as the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    pub containerd: ContainerdTarget,
    /// The image name to create.
    pub name: String,
    /// Replace an existing image of that name.
    #[serde(default)]
    pub force: bool,
    /// Unpack the layers into this snapshotter; none: blobs and record only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshotter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn exit_codes_are_distinct() {
        let kinds = [
            FailureKind::Usage,
            FailureKind::ImageNotFound,
            FailureKind::TagExists,
            FailureKind::App,
            FailureKind::Verify,
            FailureKind::Cancelled,
            FailureKind::Forbidden,
            FailureKind::Internal,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.push(UNVERIFIED_EXIT_CODE);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len() + 1);
    }
}

#[cfg(test)]
mod compose_wire {
    use super::*;

    #[test]
    fn a_compose_request_round_trips() {
        let mut b = crate::compose::ComposeBundle {
            file: "/p/compose.yml".into(),
            project_dir: "/p".into(),
            text: "services: {}\n".into(),
            dot_env: Some("A=1\n".into()),
            ..Default::default()
        };
        b.env_files.insert("web.env".into(), "X=1\n".into());
        b.environment.insert("TAG".into(), "1".into());
        let r = SessionRequest {
            image: "compose:/p/compose.yml".into(),
            compose: Some(ComposeRequest {
                bundle: b,
                services: vec!["web".into()],
                profiles: vec![],
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SessionRequest>(&json).unwrap(), r);
    }
}
