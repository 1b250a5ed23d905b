//! Names are bytes: the one encoding between a Linux path (any bytes but
//! NUL, not necessarily UTF-8) and the `String` slimd carries paths in, and
//! the one way a path is shown to a person and read back from one.
//!
//! **Encoding** (Python's `surrogateescape` is the model; a Rust `String`
//! cannot hold surrogates, so private-use code points stand in):
//! - bytes that are valid UTF-8 decode to their characters;
//! - each byte of an invalid sequence (always 0x80..=0xFF) becomes the one
//!   code point U+10FF00 + byte, i.e. U+10FF80..=U+10FFFF, the end of
//!   Supplementary Private Use Area-B;
//! - a valid character that itself lies in that reserved range is escaped
//!   byte by byte as well, so no real name can collide with an escaped one.
//!
//! So `encode(&decode(b)) == b` for every byte string, and two different
//! byte strings never decode to the same text. Every place that turns raw
//! bytes into a path uses [`decode`] (tar names and link targets, kernel
//! paths, ELF strings, `#!` lines, package file lists); every place that
//! writes a path as bytes uses [`encode`] (the tar writer). The path
//! helpers split and join on `/`, which is ASCII and never part of an
//! escape, so paths built from decoded components stay in this form.
//!
//! **Showing** ([`show`]): an escaped byte is written `\xNN` (two lowercase
//! hex digits), and so are control characters (U+0000..U+001F, U+007F)
//! except newline and tab, which messages holding names need as they are;
//! a backslash is written `\x5c` only where it would otherwise read as the
//! start of such an escape (followed by `x` and two hex digits). Everything
//! else shows as itself. Reports, xray output, progress lines and errors
//! show paths this way.
//!
//! **Reading back** ([`parse`]): `\xNN` (either case) is the byte NN and
//! everything else is itself, then the bytes are decoded. This is how a
//! user names a non-UTF-8 path in a flag (`--include-path
//! '/srv/caf\xe9.html'`), and `parse(&show(s).to_string()) == s` for every
//! decoded name.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// `U+10FF00 + byte` stands for a byte that is not part of valid UTF-8.
const BASE: u32 = 0x10FF00;
/// The first code point used: only bytes 0x80..=0xFF are ever escaped.
const FIRST: u32 = BASE + 0x80;

/// The byte a code point of the reserved range stands for: `Some` exactly
/// for the characters of a path string that stand for a non-UTF-8 byte.
pub fn escaped_byte(c: char) -> Option<u8> {
    let v = c as u32;
    (v >= FIRST).then(|| (v - BASE) as u8)
}

/// The code point standing for byte `b` (0x80..=0xFF).
fn escape(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).expect("U+10FF80..=U+10FFFF are characters")
}

/// Whether valid text holds a character of the reserved range (all of them
/// start with the byte 0xF4 in UTF-8).
fn has_reserved(s: &str) -> bool {
    s.as_bytes().contains(&0xF4) && s.chars().any(|c| escaped_byte(c).is_some())
}

/// Bytes (a tar name, a kernel path, an ELF string) as a path string.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !has_reserved(s)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if escaped_byte(c).is_some() {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).bytes().map(escape));
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            // An invalid sequence never holds an ASCII byte; stay exact anyway.
            out.push(if b < 0x80 { char::from(b) } else { escape(b) });
        }
    }
    Cow::Owned(out)
}

/// [`decode`] into an owned `String`.
pub fn decode_owned(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) if !has_reserved(&s) => s,
        Ok(s) => decode(s.as_bytes()).into_owned(),
        Err(e) => decode(e.as_bytes()).into_owned(),
    }
}

/// A path string as the bytes it stands for.
pub fn encode(s: &str) -> Cow<'_, [u8]> {
    if !s.as_bytes().contains(&0xF4) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match escaped_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Cow::Owned(out)
}

/// How many bytes the path stands for (its length on Linux).
pub fn byte_len(s: &str) -> usize {
    // Each escaped byte is one byte but four in the string.
    s.len() - 3 * s.chars().filter(|&c| escaped_byte(c).is_some()).count()
}

