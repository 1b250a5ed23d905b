//! Running containers through containerd: container records (an OCI
//! runtime spec, labels, a snapshot for the root filesystem), their
//! snapshots, and tasks (the running process, started by runc through the
//! runc v2 shim) with their exec'd processes. Thin typed calls; what runs
//! and how is the caller's (the runtime spec arrives as JSON).
//!
//! A task's (and an exec'd process's) stdout and stderr are paths the shim
//! opens for writing: FIFOs the caller made and reads.

use std::collections::BTreeMap;
use std::path::Path;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::{Code, Status};
use containerd_client::types::Mount;

use super::{Containerd, ContainerdError, Result};

/// The runtime every container is created with (runc through shim v2).
pub const RUNTIME: &str = "io.containerd.runc.v2";
/// The type URL containerd stores a runtime spec under (JSON-encoded).
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The type URL of an exec'd process's spec (JSON-encoded).
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// A container to create.
#[derive(Clone, Debug)]
pub struct NewContainer {
    pub id: String,
    /// The image record's name.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// The OCI runtime spec, as JSON.
    pub spec_json: Vec<u8>,
    pub snapshotter: String,
    pub snapshot_key: String,
}

/// A container record as containerd keeps it.
#[derive(Clone, Debug, Default)]
pub struct ContainerRecord {
    pub id: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub created_at: Option<String>,
}

/// A task's (or exec'd process's) state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    pub pid: u32,
    /// `created`, `running`, `stopped`, `paused`, `pausing`, `unknown`.
    pub status: &'static str,
    pub exit_status: u32,
    pub exited_at: Option<String>,
}

/// What the calls about containers map a status to.
fn about_container(call: &'static str, id: &str) -> impl Fn(Status) -> ContainerdError {
    let id = id.to_string();
    move |s| match s.code() {
        Code::NotFound => ContainerdError::ContainerNotFound { id: id.clone() },
        // "process already finished", "task must be running", "not running"
        Code::FailedPrecondition => ContainerdError::NotRunning { id: id.clone() },
        _ => ContainerdError::Call { call, source: s },
    }
}

fn timestamp(t: Option<prost_types::Timestamp>) -> Option<String> {
    let t = t?;
    if t.seconds <= 0 {
        return None;
    }
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

fn status_name(status: i32) -> &'static str {
    use containerd_client::types::v1::Status;
    match Status::try_from(status) {
        Ok(Status::Created) => "created",
        Ok(Status::Running) => "running",
        Ok(Status::Stopped) => "stopped",
        Ok(Status::Paused) => "paused",
        Ok(Status::Pausing) => "pausing",
        _ => "unknown",
    }
}

/// A stdio path as the shim takes it (a FIFO, opened for writing).
fn stdio(path: &Path) -> String {
    path.display().to_string()
}

impl From<Container> for ContainerRecord {
    fn from(c: Container) -> Self {
        ContainerRecord {
            id: c.id,
            image: c.image,
            labels: c.labels.into_iter().collect(),
            snapshotter: c.snapshotter,
            snapshot_key: c.snapshot_key,
            created_at: timestamp(c.created_at),
        }
    }
}

