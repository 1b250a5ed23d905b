//! containerd through its gRPC API (the `containerd-client` crate): connect
//! to a socket, read an image from the content store as an OCI image-layout
//! tar ([`read`]), and write an OCI archive's blobs and image record back
//! ([`write`]). Every request carries the namespace (default `k8s.io`, the
//! one kubelet uses); writes run under a lease so containerd's garbage
//! collector cannot take a blob before the image that holds it exists.
//!
//! Containers run through it too ([`runtime`]: container records, their
//! snapshots, tasks and exec'd processes), for the engine's containerd side.
//! [`cri`] reads what kubelet asked for a container through the
//! Kubernetes CRI on the same socket (watch mode on a node).
//!
//! This room speaks containerd only; it reads and writes images as bytes
//! and leaves their contents to [`crate::image`]. It never shells out to
//! `ctr`.

pub mod archive;
pub mod catalog;
pub mod cri;
pub mod error;
pub mod layout;
pub mod read;
pub mod runtime;
pub mod unpack;
pub mod write;

use std::path::{Path, PathBuf};

use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::tonic::transport::Channel;

pub use error::{ContainerdError, Result};

/// Where containerd listens on a node unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// kubelet's namespace: images there are the ones pods can run.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";

/// gRPC metadata key of the namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// gRPC metadata key of the lease a write runs under.
const LEASE_HEADER: &str = "containerd-lease";

/// A connection to one containerd, speaking in one namespace.
#[derive(Clone, Debug)]
pub struct Containerd {
    channel: Channel,
    socket: PathBuf,
    namespace: String,
}

/// containerd's version, as its Version service says it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Version {
    pub version: String,
    pub revision: String,
}

impl Containerd {
    /// Connects to the socket; a missing socket is said as such before any
    /// gRPC is tried.
    pub async fn connect(socket: impl AsRef<Path>, namespace: &str) -> Result<Self> {
        let socket = socket.as_ref().to_path_buf();
        check_namespace(namespace)?;
        if !socket.exists() {
            return Err(ContainerdError::SocketMissing { path: socket });
        }
        let channel = containerd_client::connect(&socket)
            .await
            .map_err(|source| ContainerdError::Connect {
                path: socket.clone(),
                source,
            })?;
        Ok(Containerd {
            channel,
            socket,
            namespace: namespace.to_string(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The namespace every request carries.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's version (the first call made, so a socket that is not
    /// containerd fails here).
    pub async fn version(&self) -> Result<Version> {
        let v = VersionClient::new(self.channel.clone())
            .version(containerd_client::tonic::Request::new(()))
            .await
            .map_err(ContainerdError::call("version"))?
            .into_inner();
        Ok(Version {
            version: v.version,
            revision: v.revision,
        })
    }

    /// The gRPC channel, for services this module does not wrap (the
    /// end-to-end tests' CRI image service).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A request in this namespace, under `lease` when given.
    pub(crate) fn request<T>(
        &self,
        message: T,
        lease: Option<&str>,
    ) -> containerd_client::tonic::Request<T> {
        let mut req = containerd_client::tonic::Request::new(message);
        let md = req.metadata_mut();
        // check_namespace allowed only characters valid in metadata.
        if let Ok(v) = self.namespace.parse() {
            md.insert(NAMESPACE_HEADER, v);
        }
        if let Some(Ok(v)) = lease.map(str::parse) {
            md.insert(LEASE_HEADER, v);
        }
        req
    }
}

/// containerd's rule for namespace names (a DNS-label-like identifier),
/// checked here so a bad one is the user's error, not a gRPC one.
pub fn check_namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && ns.as_bytes()[0].is_ascii_alphanumeric()
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ContainerdError::BadNamespace(ns.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["k8s.io", "default", "moby", "a_b-c.9"] {
            check_namespace(ok).unwrap();
        }
        for bad in ["", ".k8s", "a/b", "a b", "ns\n"] {
            assert!(matches!(
                check_namespace(bad),
                Err(ContainerdError::BadNamespace(_))
            ));
        }
    }

    #[tokio::test]
    async fn missing_socket_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let e = Containerd::connect(dir.path().join("none.sock"), DEFAULT_NAMESPACE)
            .await
            .unwrap_err();
        assert!(matches!(e, ContainerdError::SocketMissing { .. }));
        assert!(e.to_string().contains("is containerd running"), "{e}");
    }
}
