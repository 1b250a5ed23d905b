//! Containers on containerd, as the engine interface runs them: create (a
//! network namespace slimd makes with the ports forwarded into it, a
//! snapshot on the image's top layer, the OCI runtime spec with the session
//! cgroup as its cgroups path, the container record with the session's
//! labels), start (a task whose output goes to files, then started), wait,
//! stop and kill, exec (a process added to the task, its output to files,
//! under a deadline), inspect, logs, and remove (task, record, snapshot,
//! network and files: nothing is left).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::containerd::ContainerdError;
use crate::containerd::runtime::NewContainer;
use crate::containerd::unpack::chain_ids;

use super::containerd::{ContainerdEngine, cerr, familiar};
use super::error::{EngineError, Result};
use super::runtime_spec::{self, Ids, Placement};
use super::sandbox::Sandbox;
use super::spec::{ContainerSpec, normalize_port};
use super::stdio;
use super::types::{ContainerInfo, ContainerState, ExecOutput, ExecRequest, Logs, push_bounded};

/// What slimd holds for a container it created on containerd.
#[derive(Debug)]
pub struct Live {
    /// Its network namespace and forwarded ports.
    sandbox: Sandbox,
    /// The process as the runtime spec has it (the base of an exec).
    process: oci_spec::runtime::Process,
    /// The container's `/etc/passwd` and `/etc/group` (to resolve an
    /// exec's user).
    passwd: String,
    group: String,
    cgroup_parent: Option<String>,
    /// Ends the copies of the task's output into its log files.
    logs_stop: tokio_util::sync::CancellationToken,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.logs_stop.cancel();
    }
}

/// Numbers exec'd processes apart.
static EXECS: AtomicU64 = AtomicU64::new(0);

/// Why a network setting cannot be honoured.
const LOOPBACK_ONLY: &str = "containerd builds run one container in a network namespace of its own with loopback only (no CNI): named networks, aliases and Compose stacks need Docker or Podman";

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io { what, path, source }
}

/// Maps "no such container" and "not running" to the engine's variants.
fn about(op: &'static str, id: &str) -> impl Fn(ContainerdError) -> EngineError {
    let id = id.to_string();
    move |e| match e {
        ContainerdError::ContainerNotFound { .. } => EngineError::ContainerNotFound(id.clone()),
        ContainerdError::NotRunning { .. } => EngineError::ContainerNotRunning(id.clone()),
        other => cerr(op)(other),
    }
}

/// Whether a container id is one containerd takes (and a safe path part).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 76
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The directories a snapshot's mounts show, topmost first (an overlay's
/// upper then lower directories, or a bind's source).
fn mount_dirs(mounts: &[containerd_client::types::Mount]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        match m.r#type.as_str() {
            "bind" | "rbind" => dirs.push(PathBuf::from(&m.source)),
            "overlay" => {
                for o in &m.options {
                    if let Some(u) = o.strip_prefix("upperdir=") {
                        dirs.insert(0, PathBuf::from(u));
                    }
                }
                for o in &m.options {
                    if let Some(l) = o.strip_prefix("lowerdir=") {
                        dirs.extend(l.split(':').map(PathBuf::from));
                    }
                }
            }
            _ => {}
        }
    }
    dirs
}

/// A file of the container's root as the topmost layer has it (empty when
/// none has it).
fn read_in_layers(dirs: &[PathBuf], rel: &str) -> String {
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join(rel)).ok())
        .unwrap_or_default()
}

/// Reads up to `limit` bytes of a file into `buf`; whether there was more.
fn read_bounded(path: &Path, buf: &mut Vec<u8>, limit: usize) -> bool {
    let data = std::fs::read(path).unwrap_or_default();
    push_bounded(buf, &data, limit)
}

