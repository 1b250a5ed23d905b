//! The flags of `slim`: every clap type in one place, and how build and
//! profile flags become the daemon's [`SessionRequest`].

use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, Parser, Subcommand};

pub use super::source::ImageSource;
use crate::compose::{ComposeBundle, StackSpec};
use crate::sbom::SbomFormat;

use crate::api::types::{
    ApiSpecSource, ComposeRequest, ContinueAfter, DEFAULT_SOCKET, Granularity, GranularityOverride,
    GranularityOverrideError, KeepOptions, ProbeOptions, RunOptions, SessionKind, SessionRequest,
};

#[derive(Parser, Debug)]
#[command(
    name = "slim",
    version,
    about = "Minify container images by watching their app from outside (talks to slimd)"
)]
pub struct Cli {
    /// The daemon's socket.
    #[arg(long, env = "SLIMD_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Machine-readable output: progress as JSON lines, results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Trace the app, probe it, and build the smallest image that does the same job.
    Build(BuildArgs),
    /// Trace the app and report what it used; no image is built.
    Profile(BuildArgs),
    /// Show what an image contains.
    Xray(XrayArgs),
    /// A bill of materials (SPDX 2.3 or CycloneDX 1.5 JSON) of an image.
    Sbom(SbomArgs),
    /// Advisories of an image from an offline OSV database, and with
    /// --against its slim image, which slimming removed.
    Vuln(VulnArgs),
    /// Load an OCI image layout archive into containerd (--containerd is
    /// required; the writer that builds on containerd use, on its own).
    Load(LoadArgs),
    /// What differs between two images (exit 0 same, 1 different, 2 trouble, 3 not found).
    Diff(DiffArgs),
    /// List sessions.
    Sessions,
    /// Show a session's report.
    Report {
        id: String,
        #[command(flatten)]
        html: HtmlArgs,
    },
    /// Follow a session's progress to its end (e.g. after --detach), with
    /// the same output and exit code as the command that started it.
    Attach { id: String },
    /// Cancel a running session.
    Cancel { id: String },
    /// Daemon, kernel and engine facts.
    Status,
}

