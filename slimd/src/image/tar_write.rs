//! A deterministic tar writer: ustar headers with fixed fields (no user or
//! group names, no access times, zeroed device numbers for non-devices) and
//! a PAX header only when a value does not fit (long names, big ids or
//! sizes, xattrs). The same entries always give the same bytes, which keeps
//! our layer digests reproducible.
//!
//! Names and link targets are written byte-exact: the path strings are
//! turned back into the bytes they stand for with [`super::name::encode`].
//! A name that fits goes into the ustar fields as raw bytes; a longer one
//! into a PAX `path`/`linkpath` record, also raw, with `hdrcharset=BINARY`
//! when those bytes are not UTF-8 (as GNU tar writes it; POSIX defines the
//! records as UTF-8 otherwise). Go's archive/tar, which `docker load` uses,
//! takes the bytes as they are either way.

use std::io::{self, Read, Write};

use super::name;
use super::tar_read::{BLOCK, TarType, padding};

/// One entry to write. `name` is relative, directories end with '/'; names
/// and links are path strings (see [`super::name`]).
pub(crate) struct TarHeader<'a> {
    pub name: &'a str,
    pub kind: TarType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: &'a str,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: &'a [(String, Vec<u8>)],
}

impl<'a> TarHeader<'a> {
    /// A plain file header owned by root with fixed metadata (for archive
    /// bookkeeping files like manifest.json).
    pub fn plain_file(name: &'a str, size: u64) -> Self {
        TarHeader {
            name,
            kind: TarType::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size,
            link: "",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        }
    }

    /// A directory header owned by root with fixed metadata.
    pub fn plain_dir(name: &'a str) -> Self {
        TarHeader {
            kind: TarType::Dir,
            mode: 0o755,
            ..TarHeader::plain_file(name, 0)
        }
    }
}

/// Writes tar entries in order and counts the bytes written.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

const MAX_OCTAL7: u64 = 0o7777777;
const MAX_OCTAL11: u64 = 0o77777777777;

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let zeros = [0u8; BLOCK as usize];
        self.put(&zeros[..padding(size) as usize])
    }

    /// Writes one entry; `data` must yield exactly `h.size` bytes for files.
    pub fn append(&mut self, h: &TarHeader<'_>, data: Option<&mut dyn Read>) -> io::Result<()> {
        let raw_name = name::encode(h.name);
        let raw_link = name::encode(h.link);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let long_name = raw_name.len() > 100;
        let long_link = raw_link.len() > 100;
        if (long_name && std::str::from_utf8(&raw_name).is_err())
            || (long_link && std::str::from_utf8(&raw_link).is_err())
        {
            pax.push(("hdrcharset".into(), b"BINARY".to_vec()));
        }
        if long_name {
            pax.push(("path".into(), raw_name.to_vec()));
        }
        if long_link {
            pax.push(("linkpath".into(), raw_link.to_vec()));
        }
        if h.uid > MAX_OCTAL7 {
            pax.push(("uid".into(), h.uid.to_string().into_bytes()));
        }
        if h.gid > MAX_OCTAL7 {
            pax.push(("gid".into(), h.gid.to_string().into_bytes()));
        }
        if h.size > MAX_OCTAL11 {
            pax.push(("size".into(), h.size.to_string().into_bytes()));
        }
        if h.mtime > MAX_OCTAL11 {
            pax.push(("mtime".into(), h.mtime.to_string().into_bytes()));
        }
        for (k, v) in h.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let base = raw_name.strip_suffix(b"/").unwrap_or(&raw_name);
            let base = base.rsplit(|&b| b == b'/').next().unwrap_or(base);
            let mut pax_name = b"PaxHeaders/".to_vec();
            pax_name.extend_from_slice(base);
            let ph = TarHeader {
                name: "",
                kind: TarType::File,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: h.mtime.min(MAX_OCTAL11),
                size: records.len() as u64,
                link: "",
                dev_major: 0,
                dev_minor: 0,
                xattrs: &[],
            };
            let block = header_block(&ph, &pax_name, b"", b'x');
            self.put(&block)?;
            self.put(&records)?;
            self.pad(records.len() as u64)?;
        }
        let flag = match h.kind {
            TarType::File => b'0',
            TarType::Hardlink => b'1',
            TarType::Symlink => b'2',
            TarType::CharDevice => b'3',
            TarType::BlockDevice => b'4',
            TarType::Dir => b'5',
            TarType::Fifo => b'6',
        };
        self.put(&header_block(h, &raw_name, &raw_link, flag))?;
        if h.kind == TarType::File && h.size > 0 {
            let data = data.ok_or_else(|| io::Error::other("file entry without data"))?;
            let mut buf = vec![0u8; 1 << 16];
            let mut left = h.size;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = data.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended {left} bytes early", name::show(h.name)),
                    ));
                }
                self.put(&buf[..n])?;
                left -= n as u64;
            }
            self.pad(h.size)?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the output and the
    /// number of bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.put(&[0u8; 2 * BLOCK as usize])?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// The longest prefix of `b` within `max` bytes that does not cut a UTF-8
