//! The image for the names tests: the static server whose docroot holds
//! files named in Latin-1 (bytes that are not UTF-8), a symlink and a
//! hardlink named so, an unused file named so, and a long (> 100 bytes)
//! non-UTF-8 path elsewhere.
//!
//! A Docker build context cannot always carry such names, so the image is
//! not built from a Dockerfile: its one layer is written here with the tar
//! crate (names as raw bytes), wrapped in a `docker save` archive with a
//! config of our own, and `docker load`ed. Like the other test images it is
//! cached by a hash of its inputs, kept in the [`super::INPUTS_LABEL`] label.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use slimd::image::name;

use super::{
    CACHE_DIR, Entry, INPUTS_LABEL, Recipe, base_entries, checked, docker_timeout, ensure_docker,
    filler, fixtures_dir, image_id, image_inputs, inputs_hash, lock,
};

/// Tag of the image.
pub const NAMES_TAG: &str = "slimd-test/latin1-names:latest";
/// The port the static server listens on.
const NAMES_PORT: u16 = 8080;

/// `/srv/www/café.html` in Latin-1: a page the probe asks for by its bytes.
pub const CAFE: &[u8] = b"/srv/www/caf\xe9.html";
/// `/srv/www/menü.html`: a symlink to `caf\xe9.html`, asked for too.
pub const MENU: &[u8] = b"/srv/www/men\xfc.html";
/// `/srv/www/copyè.html`: a hardlink of [`CAFE`], asked for too.
pub const COPY: &[u8] = b"/srv/www/copy\xe8.html";
/// A file nobody uses (not in the slim image).
pub const UNUSED: &[u8] = b"/opt/unused-\xe8t\xe9.bin";
/// What [`CAFE`] holds.
const CAFE_BODY: &[u8] = b"<p>caf\xe9 au lait</p>\n";

/// A path longer than the ustar name field whose bytes are not UTF-8
/// (`/opt/naïve/ééé.../notes.txt`), kept only when asked for by flag.
pub fn long_path() -> Vec<u8> {
    [b"/opt/na\xefve/".as_slice(), &[0xe9; 120], b"/notes.txt"].concat()
}

/// Builds the image unless it exists with the same inputs; its tag.
pub fn ensure_names_image() -> Result<&'static str> {
    static DONE: OnceLock<Mutex<bool>> = OnceLock::new();
    let mut done = DONE
        .get_or_init(|| Mutex::new(false))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(NAMES_TAG);
    }
    ensure_docker()?;
    let recipe = recipe()?;
    let hash = inputs_hash(&recipe)?;
    if image_inputs(NAMES_TAG).as_deref() != Some(hash.as_str()) {
        let _lock = lock(NAMES_TAG)?;
        if image_inputs(NAMES_TAG).as_deref() != Some(hash.as_str()) {
            load(&recipe, &hash).context("making the Latin-1 names image")?;
        }
    }
    *done = true;
    Ok(NAMES_TAG)
}

/// A path string (see `slimd::image::name`) for raw bytes.
fn p(bytes: &[u8]) -> String {
    name::decode(bytes).into_owned()
}

/// The rootfs. Paths are path strings; the layer gets their bytes.
fn recipe() -> Result<Recipe> {
    let mut entries = base_entries();
    entries.push(Entry::CBinary {
        path: "/usr/local/bin/static-server".into(),
        source: fixtures_dir().join("static-server/server.c"),
        flags: vec!["-O2".into(), "-static".into()],
    });
    let long = long_path();
    let long_dir = &long[..long.len() - "/notes.txt".len()];
    for dir in [
        &b"/srv"[..],
        b"/srv/www",
        b"/opt",
        b"/opt/na\xefve",
        long_dir,
    ] {
        entries.push(Entry::Dir {
            path: p(dir),
            mode: 0o755,
        });
    }
    entries.push(Entry::Bytes {
        path: "/srv/www/index.html".into(),
        data: b"<a href=\"/plain.html\">plain</a>\n".to_vec(),
        mode: 0o644,
    });
    entries.push(Entry::Bytes {
        path: "/srv/www/plain.html".into(),
        data: b"plain\n".to_vec(),
        mode: 0o644,
    });
    entries.push(Entry::Bytes {
        path: p(CAFE),
        data: CAFE_BODY.to_vec(),
        mode: 0o644,
    });
    entries.push(Entry::Symlink {
        path: p(MENU),
        target: p(b"caf\xe9.html"),
    });
    entries.push(Entry::Bytes {
        path: p(UNUSED),
        data: filler(64 << 10, 11),
        mode: 0o644,
    });
    entries.push(Entry::Bytes {
        path: p(&long),
        data: b"kept by --include-path\n".to_vec(),
        mode: 0o644,
    });
    Ok(Recipe {
        entries,
        // Not a Dockerfile: the config this image gets (hashed like one).
        dockerfile: config_json("").to_string(),
        // The hardlink is written by `layer`, after its target.
        extra_inputs: vec![format!("hardlink {} -> {}", p(COPY), p(CAFE))],
    })
}

