//! Other scanners beside ours: `trivy`, `grype` or `osv-scanner` run on
//! both images' archives when on PATH, and the advisory ids each reports,
//! for a multi-scanner view of the delta. A scanner that is not installed
//! is an error that says so; nothing is faked.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The scanners slimd knows how to run and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scanner {
    Trivy,
    Grype,
    OsvScanner,
}

/// Why a scanner gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("{0} is not installed (not on PATH)")]
    NotInstalled(&'static str),
    #[error("running {0}: {1}")]
    Run(&'static str, #[source] std::io::Error),
    #[error("{0} failed ({1}): {2}")]
    Failed(&'static str, String, String),
    #[error("{0} printed no JSON: {1}")]
    Output(&'static str, #[source] serde_json::Error),
}

/// One scanner's view of both images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannerDelta {
    pub scanner: Scanner,
    pub original: BTreeSet<String>,
    pub slim: BTreeSet<String>,
    /// Reported for the original, not for the slim image.
    pub removed: BTreeSet<String>,
}

impl Scanner {
    pub fn program(self) -> &'static str {
        match self {
            Scanner::Trivy => "trivy",
            Scanner::Grype => "grype",
            Scanner::OsvScanner => "osv-scanner",
        }
    }

    /// Whether the program is on PATH.
    pub fn installed(self) -> bool {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|d| d.join(self.program()).is_file())
        })
    }

    /// Scans one `docker save` archive; the advisory ids it reports.
    pub fn scan(self, archive: &Path) -> Result<BTreeSet<String>, ScannerError> {
        if !self.installed() {
            return Err(ScannerError::NotInstalled(self.program()));
        }
        let mut cmd = Command::new(self.program());
        match self {
            Scanner::Trivy => cmd
                .args(["image", "--quiet", "--format", "json", "--input"])
                .arg(archive),
            Scanner::Grype => cmd
                .arg(format!("docker-archive:{}", archive.display()))
                .args(["-o", "json"]),
            Scanner::OsvScanner => cmd
                .args(["scan", "image", "--format", "json", "--archive"])
                .arg(archive),
        };
        let out = cmd
            .output()
            .map_err(|e| ScannerError::Run(self.program(), e))?;
        // osv-scanner exits 1 when it found something.
        let ok =
            out.status.success() || (self == Scanner::OsvScanner && out.status.code() == Some(1));
        if !ok {
            return Err(ScannerError::Failed(
                self.program(),
                out.status.to_string(),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| ScannerError::Output(self.program(), e))?;
        Ok(self.ids(&v))
    }

    /// The advisory ids in a scanner's JSON report.
    pub fn ids(self, v: &Value) -> BTreeSet<String> {
        let arr = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let mut out = BTreeSet::new();
        match self {
            Scanner::Trivy => {
                for r in arr(&v["Results"]) {
                    for x in arr(&r["Vulnerabilities"]) {
                        if let Some(id) = x["VulnerabilityID"].as_str() {
                            out.insert(id.to_string());
                        }
                    }
                }
            }
            Scanner::Grype => {
                for m in arr(&v["matches"]) {
                    if let Some(id) = m["vulnerability"]["id"].as_str() {
                        out.insert(id.to_string());
                    }
                }
            }
            Scanner::OsvScanner => {
                for r in arr(&v["results"]) {
                    for p in arr(&r["packages"]) {
                        for x in arr(&p["vulnerabilities"]) {
                            if let Some(id) = x["id"].as_str() {
                                out.insert(id.to_string());
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Scans both archives.
    pub fn delta(self, original: &Path, slim: &Path) -> Result<ScannerDelta, ScannerError> {
        let o = self.scan(original)?;
        let s = self.scan(slim)?;
        Ok(ScannerDelta {
            scanner: self,
            removed: o.difference(&s).cloned().collect(),
            original: o,
            slim: s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_scanners_report_format_is_read() {
        let trivy = json!({"Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-1"}, {"VulnerabilityID": "CVE-2"}]}, {"Target": "x"}]});
        assert_eq!(
            Scanner::Trivy.ids(&trivy).into_iter().collect::<Vec<_>>(),
            ["CVE-1", "CVE-2"]
        );
        let grype = json!({"matches": [{"vulnerability": {"id": "CVE-3"}}, {"vulnerability": {"id": "CVE-3"}}]});
        assert_eq!(Scanner::Grype.ids(&grype).len(), 1);
        let osv = json!({"results": [{"packages": [{"vulnerabilities": [{"id": "DSA-1"}, {"id": "GHSA-x"}]}]}]});
        assert_eq!(Scanner::OsvScanner.ids(&osv).len(), 2);
    }

    #[test]
    fn a_missing_scanner_says_so() {
        // This machine has none of them; the test names what it checked.
        for s in [Scanner::Trivy, Scanner::Grype, Scanner::OsvScanner] {
            if s.installed() {
                println!(
                    "{} is installed: not checking the missing case",
                    s.program()
                );
                continue;
            }
            let e = s.scan(Path::new("/nonexistent.tar")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{} is not installed (not on PATH)", s.program())
            );
        }
    }
}
