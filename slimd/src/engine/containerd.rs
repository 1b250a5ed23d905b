//! [`ContainerdEngine`]: the engine interface on containerd's gRPC API
//! (through [`crate::containerd`]), for nodes that run containerd and no
//! Docker. Images: an image is a record of the namespace; its id is its
//! config's digest, as Docker's is; a name without a registry is Docker's
//! short form (`app:1` is the record `docker.io/library/app:1`), and the
//! names an image is shown under are short again. Exports are OCI layout
//! tars, loads take `docker save` archives or OCI layouts and unpack the
//! layers into the snapshotter so the image can run.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use crate::containerd::catalog::ResolvedImage;
use crate::containerd::unpack::{DEFAULT_SNAPSHOTTER, chain_ids};
use crate::containerd::{Containerd, ContainerdError};

use super::error::{EngineError, Result};
use super::kind::EngineKind;
use super::types::{EngineVersion, Healthcheck, ImageConfig, ImageInfo};

/// A connection to containerd, in one namespace.
#[derive(Debug, Clone)]
pub struct ContainerdEngine {
    cd: Containerd,
    /// Where images are unpacked and containers get their root.
    snapshotter: String,
}

/// Maps a containerd error: "no such image" is the engine's
/// [`EngineError::ImageNotFound`], the rest keeps its source.
fn cerr(op: &'static str) -> impl Fn(ContainerdError) -> EngineError {
    move |e| match e {
        ContainerdError::ImageNotFound { name, .. } => EngineError::ImageNotFound(name),
        source => EngineError::Containerd { op, source },
    }
}

/// `reference` in containerd's full form (`app` is
/// `docker.io/library/app:latest`), when it parses as a reference.
pub fn normalize(reference: &str) -> Option<String> {
    oci_spec::distribution::Reference::from_str(reference)
        .ok()
        .map(|r| r.whole())
}

/// A full name in Docker's short form (`docker.io/library/app:1` is
/// `app:1`, `docker.io/me/app:1` is `me/app:1`); other registries stay.
pub fn familiar(name: &str) -> String {
    let Some(rest) = name.strip_prefix("docker.io/") else {
        return name.to_string();
    };
    rest.strip_prefix("library/")
        .filter(|r| !r.contains('/'))
        .unwrap_or(rest)
        .to_string()
}

/// The hex an image id or id prefix names (`sha256:<64 hex>`, or 12 to 64
/// hex digits), or `None` for a name.
fn id_hex(reference: &str) -> Option<&str> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let is_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let long_enough = if reference.starts_with("sha256:") {
        hex.len() == 64
    } else {
        (12..=64).contains(&hex.len())
    };
    (is_hex && long_enough).then_some(hex)
}

/// A record name that is an image's name as people use it: not a digest
/// record (`sha256:…`, `repo@sha256:…`) as CRI also keeps.
fn is_tag_name(name: &str) -> bool {
    !name.starts_with("sha256:") && !name.contains('@')
}

/// The parts of an image config the engine interface reports.
#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    user: Option<String>,
    exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    healthcheck: Option<HealthConfig>,
    volumes: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    working_dir: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    stop_signal: Option<String>,
    shell: Option<Vec<String>>,
    on_build: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HealthConfig {
    test: Option<Vec<String>>,
    interval: Option<i64>,
    timeout: Option<i64>,
    retries: Option<i64>,
    start_period: Option<i64>,
}

fn parse_config(bytes: &[u8], digest: &str) -> Result<Config> {
    serde_json::from_slice(bytes).map_err(|source| EngineError::Containerd {
        op: "image inspect",
        source: ContainerdError::Document {
            what: format!("the image config {digest}"),
            source,
        },
    })
}

