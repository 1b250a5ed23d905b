//! The image for the verify tests: `slimd-test/fragile-app`, a small Python
//! web app on the Debian python base whose slim image can be broken in each
//! way verify must catch (see `fixtures/fragile-app/server.py`).

use anyhow::Result;

use super::{
    Entry, PYTHON_BASE_TAG, Recipe, build_cached, ensure_docker, ensure_python_base, tree_entries,
};

/// Tag of the fragile app.
pub const FRAGILE_APP: &str = "slimd-test/fragile-app:latest";
/// Its HTTP port (the metrics listener, 9100, is not published).
pub const FRAGILE_APP_PORT: u16 = 8000;

/// Builds the fragile app unless it exists with the same inputs.
pub fn fragile_app() -> Result<&'static str> {
    ensure_docker()?;
    let base = ensure_python_base()?;
    let mut entries = vec![Entry::Dir {
        path: "/app".into(),
        mode: 0o755,
    }];
    entries.extend(tree_entries("/app", "fragile-app")?);
    let recipe = Recipe {
        entries,
        dockerfile: format!(
            "FROM {PYTHON_BASE_TAG}\nCOPY rootfs/ /\nWORKDIR /app\n\
             ENV PORT={FRAGILE_APP_PORT} PYTHONUNBUFFERED=1\nEXPOSE {FRAGILE_APP_PORT}\n\
             CMD [\"python3\", \"/app/server.py\"]\n"
        ),
        extra_inputs: vec![format!("base={base}")],
    };
    build_cached(FRAGILE_APP, &recipe)?;
    Ok(FRAGILE_APP)
}