impl ContainerdEngine {
    fn dir_of(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    /// Creates the container (not started); returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let unsupported = |op| EngineError::Unsupported {
            op,
            engine: "containerd",
            why: LOOPBACK_ONLY,
        };
        if spec
            .network_mode
            .as_deref()
            .is_some_and(|m| !matches!(m, "bridge" | "default" | "none"))
        {
            return Err(unsupported("join a named network"));
        }
        if !spec.network_aliases.is_empty() {
            return Err(unsupported("give network aliases"));
        }
        let id = match &spec.name {
            Some(n) if valid_id(n) => n.clone(),
            Some(n) => {
                return Err(EngineError::InvalidSpec {
                    what: "container name",
                    why: format!("{n:?}: letters, digits, '_', '-' and '.' only"),
                });
            }
            None => format!(
                "slimd-{:x}-{}",
                std::process::id(),
                EXECS.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let image = self.find(&spec.image).await?;
        let (config, diff_ids) = Self::run_config(&image)?;
        let mut ports = Vec::new();
        for p in spec.publish.iter().chain(&spec.expose) {
            ports.push(normalize_port(p)?);
        }
        ports.sort();
        ports.dedup();

        let dir = self.dir_of(&id);
        let exists = self.live.lock().unwrap().contains_key(&id)
            || match self.cd.container(&id).await {
                Ok(_) => true,
                Err(ContainerdError::ContainerNotFound { .. }) => false,
                Err(e) => return Err(cerr("container create")(e)),
            };
        if exists {
            return Err(EngineError::Containerd {
                op: "container create",
                source: ContainerdError::ContainerExists { id },
            });
        }
        if dir.exists() {
            // Files of a container of that name that is gone (a daemon
            // that died before removing them).
            std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let made = self
            .make(&id, spec, &image, &config, &diff_ids, &ports, &dir)
            .await;
        match made {
            Ok(live) => {
                self.live.lock().unwrap().insert(id.clone(), live);
                Ok(id)
            }
            Err(e) => {
                let _ = self.cd.delete_container(&id).await;
                let _ = self.cd.remove_snapshot(&self.snapshotter, &id).await;
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn make(
        &self,
        id: &str,
        spec: &ContainerSpec,
        image: &crate::containerd::catalog::ResolvedImage,
        config: &super::types::ImageConfig,
        diff_ids: &[String],
        ports: &[String],
        dir: &Path,
    ) -> Result<Live> {
        let mut sandbox = Sandbox::create().map_err(|source| EngineError::Io {
            what: "make a network namespace for",
            path: PathBuf::from(id),
            source,
        })?;
        sandbox
            .publish(ports)
            .await
            .map_err(|source| EngineError::Io {
                what: "forward the ports of",
                path: PathBuf::from(id),
                source,
            })?;
        let hosts = dir.join("hosts");
        std::fs::write(
            &hosts,
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{id}\n"
            ),
        )
        .map_err(io_err("write", &hosts))?;
        let hostname = dir.join("hostname");
        std::fs::write(&hostname, format!("{id}\n")).map_err(io_err("write", &hostname))?;

        // The root: a snapshot on the image's top layer, held by a lease
        // until the container record holds it.
        let top = chain_ids(diff_ids).pop().unwrap_or_default();
        let lease = self
            .cd
            .create_lease()
            .await
            .map_err(cerr("container create"))?;
        let result = async {
            let mounts = self
                .cd
                .prepare_snapshot(&self.snapshotter, id, &top, Some(&lease))
                .await
                .map_err(|e| match e {
                    ContainerdError::Call { source, .. }
                        if source.code() == containerd_client::tonic::Code::NotFound =>
                    {
                        EngineError::InvalidSpec {
                            what: "image",
                            why: format!(
                                "{} is not unpacked into containerd's {} snapshotter (load it with `slim load --containerd`, which unpacks, or `ctr images unpack`)",
                                familiar(&image.record.name),
                                self.snapshotter
                            ),
                        }
                    }
                    other => cerr("container create")(other),
                })?;
            let dirs = mount_dirs(&mounts);
            let passwd = read_in_layers(&dirs, "etc/passwd");
            let group = read_in_layers(&dirs, "etc/group");
            let user = spec.user.as_deref().or(config.user.as_deref());
            let ids = runtime_spec::resolve_user(user, &passwd, &group)?;
            let place = Placement {
                hostname: id.chars().take(63).collect(),
                cgroup_parent: spec.cgroup_parent.clone(),
                id: id.to_string(),
                netns: Some(sandbox.path().to_path_buf()),
                files: vec![
                    (hosts.clone(), "/etc/hosts".into()),
                    (hostname.clone(), "/etc/hostname".into()),
                ],
            };
            let mut config = config.clone();
            if spec.stop_signal.is_some() {
                config.stop_signal = spec.stop_signal.clone();
            }
            let rt = runtime_spec::runtime_spec(&config, spec, &ids, &place)?;
            let spec_json = serde_json::to_vec(&rt).map_err(|e| EngineError::InvalidSpec {
                what: "runtime spec",
                why: e.to_string(),
            })?;
            let mut labels = spec.labels.clone();
            if let Some(sig) = &config.stop_signal {
                labels.insert("io.containerd.image.config.stop-signal".into(), sig.clone());
            }
            self.cd
                .create_container(&NewContainer {
                    id: id.to_string(),
                    image: image.record.name.clone(),
                    labels,
                    spec_json,
                    snapshotter: self.snapshotter.clone(),
                    snapshot_key: id.to_string(),
                })
                .await
                .map_err(cerr("container create"))?;
            Ok::<_, EngineError>(Live {
                process: rt.process().clone().unwrap_or_default(),
                sandbox,
                passwd,
                group,
                cgroup_parent: spec.cgroup_parent.clone(),
                logs_stop: Default::default(),
            })
        }
        .await;
        self.cd.delete_lease(&lease).await;
        result
    }

    /// Starts a created container: its task is made (runc creates the
    /// process inside the container's cgroup) and started.
    pub async fn start(&self, id: &str) -> Result<()> {
        let record = self
            .cd
            .container(id)
            .await
            .map_err(about("container start", id))?;
        let dir = self.dir_of(id);
        let Some(logs_stop) = self
            .live
            .lock()
            .unwrap()
            .get(id)
            .map(|l| l.logs_stop.clone())
        else {
            return Err(EngineError::InvalidSpec {
                what: "container start",
                why: format!("{id} was not created by this daemon (its network is gone)"),
            });
        };
        let (out_fifo, err_fifo) = (dir.join("stdout.fifo"), dir.join("stderr.fifo"));
        for (fifo, log) in [(&out_fifo, "stdout.log"), (&err_fifo, "stderr.log")] {
            if !fifo.exists() {
                stdio::make_fifo(fifo).map_err(io_err("make the FIFO", fifo))?;
                stdio::copy_to_file(fifo, &dir.join(log), logs_stop.clone())
                    .map_err(io_err("read the FIFO", fifo))?;
            }
        }
        let mounts = self
            .cd
            .snapshot_mounts(&record.snapshotter, &record.snapshot_key)
            .await
            .map_err(cerr("container start"))?;
        self.cd
            .create_task(id, mounts, &out_fifo, &err_fifo)
            .await
            .map_err(about("container start", id))?;
        if let Err(e) = self.cd.start_task(id, "").await {
            // The task stays created (as Docker leaves a container that
            // failed to start); remove() deletes it.
            return Err(about("container start", id)(e));
        }
        Ok(())
    }

    /// Waits until the container is not running; its exit code, or `None`
    /// when the deadline passed first. A never-started one counts as exited.
    pub async fn wait_exit(&self, id: &str, deadline: Instant) -> Result<Option<i64>> {
        match self
            .cd
            .task(id, "")
            .await
            .map_err(about("container wait", id))?
        {
            None => {
                self.cd
                    .container(id)
                    .await
                    .map_err(about("container wait", id))?;
                return Ok(Some(0));
            }
            Some(t) if t.status == "stopped" => return Ok(Some(i64::from(t.exit_status))),
            Some(_) => {}
        }
        let wait = self.cd.wait_task(id, "");
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), wait).await {
            Err(_) => Ok(None),
            Ok(Ok(code)) => Ok(Some(i64::from(code))),
            Ok(Err(e)) => Err(about("container wait", id)(e)),
        }
    }

    /// Sends `signal`; [`EngineError::ContainerNotRunning`] when it is not
    /// running.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let n = crate::host::signal_number(signal).map_err(|e| EngineError::InvalidSpec {
            what: "signal",
            why: e.to_string(),
        })?;
        match self
            .cd
            .task(id, "")
            .await
            .map_err(about("container kill", id))?
        {
            Some(t) if t.status == "running" || t.status == "paused" => {}
            Some(_) | None => {
                self.cd
                    .container(id)
                    .await
                    .map_err(about("container kill", id))?;
                return Err(EngineError::ContainerNotRunning(id.to_string()));
            }
        }
        self.cd
            .kill_task(id, "", n as u32)
            .await
            .map_err(about("container kill", id))
    }

    /// The signal that stops a container: its image's `StopSignal`
    /// (recorded as a label on the container), or SIGTERM.
    pub async fn stop_signal(&self, id: &str) -> Result<String> {
        Ok(self
            .cd
            .container(id)
            .await
            .map_err(about("container stop", id))?
            .labels
            .get("io.containerd.image.config.stop-signal")
            .cloned()
            .unwrap_or_else(|| "SIGTERM".into()))
    }

    /// Removes the container: its task (killed first with `force`), its
    /// record, its root snapshot, its network and its files.
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let known = self.live.lock().unwrap().contains_key(id);
        let record = match self.cd.container(id).await {
            Ok(r) => Some(r),
            Err(ContainerdError::ContainerNotFound { .. }) if known => None,
            Err(e) => return Err(about("container remove", id)(e)),
        };
        if let Some(t) = self
            .cd
            .task(id, "")
            .await
            .map_err(about("container remove", id))?
        {
            if t.status != "stopped" && t.status != "created" {
                if !force {
                    return Err(EngineError::InvalidSpec {
                        what: "container remove",
                        why: format!("{id} is running: stop it first"),
                    });
                }
                match self.kill(id, "SIGKILL").await {
                    Ok(()) | Err(EngineError::ContainerNotRunning(_)) => {}
                    Err(e) => return Err(e),
                }
                if self
                    .wait_exit(id, Instant::now() + Duration::from_secs(10))
                    .await?
                    .is_none()
                {
                    return Err(EngineError::Timeout {
                        op: "container remove (SIGKILL)",
                        secs: 10.0,
                    });
                }
            }
            if t.status == "created" {
                // A created task's process waits to be started: kill it so
                // the shim can delete it.
                let _ = self.cd.kill_task(id, "", libc::SIGKILL as u32).await;
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), self.cd.wait_task(id, "")).await;
            }
            self.cd
                .delete_task(id)
                .await
                .map_err(about("container remove", id))?;
        }
        if let Some(record) = &record {
            self.cd
                .delete_container(id)
                .await
                .map_err(about("container remove", id))?;
            let snapshotter = if record.snapshotter.is_empty() {
                self.snapshotter.as_str()
            } else {
                record.snapshotter.as_str()
            };
            let key = if record.snapshot_key.is_empty() {
                id
            } else {
                record.snapshot_key.as_str()
            };
            self.cd
                .remove_snapshot(snapshotter, key)
                .await
                .map_err(cerr("container remove"))?;
        }
        self.live.lock().unwrap().remove(id);
        let dir = self.dir_of(id);
        if valid_id(id) && dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        }
        Ok(())
    }

    /// State, forwarded ports, labels and network namespace of a container.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let record = self
            .cd
            .container(id)
            .await
            .map_err(about("container inspect", id))?;
        let task = self
            .cd
            .task(id, "")
            .await
            .map_err(about("container inspect", id))?;
        let state = match &task {
            None => ContainerState {
                status: "created".into(),
                ..Default::default()
            },
            Some(t) => {
                let running = matches!(t.status, "running" | "paused" | "pausing");
                ContainerState {
                    status: match t.status {
                        "stopped" => "exited".into(),
                        other => other.to_string(),
                    },
                    running,
                    exit_code: (t.status == "stopped").then_some(i64::from(t.exit_status)),
                    pid: Some(if running { i64::from(t.pid) } else { 0 }),
                    finished_at: t.exited_at.clone(),
                    ..Default::default()
                }
            }
        };
        let live = self.live.lock().unwrap();
        let live = live.get(id);
        Ok(ContainerInfo {
            id: record.id.clone(),
            name: record.id.clone(),
            image: familiar(&record.image),
            state,
            ports: live.map(|l| l.sandbox.ports().clone()).unwrap_or_default(),
            labels: record.labels.clone(),
            cgroup_parent: live.and_then(|l| l.cgroup_parent.clone()),
            merged_dir: None,
            netns: live.map(|l| l.sandbox.path().display().to_string()),
        })
    }

    /// Everything the container wrote so far, each stream cut at `max_bytes`.
    pub async fn logs(&self, id: &str, max_bytes: usize) -> Result<Logs> {
        self.cd
            .container(id)
            .await
            .map_err(about("container logs", id))?;
        let dir = self.dir_of(id);
        let mut logs = Logs::default();
        logs.truncated |= read_bounded(&dir.join("stdout.log"), &mut logs.stdout, max_bytes);
        logs.truncated |= read_bounded(&dir.join("stderr.log"), &mut logs.stderr, max_bytes);
        Ok(logs)
    }

    /// Runs a command in the running container (a process added to its
    /// task, as the container's process with the request's changes). At the
    /// deadline the process is killed and what it wrote is returned with
    /// `timed_out` set.
    pub async fn exec(&self, id: &str, req: &ExecRequest, deadline: Instant) -> Result<ExecOutput> {
        if req.cmd.is_empty() {
            return Err(EngineError::InvalidSpec {
                what: "exec",
                why: "empty command".into(),
            });
        }
        match self.cd.task(id, "").await.map_err(about("exec", id))? {
            Some(t) if t.status == "running" => {}
            _ => {
                self.cd.container(id).await.map_err(about("exec", id))?;
                return Err(EngineError::ContainerNotRunning(id.to_string()));
            }
        }
        let process = {
            let live = self.live.lock().unwrap();
            let live = live.get(id).ok_or_else(|| EngineError::InvalidSpec {
                what: "exec",
                why: format!("{id} was not created by this daemon"),
            })?;
            let mut p = live.process.clone();
            p.set_args(Some(req.cmd.clone()));
            p.set_env(Some(runtime_spec::env(
                p.env().as_deref().unwrap_or_default(),
                &req.env,
            )));
            if let Some(w) = &req.workdir {
                p.set_cwd(PathBuf::from(w));
            }
            if let Some(u) = &req.user {
                let ids: Ids = runtime_spec::resolve_user(Some(u), &live.passwd, &live.group)?;
                let mut user = p.user().clone();
                user.set_uid(ids.uid);
                user.set_gid(ids.gid);
                user.set_additional_gids(Some(ids.additional_gids));
                p.set_user(user);
            }
            p
        };
        let json = serde_json::to_vec(&process).map_err(|e| EngineError::InvalidSpec {
            what: "exec",
            why: e.to_string(),
        })?;
        let n = EXECS.fetch_add(1, Ordering::Relaxed);
        let exec_id = format!("slimd-exec-{n}");
        let dir = self.dir_of(id);
        let (out_path, err_path) = (
            dir.join(format!("{exec_id}.out")),
            dir.join(format!("{exec_id}.err")),
        );
        let drained = tokio_util::sync::CancellationToken::new();
        let mut readers = Vec::new();
        for fifo in [&out_path, &err_path] {
            let made = stdio::make_fifo(fifo)
                .and_then(|()| stdio::collect(fifo, req.max_output, drained.clone()));
            match made {
                Ok(h) => readers.push(h),
                Err(e) => {
                    drained.cancel();
                    let _ = std::fs::remove_file(&out_path);
                    let _ = std::fs::remove_file(&err_path);
                    return Err(io_err("make the FIFO", fifo)(e));
                }
            }
        }
        let map = about("exec", id);
        if let Err(e) = self
            .cd
            .exec_process(id, &exec_id, json, &out_path, &err_path)
            .await
        {
            drained.cancel();
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
            return Err(map(e));
        }
        let mut out = ExecOutput::default();
        let run = async {
            self.cd.start_task(id, &exec_id).await?;
            self.cd.wait_task(id, &exec_id).await
        };
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), run).await {
            Ok(Ok(code)) => out.exit_code = Some(i64::from(code)),
            // runc could not exec the command: the shell's codes, as
            // Docker reports them (127 not found, 126 not executable).
            Ok(Err(ContainerdError::Call { source, .. }))
                if source.code() != containerd_client::tonic::Code::NotFound =>
            {
                let message = source.message().to_string();
                let lower = message.to_ascii_lowercase();
                out.exit_code = Some(
                    if lower.contains("not found") || lower.contains("no such file") {
                        127
                    } else {
                        126
                    },
                );
                out.stderr.extend_from_slice(message.as_bytes());
                out.stderr.push(b'\n');
            }
            Ok(Err(e)) => {
                let _ = self.cd.delete_process(id, &exec_id).await;
                drained.cancel();
                let _ = std::fs::remove_file(&out_path);
                let _ = std::fs::remove_file(&err_path);
                return Err(map(e));
            }
            Err(_) => {
                out.timed_out = true;
                let _ = self.cd.kill_task(id, &exec_id, libc::SIGKILL as u32).await;
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), self.cd.wait_task(id, &exec_id))
                        .await;
            }
        }
        // Deleting the process waits for the shim's copies of its output.
        let _ = self.cd.delete_process(id, &exec_id).await;
        drained.cancel();
        let mut streams = Vec::new();
        for r in readers {
            streams.push(r.await.unwrap_or_default());
        }
        if let [(stdout, cut_out), (stderr, cut_err)] = streams.as_slice() {
            out.stdout = stdout.clone();
            // What runc said when it could not exec comes after.
            let said = std::mem::take(&mut out.stderr);
            out.stderr = stderr.iter().copied().chain(said).collect();
            out.truncated |= cut_out | cut_err;
        }
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Ok(out)
    }

    /// Ids of containers carrying label `key` (with `value`, when given).
    pub async fn list_containers_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        Ok(self
            .cd
            .containers_by_label(key, value)
            .await
            .map_err(cerr("container list"))?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("slimd-abc-trace"));
        assert!(!valid_id("../x"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(""));
    }

    #[test]
    fn overlay_dirs_are_read_top_first() {
        let m = containerd_client::types::Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                "workdir=/w".into(),
                "upperdir=/u".into(),
                "lowerdir=/l2:/l1".into(),
            ],
        };
        assert_eq!(
            mount_dirs(&[m]),
            [PathBuf::from("/u"), "/l2".into(), "/l1".into()]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/etc")).unwrap();
        std::fs::write(dir.path().join("b/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        let dirs = [dir.path().join("a"), dir.path().join("b")];
        assert!(read_in_layers(&dirs, "etc/passwd").starts_with("root"));
        assert_eq!(read_in_layers(&dirs, "etc/group"), "");
    }
}