/// Flags of `build` and `profile`.
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// The image to minify (must exist locally; slimd never pulls).
    #[arg(required_unless_present_any = ["from_profile", "compose"], conflicts_with = "compose")]
    pub image: Option<String>,
    /// A Compose file: slim its services as one stack (each chosen service
    /// gets `<image>.slim` and its own report; `compose.slim.yml` is written
    /// beside the file).
    #[arg(long, value_name = "FILE", conflicts_with = "from_profile")]
    pub compose: Option<PathBuf>,
    /// With --compose: a service to slim (repeatable; default every enabled
    /// service). The others run untraced.
    #[arg(long, value_name = "NAME", requires = "compose")]
    pub service: Vec<String>,
    /// With --compose: an active Compose profile (repeatable).
    #[arg(long, value_name = "NAME", requires = "compose")]
    pub profile: Vec<String>,
    /// Build from a finished session's saved profile (a watch-mode or
    /// profile session) instead of running the app again.
    #[arg(long, value_name = "SESSION")]
    pub from_profile: Option<String>,
    /// Target tag (default `<repo>.slim:<tag>`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Replace an existing target tag.
    #[arg(long)]
    pub force: bool,
    /// Write the slim image as an OCI image-layout archive at PATH (on the
    /// daemon's host) instead of loading it into the engine: `oci:PATH`.
    #[arg(long, value_name = "oci:PATH", conflicts_with = "compose")]
    pub output: Option<String>,

    /// GET / and crawl on exposed ports.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub http_probe: bool,
    /// JSON list of extra requests: method, path, port, headers, body, expect_status.
    #[arg(long, value_name = "FILE")]
    pub http_probe_file: Option<PathBuf>,
    /// An OpenAPI/Swagger document (JSON or YAML) whose every operation is
    /// requested: a path on the app (starts with `/` and is not a local
    /// file), or a local file (repeatable; documents at the usual paths
    /// such as /openapi.json are found without it).
    #[arg(long, value_name = "PATH|FILE")]
    pub http_probe_apispec: Vec<String>,
    /// A local OpenAPI/Swagger document (DockerSlim's flag; repeatable).
    #[arg(long, value_name = "FILE")]
    pub http_probe_apispec_file: Vec<PathBuf>,
    /// A command run inside the container (repeatable).
    #[arg(long, value_name = "CMD")]
    pub exec_probe: Vec<String>,
    /// A host command run against the app, given SLIM_TARGET_HOST/PORT (repeatable).
    #[arg(long, value_name = "CMD")]
    pub probe_cmd: Vec<String>,
    /// probes | exit | timeout:N | signal (Enter or SIGUSR1).
    #[arg(long, value_name = "WHEN")]
    pub continue_after: Option<String>,
    /// Seconds to wait for the app's ports to answer.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub ready_timeout: u64,
    /// Seconds for all probes.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub probe_timeout: u64,
    /// Seconds a one-shot container may run.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub run_timeout: u64,
    /// Seconds each --exec-probe and --probe-cmd may run before it is
    /// killed and reported as timed out.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub command_timeout: u64,

    /// Override the entrypoint (a command line, or a JSON array).
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Override the command (a command line, or a JSON array).
    #[arg(long, allow_hyphen_values = true)]
    pub cmd: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// A docker -v or --mount spec (repeatable).
    #[arg(long)]
    pub mount: Vec<String>,
    #[arg(long)]
    pub workdir: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Extra container port to publish and probe (repeatable).
    #[arg(long)]
    pub expose: Vec<String>,
    /// Docker network for the container.
    #[arg(long)]
    pub network: Option<String>,

    /// Keep a path whole (repeatable). A byte that is not UTF-8 is written
    /// `\xNN`, as reports show it (`/srv/caf\xe9.html`).
    #[arg(long)]
    pub include_path: Vec<String>,
    /// Keep a binary with its libraries (repeatable).
    #[arg(long)]
    pub include_bin: Vec<String>,
    /// Keep /bin/sh.
    #[arg(long)]
    pub include_shell: bool,
    /// Never keep paths matching this glob (repeatable); `\xNN` is a byte.
    #[arg(long)]
    pub exclude_pattern: Vec<String>,
    /// Keep a path exactly as in the original (repeatable); `\xNN` is a
    /// byte.
    #[arg(long)]
    pub preserve_path: Vec<String>,
    /// Keep CA certificate bundles and directories.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub include_cert_all: bool,
    /// Keep /usr/share/zoneinfo.
    #[arg(long)]
    pub include_zoneinfo: bool,
    /// file: keep only the files the app used. package: keep each used
    /// language package whole with its declared dependencies, and the app's
    /// source tree whole (OS files stay file by file).
    #[arg(long, default_value = "package", value_name = "file|package", value_parser = parse_granularity)]
    pub granularity: Granularity,
    /// MODE:/PATH or MODE:ECOSYSTEM:NAME, e.g. `file:/usr/lib/python3/dist-packages/foo`,
    /// `package:node:lodash` (repeatable; the most specific wins).
    #[arg(long, value_name = "OVERRIDE", value_parser = parse_override)]
    pub granularity_override: Vec<GranularityOverride>,

    /// Run the slim image and compare with the original (default: when probed).
    #[arg(long, action = ArgAction::Set, value_name = "BOOL")]
    pub verify: Option<bool>,
    /// Verify again under the generated seccomp profile.
    #[arg(long)]
    pub verify_seccomp: bool,
    /// Start the session and return at once, printing its id (follow it
    /// with `slim attach ID`). Not with --probe-cmd: host commands run in
    /// this client.
    #[arg(long, conflicts_with = "probe_cmd")]
    pub detach: bool,
    /// An offline OSV database (a directory of records or an `all.zip`):
    /// the report and summary get the advisories before and after.
    #[arg(long, value_name = "PATH")]
    pub vuln_db: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct XrayArgs {
    /// An image in the engine (through the daemon).
    pub image: Option<String>,
    /// A `docker save` archive or OCI layout (read locally, no daemon needed).
    #[arg(long, value_name = "PATH", conflicts_with = "containerd")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub containerd: ContainerdArgs,
    #[command(flatten)]
    pub html: HtmlArgs,
}

/// `--containerd [SOCKET] [--namespace NS]`: the daemon reads or writes the
/// image in containerd instead of the engine.
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerdArgs {
    /// Use containerd's image store, through this socket (the daemon
    /// connects to it).
    #[arg(
        long,
        value_name = "SOCKET",
        num_args = 0..=1,
        default_missing_value = crate::containerd::DEFAULT_SOCKET
    )]
    pub containerd: Option<PathBuf>,
    /// The containerd namespace (kubelet's is k8s.io).
    #[arg(long, value_name = "NS", default_value = crate::containerd::DEFAULT_NAMESPACE, requires = "containerd")]
    pub namespace: String,
}

