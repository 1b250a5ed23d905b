//! The namespace's image records as a catalog: list them, resolve one to
//! this platform's manifest and config (the config digest is what Docker
//! calls the image id), measure the unpacked layers, give an image one more
//! name (a record on the same target, created or moved), and delete a
//! record. Deleting a record deletes no content: containerd's garbage
//! collector takes the blobs and snapshots no record holds any more.

use bytes::Bytes;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::UsageRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::{
    CreateImageRequest, DeleteImageRequest, ListImagesRequest, UpdateImageRequest,
};
use containerd_client::tonic::Code;

use super::layout::{self, Descriptor};
use super::read::ImageRecord;
use super::{Containerd, ContainerdError, Result};

/// An image record followed down to this platform's manifest and config.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub record: ImageRecord,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The config blob (`application/vnd.oci.image.config.v1+json`).
    pub config_bytes: Bytes,
}

impl ResolvedImage {
    /// The image id as Docker spells it: the config's digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }
}

impl Containerd {
    /// Every image record of the namespace.
    pub async fn images(&self) -> Result<Vec<ImageRecord>> {
        let list = ImagesClient::new(self.channel())
            .list(self.request(ListImagesRequest { filters: vec![] }, None))
            .await
            .map_err(ContainerdError::call("images list"))?
            .into_inner();
        Ok(list.images.into_iter().map(ImageRecord::from).collect())
    }

    /// `record` followed to this platform's manifest, its config read.
    pub async fn resolve(&self, record: ImageRecord) -> Result<ResolvedImage> {
        let (manifest, bytes) = self
            .platform_manifest(&record.name, record.target.clone())
            .await?;
        let m = layout::parse_manifest(&bytes, &format!("the manifest of {}", record.name))?;
        let config_bytes = self.read_document(&m.config).await?;
        Ok(ResolvedImage {
            record,
            manifest,
            config: m.config,
            layers: m.layers,
            config_bytes,
        })
    }

    /// The bytes the snapshots of `chain_ids` take in `snapshotter`, or
    /// `None` when one of them is not there (the image is not unpacked).
    pub async fn unpacked_size(
        &self,
        snapshotter: &str,
        chain_ids: &[String],
    ) -> Result<Option<u64>> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let mut total = 0u64;
        for key in chain_ids {
            let req = UsageRequest {
                snapshotter: snapshotter.into(),
                key: key.clone(),
            };
            match snapshots.usage(self.request(req, None)).await {
                Ok(u) => total += u64::try_from(u.into_inner().size).unwrap_or(0),
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) => return Err(ContainerdError::call("snapshots usage")(s)),
            }
        }
        Ok(Some(total))
    }

    /// Points the record `name` at `target`, creating it or moving it;
    /// whether a record of that name was there before.
    pub async fn name_image(&self, name: &str, target: &Descriptor) -> Result<bool> {
        let image = super::write::image_record(name, target);
        let mut images = ImagesClient::new(self.channel());
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(self.request(create, None)).await {
            Ok(_) => Ok(false),
            Err(s) if s.code() == Code::AlreadyExists => {
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["target".into()],
                    }),
                    source_date_epoch: None,
                };
                images
                    .update(self.request(update, None))
                    .await
                    .map_err(ContainerdError::call("images update"))?;
                Ok(true)
            }
            Err(s) => Err(ContainerdError::call("images create")(s)),
        }
    }

    /// Deletes the record `name` ([`ContainerdError::ImageNotFound`] when
    /// there is none).
    pub async fn delete_image(&self, name: &str) -> Result<()> {
        let req = DeleteImageRequest {
            name: name.into(),
            sync: false,
            target: None,
        };
        match ImagesClient::new(self.channel())
            .delete(self.request(req, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Err(ContainerdError::ImageNotFound {
                name: name.into(),
                namespace: self.namespace().into(),
            }),
            Err(s) => Err(ContainerdError::call("images delete")(s)),
        }
    }
}
