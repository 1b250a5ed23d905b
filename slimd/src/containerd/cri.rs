//! The Kubernetes Container Runtime Interface (CRI, `runtime.v1`) on
//! containerd's socket, through the `k8s-cri` crate's generated client:
//! what kubelet asked for a container — its pod (namespace, name, uid,
//! labels, annotations), its name in the pod spec, its image — and its
//! state, so watch mode can decide on a new cgroup and follow the
//! container to its exit.
//!
//! containerd serves the CRI from its `cri` plugin on the same gRPC socket
//! (tested with containerd 1.6, which serves `runtime.v1` and
//! `v1alpha2`); CRI calls carry no containerd namespace (the plugin keeps
//! everything in `k8s.io`). Only reads are made here.

use std::{collections::BTreeMap, path::Path, time::Duration};

use containerd_client::tonic::{Code, transport::Channel};
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, PodSandboxStatusRequest,
    VersionRequest, runtime_service_client::RuntimeServiceClient,
};
use serde::{Deserialize, Serialize};

use super::{Containerd, ContainerdError, Result};

/// A CRI runtime service client (cheap to clone: one shared channel).
#[derive(Clone, Debug)]
pub struct Cri {
    client: RuntimeServiceClient<Channel>,
}

/// The runtime's answer to CRI `Version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriVersion {
    /// `containerd`.
    pub runtime_name: String,
    pub runtime_version: String,
    /// The CRI API version it serves (`v1`).
    pub runtime_api_version: String,
}

/// A container's state as the CRI says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CriState {
    Created,
    Running,
    /// Exited, with its exit code.
    Exited(i32),
    Unknown,
}

/// A container kubelet created in a pod, as the CRI describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodContainer {
    /// The container id (the cgroup's last component).
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    pub pod_sandbox_id: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// The image as people name it (a tag of the image, or what the pod
    /// spec asked for).
    pub image: String,
    /// The image's id (its config digest, `sha256:…`).
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
}

impl Containerd {
    /// The CRI on this containerd's socket (same connection).
    pub fn cri(&self) -> Cri {
        Cri::from_channel(self.channel())
    }
}

impl Cri {
    /// A client on an open channel to containerd's socket.
    pub fn from_channel(channel: Channel) -> Self {
        Cri {
            client: RuntimeServiceClient::new(channel),
        }
    }

    /// Connects to the socket (no namespace: the CRI has its own).
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self> {
        let c = Containerd::connect(socket, super::DEFAULT_NAMESPACE).await?;
        Ok(c.cri())
    }

    /// The generated runtime-service client on this connection, for CRI
    /// calls this module does not wrap (the end-to-end tests act as
    /// kubelet with it).
    pub fn client(&self) -> RuntimeServiceClient<Channel> {
        self.client.clone()
    }