impl ContainerdArgs {
    /// The daemon's target, when --containerd was given.
    pub fn target(&self) -> Option<crate::api::types::ContainerdTarget> {
        self.containerd
            .as_ref()
            .map(|socket| crate::api::types::ContainerdTarget {
                socket: socket.clone(),
                namespace: self.namespace.clone(),
            })
    }
}

/// `slim load`: an OCI layout archive into containerd's image store.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub containerd: ContainerdArgs,
    /// The OCI image layout tar to load.
    #[arg(long, value_name = "ARCHIVE")]
    pub file: PathBuf,
    /// The image name to create in containerd.
    #[arg(long, value_name = "NAME")]
    pub tag: String,
    /// Replace an image of that name that exists already.
    #[arg(long)]
    pub force: bool,
    /// The snapshotter the layers are unpacked into (so kubelet can run
    /// the image).
    #[arg(long, value_name = "NAME", default_value = crate::containerd::unpack::DEFAULT_SNAPSHOTTER)]
    pub snapshotter: String,
    /// Write the blobs and the image record only; do not unpack.
    #[arg(long, conflicts_with = "snapshotter")]
    pub no_unpack: bool,
}

/// `--html [-o FILE]` of `report`, `xray` and `diff`.
#[derive(Args, Debug, Clone, Default)]
pub struct HtmlArgs {
    /// Write the report as one self-contained HTML page (no network needed
    /// to view it) instead of text.
    #[arg(long)]
    pub html: bool,
    /// Where the page goes (default: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE", requires = "html")]
    pub output: Option<PathBuf>,
}

/// Flags of `diff`. Each side is an image in the engine (read through the
/// daemon) or, given with `--file`, an archive read here; the sides are A
/// then B in the order they appear on the command line.
#[derive(Args, Debug, Default)]
pub struct DiffArgs {
    /// Images in the engine.
    #[arg(value_name = "IMAGE", num_args = 0..=2)]
    pub images: Vec<String>,
    /// A `docker save` archive or OCI layout (repeat for both sides).
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub file: Vec<PathBuf>,
    /// List every path that differs, not just the summary.
    #[arg(long)]
    pub details: bool,
    #[command(flatten)]
    pub html: HtmlArgs,
    /// The sides in command-line order (filled by [`DiffArgs::order`]).
    #[arg(skip)]
    pub sides: Vec<ImageSource>,
}

/// Flags of `vuln`.
#[derive(Args, Debug)]
pub struct VulnArgs {
    /// An image in the engine (its `docker save` stream comes through the daemon).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub image: Option<String>,
    /// A `docker save` archive or OCI layout.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The slim image to compare with (an image in the engine).
    #[arg(long, value_name = "SLIM", conflicts_with = "against_file")]
    pub against: Option<String>,
    /// The slim image to compare with, as an archive.
    #[arg(long, value_name = "PATH")]
    pub against_file: Option<PathBuf>,
    /// The OSV database: a directory of records or an `all.zip` (or a
    /// directory of them).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Also run this scanner on both images (it must be on PATH) and show
    /// its delta beside ours; needs --against.
    #[arg(long, value_enum)]
    pub scanner: Vec<crate::vuln::scanner::Scanner>,
}

impl VulnArgs {
    pub fn source(&self) -> ImageSource {
        match (&self.image, &self.file) {
            (_, Some(f)) => ImageSource::File(f.clone()),
            (Some(i), None) => ImageSource::Image(i.clone()),
            (None, None) => unreachable!("clap requires one"),
        }
    }

    pub fn against(&self) -> Option<ImageSource> {
        match (&self.against, &self.against_file) {
            (_, Some(f)) => Some(ImageSource::File(f.clone())),
            (Some(i), None) => Some(ImageSource::Image(i.clone())),
            (None, None) => None,
        }
    }
}

