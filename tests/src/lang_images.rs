//! Images for the granularity tests: a Flask app and an Express app, each
//! with a route no probe reaches that loads code lazily. Both build on the
//! Debian python base; their language packages are installed on the host
//! (containers cannot reach PyPI or npm) and cached under [`CACHE_DIR`].

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::{
    CACHE_DIR, Entry, PYTHON_BASE_TAG, Recipe, build_cached, checked, ensure_docker,
    ensure_python_base, fixtures_dir, lock, tree_entries,
};

/// The images with lazily loaded code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LangImage {
    /// Flask 3 on Debian's python3 (packages in
    /// `/usr/local/lib/python3.11/dist-packages`). Lazy: `/export/<title>`
    /// (the app's `exporter.py`, which imports python-slugify) and
    /// `/sandbox` (`jinja2.sandbox`). Port 5000.
    FlaskApp,
    /// Express 4 on Debian's nodejs (`/app/node_modules`). Lazy:
    /// `/width/<text>` (the app's `lib/width.js`, which requires
    /// string-width and its dependencies). Port 3000.
    NodeApp,
}

impl LangImage {
    pub const ALL: [LangImage; 2] = [LangImage::FlaskApp, LangImage::NodeApp];

    pub fn name(self) -> &'static str {
        match self {
            LangImage::FlaskApp => "flask-app",
            LangImage::NodeApp => "node-app",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            LangImage::FlaskApp => "slimd-test/flask-app:latest",
            LangImage::NodeApp => "slimd-test/node-app:latest",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            LangImage::FlaskApp => 5000,
            LangImage::NodeApp => 3000,
        }
    }

    /// Pages the crawl finds (200 on every image, original or slim).
    pub fn crawled_paths(self) -> &'static [&'static str] {
        match self {
            LangImage::FlaskApp => &["/", "/hello", "/notes"],
            LangImage::NodeApp => &["/", "/hello"],
        }
    }

    /// Routes linked from nowhere, with a piece of their 200 answer.
    pub fn lazy_routes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            LangImage::FlaskApp => &[
                ("/export/Hello%20World", "\"slug\":\"hello-world\""),
                ("/sandbox", "42"),
            ],
            LangImage::NodeApp => &[("/width/abc", "\"width\":3")],
        }
    }

    /// The app module only the lazy routes load.
    pub fn lazy_app_module(self) -> &'static str {
        match self {
            LangImage::FlaskApp => "/app/exporter.py",
            LangImage::NodeApp => "/app/lib/width.js",
        }
    }

    /// (ecosystem, packages nothing loads that a declaration keeps).
    pub fn dependency_only(self) -> (&'static str, &'static [&'static str]) {
        match self {
            LangImage::FlaskApp => ("python", &["python-slugify", "text-unidecode"]),
            LangImage::NodeApp => (
                "node",
                &[
                    "string-width",
                    "strip-ansi",
                    "ansi-regex",
                    "is-fullwidth-code-point",
                    "emoji-regex",
                ],
            ),
        }
    }

    /// Builds the image unless it is current; returns its tag.
    pub fn ensure(self) -> Result<&'static str> {
        static DONE: OnceLock<Mutex<Vec<LangImage>>> = OnceLock::new();
        let done = DONE.get_or_init(|| Mutex::new(Vec::new()));
        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
        if done.contains(&self) {
            return Ok(self.tag());
        }
        ensure_docker()?;
        let recipe = self
            .recipe()
            .with_context(|| format!("preparing test image {}", self.name()))?;
        build_cached(self.tag(), &recipe)
            .with_context(|| format!("building test image {}", self.tag()))?;
        done.push(self);
        Ok(self.tag())
    }

    fn recipe(self) -> Result<Recipe> {
        let base = ensure_python_base()?;
        let mut entries = vec![Entry::Dir {
            path: "/app".into(),
            mode: 0o755,
        }];
        match self {
            LangImage::FlaskApp => {
                entries.extend(
                    tree_entries("/app", "flask-app")?
                        .into_iter()
                        .filter(|e| !matches!(e, Entry::Bytes { path, .. } if path.ends_with("/site-packages.txt"))),
                );
                let site = ensure_site_packages()?;
                entries.extend(host_tree(
                    "/usr/local/lib/python3.11/dist-packages",
                    &site,
                    // pip --target puts console scripts here; they would
                    // point at the host's python.
                    &["bin"],
                )?);
                Ok(Recipe {
                    entries,
                    dockerfile: format!(
                        "FROM {PYTHON_BASE_TAG}\nCOPY rootfs/ /\nWORKDIR /app\n\
                         ENV PYTHONUNBUFFERED=1\nEXPOSE 5000\n\
                         CMD [\"python3\", \"app.py\"]\n"
                    ),
                    extra_inputs: vec![format!("base={base}")],
                })
            }
            LangImage::NodeApp => {
                entries.extend(tree_entries("/app", "node-app")?);
                let modules = ensure_node_modules()?;
                entries.extend(host_tree("/app/node_modules", &modules, &[])?);
                Ok(Recipe {
                    entries,
                    dockerfile: format!(
                        "FROM {PYTHON_BASE_TAG}\n\
                         RUN apt-get update && apt-get install -y --no-install-recommends nodejs \
                         && rm -rf /var/lib/apt/lists/*\n\
                         COPY rootfs/ /\nWORKDIR /app\nEXPOSE 3000\n\
                         CMD [\"node\", \"server.js\"]\n"
                    ),
                    extra_inputs: vec![format!("base={base}")],
                })
            }
        }
    }
}

