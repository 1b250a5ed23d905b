//! [`Engine`]: the one interface the rest of slimd drives containers and
//! images through. It dispatches to [`DockerApi`] (dockerd or Podman's
//! Docker-compatible service, through bollard) or to [`ContainerdEngine`]
//! (containerd's gRPC API); callers never see which, except through
//! [`Engine::kind`]. What one engine cannot do is a typed
//! [`EngineError::Unsupported`], never a silent no-op.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::containerd::ContainerdEngine;
use super::docker::DockerApi;
use super::error::{EngineError, Result};
use super::kind::EngineKind;
use super::spec::ContainerSpec;
use super::types::{ContainerInfo, EngineVersion, ExecOutput, ExecRequest, ImageInfo, Logs};

/// Where dockerd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = super::kind::DOCKER_SOCKET;

/// A connection to the engine. Cheap to clone: clones share one connection.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Docker(DockerApi),
    Containerd(ContainerdEngine),
}

/// What containerd has no counterpart for.
const NO_NETWORKS: &str = "containerd has no networks or volumes without CNI: a containerd build runs one container with loopback only (Compose stacks and named networks need Docker or Podman)";

fn unsupported(op: &'static str, why: &'static str) -> EngineError {
    EngineError::Unsupported {
        op,
        engine: EngineKind::Containerd.display_name(),
        why,
    }
}

impl Engine {
    /// Connects to Docker at `socket`, or to `DOCKER_HOST` (a `unix://`
    /// URL), or to [`DEFAULT_SOCKET`] (see [`Engine::connect_to`]).
    pub async fn connect(socket: Option<&Path>) -> Result<Engine> {
        Self::connect_to(None, socket).await
    }

    /// [`Engine::connect_in`] containerd's default namespace (`k8s.io`).
    pub async fn connect_to(kind: Option<EngineKind>, socket: Option<&Path>) -> Result<Engine> {
        Self::connect_in(kind, socket, crate::containerd::DEFAULT_NAMESPACE).await
    }

    /// Connects to `socket`, or else to the default socket of `kind`, or
    /// else to `DOCKER_HOST` or [`DEFAULT_SOCKET`]. Docker and Podman:
    /// negotiates the API version and reads which of them answers
    /// ([`EngineError::WrongEngine`] when `kind` names the other).
    /// containerd (only when `kind` says so): its Version must answer;
    /// images and containers live in `namespace`.
    pub async fn connect_in(
        kind: Option<EngineKind>,
        socket: Option<&Path>,
        namespace: &str,
    ) -> Result<Engine> {
        let inner = if kind == Some(EngineKind::Containerd) {
            let socket = socket.unwrap_or(EngineKind::Containerd.default_socket());
            Inner::Containerd(ContainerdEngine::connect(socket, namespace).await?)
        } else {
            Inner::Docker(DockerApi::connect_to(kind, socket).await?)
        };
        Ok(Engine { inner })
    }

    /// The socket this engine was reached on.
    pub fn socket(&self) -> &Path {
        match &self.inner {
            Inner::Docker(d) => d.socket(),
            Inner::Containerd(c) => c.socket(),
        }
    }

    /// Which engine answers on the socket.
    pub fn kind(&self) -> EngineKind {
        match &self.inner {
            Inner::Docker(d) => d.kind(),
            Inner::Containerd(_) => EngineKind::Containerd,
        }
    }

