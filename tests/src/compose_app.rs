//! The three-service app of the compose test: an HTTP front end (Python's
//! http.server with Debian's python3-redis and python3-psycopg2) in front
//! of a Redis cache and a PostgreSQL database, all from Debian packages on
//! the Debian python base. The cache and the database are the server
//! fixtures; the database image adds one pg_hba line so that the front
//! end's container may connect over the stack's network.

use anyhow::{Context, Result};

use super::{
    PYTHON_BASE_TAG, Recipe, ServerImage, build_cached, ensure_docker, ensure_python_base,
    file_entry, server_images::apt_install,
};

/// The front end: GET / (a link to /items) and GET /items on port 8000.
pub const COMPOSE_WEB: &str = "slimd-test/compose-web:latest";
/// PostgreSQL that accepts the stack's connections (trust, test only).
pub const COMPOSE_DB: &str = "slimd-test/compose-db:latest";

/// Builds the app's images unless current; returns (web, cache, db) tags.
pub fn ensure_compose_app() -> Result<(&'static str, &'static str, &'static str)> {
    ensure_docker()?;
    let cache = ServerImage::Redis.ensure()?;
    let postgres = ServerImage::Postgres.ensure()?;
    let postgres_id = super::image_id(postgres).context("the postgres fixture has no id")?;
    let db = Recipe {
        entries: Vec::new(),
        dockerfile: format!(
            "FROM {postgres}\nUSER root\n\
             RUN echo 'host all all 0.0.0.0/0 trust' >> /etc/postgresql/15/main/pg_hba.conf\n\
             USER postgres\n"
        ),
        extra_inputs: vec![format!("base={postgres_id}")],
    };
    build_cached(COMPOSE_DB, &db).context("building the compose db image")?;
    let base = ensure_python_base()?;
    let web = Recipe {
        entries: vec![file_entry("/app/app.py", "compose-app/app.py", 0o644)?],
        dockerfile: format!(
            "FROM {PYTHON_BASE_TAG}\n{}COPY rootfs/ /\nEXPOSE 8000\nCMD [\"python3\", \"/app/app.py\"]\n",
            apt_install("python3-redis python3-psycopg2")
        ),
        extra_inputs: vec![format!("base={base}")],
    };
    build_cached(COMPOSE_WEB, &web).context("building the compose web image")?;
    Ok((COMPOSE_WEB, cache, COMPOSE_DB))
}
