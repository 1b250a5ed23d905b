//! `slim`: the client. Talks to the daemon through `api::client` only.
//!
//! Exit codes: 0 success; 1 daemon/engine/internal error; 2 bad usage;
//! 3 image not found; 4 target tag exists; 5 the app failed (did not start,
//! exited with an error, never answered); 6 verify failed; 7 built but
//! unverified (nothing could be compared; `--verify=false` exits 0);
//! 130 cancelled.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use clap::{ArgAction, Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    api::{
        client::{Client, ClientError, ProgressStream},
        types::{
            ContinueAfter, DEFAULT_SOCKET, FailureKind, Granularity, GranularityOverride,
            GranularityOverrideError, KeepOptions, Phase, ProbeOptions, Progress, RunOptions,
            SessionKind, SessionRequest, UNVERIFIED_EXIT_CODE,
        },
    },
    report,
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
    /// List sessions.
    Sessions,
    /// Show a session's report.
    Report { id: String },
    /// Follow a running session's progress (e.g. after --detach).
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
    #[arg(required_unless_present = "from_profile")]
    pub image: Option<String>,
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

    /// GET / and crawl on exposed ports.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub http_probe: bool,
    /// JSON list of extra requests: method, path, port, headers, body, expect_status.
    #[arg(long, value_name = "FILE")]
    pub http_probe_file: Option<PathBuf>,
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

    /// Keep a path whole (repeatable).
    #[arg(long)]
    pub include_path: Vec<String>,
    /// Keep a binary with its libraries (repeatable).
    #[arg(long)]
    pub include_bin: Vec<String>,
    /// Keep /bin/sh.
    #[arg(long)]
    pub include_shell: bool,
    /// Never keep paths matching this glob (repeatable).
    #[arg(long)]
    pub exclude_pattern: Vec<String>,
    /// Keep a path exactly as in the original (repeatable).
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
    /// Keep the session running if this command is interrupted.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct XrayArgs {
    /// An image in the engine (through the daemon).
    pub image: Option<String>,
    /// A `docker save` archive or OCI layout (read locally, no daemon needed).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
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
    fn request(&self, kind: SessionKind) -> Result<SessionRequest, String> {
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
        Ok(SessionRequest {
            kind,
            image: self.image.clone().unwrap_or_default(),
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
        })
    }
}

/// Runs `slim`.
pub async fn main(cli: Cli) -> ExitCode {
    let client = Client::new(&cli.socket);
    let r = match &cli.command {
        Command::Build(a) => session(&client, a, SessionKind::Build, cli.json).await,
        Command::Profile(a) => session(&client, a, SessionKind::Profile, cli.json).await,
        Command::Xray(a) => xray(&client, a, cli.json).await,
        Command::Sessions => sessions(&client, cli.json).await,
        Command::Report { id } => show_report(&client, id, cli.json).await,
        Command::Attach { id } => match client.follow(id).await {
            Ok(stream) => follow(&client, id.clone(), stream, cli.json, false).await,
            Err(e) => Err(e.into()),
        },
        Command::Cancel { id } => client
            .cancel(id)
            .await
            .map(|()| {
                eprintln!("cancelling session {id}");
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
        Command::Status => status(&client, cli.json).await,
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slim: {}", e.message);
            ExitCode::from(e.kind.exit_code())
        }
    }
}

/// A failure with its exit code.
struct Failure {
    kind: FailureKind,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

fn usage(message: String) -> Failure {
    Failure {
        kind: FailureKind::Usage,
        message,
    }
}

async fn session(
    client: &Client,
    args: &BuildArgs,
    kind: SessionKind,
    json: bool,
) -> Result<ExitCode, Failure> {
    let req = args.request(kind).map_err(usage)?;
    let signal_continue = matches!(req.probes.continue_after, Some(ContinueAfter::Signal));
    let mut stream = client.start(&req).await?;
    // The first line names the session.
    let id = match stream.next().await? {
        Some(Progress::Session { id }) => id,
        other => {
            return Err(Failure {
                kind: FailureKind::Internal,
                message: format!("unexpected first progress line: {other:?}"),
            });
        }
    };
    if json {
        println!("{}", serde_json::json!({"event": "session", "id": id}));
    } else {
        let what = match (&args.image, &args.from_profile) {
            (Some(i), _) => i.clone(),
            (None, Some(p)) => format!("the image profiled by session {p}"),
            (None, None) => String::new(),
        };
        eprintln!("slim: session {id}: {} {what}", kind_name(kind));
    }
    follow(client, id, stream, json, signal_continue).await
}

fn kind_name(k: SessionKind) -> &'static str {
    match k {
        SessionKind::Build => "building a slim image of",
        SessionKind::Profile => "profiling",
        SessionKind::Watch => "watching",
    }
}

/// Prints a session's progress until its last line; Ctrl-C cancels it.
async fn follow(
    client: &Client,
    id: String,
    mut stream: ProgressStream,
    json: bool,
    signal_continue: bool,
) -> Result<ExitCode, Failure> {
    let tty = std::io::stderr().is_terminal() && !json;
    let mut display = Display::new(tty);
    if signal_continue {
        spawn_continue_triggers(client.clone(), id.clone());
    }
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            n = stream.next() => n?,
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                display.message("interrupted: cancelling the session (its containers and cgroup are removed)");
                let _ = client.cancel(&id).await;
                continue;
            }
        };
        let Some(p) = next else {
            return Err(Failure {
                kind: FailureKind::Internal,
                message: "the daemon closed the progress stream early (did slimd stop?)".into(),
            });
        };
        if json {
            println!("{}", serde_json::to_string(&p).unwrap_or_default());
            let _ = std::io::stdout().flush();
        }
        match p {
            Progress::Done { summary } => {
                display.finish();
                if !json {
                    println!("{}", report::render_summary(&summary).trim_end());
                }
                return Ok(done_exit_code(&summary));
            }
            Progress::Failed { kind, message } => {
                display.finish();
                if json {
                    return Ok(ExitCode::from(kind.exit_code()));
                }
                return Err(Failure { kind, message });
            }
            other if !json => display.show(&other),
            _ => {}
        }
    }
}

