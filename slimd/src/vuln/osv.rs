//! OSV records (<https://ossf.github.io/osv-schema/>) and an offline
//! database of them: a directory of `*.json` records (searched
//! recursively), or the per-ecosystem `all.zip` files OSV publishes (one
//! record per member), or a directory holding such zips.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inventory::Ecosystem;

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an OSV record: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a readable zip: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{0}: no OSV records (a directory of *.json records or OSV's all.zip files)")]
    Empty(PathBuf),
}

/// One OSV record (the fields matching needs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeverityEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default)]
    pub package: Option<AffectedPackage>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AffectedPackage {
    pub ecosystem: String,
    pub name: String,
    #[serde(default)]
    pub purl: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event; exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// The ecosystem an OSV ecosystem string names ("Debian:12" is Debian).
pub fn ecosystem(osv: &str) -> Option<Ecosystem> {
    let base = osv.split(':').next().unwrap_or(osv);
    Some(match base {
        "Debian" => Ecosystem::Debian,
        "Alpine" => Ecosystem::Alpine,
        "PyPI" => Ecosystem::PyPI,
        "npm" => Ecosystem::Npm,
        "RubyGems" => Ecosystem::RubyGems,
        "Maven" => Ecosystem::Maven,
        _ => return None,
    })
}

/// Records indexed by (ecosystem, package name as matched).
#[derive(Debug, Default)]
pub struct Database {
    pub records: Vec<Record>,
    /// (ecosystem, name key) -> (record index, affected index).
    index: BTreeMap<(Ecosystem, String), Vec<(usize, usize)>>,
}

impl Database {
    /// Reads a directory or an `all.zip`.
    pub fn open(path: &Path) -> Result<Database, OsvError> {
        let mut db = Database::default();
        let meta = std::fs::metadata(path).map_err(|source| OsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            db.read_dir(path)?;
        } else {
            db.read_zip(path)?;
        }
        if db.records.is_empty() {
            return Err(OsvError::Empty(path.to_path_buf()));
        }
        Ok(db)
    }

    /// A database of records already in memory.
    pub fn from_records(records: Vec<Record>) -> Database {
        let mut db = Database::default();
        for r in records {
            db.push(r);
        }
        db
    }

    fn read_dir(&mut self, dir: &Path) -> Result<(), OsvError> {
        let io = |source| OsvError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                self.read_dir(&p)?;
            } else if p.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&p).map_err(|source| OsvError::Io {
                    path: p.clone(),
                    source,
                })?;
                self.push_bytes(&p.display().to_string(), &bytes)?;
            } else if p.extension().is_some_and(|e| e == "zip") {
                self.read_zip(&p)?;
            }
        }
        Ok(())
    }

    fn read_zip(&mut self, path: &Path) -> Result<(), OsvError> {
        let file = std::fs::File::open(path).map_err(|source| OsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let zerr = |source| OsvError::Zip {
            path: path.to_path_buf(),
            source,
        };
        let mut z = zip::ZipArchive::new(file).map_err(zerr)?;
        for i in 0..z.len() {
            let mut f = z.by_index(i).map_err(zerr)?;
            let member = f.name().map_err(zerr)?.into_owned();
            if !member.ends_with(".json") {
                continue;
            }
            let name = format!("{}:{member}", path.display());
            let mut bytes = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut bytes).map_err(|source| OsvError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            self.push_bytes(&name, &bytes)?;
        }
        Ok(())
    }

    fn push_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), OsvError> {
        let r: Record = serde_json::from_slice(bytes).map_err(|source| OsvError::Json {
            path: path.to_string(),
            source,
        })?;
        self.push(r);
        Ok(())
    }

    fn push(&mut self, r: Record) {
        let i = self.records.len();
        for (j, a) in r.affected.iter().enumerate() {
            let Some(p) = &a.package else { continue };
            let Some(eco) = ecosystem(&p.ecosystem) else {
                continue;
            };
            self.index
                .entry((eco, name_key(eco, &p.name)))
                .or_default()
                .push((i, j));
        }
        self.records.push(r);
    }

    /// The (record, affected entry) pairs that name a package.
    pub fn candidates(&self, eco: Ecosystem, name: &str) -> &[(usize, usize)] {
        self.index
            .get(&(eco, name_key(eco, name)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// How names are compared: PEP 503 for PyPI, exact elsewhere.
pub fn name_key(eco: Ecosystem, name: &str) -> String {
    match eco {
        Ecosystem::PyPI => {
            crate::resolve::packages::name_key(crate::resolve::options::Ecosystem::Python, name)
        }
        _ => name.to_string(),
    }
}
