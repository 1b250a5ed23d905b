//! Reading an image out of containerd: the image record's target (an index,
//! from which this platform's manifest is picked, or a manifest), then the
//! manifest, config and layer blobs through the Content service's `Read`,
//! streamed as an OCI image-layout tar that [`crate::image::Image`] reads.

use bytes::Bytes;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetImageRequest, ReadContentRequest};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::layout::{self, BlobSource, Descriptor, LayoutPlan};
use super::{Containerd, ContainerdError, Result};

/// Chunks in flight between containerd and the image reader (each at most
/// what one Read response carries, about 1 MiB).
const CHUNKS_IN_FLIGHT: usize = 8;

/// An image record of the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub name: String,
    pub target: Descriptor,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl From<containerd_client::services::v1::Image> for ImageRecord {
    fn from(image: containerd_client::services::v1::Image) -> Self {
        let target = image.target.unwrap_or_default();
        ImageRecord {
            name: image.name,
            target: Descriptor {
                media_type: target.media_type,
                digest: target.digest,
                size: u64::try_from(target.size).unwrap_or(0),
                annotations: None,
                platform: None,
            },
            labels: image.labels.into_iter().collect(),
        }
    }
}

impl Containerd {
    /// The image record `name`, or [`ContainerdError::ImageNotFound`].
    pub async fn image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let r = ImagesClient::new(self.channel())
            .get(self.request(GetImageRequest { name: name.into() }, None))
            .await;
        let image = match r {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == containerd_client::tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(ContainerdError::call("images get")(s)),
        };
        Ok(image.map(ImageRecord::from))
    }

    /// A whole blob in memory, for index and manifest documents (refused
    /// past [`layout::MAX_DOCUMENT`]).
    pub async fn read_document(&self, d: &Descriptor) -> Result<Bytes> {
        if d.size > layout::MAX_DOCUMENT {
            return Err(ContainerdError::Blob {
                digest: d.digest.clone(),
                problem: format!("a {} of {} bytes is too large", d.media_type, d.size),
            });
        }
        let mut out = Vec::with_capacity(d.size as usize);
        let mut s = self.blob(&d.digest).await?;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() as u64 > d.size {
                break;
            }
        }
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
        );
        if out.len() as u64 != d.size || digest != d.digest {
            return Err(ContainerdError::Blob {
                digest: d.digest.clone(),
                problem: format!("content is {} bytes with digest {digest}", out.len()),
            });
        }
        Ok(Bytes::from(out))
    }

    /// The plan of `name`'s layout: its record, this platform's manifest
    /// (through an index when the target is one), read and parsed.
    pub async fn layout_plan(&self, name: &str) -> Result<LayoutPlan> {
        let record = self
            .image(name)
            .await?
            .ok_or_else(|| ContainerdError::ImageNotFound {
                name: name.into(),
                namespace: self.namespace().into(),
            })?;
        let (manifest, bytes) = self.platform_manifest(name, record.target).await?;
        LayoutPlan::new(name, manifest, bytes)
    }

    /// This platform's manifest of the image `name` whose record points at
    /// `target` (an index is followed), with its bytes.
    pub async fn platform_manifest(
        &self,
        name: &str,
        mut target: Descriptor,
    ) -> Result<(Descriptor, Bytes)> {
        // An index may hold an index; two levels are plenty.
        for _ in 0..3 {
            if layout::is_manifest(&target.media_type) {
                let bytes = self.read_document(&target).await?;
                return Ok((target, bytes));
            }
            if !layout::is_index(&target.media_type) {
                break;
            }
            let doc = self.read_document(&target).await?;
            target = layout::choose_manifest(&doc, name, "linux", layout::host_arch())?;
        }
        Err(ContainerdError::MediaType {
            what: format!("the target of {name}"),
            media_type: target.media_type,
        })
    }

    /// `name` as an OCI image-layout tar, streamed: the plan is made (and a
    /// missing image said) before the first byte; the blobs follow as the
    /// reader takes them.
    pub async fn export_layout(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let plan = self.layout_plan(name).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = plan.write(&me, &tx).await {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        });
        Ok(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        )
        .boxed())
    }
}

impl BlobSource for Containerd {
    async fn blob(&self, digest: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let req = ReadContentRequest {
            digest: digest.into(),
            offset: 0,
            size: 0,
        };
        let stream = ContentClient::new(self.channel())
            .read(self.request(req, None))
            .await
            .map_err(ContainerdError::call("content read"))?
            .into_inner();
        Ok(stream
            .map_ok(|r| Bytes::from(r.data))
            .map_err(ContainerdError::call("content read"))
            .boxed())
    }
}