/// 0, or [`UNVERIFIED_EXIT_CODE`] for a build that nothing verified and
/// whose user did not turn verify off.
fn done_exit_code(summary: &serde_json::Value) -> ExitCode {
    let unverified = summary["state"] == "unverified";
    let accepted = summary["verify"]["accepted"].as_bool() == Some(true);
    if unverified && !accepted {
        ExitCode::from(UNVERIFIED_EXIT_CODE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Enter on a terminal, or SIGUSR1, tells the daemon to go on.
fn spawn_continue_triggers(client: Client, id: String) {
    let c = client.clone();
    let i = id.clone();
    tokio::spawn(async move {
        if let Ok(mut s) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        {
            while s.recv().await.is_some() {
                let _ = c.signal_continue(&i).await;
            }
        }
    });
    if std::io::stdin().is_terminal() {
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            })
            .await;
            let _ = client.signal_continue(&id).await;
        });
    }
}

/// Phase progress on a terminal (spinner) or as plain lines.
struct Display {
    bar: Option<ProgressBar>,
    tty: bool,
}

impl Display {
    fn new(tty: bool) -> Self {
        Self { bar: None, tty }
    }

    fn message(&mut self, m: &str) {
        match &self.bar {
            Some(b) => b.println(m),
            None => eprintln!("{m}"),
        }
    }

