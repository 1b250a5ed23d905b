//! Version ordering per ecosystem, through the libraries made for each:
//! Debian's (epochs, `~`) with `debversion`, PEP 440 (pre, post and dev
//! releases, local versions) with `pep440_rs`, npm's semver (pre-releases)
//! with `semver`, and RubyGems' `Gem::Version` rules written here (no
//! maintained crate implements them). Versions that do not parse, and
//! ecosystems without a rule here (Alpine, Maven), compare as `None`:
//! never as strings.

use std::cmp::Ordering;
use std::str::FromStr;

use super::Ecosystem;

/// How two versions of one ecosystem order, or `None` when either does not
/// parse under the ecosystem's rules (or the ecosystem has none here).
pub fn compare(eco: Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    match eco {
        Ecosystem::Debian => {
            let a = debversion::Version::from_str(a).ok()?;
            let b = debversion::Version::from_str(b).ok()?;
            Some(a.cmp(&b))
        }
        Ecosystem::PyPI => {
            let a = pep440_rs::Version::from_str(a).ok()?;
            let b = pep440_rs::Version::from_str(b).ok()?;
            Some(a.cmp(&b))
        }
        Ecosystem::Npm => {
            let a = semver::Version::parse(a.trim_start_matches('v')).ok()?;
            let b = semver::Version::parse(b.trim_start_matches('v')).ok()?;
            Some(a.cmp_precedence(&b))
        }
        Ecosystem::RubyGems => gem_compare(a, b),
        Ecosystem::Alpine | Ecosystem::Maven => None,
    }
}

/// One segment of a gem version: a number or a string (a pre-release).
#[derive(Debug, PartialEq, Eq)]
enum GemSegment {
    Num(u64),
    Str(String),
}

/// `Gem::Version`'s segments: digits and letter runs split apart
/// ("1.0.a10" -> 1, 0, "a", 10), and with trailing zeros of the release
/// part dropped, as `Gem::Version#canonical_segments` does.
fn gem_segments(v: &str) -> Option<Vec<GemSegment>> {
    let v = v.trim();
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return None;
    }
    // "1.0-pre" is "1.0.pre.pre" in RubyGems: a dash opens a pre-release.
    let v = v.replace('-', ".pre.");
    let mut out = Vec::new();
    for part in v.split('.') {
        let mut rest = part;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                out.push(GemSegment::Num(rest[..digits].parse().ok()?));
                rest = &rest[digits..];
            } else {
                let letters = rest.chars().take_while(|c| !c.is_ascii_digit()).count();
                out.push(GemSegment::Str(rest[..letters].to_string()));
                rest = &rest[letters..];
            }
        }
    }
    // Drop zeros that end the release part (before the first string) or
    // the whole version.
    let first_str = out
        .iter()
        .position(|s| matches!(s, GemSegment::Str(_)))
        .unwrap_or(out.len());
    let (release, pre) = out.split_at(first_str);
    let mut release: Vec<GemSegment> = release.iter().map(clone_seg).collect();
    while release.len() > 1 && release.last() == Some(&GemSegment::Num(0)) {
        release.pop();
    }
    let mut pre: Vec<GemSegment> = pre.iter().map(clone_seg).collect();
    while pre.last() == Some(&GemSegment::Num(0)) {
        pre.pop();
    }
    release.extend(pre);
    Some(release)
}

fn clone_seg(s: &GemSegment) -> GemSegment {
    match s {
        GemSegment::Num(n) => GemSegment::Num(*n),
        GemSegment::Str(s) => GemSegment::Str(s.clone()),
    }
}

/// `Gem::Version#<=>`: segment by segment; a missing segment is 0; a
/// string is lower than any number (so "1.0.a" < "1.0").
fn gem_compare(a: &str, b: &str) -> Option<Ordering> {
    let a = gem_segments(a)?;
    let b = gem_segments(b)?;
    let zero = GemSegment::Num(0);
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).unwrap_or(&zero);
        let y = b.get(i).unwrap_or(&zero);
        let o = match (x, y) {
            (GemSegment::Num(x), GemSegment::Num(y)) => x.cmp(y),
            (GemSegment::Str(_), GemSegment::Num(_)) => Ordering::Less,
            (GemSegment::Num(_), GemSegment::Str(_)) => Ordering::Greater,
            (GemSegment::Str(x), GemSegment::Str(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn check(eco: Ecosystem, ordered: &[&str]) {
        for w in ordered.windows(2) {
            assert_eq!(
                compare(eco, w[0], w[1]),
                Some(Less),
                "{eco}: {} < {}",
                w[0],
                w[1]
            );
            assert_eq!(
                compare(eco, w[1], w[0]),
                Some(Greater),
                "{eco}: {} > {}",
                w[1],
                w[0]
            );
        }
    }

    /// Debian Policy 5.6.12: epoch first; `~` sorts before everything,
    /// even the end of the string; letters before non-letters.
    #[test]
    fn debian_ordering() {
        check(
            Ecosystem::Debian,
            &[
                "1.0~~",
                "1.0~~a",
                "1.0~",
                "1.0",
                "1.0-1",
                "1.0-1+deb12u1",
                "1.0a",
                "1.0+b1",
                "1.2",
                "1.10",
                "1:0.9",
                "2:0.1",
            ],
        );
        assert_eq!(compare(Ecosystem::Debian, "0:1.0", "1.0"), Some(Equal));
    }

    /// PEP 440: dev < pre (a < b < rc) < release < post; local sorts after.
    #[test]
    fn pep440_ordering() {
        check(
            Ecosystem::PyPI,
            &[
                "1.0.dev1",
                "1.0a1.dev1",
                "1.0a1",
                "1.0b2",
                "1.0rc1",
                "1.0",
                "1.0+local",
                "1.0.post1.dev1",
                "1.0.post1",
                "1.1",
                "1!0.1",
            ],
        );
        assert_eq!(compare(Ecosystem::PyPI, "1.0", "1.0.0"), Some(Equal));
        assert_eq!(compare(Ecosystem::PyPI, "1.0RC1", "1.0rc1"), Some(Equal));
    }

    /// semver 2.0.0 §11: pre-releases before the release; identifiers
    /// compared numerically when numeric, numbers before strings.
    #[test]
    fn semver_ordering() {
        check(
            Ecosystem::Npm,
            &[
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.2.0",
                "1.10.0",
            ],
        );
        assert_eq!(compare(Ecosystem::Npm, "1.0.0+build", "1.0.0"), Some(Equal));
    }

    /// Gem::Version: letters make a pre-release; trailing zeros do not count.
    #[test]
    fn rubygems_ordering() {
        check(
            Ecosystem::RubyGems,
            &[
                "1.0.a", "1.0.a10", "1.0.b1", "1.0.rc1", "1.0", "1.0.1", "1.1", "1.10",
            ],
        );
        assert_eq!(compare(Ecosystem::RubyGems, "1.0", "1.0.0"), Some(Equal));
        assert_eq!(compare(Ecosystem::RubyGems, "1.0-pre", "1.0"), Some(Less));
    }

    #[test]
    fn unparsable_or_unknown_is_none() {
        assert_eq!(compare(Ecosystem::Npm, "one", "1.0.0"), None);
        assert_eq!(compare(Ecosystem::Maven, "1.0", "2.0"), None);
        assert_eq!(compare(Ecosystem::Debian, "", "1"), None);
    }
}
