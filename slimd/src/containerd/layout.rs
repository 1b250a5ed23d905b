//! The OCI image layout as a tar stream (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), assembled from blobs that arrive as streams, and
//! the image documents' parts this needs: picking a platform's manifest from
//! an index, a manifest's config and layers, and the garbage-collection
//! labels containerd wants on a manifest or index.
//!
//! Pure: the blobs come from any [`BlobSource`], so the assembly is tested
//! without a containerd. Memory stays bounded: each blob is copied chunk by
//! chunk into a bounded channel the image reader drains.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Deserialize;

use super::error::{ContainerdError, Result};

// The OCI vocabulary is the image library's.
pub use crate::image::{
    Descriptor, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST, Platform,
};

/// `oci-layout` of every layout written.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation that names an image in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation of the full image name.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// Largest index or manifest read into memory.
pub const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// What a manifest points at.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// Whether a media type is an index (OCI) or manifest list (Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == MT_OCI_INDEX || media_type == MT_DOCKER_LIST
}

/// Whether a media type is an image manifest (OCI or Docker).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MT_OCI_MANIFEST || media_type == MT_DOCKER_MANIFEST
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The descriptors listed by an index.
pub fn index_manifests(doc: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    let index: Index = serde_json::from_slice(doc).map_err(|source| ContainerdError::Document {
        what: what.to_string(),
        source,
    })?;
    Ok(index.manifests)
}

/// The `os`/`arch` image manifest of an index (a manifest without a
/// platform counts as the only choice when it is the only manifest;
/// attestation manifests, `unknown/unknown`, never match).
pub fn choose_manifest(doc: &[u8], name: &str, os: &str, arch: &str) -> Result<Descriptor> {
    let manifests = index_manifests(doc, &format!("the index of {name}"))?;
    let images: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| is_manifest(&d.media_type) || is_index(&d.media_type))
        .collect();
    if let Some(d) = images.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    }) {
        return Ok((*d).clone());
    }
    if let [only] = images.as_slice()
        && only.platform.is_none()
    {
        return Ok((*only).clone());
    }
    let available: Vec<String> = images
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect();
    Err(ContainerdError::NoPlatform {
        name: name.to_string(),
        platform: format!("{os}/{arch}"),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

/// A manifest's config and layers.
pub fn parse_manifest(doc: &[u8], what: &str) -> Result<Manifest> {
    serde_json::from_slice(doc).map_err(|source| ContainerdError::Document {
        what: what.to_string(),
        source,
    })
}

/// The labels that tell containerd's garbage collector what a manifest or
/// index holds on to: `containerd.io/gc.ref.content.config` and `.l.<i>`
/// for a manifest's config and layers, `.m.<i>` for an index's manifests.
pub fn gc_labels(media_type: &str, doc: &[u8], what: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    if is_manifest(media_type) {
        let m = parse_manifest(doc, what)?;
        labels.insert(
            "containerd.io/gc.ref.content.config".into(),
            m.config.digest,
        );
        for (i, l) in m.layers.into_iter().enumerate() {
            labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), l.digest);
        }
    } else if is_index(media_type) {
        for (i, m) in index_manifests(doc, what)?.into_iter().enumerate() {
            labels.insert(format!("containerd.io/gc.ref.content.m.{i}"), m.digest);
        }
    }
    Ok(labels)
}

/// The path of a blob in a layout, for `sha256:<64 hex>` digests only (no
/// other digest can become a path).
pub fn blob_path(digest: &str) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(format!("blobs/sha256/{hex}"))
        }
        _ => Err(ContainerdError::Blob {
            digest: digest.to_string(),
            problem: "not a sha256 digest".into(),
        }),
    }
}

/// The `index.json` of a one-image layout pointing at `manifest`, named
/// `name` (both the OCI ref name and containerd's full name).
pub fn index_json(manifest: &Descriptor, name: &str) -> Vec<u8> {
    let mut d = manifest.clone();
    d.platform = None;
    let annotations = d.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(IMAGE_NAME.into(), name.into());
    annotations.insert(REF_NAME.into(), name.into());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [d],
    });
    serde_json::to_vec(&index).unwrap_or_default()
}

