//! A stand-in for kubelet: the tests run pods on the private containerd
//! ([`crate::containerd::Containerd::start_cri`]) through the CRI gRPC API
//! exactly as kubelet does — `RunPodSandbox`, `CreateContainer`,
//! `StartContainer`, `StopContainer`, `StopPodSandbox`, `RemovePodSandbox`
//! (runtime.v1, through the `k8s-cri` crate slimd's own CRI client uses;
//! never `crictl`). Pods use the node's network namespace (no CNI), and
//! their cgroups sit where kubelet's cgroupfs driver puts a best-effort
//! pod: `/kubepods/besteffort/pod<uid>/<container id>`. Every pod it ran is
//! stopped and removed when it is dropped, also after a failed test.
//!
//! The sandbox (pause) image is built locally from the host's static
//! busybox ([`ensure_pause_image`]): a sleep that waits to be killed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest, ImageSpec,
    KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest, VersionRequest,
    runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::Channel;

use crate::{Entry, Recipe, build_unless_cached};

/// The sandbox image's tag in Docker, and containerd's name of it once imported.
pub const PAUSE_TAG: &str = "slimd-e2e/pause:cri";
pub const PAUSE_NAME: &str = "docker.io/slimd-e2e/pause:cri";

/// Builds (unless cached) the pause image: the host's static busybox as
/// `/bin/sleep`, sleeping until it is killed.
pub fn ensure_pause_image() -> Result<&'static str> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox is missing: run `cargo xtask setup` (Debian's busybox-static)");
    }
    let recipe = Recipe {
        entries: vec![Entry::HostFile {
            path: "/bin/sleep".into(),
            host: busybox.to_path_buf(),
            mode: 0o755,
        }],
        dockerfile: "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/bin/sleep\", \"2147483647\"]\n"
            .into(),
        extra_inputs: vec!["pause".into()],
    };
    build_unless_cached(PAUSE_TAG, &recipe)?;
    Ok(PAUSE_TAG)
}

/// A pod kubelet ran: its sandbox, and the config it was made with (every
/// `CreateContainer` repeats it).
#[derive(Clone, Debug)]
pub struct Pod {
    pub sandbox_id: String,
    pub uid: String,
    pub config: PodSandboxConfig,
}

/// What a container of a pod runs.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint (none: the image's).
    pub command: Vec<String>,
    /// Replaces the image's cmd (none: the image's).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    /// Mounts (host path, container path, read-only).
    pub mounts: Vec<(String, String, bool)>,
    /// Capabilities added to the runtime's default set.
    pub add_capabilities: Vec<String>,
    /// Drop every default capability first (`drop: [ALL]`).
    pub drop_all_capabilities: bool,
    /// `runAsUser`/`runAsGroup`.
    pub run_as: Option<(i64, i64)>,
    /// `readOnlyRootFilesystem`.
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
    /// `seccompProfile: RuntimeDefault` (none: unconfined, the CRI's
    /// default when a pod names no profile).
    pub seccomp_runtime_default: bool,
}

/// The CRI client acting as kubelet; removes its pods when dropped.
pub struct Kubelet {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    channel: Channel,
    logs: PathBuf,
    pods: Vec<String>,
    /// The uids of every pod run (their cgroups are removed at the end).
    uids: Vec<String>,
}

