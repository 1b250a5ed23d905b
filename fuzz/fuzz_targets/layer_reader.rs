//! Feeds arbitrary bytes to the image readers: as one or two layer blobs
//! (plain, gzip or zstd tar) or as a whole `docker save` / OCI archive
//! stream. Whatever is read must satisfy the flattened filesystem's
//! invariants, read back consistently, and survive a write/read round trip
//! (names are bytes, not necessarily UTF-8: they must come back the same).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use slimd::image::{
    EntryKind, Image, ImageConfig, ImageError, ImageWriter, ReadLimits, ReadOptions, Selection,
    WriteOptions, name,
};

fn options() -> ReadOptions {
    ReadOptions {
        limits: ReadLimits {
            max_entries: 5_000,
            max_meta: 64 << 10,
            max_spool_bytes: 64 << 20,
        },
        max_json_bytes: 1 << 20,
        ..ReadOptions::default()
    }
}

fn check(img: &Image, scratch: &std::path::Path) {
    let fs = &img.fs;
    assert!(fs.get("/").is_some_and(|e| e.is_dir()));
    for (path, e) in fs.iter() {
        assert!(path.starts_with('/'), "{path:?}");
        // Names are bytes: the path string stands for them losslessly.
        assert_eq!(name::decode(&name::encode(path)), path);
        assert!(path == "/" || !path.ends_with('/'), "{path:?}");
        assert!(!path.contains("//") && !path.contains("/./") && !path.contains("/../"));
        assert!(!path.ends_with("/.") && !path.ends_with("/.."), "{path:?}");
        // Every ancestor is a directory.
        for (i, _) in path.match_indices('/').filter(|(i, _)| *i > 0) {
            assert!(fs.get(&path[..i]).is_some_and(|a| a.is_dir()), "{path:?}");
        }
        if let EntryKind::File(d) = &e.kind {
            let mut r = fs.open_data(d).expect("spooled data is there");
            let mut n = 0u64;
            let mut buf = [0u8; 4096];
            loop {
                let k = r.read(&mut buf).expect("reads");
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            assert_eq!(n, d.size, "{path}");
        }
        let _ = fs.resolve(path, Default::default());
    }
    // Everything spooled stays inside the scratch directory.
    for l in &img.layers {
        assert!(l.file.starts_with(scratch));
    }
    // Write everything back and read it again: the same paths come back.
    let sel: Selection = fs.iter().map(|(p, _)| p).filter(|p| *p != "/").collect();
    let mut out = Vec::new();
    let w = ImageWriter::new(img, &sel, &WriteOptions::default())
        .write_docker_archive(&mut out, scratch)
        .expect("a read image can be written");
    let s2 = tempfile::tempdir().unwrap();
    let back = Image::from_save_stream(&out[..], s2.path()).expect("what we write, we read");
    assert_eq!(back.config_digest, w.image_id);
    let a: Vec<&str> = fs.iter().map(|(p, _)| p).collect();
    let b: Vec<&str> = back.fs.iter().map(|(p, _)| p).collect();
    assert_eq!(a, b);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let opts = options();
    let result = match mode % 3 {
        0 => Image::from_layer_blobs(ImageConfig::default(), [rest], scratch.path(), &opts),
        1 => {
            let cut = rest.first().map_or(0, |&b| b as usize * rest.len() / 256);
            let (a, b) = rest.split_at(cut.min(rest.len()));
            Image::from_layer_blobs(ImageConfig::default(), [a, b], scratch.path(), &opts)
        }
        _ => Image::from_save_stream_with(rest, scratch.path(), &opts),
    };
    match result {
        Ok(img) => check(&img, scratch.path()),
        // Typed errors are the expected outcome for most inputs; a plain I/O
        // error would mean the scratch directory failed us.
        Err(ImageError::Io { context, source }) if !context.starts_with("reading") => {
            panic!("unexpected I/O error: {context}: {source}")
        }
        Err(_) => {}
    }
});