/// A path shown to a person; see the module docs.
#[derive(Clone, Copy)]
pub struct Shown<'a>(&'a str);

/// Shows a path (or a message holding paths) escaped; see the module docs.
pub fn show(s: &str) -> Shown<'_> {
    Shown(s)
}

/// [`show`] as a string, borrowed when nothing needs escaping.
pub fn shown(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| needs_escape(c).is_none() && c != '\\') {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(show(s).to_string())
    }
}

/// Replaces a path string (or a message holding paths) by its shown form.
/// Call it once, where the text leaves for a person: shown text shown again
/// would escape its own backslashes.
pub fn show_in_place(s: &mut String) {
    if let Cow::Owned(o) = shown(s) {
        *s = o;
    }
}

/// The byte to write as `\xNN` for this character, if any.
fn needs_escape(c: char) -> Option<u8> {
    match escaped_byte(c) {
        Some(b) => Some(b),
        None if c.is_ascii_control() && c != '\n' && c != '\t' => Some(c as u8),
        None => None,
    }
}

/// Whether `rest` starts with `x` and two hex digits.
fn reads_as_escape(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.len() >= 3 && b[0] == b'x' && b[1].is_ascii_hexdigit() && b[2].is_ascii_hexdigit()
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let byte = match needs_escape(c) {
                Some(b) => b,
                None if c == '\\' && reads_as_escape(&s[i + 1..]) => b'\\',
                None => continue,
            };
            f.write_str(&s[plain..i])?;
            write!(f, "\\x{byte:02x}")?;
            plain = i + c.len_utf8();
        }
        f.write_str(&s[plain..])
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        fmt::Display::fmt(self, f)?;
        f.write_char('"')
    }
}

