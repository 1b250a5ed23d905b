//! Writing an image into containerd from an OCI image layout (what
//! [`crate::image::ImageWriter`] writes): every blob through the Content
//! service's `Write` with its expected digest and size, committed; the
//! garbage-collection labels on each manifest (its config and layers) and
//! index (its manifests); then the image record, created, or updated only
//! when the caller asked to replace it. All of it under a lease that is
//! deleted at the end, so nothing is collected half-way and nothing is left
//! held.
//!
//! Unpacking the layers into a snapshotter, which kubelet needs before it
//! can start a container from the image, is [`super::unpack`], run before
//! the image record is made when the caller asks for it.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    CreateImageRequest, Image, Info, UpdateImageRequest, UpdateRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::tonic::Code;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::layout::{self, Descriptor};
use super::{Containerd, ContainerdError, Result};

/// Bytes per Write message (containerd takes up to 16 MiB).
const CHUNK: usize = 1 << 20;
/// How long the write's lease lives if slimd dies before deleting it.
const LEASE_TTL: chrono::Duration = chrono::Duration::hours(1);

/// What a load did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Loaded {
    pub name: String,
    pub namespace: String,
    /// The image record's target (the manifest or index).
    pub target: Descriptor,
    /// Blobs written now.
    pub blobs_written: usize,
    /// Blobs containerd already had.
    pub blobs_present: usize,
    /// Bytes sent.
    pub bytes_written: u64,
    /// Whether an image of that name was replaced.
    pub replaced: bool,
    /// The layers unpacked into a snapshotter, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked: Option<super::unpack::Unpacked>,
}

/// One blob to write, with the labels it gets.
struct Upload {
    desc: Descriptor,
    labels: BTreeMap<String, String>,
}

impl Containerd {
    /// Writes the OCI layout at `dir` into this namespace as image `name`;
    /// an existing `name` is replaced only with `replace`. With
    /// `snapshotter`, the layers are unpacked into it before the image
    /// record is made (see [`super::unpack`]).
    pub async fn load_layout(
        &self,
        dir: &Path,
        name: &str,
        replace: bool,
        snapshotter: Option<&str>,
    ) -> Result<Loaded> {
        let existing = self.image(name).await?;
        if existing.is_some() && !replace {
            return Err(ContainerdError::ImageExists {
                name: name.into(),
                namespace: self.namespace().into(),
            });
        }
        let (target, uploads) = plan_uploads(dir)?;
        let lease = self.create_lease().await?;
        let result = async {
            let mut loaded = Loaded {
                name: name.into(),
                namespace: self.namespace().into(),
                target: target.clone(),
                blobs_written: 0,
                blobs_present: 0,
                bytes_written: 0,
                replaced: existing.is_some(),
                unpacked: None,
            };
            for u in &uploads {
                match self.write_blob(dir, u, &lease).await? {
                    Some(n) => {
                        loaded.blobs_written += 1;
                        loaded.bytes_written += n;
                    }
                    None => loaded.blobs_present += 1,
                }
            }
            if let Some(snapshotter) = snapshotter {
                loaded.unpacked = Some(self.unpack(dir, &target, snapshotter, &lease).await?);
            }
            self.put_image(name, &target, existing.is_some(), &lease)
                .await?;
            Ok(loaded)
        }
        .await;
        self.delete_lease(&lease).await;
        result
    }

