//! Licenses where the metadata has them: Debian's machine-readable
//! `copyright` files (`License:` fields, DEP-5), a Python distribution's
//! `License-Expression`/`License`, a Node package's `license`. Names are
//! kept as the metadata spells them ("GPL-2+", "BSD-3-clause"); the SBOM
//! writers decide what is an SPDX identifier.

use std::collections::BTreeSet;

use crate::image::ImageFs;

const MAX: u64 = 4 << 20;

/// Licenses named in `/usr/share/doc/<pkg>/copyright` (DEP-5 only; a
/// free-form file names none).
pub fn debian(fs: &ImageFs, package: &str) -> Vec<String> {
    let Ok(text) = fs.read(&format!("/usr/share/doc/{package}/copyright"), MAX) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text);
    if !text
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("Format:"))
    {
        return Vec::new();
    }
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("License:") {
            let v = v.trim();
            if !v.is_empty() {
                out.insert(v.to_string());
            }
        }
    }
    out.into_iter().collect()
}

/// `License-Expression:`, else a one-line `License:`, of a METADATA or
/// PKG-INFO file.
pub fn python(fs: &ImageFs, metadata: &[String]) -> Vec<String> {
    for m in metadata {
        if !(m.ends_with("/METADATA") || m.ends_with("/PKG-INFO")) {
            continue;
        }
        let Ok(text) = fs.read(m, MAX) else { continue };
        let text = String::from_utf8_lossy(&text);
        let head = text.split("\n\n").next().unwrap_or("");
        let field = |k: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && v != "UNKNOWN" && v.len() < 100)
        };
        if let Some(v) = field("License-Expression:").or_else(|| field("License:")) {
            return vec![v];
        }
    }
    Vec::new()
}

/// `license` of a package.json (a string, or the old `{ "type": ... }`).
pub fn node(fs: &ImageFs, metadata: &[String]) -> Vec<String> {
    for m in metadata {
        if !m.ends_with("/package.json") {
            continue;
        }
        let Ok(bytes) = fs.read(m, MAX) else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let l = &v["license"];
        if let Some(s) = l.as_str().or_else(|| l["type"].as_str()) {
            return vec![s.to_string()];
        }
    }
    Vec::new()
}

/// The SPDX identifier for a license name as Debian and package metadata
/// commonly spell it, when it is one (`GPL-2+` -> `GPL-2.0-or-later`).
pub fn spdx_id(name: &str) -> Option<String> {
    let n = name.trim();
    let map: &[(&str, &str)] = &[
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("GPL-3", "GPL-3.0-only"),
        ("GPL-3+", "GPL-3.0-or-later"),
        ("GPL-3.0+", "GPL-3.0-or-later"),
        ("LGPL-2", "LGPL-2.0-only"),
        ("LGPL-2+", "LGPL-2.0-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("LGPL-3", "LGPL-3.0-only"),
        ("LGPL-3+", "LGPL-3.0-or-later"),
        ("BSD-2-clause", "BSD-2-Clause"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("BSD-4-clause", "BSD-4-Clause"),
        ("Expat", "MIT"),
        ("public-domain", ""),
        ("Artistic", "Artistic-1.0-Perl"),
        ("Apache-2", "Apache-2.0"),
        ("MPL-2", "MPL-2.0"),
        ("PSF-2", "PSF-2.0"),
        ("Zlib", "Zlib"),
        ("ISC", "ISC"),
        ("MIT", "MIT"),
        ("Apache-2.0", "Apache-2.0"),
        ("BSD-3-Clause", "BSD-3-Clause"),
        ("BSD-2-Clause", "BSD-2-Clause"),
        ("0BSD", "0BSD"),
        ("CC0-1.0", "CC0-1.0"),
        ("MPL-2.0", "MPL-2.0"),
        ("Unlicense", "Unlicense"),
        ("GPL-2.0-only", "GPL-2.0-only"),
        ("GPL-2.0-or-later", "GPL-2.0-or-later"),
        ("GPL-3.0-only", "GPL-3.0-only"),
        ("GPL-3.0-or-later", "GPL-3.0-or-later"),
        ("LGPL-2.1-or-later", "LGPL-2.1-or-later"),
        ("PSF-2.0", "PSF-2.0"),
        ("Python-2.0", "Python-2.0"),
    ];
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(n))
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_map_to_spdx_ids() {
        assert_eq!(spdx_id("GPL-2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(spdx_id("bsd-3-clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(spdx_id("Expat").as_deref(), Some("MIT"));
        assert_eq!(spdx_id("public-domain"), None);
        assert_eq!(spdx_id("GPL-2+ with OpenSSL exception"), None);
    }
}