impl Kubelet {
    /// Connects to the CRI on containerd's socket; `logs` holds the pods'
    /// log directories.
    pub fn connect(socket: &Path, logs: &Path) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let cd = rt.block_on(slimd::containerd::Containerd::connect(
            socket,
            slimd::containerd::DEFAULT_NAMESPACE,
        ))?;
        std::fs::create_dir_all(logs)?;
        Ok(Kubelet {
            rt,
            client: cd.cri().client(),
            channel: cd.channel(),
            logs: logs.to_path_buf(),
            pods: Vec::new(),
            uids: Vec::new(),
        })
    }

    /// Runs `f` on the client with a 60 s deadline.
    fn call<T, F>(
        &self,
        what: &str,
        f: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let fut = f(self.client.clone());
        match self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), fut).await })
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => bail!("CRI {what}: {} ({:?})", s.message(), s.code()),
            Err(_) => bail!("CRI {what}: no answer within 60 s"),
        }
    }

    /// CRI `Version`: (runtime name, runtime version, CRI API version).
    pub fn version(&self) -> Result<(String, String, String)> {
        let v = self.call("Version", |mut c| async move {
            c.version(VersionRequest {
                version: "v1".into(),
            })
            .await
        })?;
        Ok((v.runtime_name, v.runtime_version, v.runtime_api_version))
    }

    /// Waits (30 s at most) until the CRI's image service knows `image`
    /// (`ImageStatus`): containerd's CRI plugin learns of images imported
    /// into `k8s.io` from containerd's events, a moment after the import.
    pub fn wait_image(&self, image: &str) -> Result<()> {
        use k8s_cri::v1::{ImageStatusRequest, image_service_client::ImageServiceClient};
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let req = ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            };
            let mut images = ImageServiceClient::new(self.channel.clone());
            let known = self
                .rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), images.image_status(req)).await
                })
                .ok()
                .and_then(Result::ok)
                .is_some_and(|r| r.into_inner().image.is_some());
            if known {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("the CRI does not know image {image} 30 s after its import");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `RunPodSandbox` of pod `namespace/name` on the node's network, PID
    /// and IPC namespaces per pod, under `/kubepods/besteffort/pod<uid>`.
    pub fn run_pod(
        &mut self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
        host_pid: bool,
    ) -> Result<Pod> {
        let uid = uuid_like();
        // Recorded before the call: runc may have made its cgroup even
        // when the call fails.
        self.uids.push(uid.clone());
        let log_directory = self.logs.join(format!("{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&log_directory)?;
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: String::new(),
            log_directory: log_directory.to_string_lossy().into_owned(),
            labels: [
                ("io.kubernetes.pod.name", name),
                ("io.kubernetes.pod.namespace", namespace),
                ("io.kubernetes.pod.uid", uid.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces(host_pid)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let r = self.call("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(req).await
        })?;
        self.pods.push(r.pod_sandbox_id.clone());
        Ok(Pod {
            sandbox_id: r.pod_sandbox_id,
            uid,
            config,
        })
    }

    /// `CreateContainer` then `StartContainer`; returns the container id.
    pub fn start_container(&self, pod: &Pod, spec: &ContainerSpec) -> Result<String> {
        use k8s_cri::v1::{
            Capability, Int64Value, Mount, SecurityProfile, security_profile::ProfileType,
        };
        let host_pid = pod
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.pid == NamespaceMode::Node as i32);
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: spec.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: spec.image.clone(),
                ..Default::default()
            }),
            command: spec.command.clone(),
            args: spec.args.clone(),
            envs: spec
                .env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            mounts: spec
                .mounts
                .iter()
                .map(|(host, container, ro)| Mount {
                    host_path: host.clone(),
                    container_path: container.clone(),
                    readonly: *ro,
                    ..Default::default()
                })
                .collect(),
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
            log_path: format!("{}.log", spec.name),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces(host_pid)),
                    capabilities: Some(Capability {
                        add_capabilities: spec.add_capabilities.clone(),
                        drop_capabilities: if spec.drop_all_capabilities {
                            vec!["ALL".into()]
                        } else {
                            vec![]
                        },
                        ..Default::default()
                    }),
                    run_as_user: spec.run_as.map(|(u, _)| Int64Value { value: u }),
                    run_as_group: spec.run_as.map(|(_, g)| Int64Value { value: g }),
                    readonly_rootfs: spec.readonly_rootfs,
                    no_new_privs: spec.no_new_privs,
                    seccomp: spec.seccomp_runtime_default.then(|| SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.sandbox_id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = self
            .call("CreateContainer", |mut c| async move {
                c.create_container(req).await
            })?
            .container_id;
        let start = StartContainerRequest {
            container_id: id.clone(),
        };
        self.call("StartContainer", |mut c| async move {
            c.start_container(start).await
        })?;
        Ok(id)
    }

    /// `StopContainer` with a grace period (SIGTERM, then SIGKILL).
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout: grace.as_secs() as i64,
        };
        self.call("StopContainer", |mut c| async move {
            c.stop_container(req).await
        })?;
        Ok(())
    }

    /// `ExecSync` (as `kubectl exec` does): exit code, stdout, stderr.
    pub fn exec(&self, id: &str, cmd: &[&str], timeout: Duration) -> Result<(i32, String, String)> {
        let req = k8s_cri::v1::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout.as_secs() as i64,
        };
        let r = self.call("ExecSync", |mut c| async move { c.exec_sync(req).await })?;
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        ))
    }

    /// Waits (`limit` at most) until the container has exited; its code.
    pub fn wait_exited(&self, id: &str, limit: Duration) -> Result<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let (state, code) = self.container_state(id)?;
            if state == "CONTAINER_EXITED" {
                return Ok(code);
            }
            if std::time::Instant::now() > deadline {
                bail!("container {id} still {state} after {}s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The container's state name (`CONTAINER_RUNNING`, …) and exit code.
    pub fn container_state(&self, id: &str) -> Result<(String, i32)> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let s = self
            .call("ContainerStatus", |mut c| async move {
                c.container_status(req).await
            })?
            .status
            .context("ContainerStatus without a status")?;
        let state = k8s_cri::v1::ContainerState::try_from(s.state)
            .map(|s| s.as_str_name().to_string())
            .unwrap_or_else(|_| format!("state {}", s.state));
        Ok((state, s.exit_code))
    }

    /// The container's log (CRI log format: time, stream, tag, line).
    pub fn container_log(&self, pod: &Pod, spec: &ContainerSpec) -> String {
        std::fs::read_to_string(
            Path::new(&pod.config.log_directory).join(format!("{}.log", spec.name)),
        )
        .unwrap_or_default()
    }

    /// `StopPodSandbox` and `RemovePodSandbox` (its containers go with it).
    pub fn remove_pod(&mut self, sandbox_id: &str) -> Result<()> {
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.call("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(stop).await
        })?;
        let rm = RemovePodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.call("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(rm).await
        })?;
        self.pods.retain(|p| p != sandbox_id);
        Ok(())
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for id in self.pods.clone() {
            if let Err(e) = self.remove_pod(&id) {
                eprintln!("kubelet stand-in: cannot remove pod {id}: {e}");
            }
        }
        remove_pod_cgroups(&self.uids);
    }
}

/// Removes the pod cgroups runc made as the pods' parents (kubelet's job
/// on a node), in every hierarchy, and the QoS and root cgroups above them
/// when nothing else is in them.
fn remove_pod_cgroups(uids: &[String]) {
    let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut hierarchies: Vec<PathBuf> = roots.flatten().map(|r| r.path()).collect();
    hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
    for h in hierarchies {
        for uid in uids {
            let _ = std::fs::remove_dir(h.join(format!("kubepods/besteffort/pod{uid}")));
        }
        let _ = std::fs::remove_dir(h.join("kubepods/besteffort"));
        let _ = std::fs::remove_dir(h.join("kubepods"));
    }
}

/// The node's network; PID namespace per pod, or the node's.
fn namespaces(host_pid: bool) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: if host_pid {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Container as i32
        },
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A pod uid in the form kubelet's are (random, 8-4-4-4-12 hex).
fn uuid_like() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