impl ContainerdEngine {
    /// Connects to containerd at `socket` (its Version answering proves it
    /// is containerd), speaking in `namespace`.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<ContainerdEngine> {
        let cd = Containerd::connect(socket, namespace)
            .await
            .map_err(cerr("connect"))?;
        cd.version().await.map_err(cerr("connect"))?;
        Ok(ContainerdEngine {
            cd,
            snapshotter: DEFAULT_SNAPSHOTTER.into(),
        })
    }

    pub fn socket(&self) -> &Path {
        self.cd.socket()
    }

    /// The containerd client this engine speaks through.
    pub fn client(&self) -> &Containerd {
        &self.cd
    }

    /// containerd's version; the kernel and cgroup facts are the host's
    /// (slimd hands runc the session cgroup as a cgroupfs path itself).
    pub async fn version(&self) -> Result<EngineVersion> {
        let v = self.cd.version().await.map_err(cerr("version"))?;
        Ok(EngineVersion {
            engine: EngineKind::Containerd,
            version: v.version,
            api_version: "gRPC v1".into(),
            os: std::env::consts::OS.into(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                "2".into()
            } else {
                "1".into()
            },
        })
    }

    /// The image `reference` names: a record of that name (as given, then
    /// in full form), else an image whose id is or starts with it.
    async fn find(&self, reference: &str) -> Result<ResolvedImage> {
        let full = normalize(reference);
        for name in std::iter::once(reference).chain(full.as_deref()) {
            if let Some(record) = self.cd.image(name).await.map_err(cerr("image inspect"))? {
                return self.cd.resolve(record).await.map_err(cerr("image inspect"));
            }
        }
        if let Some(hex) = id_hex(reference) {
            let wanted = format!("sha256:{hex}");
            for record in self.cd.images().await.map_err(cerr("image list"))? {
                // An image of another platform only, or with a missing
                // blob, is nobody's id here.
                if let Ok(r) = self.cd.resolve(record).await
                    && r.id().starts_with(&wanted)
                {
                    return Ok(r);
                }
            }
        }
        Err(EngineError::ImageNotFound(reference.to_string()))
    }

    /// Every image of the namespace that resolves on this platform.
    async fn all_images(&self) -> Result<Vec<ResolvedImage>> {
        let mut out = Vec::new();
        for record in self.cd.images().await.map_err(cerr("image list"))? {
            match self.cd.resolve(record).await {
                Ok(r) => out.push(r),
                Err(e) => tracing::debug!("containerd image skipped: {e}"),
            }
        }
        Ok(out)
    }

    pub async fn inspect_image(&self, name: &str) -> Result<ImageInfo> {
        let image = self.find(name).await?;
        let id = image.id().to_string();
        let cfg = parse_config(&image.config_bytes, &id)?;
        let mut repo_tags: Vec<String> = self
            .all_images()
            .await?
            .into_iter()
            .filter(|r| r.id() == id && is_tag_name(&r.record.name))
            .map(|r| familiar(&r.record.name))
            .collect();
        repo_tags.sort();
        repo_tags.dedup();
        let diff_ids = cfg.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        let size = match self
            .cd
            .unpacked_size(&self.snapshotter, &chain_ids(&diff_ids))
            .await
            .map_err(cerr("image inspect"))?
        {
            Some(s) => s,
            None => image.layers.iter().map(|l| l.size).sum::<u64>() + image.config.size,
        };
        let c = cfg.config.unwrap_or_default();
        Ok(ImageInfo {
            id,
            repo_tags,
            size,
            created: cfg.created,
            architecture: cfg.architecture,
            os: cfg.os,
            layers: diff_ids,
            config: ImageConfig {
                entrypoint: c.entrypoint,
                cmd: c.cmd,
                env: c.env.unwrap_or_default(),
                workdir: c.working_dir.filter(|w| !w.is_empty()),
                user: c.user.filter(|u| !u.is_empty()),
                exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
                volumes: c.volumes.unwrap_or_default().into_keys().collect(),
                labels: c.labels.unwrap_or_default(),
                stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
                healthcheck: c.healthcheck.map(|h| Healthcheck {
                    test: h.test.unwrap_or_default(),
                    interval_ns: h.interval,
                    timeout_ns: h.timeout,
                    retries: h.retries,
                    start_period_ns: h.start_period,
                }),
                shell: c.shell,
                on_build: c.on_build.unwrap_or_default(),
            },
        })
    }

    /// Points `repo:tag` (in full form) at `image`'s target.
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let source = self.find(image).await?;
        let reference = format!("{repo}:{tag}");
        let name = normalize(&reference).ok_or_else(|| EngineError::InvalidSpec {
            what: "image tag",
            why: format!("{reference:?} is not an image reference"),
        })?;
        self.cd
            .name_image(&name, &source.record.target)
            .await
            .map_err(cerr("image tag"))?;
        Ok(())
    }

    /// Deletes the record `image` names (as given, then in full form); an
    /// id is refused, since one image may carry names others use.
    pub async fn remove_image(&self, image: &str, _force: bool) -> Result<()> {
        let by_name = async |name: &str| match self.cd.delete_image(name).await {
            Ok(()) => Ok(true),
            Err(ContainerdError::ImageNotFound { .. }) => Ok(false),
            Err(e) => Err(cerr("image remove")(e)),
        };
        if by_name(image).await? {
            return Ok(());
        }
        if let Some(full) = normalize(image).filter(|f| f != image)
            && by_name(&full).await?
        {
            return Ok(());
        }
        if id_hex(image).is_some() {
            return Err(EngineError::InvalidSpec {
                what: "image remove",
                why: format!(
                    "{image} is an image id: slimd removes containerd images by name only"
                ),
            });
        }
        Err(EngineError::ImageNotFound(image.to_string()))
    }

    /// Ids of images whose config carries label `key` (with `value`).
    pub async fn list_images_by_label(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for image in self.all_images().await? {
            let Ok(cfg) = parse_config(&image.config_bytes, image.id()) else {
                continue;
            };
            let labels = cfg.config.and_then(|c| c.labels).unwrap_or_default();
            let hit = labels
                .get(key)
                .is_some_and(|v| value.is_none_or(|want| v == want));
            if hit && !ids.iter().any(|i| i == image.id()) {
                ids.push(image.id().to_string());
            }
        }
        Ok(ids)
    }

    /// The image as an OCI image-layout tar stream (the image is found, and
    /// a missing one said, before the first byte).
    pub fn export_image(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        let me = self.clone();
        let name = name.to_string();
        futures_util::stream::once(async move {
            let image = me.find(&name).await?;
            let stream = me
                .cd
                .export_layout(&image.record.name)
                .await
                .map_err(cerr("image save"))?;
            let shown = PathBuf::from(&name);
            Ok::<_, EngineError>(stream.map_err(move |source| EngineError::Io {
                what: "read image from containerd",
                path: shown.clone(),
                source,
            }))
        })
        .try_flatten()
        .boxed()
    }

    /// Loads a `docker save` archive or OCI layout tar arriving as a
    /// stream (unpacked into a temporary directory first).
    pub async fn load_image<S>(&self, tar: S) -> Result<Vec<String>>
    where
        S: futures_util::Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let dir = tempfile::Builder::new()
            .prefix("slimd-load-")
            .tempdir()
            .map_err(|source| EngineError::Io {
                what: "create a scratch directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let reader = tokio_util::io::StreamReader::new(Box::pin(tar));
        let rt = tokio::runtime::Handle::current();
        let layout = dir.path().to_path_buf();
        let name = tokio::task::spawn_blocking(move || {
            let _guard = rt.enter();
            let sync = tokio_util::io::SyncIoBridge::new(reader);
            crate::containerd::archive::unpack_archive(
                std::io::BufReader::with_capacity(1 << 20, sync),
                &layout,
                Path::new("the image archive"),
            )
        })
        .await
        .map_err(|e| EngineError::Io {
            what: "unpack image archive into",
            path: dir.path().to_path_buf(),
            source: std::io::Error::other(e),
        })?
        .map_err(cerr("image load"))?;
        self.load_layout(dir.path(), name).await
    }

    /// Loads a `docker save` archive or OCI layout tar file (unpacked into
    /// a directory beside it first).
    pub async fn load_image_file(&self, path: &Path) -> Result<Vec<String>> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io = |what: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| EngineError::Io {
                what,
                path: p,
                source,
            }
        };
        let dir = tempfile::Builder::new()
            .prefix(".layout-")
            .tempdir_in(parent)
            .map_err(io("create a scratch directory in", parent))?;
        let file = std::fs::File::open(path).map_err(io("open image tar", path))?;
        let layout = dir.path().to_path_buf();
        let shown = path.to_path_buf();
        let name = tokio::task::spawn_blocking(move || {
            crate::containerd::archive::unpack_archive(
                std::io::BufReader::with_capacity(1 << 20, file),
                &layout,
                &shown,
            )
        })
        .await
        .map_err(|e| EngineError::Io {
            what: "unpack image archive",
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?
        .map_err(cerr("image load"))?;
        self.load_layout(dir.path(), name).await
    }

    /// Writes the layout in `dir` as image `name` (in full form), replacing
    /// a record of that name as `docker load` moves a tag, and unpacks it.
    async fn load_layout(&self, dir: &Path, name: Option<String>) -> Result<Vec<String>> {
        let name = name.ok_or_else(|| EngineError::InvalidSpec {
            what: "image load",
            why: "the archive names no image (containerd keeps images by name)".into(),
        })?;
        let full = normalize(&name).unwrap_or(name);
        self.cd
            .load_layout(dir, &full, true, Some(&self.snapshotter))
            .await
            .map_err(cerr("image load"))?;
        Ok(vec![format!("Loaded image: {}", familiar(&full))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_and_familiarize() {
        assert_eq!(
            normalize("app.slim:latest").as_deref(),
            Some("docker.io/library/app.slim:latest")
        );
        assert_eq!(
            normalize("app").as_deref(),
            Some("docker.io/library/app:latest")
        );
        assert_eq!(normalize("me/app:1").as_deref(), Some("docker.io/me/app:1"));
        assert_eq!(
            normalize("registry.local:5000/app:1").as_deref(),
            Some("registry.local:5000/app:1")
        );
        assert_eq!(familiar("docker.io/library/app:1"), "app:1");
        assert_eq!(familiar("docker.io/me/app:1"), "me/app:1");
        assert_eq!(familiar("quay.io/x/app:1"), "quay.io/x/app:1");
        for n in ["app:1", "me/app:1", "registry.local:5000/app:1"] {
            assert_eq!(familiar(&normalize(n).unwrap()), n);
        }
    }

    #[test]
    fn ids_and_names_are_told_apart() {
        let full = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(id_hex(&full), Some(&full[7..]));
        assert_eq!(id_hex("abcdef012345"), Some("abcdef012345"));
        assert_eq!(id_hex("sha256:abc"), None);
        assert_eq!(id_hex("app:1"), None);
        assert_eq!(id_hex("abc"), None);
        assert!(is_tag_name("docker.io/library/app:1"));
        assert!(!is_tag_name(&full));
        assert!(!is_tag_name(&format!("docker.io/library/app@{full}")));
    }

    #[test]
    fn config_fields_are_read() {
        let cfg = parse_config(
            br#"{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux",
                "config":{"Env":["A=1"],"ExposedPorts":{"8080/tcp":{}},"WorkingDir":"/app",
                "Healthcheck":{"Test":["CMD","true"],"Interval":1000}},
                "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#,
            "sha256:x",
        )
        .unwrap();
        let c = cfg.config.unwrap();
        assert_eq!(c.env.unwrap(), ["A=1"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        assert_eq!(c.healthcheck.unwrap().interval, Some(1000));
        assert_eq!(cfg.rootfs.unwrap().diff_ids, ["sha256:aa"]);
    }
}