/// Reads a shown path (or a path a user typed) back: `\xNN` is the byte NN,
/// anything else is itself; the bytes are then [`decode`]d.
pub fn parse(text: &str) -> String {
    let b = text.as_bytes();
    if !b.contains(&b'\\') && !has_reserved(text) {
        return text.to_string();
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let (Some(hi), Some(lo)) = (hex(b[i + 2]), hex(b[i + 3]))
        {
            out.push(hi << 4 | lo);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    decode_owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), so failures repeat.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Random bytes biased towards the interesting ones: ASCII, `/`,
        /// `\`, `x`, hex digits, UTF-8 lead and continuation bytes, and the
        /// bytes of the reserved range's encoding (F4 8F BE/BF ..).
        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            const SPECIAL: &[u8] =
                b"/\\xX09afAF\xc3\xa9\xe2\x82\xac\xf4\x8f\xbe\xbf\x80\xff\xf0\x9f\x98\x80\n\x7f";
            let len = (self.next() % (max_len as u64 + 1)) as usize;
            (0..len)
                .map(|_| {
                    let r = self.next();
                    if r.is_multiple_of(3) {
                        SPECIAL[(r >> 8) as usize % SPECIAL.len()]
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect()
        }
    }

    fn round_trips(b: &[u8]) {
        let s = decode(b);
        assert_eq!(encode(&s).as_ref(), b, "bytes {b:x?} -> {s:?}");
        assert_eq!(byte_len(&s), b.len(), "{b:x?}");
        let text = show(&s).to_string();
        assert_eq!(parse(&text), s, "{b:x?} shown as {text:?}");
        assert!(
            !text.chars().any(|c| needs_escape(c).is_some()),
            "{text:?} still holds raw control or escape characters"
        );
        assert_eq!(text, shown(&s), "show and shown agree");
    }

    #[test]
    fn every_single_byte_round_trips() {
        for b in 0..=255u8 {
            round_trips(&[b]);
            round_trips(&[b'/', b, b'/']);
        }
        // A lone high byte is escaped, an ASCII one is itself.
        assert_eq!(decode(b"\xe9"), "\u{10ffe9}");
        assert_eq!(decode(b"a"), "a");
        assert_eq!(show(&decode(b"caf\xe9")).to_string(), "caf\\xe9");
    }

    #[test]
    fn random_byte_strings_round_trip_and_never_collide() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut seen = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let b = rng.bytes(24);
            round_trips(&b);
            let s = decode(&b).into_owned();
            if let Some(other) = seen.insert(s.clone(), b.clone()) {
                assert_eq!(other, b, "two byte strings decode to {s:?}");
            }
        }
    }

    #[test]
    fn valid_utf8_is_itself_except_the_reserved_range() {
        let s = "/usr/share/zoneinfo/América/São_Paulo 😀";
        assert!(matches!(decode(s.as_bytes()), Cow::Borrowed(x) if x == s));
        assert!(matches!(encode(s), Cow::Borrowed(_)));
        // A real U+10FFE9 (bytes F4 8F BF A9) is escaped byte by byte, so it
        // cannot be confused with the escaped byte E9.
        let real = "a\u{10ffe9}b";
        let d = decode(real.as_bytes());
        assert_eq!(d, "a\u{10fff4}\u{10ff8f}\u{10ffbf}\u{10ffa9}b");
        assert_ne!(d, decode(b"a\xe9b"));
        assert_eq!(encode(&d).as_ref(), real.as_bytes());
        assert_eq!(show(&d).to_string(), "a\\xf4\\x8f\\xbf\\xa9b");
        // Just below the reserved range is an ordinary character.
        let below = "\u{10ff7f}";
        assert_eq!(decode(below.as_bytes()), below);
        // A valid sequence split by an invalid byte is escaped exactly.
        assert_eq!(encode(&decode(b"\xc3\xc3\xa9")).as_ref(), b"\xc3\xc3\xa9");
        assert_eq!(decode(b"\xc3\xc3\xa9"), "\u{10ffc3}\u{e9}");
    }

    #[test]
    fn showing_is_readable_and_unambiguous() {
        let cases: &[(&[u8], &str)] = &[
            (b"/srv/www/caf\xe9.html", "/srv/www/caf\\xe9.html"),
            (b"/srv/www/caf\xc3\xa9.html", "/srv/www/café.html"),
            (b"/a\nb\tc\x7f\x1b[0m\r", "/a\nb\tc\\x7f\\x1b[0m\\x0d"),
            // A literal backslash shows as itself unless it reads as \xNN.
            (b"C:\\Users\\x", "C:\\Users\\x"),
            (b"/lit\\xe9", "/lit\\x5cxe9"),
            (b"/lit\\xE9", "/lit\\x5cxE9"),
            (b"/lit\\xz9", "/lit\\xz9"),
            (b"/end\\", "/end\\"),
            // A backslash before an escaped byte stays itself.
            (b"/a\\\xe9", "/a\\\\xe9"),
        ];
        for (bytes, want) in cases {
            let s = decode(bytes);
            assert_eq!(show(&s).to_string(), *want, "{bytes:x?}");
            assert_eq!(encode(&parse(want)).as_ref(), *bytes, "{want}");
        }
        assert_eq!(format!("{:?}", show("/x\u{10ffe9}")), "\"/x\\xe9\"");
        assert!(matches!(shown("/plain/path"), Cow::Borrowed(_)));
    }

    #[test]
    fn parsing_user_text() {
        // Either case of hex digits; the bytes are decoded, so an escaped
        // valid UTF-8 sequence is the character it spells.
        assert_eq!(parse("/srv/caf\\xE9"), decode(b"/srv/caf\xe9"));
        assert_eq!(parse("/srv/caf\\xc3\\xa9"), "/srv/café");
        assert_eq!(parse("/plain"), "/plain");
        // Not an escape: left as typed.
        assert_eq!(parse("\\x"), "\\x");
        assert_eq!(parse("\\xg0"), "\\xg0");
        assert_eq!(parse("a\\x4"), "a\\x4");
        assert_eq!(parse("\\x5cx41"), "\\x41");
        // A reserved-range character typed as is stands for its own bytes.
        assert_eq!(
            encode(&parse("\u{10ffe9}")).as_ref(),
            "\u{10ffe9}".as_bytes()
        );
    }
}
