//! Layout assembly from in-memory blobs, read back by the image library.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::*;

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest(data),
        size: data.len() as u64,
        ..Default::default()
    }
}

/// Blobs served in 7-byte chunks, so chunk boundaries fall mid-header.
struct Blobs(HashMap<String, Vec<u8>>);

impl BlobSource for Blobs {
    async fn blob(&self, digest: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let data = self.0.get(digest).cloned().ok_or(ContainerdError::Blob {
            digest: digest.into(),
            problem: "not found".into(),
        })?;
        let chunks: Vec<Result<Bytes>> = data
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Ok(futures_util::stream::iter(chunks).boxed())
    }
}

fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "bin/hello", &b"hi!\n\n"[..]).unwrap();
    b.into_inner().unwrap()
}

fn image() -> (Blobs, Descriptor, Vec<u8>) {
    let layer = layer_tar();
    let diff_id = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))
    .unwrap();
    let blobs = Blobs(HashMap::from([
        (digest(&layer), layer),
        (digest(&config), config),
    ]));
    (blobs, desc(MT_OCI_MANIFEST, &manifest), manifest)
}

async fn assemble(plan: &LayoutPlan, blobs: &Blobs) -> (Result<()>, Vec<u8>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    let collect = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    });
    let r = plan.write(blobs, &tx).await;
    drop(tx);
    (r, collect.await.unwrap())
}

#[tokio::test]
async fn layout_tar_reads_back_as_the_image() {
    let (blobs, manifest, bytes) = image();
    let plan = LayoutPlan::new("example.com/app:1", manifest.clone(), bytes.into()).unwrap();
    assert_eq!(plan.blobs.len(), 2);
    let (r, tar_bytes) = assemble(&plan, &blobs).await;
    r.unwrap();
    assert_eq!(tar_bytes.len() % 512, 0);
    let names: Vec<String> = tar::Archive::new(&tar_bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names[..2], ["oci-layout", "index.json"]);
    assert_eq!(names.len(), 5, "{names:?}");
    let scratch = tempfile::tempdir().unwrap();
    let img = crate::image::Image::from_save_stream(&tar_bytes[..], scratch.path()).unwrap();
    assert_eq!(img.format, crate::image::ArchiveFormat::OciLayout);
    assert_eq!(img.layers.len(), 1);
    assert!(img.fs.get("/bin/hello").is_some());
}

#[tokio::test]
async fn short_blob_is_an_error() {
    let (mut blobs, manifest, bytes) = image();
    let plan = LayoutPlan::new("app", manifest, bytes.into()).unwrap();
    let layer = plan.blobs[1].digest.clone();
    blobs.0.get_mut(&layer).unwrap().truncate(100);
    let (r, _) = assemble(&plan, &blobs).await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("100 bytes read"), "{e}");
}

#[test]
fn platform_is_chosen_from_an_index() {
    let m = |arch: &str| {
        serde_json::json!({"mediaType": MT_OCI_MANIFEST, "digest": format!("sha256:{}", arch.len()), "size": 1,
            "platform": {"os": "linux", "architecture": arch}})
    };
    let attestation = serde_json::json!({"mediaType": MT_OCI_MANIFEST, "digest": "sha256:u", "size": 1,
        "platform": {"os": "unknown", "architecture": "unknown"}});
    let doc = serde_json::to_vec(
        &serde_json::json!({"manifests": [attestation, m("arm64"), m("amd64x")]}),
    )
    .unwrap();
    let d = choose_manifest(&doc, "app", "linux", "arm64").unwrap();
    assert_eq!(d.digest, "sha256:5");
    let e = choose_manifest(&doc, "app", "linux", "riscv64").unwrap_err();
    assert!(
        e.to_string().contains(
            "no linux/riscv64 manifest (it has: unknown/unknown, linux/arm64, linux/amd64x)"
        ),
        "{e}"
    );
    // One manifest without a platform is the image.
    let doc = serde_json::to_vec(&serde_json::json!({"manifests": [
        {"mediaType": MT_DOCKER_MANIFEST, "digest": "sha256:x", "size": 3}]}))
    .unwrap();
    assert_eq!(
        choose_manifest(&doc, "a", "linux", "amd64").unwrap().size,
        3
    );
}

#[test]
fn gc_labels_name_what_a_document_holds() {
    let (_, manifest, bytes) = image();
    let m = parse_manifest(&bytes, "m").unwrap();
    let labels = gc_labels(MT_OCI_MANIFEST, &bytes, "m").unwrap();
    assert_eq!(
        labels["containerd.io/gc.ref.content.config"],
        m.config.digest
    );
    assert_eq!(
        labels["containerd.io/gc.ref.content.l.0"],
        m.layers[0].digest
    );
    assert_eq!(labels.len(), 2);
    let index = index_json(&manifest, "app:1");
    let labels = gc_labels(MT_OCI_INDEX, &index, "i").unwrap();
    assert_eq!(labels["containerd.io/gc.ref.content.m.0"], manifest.digest);
    assert!(
        gc_labels("application/octet-stream", b"x", "b")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn only_sha256_digests_become_paths() {
    let good = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        blob_path(&good).unwrap(),
        format!("blobs/sha256/{}", "ab".repeat(32))
    );
    for bad in ["sha512:00", "sha256:../../etc/passwd", "sha256:AB", ""] {
        assert!(blob_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn padding_fills_blocks() {
    assert_eq!(padding(0), 0);
    assert_eq!(padding(1), 511);
    assert_eq!(padding(512), 0);
    assert_eq!(padding(513), 511);
}