    /// CRI `Version`: fails with a call error where the CRI plugin is off.
    pub async fn version(&self) -> Result<CriVersion> {
        let v = self
            .client
            .clone()
            .version(VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(ContainerdError::call("CRI Version"))?
            .into_inner();
        Ok(CriVersion {
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    }

    /// What the CRI knows of container `id` and its pod: `ListContainers`
    /// (its sandbox, labels, annotations, image id), `ContainerStatus` (the
    /// image's name) and `PodSandboxStatus` (the pod's metadata, labels and
    /// annotations). An id the CRI does not know as a container — another
    /// runtime's, or a pod's sandbox (pause) container — is
    /// [`ContainerdError::NotCriContainer`].
    pub async fn pod_container(&self, id: &str) -> Result<PodContainer> {
        let mut client = self.client.clone();
        let listed = client
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    id: id.to_string(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(ContainerdError::call("CRI ListContainers"))?
            .into_inner()
            .containers;
        // The filter also matches id prefixes: take the exact one.
        let Some(c) = listed.into_iter().find(|c| c.id == id) else {
            return Err(ContainerdError::NotCriContainer {
                id: id.to_string(),
                pod_sandbox: self.is_sandbox(id).await?,
            });
        };
        let status = client
            .container_status(ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .map_err(not_found_or(id, "CRI ContainerStatus"))?
            .into_inner()
            .status;
        let pod = client
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: c.pod_sandbox_id.clone(),
                verbose: false,
            })
            .await
            .map_err(ContainerdError::call("CRI PodSandboxStatus"))?
            .into_inner()
            .status
            .unwrap_or_default();
        let meta = pod.metadata.unwrap_or_default();
        let status_image = status
            .as_ref()
            .and_then(|s| s.image.as_ref())
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let spec_image = c.image.map(|i| i.image).unwrap_or_default();
        Ok(PodContainer {
            id: c.id,
            name: c.metadata.map(|m| m.name).unwrap_or_default(),
            pod_sandbox_id: c.pod_sandbox_id,
            pod_namespace: meta.namespace,
            pod_name: meta.name,
            pod_uid: meta.uid,
            image: people_name(&status_image, &spec_image, &c.image_ref),
            image_id: c.image_ref,
            labels: c.labels.into_iter().collect(),
            annotations: c.annotations.into_iter().collect(),
            pod_labels: pod.labels.into_iter().collect(),
            pod_annotations: pod.annotations.into_iter().collect(),
        })
    }

    /// Whether `id` is a pod sandbox.
    async fn is_sandbox(&self, id: &str) -> Result<bool> {
        match self
            .client
            .clone()
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().status.is_some_and(|s| s.id == id)),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(ContainerdError::call("CRI PodSandboxStatus")(s)),
        }
    }

    /// The container's state now (`ContainerStatus`); a container that is
    /// gone is [`ContainerdError::NotCriContainer`].
    pub async fn state(&self, id: &str) -> Result<CriState> {
        let status = self
            .client
            .clone()
            .container_status(ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .map_err(not_found_or(id, "CRI ContainerStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| ContainerdError::NotCriContainer {
                id: id.to_string(),
                pod_sandbox: false,
            })?;
        Ok(state_of(status.state, status.exit_code))
    }

    /// Waits until the container has exited (its exit code) or is gone
    /// (`None`), asking every `every`. It has no deadline of its own: the
    /// caller races it against its cancellation.
    pub async fn wait_exited(&self, id: &str, every: Duration) -> Result<Option<i32>> {
        loop {
            match self.state(id).await {
                Ok(CriState::Exited(code)) => return Ok(Some(code)),
                Ok(_) => {}
                Err(ContainerdError::NotCriContainer { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// A NotFound status is "not a CRI container"; anything else a call error.
fn not_found_or(
    id: &str,
    call: &'static str,
) -> impl Fn(containerd_client::tonic::Status) -> ContainerdError {
    let id = id.to_string();
    move |s| {
        if s.code() == Code::NotFound {
            ContainerdError::NotCriContainer {
                id: id.clone(),
                pod_sandbox: false,
            }
        } else {
            ContainerdError::call(call)(s)
        }
    }
}

/// The CRI's state enum (and exit code) as [`CriState`].
fn state_of(state: i32, exit_code: i32) -> CriState {
    match k8s_cri::v1::ContainerState::try_from(state) {
        Ok(k8s_cri::v1::ContainerState::ContainerCreated) => CriState::Created,
        Ok(k8s_cri::v1::ContainerState::ContainerRunning) => CriState::Running,
        Ok(k8s_cri::v1::ContainerState::ContainerExited) => CriState::Exited(exit_code),
        _ => CriState::Unknown,
    }
}

/// The name people know the image by: the status's image when it is a
/// name (containerd puts the image's first tag there), else the spec's
/// when that is a name, else the id.
fn people_name(status_image: &str, spec_image: &str, image_id: &str) -> String {
    let is_id = |s: &str| s.is_empty() || s.starts_with("sha256:") || s == image_id;
    [status_image, spec_image]
        .into_iter()
        .find(|s| !is_id(s))
        .unwrap_or(image_id)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_prefer_tags_over_ids() {
        let id = "sha256:0123";
        assert_eq!(
            people_name("docker.io/library/app:1", id, id),
            "docker.io/library/app:1"
        );
        assert_eq!(people_name(id, "app:1", id), "app:1");
        assert_eq!(people_name("", "", id), id);
        assert_eq!(people_name("sha256:other", "", id), id);
    }

    #[test]
    fn states() {
        use k8s_cri::v1::ContainerState as S;
        assert_eq!(state_of(S::ContainerRunning as i32, 0), CriState::Running);
        assert_eq!(state_of(S::ContainerCreated as i32, 0), CriState::Created);
        assert_eq!(
            state_of(S::ContainerExited as i32, 137),
            CriState::Exited(137)
        );
        assert_eq!(state_of(S::ContainerUnknown as i32, 0), CriState::Unknown);
        assert_eq!(state_of(99, 0), CriState::Unknown);
    }

    #[test]
    fn not_found_is_not_a_cri_container() {
        let e = not_found_or("abc", "CRI ContainerStatus")(
            containerd_client::tonic::Status::not_found("no"),
        );
        assert!(
            matches!(e, ContainerdError::NotCriContainer { ref id, pod_sandbox: false } if id == "abc")
        );
        let e = not_found_or("abc", "CRI ContainerStatus")(
            containerd_client::tonic::Status::unavailable("down"),
        );
        assert!(matches!(e, ContainerdError::Call { .. }));
    }

    #[tokio::test]
    async fn missing_socket_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let e = Cri::connect(dir.path().join("none.sock"))
            .await
            .unwrap_err();
        assert!(matches!(e, ContainerdError::SocketMissing { .. }), "{e}");
    }
}
