//! A jar's `META-INF/MANIFEST.MF`, read straight from the zip central
//! directory (stored or deflated, no zip64): its `Class-Path` names the
//! jars the JVM loads with it.

use std::io::{Read, Seek, SeekFrom};

use super::{Dep, PackageError};
use crate::image::ImageFs;
use crate::image::path::{join, parent};
use crate::resolve::options::Ecosystem;

const EOCD_SIG: u32 = 0x0605_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// End record (22 bytes) plus the longest comment.
const EOCD_SEARCH: u64 = 22 + 0xffff;
const MAX_CENTRAL: u64 = 64 << 20;
const MAX_MANIFEST: u64 = 1 << 20;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The jars a jar's manifest puts on the class path, as image paths.
pub(super) fn class_path(fs: &ImageFs, jar: &str) -> Result<Vec<Dep>, PackageError> {
    let Some(text) = manifest(fs, jar)? else {
        return Ok(Vec::new());
    };
    let dir = parent(jar);
    Ok(parse_class_path(&text)
        .into_iter()
        .filter(|e| !e.contains(':') || e.starts_with("file:"))
        .map(|e| Dep {
            ecosystem: Ecosystem::Java,
            name: join(dir, e.trim_start_matches("file:")),
        })
        .collect())
}

/// `Class-Path:` entries; a manifest line continues on lines that start
/// with one space.
pub(crate) fn parse_class_path(manifest: &str) -> Vec<String> {
    let mut logical: Vec<String> = Vec::new();
    for line in manifest.lines() {
        let line = line.trim_end_matches('\r');
        match (line.strip_prefix(' '), logical.last_mut()) {
            (Some(cont), Some(last)) => last.push_str(cont),
            _ => logical.push(line.to_string()),
        }
    }
    logical
        .iter()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("Class-Path").then_some(v)
        })
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The manifest's text, `None` when the jar has none.
pub(crate) fn manifest(fs: &ImageFs, jar: &str) -> Result<Option<String>, PackageError> {
    let bad = |why| PackageError::Zip {
        path: jar.to_string(),
        why,
    };
    let read_err = |source| PackageError::Read {
        path: jar.to_string(),
        source,
    };
    let io =
        |e: std::io::Error| read_err(crate::image::ImageError::io(format!("reading {jar}"), e));
    let mut r = fs.open(jar).map_err(read_err)?;
    let len = r.len();
    if len < 22 {
        return Err(bad("too short"));
    }
    let tail_len = len.min(EOCD_SEARCH);
    r.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail).map_err(io)?;
    let eocd = (0..=tail.len() - 22)
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIG)
        .ok_or_else(|| bad("no end of central directory"))?;
    let cd_size = u32_at(&tail, eocd + 12) as u64;
    let cd_offset = u32_at(&tail, eocd + 16) as u64;
    if cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        return Err(bad("zip64 is not read"));
    }
    if cd_size > MAX_CENTRAL || cd_offset + cd_size > len {
        return Err(bad("central directory out of range"));
    }
    r.seek(SeekFrom::Start(cd_offset)).map_err(io)?;
    let mut cd = vec![0u8; cd_size as usize];
    r.read_exact(&mut cd).map_err(io)?;
    let mut i = 0usize;
    while i + 46 <= cd.len() && u32_at(&cd, i) == CENTRAL_SIG {
        let method = u16_at(&cd, i + 10);
        let comp = u32_at(&cd, i + 20) as u64;
        let name_len = u16_at(&cd, i + 28) as usize;
        let extra_len = u16_at(&cd, i + 30) as usize;
        let comment_len = u16_at(&cd, i + 32) as usize;
        let local = u32_at(&cd, i + 42) as u64;
        let name = cd
            .get(i + 46..i + 46 + name_len)
            .ok_or_else(|| bad("truncated central directory"))?;
        if name.eq_ignore_ascii_case(b"META-INF/MANIFEST.MF") {
            if comp > MAX_MANIFEST {
                return Err(bad("manifest too large"));
            }
            r.seek(SeekFrom::Start(local)).map_err(io)?;
            let mut head = [0u8; 30];
            r.read_exact(&mut head).map_err(io)?;
            if u32_at(&head, 0) != LOCAL_SIG {
                return Err(bad("bad local header"));
            }
            let skip = u16_at(&head, 26) as i64 + u16_at(&head, 28) as i64;
            r.seek(SeekFrom::Current(skip)).map_err(io)?;
            let mut data = vec![0u8; comp as usize];
            r.read_exact(&mut data).map_err(io)?;
            let bytes = match method {
                0 => data,
                8 => {
                    let mut out = Vec::new();
                    flate2::read::DeflateDecoder::new(&data[..])
                        .take(MAX_MANIFEST)
                        .read_to_end(&mut out)
                        .map_err(|_| bad("manifest does not inflate"))?;
                    out
                }
                _ => return Err(bad("unknown compression method")),
            };
            return Ok(Some(crate::image::name::decode_owned(bytes)));
        }
        i += 46 + name_len + extra_len + comment_len;
    }
    Ok(None)
}