/// Everything under a host directory (files with their modes, symlinks,
/// directories), placed under `dest`; top-level names in `skip` left out.
fn host_tree(dest: &str, root: &Path, skip: &[&str]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            if dir == root && skip.contains(&rel.as_str()) {
                continue;
            }
            let target = format!("{}/{rel}", dest.trim_end_matches('/'));
            let ft = e.file_type()?;
            if ft.is_symlink() {
                out.push(Entry::Symlink {
                    path: target,
                    target: fs::read_link(&p)?.to_string_lossy().into_owned(),
                });
            } else if ft.is_dir() {
                out.push(Entry::Dir {
                    path: target,
                    mode: 0o755,
                });
                stack.push(p);
            } else {
                let mode = fs::metadata(&p)?.permissions().mode() & 0o777;
                out.push(Entry::HostFile {
                    path: target,
                    host: p,
                    mode,
                });
            }
        }
    }
    Ok(out)
}

fn short_hash(data: &[u8]) -> String {
    hex::encode(&Sha256::digest(data)[..8])
}

/// Runs `fill(tmp)` once per input hash and keeps the result at
/// `CACHE_DIR/<name>-<hash>/` (an interrupted run leaves nothing behind).
pub(crate) fn cached_dir(
    name: &str,
    input: &[u8],
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = Path::new(CACHE_DIR).join(format!("{name}-{}", short_hash(input)));
    if dir.join(".done").is_file() {
        return Ok(dir);
    }
    let _lock = lock(name)?;
    if dir.join(".done").is_file() {
        return Ok(dir);
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(CACHE_DIR)?;
    fill(tmp.path())?;
    fs::write(tmp.path().join(".done"), b"")?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(tmp.keep(), &dir)?;
    Ok(dir)
}

/// The Flask app's packages, installed with the host's pip for CPython 3.11
/// on x86_64 (pinned, `--no-deps`: the list is the whole closure).
fn ensure_site_packages() -> Result<PathBuf> {
    let list = fixtures_dir().join("flask-app/site-packages.txt");
    let spec = fs::read(&list).with_context(|| format!("read {}", list.display()))?;
    let dir = cached_dir("pip-flask-app", &spec, |tmp| {
        checked(
            Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-compile",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--target",
                &tmp.join("site").to_string_lossy(),
                "-r",
                &list.to_string_lossy(),
            ]),
            Duration::from_secs(600),
        )
        .context("pip install on the host (is python3 -m pip there, and PyPI reachable?)")?;
        Ok(())
    })?;
    Ok(dir.join("site"))
}

/// The Node app's `node_modules`, installed with the host's npm (pure
/// JavaScript packages: the host's Node version does not matter).
fn ensure_node_modules() -> Result<PathBuf> {
    let pj = fixtures_dir().join("node-app/package.json");
    let spec = fs::read(&pj).with_context(|| format!("read {}", pj.display()))?;
    let dir = cached_dir("npm-node-app", &spec, |tmp| {
        fs::copy(&pj, tmp.join("package.json"))?;
        checked(
            Command::new("npm").current_dir(tmp).args([
                "install",
                "--omit=dev",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--no-package-lock",
                "--loglevel=error",
            ]),
            Duration::from_secs(600),
        )
        .context("npm install on the host (is npm there, and the registry reachable?)")?;
        if !tmp.join("node_modules/express").is_dir() {
            bail!("npm install left no node_modules/express");
        }
        Ok(())
    })?;
    Ok(dir.join("node_modules"))
}