    fn show(&mut self, p: &Progress) {
        match p {
            Progress::PhaseStarted { phase } => {
                if self.tty {
                    let b = ProgressBar::new_spinner();
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_message(format!("{:<9}", phase.name()));
                    b.enable_steady_tick(Duration::from_millis(120));
                    self.bar = Some(b);
                } else {
                    eprintln!("[{}] started", phase.name());
                }
            }
            Progress::PhaseDone { phase, ms, detail } => {
                let line = format!(
                    "{} {:<9} {:>7}  {}",
                    if self.tty { "✔" } else { "[done]" },
                    phase.name(),
                    fmt_ms(*ms),
                    detail.as_deref().unwrap_or("")
                );
                if let Some(b) = self.bar.take() {
                    b.finish_with_message(String::new());
                }
                if self.tty {
                    // Replace the spinner line.
                    eprint!("\r\x1b[2K");
                }
                eprintln!("{line}");
            }
            Progress::PhaseSkipped { phase, why } => self.message(&format!(
                "{} {:<9} skipped: {why}",
                if self.tty { "-" } else { "[skip]" },
                phase.name()
            )),
            Progress::Note { message } => self.message(&format!("  note: {message}")),
            Progress::Warning { message } => self.message(&format!("  WARNING: {message}")),
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

async fn xray(client: &Client, a: &XrayArgs, json: bool) -> Result<ExitCode, Failure> {
    let report = match (&a.image, &a.file) {
        (_, Some(file)) => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || local_xray(&file))
                .await
                .map_err(|e| Failure {
                    kind: FailureKind::Internal,
                    message: e.to_string(),
                })??
        }
        (Some(image), None) => client.xray(image).await?,
        (None, None) => return Err(usage("give an IMAGE, or --file ARCHIVE".into())),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        match serde_json::from_value::<crate::image::XrayReport>(report.clone()) {
            Ok(r) => print!("{}", r.render_text()),
            Err(_) => println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads an archive or OCI layout here, with a scratch directory that is
/// removed afterwards.
fn local_xray(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let scratch = tempfile::tempdir().map_err(|e| Failure {
        kind: FailureKind::Internal,
        message: format!("scratch directory: {e}"),
    })?;
    let image = crate::image::Image::open(path, scratch.path()).map_err(|e| Failure {
        kind: FailureKind::Usage,
        message: format!("{}: {e}", path.display()),
    })?;
    let report = crate::image::XrayReport::build(&image);
    serde_json::to_value(report).map_err(|e| Failure {
        kind: FailureKind::Internal,
        message: e.to_string(),
    })
}

async fn sessions(client: &Client, json: bool) -> Result<ExitCode, Failure> {
    let list = client.sessions().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no sessions");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<22} {:<8} {:<12} {:<10} IMAGE",
        "ID", "KIND", "STATE", "PHASE"
    );
    for s in list {
        println!(
            "{:<22} {:<8} {:<12} {:<10} {}{}",
            s.id,
            format!("{:?}", s.kind).to_lowercase(),
            s.state,
            s.phase.map(Phase::name).unwrap_or("-"),
            s.image,
            s.target.map(|t| format!(" -> {t}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_report(client: &Client, id: &str, json: bool) -> Result<ExitCode, Failure> {
    let r = client.report(id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        print!("{}", report::render_report(&r));
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &Client, json: bool) -> Result<ExitCode, Failure> {
    let s = client.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!("slimd      {} (pid {})", s.daemon_version, s.pid);
    println!(
        "kernel     {}  BTF: {}",
        s.kernel,
        if s.btf { "yes" } else { "NO" }
    );
    println!(
        "cgroups    {} (cgroup2 at {})",
        s.cgroup_mode.as_deref().unwrap_or("unknown"),
        s.cgroup_v2_mount.as_deref().unwrap_or("?")
    );
    match &s.tracer_error {
        None => println!("tracer     loaded, {} tracepoints", s.tracepoints.len()),
        Some(e) => println!("tracer     UNAVAILABLE: {e}"),
    }
    for f in &s.features {
        use crate::tracer::features::Presence;
        let (mark, detail) = match f.presence {
            Presence::Present => ("yes", String::new()),
            Presence::Missing => ("MISSING", format!(": {}", f.detail)),
            Presence::Unknown => ("unknown", format!(": {}", f.detail)),
        };
        println!(
            "feature    {:<36} {mark:<7} (Linux >= {}){detail}",
            f.name, f.since
        );
    }
    match (&s.engine, &s.engine_error) {
        (Some(e), _) => println!(
            "engine     Docker {} (API {}), cgroup driver {}, cgroup v{}",
            e.version, e.api_version, e.cgroup_driver, e.cgroup_version
        ),
        (None, Some(err)) => println!("engine     UNREACHABLE: {err}"),
        _ => println!("engine     unknown"),
    }
    println!("sessions   {} running", s.sessions_running);
    println!("state      {}", s.state_dir);
    Ok(ExitCode::from(
        if s.tracer_error.is_some() || s.engine.is_none() {
            1
        } else {
            0
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bad_continue_after_is_a_usage_error() {
        let cli = Cli::try_parse_from(["slim", "build", "x", "--continue-after", "soon"]).unwrap();
        let Command::Build(a) = cli.command else {
            panic!()
        };
        assert!(a.request(SessionKind::Build).is_err());
    }
}
