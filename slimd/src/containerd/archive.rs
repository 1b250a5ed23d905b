//! An image archive as the engine interface hands it over (`docker save`'s
//! legacy layout, which slimd's image writer makes, or an OCI image
//! layout) unpacked into an OCI image layout directory that
//! [`Containerd::load_layout`](super::Containerd::load_layout) writes.
//!
//! A legacy archive becomes a layout by content alone: its config and layer
//! tars become blobs under their sha256, a manifest names them (layers by
//! their compression, read from their first bytes), and `index.json` names
//! the image by the archive's first repo tag. Only regular files at the
//! names either layout uses are taken; no other name becomes a path.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout::{self, Descriptor};
use super::{ContainerdError, Result};

/// A layer tar, uncompressed (what `docker save` holds).
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Where a legacy archive's files wait until `manifest.json` (which comes
/// last) says what they are.
const LEGACY_DIR: &str = "legacy";

/// One image of `docker save`'s `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// An OCI index's image names, for the name a layout gives its image.
#[derive(Deserialize)]
struct NamedIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Unpacks `input` (a legacy `docker save` archive or an OCI image layout)
/// into the OCI layout `dest`; returns the name the archive gives its
/// image, if any. `shown` names the archive in errors.
pub fn unpack_archive<R: Read>(input: R, dest: &Path, shown: &Path) -> Result<Option<String>> {
    let bad = |problem: String| ContainerdError::Archive {
        path: shown.to_path_buf(),
        problem,
    };
    let io = |what: &Path| ContainerdError::io(format!("{}", what.display()));
    std::fs::create_dir_all(dest.join("blobs/sha256")).map_err(io(dest))?;
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = kept_path(&name) else {
            continue;
        };
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        std::io::copy(&mut entry, &mut f).map_err(io(&path))?;
    }
    let legacy = dest.join(LEGACY_DIR);
    let result = if dest.join("index.json").is_file() {
        layout_name(&dest.join("index.json"), shown)
    } else if legacy.join("manifest.json").is_file() {
        from_legacy(&legacy, dest, shown).map(Some)
    } else {
        Err(bad(
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)"
                .into(),
        ))
    };
    let _ = std::fs::remove_dir_all(&legacy);
    result
}

/// Where an archive member is kept, relative to the layout directory:
/// layout files in place, a legacy archive's files under [`LEGACY_DIR`].
fn kept_path(name: &Path) -> Option<PathBuf> {
    let parts: Vec<&str> = name
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        ["oci-layout"] | ["index.json"] => Some(PathBuf::from(parts[0])),
        ["blobs", "sha256", hex] => layout::blob_path(&format!("sha256:{hex}"))
            .ok()
            .map(PathBuf::from),
        ["manifest.json"] => Some(Path::new(LEGACY_DIR).join("manifest.json")),
        [file] if file.ends_with(".json") && file.len() > 5 => {
            Some(Path::new(LEGACY_DIR).join(file))
        }
        [dir, "layer.tar"] => Some(Path::new(LEGACY_DIR).join(dir).join("layer.tar")),
        _ => None,
    }
}

/// The name an OCI layout's `index.json` gives its (first) image.
fn layout_name(index: &Path, shown: &Path) -> Result<Option<String>> {
    let bytes =
        std::fs::read(index).map_err(ContainerdError::io(format!("{}", index.display())))?;
    let index: NamedIndex =
        serde_json::from_slice(&bytes).map_err(|source| ContainerdError::Document {
            what: format!("index.json of {}", shown.display()),
            source,
        })?;
    Ok(index.manifests.iter().find_map(|d| {
        let a = d.annotations.as_ref()?;
        a.get(layout::IMAGE_NAME)
            .or_else(|| {
                a.get(layout::REF_NAME)
                    .filter(|r| r.contains(':') || r.contains('/'))
            })
            .cloned()
    }))
}

/// Turns the legacy archive unpacked in `legacy` into blobs, a manifest and
/// an `index.json` in `dest`; the image's name is its first repo tag.
fn from_legacy(legacy: &Path, dest: &Path, shown: &Path) -> Result<String> {
    let bad = |problem: String| ContainerdError::Archive {
        path: shown.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(legacy.join("manifest.json"))
        .map_err(ContainerdError::io("manifest.json"))?;
    let entries: Vec<LegacyEntry> =
        serde_json::from_slice(&bytes).map_err(|source| ContainerdError::Document {
            what: format!("manifest.json of {}", shown.display()),
            source,
        })?;
    let [entry] = entries.as_slice() else {
        return Err(bad(format!(
            "manifest.json lists {} images; a load takes an archive of one",
            entries.len()
        )));
    };
    let name = entry
        .repo_tags
        .as_ref()
        .and_then(|t| t.first())
        .cloned()
        .ok_or_else(|| bad("the image has no repo tag to name it by in containerd".into()))?;
    let member = |rel: &str| {
        kept_path(Path::new(rel))
            .filter(|p| p.starts_with(LEGACY_DIR))
            .map(|p| dest.join(p))
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                bad(format!(
                    "manifest.json names {rel:?}, which the archive lacks"
                ))
            })
    };
    let config = blob_from(&member(&entry.config)?, dest, MT_CONFIG)?;
    let mut layers = Vec::with_capacity(entry.layers.len());
    for l in &entry.layers {
        let path = member(l)?;
        let media_type = layer_media_type(&path)?;
        layers.push(blob_from(&path, dest, media_type)?);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": layout::MT_OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .map_err(|source| ContainerdError::Document {
        what: "the manifest written".into(),
        source,
    })?;
    let manifest = Descriptor {
        media_type: layout::MT_OCI_MANIFEST.into(),
        digest: write_blob(dest, &manifest)?,
        size: manifest.len() as u64,
        annotations: None,
        platform: None,
    };
    write_file(
        &dest.join("index.json"),
        &layout::index_json(&manifest, &name),
    )?;
    write_file(&dest.join("oci-layout"), layout::OCI_LAYOUT)?;
    Ok(name)
}

