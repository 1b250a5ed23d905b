//! Client-first servers from Debian packages, for the state tests: Redis and
//! PostgreSQL on the Debian python base, each running as its own user with
//! a data directory seeded at image build time, and each answering its own
//! client (`redis-cli`, `psql`) inside the container. The Debian mirror is
//! reached over plain HTTP from the build containers.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{
    Container, PYTHON_BASE_TAG, RUN_LABEL, Recipe, build_cached, docker_timeout, ensure_docker,
    ensure_python_base, file_entry, run_with_timeout,
};

/// The server images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerImage {
    /// Debian's redis-server as user `redis`: data in `/var/lib/redis` (a
    /// VOLUME, redis:redis 0750, seeded with the key `seeded`), its log in
    /// `/var/log/redis` (redis:adm 2750, empty: the server refuses to start
    /// without it), its pid file in `/run/redis`. RDB persistence: SAVE and
    /// shutdown write `dump.rdb`. Port 6379.
    Redis,
    /// Debian's PostgreSQL 15 as user `postgres` (also in group `ssl-cert`,
    /// which its TLS key needs): the cluster `/var/lib/postgresql/15/main`
    /// initialised and seeded at build time (table `fruit`, three rows;
    /// table `visits`, empty), its socket directory `/run/postgresql`
    /// (reached as `/var/run/postgresql`), an empty `conf.d` include
    /// directory. Port 5432.
    Postgres,
}

/// The Debian packages come from the mirror: same recipe, same packages
/// until the mirror moves on, which is fine for a fixture.
pub(crate) fn apt_install(packages: &str) -> String {
    format!(
        "RUN apt-get update \\\n \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\\n \
         && rm -rf /var/lib/apt/lists/*\n"
    )
}