impl Containerd {
    /// A snapshot `key` on the image's top layer (`parent`, a chain id),
    /// for a container's root, under `lease` until a container holds it;
    /// its mounts.
    pub async fn prepare_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        lease: Option<&str>,
    ) -> Result<Vec<Mount>> {
        let req = PrepareSnapshotRequest {
            snapshotter: snapshotter.into(),
            key: key.into(),
            parent: parent.into(),
            labels: Default::default(),
        };
        Ok(SnapshotsClient::new(self.channel())
            .prepare(self.request(req, lease))
            .await
            .map_err(ContainerdError::call("snapshots prepare"))?
            .into_inner()
            .mounts)
    }

    /// The mounts of snapshot `key`.
    pub async fn snapshot_mounts(&self, snapshotter: &str, key: &str) -> Result<Vec<Mount>> {
        let req = MountsRequest {
            snapshotter: snapshotter.into(),
            key: key.into(),
        };
        Ok(SnapshotsClient::new(self.channel())
            .mounts(self.request(req, None))
            .await
            .map_err(ContainerdError::call("snapshots mounts"))?
            .into_inner()
            .mounts)
    }

    /// Removes snapshot `key`; one that is not there is not an error.
    pub async fn remove_snapshot(&self, snapshotter: &str, key: &str) -> Result<()> {
        let req = RemoveSnapshotRequest {
            snapshotter: snapshotter.into(),
            key: key.into(),
        };
        match SnapshotsClient::new(self.channel())
            .remove(self.request(req, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(ContainerdError::call("snapshots remove")(s)),
        }
    }

    /// Creates the container record.
    pub async fn create_container(&self, c: &NewContainer) -> Result<()> {
        let container = Container {
            id: c.id.clone(),
            labels: c.labels.clone().into_iter().collect(),
            image: c.image.clone(),
            runtime: Some(Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: c.spec_json.clone(),
            }),
            snapshotter: c.snapshotter.clone(),
            snapshot_key: c.snapshot_key.clone(),
            ..Default::default()
        };
        let req = CreateContainerRequest {
            container: Some(container),
        };
        match ContainersClient::new(self.channel())
            .create(self.request(req, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                Err(ContainerdError::ContainerExists { id: c.id.clone() })
            }
            Err(s) => Err(ContainerdError::call("containers create")(s)),
        }
    }

    /// The container record `id`.
    pub async fn container(&self, id: &str) -> Result<ContainerRecord> {
        let req = GetContainerRequest { id: id.into() };
        let c = ContainersClient::new(self.channel())
            .get(self.request(req, None))
            .await
            .map_err(about_container("containers get", id))?
            .into_inner()
            .container
            .ok_or_else(|| ContainerdError::ContainerNotFound { id: id.into() })?;
        Ok(c.into())
    }

    /// Containers carrying label `key` (with `value`, when given).
    pub async fn containers_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<ContainerRecord>> {
        let key = key.replace('"', "");
        let filter = match value {
            Some(v) => format!("labels.\"{key}\"==\"{}\"", v.replace('"', "")),
            None => format!("labels.\"{key}\""),
        };
        let req = ListContainersRequest {
            filters: vec![filter],
        };
        Ok(ContainersClient::new(self.channel())
            .list(self.request(req, None))
            .await
            .map_err(ContainerdError::call("containers list"))?
            .into_inner()
            .containers
            .into_iter()
            .map(ContainerRecord::from)
            .collect())
    }

    /// Deletes the container record (its task must be gone).
    pub async fn delete_container(&self, id: &str) -> Result<()> {
        let req = DeleteContainerRequest { id: id.into() };
        ContainersClient::new(self.channel())
            .delete(self.request(req, None))
            .await
            .map_err(about_container("containers delete", id))?;
        Ok(())
    }

    /// Creates the container's task (runc creates the process, which waits
    /// to be started) on `rootfs`, its output to two FIFOs; its pid.
    pub async fn create_task(
        &self,
        id: &str,
        rootfs: Vec<Mount>,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<u32> {
        let req = CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            stdin: String::new(),
            stdout: stdio(stdout),
            stderr: stdio(stderr),
            terminal: false,
            checkpoint: None,
            options: None,
            runtime_path: String::new(),
        };
        Ok(TasksClient::new(self.channel())
            .create(self.request(req, None))
            .await
            .map_err(about_container("tasks create", id))?
            .into_inner()
            .pid)
    }

    /// Starts the task (`exec_id` empty) or an exec'd process; its pid.
    pub async fn start_task(&self, id: &str, exec_id: &str) -> Result<u32> {
        let req = StartRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        Ok(TasksClient::new(self.channel())
            .start(self.request(req, None))
            .await
            .map_err(about_container("tasks start", id))?
            .into_inner()
            .pid)
    }

    /// The task's state (or an exec'd process's); `None` when there is no
    /// task.
    pub async fn task(&self, id: &str, exec_id: &str) -> Result<Option<TaskState>> {
        let req = GetRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        match TasksClient::new(self.channel())
            .get(self.request(req, None))
            .await
        {
            Ok(r) => Ok(r.into_inner().process.map(|p| TaskState {
                pid: p.pid,
                status: status_name(p.status),
                exit_status: p.exit_status,
                exited_at: timestamp(p.exited_at),
            })),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(ContainerdError::call("tasks get")(s)),
        }
    }

    /// Sends `signal` to the task's init (or to an exec'd process).
    pub async fn kill_task(&self, id: &str, exec_id: &str, signal: u32) -> Result<()> {
        let req = KillRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal,
            all: false,
        };
        TasksClient::new(self.channel())
            .kill(self.request(req, None))
            .await
            .map_err(about_container("tasks kill", id))?;
        Ok(())
    }

    /// Waits until the task (or exec'd process) exits; its exit status.
    /// Unbounded: the caller puts a deadline on it.
    pub async fn wait_task(&self, id: &str, exec_id: &str) -> Result<u32> {
        let req = WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        Ok(TasksClient::new(self.channel())
            .wait(self.request(req, None))
            .await
            .map_err(about_container("tasks wait", id))?
            .into_inner()
            .exit_status)
    }

    /// Deletes the (exited) task; its exit status, `None` when there was
    /// no task.
    pub async fn delete_task(&self, id: &str) -> Result<Option<u32>> {
        let req = DeleteTaskRequest {
            container_id: id.into(),
        };
        match TasksClient::new(self.channel())
            .delete(self.request(req, None))
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().exit_status)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(about_container("tasks delete", id)(s)),
        }
    }

    /// Adds process `exec_id` (its OCI process spec as JSON) to the
    /// running task, its output to two FIFOs; it runs once started.
    pub async fn exec_process(
        &self,
        id: &str,
        exec_id: &str,
        process_json: Vec<u8>,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<()> {
        let req = ExecProcessRequest {
            container_id: id.into(),
            stdin: String::new(),
            stdout: stdio(stdout),
            stderr: stdio(stderr),
            terminal: false,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE.into(),
                value: process_json,
            }),
            exec_id: exec_id.into(),
        };
        TasksClient::new(self.channel())
            .exec(self.request(req, None))
            .await
            .map_err(about_container("tasks exec", id))?;
        Ok(())
    }

    /// Deletes an exec'd process (after it exited); not there is fine.
    pub async fn delete_process(&self, id: &str, exec_id: &str) -> Result<()> {
        let req = DeleteProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        match TasksClient::new(self.channel())
            .delete_process(self.request(req, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(about_container("tasks delete process", id)(s)),
        }
    }
}