/// A tar header of a regular file (mode 0644, owned by root, time 0).
pub fn file_header(path: &str, size: u64) -> Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(ContainerdError::io(format!("tar header for {path}")))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(*h.as_bytes())
}

/// The zero bytes that pad an entry of `size` bytes to a 512-byte block.
pub fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Where blobs come from: containerd's Content service, or a test's map.
pub trait BlobSource: Sync {
    /// The blob's bytes as a stream of chunks.
    fn blob(
        &self,
        digest: &str,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Bytes>>>> + Send;
}

/// Where the layout's bytes go: a bounded channel whose receiver is the
/// image reader's input.
pub type Sink = tokio::sync::mpsc::Sender<io::Result<Bytes>>;

/// What one layout holds: a manifest (already read) and the blobs it
/// names, in the order they are written.
#[derive(Clone, Debug)]
pub struct LayoutPlan {
    pub name: String,
    pub manifest: Descriptor,
    pub manifest_bytes: Bytes,
    pub blobs: Vec<Descriptor>,
}

impl LayoutPlan {
    /// The plan for a manifest: its config first, then its layers.
    pub fn new(name: &str, manifest: Descriptor, manifest_bytes: Bytes) -> Result<Self> {
        let m = parse_manifest(&manifest_bytes, &format!("the manifest of {name}"))?;
        let mut blobs = vec![m.config];
        blobs.extend(m.layers);
        Ok(LayoutPlan {
            name: name.to_string(),
            manifest,
            manifest_bytes,
            blobs,
        })
    }

    /// The bytes of the whole tar, `oci-layout` and `index.json` first.
    /// Stops with an error when the receiver is gone (the reader failed)
    /// or a blob is not the size its descriptor says.
    pub async fn write<S: BlobSource>(&self, source: &S, sink: &Sink) -> Result<()> {
        send_file(sink, "oci-layout", Bytes::from_static(OCI_LAYOUT)).await?;
        let index = index_json(&self.manifest, &self.name);
        send_file(sink, "index.json", Bytes::from(index)).await?;
        send_file(
            sink,
            &blob_path(&self.manifest.digest)?,
            self.manifest_bytes.clone(),
        )
        .await?;
        let mut written = std::collections::HashSet::new();
        written.insert(self.manifest.digest.clone());
        for d in &self.blobs {
            if !written.insert(d.digest.clone()) {
                continue; // the same blob twice (two equal layers)
            }
            let path = blob_path(&d.digest)?;
            send(sink, Bytes::copy_from_slice(&file_header(&path, d.size)?)).await?;
            let mut stream = source.blob(&d.digest).await?;
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                if n > d.size {
                    break;
                }
                send(sink, chunk).await?;
            }
            if n != d.size {
                return Err(ContainerdError::Blob {
                    digest: d.digest.clone(),
                    problem: format!("{n} bytes read, the manifest says {}", d.size),
                });
            }
            send(sink, Bytes::from(vec![0u8; padding(d.size)])).await?;
        }
        send(sink, Bytes::from(vec![0u8; 1024])).await
    }
}

async fn send_file(sink: &Sink, path: &str, data: Bytes) -> Result<()> {
    let size = data.len() as u64;
    send(sink, Bytes::copy_from_slice(&file_header(path, size)?)).await?;
    send(sink, data).await?;
    send(sink, Bytes::from(vec![0u8; padding(size)])).await
}

async fn send(sink: &Sink, data: Bytes) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    sink.send(Ok(data)).await.map_err(|_| ContainerdError::Io {
        what: "the image reader".into(),
        source: io::Error::new(io::ErrorKind::BrokenPipe, "stopped reading"),
    })
}

#[cfg(test)]
mod tests;