    /// Whether the session cgroup (a directory slimd made and tagged under
    /// the cgroup2 root) can be this engine's cgroup parent: with Docker and
    /// Podman only under the cgroupfs driver; with containerd always (slimd
    /// writes the runtime spec's cgroups path itself).
    pub fn check_cgroup_parent(&self) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.check_cgroup_parent(),
            Inner::Containerd(_) => Ok(()),
        }
    }

    /// Engine, API, kernel and cgroup facts.
    pub async fn version(&self) -> Result<EngineVersion> {
        match &self.inner {
            Inner::Docker(d) => d.version().await,
            Inner::Containerd(c) => c.version().await,
        }
    }

    // ---- images ----

    /// Inspects a local image; [`EngineError::ImageNotFound`] when it is not
    /// in the store (no registry pull is ever tried).
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInfo> {
        match &self.inner {
            Inner::Docker(d) => d.inspect_image(name).await,
            Inner::Containerd(c) => c.inspect_image(name).await,
        }
    }

    /// Whether `reference` (`repo:tag` or an id) names a local image.
    pub async fn tag_exists(&self, reference: &str) -> Result<bool> {
        match self.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(EngineError::ImageNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds the tag `repo:tag` to `image` (moves it if another image had it).
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.tag_image(image, repo, tag).await,
            Inner::Containerd(c) => c.tag_image(image, repo, tag).await,
        }
    }

    /// Removes an image (or one of its tags, when given a tag); containerd
    /// takes names only.
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.remove_image(image, force).await,
            Inner::Containerd(c) => c.remove_image(image, force).await,
        }
    }

    /// Ids of images carrying label `key` (with `value`, when given).
    pub async fn list_images_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        match &self.inner {
            Inner::Docker(d) => d.list_images_by_label(key, value).await,
            Inner::Containerd(c) => c.list_images_by_label(key, value).await,
        }
    }

    /// One image as a tar byte stream: `docker save`'s from Docker and
    /// Podman, an OCI image layout from containerd (the image library reads
    /// both).
    pub fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        match &self.inner {
            Inner::Docker(d) => d.export_image(name).boxed(),
            Inner::Containerd(c) => c.export_image(name),
        }
    }

    /// Saves one image's tar (see [`Engine::export_image`]) to `path`;
    /// returns its size.
    pub async fn export_image_to_file(&self, name: &str, path: &Path) -> Result<u64> {
        // Inspect first: a missing image gets its typed error before a file is made.
        self.inspect_image(name).await?;
        let io = |source| EngineError::Io {
            what: "write image tar",
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(io)?;
        let mut stream = self.export_image(name);
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        Ok(size)
    }

    /// Loads a `docker save`-format tar (containerd: or an OCI layout tar,
    /// unpacked into its snapshotter). Returns the engine's messages, e.g.
    /// `Loaded image: app.slim:latest`.
    pub async fn load_image<S>(&self, tar: S) -> Result<Vec<String>>
    where
        S: Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    {
        match &self.inner {
            Inner::Docker(d) => d.load_image(tar).await,
            Inner::Containerd(c) => c.load_image(tar).await,
        }
    }

    /// Loads a `docker save`-format tar file (see [`Engine::load_image`]).
    pub async fn load_image_file(&self, path: &Path) -> Result<Vec<String>> {
        match &self.inner {
            Inner::Docker(d) => d.load_image_file(path).await,
            Inner::Containerd(c) => c.load_image_file(path).await,
        }
    }

    // ---- containers ----

    /// Creates a container (not started); returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        match &self.inner {
            Inner::Docker(d) => d.create_container(spec).await,
            Inner::Containerd(c) => c.create_container(spec).await,
        }
    }

    /// Starts a created container.
    pub async fn start(&self, id: &str) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.start(id).await,
            Inner::Containerd(c) => c.start(id).await,
        }
    }

    /// Waits until the container is not running; its exit code, or `None` when
    /// the deadline passed first. A never-started container counts as exited.
    pub async fn wait_exit(&self, id: &str, deadline: Instant) -> Result<Option<i64>> {
        match &self.inner {
            Inner::Docker(d) => d.wait_exit(id, deadline).await,
            Inner::Containerd(c) => c.wait_exit(id, deadline).await,
        }
    }

    /// Stops a container: its stop signal (or `signal`), SIGKILL after
    /// `grace`. Stopping a stopped container is not an error.
    pub async fn stop(&self, id: &str, signal: Option<&str>, grace: Duration) -> Result<()> {
        let signal = match (&self.inner, signal) {
            (_, Some(s)) => s.to_string(),
            // Docker knows the container's stop signal (API 1.41 has no
            // parameter for another one).
            (Inner::Docker(d), None) => return d.stop_default(id, grace).await,
            (Inner::Containerd(c), None) => c.stop_signal(id).await?,
        };
        match self.kill(id, &signal).await {
            Ok(()) => {}
            Err(EngineError::ContainerNotRunning(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        if self.wait_exit(id, Instant::now() + grace).await?.is_some() {
            return Ok(());
        }
        match self.kill(id, "SIGKILL").await {
            Ok(()) | Err(EngineError::ContainerNotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        const KILLED_WITHIN: Duration = Duration::from_secs(10);
        match self.wait_exit(id, Instant::now() + KILLED_WITHIN).await? {
            Some(_) => Ok(()),
            None => Err(EngineError::Timeout {
                op: "container stop (SIGKILL)",
                secs: KILLED_WITHIN.as_secs_f64(),
            }),
        }
    }

    /// Sends `signal` (`SIGKILL`, `SIGTERM`, `9`, ...);
    /// [`EngineError::ContainerNotRunning`] when it is not running.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.kill(id, signal).await,
            Inner::Containerd(c) => c.kill(id, signal).await,
        }
    }

    /// Removes a container and what it held (anonymous volumes, its root).
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.remove(id, force).await,
            Inner::Containerd(c) => c.remove(id, force).await,
        }
    }

    /// State, published ports, labels and root directory of a container.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        match &self.inner {
            Inner::Docker(d) => d.inspect_container(id).await,
            Inner::Containerd(c) => c.inspect_container(id).await,
        }
    }

    /// Everything the container wrote so far, each stream cut at `max_bytes`.
    pub async fn logs(&self, id: &str, max_bytes: usize) -> Result<Logs> {
        match &self.inner {
            Inner::Docker(d) => d.logs(id, max_bytes).await,
            Inner::Containerd(c) => c.logs(id, max_bytes).await,
        }
    }

    /// Runs a command in a running container. Output past `req.max_output`
    /// is dropped; at the deadline it returns what it has with `timed_out`.
    pub async fn exec(&self, id: &str, req: &ExecRequest, deadline: Instant) -> Result<ExecOutput> {
        match &self.inner {
            Inner::Docker(d) => d.exec(id, req, deadline).await,
            Inner::Containerd(c) => c.exec(id, req, deadline).await,
        }
    }

    /// Ids of containers in any state carrying label `key` (with `value`, when given).
    pub async fn list_containers_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        match &self.inner {
            Inner::Docker(d) => d.list_containers_by_label(key, value).await,
            Inner::Containerd(c) => c.list_containers_by_label(key, value).await,
        }
    }
}

