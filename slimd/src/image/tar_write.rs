//! A deterministic tar writer: ustar headers with fixed fields (no user or
//! group names, no access times, zeroed device numbers for non-devices) and
//! a PAX header only when a value does not fit (long names, big ids or
//! sizes, xattrs). The same entries always give the same bytes, which keeps
//! our layer digests reproducible.

use std::io::{self, Read, Write};

use super::tar_read::{BLOCK, TarType, padding};

/// One entry to write. `name` is relative, directories end with '/'.
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
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if h.name.len() > 100 {
            pax.push(("path".into(), h.name.as_bytes().to_vec()));
        }
        if h.link.len() > 100 {
            pax.push(("linkpath".into(), h.link.as_bytes().to_vec()));
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
            let base = h.name.trim_end_matches('/');
            let base = base.rsplit('/').next().unwrap_or(base);
            let pax_name = truncate(&format!("PaxHeaders/{base}"), 100).to_string();
            let ph = TarHeader {
                name: &pax_name,
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
            let block = header_block(&ph, b'x');
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
        self.put(&header_block(h, flag))?;
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
                        format!("{} ended {left} bytes early", h.name),
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

/// The longest prefix of `s` within `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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

fn header_block(h: &TarHeader<'_>, flag: u8) -> [u8; BLOCK as usize] {
    let mut b = [0u8; BLOCK as usize];
    let name = truncate(h.name, 100).as_bytes();
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
    let link = truncate(h.link, 100).as_bytes();
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