    /// A lease (expiring by itself after an hour) that keeps what is made
    /// under it from the garbage collector until it is deleted.
    pub(crate) async fn create_lease(&self) -> Result<String> {
        use containerd_client::services::v1::CreateRequest;
        let id = format!(
            "slimd-load-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let expire =
            (chrono::Utc::now() + LEASE_TTL).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let req = CreateRequest {
            id: id.clone(),
            labels: [("containerd.io/gc.expire".to_string(), expire)].into(),
        };
        LeasesClient::new(self.channel())
            .create(self.request(req, None))
            .await
            .map_err(ContainerdError::call("leases create"))?;
        Ok(id)
    }

    pub(crate) async fn delete_lease(&self, id: &str) {
        use containerd_client::services::v1::DeleteRequest;
        let req = DeleteRequest {
            id: id.into(),
            sync: false,
        };
        if let Err(e) = LeasesClient::new(self.channel())
            .delete(self.request(req, None))
            .await
        {
            tracing::warn!(
                "containerd lease {id} not deleted (it expires by itself): {}",
                e.message()
            );
        }
    }

    /// Writes one blob from the layout; `None` when containerd has it
    /// already (its labels are then set through `Update`).
    async fn write_blob(&self, dir: &Path, u: &Upload, lease: &str) -> Result<Option<u64>> {
        let path = dir.join(layout::blob_path(&u.desc.digest)?);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(ContainerdError::io(format!("{}", path.display())))?;
        let total = i64::try_from(u.desc.size).unwrap_or(i64::MAX);
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let reference = format!("slimd-{}", u.desc.digest);
        let expected = u.desc.digest.clone();
        let labels = u.labels.clone();
        let size = u.desc.size;
        let producer = tokio::spawn(async move {
            let mut offset = 0u64;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = file.read(&mut buf).await?;
                let last = n == 0 || offset + n as u64 >= size;
                let mut req = WriteContentRequest {
                    action: if last {
                        WriteAction::Commit
                    } else {
                        WriteAction::Write
                    } as i32,
                    r#ref: reference.clone(),
                    total,
                    expected: expected.clone(),
                    offset: offset as i64,
                    data: buf[..n].to_vec(),
                    labels: Default::default(),
                };
                if last {
                    req.labels = labels.clone().into_iter().collect();
                }
                offset += n as u64;
                if tx.send(req).await.is_err() || last {
                    return Ok::<u64, std::io::Error>(offset);
                }
            }
        });
        let outbound =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        let mut content = ContentClient::new(self.channel());
        let answer = match content.write(self.request(outbound, Some(lease))).await {
            Ok(r) => {
                let mut s = r.into_inner();
                let mut last = None;
                loop {
                    match s.message().await {
                        Ok(Some(m)) => last = Some(m),
                        Ok(None) => break Ok(last),
                        Err(e) => break Err(e),
                    }
                }
            }
            Err(e) => Err(e),
        };
        let sent = producer.await.map_err(|e| ContainerdError::Io {
            what: format!("reading {}", path.display()),
            source: std::io::Error::other(e),
        });
        match answer {
            Err(s) if s.code() == Code::AlreadyExists => {
                if !u.labels.is_empty() {
                    self.set_labels(&u.desc.digest, &u.labels).await?;
                }
                Ok(None)
            }
            Err(s) => Err(ContainerdError::call("content write")(s)),
            Ok(last) => {
                let sent = sent?.map_err(ContainerdError::io(format!("{}", path.display())))?;
                let committed = last.is_some_and(|m| m.action == WriteAction::Commit as i32);
                if !committed || sent != u.desc.size {
                    return Err(ContainerdError::Blob {
                        digest: u.desc.digest.clone(),
                        problem: format!(
                            "write not committed ({sent} of {} bytes sent)",
                            u.desc.size
                        ),
                    });
                }
                Ok(Some(sent))
            }
        }
    }

    pub(crate) async fn set_labels(
        &self,
        digest: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let req = UpdateRequest {
            info: Some(Info {
                digest: digest.into(),
                labels: labels.clone().into_iter().collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: labels.keys().map(|k| format!("labels.{k}")).collect(),
            }),
        };
        ContentClient::new(self.channel())
            .update(self.request(req, None))
            .await
            .map_err(ContainerdError::call("content update"))?;
        Ok(())
    }

    async fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        exists: bool,
        lease: &str,
    ) -> Result<()> {
        let image = image_record(name, target);
        let mut images = ImagesClient::new(self.channel());
        if exists {
            let req = UpdateImageRequest {
                image: Some(image),
                update_mask: None,
                source_date_epoch: None,
            };
            images
                .update(self.request(req, Some(lease)))
                .await
                .map_err(ContainerdError::call("images update"))?;
        } else {
            let req = CreateImageRequest {
                image: Some(image),
                source_date_epoch: None,
            };
            match images.create(self.request(req, Some(lease))).await {
                Ok(_) => {}
                Err(s) if s.code() == Code::AlreadyExists => {
                    return Err(ContainerdError::ImageExists {
                        name: name.into(),
                        namespace: self.namespace().into(),
                    });
                }
                Err(s) => return Err(ContainerdError::call("images create")(s)),
            }
        }
        Ok(())
    }
}

