//! `slim build --output oci:PATH`: the slim image written as an OCI
//! image-layout archive (a tar of `oci-layout`, `index.json` and
//! `blobs/sha256/…`, with a Docker `manifest.json` beside them, so both
//! `ctr images import` and `docker load` take it) at a path on the daemon's
//! host, instead of being loaded into the engine: nothing is written into
//! any image store, and nothing is pushed anywhere.
//!
//! The daemon writes as root on behalf of the caller, so the path is
//! checked with the caller's ids first (write and search on its directory),
//! an existing file is replaced only with `--force`, the archive appears
//! whole or not at all (a temporary file beside it, renamed), and it
//! belongs to the caller.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use crate::{
    host::access::{self, Ids, SEARCH, WRITE},
    model::{ApiError, Caller, FailureKind},
};

/// The URL-like form the flag takes.
pub const SCHEME: &str = "oci:";

/// Checks that `caller` may create (or, with `force`, replace) the archive
/// at `path` (absolute, its directory canonical).
pub fn check(path: &Path, caller: &Caller, force: bool) -> Result<(), ApiError> {
    let refuse = |kind: FailureKind, why: String| ApiError {
        kind,
        message: format!("--output {SCHEME}{}: {why}", path.display()),
    };
    let Some(dir) = path.parent().filter(|_| path.is_absolute()) else {
        return Err(refuse(FailureKind::Usage, "not an absolute path".into()));
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(refuse(
                FailureKind::Usage,
                "exists and is not a regular file".into(),
            ));
        }
        Ok(_) if !force => {
            return Err(refuse(
                FailureKind::TagExists,
                "exists already: pass --force to replace it".into(),
            ));
        }
        _ => {}
    }
    if !dir.is_dir() {
        return Err(refuse(
            FailureKind::Usage,
            format!("{} is not a directory", dir.display()),
        ));
    }
    if caller.is_root() {
        return Ok(());
    }
    let ids = Ids {
        uid: caller.uid,
        gid: caller.gid,
        groups: caller.groups.clone(),
    };
    access::check(dir, &ids, WRITE | SEARCH, false, 1)
        .map_err(|e| refuse(FailureKind::Forbidden, e.to_string()))
}

/// Tars the OCI layout directory `layout` into `path` (through a temporary
/// file in the same directory), owned by `owner`; returns its size.
pub fn archive(layout: &Path, path: &Path, owner: u32, force: bool) -> std::io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = tempfile::Builder::new()
        .prefix(".slimd-oci-")
        .tempfile_in(dir)?;
    {
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        for name in ["oci-layout", "index.json", "manifest.json"] {
            let p = layout.join(name);
            if p.exists() {
                tar.append_path_with_name(&p, name)?;
            }
        }
        tar.append_dir("blobs", layout.join("blobs"))?;
        tar.append_dir("blobs/sha256", layout.join("blobs/sha256"))?;
        let mut blobs: Vec<PathBuf> = std::fs::read_dir(layout.join("blobs/sha256"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        blobs.sort();
        for b in blobs {
            let name = format!(
                "blobs/sha256/{}",
                b.file_name().unwrap_or_default().to_string_lossy()
            );
            tar.append_path_with_name(&b, name)?;
        }
        tar.into_inner()?.flush()?;
    }
    tmp.as_file().sync_all()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    std::os::unix::fs::fchown(tmp.as_file(), Some(owner), None)?;
    let size = tmp.as_file().metadata()?.len();
    if force {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let root = Caller::root();
        let file = dir.path().join("slim.tar");
        check(&file, &root, false).unwrap();
        assert_eq!(
            check(Path::new("slim.tar"), &root, false).unwrap_err().kind,
            FailureKind::Usage
        );
        assert_eq!(
            check(&dir.path().join("none/slim.tar"), &root, false)
                .unwrap_err()
                .kind,
            FailureKind::Usage
        );
        std::fs::write(&file, b"x").unwrap();
        let e = check(&file, &root, false).unwrap_err();
        assert!(e.message.contains("--force"), "{}", e.message);
        check(&file, &root, true).unwrap();
        assert_eq!(
            check(dir.path(), &root, true).unwrap_err().kind,
            FailureKind::Usage
        );
    }

    #[test]
    fn a_layout_becomes_one_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(layout.join("index.json"), b"{}").unwrap();
        std::fs::write(layout.join("blobs/sha256/ab"), b"blob").unwrap();
        let out = dir.path().join("img.tar");
        let uid = unsafe { libc::geteuid() };
        let size = archive(&layout, &out, uid, false).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "blobs",
                "blobs/sha256",
                "blobs/sha256/ab",
                "index.json",
                "oci-layout"
            ]
        );
        // Not replaced without force; no temporary file left either way.
        assert!(archive(&layout, &out, uid, false).is_err());
        archive(&layout, &out, uid, true).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".slimd-oci-"))
            .collect();
        assert!(left.is_empty());
    }
}
