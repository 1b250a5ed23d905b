//! CycloneDX 1.5 JSON: the image as `metadata.component` (type
//! `container`), each package a component (type `library`, or
//! `operating-system` for none) with its purl, licenses (an SPDX id when
//! the name is one, else the name), and its files as nested `file`
//! components with SHA-256 hashes. For a slim image the kept/total file
//! counts are the properties `slimd:files:kept` and `slimd:files:total`.

use serde_json::{Value, json};

use super::{Sbom, digest_hex};
use crate::inventory::license::spdx_id;

/// The CycloneDX document.
pub fn document(s: &Sbom<'_>) -> Value {
    let components: Vec<Value> = s
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pk = p.package;
            let licenses: Vec<Value> = pk
                .licenses
                .iter()
                .map(|l| match spdx_id(l) {
                    Some(id) => json!({"license": {"id": id}}),
                    None => json!({"license": {"name": l}}),
                })
                .collect();
            let files: Vec<Value> = p
                .files
                .iter()
                .map(|f| {
                    let mut c = json!({"type": "file", "name": f.path});
                    if let Some(h) = &f.sha256 {
                        c["hashes"] = json!([{"alg": "SHA-256", "content": h}]);
                    }
                    c
                })
                .collect();
            let mut c = json!({
                "type": "library",
                "bom-ref": format!("pkg-{i}"),
                "name": pk.name,
                "purl": pk.purl,
            });
            if !pk.version.is_empty() {
                c["version"] = json!(pk.version);
            }
            if !licenses.is_empty() {
                c["licenses"] = json!(licenses);
            }
            let mut props = vec![json!({"name": "slimd:ecosystem", "value": pk.ecosystem.name()})];
            if !pk.location.is_empty() {
                props.push(json!({"name": "slimd:location", "value": pk.location}));
            }
            if s.slim_of.is_some() {
                props.push(json!({"name": "slimd:files:kept", "value": p.files.len().to_string()}));
                props
                    .push(json!({"name": "slimd:files:total", "value": p.total_files.to_string()}));
            }
            c["properties"] = json!(props);
            if !files.is_empty() {
                c["components"] = json!(files);
            }
            c
        })
        .collect();
    let h = digest_hex(&[&s.image, &s.image_id, &s.created]);
    let serial = format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    );
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": s.image,
        "version": s.image_id,
    });
    if let Some(o) = &s.slim_of {
        image["description"] = json!(format!("slim image made by slimd from {o}"));
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": s.created,
            "tools": {"components": [{
                "type": "application",
                "name": "slimd",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": image,
        },
        "components": components,
        "dependencies": [{
            "ref": "image",
            "dependsOn": (0..s.packages.len()).map(|i| format!("pkg-{i}")).collect::<Vec<_>>(),
        }],
    })
}
