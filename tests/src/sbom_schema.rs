//! Validation of CycloneDX documents against the official 1.5 JSON schema,
//! vendored in tests/fixtures/sbom-schemas (from the PyPI package
//! cyclonedx-python-lib, Apache-2.0); nothing is fetched. SPDX documents
//! are validated by the SPDX project's own validator, `pyspdxtools` of the
//! PyPI package spdx-tools, which `cargo xtask setup` installs (the SPDX
//! 2.3 JSON schema ships in no registry package).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sbom-schemas/cyclonedx-1.5")
}

fn read(p: &Path) -> Result<Value> {
    serde_json::from_slice(&std::fs::read(p).with_context(|| p.display().to_string())?)
        .with_context(|| p.display().to_string())
}

struct Local(HashMap<String, Value>);

impl jsonschema::Retrieve for Local {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .get(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("not vendored: {uri}").into())
    }
}

/// Fails with every schema error of `doc`.
pub fn validate_cyclonedx(doc: &Value) -> Result<()> {
    let mut refs = HashMap::new();
    for name in ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"] {
        refs.insert(
            format!("http://cyclonedx.org/schema/{name}"),
            read(&dir().join(name))?,
        );
    }
    let schema = read(&dir().join("bom-1.5.SNAPSHOT.schema.json"))?;
    let v = jsonschema::options()
        .with_retriever(Local(refs))
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("the CycloneDX schema does not compile: {e}"))?;
    let errors: Vec<String> = v
        .iter_errors(doc)
        .take(20)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if !errors.is_empty() {
        bail!("not valid CycloneDX 1.5:\n{}", errors.join("\n"));
    }
    Ok(())
}

/// Where `cargo xtask setup` installs the SPDX validator.
const PYSPDXTOOLS: &str = "/var/cache/slimd-tests/spdx-tools/bin/pyspdxtools";

/// Fails with the SPDX validator's findings when the SPDX 2.3 document at
/// `path` is not valid.
pub fn validate_spdx(path: &Path) -> Result<()> {
    if !Path::new(PYSPDXTOOLS).exists() {
        bail!("{PYSPDXTOOLS} is missing: run `cargo xtask setup` (it installs spdx-tools)");
    }
    let out = crate::run_with_timeout(
        std::process::Command::new(PYSPDXTOOLS)
            .arg("--infile")
            .arg(path)
            .args(["--version", "SPDX-2.3"]),
        std::time::Duration::from_secs(300),
    )?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
        let shown: String = text.chars().take(4000).collect();
        bail!("{} is not valid SPDX 2.3:\n{shown}", path.display());
    }
    Ok(())
}
