//! The probing fixture (`slimd-test/probing-app`): a Python app on the
//! Debian python base that only works in full when the HTTP probe submits
//! its forms, reads its OpenAPI documents and speaks HTTPS. Every handler
//! is an app module imported on first use, so a `--granularity file` build
//! keeps only the handlers some probe reached. Its self-signed certificate
//! is made once with rcgen and cached under [`CACHE_DIR`], so the image's
//! inputs (and the image) stay the same between runs.

use std::fs;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};

use super::lang_images::cached_dir;
use super::{
    CACHE_DIR, Entry, PYTHON_BASE_TAG, Recipe, build_cached, ensure_docker, ensure_python_base,
    tree_entries,
};

/// The probing fixture image and what it serves.
pub struct ProbingApp;

impl ProbingApp {
    pub const TAG: &'static str = "slimd-test/probing-app:latest";
    /// Plain HTTP.
    pub const HTTP_PORT: u16 = 8000;
    /// HTTPS (plain HTTP here gets a 400).
    pub const HTTPS_PORT: u16 = 8443;
    /// Where the admin API's document is served: no probe guesses it.
    pub const ADMIN_SPEC_PATH: &'static str = "/internal/admin-api.yaml";
    /// The handler modules only the admin document's operations load.
    pub const ADMIN_MODULES: [&'static str; 2] =
        ["/app/handlers/report.py", "/app/handlers/colors.py"];

    /// Builds the image unless it is current; returns its tag.
    pub fn ensure() -> Result<&'static str> {
        static DONE: OnceLock<Mutex<bool>> = OnceLock::new();
        let mut done = DONE
            .get_or_init(|| Mutex::new(false))
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *done {
            return Ok(Self::TAG);
        }
        ensure_docker()?;
        let recipe = Self::recipe().context("preparing test image probing-app")?;
        build_cached(Self::TAG, &recipe)
            .with_context(|| format!("building test image {}", Self::TAG))?;
        *done = true;
        Ok(Self::TAG)
    }

    fn recipe() -> Result<Recipe> {
        let base = ensure_python_base()?;
        let tls = cached_dir(
            "probing-app-tls",
            b"self-signed localhost, rcgen, v1",
            |tmp| {
                let key = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ])
                .context("generate the certificate")?;
                fs::write(tmp.join("cert.pem"), key.cert.pem())?;
                fs::write(tmp.join("key.pem"), key.signing_key.serialize_pem())?;
                Ok(())
            },
        )
        .with_context(|| format!("the certificate under {CACHE_DIR}"))?;
        let mut entries = vec![Entry::Dir {
            path: "/app".into(),
            mode: 0o755,
        }];
        entries.extend(tree_entries("/app", "probing-app")?);
        entries.push(Entry::Dir {
            path: "/app/tls".into(),
            mode: 0o755,
        });
        for (name, mode) in [("cert.pem", 0o644), ("key.pem", 0o600)] {
            entries.push(Entry::HostFile {
                path: format!("/app/tls/{name}"),
                host: tls.join(name),
                mode,
            });
        }
        Ok(Recipe {
            entries,
            dockerfile: format!(
                "FROM {PYTHON_BASE_TAG}\nCOPY rootfs/ /\nWORKDIR /app\n\
                 ENV PYTHONUNBUFFERED=1\nEXPOSE {} {}\n\
                 CMD [\"python3\", \"/app/app.py\"]\n",
                Self::HTTP_PORT,
                Self::HTTPS_PORT
            ),
            extra_inputs: vec![format!("base={base}")],
        })
    }
}