/// Flags of `sbom`.
#[derive(Args, Debug)]
pub struct SbomArgs {
    /// An image in the engine (its `docker save` stream comes through the daemon).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub image: Option<String>,
    /// A `docker save` archive or OCI layout (read here, no daemon needed).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "spdx-json")]
    pub format: SbomFormat,
    /// Write the document here instead of standard output.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

impl SbomArgs {
    pub fn source(&self) -> ImageSource {
        match (&self.image, &self.file) {
            (_, Some(f)) => ImageSource::File(f.clone()),
            (Some(i), None) => ImageSource::Image(i.clone()),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

impl DiffArgs {
    /// Puts the sides in the order the user wrote them, from clap's
    /// argument indices.
    pub fn order(&mut self, m: &clap::ArgMatches) {
        let mut sides: Vec<(usize, ImageSource)> = Vec::new();
        if let Some(idx) = m.indices_of("images") {
            sides.extend(idx.zip(self.images.iter().cloned().map(ImageSource::Image)));
        }
        if let Some(idx) = m.indices_of("file") {
            sides.extend(idx.zip(self.file.iter().cloned().map(ImageSource::File)));
        }
        sides.sort_by_key(|(i, _)| *i);
        self.sides = sides.into_iter().map(|(_, s)| s).collect();
    }
}

/// Parses `slim`'s command line (the diff sides in command-line order).
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Diff(d), Some(m)) = (&mut cli.command, matches.subcommand_matches("diff")) {
        d.order(m);
    }
    cli
}

fn parse_granularity(s: &str) -> Result<Granularity, String> {
    s.parse()
        .map_err(|e: GranularityOverrideError| e.to_string())
}

fn parse_override(s: &str) -> Result<GranularityOverride, String> {
    s.parse()
        .map_err(|e: GranularityOverrideError| e.to_string())
}

/// Splits `--entrypoint`/`--cmd`: a JSON array, or a shell-like line.
fn command_words(s: &str) -> Result<Vec<String>, String> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s).map_err(|e| format!("bad JSON array {s:?}: {e}"));
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    crate::probe::split_command_line(s).map_err(|e| e.to_string())
}

impl BuildArgs {
    /// `--compose`: the file and what it refers to, checked here so a bad
    /// file fails before the daemon starts anything.
    fn compose_request(&self) -> Result<Option<ComposeRequest>, String> {
        let Some(file) = &self.compose else {
            return Ok(None);
        };
        let bundle =
            ComposeBundle::read(file, |n| std::env::var(n).ok()).map_err(|e| e.to_string())?;
        StackSpec::parse(&bundle, &self.service, &self.profile).map_err(|e| e.to_string())?;
        Ok(Some(ComposeRequest {
            bundle,
            services: self.service.clone(),
            profiles: self.profile.clone(),
        }))
    }

    /// The daemon's request for these flags.
    pub fn request(&self, kind: SessionKind) -> Result<SessionRequest, String> {
        let continue_after = self
            .continue_after
            .as_deref()
            .map(ContinueAfter::parse)
            .transpose()?;
        let http_probe_file = self
            .http_probe_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("--http-probe-file {}: {e}", p.display()))
            })
            .transpose()?;
        let read_spec = |p: &Path, flag: &str| {
            std::fs::read_to_string(p)
                .map(|contents| ApiSpecSource::File {
                    name: p.display().to_string(),
                    contents,
                })
                .map_err(|e| format!("{flag} {}: {e}", p.display()))
        };
        let mut http_probe_apispec = Vec::new();
        for v in &self.http_probe_apispec {
            let local = Path::new(v);
            http_probe_apispec.push(if v.starts_with('/') && !local.is_file() {
                ApiSpecSource::Path(v.clone())
            } else {
                read_spec(local, "--http-probe-apispec")?
            });
        }
        for p in &self.http_probe_apispec_file {
            http_probe_apispec.push(read_spec(p, "--http-probe-apispec-file")?);
        }
        Ok(SessionRequest {
            kind,
            image: match &self.compose {
                Some(f) => format!("compose:{}", f.display()),
                None => self.image.clone().unwrap_or_default(),
            },
            tag: self.tag.clone(),
            force: self.force,
            run: RunOptions {
                entrypoint: self.entrypoint.as_deref().map(command_words).transpose()?,
                cmd: self.cmd.as_deref().map(command_words).transpose()?,
                env: self.env.clone(),
                mounts: self.mount.clone(),
                workdir: self.workdir.clone(),
                user: self.user.clone(),
                expose: self.expose.clone(),
                network: self.network.clone(),
            },
            probes: ProbeOptions {
                http_probe: self.http_probe,
                http_probe_file,
                http_probe_apispec,
                exec_probes: self.exec_probe.clone(),
                probe_cmds: self.probe_cmd.clone(),
                continue_after,
                ready_timeout_secs: self.ready_timeout,
                probe_timeout_secs: self.probe_timeout,
                run_timeout_secs: self.run_timeout,
                command_timeout_secs: self.command_timeout,
            },
            keep: KeepOptions {
                include_paths: self.include_path.clone(),
                include_bins: self.include_bin.clone(),
                include_shell: self.include_shell,
                exclude_patterns: self.exclude_pattern.clone(),
                preserve_paths: self.preserve_path.clone(),
                include_cert_all: self.include_cert_all,
                include_zoneinfo: self.include_zoneinfo,
                granularity: self.granularity,
                granularity_overrides: self.granularity_override.clone(),
            },
            verify: if kind == SessionKind::Profile {
                Some(false)
            } else {
                self.verify
            },
            verify_seccomp: self.verify_seccomp && kind == SessionKind::Build,
            detach: self.detach,
            from_profile: self.from_profile.clone(),
            oci_output: self.output.as_deref().map(oci_output_path).transpose()?,
            compose: self.compose_request()?,
            // The daemon reads it: an absolute path, checked here first.
            vuln_db: self
                .vuln_db
                .as_deref()
                .map(|p| {
                    std::fs::canonicalize(p).map_err(|e| format!("--vuln-db {}: {e}", p.display()))
                })
                .transpose()?,
        })
    }
}

