//! The Compose file as it travels from the client to the daemon: its text,
//! the `.env` beside it, the `env_file:` files it names (read by the client,
//! relative paths resolved against the file's directory), and the values of
//! the caller's environment variables it refers to (only those: the
//! client's whole environment is never sent).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    error::ComposeError,
    interpolate::{Variables, referenced_names},
    spec,
};

/// A Compose file and what it refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComposeBundle {
    /// The file's path as the client saw it (for messages).
    pub file: String,
    /// Its directory: relative paths resolve against it.
    pub project_dir: String,
    pub text: String,
    /// The `.env` file in `project_dir`, when there is one.
    pub dot_env: Option<String>,
    /// `env_file:` entries as written in the file -> their contents.
    pub env_files: BTreeMap<String, String>,
    /// Caller's environment variables the file refers to.
    pub environment: Variables,
}

impl ComposeBundle {
    /// Reads `path`, its `.env`, and the env files its services name;
    /// `env` looks up the caller's environment.
    pub fn read(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ComposeBundle, ComposeError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| ComposeError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let abs = std::path::absolute(path).map_err(|source| ComposeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        let text = read(&abs)?;
        let dot_env_path = dir.join(".env");
        let dot_env = dot_env_path
            .is_file()
            .then(|| read(&dot_env_path))
            .transpose()?;
        let mut names = referenced_names(&text);
        if let Some(d) = &dot_env {
            names.extend(referenced_names(d));
        }
        let environment = names
            .into_iter()
            .filter_map(|n| env(&n).map(|v| (n, v)))
            .collect();
        let mut bundle = ComposeBundle {
            file: abs.display().to_string(),
            project_dir: dir.display().to_string(),
            text,
            dot_env,
            env_files: BTreeMap::new(),
            environment,
        };
        for (_service, file, required) in spec::env_file_refs(&bundle)? {
            let p = resolve(&dir, &file);
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    bundle.env_files.insert(file, t);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
                Err(source) => return Err(ComposeError::Read { path: p, source }),
            }
        }
        Ok(bundle)
    }

    /// The variables the file sees: `.env`, overridden by the caller's
    /// environment (as Compose does).
    pub fn variables(&self) -> Result<Variables, ComposeError> {
        let mut vars = Variables::new();
        if let Some(text) = &self.dot_env {
            vars.extend(parse_env_file(text, ".env")?);
        }
        vars.extend(self.environment.clone());
        Ok(vars)
    }
}

/// `KEY=VALUE` lines of an env file, as Compose reads them: blank lines
/// and `#` comments skipped, an optional `export `, values unquoted (the
/// rest of the line, spaces included, up to a ` #` comment), in double
/// quotes (`\n`, `\t`, `\"`, `\\` escapes) or in single quotes (literal).
/// (dotenv parsers refuse unquoted spaces, which Compose accepts.)
pub fn parse_env_file(text: &str, name: &str) -> Result<Vec<(String, String)>, ComposeError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = |why: &str| ComposeError::EnvFile {
            file: name.to_string(),
            line: i + 1,
            why: why.to_string(),
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad("the variable name is empty or has spaces"));
        }
        let value = value.trim();
        let value = if let Some(v) = value.strip_prefix('"') {
            let v = v
                .strip_suffix('"')
                .ok_or_else(|| bad("unterminated double quote"))?;
            let mut s = String::with_capacity(v.len());
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    s.push(c);
                    continue;
                }
                match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(o) => s.push(o),
                    None => s.push('\\'),
                }
            }
            s
        } else if let Some(v) = value.strip_prefix('\'') {
            v.strip_suffix('\'')
                .ok_or_else(|| bad("unterminated single quote"))?
                .to_string()
        } else {
            match value.find(" #") {
                Some(c) => value[..c].trim_end().to_string(),
                None => value.to_string(),
            }
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// `p` against `dir` unless absolute.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_its_env_and_env_files_relative_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("app");
        std::fs::create_dir_all(sub.join("conf")).unwrap();
        std::fs::write(
            sub.join("compose.yml"),
            "services:\n  web:\n    image: web:${TAG}\n    env_file: conf/web.env\n  db:\n    image: db:${DB_TAG:-15}\n    env_file:\n      - path: ./absent.env\n        required: false\n",
        )
        .unwrap();
        std::fs::write(sub.join(".env"), "TAG=1.0\n").unwrap();
        std::fs::write(sub.join("conf/web.env"), "GREETING=hi\n").unwrap();
        let env = |n: &str| (n == "DB_TAG").then(|| "16".to_string());
        let b = ComposeBundle::read(&sub.join("compose.yml"), env).unwrap();
        assert_eq!(b.dot_env.as_deref(), Some("TAG=1.0\n"));
        assert_eq!(
            b.env_files.get("conf/web.env").map(String::as_str),
            Some("GREETING=hi\n")
        );
        assert_eq!(
            b.env_files.len(),
            1,
            "an optional missing env file is skipped"
        );
        assert_eq!(b.environment.get("DB_TAG").map(String::as_str), Some("16"));
        assert!(
            !b.environment.contains_key("PATH"),
            "only referenced variables travel"
        );
        let vars = b.variables().unwrap();
        assert_eq!(vars.get("TAG").map(String::as_str), Some("1.0"));
    }

    #[test]
    fn env_files_are_read_as_compose_reads_them() {
        let text = "# comment\n\nexport A=1\nGREETING=hello from web.env\nQ=\"a \\\"b\\\"\\nc\"\nS='$x y'\nC=v # note\nE=\n";
        let v = parse_env_file(text, "web.env").unwrap();
        assert_eq!(
            v,
            [
                ("A".into(), "1".into()),
                ("GREETING".into(), "hello from web.env".into()),
                ("Q".into(), "a \"b\"\nc".into()),
                ("S".into(), "$x y".into()),
                ("C".into(), "v".into()),
                ("E".into(), String::new()),
            ]
        );
        let e = parse_env_file("A=1\nnot a pair\n", "x.env").unwrap_err();
        assert!(e.to_string().contains("x.env:2"), "{e}");
        assert!(parse_env_file("A=\"open\n", "x.env").is_err());
    }

    #[test]
    fn a_missing_required_env_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("compose.yml");
        std::fs::write(
            &f,
            "services:\n  web:\n    image: web\n    env_file: nope.env\n",
        )
        .unwrap();
        let e = ComposeBundle::read(&f, |_| None).unwrap_err();
        assert!(e.to_string().contains("nope.env"), "{e}");
    }
}