/// Moves the file at `path` into the layout's blobs under its digest.
fn blob_from(path: &Path, dest: &Path, media_type: &str) -> Result<Descriptor> {
    let io = ContainerdError::io(format!("{}", path.display()));
    let mut f =
        std::fs::File::open(path).map_err(ContainerdError::io(format!("{}", path.display())))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut f, &mut hasher).map_err(io)?;
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let to = dest.join(layout::blob_path(&digest)?);
    std::fs::rename(path, &to).map_err(ContainerdError::io(format!("{}", to.display())))?;
    Ok(Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        annotations: None::<BTreeMap<String, String>>,
        platform: None,
    })
}

/// Writes a document blob; its digest.
fn write_blob(dest: &Path, bytes: &[u8]) -> Result<String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    write_file(&dest.join(layout::blob_path(&digest)?), bytes)?;
    Ok(digest)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(ContainerdError::io(format!("{}", path.display())))
}

/// A layer's media type by its first bytes (gzip, zstd, or a plain tar).
fn layer_media_type(path: &Path) -> Result<&'static str> {
    let mut magic = [0u8; 4];
    let mut f =
        std::fs::File::open(path).map_err(ContainerdError::io(format!("{}", path.display())))?;
    let n = f
        .read(&mut magic)
        .map_err(ContainerdError::io(format!("{}", path.display())))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => MT_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => MT_LAYER_ZSTD,
        _ => MT_LAYER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn legacy_archive_becomes_a_layout() {
        let layer = layer();
        let diff = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff]},
        }))
        .unwrap();
        let manifest =
            br#"[{"Config":"abc.json","RepoTags":["app.slim:latest"],"Layers":["l1/layer.tar"]}]"#;
        let tar = tar_of(&[
            ("l1/VERSION", b"1.0"),
            ("l1/layer.tar", &layer),
            ("abc.json", &config),
            ("manifest.json", manifest),
            ("../escape.json", b"{}"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let name = unpack_archive(&tar[..], dir.path(), Path::new("slim.tar")).unwrap();
        assert_eq!(name.as_deref(), Some("app.slim:latest"));
        assert!(!dir.path().join(LEGACY_DIR).exists());
        assert!(dir.path().join(layout::blob_path(&diff).unwrap()).is_file());
        let index = std::fs::read(dir.path().join("index.json")).unwrap();
        let m = &layout::index_manifests(&index, "index").unwrap()[0];
        let doc = std::fs::read(dir.path().join(layout::blob_path(&m.digest).unwrap())).unwrap();
        let parsed = layout::parse_manifest(&doc, "m").unwrap();
        assert_eq!(parsed.layers[0].digest, diff);
        assert_eq!(parsed.layers[0].media_type, MT_LAYER);
        assert_eq!(parsed.config.size, config.len() as u64);
    }

    #[test]
    fn layout_archive_keeps_its_name_and_junk_is_refused() {
        let d = Descriptor {
            media_type: layout::MT_OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 1,
            ..Default::default()
        };
        let tar = tar_of(&[
            ("oci-layout", layout::OCI_LAYOUT),
            (
                "index.json",
                &layout::index_json(&d, "docker.io/library/app:1"),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let name = unpack_archive(&tar[..], dir.path(), Path::new("a.tar")).unwrap();
        assert_eq!(name.as_deref(), Some("docker.io/library/app:1"));

        let dir = tempfile::tempdir().unwrap();
        let e = unpack_archive(
            &tar_of(&[("x.txt", b"x")])[..],
            dir.path(),
            Path::new("b.tar"),
        )
        .unwrap_err();
        assert!(e.is_usage(), "{e}");
        let untagged = tar_of(&[(
            "manifest.json",
            br#"[{"Config":"abc.json","RepoTags":null,"Layers":[]}]"#,
        )]);
        let dir = tempfile::tempdir().unwrap();
        let e = unpack_archive(&untagged[..], dir.path(), Path::new("c.tar")).unwrap_err();
        assert!(e.to_string().contains("no repo tag"), "{e}");
    }
}
