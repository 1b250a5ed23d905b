//! SBOMs of synthetic images: contents, kept/total counts of a slim image,
//! and every CycloneDX document validated against the official 1.5 schema
//! (vendored from the PyPI package cyclonedx-python-lib, see
//! tests/fixtures/sbom-schemas).

use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::image::tests::{LayerBuilder, image_from};

const STATUS: &str = "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10+deb12u5\nSource: curl\n\n\
Package: libgone\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n";

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
Files: *\nCopyright: someone\nLicense: curl\n\nFiles: lib/*\nLicense: BSD-3-clause\n";

fn original(dir: &std::path::Path) -> crate::image::Image {
    let l = LayerBuilder::new()
        .dir("var/lib/dpkg/info", 0o755)
        .file("var/lib/dpkg/status", STATUS.as_bytes())
        .file(
            "var/lib/dpkg/info/curl.list",
            b"/.\n/usr\n/usr/bin\n/usr/bin/curl\n/usr/share/doc/curl/copyright\n",
        )
        .file("var/lib/dpkg/info/libgone.list", b"/usr/lib/libgone.so.1\n")
        .exe("usr/bin/curl", b"curl binary")
        .file("usr/share/doc/curl/copyright", COPYRIGHT.as_bytes())
        .file("usr/lib/libgone.so.1", b"gone")
        .file("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n")
        .dir("usr/lib/python3/dist-packages/six-1.16.0.dist-info", 0o755)
        .file(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n",
        )
        .file(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD",
            b"six.py,,\nsix-1.16.0.dist-info/METADATA,,\n",
        )
        .file("usr/lib/python3/dist-packages/six.py", b"# six\n")
        .build();
    image_from(vec![l], dir).unwrap()
}

/// The slim image: curl's binary only.
fn slim(dir: &std::path::Path) -> crate::image::Image {
    let l = LayerBuilder::new()
        .exe("usr/bin/curl", b"curl binary")
        .build();
    image_from(vec![l], dir).unwrap()
}

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sbom-schemas/cyclonedx-1.5")
}

fn read_json(p: PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The schemas the CycloneDX schema references, from the vendored files
/// (nothing is fetched).
struct LocalSchemas(std::collections::HashMap<String, Value>);

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .get(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("not vendored: {uri}").into())
    }
}

/// Validates a CycloneDX document against the 1.5 schema; panics with
/// every error.
pub(crate) fn assert_valid_cyclonedx(doc: &Value) {
    let dir = schemas();
    let bom = read_json(dir.join("bom-1.5.SNAPSHOT.schema.json"));
    let mut schemas = std::collections::HashMap::new();
    for name in ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"] {
        schemas.insert(
            format!("http://cyclonedx.org/schema/{name}"),
            read_json(dir.join(name)),
        );
    }
    let validator = jsonschema::options()
        .with_retriever(LocalSchemas(schemas))
        .build(&bom)
        .expect("the CycloneDX schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid CycloneDX 1.5:\n{}",
        errors.join("\n")
    );
}

#[test]
fn sbom_of_an_image_lists_packages_purls_licenses_and_files() {
    let t = tempfile::tempdir().unwrap();
    let img = original(t.path());
    let inv = Inventory::read(&img.fs);
    let s = Sbom::of_image("app:1", &img.config_digest, &img.fs, &inv);
    let names: Vec<&str> = s.packages.iter().map(|p| p.package.name.as_str()).collect();
    assert_eq!(names, ["curl", "libgone", "six"]);

    let cdx = s.render(SbomFormat::CycloneDxJson);
    assert_valid_cyclonedx(&cdx);
    let curl = &cdx["components"][0];
    assert_eq!(
        curl["purl"],
        "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        curl["licenses"],
        serde_json::json!([{"license": {"id": "BSD-3-Clause"}}, {"license": {"name": "curl"}}])
    );
    let files: Vec<&str> = curl["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["/usr/bin/curl", "/usr/share/doc/curl/copyright"]);
    assert_eq!(cdx["components"][2]["purl"], "pkg:pypi/six@1.16.0");
    assert_eq!(cdx["components"][2]["licenses"][0]["license"]["id"], "MIT");

    let spdx = s.render(SbomFormat::SpdxJson);
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let pk = &spdx["packages"][1];
    assert_eq!(pk["name"], "curl");
    assert_eq!(pk["externalRefs"][0]["referenceType"], "purl");
    // One license is not an SPDX id: no assertion, the names in a comment.
    assert_eq!(pk["licenseDeclared"], "NOASSERTION");
    assert_eq!(spdx["packages"][3]["licenseDeclared"], "MIT");
    let f = spdx["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileName"] == "./usr/bin/curl")
        .unwrap();
    assert_eq!(f["checksums"][0]["algorithm"], "SHA1");
    // sha1("curl binary")
    assert_eq!(
        f["checksums"][0]["checksumValue"].as_str().unwrap().len(),
        40
    );
}

#[test]
fn sbom_of_a_slim_image_keeps_packages_with_files_and_counts_them() {
    let t = tempfile::tempdir().unwrap();
    let img = original(&t.path().join("o"));
    let slim = slim(&t.path().join("s"));
    let inv = Inventory::read(&img.fs);
    let kept = |p: &str| slim.fs.get(p).is_some();
    let s = Sbom::of_slim(
        "app.slim:1",
        &slim.config_digest,
        "app:1",
        &img.fs,
        &inv,
        &kept,
    );
    let names: Vec<&str> = s.packages.iter().map(|p| p.package.name.as_str()).collect();
    assert_eq!(names, ["curl"], "libgone and six have no file left");
    assert_eq!(
        (s.packages[0].files.len(), s.packages[0].total_files),
        (1, 2)
    );
    let cdx = s.render(SbomFormat::CycloneDxJson);
    assert_valid_cyclonedx(&cdx);
    let props = &cdx["components"][0]["properties"];
    assert!(
        props
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"name": "slimd:files:kept", "value": "1"}))
    );
    assert!(
        props
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"name": "slimd:files:total", "value": "2"}))
    );
    let spdx = s.render(SbomFormat::SpdxJson);
    assert_eq!(spdx["packages"][1]["comment"], "1 of 2 files kept");
}

#[test]
fn the_schema_rejects_a_broken_document() {
    let t = tempfile::tempdir().unwrap();
    let img = original(t.path());
    let inv = Inventory::read(&img.fs);
    let mut cdx = Sbom::of_image("app:1", &img.config_digest, &img.fs, &inv)
        .render(SbomFormat::CycloneDxJson);
    cdx["components"][0]["type"] = "not-a-type".into();
    let r = std::panic::catch_unwind(|| assert_valid_cyclonedx(&cdx));
    assert!(r.is_err(), "a bad component type must fail validation");
}