/// The image of a layout (its `index.json` must name exactly one) and its
/// blobs in the order they are written: leaves first, then manifests, then
/// indexes, so no document is stored before what it names.
fn plan_uploads(dir: &Path) -> Result<(Descriptor, Vec<Upload>)> {
    let bad = |problem: String| ContainerdError::Archive {
        path: dir.to_path_buf(),
        problem,
    };
    let index = read_small(&dir.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
    let images: Vec<Descriptor> = layout::index_manifests(&index, "index.json")?
        .into_iter()
        .filter(|d| layout::is_manifest(&d.media_type) || layout::is_index(&d.media_type))
        .collect();
    let [target] = images.as_slice() else {
        return Err(bad(format!(
            "index.json names {} images; a load takes an archive of one",
            images.len()
        )));
    };
    let mut target = target.clone();
    target.platform = None;
    let mut uploads = Vec::new();
    let mut seen = HashSet::new();
    walk(dir, &target, &mut uploads, &mut seen, 0)?;
    Ok((target, uploads))
}

fn walk(
    dir: &Path,
    d: &Descriptor,
    out: &mut Vec<Upload>,
    seen: &mut HashSet<String>,
    depth: usize,
) -> Result<()> {
    if !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let path = dir.join(layout::blob_path(&d.digest)?);
    let meta = std::fs::metadata(&path).map_err(|e| ContainerdError::Archive {
        path: dir.to_path_buf(),
        problem: format!("blob {} is missing: {e}", d.digest),
    })?;
    if meta.len() != d.size {
        return Err(ContainerdError::Blob {
            digest: d.digest.clone(),
            problem: format!(
                "{} bytes in the archive, its descriptor says {}",
                meta.len(),
                d.size
            ),
        });
    }
    let mut labels = BTreeMap::new();
    if (layout::is_manifest(&d.media_type) || layout::is_index(&d.media_type)) && depth < 4 {
        let doc = read_small(&path).map_err(ContainerdError::io(format!("{}", path.display())))?;
        labels = layout::gc_labels(&d.media_type, &doc, &d.digest)?;
        if layout::is_manifest(&d.media_type) {
            let m = layout::parse_manifest(&doc, &d.digest)?;
            walk(dir, &m.config, out, seen, depth + 1)?;
            for l in &m.layers {
                walk(dir, l, out, seen, depth + 1)?;
            }
        } else {
            for m in layout::index_manifests(&doc, &d.digest)? {
                walk(dir, &m, out, seen, depth + 1)?;
            }
        }
    }
    out.push(Upload {
        desc: d.clone(),
        labels,
    });
    Ok(())
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(layout::MAX_DOCUMENT + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > layout::MAX_DOCUMENT {
        return Err(std::io::Error::other("too large for an image document"));
    }
    Ok(out)
}

/// Unpacks an OCI layout tar into `dest`: only `oci-layout`, `index.json`
/// and `blobs/sha256/<hex>` regular files are taken (nothing else can
/// become a path); an archive without `index.json` is refused.
pub fn unpack_layout<R: Read>(input: R, dest: &Path, shown: &Path) -> Result<()> {
    let bad = |problem: String| ContainerdError::Archive {
        path: shown.to_path_buf(),
        problem,
    };
    std::fs::create_dir_all(dest.join("blobs/sha256"))
        .map_err(ContainerdError::io(format!("{}", dest.display())))?;
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut has_index = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let keep: Option<PathBuf> = match name.as_str() {
            "oci-layout" | "index.json" => Some(PathBuf::from(&name)),
            n => n
                .strip_prefix("blobs/sha256/")
                .and_then(|hex| layout::blob_path(&format!("sha256:{hex}")).ok())
                .map(PathBuf::from),
        };
        let Some(rel) = keep else { continue };
        has_index |= name == "index.json";
        let path = dest.join(rel);
        let mut f = std::fs::File::create(&path)
            .map_err(ContainerdError::io(format!("{}", path.display())))?;
        std::io::copy(&mut entry, &mut f)
            .map_err(ContainerdError::io(format!("{}", path.display())))?;
    }
    if !has_index {
        return Err(bad(
            "not an OCI image layout (no index.json); a docker save archive of Docker before 25 cannot be loaded into containerd yet".into(),
        ));
    }
    Ok(())
}

/// containerd's record of the image `name`, pointing at `target`.
pub(crate) fn image_record(name: &str, target: &Descriptor) -> Image {
    Image {
        name: name.into(),
        labels: Default::default(),
        target: Some(containerd_client::types::Descriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.clone(),
            size: i64::try_from(target.size).unwrap_or(i64::MAX),
            annotations: Default::default(),
        }),
        created_at: None,
        updated_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_tar(with_index: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // The raw name, so a hostile `..` can be written too.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        add("oci-layout", layout::OCI_LAYOUT);
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let digest = |d: &[u8]| {
            format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d))
            )
        };
        add(&format!("blobs/sha256/{}", &digest(config)[7..]), config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": layout::MT_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
            "layers": [],
        }))
        .unwrap();
        add(
            &format!("./blobs/sha256/{}", &digest(&manifest)[7..]),
            &manifest,
        );
        add("blobs/sha256/../../escape", b"x");
        add("extra.txt", b"ignored");
        if with_index {
            let d = Descriptor {
                media_type: layout::MT_OCI_MANIFEST.into(),
                digest: digest(&manifest),
                size: manifest.len() as u64,
                ..Default::default()
            };
            add("index.json", &layout::index_json(&d, "app:1"));
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpack_then_plan_writes_leaves_first() {
        let dir = tempfile::tempdir().unwrap();
        unpack_layout(&layout_tar(true)[..], dir.path(), Path::new("a.tar")).unwrap();
        assert!(!dir.path().join("extra.txt").exists());
        assert!(!dir.path().parent().unwrap().join("escape").exists());
        let (target, uploads) = plan_uploads(dir.path()).unwrap();
        assert_eq!(target.media_type, layout::MT_OCI_MANIFEST);
        assert_eq!(uploads.len(), 2);
        assert!(uploads[0].labels.is_empty(), "config first");
        assert_eq!(uploads[1].desc.digest, target.digest, "manifest last");
        assert_eq!(
            uploads[1].labels["containerd.io/gc.ref.content.config"],
            uploads[0].desc.digest
        );
    }

    #[test]
    fn not_a_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = unpack_layout(&layout_tar(false)[..], dir.path(), Path::new("a.tar")).unwrap_err();
        assert!(
            e.to_string().starts_with("a.tar: not an OCI image layout"),
            "{e}"
        );
        assert!(e.is_usage());
    }
}
