//! [`DockerApi`]: a thin typed wrapper over bollard. Each method is one engine
//! call (or a short fixed sequence) with bollard errors mapped to
//! [`EngineError`] and every wait bounded by a wall-clock deadline. The same
//! calls drive dockerd and Podman's Docker-compatible API service; which one
//! answers is read from `/version` when connecting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{
    CreateContainerOptions, ImportImageOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, StopContainerOptions, TagImageOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::error::{EngineError, Result, Subject};
use super::kind::EngineKind;
use super::spec::ContainerSpec;
use super::types::{
    ContainerInfo, ContainerState, EngineVersion, ExecOutput, ExecRequest, Healthcheck,
    ImageConfig, ImageInfo, Logs, push_bounded,
};

/// Per-request limit for quick calls (bollard's default too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Loading a large image tar can take a while before the engine answers.
const LOAD_TIMEOUT: Duration = Duration::from_secs(1800);

/// A connection to Docker or Podman, negotiated down to its API version.
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct DockerApi {
    docker: Docker,
    socket: PathBuf,
    kind: EngineKind,
    /// `/info`'s CgroupDriver when connecting (`cgroupfs`, `systemd`).
    cgroup_driver: String,
}

/// Turns a std deadline into tokio's clock.
fn tokio_deadline(deadline: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(deadline)
}

