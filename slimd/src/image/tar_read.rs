//! A small streaming tar reader of our own.
//!
//! Why not the `tar` crate's reader: it reads GNU long names and PAX headers
//! into memory without a size limit (a gzip bomb can make it allocate
//! gigabytes), and we need the exact byte offset of every file's data in the
//! stream to read it back later from the spooled layer. This reader keeps
//! every header in bounds, reports positions, never seeks, and understands
//! what container layers use: ustar, GNU long names/links, PAX records
//! (path, linkpath, size, uid, gid, mtime, `SCHILY.xattr.*`). It refuses
//! sparse files and unknown entry types rather than guessing. Names and link
//! targets are bytes: they are kept exactly, through [`super::name::decode`]
//! (PAX `hdrcharset` changes nothing: the bytes are the name either way).

use std::io::{self, Read};

/// Size of a tar block.
pub(crate) const BLOCK: u64 = 512;

/// What a tar entry is, after folding the legacy encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TarType {
    File,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Dir,
    Fifo,
}

/// One entry's header, with the extension headers before it applied.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub name: String,
    pub link: String,
    pub kind: TarType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Bytes of data that follow the header (0 for header-only types).
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` records, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Offset of the first data byte in the stream.
    pub data_offset: u64,
}

/// Why a tar stream could not be read.
#[derive(Debug)]
pub(crate) enum TarError {
    Io(io::Error),
    Truncated { offset: u64 },
    Corrupt { offset: u64, reason: String },
    Unsupported { path: String, reason: String },
    MetaTooLarge { size: u64, limit: u64 },
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

/// Reads tar headers and data in order from any byte stream.
pub(crate) struct TarReader<R> {
    inner: R,
    pos: u64,
    data_left: u64,
    pad_left: u64,
    done: bool,
    max_meta: u64,
}

/// Extension headers collected before the entry they describe.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
    xattrs: Vec<(String, Vec<u8>)>,
    sparse: bool,
}

impl<R: Read> TarReader<R> {
    /// `max_meta` bounds each PAX header and GNU long name kept in memory.
    pub(crate) fn new(inner: R, max_meta: u64) -> Self {
        TarReader {
            inner,
            pos: 0,
            data_left: 0,
            pad_left: 0,
            done: false,
            max_meta,
        }
    }

    /// Reads exactly `buf.len()` bytes or reports truncation.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<(), TarError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(TarError::Truncated {
                        offset: self.pos + got as u64,
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads and drops `n` bytes.
    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            self.read_full(&mut buf[..want])?;
            n -= want as u64;
        }
        Ok(())
    }

    /// Reads a whole extension entry's data, within the metadata limit.
    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > self.max_meta {
            return Err(TarError::MetaTooLarge {
                size,
                limit: self.max_meta,
            });
        }
        let mut v = vec![0u8; size as usize];
        self.read_full(&mut v)?;
        self.skip(padding(size))?;
        Ok(v)
    }

    /// Moves to the next entry, skipping whatever of the current one's data
    /// was not read. `None` at the end-of-archive marker or a clean EOF.
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarEntry>, TarError> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.data_left + self.pad_left)?;
        self.data_left = 0;
        self.pad_left = 0;
        let mut pending = Pending::default();
        loop {
            let start = self.pos;
            let mut block = [0u8; BLOCK as usize];
            // A stream that ends exactly between entries is accepted, as Go's
            // archive/tar does; an end inside a header is truncation.
            let first = loop {
                match self.inner.read(&mut block) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(TarError::Io(e)),
                }
            };
            if first == 0 {
                if has_pending(&pending) {
                    return Err(TarError::Truncated { offset: start });
                }
                self.done = true;
                return Ok(None);
            }
            self.pos += first as u64;
            if first < block.len() {
                self.read_full(&mut block[first..])?;
            }
            if block.iter().all(|&b| b == 0) {
                if has_pending(&pending) {
                    return Err(corrupt(start, "end-of-archive after an extension header"));
                }
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block, start)?;
            let flag = block[156];
            let raw_size = parse_number(&block[124..136], start, "size")?;
            match flag {
                b'x' => {
                    let data = self.read_meta(raw_size)?;
                    parse_pax(&data, &mut pending, start)?;
                    continue;
                }
                b'g' => {
                    // Global headers set archive-wide defaults that layer
                    // writers do not use; read and ignore them.
                    self.read_meta(raw_size)?;
                    continue;
                }
                b'L' => {
                    let data = self.read_meta(raw_size)?;
                    pending.path = Some(decode_name(trim_nul(&data)));
                    continue;
                }
                b'K' => {
                    let data = self.read_meta(raw_size)?;
                    pending.link = Some(decode_name(trim_nul(&data)));
                    continue;
                }
                _ => {}
            }
            let ustar = &block[257..263] == b"ustar\0";
            let name = match pending.path.take() {
                Some(p) => p,
                None => {
                    let base = trim_nul(&block[0..100]);
                    let prefix = if ustar {
                        trim_nul(&block[345..500])
                    } else {
                        &[]
                    };
                    let mut full = Vec::with_capacity(prefix.len() + 1 + base.len());
                    if !prefix.is_empty() {
                        full.extend_from_slice(prefix);
                        full.push(b'/');
                    }
                    full.extend_from_slice(base);
                    decode_name(&full)
                }
            };
            let link = match pending.link.take() {
                Some(l) => l,
                None => decode_name(trim_nul(&block[157..257])),
            };
            if pending.sparse {
                return Err(TarError::Unsupported {
                    path: name,
                    reason: "PAX sparse file".into(),
                });
            }
            let kind = match flag {
                b'0' | b'7' => TarType::File,
                b'\0' if name.ends_with('/') => TarType::Dir,
                b'\0' => TarType::File,
                b'1' => TarType::Hardlink,
                b'2' => TarType::Symlink,
                b'3' => TarType::CharDevice,
                b'4' => TarType::BlockDevice,
                b'5' => TarType::Dir,
                b'6' => TarType::Fifo,
                b'S' => {
                    return Err(TarError::Unsupported {
                        path: name,
                        reason: "GNU sparse file".into(),
                    });
                }
                other => {
                    return Err(TarError::Unsupported {
                        path: name,
                        reason: format!("tar type flag {:?}", other as char),
                    });
                }
            };
            let size = match kind {
                // Go's archive/tar (and so Docker) reads no data for these,
                // whatever the size field says.
                TarType::File => pending.size.unwrap_or(raw_size),
                _ => 0,
            };
            let mode = parse_number(&block[100..108], start, "mode")?;
            let uid = match pending.uid {
                Some(u) => u,
                None => parse_number(&block[108..116], start, "uid")?,
            };
            let gid = match pending.gid {
                Some(g) => g,
                None => parse_number(&block[116..124], start, "gid")?,
            };
            let mtime = match pending.mtime {
                Some(m) => m,
                None => parse_number(&block[136..148], start, "mtime")?,
            };
            let (dev_major, dev_minor) = if ustar || &block[257..263] == b"ustar " {
                (
                    parse_number(&block[329..337], start, "devmajor")? as u32,
                    parse_number(&block[337..345], start, "devminor")? as u32,
                )
            } else {
                (0, 0)
            };
            let mut xattrs = std::mem::take(&mut pending.xattrs);
            xattrs.sort_by(|a, b| a.0.cmp(&b.0));
            xattrs.dedup_by(|later, earlier| later.0 == earlier.0);
            self.data_left = size;
            self.pad_left = padding(size);
            return Ok(Some(TarEntry {
                name,
                link,
                kind,
                mode: (mode & 0o7777) as u32,
                uid,
                gid,
                mtime,
                size,
                dev_major,
                dev_minor,
                xattrs,
                data_offset: self.pos,
            }));
        }
    }

    /// Reads data of the current entry; 0 at its end.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.data_left) as usize;
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        };
        if n == 0 {
            return Err(TarError::Truncated { offset: self.pos });
        }
        self.pos += n as u64;
        self.data_left -= n as u64;
        Ok(n)
    }

    /// Skips the rest of the archive after the end marker, returning the
    /// stream so a caller can drain it (the layer digest covers every byte).
    pub(crate) fn finish(mut self) -> Result<R, TarError> {
        if !self.done {
            self.skip(self.data_left + self.pad_left)?;
        }
        Ok(self.inner)
    }
}

fn has_pending(p: &Pending) -> bool {
    p.path.is_some()
        || p.link.is_some()
        || p.size.is_some()
        || p.uid.is_some()
        || p.gid.is_some()
        || p.mtime.is_some()
        || !p.xattrs.is_empty()
        || p.sparse
}

fn corrupt(offset: u64, reason: impl Into<String>) -> TarError {
    TarError::Corrupt {
        offset,
        reason: reason.into(),
    }
}

/// Bytes of zero padding after `size` bytes of data.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nul(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// A name or link target from the archive, byte-exact.
fn decode_name(bytes: &[u8]) -> String {
    super::name::decode(bytes).into_owned()
}

/// Accepts the unsigned sum (POSIX) and the signed sum (old Sun tars).
fn verify_checksum(block: &[u8], offset: u64) -> Result<(), TarError> {
    let stored = parse_number(&block[148..156], offset, "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(corrupt(offset, "header checksum mismatch"))
    }
}

/// Octal (space or NUL terminated) or GNU base-256 numbers.
fn parse_number(field: &[u8], offset: u64, what: &str) -> Result<u64, TarError> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        if first == 0xff {
            return Err(corrupt(offset, format!("negative {what}")));
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            if v > (u64::MAX >> 8) {
                return Err(corrupt(offset, format!("{what} overflows")));
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut seen_digit = false;
    for &b in field {
        match b {
            b'0'..=b'7' => {
                seen_digit = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .ok_or_else(|| corrupt(offset, format!("{what} overflows")))?;
            }
            b' ' | 0 if !seen_digit => {}
            b' ' | 0 => break,
            _ => return Err(corrupt(offset, format!("invalid octal digit in {what}"))),
        }
    }
    Ok(v)
}

/// Parses `"<len> <key>=<value>\n"` records.
fn parse_pax(data: &[u8], p: &mut Pending, offset: u64) -> Result<(), TarError> {
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the record area with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| corrupt(offset, "PAX record without length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(offset, "PAX record with a bad length"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(corrupt(offset, "PAX record length out of bounds"));
        }
        let record = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| corrupt(offset, "PAX record without '='"))?;
        let key = std::str::from_utf8(&record[..eq])
            .map_err(|_| corrupt(offset, "PAX key is not UTF-8"))?;
        let value = &record[eq + 1..];
        let text = |what: &str| -> Result<String, TarError> {
            if value.contains(&0) {
                return Err(corrupt(offset, format!("NUL in PAX {what}")));
            }
            Ok(decode_name(value))
        };
        let num = |what: &str| -> Result<u64, TarError> {
            let s = std::str::from_utf8(value).map_err(|_| corrupt(offset, "bad PAX number"))?;
            // mtime may carry a fraction; negative times clamp to 0.
            let whole = s.split('.').next().unwrap_or("");
            if whole.starts_with('-') {
                return Ok(0);
            }
            whole
                .parse()
                .map_err(|_| corrupt(offset, format!("bad PAX {what} {s:?}")))
        };
        match key {
            "path" => p.path = Some(text("path")?),
            "linkpath" => p.link = Some(text("linkpath")?),
            "size" => p.size = Some(num("size")?),
            "uid" => p.uid = Some(num("uid")?),
            "gid" => p.gid = Some(num("gid")?),
            "mtime" => p.mtime = Some(num("mtime")?),
            k if k.starts_with("GNU.sparse.") => p.sparse = true,
            k if k.starts_with("SCHILY.xattr.") => {
                let name = &k["SCHILY.xattr.".len()..];
                if !name.is_empty() {
                    p.xattrs.push((name.to_string(), value.to_vec()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    #[test]
    fn reads_names_offsets_and_data() {
        let long = format!("dir/{}", "x".repeat(150));
        let bytes = build(|b| {
            file(b, "a.txt", b"hello");
            file(b, &long, b"world!");
        });
        let mut r = TarReader::new(&bytes[..], 1 << 20);
        let a = r.next_entry().unwrap().unwrap();
        assert_eq!(a.name, "a.txt");
        assert_eq!(a.size, 5);
        assert_eq!(&bytes[a.data_offset as usize..][..5], b"hello");
        let mut buf = [0u8; 3];
        assert_eq!(r.read_data(&mut buf).unwrap(), 3);
        let l = r.next_entry().unwrap().unwrap();
        assert_eq!(l.name, long);
        assert_eq!(&bytes[l.data_offset as usize..][..6], b"world!");
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn pax_xattrs_and_overrides() {
        let bytes = build(|b| {
            b.append_pax_extensions([
                ("SCHILY.xattr.security.capability", &b"\x01\x00\x00\x02"[..]),
                ("uid", b"3000000"),
                ("path", b"pax/name"),
            ])
            .unwrap();
            file(b, "short", b"");
        });
        let mut r = TarReader::new(&bytes[..], 1 << 20);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, "pax/name");
        assert_eq!(e.uid, 3_000_000);
        assert_eq!(
            e.xattrs,
            vec![(
                "security.capability".to_string(),
                b"\x01\x00\x00\x02".to_vec()
            )]
        );
    }

    /// Names from an independent writer (the tar crate) in every encoding a
    /// layer uses: ustar fields, GNU long names and links, PAX records. The
    /// bytes are kept exactly, however they fail to be UTF-8.
    #[test]
    fn names_are_bytes_in_every_encoding() {
        use crate::image::name::encode;
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let latin1: &[u8] = b"srv/www/caf\xe9.html";
        let long = [b"srv/".as_slice(), &[0xe9; 150], b"/x"].concat();
        let bytes = build(|b| {
            // ustar name and link fields.
            file(b, "placeholder", b"");
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(
                &mut h,
                OsStr::from_bytes(b"srv/l\xff"),
                OsStr::from_bytes(latin1),
            )
            .unwrap();
            // GNU long name ('L') and long link ('K').
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, OsStr::from_bytes(&long), OsStr::from_bytes(&long))
                .unwrap();
            // PAX path and linkpath.
            b.append_pax_extensions([("path", latin1), ("linkpath", &long[..])])
                .unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_path("short").unwrap();
            h.set_link_name("short").unwrap();
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        });
        let mut r = TarReader::new(&bytes[..], 1 << 20);
        r.next_entry().unwrap().unwrap();
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(encode(&e.name).as_ref(), b"srv/l\xff");
        assert_eq!(encode(&e.link).as_ref(), latin1);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.kind, TarType::Hardlink);
        assert_eq!(encode(&e.name).as_ref(), long.as_slice());
        assert_eq!(encode(&e.link).as_ref(), long.as_slice());
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(encode(&e.name).as_ref(), latin1);
        assert_eq!(encode(&e.link).as_ref(), long.as_slice());
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn truncated_and_corrupt_and_oversized() {
        let bytes = build(|b| file(b, "a", &[7u8; 1000]));
        let mut r = TarReader::new(&bytes[..700], 1 << 20);
        r.next_entry().unwrap().unwrap();
        assert!(matches!(r.next_entry(), Err(TarError::Truncated { .. })));

        let mut bad = bytes.clone();
        bad[10] ^= 0x55;
        let mut r = TarReader::new(&bad[..], 1 << 20);
        assert!(matches!(r.next_entry(), Err(TarError::Corrupt { .. })));

        let long = "y".repeat(5000);
        let bytes = build(|b| file(b, &long, b""));
        let mut r = TarReader::new(&bytes[..], 1024);
        assert!(matches!(r.next_entry(), Err(TarError::MetaTooLarge { .. })));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"0000755\0", 0, "m").unwrap(), 0o755);
        assert_eq!(parse_number(b"  755 \0\0", 0, "m").unwrap(), 0o755);
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 1, 0], 0, "m").unwrap(),
            256
        );
        assert!(parse_number(b"0000/55\0", 0, "m").is_err());
    }
}
