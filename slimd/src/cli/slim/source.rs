//! Reading an image in the client, for commands that analyse it here
//! (`diff`, `sbom`): an engine image's `docker save` stream comes through
//! the daemon's export route, an archive is read from disk. Layers are
//! spooled into a scratch directory the caller owns and removes.

use std::path::{Path, PathBuf};

use super::Failure;
use crate::api::{client::Client, types::FailureKind};
use crate::image::Image;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An image in the engine.
    Image(String),
    /// A `docker save` archive or an OCI layout.
    File(PathBuf),
}

impl ImageSource {
    /// How the image is named in the output.
    pub fn label(&self) -> String {
        match self {
            ImageSource::Image(s) => s.clone(),
            ImageSource::File(p) => p.display().to_string(),
        }
    }
}

fn failure(kind: FailureKind, message: String) -> Failure {
    Failure { kind, message }
}

/// The image as a `docker save` archive on disk: an archive as given, an
/// engine image exported through the daemon into `dir` (for other tools).
pub(super) async fn archive(
    client: &Client,
    source: &ImageSource,
    dir: &Path,
) -> Result<PathBuf, Failure> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    match source {
        ImageSource::File(p) => Ok(p.clone()),
        ImageSource::Image(name) => {
            let io = |e: std::io::Error| {
                failure(FailureKind::Internal, format!("{}: {e}", dir.display()))
            };
            std::fs::create_dir_all(dir).map_err(io)?;
            let path = dir.join("image.tar");
            let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
            let mut stream = std::pin::pin!(client.export(name).await.map_err(Failure::from)?);
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk.map_err(io)?).await.map_err(io)?;
            }
            file.flush().await.map_err(io)?;
            Ok(path)
        }
    }
}

/// Reads the image into `scratch`.
pub(super) async fn read(
    client: &Client,
    source: &ImageSource,
    scratch: &Path,
) -> Result<Image, Failure> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| failure(FailureKind::Internal, format!("{}: {e}", scratch.display())))?;
    let scratch = scratch.to_path_buf();
    let label = source.label();
    let read = match source {
        ImageSource::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Image::open(&path, &scratch)).await
        }
        ImageSource::Image(name) => {
            let stream = client.export(name).await.map_err(Failure::from)?;
            let reader = tokio_util::io::StreamReader::new(stream);
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let _guard = rt.enter();
                let sync = tokio_util::io::SyncIoBridge::new(reader);
                Image::from_save_stream(std::io::BufReader::with_capacity(1 << 20, sync), &scratch)
            })
            .await
        }
    };
    read.map_err(|e| failure(FailureKind::Internal, e.to_string()))?
        .map_err(|e| {
            failure(
                FailureKind::Usage,
                format!("{label}: {}", crate::image::name::show(&e.to_string())),
            )
        })
}