/// Networks and volumes (what a Compose stack creates besides containers):
/// containerd has none to make, and so none to list.
impl Engine {
    /// Creates a bridge network; returns its id.
    pub async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String> {
        match &self.inner {
            Inner::Docker(d) => d.create_network(name, labels).await,
            Inner::Containerd(_) => Err(unsupported("create a network", NO_NETWORKS)),
        }
    }

    /// Connects a created container to one more network, under `aliases`.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
    ) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.connect_network(network, container, aliases).await,
            Inner::Containerd(_) => Err(unsupported("connect a network", NO_NETWORKS)),
        }
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.remove_network(id).await,
            Inner::Containerd(_) => Err(unsupported("remove a network", NO_NETWORKS)),
        }
    }

    /// `(id, labels)` of networks carrying label `key` (with `value`).
    pub async fn list_networks_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        match &self.inner {
            Inner::Docker(d) => d.list_networks_by_label(key, value).await,
            Inner::Containerd(_) => Ok(Vec::new()),
        }
    }

    /// Creates a local volume; returns its name.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String> {
        match &self.inner {
            Inner::Docker(d) => d.create_volume(name, labels).await,
            Inner::Containerd(_) => Err(unsupported("create a volume", NO_NETWORKS)),
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        match &self.inner {
            Inner::Docker(d) => d.remove_volume(name).await,
            Inner::Containerd(_) => Err(unsupported("remove a volume", NO_NETWORKS)),
        }
    }

    /// `(name, labels)` of volumes carrying label `key` (with `value`).
    pub async fn list_volumes_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        match &self.inner {
            Inner::Docker(d) => d.list_volumes_by_label(key, value).await,
            Inner::Containerd(_) => Ok(Vec::new()),
        }
    }
}

/// The containerd client behind an engine, for what only containerd has.
impl Engine {
    /// The containerd connection, when the engine is containerd.
    pub fn containerd(&self) -> Option<&crate::containerd::Containerd> {
        match &self.inner {
            Inner::Docker(_) => None,
            Inner::Containerd(c) => Some(c.client()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn containerd_is_asked_for_and_its_absence_said() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let e = Engine::connect_in(Some(EngineKind::Containerd), Some(&sock), "k8s.io")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is containerd running"), "{e}");
        let e = Engine::connect_in(Some(EngineKind::Containerd), Some(&sock), "a/b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("bad containerd namespace"), "{e}");
    }

    #[test]
    fn what_containerd_lacks_is_said() {
        let e = unsupported("create a network", NO_NETWORKS);
        assert!(
            e.to_string()
                .starts_with("containerd cannot create a network: "),
            "{e}"
        );
        assert!(e.to_string().contains("loopback only"), "{e}");
    }
}
