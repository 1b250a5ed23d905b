//! Two synthetic `docker save` archives of about the same size for the
//! diff benchmark: B is A with some files' contents changed, some removed,
//! some modes changed and some files added. Contents are pseudo-random
//! (xorshift), so nothing dedups or compresses away; no Docker needed.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Files per layer and layers per image.
const LAYERS: usize = 4;

/// What B changes, by file index.
fn changed(i: usize) -> bool {
    i.is_multiple_of(20)
}
fn removed(i: usize) -> bool {
    i % 50 == 1
}
fn chmodded(i: usize) -> bool {
    i % 100 == 2
}

fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Size of file `i`: 4 KiB to ~200 KiB, around `avg` on average.
fn size_of(i: usize, avg: u64) -> u64 {
    let spread = [1u64, 3, 7, 10, 13, 17, 19];
    (avg * spread[i % spread.len()] / 10).max(4096)
}

fn write_layer(path: &Path, files: &[(String, u64, u64, u32)]) -> Result<String> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut b = tar::Builder::new(out);
    let mut dirs = std::collections::BTreeSet::new();
    let mut buf = Vec::new();
    for (name, size, seed, mode) in files {
        let dir = name
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        if !dir.is_empty() && dirs.insert(dir.clone()) {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
        }
        buf.resize(*size as usize, 0);
        fill(*seed, &mut buf);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(*size);
        b.append_data(&mut h, name, &buf[..])?;
    }
    b.into_inner()?.flush()?;
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        h.update(&chunk[..n]);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_image(out: &Path, dir: &Path, layers: &[Vec<(String, u64, u64, u32)>]) -> Result<u64> {
    let mut diff_ids = Vec::new();
    let mut paths = Vec::new();
    for (i, files) in layers.iter().enumerate() {
        let p = dir.join(format!("layer-{i}.tar"));
        diff_ids.push(write_layer(&p, files)?);
        paths.push(p);
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": (0..layers.len()).map(|i| json!({"created_by": format!("synthetic layer {i}")})).collect::<Vec<_>>(),
    });
    let cfg = serde_json::to_vec(&config)?;
    let cfg_name = format!("{}.json", &hex(&Sha256::digest(&cfg)));
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(out)?));
    let mut names = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let name = format!("{:064x}/layer.tar", i + 1);
        b.append_path_with_name(p, &name)?;
        names.push(name);
    }
    let mut put = |name: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data)?;
        Ok(())
    };
    put(&cfg_name, &cfg)?;
    let manifest = json!([{"Config": cfg_name, "RepoTags": ["slimd-bench/synthetic:latest"], "Layers": names}]);
    put("manifest.json", &serde_json::to_vec(&manifest)?)?;
    b.into_inner()?.flush()?;
    for p in paths {
        std::fs::remove_file(p)?;
    }
    Ok(std::fs::metadata(out)?.len())
}

/// Writes `dir/a.tar` and `dir/b.tar` of about `mb` MB of file bytes each.
pub fn pair(dir: &Path, mb: u64, files: usize) -> Result<Value> {
    std::fs::create_dir_all(dir)?;
    let avg = mb * 1_000_000 / files as u64;
    let entry = |i: usize, variant_b: bool| {
        let seed = if variant_b && changed(i) {
            i as u64 + 1_000_000_007
        } else {
            i as u64
        };
        let mode = if variant_b && chmodded(i) {
            0o600
        } else {
            0o644
        };
        (
            format!("data/d{:03}/f{i:06}.bin", i % 500),
            size_of(i, avg),
            seed,
            mode,
        )
    };
    let per = files.div_ceil(LAYERS);
    let mut la: Vec<Vec<_>> = vec![Vec::new(); LAYERS];
    let mut lb: Vec<Vec<_>> = vec![Vec::new(); LAYERS];
    let (mut n_changed, mut n_removed, mut n_chmod) = (0, 0, 0);
    for i in 0..files {
        la[i / per].push(entry(i, false));
        if removed(i) {
            n_removed += 1;
            continue;
        }
        n_changed += changed(i) as usize;
        n_chmod += (chmodded(i) && !changed(i)) as usize;
        lb[i / per].push(entry(i, true));
    }
    let added = files / 50;
    for j in 0..added {
        let i = files + j;
        lb[LAYERS - 1].push((format!("new/f{i:06}.bin"), size_of(i, avg), i as u64, 0o644));
    }
    let a_bytes = write_image(&dir.join("a.tar"), dir, &la).context("writing a.tar")?;
    let b_bytes = write_image(&dir.join("b.tar"), dir, &lb).context("writing b.tar")?;
    Ok(json!({
        "files": files, "a_bytes": a_bytes, "b_bytes": b_bytes,
        "changed": n_changed, "removed": n_removed, "chmodded": n_chmod, "added": added,
    }))
}