/// character in two (only the ustar fallback field of a name that also has
/// a PAX record is ever cut).
fn truncate(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut end = max;
    while end > 0 && b[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    &b[..end]
}

/// Encodes PAX records; each record's length includes its own digits.
fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let max = (1u64 << (3 * digits as u32)) - 1;
    let s = format!("{:0width$o}", value.min(max), width = digits);
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// One header block; `name` and `link` are the bytes to write (the header's
/// own strings are not used).
fn header_block(h: &TarHeader<'_>, name: &[u8], link: &[u8], flag: u8) -> [u8; BLOCK as usize] {
    let mut b = [0u8; BLOCK as usize];
    let name = truncate(name, 100);
    b[..name.len()].copy_from_slice(name);
    octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    octal(&mut b[108..116], h.uid.min(MAX_OCTAL7));
    octal(&mut b[116..124], h.gid.min(MAX_OCTAL7));
    octal(
        &mut b[124..136],
        if flag == b'0' || flag == b'x' {
            h.size.min(MAX_OCTAL11)
        } else {
            0
        },
    );
    octal(&mut b[136..148], h.mtime.min(MAX_OCTAL11));
    b[156] = flag;
    let link = truncate(link, 100);
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], u64::from(h.dev_major));
    octal(&mut b[337..345], u64::from(h.dev_minor));
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::super::tar_read::TarReader;
    use super::*;

    #[test]
    fn round_trips_through_both_readers() {
        let long = format!("usr/share/{}/file", "d".repeat(120));
        let xattrs = vec![(
            "security.capability".to_string(),
            vec![1u8, 0, 0, 2, 0, 32, 0, 0],
        )];
        let mut w = TarWriter::new(Vec::new());
        w.append(&TarHeader::plain_dir("usr/"), None).unwrap();
        let mut data: &[u8] = b"hello";
        w.append(
            &TarHeader {
                uid: 5_000_000,
                xattrs: &xattrs,
                ..TarHeader::plain_file(&long, 5)
            },
            Some(&mut data),
        )
        .unwrap();
        let (bytes, n) = w.finish().unwrap();
        assert_eq!(n as usize, bytes.len());
        assert_eq!(bytes.len() % 512, 0);

        let mut r = TarReader::new(&bytes[..], 1 << 20);
        assert_eq!(r.next_entry().unwrap().unwrap().name, "usr/");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, long);
        assert_eq!(e.uid, 5_000_000);
        assert_eq!(e.xattrs, xattrs);

        // The tar crate (an independent reader) agrees.
        let mut a = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["usr/".to_string(), long]);
    }

    /// Writes entries whose names and link targets are not UTF-8 (Latin-1,
    /// stray bytes, longer than the ustar fields) and reads them back with
    /// our reader and with the tar crate: every byte is where it was.
    #[test]
    fn names_that_are_not_utf8_are_written_byte_exact() {
        use super::super::name::{decode, encode};
        let n = |b: &[u8]| decode(b).into_owned();
        let long_dir = [b"srv/".as_slice(), &[0xe9; 120]].concat();
        let long_file = [long_dir.as_slice(), b"/f\xff\xfe.txt"].concat();
        let long_utf8 = format!("srv/{}", "é".repeat(80));
        let entries: Vec<(Vec<u8>, TarType, Vec<u8>)> = vec![
            (b"srv/".to_vec(), TarType::Dir, vec![]),
            (b"srv/www/caf\xe9.html".to_vec(), TarType::File, vec![]),
            (
                b"srv/www/l\xe9".to_vec(),
                TarType::Symlink,
                b"caf\xe9.html".to_vec(),
            ),
            (
                b"srv/www/h".to_vec(),
                TarType::Hardlink,
                b"srv/www/caf\xe9.html".to_vec(),
            ),
            ([long_dir.as_slice(), b"/"].concat(), TarType::Dir, vec![]),
            (long_file.clone(), TarType::File, vec![]),
            (b"srv/ll".to_vec(), TarType::Symlink, long_file.clone()),
            (long_utf8.as_bytes().to_vec(), TarType::File, vec![]),
        ];
        let mut w = TarWriter::new(Vec::new());
        for (name, kind, link) in &entries {
            let (name, link) = (n(name), n(link));
            let size = if *kind == TarType::File { 3 } else { 0 };
            let mut data: &[u8] = b"abc";
            let h = TarHeader {
                kind: *kind,
                link: &link,
                ..TarHeader::plain_file(&name, size)
            };
            w.append(&h, Some(&mut data)).unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        // PAX path/linkpath records hold raw bytes, marked as binary only
        // where they are not UTF-8 (three entries here; not the long UTF-8 one).
        let marks = bytes
            .windows(17)
            .filter(|w| w == b"hdrcharset=BINARY")
            .count();
        assert_eq!(marks, 3);

        let mut r = TarReader::new(&bytes[..], 1 << 20);
        for (name, kind, link) in &entries {
            let e = r.next_entry().unwrap().unwrap();
            assert_eq!(encode(&e.name).as_ref(), name.as_slice());
            assert_eq!(e.kind, *kind);
            assert_eq!(encode(&e.link).as_ref(), link.as_slice());
        }
        assert!(r.next_entry().unwrap().is_none());

        let mut a = tar::Archive::new(&bytes[..]);
        let got: Vec<(Vec<u8>, Vec<u8>)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), link.unwrap_or_default())
            })
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(name, _, link)| (name.clone(), link.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pax_lengths_count_their_own_digits() {
        for n in [1usize, 80, 90, 95, 96, 97, 98, 990, 995, 996, 997, 9990] {
            let v = vec![b'a'; n];
            let rec = pax_records(&[("k".into(), v)]);
            let len: usize =
                std::str::from_utf8(&rec[..rec.iter().position(|&b| b == b' ').unwrap()])
                    .unwrap()
                    .parse()
                    .unwrap();
            assert_eq!(len, rec.len(), "value of {n} bytes");
        }
    }
}
