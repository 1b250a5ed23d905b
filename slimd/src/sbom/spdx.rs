//! SPDX 2.3 JSON: the image as the described `CONTAINER` package, which
//! `CONTAINS` each software package, which `CONTAINS` its files (SHA1 and
//! SHA256 checksums). Package URLs are `PACKAGE-MANAGER`/`purl` external
//! references; a license whose name maps to an SPDX identifier is the
//! declared license, others are left `NOASSERTION` and named in
//! `licenseComments`. For a slim image the kept/total file counts are in
//! each package's `comment`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Sbom, digest_hex};
use crate::inventory::license::spdx_id;

/// The SPDX document.
pub fn document(s: &Sbom<'_>) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": s.image,
        "versionInfo": s.image_id,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": match &s.slim_of {
            Some(o) => format!("slim image made by slimd from {o}"),
            None => "container image".to_string(),
        },
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    let mut files: BTreeMap<&str, (String, &super::SbomFile)> = BTreeMap::new();
    for (i, p) in s.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{i}");
        let pk = p.package;
        let ids: Vec<String> = pk.licenses.iter().filter_map(|l| spdx_id(l)).collect();
        let declared = if !ids.is_empty() && ids.len() == pk.licenses.len() {
            let mut ids = ids;
            ids.dedup();
            ids.join(" AND ")
        } else {
            "NOASSERTION".to_string()
        };
        let mut obj = json!({
            "SPDXID": id,
            "name": pk.name,
            "downloadLocation": "NOASSERTION",
            // A package that CONTAINS files must say its files were analysed.
            "filesAnalyzed": !p.files.is_empty(),
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": pk.purl,
            }],
        });
        if !pk.version.is_empty() {
            obj["versionInfo"] = json!(pk.version);
        }
        if let Some(src) = &pk.source {
            obj["sourceInfo"] = json!(format!("built from source package {src}"));
        }
        if !pk.licenses.is_empty() {
            obj["licenseComments"] = json!(format!(
                "as the metadata names them: {}",
                pk.licenses.join(", ")
            ));
        }
        if s.slim_of.is_some() {
            obj["comment"] = json!(format!("{} of {} files kept", p.files.len(), p.total_files));
        }
        packages.push(obj);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
        for f in &p.files {
            let n = files.len();
            let fid = files
                .entry(f.path.as_str())
                .or_insert_with(|| (format!("SPDXRef-File-{n}"), f))
                .0
                .clone();
            relationships.push(json!({
                "spdxElementId": id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": fid,
            }));
        }
    }
    let files: Vec<Value> = files
        .into_iter()
        .map(|(path, (id, f))| {
            let mut checksums = Vec::new();
            // SPDX 2.3 requires a SHA1; a symlink or other non-file gets the
            // SHA1 of no bytes, as tools do for empty content.
            checksums.push(json!({
                "algorithm": "SHA1",
                "checksumValue": f.sha1.clone().unwrap_or_else(|| "da39a3ee5e6b4b0d3255bfef95601890afd80709".into()),
            }));
            if let Some(s) = &f.sha256 {
                checksums.push(json!({"algorithm": "SHA256", "checksumValue": s}));
            }
            json!({
                "SPDXID": id,
                "fileName": format!(".{path}"),
                "checksums": checksums,
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
            })
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.image,
        "documentNamespace": format!(
            "https://slimd.invalid/spdx/{}",
            &digest_hex(&[&s.image, &s.image_id, &s.created])[..32]
        ),
        "creationInfo": {
            "created": s.created,
            "creators": [format!("Tool: slimd-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": ["SPDXRef-Image"],
        "packages": packages,
        "files": files,
        "relationships": relationships,
    })
}