impl DockerApi {
    /// Connects to `socket`, or else to the default socket of `kind`, or
    /// else to `DOCKER_HOST` or Docker's default socket; negotiates the API
    /// version (bollard's default is newer than Docker 20.10 accepts) and
    /// reads which engine answers. [`EngineError::WrongEngine`] when `kind`
    /// names another engine than the one on the socket.
    pub async fn connect_to(kind: Option<EngineKind>, socket: Option<&Path>) -> Result<DockerApi> {
        let socket = match (socket, kind) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(k)) => k.default_socket().to_path_buf(),
            (None, None) => std::env::var("DOCKER_HOST")
                .ok()
                .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(super::kind::DOCKER_SOCKET)),
        };
        let unreachable = |source| EngineError::Unreachable {
            socket: socket.clone(),
            source,
        };
        let docker = Docker::connect_with_unix(
            &socket.to_string_lossy(),
            REQUEST_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let v = docker.version().await.map_err(unreachable)?;
        let found =
            EngineKind::from_components(v.components.iter().flatten().map(|c| c.name.as_str()));
        if let Some(asked) = kind.filter(|k| *k != found) {
            return Err(EngineError::WrongEngine {
                socket,
                asked,
                found,
            });
        }
        let info = docker.info().await.map_err(unreachable)?;
        let cgroup_driver = info
            .cgroup_driver
            .map(|d| d.to_string())
            .unwrap_or_default();
        Ok(DockerApi {
            docker,
            socket,
            kind: found,
            cgroup_driver,
        })
    }

    /// The socket this engine was reached on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Which engine answers on the socket.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Whether the session cgroup (a directory slimd made and tagged under
    /// the cgroup2 root) can be this engine's `CgroupParent`: only with the
    /// cgroupfs driver, see [`EngineKind::cgroup_parent_is_a_path`].
    pub fn check_cgroup_parent(&self) -> Result<()> {
        if EngineKind::cgroup_parent_is_a_path(&self.cgroup_driver) {
            return Ok(());
        }
        Err(EngineError::UnsupportedCgroupDriver {
            engine: self.kind.display_name(),
            driver: self.cgroup_driver.clone(),
            hint: match self.kind {
                EngineKind::Docker => {
                    "dockerd --exec-opt native.cgroupdriver=cgroupfs, or in daemon.json"
                }
                EngineKind::Podman => {
                    "cgroup_manager = \"cgroupfs\" in containers.conf, or podman --cgroup-manager=cgroupfs system service"
                }
                EngineKind::Containerd => "SystemdCgroup = false in containerd's runc options",
            },
        })
    }

    fn err(
        &self,
        op: &'static str,
        subject: Subject<'_>,
    ) -> impl Fn(bollard::errors::Error) -> EngineError {
        let socket = self.socket.clone();
        let subject = match subject {
            Subject::Image(s) => OwnedSubject::Image(s.to_string()),
            Subject::Container(s) => OwnedSubject::Container(s.to_string()),
            Subject::None => OwnedSubject::None,
        };
        move |e| EngineError::from_bollard(op, subject.borrow(), &socket, e)
    }

    /// Engine, API, kernel and cgroup facts (`/version` and `/info`).
    pub async fn version(&self) -> Result<EngineVersion> {
        let v = self
            .docker
            .version()
            .await
            .map_err(self.err("version", Subject::None))?;
        let info = self
            .docker
            .info()
            .await
            .map_err(self.err("info", Subject::None))?;
        Ok(EngineVersion {
            engine: self.kind,
            version: v.version.unwrap_or_default(),
            api_version: self.docker.client_version().to_string(),
            os: v.os.unwrap_or_default(),
            kernel: v.kernel_version.or(info.kernel_version).unwrap_or_default(),
            cgroup_driver: info
                .cgroup_driver
                .map(|d| d.to_string())
                .unwrap_or_default(),
            cgroup_version: info
                .cgroup_version
                .map(|d| d.to_string())
                .unwrap_or_default(),
        })
    }

    // ---- images ----

    /// Inspects a local image; [`EngineError::ImageNotFound`] when it is not
    /// in the store (no registry pull is ever tried).
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInfo> {
        let i = self
            .docker
            .inspect_image(name)
            .await
            .map_err(self.err("image inspect", Subject::Image(name)))?;
        let c = i.config.unwrap_or_default();
        Ok(ImageInfo {
            id: i.id.unwrap_or_default(),
            repo_tags: i.repo_tags.unwrap_or_default(),
            size: i.size.unwrap_or(0).max(0) as u64,
            created: i.created.map(|d| d.to_string()),
            architecture: i.architecture,
            os: i.os,
            layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            config: ImageConfig {
                entrypoint: c.entrypoint,
                cmd: c.cmd,
                env: c.env.unwrap_or_default(),
                workdir: c.working_dir.filter(|w| !w.is_empty()),
                user: c.user.filter(|u| !u.is_empty()),
                exposed_ports: c.exposed_ports.unwrap_or_default(),
                volumes: c.volumes.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
                healthcheck: c.healthcheck.map(|h| Healthcheck {
                    test: h.test.unwrap_or_default(),
                    interval_ns: h.interval,
                    timeout_ns: h.timeout,
                    retries: h.retries,
                    start_period_ns: h.start_period,
                }),
                shell: c.shell,
                on_build: c.on_build.unwrap_or_default(),
            },
        })
    }

    /// Adds the tag `repo:tag` to `image` (moves it if another image had it).
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(image, Some(opts))
            .await
            .map_err(self.err("image tag", Subject::Image(image)))
    }

    /// Removes an image (or one of its tags, when given a tag).
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<()> {
        let opts = RemoveImageOptions {
            force,
            noprune: false,
            platforms: None,
        };
        self.docker
            .remove_image(image, Some(opts), None)
            .await
            .map(|_| ())
            .map_err(self.err("image remove", Subject::Image(image)))
    }

    /// Ids of images carrying label `key` (with `value`, when given).
    pub async fn list_images_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        let opts = ListImagesOptions {
            all: false,
            filters: Some(label_filter(key, value)),
            ..Default::default()
        };
        let list = self
            .docker
            .list_images(Some(opts))
            .await
            .map_err(self.err("image list", Subject::None))?;
        Ok(list.into_iter().map(|i| i.id).collect())
    }

    /// The `docker save` tar of one image, as a byte stream.
    pub fn export_image(&self, name: &str) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let map = {
            let socket = self.socket.clone();
            let name = name.to_string();
            move |e| EngineError::from_bollard("image save", Subject::Image(&name), &socket, e)
        };
        self.docker.export_image(name).map_err(map)
    }

    /// Loads a `docker save`-format tar (`POST /images/load`). Returns the
    /// engine's messages, e.g. `Loaded image: app.slim:latest`.
    pub async fn load_image<S>(&self, tar: S) -> Result<Vec<String>>
    where
        S: Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let docker = self.docker.clone().with_timeout(LOAD_TIMEOUT);
        let opts = ImportImageOptions {
            quiet: false,
            platform: None,
        };
        let mut out = docker.import_image_stream(opts, tar, None);
        let mut messages = Vec::new();
        while let Some(info) = out.next().await {
            let info = info.map_err(self.err("image load", Subject::None))?;
            if let Some(s) = info.stream.or(info.status) {
                let s = s.trim();
                if !s.is_empty() {
                    messages.push(s.to_string());
                }
            }
        }
        Ok(messages)
    }

    /// Loads a `docker save`-format tar file.
    pub async fn load_image_file(&self, path: &Path) -> Result<Vec<String>> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| EngineError::Io {
                what: "open image tar",
                path: path.to_path_buf(),
                source,
            })?;
        self.load_image(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
            .await
    }

    // ---- containers ----

    /// Creates a container (not started); returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let body = spec.to_create_body()?;
        let opts = CreateContainerOptions {
            name: spec.name.clone(),
            platform: String::new(),
        };
        let subject = spec.name.as_deref().unwrap_or(&spec.image);
        let r = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| match e {
                // Only a missing image gives 404 here.
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => EngineError::ImageNotFound(spec.image.clone()),
                e => EngineError::from_bollard(
                    "container create",
                    Subject::Container(subject),
                    &self.socket,
                    e,
                ),
            })?;
        for w in r.warnings {
            tracing::warn!(container = %r.id, "engine warning on create: {w}");
        }
        Ok(r.id)
    }

    /// Starts a created container.
    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(self.err("container start", Subject::Container(id)))
    }

    /// Waits until the container is not running; its exit code, or `None` when
    /// the deadline passed first. A never-started container counts as exited.
    pub async fn wait_exit(&self, id: &str, deadline: Instant) -> Result<Option<i64>> {
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut stream = std::pin::pin!(self.docker.wait_container(id, Some(opts)));
        match tokio::time::timeout_at(tokio_deadline(deadline), stream.next()).await {
            Err(_) => Ok(None),
            Ok(Some(Ok(r))) => Ok(Some(r.status_code)),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(Some(code))
            }
            Ok(Some(Err(e))) => Err(self.err("container wait", Subject::Container(id))(e)),
            Ok(None) => Ok(self.inspect_container(id).await?.state.exit_code),
        }
    }

    /// Stops a container with its own stop signal, the engine's way:
    /// SIGKILL after `grace` (a signal of slimd's choosing goes through
    /// `Engine::stop`). Stopping a stopped container is not an error.
    pub async fn stop_default(&self, id: &str, grace: Duration) -> Result<()> {
        let docker = self
            .docker
            .clone()
            .with_timeout(grace + Duration::from_secs(30));
        let opts = StopContainerOptions {
            signal: None,
            t: Some(grace.as_secs_f64().ceil() as i32),
        };
        docker
            .stop_container(id, Some(opts))
            .await
            .map_err(self.err("container stop", Subject::Container(id)))
    }

    /// Sends `signal` (`SIGKILL`, `SIGTERM`, `9`, ...);
    /// [`EngineError::ContainerNotRunning`] when it is not running.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.docker
            .kill_container(id, Some(opts))
            .await
            .map_err(self.err("container kill", Subject::Container(id)))
    }

    /// Removes a container and its anonymous volumes.
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let opts = RemoveContainerOptions {
            v: true,
            force,
            link: false,
        };
        self.docker
            .remove_container(id, Some(opts))
            .await
            .map_err(self.err("container remove", Subject::Container(id)))
    }

    /// State, published ports, labels and root directory of a container.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(self.err("container inspect", Subject::Container(id)))?;
        let s = c.state.unwrap_or_default();
        let netns = c
            .network_settings
            .as_ref()
            .and_then(|n| n.sandbox_key.clone())
            .filter(|k| !k.is_empty());
        let ports = c
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(port, bindings)| {
                let bindings = bindings?;
                let b = bindings
                    .iter()
                    .find(|b| b.host_ip.as_deref() == Some(super::spec::PUBLISH_HOST_IP))
                    .or_else(|| bindings.first())?;
                Some((port, b.host_port.as_deref()?.parse().ok()?))
            })
            .collect();
        Ok(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            state: ContainerState {
                status: s.status.map(|x| x.to_string()).unwrap_or_default(),
                running: s.running.unwrap_or(false),
                exit_code: s.exit_code,
                pid: s.pid,
                error: s.error.filter(|e| !e.is_empty()),
                oom_killed: s.oom_killed.unwrap_or(false),
                started_at: s.started_at,
                finished_at: s.finished_at,
                health: s
                    .health
                    .and_then(|h| h.status)
                    .map(|st| st.to_string())
                    .filter(|st| !st.is_empty() && st != "none"),
            },
            ports,
            labels: c
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            cgroup_parent: c
                .host_config
                .and_then(|h| h.cgroup_parent)
                .filter(|p| !p.is_empty()),
            merged_dir: c
                .graph_driver
                .and_then(|g| g.data.get("MergedDir").cloned()),
            netns,
        })
    }

    /// Everything the container wrote so far, each stream cut at `max_bytes`.
    pub async fn logs(&self, id: &str, max_bytes: usize) -> Result<Logs> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            follow: false,
            ..Default::default()
        };
        let mut logs = Logs::default();
        let mut stream = std::pin::pin!(self.docker.logs(id, Some(opts)));
        while let Some(item) = stream.next().await {
            let item = item.map_err(self.err("container logs", Subject::Container(id)))?;
            let cut = match item {
                LogOutput::StdErr { message } => {
                    push_bounded(&mut logs.stderr, &message, max_bytes)
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    push_bounded(&mut logs.stdout, &message, max_bytes)
                }
                LogOutput::StdIn { .. } => false,
            };
            logs.truncated |= cut;
        }
        Ok(logs)
    }

    /// Runs a command in a running container through the exec API. Output
    /// past `req.max_output` is dropped; at the deadline it returns what it
    /// has with `timed_out` set.
    pub async fn exec(&self, id: &str, req: &ExecRequest, deadline: Instant) -> Result<ExecOutput> {
        if req.cmd.is_empty() {
            return Err(EngineError::InvalidSpec {
                what: "exec",
                why: "empty command".into(),
            });
        }
        let map = self.err("exec", Subject::Container(id));
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            cmd: Some(req.cmd.clone()),
            env: (!req.env.is_empty()).then(|| req.env.clone()),
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            ..Default::default()
        };
        let mut out = ExecOutput::default();
        let limit = req.max_output;
        let run = async {
            let created = self.docker.create_exec(id, config).await.map_err(&map)?;
            match self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(&map)?
            {
                StartExecResults::Attached { mut output, .. } => {
                    while let Some(item) = output.next().await {
                        let cut = match item.map_err(&map)? {
                            LogOutput::StdErr { message } => {
                                push_bounded(&mut out.stderr, &message, limit)
                            }
                            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                                push_bounded(&mut out.stdout, &message, limit)
                            }
                            LogOutput::StdIn { .. } => false,
                        };
                        out.truncated |= cut;
                    }
                }
                StartExecResults::Detached => {}
            }
            // The stream ends when the process exits; the engine may record
            // the exit code a moment later.
            loop {
                let info = self.docker.inspect_exec(&created.id).await.map_err(&map)?;
                if info.running != Some(true) {
                    return Ok::<_, EngineError>(info.exit_code);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        match tokio::time::timeout_at(tokio_deadline(deadline), run).await {
            Ok(code) => {
                out.exit_code = code?;
                Ok(out)
            }
            Err(_) => {
                out.timed_out = true;
                Ok(out)
            }
        }
    }

    /// Ids of containers in any state carrying label `key` (with `value`, when given).
    pub async fn list_containers_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(label_filter(key, value)),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(self.err("container list", Subject::None))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

/// Networks and volumes (what a Compose stack creates besides containers).
impl DockerApi {
    /// Creates a bridge network; returns its id.
    pub async fn create_network(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<String> {
        let req = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let r = self
            .docker
            .create_network(req)
            .await
            .map_err(self.err("network create", Subject::None))?;
        Ok(r.id)
    }

    /// Connects a created container to one more network, under `aliases`.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
    ) -> Result<()> {
        let req = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(aliases.to_vec()),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, req)
            .await
            .map_err(self.err("network connect", Subject::Container(container)))
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        self.docker
            .remove_network(id)
            .await
            .map_err(self.err("network remove", Subject::None))
    }

    /// `(id, labels)` of networks carrying label `key` (with `value`).
    pub async fn list_networks_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>> {
        let opts = bollard::query_parameters::ListNetworksOptions {
            filters: Some(label_filter(key, value)),
        };
        let list = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(self.err("network list", Subject::None))?;
        Ok(list
            .into_iter()
            .filter_map(|n| Some((n.id?, n.labels.unwrap_or_default().into_iter().collect())))
            .collect())
    }

    /// Creates a local volume; returns its name.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<String> {
        let req = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let v = self
            .docker
            .create_volume(req)
            .await
            .map_err(self.err("volume create", Subject::None))?;
        Ok(v.name)
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.docker
            .remove_volume(
                name,
                Some(bollard::query_parameters::RemoveVolumeOptions { force: true }),
            )
            .await
            .map_err(self.err("volume remove", Subject::None))
    }

    /// `(name, labels)` of volumes carrying label `key` (with `value`).
    pub async fn list_volumes_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>> {
        let opts = bollard::query_parameters::ListVolumesOptions {
            filters: Some(label_filter(key, value)),
        };
        let list = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(self.err("volume list", Subject::None))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels.into_iter().collect()))
            .collect())
    }
}

fn label_filter(key: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match value {
        Some(v) => format!("{key}={v}"),
        None => key.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// An owned [`Subject`], so error-mapping closures can outlive the borrow.
enum OwnedSubject {
    Image(String),
    Container(String),
    None,
}

impl OwnedSubject {
    fn borrow(&self) -> Subject<'_> {
        match self {
            OwnedSubject::Image(s) => Subject::Image(s),
            OwnedSubject::Container(s) => Subject::Container(s),
            OwnedSubject::None => Subject::None,
        }
    }
}