impl ServerImage {
    pub const ALL: [ServerImage; 2] = [ServerImage::Redis, ServerImage::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            ServerImage::Redis => "redis",
            ServerImage::Postgres => "postgres",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            ServerImage::Redis => "slimd-test/redis:latest",
            ServerImage::Postgres => "slimd-test/postgres:latest",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            ServerImage::Redis => 6379,
            ServerImage::Postgres => 5432,
        }
    }

    /// The user the server runs as.
    pub fn user(self) -> &'static str {
        match self {
            ServerImage::Redis => "redis",
            ServerImage::Postgres => "postgres",
        }
    }

    /// The client running one statement (`redis-cli WORDS...`, `psql -c SQL`).
    pub fn client(self, statement: &str) -> Vec<String> {
        match self {
            ServerImage::Redis => std::iter::once("redis-cli")
                .chain(statement.split_whitespace())
                .map(String::from)
                .collect(),
            ServerImage::Postgres => ["psql", "-Atq", "-c", statement].map(String::from).to_vec(),
        }
    }

    /// `--exec-probe` command lines for `slim build`: read the seeded data,
    /// write (the server's own files change), read back.
    pub fn exec_probes(self) -> &'static [&'static str] {
        match self {
            ServerImage::Redis => &[
                "redis-cli ping",
                "redis-cli get seeded",
                "redis-cli set probe-key from-probe",
                "redis-cli incr probe-counter",
                "redis-cli get probe-key",
                // A dump written by SAVE: state that must not be baked in.
                "redis-cli save",
            ],
            ServerImage::Postgres => &[
                "psql -Atq -c 'select name from fruit order by id'",
                "psql -Atq -c \"insert into visits (note) values ('from-probe')\"",
                // 1 on every image; 2 on a slim image that baked the probe's row in.
                "psql -Atq -c 'select count(*) from visits'",
                "psql -Atq -c checkpoint",
            ],
        }
    }

    /// A statement that answers once the server is up, with its answer.
    pub fn ping(self) -> (&'static str, &'static str) {
        match self {
            ServerImage::Redis => ("ping", "PONG"),
            ServerImage::Postgres => ("select 1", "1"),
        }
    }

    /// Reads the seeded data, with the answer the image was built with.
    pub fn seeded(self) -> (&'static str, &'static str) {
        match self {
            ServerImage::Redis => ("get seeded", "fruit-basket"),
            ServerImage::Postgres => (
                "select name from fruit order by id",
                "apple\nbanana\ncherry",
            ),
        }
    }

    /// Reads what the build's probes wrote, with the answer of an image
    /// that does not have it.
    pub fn probe_data_absent(self) -> (&'static str, &'static str) {
        match self {
            ServerImage::Redis => ("exists probe-key", "0"),
            ServerImage::Postgres => ("select count(*) from visits", "0"),
        }
    }

    /// Writes one value; reads it back (with the expected answer).
    pub fn write_then_read(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ServerImage::Redis => ("set after-restart kept", "get after-restart", "kept"),
            ServerImage::Postgres => (
                "insert into visits (note) values ('after-restart')",
                "select note from visits",
                "after-restart",
            ),
        }
    }

    /// Directories the server needs with their owner and mode: data,
    /// include, log, socket and pid directories.
    pub fn owned_dirs(self) -> &'static [&'static str] {
        match self {
            ServerImage::Redis => &["/var/lib/redis", "/var/log/redis", "/run/redis"],
            ServerImage::Postgres => &[
                "/var/lib/postgresql",
                "/var/lib/postgresql/15/main",
                "/var/lib/postgresql/15/main/pg_tblspc",
                "/run/postgresql",
                "/etc/postgresql/15/main/conf.d",
            ],
        }
    }

    /// Builds the image unless it is current; returns its tag.
    pub fn ensure(self) -> Result<&'static str> {
        ensure_docker()?;
        let recipe = self
            .recipe()
            .with_context(|| format!("preparing test image {}", self.name()))?;
        build_cached(self.tag(), &recipe)
            .with_context(|| format!("building test image {}", self.tag()))?;
        Ok(self.tag())
    }

    fn recipe(self) -> Result<Recipe> {
        let base = ensure_python_base()?;
        let extra_inputs = vec![format!("base={base}")];
        match self {
            ServerImage::Redis => Ok(Recipe {
                entries: Vec::new(),
                dockerfile: format!(
                    "FROM {PYTHON_BASE_TAG}\n{}\
                     RUN install -d -o redis -g redis -m 0755 /run/redis\n\
                     USER redis\n\
                     RUN redis-server /etc/redis/redis.conf --daemonize yes \
                     --logfile /tmp/seed.log --pidfile /tmp/seed.pid \\\n \
                     && for i in $(seq 100); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done \\\n \
                     && redis-cli set seeded fruit-basket && redis-cli save && redis-cli shutdown \\\n \
                     && rm -f /tmp/seed.log\n\
                     VOLUME /var/lib/redis\n\
                     EXPOSE 6379\n\
                     CMD [\"redis-server\", \"/etc/redis/redis.conf\", \"--daemonize\", \"no\", \
                     \"--supervised\", \"no\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\"]\n",
                    apt_install("redis-server")
                ),
                extra_inputs,
            }),
            ServerImage::Postgres => {
                let pg = "/usr/lib/postgresql/15/bin";
                let data = "/var/lib/postgresql/15/main";
                let conf = "/etc/postgresql/15/main/postgresql.conf";
                Ok(Recipe {
                    entries: vec![file_entry(
                        "/usr/local/share/slimd-test/seed.sql",
                        "postgres/seed.sql",
                        0o644,
                    )?],
                    dockerfile: format!(
                        "FROM {PYTHON_BASE_TAG}\n{}\
                         COPY rootfs/ /\n\
                         RUN echo \"listen_addresses = '*'\" >> {conf}\n\
                         USER postgres\n\
                         RUN {pg}/pg_ctl -D {data} -o \"-c config_file={conf}\" -w start \\\n \
                         && psql -v ON_ERROR_STOP=1 -q -f /usr/local/share/slimd-test/seed.sql \\\n \
                         && {pg}/pg_ctl -D {data} -m fast -w stop\n\
                         EXPOSE 5432\n\
                         STOPSIGNAL SIGINT\n\
                         CMD [\"{pg}/postgres\", \"-D\", \"{data}\", \"-c\", \"config_file={conf}\"]\n",
                        apt_install("postgresql-15")
                    ),
                    extra_inputs,
                })
            }
        }
    }

    /// A container of `image` (this server's original or slim image) with
    /// its port published on 127.0.0.1; removed on drop.
    pub fn run(self, image: &str) -> Result<Container> {
        let label = format!("{RUN_LABEL}={}", self.name());
        let publish = format!("127.0.0.1::{}", self.port());
        let id = docker_timeout(
            ["run", "-d", "--label", &label, "-p", &publish, image],
            Duration::from_secs(120),
        )?;
        Ok(Container { id })
    }

    /// Runs the client inside the container: its trimmed stdout, or an
    /// error with its stderr.
    pub fn query(self, c: &Container, statement: &str) -> Result<String> {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", &c.id]).args(self.client(statement));
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60))?;
        if !out.status.success() {
            bail!(
                "{statement:?} in {}: {} {}",
                c.id,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until the server answers its client (at most `timeout`).
    pub fn wait_answering(self, c: &Container, timeout: Duration) -> Result<()> {
        let (statement, answer) = self.ping();
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.query(c, statement) {
                Ok(out) if out == answer => return Ok(()),
                Ok(out) => format!("answered {out:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let (out, err) = c.logs().unwrap_or_default();
                bail!(
                    "{} in {} did not answer {statement:?} within {}s (last: {last})\nstdout: {out}\nstderr: {err}",
                    self.name(),
                    c.id,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