/// `--output oci:PATH` as an absolute path (relative to the client's
/// directory, which the daemon need not share), its directory canonical.
fn oci_output_path(spec: &str) -> Result<PathBuf, String> {
    let path = spec
        .strip_prefix("oci:")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            format!("--output {spec}: give oci:PATH (an OCI image-layout archive to write)")
        })?;
    let path = Path::new(path);
    let name = path
        .file_name()
        .ok_or_else(|| format!("--output {spec}: PATH names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| format!("--output {spec}: {}: {e}", dir.display()))?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_output_paths() {
        let tmp = std::env::temp_dir().canonicalize().unwrap();
        let spec = format!("oci:{}/slim.tar", tmp.display());
        assert_eq!(oci_output_path(&spec).unwrap(), tmp.join("slim.tar"));
        for bad in [
            "slim.tar",
            "oci:",
            "docker:x",
            "oci:/nonexistent-dir-x/a.tar",
        ] {
            assert!(oci_output_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_words_accept_json_and_lines() {
        assert_eq!(
            command_words(r#"["/bin/sh","-c","echo hi"]"#).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            command_words("python3 app.py --port 80").unwrap(),
            ["python3", "app.py", "--port", "80"]
        );
        assert!(command_words("").unwrap().is_empty());
        assert!(command_words("[oops").is_err());
    }

    #[test]
    fn flags_become_a_request() {
        let cli = Cli::try_parse_from([
            "slim",
            "build",
            "app:1",
            "--http-probe=false",
            "--continue-after",
            "timeout:5",
            "--include-path",
            "/etc/app",
            "--exclude-pattern",
            "/usr/share/doc/**",
            "--include-cert-all=false",
            "--env",
            "A=1",
            "--expose",
            "9000",
            "--verify=false",
        ])
        .unwrap();
        let Command::Build(a) = cli.command else {
            panic!()
        };
        let r = a.request(SessionKind::Build).unwrap();
        assert!(!r.probes.http_probe);
        assert_eq!(r.probes.continue_after, Some(ContinueAfter::Timeout(5)));
        assert_eq!(r.keep.include_paths, ["/etc/app"]);
        assert!(!r.keep.include_cert_all);
        assert_eq!(r.run.env, ["A=1"]);
        assert_eq!(r.run.expose, ["9000"]);
        assert_eq!(r.verify, Some(false));
        assert_eq!(r.keep.granularity, Granularity::Package);
    }

    #[test]
    fn granularity_flags() {
        let cli = Cli::try_parse_from([
            "slim",
            "build",
            "app:1",
            "--granularity",
            "file",
            "--granularity-override",
            "package:/app",
            "--granularity-override",
            "package:python:flask",
        ])
        .unwrap();
        let Command::Build(a) = cli.command else {
            panic!()
        };
        let r = a.request(SessionKind::Build).unwrap();
        assert_eq!(r.keep.granularity, Granularity::File);
        let shown: Vec<String> = r
            .keep
            .granularity_overrides
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(shown, ["package:/app", "package:python:flask"]);
        assert!(Cli::try_parse_from(["slim", "build", "x", "--granularity", "dir"]).is_err());
        assert!(
            Cli::try_parse_from(["slim", "build", "x", "--granularity-override", "file"]).is_err()
        );
    }

    #[test]
    fn apispec_is_a_path_on_the_app_or_a_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api.yaml");
        std::fs::write(&file, "openapi: 3.0.0\npaths: {}\n").unwrap();
        let file = file.to_str().unwrap();
        let request = |args: &[&str]| {
            let mut all = vec!["slim", "build", "x"];
            all.extend_from_slice(args);
            let Command::Build(a) = Cli::try_parse_from(all).unwrap().command else {
                panic!()
            };
            a.request(SessionKind::Build)
        };
        let r = request(&[
            "--http-probe-apispec",
            "/internal/openapi.json",
            "--http-probe-apispec",
            file,
            "--http-probe-apispec-file",
            file,
        ])
        .unwrap();
        let local = ApiSpecSource::File {
            name: file.to_string(),
            contents: "openapi: 3.0.0\npaths: {}\n".into(),
        };
        assert_eq!(
            r.probes.http_probe_apispec,
            vec![
                ApiSpecSource::Path("/internal/openapi.json".into()),
                local.clone(),
                local
            ]
        );
        // A relative name is a local file, which must exist.
        let err = request(&["--http-probe-apispec", "no-such-spec.json"]).unwrap_err();
        assert!(
            err.contains("--http-probe-apispec no-such-spec.json"),
            "{err}"
        );
        let err = request(&["--http-probe-apispec-file", "/no/such/spec.json"]).unwrap_err();
        assert!(err.contains("/no/such/spec.json"), "{err}");
    }

    #[test]
    fn bad_continue_after_is_a_usage_error() {
        let cli = Cli::try_parse_from(["slim", "build", "x", "--continue-after", "soon"]).unwrap();
        let Command::Build(a) = cli.command else {
            panic!()
        };
        assert!(a.request(SessionKind::Build).is_err());
    }

    #[test]
    fn html_flags_of_report_and_xray() {
        let Command::Report { id, html } =
            Cli::try_parse_from(["slim", "report", "s1", "--html", "-o", "r.html"])
                .unwrap()
                .command
        else {
            panic!()
        };
        assert_eq!(id, "s1");
        assert!(html.html);
        assert_eq!(html.output.as_deref(), Some(Path::new("r.html")));
        let Command::Xray(a) = Cli::try_parse_from(["slim", "xray", "--file", "x.tar", "--html"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert!(a.html.html && a.html.output.is_none());
        // -o means nothing without --html.
        let e = Cli::try_parse_from(["slim", "report", "s1", "-o", "r.html"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn containerd_flags() {
        let Command::Xray(a) = Cli::try_parse_from(["slim", "xray", "--containerd", "img"])
            .unwrap()
            .command
        else {
            panic!()
        };
        // A word right after --containerd is its SOCKET (clap's optional
        // value): the image is then missing, which xray says.
        assert_eq!(a.containerd.containerd.as_deref(), Some(Path::new("img")));
        assert!(a.image.is_none());
        let Command::Xray(a) = Cli::try_parse_from([
            "slim",
            "xray",
            "--containerd=/run/c.sock",
            "--namespace",
            "ns1",
            "img",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let t = a.containerd.target().unwrap();
        assert_eq!(t.socket, Path::new("/run/c.sock"));
        assert_eq!(t.namespace, "ns1");
        assert_eq!(a.image.as_deref(), Some("img"));
        let Command::Xray(a) = Cli::try_parse_from(["slim", "xray", "img", "--containerd"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let t = a.containerd.target().unwrap();
        assert_eq!(t.socket, Path::new(crate::containerd::DEFAULT_SOCKET));
        assert_eq!(t.namespace, "k8s.io");
        // --namespace means nothing without --containerd; --file is local.
        assert!(Cli::try_parse_from(["slim", "xray", "img", "--namespace", "x"]).is_err());
        assert!(Cli::try_parse_from(["slim", "xray", "--file", "a.tar", "--containerd"]).is_err());
        let Command::Load(l) = Cli::try_parse_from([
            "slim",
            "load",
            "--containerd",
            "--file",
            "a.tar",
            "--tag",
            "x:1",
            "--force",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert!(l.force && l.containerd.target().is_some() && l.tag == "x:1");
    }
}
