//! Package URLs (purl, <https://github.com/package-url/purl-spec>) for
//! inventory packages: `pkg:deb/debian/curl@7.88.1-10?arch=amd64&distro=debian-12`,
//! `pkg:pypi/flask@3.0.3`, `pkg:npm/%40scope/name@1.0.0`, `pkg:gem/rack@2.2.8`,
//! `pkg:maven/...`, `pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Distro, Ecosystem, InventoryPackage};

/// What purl keeps unescaped in a segment: letters, digits and `.-_~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The purl of a package.
pub fn purl(p: &InventoryPackage, distro: Option<&Distro>) -> String {
    let version = if p.version.is_empty() {
        String::new()
    } else {
        format!("@{}", enc(&p.version))
    };
    let mut qualifiers: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &p.arch {
        qualifiers.push(("arch", a.clone()));
    }
    let head = match p.ecosystem {
        Ecosystem::Debian | Ecosystem::Alpine => {
            let (kind, default_ns) = if p.ecosystem == Ecosystem::Debian {
                ("deb", "debian")
            } else {
                ("apk", "alpine")
            };
            let ns = distro
                .map(|d| d.id.to_ascii_lowercase())
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| default_ns.to_string());
            if let Some(d) = distro
                && !d.version.is_empty()
            {
                qualifiers.push(("distro", format!("{}-{}", d.id, d.version)));
            }
            format!("pkg:{kind}/{}/{}", enc(&ns), enc(&p.name))
        }
        Ecosystem::PyPI => {
            // PEP 503 normalised, as the purl spec asks for pypi.
            let name = crate::resolve::packages::name_key(
                crate::resolve::options::Ecosystem::Python,
                &p.name,
            );
            format!("pkg:pypi/{}", enc(&name))
        }
        Ecosystem::Npm => match p.name.strip_prefix('@').and_then(|n| n.split_once('/')) {
            Some((scope, name)) => format!("pkg:npm/{}/{}", enc(&format!("@{scope}")), enc(name)),
            None => format!("pkg:npm/{}", enc(&p.name)),
        },
        Ecosystem::RubyGems => format!("pkg:gem/{}", enc(&p.name)),
        Ecosystem::Maven => {
            // A jar known by its file name: no group id is recorded.
            let name = p.name.strip_suffix(".jar").unwrap_or(&p.name);
            format!("pkg:maven/{}", enc(name))
        }
    };
    qualifiers.sort();
    let q = qualifiers
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    if q.is_empty() {
        format!("{head}{version}")
    } else {
        format!("{head}{version}?{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(eco: Ecosystem, name: &str, version: &str, arch: Option<&str>) -> InventoryPackage {
        InventoryPackage {
            ecosystem: eco,
            name: name.into(),
            version: version.into(),
            arch: arch.map(Into::into),
            source: None,
            location: String::new(),
            purl: String::new(),
            files: Vec::new(),
            listed_files: 0,
            licenses: Vec::new(),
        }
    }

    #[test]
    fn purls_of_each_ecosystem() {
        let deb12 = Distro {
            id: "debian".into(),
            version: "12".into(),
        };
        assert_eq!(
            purl(
                &pkg(Ecosystem::Debian, "libc6", "2.36-9+deb12u4", Some("amd64")),
                Some(&deb12)
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl(&pkg(Ecosystem::PyPI, "Flask_Cors", "4.0", None), None),
            "pkg:pypi/flask-cors@4.0"
        );
        assert_eq!(
            purl(&pkg(Ecosystem::Npm, "@types/node", "20.1.0", None), None),
            "pkg:npm/%40types/node@20.1.0"
        );
        assert_eq!(
            purl(&pkg(Ecosystem::RubyGems, "rack", "2.2.8", None), None),
            "pkg:gem/rack@2.2.8"
        );
        assert_eq!(
            purl(&pkg(Ecosystem::Debian, "x", "1:2.0", None), None),
            "pkg:deb/debian/x@1%3A2.0"
        );
    }
}
