//! Unpacking an image's layers into a snapshotter, as containerd's own
//! unpacker does, so kubelet (and `ctr run`) can start a container from it:
//! for each layer, in order, a snapshot is prepared on its parent's chain
//! id, the layer is applied onto its mounts through the Diff service, and
//! the snapshot is committed under the layer's chain id. A chain id that
//! exists already is reused. The config blob then gets the
//! `containerd.io/gc.ref.snapshot.<snapshotter>` label, so the garbage
//! collector keeps the snapshots as long as the image holds the config.

use std::path::Path;

use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::tonic::Code;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::{self, Descriptor};
use super::{Containerd, ContainerdError, Result};

/// The snapshotter kubelet's containerd uses unless configured otherwise.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// What an unpack did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpacked {
    pub snapshotter: String,
    /// The chain id of the top layer: the snapshot a container starts on.
    pub chain_id: String,
    pub layers_applied: usize,
    pub layers_present: usize,
}

/// The chain ids of a stack of layers (OCI image spec): the first is the
/// first diff id, each next one `sha256(previous + " " + diff id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl Containerd {
    /// Unpacks the image whose manifest (or index, for this platform) is
    /// `target`, its blobs in the layout at `dir` and already in the
    /// content store, under `lease`.
    pub(crate) async fn unpack(
        &self,
        dir: &Path,
        target: &Descriptor,
        snapshotter: &str,
        lease: &str,
    ) -> Result<Unpacked> {
        let read = |d: &Descriptor| -> Result<Vec<u8>> {
            let path = dir.join(layout::blob_path(&d.digest)?);
            std::fs::read(&path).map_err(ContainerdError::io(format!("{}", path.display())))
        };
        let mut manifest = target.clone();
        if layout::is_index(&manifest.media_type) {
            manifest = layout::choose_manifest(
                &read(&manifest)?,
                "the archive",
                "linux",
                layout::host_arch(),
            )?;
        }
        let m = layout::parse_manifest(&read(&manifest)?, "the manifest")?;
        let config: ConfigRootfs = serde_json::from_slice(&read(&m.config)?).map_err(|source| {
            ContainerdError::Document {
                what: "the image config".into(),
                source,
            }
        })?;
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(ContainerdError::Blob {
                digest: m.config.digest.clone(),
                problem: format!(
                    "the config lists {} layers, the manifest {}",
                    diff_ids.len(),
                    m.layers.len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);
        let mut done = Unpacked {
            snapshotter: snapshotter.into(),
            chain_id: chains.last().cloned().unwrap_or_default(),
            layers_applied: 0,
            layers_present: 0,
        };
        let mut snapshots = SnapshotsClient::new(self.channel());
        for (i, layer) in m.layers.iter().enumerate() {
            let chain = &chains[i];
            let stat = snapshots
                .stat(self.request(
                    StatSnapshotRequest {
                        snapshotter: snapshotter.into(),
                        key: chain.clone(),
                    },
                    Some(lease),
                ))
                .await;
            match stat {
                Ok(_) => {
                    done.layers_present += 1;
                    continue;
                }
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(ContainerdError::call("snapshots stat")(s)),
            }
            let parent = if i == 0 {
                String::new()
            } else {
                chains[i - 1].clone()
            };
            let key = format!(
                "slimd-extract-{}-{chain}",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            );
            let mounts = snapshots
                .prepare(self.request(
                    PrepareSnapshotRequest {
                        snapshotter: snapshotter.into(),
                        key: key.clone(),
                        parent,
                        labels: Default::default(),
                    },
                    Some(lease),
                ))
                .await
                .map_err(ContainerdError::call("snapshots prepare"))?
                .into_inner()
                .mounts;
            let applied = async {
                let applied = DiffClient::new(self.channel())
                    .apply(self.request(
                        ApplyRequest {
                            diff: Some(containerd_client::types::Descriptor {
                                media_type: layer.media_type.clone(),
                                digest: layer.digest.clone(),
                                size: i64::try_from(layer.size).unwrap_or(i64::MAX),
                                annotations: Default::default(),
                            }),
                            mounts,
                            payloads: Default::default(),
                            sync_fs: false,
                        },
                        Some(lease),
                    ))
                    .await
                    .map_err(ContainerdError::call("diff apply"))?
                    .into_inner()
                    .applied
                    .unwrap_or_default();
                if applied.digest != diff_ids[i] {
                    return Err(ContainerdError::Blob {
                        digest: layer.digest.clone(),
                        problem: format!(
                            "applied as {}, the config says {}",
                            applied.digest, diff_ids[i]
                        ),
                    });
                }
                snapshots
                    .clone()
                    .commit(self.request(
                        CommitSnapshotRequest {
                            snapshotter: snapshotter.into(),
                            name: chain.clone(),
                            key: key.clone(),
                            labels: Default::default(),
                        },
                        Some(lease),
                    ))
                    .await
                    .map_err(ContainerdError::call("snapshots commit"))?;
                Ok(())
            }
            .await;
            if let Err(e) = applied {
                let _ = snapshots
                    .remove(self.request(
                        RemoveSnapshotRequest {
                            snapshotter: snapshotter.into(),
                            key,
                        },
                        Some(lease),
                    ))
                    .await;
                return Err(e);
            }
            done.layers_applied += 1;
        }
        if !done.chain_id.is_empty() {
            let label = format!("containerd.io/gc.ref.snapshot.{snapshotter}");
            self.set_labels(&m.config.digest, &[(label, done.chain_id.clone())].into())
                .await?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        let want = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(ids[1], want);
        assert!(chain_ids(&[]).is_empty());
    }
}