/// The image config; `inputs` goes into the inputs label.
fn config_json(inputs: &str) -> serde_json::Value {
    serde_json::json!({
        "Entrypoint": ["/usr/local/bin/static-server"],
        "Cmd": ["-p", NAMES_PORT.to_string(), "-d", "/srv/www"],
        "ExposedPorts": {format!("{NAMES_PORT}/tcp"): {}},
        "Labels": {INPUTS_LABEL: inputs},
    })
}

/// The layer tar: every entry with its name as raw bytes.
fn layer(recipe: &Recipe, scratch: &std::path::Path) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    };
    let raw = |path: &str| name::encode(path.trim_start_matches('/')).into_owned();
    for e in &recipe.entries {
        match e {
            Entry::Dir { path, mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                let mut n = raw(path);
                n.push(b'/');
                b.append_data(&mut h, OsStr::from_bytes(&n), &[][..])?;
            }
            Entry::Bytes { path, data, mode } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, OsStr::from_bytes(&raw(path)), &data[..])?;
            }
            Entry::HostFile { path, host, mode } => {
                let data =
                    std::fs::read(host).with_context(|| format!("read {}", host.display()))?;
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, OsStr::from_bytes(&raw(path)), &data[..])?;
            }
            Entry::Symlink { path, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                let target = name::encode(target).into_owned();
                b.append_link(
                    &mut h,
                    OsStr::from_bytes(&raw(path)),
                    OsStr::from_bytes(&target),
                )?;
            }
            Entry::CBinary {
                path,
                source,
                flags,
            } => {
                let out = scratch.join("binary");
                let mut cmd = Command::new("gcc");
                cmd.args(flags).arg("-o").arg(&out).arg(source);
                checked(&mut cmd, Duration::from_secs(120))?;
                let data = std::fs::read(&out)?;
                let mut h = header(tar::EntryType::Regular, 0o755, data.len() as u64);
                b.append_data(&mut h, OsStr::from_bytes(&raw(path)), &data[..])?;
            }
        }
    }
    let mut h = header(tar::EntryType::Link, 0o644, 0);
    b.append_link(
        &mut h,
        OsStr::from_bytes(&raw(&p(COPY))),
        OsStr::from_bytes(&raw(&p(CAFE))),
    )?;
    Ok(b.into_inner()?)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes a `docker save` archive of the image and loads it.
fn load(recipe: &Recipe, hash: &str) -> Result<()> {
    std::fs::create_dir_all(CACHE_DIR).with_context(|| format!("create {CACHE_DIR}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("names-")
        .tempdir_in(CACHE_DIR)
        .context("scratch directory")?;
    let layer = layer(recipe, scratch.path())?;
    let layer_id = sha256_hex(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config_json(hash),
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_id}")]},
        "history": [{"created_by": "slimd-tests: a layer with Latin-1 file names"}],
    }))?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_name = format!("{layer_id}/layer.tar");
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": [NAMES_TAG], "Layers": [layer_name],
    }]))?;
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in [
        (layer_name.as_str(), &layer),
        (config_name.as_str(), &config),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, n, &data[..])?;
    }
    let archive = scratch.path().join("image.tar");
    std::fs::write(&archive, b.into_inner()?)?;
    let old = image_id(NAMES_TAG);
    docker_timeout(
        ["load", "--quiet", "-i", &archive.to_string_lossy()],
        Duration::from_secs(300),
    )?;
    if image_inputs(NAMES_TAG).as_deref() != Some(hash) {
        anyhow::bail!("docker load did not give {NAMES_TAG} the inputs label {hash}");
    }
    if let Some(old) = old
        && image_id(NAMES_TAG).as_deref() != Some(old.as_str())
    {
        // The previous image is now untagged; drop it (ignore one in use).
        let _ = docker_timeout(["image", "rm", &old], Duration::from_secs(60));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer holds the exact bytes of every name, the tar crate (an
    /// independent reader) says so; no Docker needed.
    #[test]
    fn layer_names_are_the_bytes() {
        let r = recipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(&r, dir.path()).expect("gcc builds the static server");
        let mut a = tar::Archive::new(&layer[..]);
        let names: Vec<Vec<u8>> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        for want in [CAFE, MENU, COPY, UNUSED, &long_path()[..]] {
            assert!(names.iter().any(|n| n[..] == want[1..]), "{want:x?}");
        }
    }
}
