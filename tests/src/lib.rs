//! The end-to-end test crate, laid out like aya's and bpfman's: the suites
//! are modules under `tests/` (one test binary), and everything they share
//! lives here, in one place: a Docker engine that answers, the test images
//! (built from local files, never pulled, and rebuilt only when their inputs
//! change: the five base fixtures, the language images ([`LangImage`]), the
//! client-first servers ([`ServerImage`]), and the fixtures of the names,
//! verify and probing suites), a daemon per test ([`daemon`]), the tracer
//! suite's `tracee` image ([`tracee`]), rootful Podman's API service and
//! fixtures carried into its store ([`podman`]), and small helpers to run
//! the `docker` CLI and speak HTTP to a published port.
//!
//! Every helper is idempotent and safe to call from several tests and test
//! binaries at once: images are cached by a content hash kept in the
//! `slimd-test.inputs` label, and builds are serialized with a file lock.
//! The helpers block; call them from `spawn_blocking` inside async tests, or
//! before the runtime starts.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

pub mod browser;
mod compose_app;
pub mod containerd;
pub mod daemon;
mod hostile_image;
pub mod kubelet;
mod lang_images;
mod names_image;
pub mod podman;
mod probing_app;
pub mod sbom_schema;
mod server_images;
#[cfg(test)]
mod tests;
pub mod tracee;
mod verify_images;
pub use compose_app::{COMPOSE_DB, COMPOSE_WEB, ensure_compose_app};
pub use hostile_image::{
    HOSTILE_DIR, HOSTILE_FILE, HOSTILE_INDEX, HOSTILE_TAG, ensure_hostile_image, hostile_path,
};
pub use lang_images::LangImage;
pub use names_image::{CAFE, COPY, MENU, NAMES_TAG, UNUSED, ensure_names_image, long_path};
pub use probing_app::ProbingApp;
pub use server_images::ServerImage;
pub use verify_images::{FRAGILE_APP, FRAGILE_APP_PORT, fragile_app};

/// Where slow-to-make inputs (the Debian rootfs) and build locks live.
pub const CACHE_DIR: &str = "/var/cache/slimd-tests";
/// The engine's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Label holding the hash of an image's inputs.
pub const INPUTS_LABEL: &str = "slimd-test.inputs";
/// Label on every container these helpers start, for cleanup.
pub const RUN_LABEL: &str = "slimd-test.run";
/// The debootstrap rootfs with python3 (our own file: another one without
/// python may sit beside it).
pub const PYTHON_ROOTFS_TAR: &str =
    "/var/cache/slimd-tests/debootstrap-bookworm-minbase-python3.tar";
/// Bump to rebuild every image after a change to the recipes' shape.
const RECIPE_VERSION: &str = "1";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

/// Runs a command to completion within `timeout`, capturing its output;
/// kills its process group at the timeout.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.wait();
            bail!("{shown} did not finish within {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// SIGKILL to the process group `pid` leads (children spawned with `process_group(0)`).
fn kill_group(pid: u32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) takes no pointers; 9 is SIGKILL.
    unsafe { kill(-(pid as i32), 9) };
}

/// Runs `docker ARGS...` and returns its stdout (trimmed). The error names
/// the command, its exit status and stderr.
pub fn docker<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    docker_timeout(args, Duration::from_secs(600))
}

/// [`docker`] with a wall-clock limit.
pub fn docker_timeout<I, S>(args: I, timeout: Duration) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("docker");
    cmd.args(args).env("DOCKER_BUILDKIT", "0");
    checked(&mut cmd, timeout)
}

/// Runs a command and returns its trimmed stdout, or an error with its stderr.
pub fn checked(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = run_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail = |s: &str| {
            let s = s.trim();
            let start = s.len().saturating_sub(4000);
            let start = (start..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            s[start..].to_string()
        };
        bail!(
            "{shown} failed ({}):\n{}\n{}",
            out.status,
            tail(&stderr),
            tail(&stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// True when something answers `GET /_ping` with 200 on the socket.
pub fn docker_answers(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => {
            let head = String::from_utf8_lossy(&buf[..n]);
            head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200")
        }
        Err(_) => false,
    }
}

/// Starts an engine that outlives the test (dockerd, Podman's service). It
/// inherits none of the test's open files, above all the e2e lock that
/// `flock` holds for a test run: an engine holding it would keep every
/// later run waiting.
pub fn spawn_service(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    // It outlives this test run, so it must not live in this checkout: a
    // Podman service left running from a clone that was removed later
    // failed every container start ("write child: broken pipe").
    cmd.current_dir("/");
    // SAFETY: close_range(2) is async-signal-safe and takes no pointers.
    unsafe {
        cmd.pre_exec(|| {
            unsafe extern "C" {
                fn close_range(first: u32, last: u32, flags: i32) -> i32;
            }
            close_range(3, u32::MAX, 0);
            Ok(())
        });
    }
    cmd.spawn()
}

/// Makes sure a Docker engine answers on [`DOCKER_SOCKET`]: if none does,
/// starts `dockerd` in the background (log: `/var/log/slimd-tests-dockerd.log`)
/// and waits up to 60 s for it.
pub fn ensure_docker() -> Result<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let socket = Path::new(DOCKER_SOCKET);
    if docker_answers(socket) {
        return Ok(());
    }
    let log_path = Path::new("/var/log/slimd-tests-dockerd.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    // Another test process may be starting one right now: give it a moment.
    if !wait_for(|| docker_answers(socket), Duration::from_secs(2)) {
        let mut cmd = Command::new("dockerd");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        spawn_service(&mut cmd).context("cannot start dockerd (is docker.io installed?)")?;
    }
    if !wait_for(|| docker_answers(socket), Duration::from_secs(60)) {
        bail!(
            "dockerd did not answer on {DOCKER_SOCKET} within 60s; see {}",
            log_path.display()
        );
    }
    Ok(())
}

pub(crate) fn wait_for(mut ok: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------
// Test images
// ---------------------------------------------------------------------------

/// The images the end-to-end tests minify, each tagged `slimd-test/<name>:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TestImage {
    /// (a) A statically linked C HTTP server (`FROM scratch`) serving
    /// `/srv/www`: an index page linking to an about page, a guide two levels
    /// deep, CSS/JS and a JSON file. The crawl never reaches
    /// `/srv/www/pages/from-script.html` (only `app.js` asks for it) nor
    /// `/srv/www/unused/`: the document root's content root keeps them under
    /// the `package` granularity. Unused and outside the document root: a
    /// draft in `/srv/drafts/`, a 1 MiB `/opt/unused/blob.bin`, docs.
    /// Exercises the crawl (files a server only opens when asked) with no
    /// ELF dependencies at all. Port 8080.
    StaticServer,
    /// (b) The same server built dynamically with libm (`/calc`) and zlib
    /// (`/crc`), running as uid 65534, in a merged-/usr rootfs copied from
    /// host libraries: `/lib -> usr/lib`, `/lib64 -> usr/lib64`, and an
    /// absolute `ld-linux` symlink, as on Debian. Unused: libssl, libcrypto,
    /// libsqlite3, libxml2, libstdc++, libbz2, liblzma, ... Exercises the ELF
    /// interpreter and shared-library closure and symlink chains. Port 8081.
    DynamicC,
    /// (c) A Python inventory app (http.server, json, csv, sqlite3, hashlib,
    /// and lazily statistics/decimal/textwrap) on a Debian bookworm
    /// `debootstrap --variant=minbase --include=python3` rootfs; reads
    /// `/app/data/items.csv`. Must shrink by at least 80%. Port 8000.
    PythonApp,
    /// (d) ENTRYPOINT is a `#!/bin/sh` script (busybox) that sources a config,
    /// renders a page with `sed` into `/run/www` and execs `httpd`, found
    /// through PATH as a busybox symlink in `/usr/sbin`. Exercises shebang
    /// interpreters, PATH lookups and symlinked applets. STOPSIGNAL SIGKILL
    /// (busybox httpd as pid 1 ignores SIGTERM). Port 8080.
    ShellEntrypoint,
    /// (e) A one-shot CLI (dynamic C, libc only): reads
    /// `/etc/wordstat/config`, lists `/usr/share/wordstat/*.txt` and prints
    /// word counts and a checksum, then exits 0. No ports: its probe is its
    /// own run (exit code and stdout).
    CliOneshot,
}

impl TestImage {
    pub const ALL: [TestImage; 5] = [
        TestImage::StaticServer,
        TestImage::DynamicC,
        TestImage::PythonApp,
        TestImage::ShellEntrypoint,
        TestImage::CliOneshot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TestImage::StaticServer => "static-server",
            TestImage::DynamicC => "dynamic-c",
            TestImage::PythonApp => "python-app",
            TestImage::ShellEntrypoint => "shell-entrypoint",
            TestImage::CliOneshot => "cli-oneshot",
        }
    }

    /// `slimd-test/<name>:latest`.
    pub fn tag(self) -> &'static str {
        match self {
            TestImage::StaticServer => "slimd-test/static-server:latest",
            TestImage::DynamicC => "slimd-test/dynamic-c:latest",
            TestImage::PythonApp => "slimd-test/python-app:latest",
            TestImage::ShellEntrypoint => "slimd-test/shell-entrypoint:latest",
            TestImage::CliOneshot => "slimd-test/cli-oneshot:latest",
        }
    }

    /// The container port the app serves HTTP on; `None` for the one-shot CLI.
    pub fn port(self) -> Option<u16> {
        match self {
            TestImage::StaticServer | TestImage::ShellEntrypoint => Some(8080),
            TestImage::DynamicC => Some(8081),
            TestImage::PythonApp => Some(8000),
            TestImage::CliOneshot => None,
        }
    }

    /// Paths every probe of this image should answer with 200 (a check
    /// that the app works, original or slim).
    pub fn expected_ok_paths(self) -> &'static [&'static str] {
        match self {
            TestImage::StaticServer => &[
                "/",
                "/about.html",
                "/docs/guide.html",
                "/docs/notes.txt",
                "/static/style.css",
                "/data/info.json",
            ],
            TestImage::DynamicC => &["/", "/style.css", "/calc?x=3", "/crc"],
            TestImage::PythonApp => &[
                "/",
                "/items",
                "/items/1",
                "/categories?sort=name",
                "/stats",
                "/report.txt",
                "/static/app.css",
            ],
            TestImage::ShellEntrypoint => &["/", "/about.html", "/site.css"],
            TestImage::CliOneshot => &[],
        }
    }

    /// What the one-shot CLI prints (its whole stdout).
    pub fn expected_stdout(self) -> Option<&'static str> {
        match self {
            TestImage::CliOneshot => Some(
                "wordstat report\n\
                 alpha.txt           2 lines     9 words\n\
                 beta.txt            3 lines    11 words\n\
                 gamma.txt           3 lines     6 words\n\
                 total 26 words in 3 files, checksum d76d9897\n",
            ),
            _ => None,
        }
    }

    /// Builds the image unless an image with this tag and the same inputs
    /// exists; returns its tag. Needs root, gcc and a running engine.
    pub fn ensure(self) -> Result<&'static str> {
        ensure_image(self)
    }
}

/// Builds `image` if missing or stale (see [`TestImage::ensure`]).
pub fn ensure_image(image: TestImage) -> Result<&'static str> {
    static DONE: OnceLock<Mutex<BTreeMap<TestImage, ()>>> = OnceLock::new();
    let done = DONE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains_key(&image) {
        return Ok(image.tag());
    }
    ensure_docker()?;
    let recipe = recipe(image).with_context(|| format!("preparing test image {}", image.name()))?;
    build_cached(image.tag(), &recipe)
        .with_context(|| format!("building test image {}", image.tag()))?;
    done.insert(image, ());
    Ok(image.tag())
}

/// Builds all five images.
pub fn ensure_all_images() -> Result<()> {
    for i in TestImage::ALL {
        ensure_image(i)?;
    }
    Ok(())
}

/// One thing to put in an image's root filesystem.
#[derive(Debug, Clone)]
enum Entry {
    Bytes {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    /// Copied from the host (hashed by content).
    HostFile {
        path: String,
        host: PathBuf,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Dir {
        path: String,
        mode: u32,
    },
    /// Compiled with gcc at build time (hashed by source, flags and gcc version).
    CBinary {
        path: String,
        source: PathBuf,
        flags: Vec<String>,
    },
}

/// How to make one image: the rootfs entries and the Dockerfile that copies
/// them in (`COPY rootfs/ /`), plus extra inputs for the hash.
struct Recipe {
    entries: Vec<Entry>,
    dockerfile: String,
    extra_inputs: Vec<String>,
}

fn file_entry(path: &str, fixture: &str, mode: u32) -> Result<Entry> {
    let host = fixtures_dir().join(fixture);
    let data = fs::read(&host).with_context(|| format!("read {}", host.display()))?;
    Ok(Entry::Bytes {
        path: path.into(),
        data,
        mode,
    })
}

/// Every file under a fixture directory, placed under `dest`.
fn tree_entries(dest: &str, fixture: &str) -> Result<Vec<Entry>> {
    let root = fixtures_dir().join(fixture);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let p = e.path();
            let rel = p.strip_prefix(&root)?.to_string_lossy().into_owned();
            let target = format!("{}/{rel}", dest.trim_end_matches('/'));
            if e.file_type()?.is_dir() {
                out.push(Entry::Dir {
                    path: target,
                    mode: 0o755,
                });
                stack.push(p);
            } else {
                out.push(Entry::Bytes {
                    path: target,
                    data: fs::read(&p)?,
                    mode: 0o644,
                });
            }
        }
    }
    Ok(out)
}

/// Deterministic filler for unused files (so the hash is stable).
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Users and a sticky /tmp that any small image needs.
fn base_entries() -> Vec<Entry> {
    vec![
        Entry::Bytes {
            path: "/etc/passwd".into(),
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".to_vec(),
            mode: 0o644,
        },
        Entry::Bytes {
            path: "/etc/group".into(),
            data: b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
            mode: 0o644,
        },
        Entry::Dir {
            path: "/tmp".into(),
            mode: 0o1777,
        },
    ]
}

const LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

/// A Debian-style merged-/usr layout with the dynamic loader reachable at
/// `/lib64/ld-linux-x86-64.so.2` through two symlinks, plus `libs` (sonames)
/// copied from the host with their soname symlinks.
fn glibc_entries(libs: &[&str]) -> Result<Vec<Entry>> {
    if !Path::new(LIBDIR).is_dir() {
        bail!("{LIBDIR} not found: the dynamic test images need an x86_64 Debian host");
    }
    let mut out = vec![
        Entry::Dir {
            path: "/usr/lib".into(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "/usr/lib64".into(),
            mode: 0o755,
        },
        Entry::Symlink {
            path: "/lib".into(),
            target: "usr/lib".into(),
        },
        Entry::Symlink {
            path: "/lib64".into(),
            target: "usr/lib64".into(),
        },
        Entry::Symlink {
            path: "/usr/lib64/ld-linux-x86-64.so.2".into(),
            target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
        },
    ];
    for name in std::iter::once(&"ld-linux-x86-64.so.2").chain(libs) {
        let mut host = Path::new(LIBDIR).join(name);
        // Follow same-directory soname links (libz.so.1 -> libz.so.1.2.13).
        for _ in 0..8 {
            let meta = fs::symlink_metadata(&host)
                .with_context(|| format!("host library {} not found", host.display()))?;
            if !meta.file_type().is_symlink() {
                break;
            }
            let target = fs::read_link(&host)?;
            let next = host.parent().unwrap().join(&target);
            if target.components().count() == 1 {
                out.push(Entry::Symlink {
                    path: format!("{LIBDIR}/{}", host.file_name().unwrap().to_string_lossy()),
                    target: target.to_string_lossy().into_owned(),
                });
                host = next;
            } else {
                host = fs::canonicalize(&host)?;
                break;
            }
        }
        let mode = fs::metadata(&host)?.permissions().mode() & 0o777;
        out.push(Entry::HostFile {
            path: format!("{LIBDIR}/{}", host.file_name().unwrap().to_string_lossy()),
            host,
            mode,
        });
    }
    Ok(out)
}

fn recipe(image: TestImage) -> Result<Recipe> {
    let fx = fixtures_dir();
    match image {
        TestImage::StaticServer => {
            let mut entries = base_entries();
            entries.push(Entry::CBinary {
                path: "/usr/local/bin/static-server".into(),
                source: fx.join("static-server/server.c"),
                flags: vec!["-O2".into(), "-static".into()],
            });
            entries.push(Entry::Dir {
                path: "/srv/www".into(),
                mode: 0o755,
            });
            entries.extend(tree_entries("/srv/www", "static-server/www")?);
            entries.push(file_entry(
                "/srv/drafts/draft.html",
                "static-server/drafts/draft.html",
                0o644,
            )?);
            entries.push(Entry::Bytes {
                path: "/opt/unused/blob.bin".into(),
                data: filler(1 << 20, 1),
                mode: 0o644,
            });
            entries.push(Entry::Bytes {
                path: "/usr/share/doc/static-server/README".into(),
                data: b"Documentation nobody reads at run time.\n".to_vec(),
                mode: 0o644,
            });
            Ok(Recipe {
                entries,
                dockerfile: "FROM scratch\nCOPY rootfs/ /\nEXPOSE 8080\n\
                     ENTRYPOINT [\"/usr/local/bin/static-server\"]\n\
                     CMD [\"-p\", \"8080\", \"-d\", \"/srv/www\"]\n"
                    .into(),
                extra_inputs: vec![],
            })
        }
        TestImage::DynamicC => {
            let mut entries = base_entries();
            entries.extend(glibc_entries(&[
                "libc.so.6",
                "libm.so.6",
                "libz.so.1",
                // Unused: nothing links or opens these.
                "libssl.so.3",
                "libcrypto.so.3",
                "libsqlite3.so.0",
                "libxml2.so.2",
                "libstdc++.so.6",
                "libgcc_s.so.1",
                "libbz2.so.1.0",
                "liblzma.so.5",
                "libexpat.so.1",
                "libffi.so.8",
            ])?);
            entries.push(Entry::CBinary {
                path: "/usr/local/bin/dyn-server".into(),
                source: fx.join("static-server/server.c"),
                flags: [
                    "-O2",
                    "-DWITH_MATH",
                    "-DWITH_ZLIB",
                    "-Wl,--no-as-needed",
                    "-lm",
                    "-lz",
                ]
                .map(String::from)
                .to_vec(),
            });
            entries.push(Entry::Dir {
                path: "/srv/www".into(),
                mode: 0o755,
            });
            entries.push(file_entry(
                "/srv/www/index.html",
                "dynamic-c/index.html",
                0o644,
            )?);
            entries.push(file_entry(
                "/srv/www/style.css",
                "dynamic-c/style.css",
                0o644,
            )?);
            entries.push(Entry::Bytes {
                path: "/srv/www/unused.bin".into(),
                data: filler(256 << 10, 2),
                mode: 0o644,
            });
            Ok(Recipe {
                entries,
                dockerfile: "FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nEXPOSE 8081\n\
                     ENTRYPOINT [\"/usr/local/bin/dyn-server\", \"-p\", \"8081\", \"-d\", \"/srv/www\"]\n"
                    .into(),
                extra_inputs: vec![],
            })
        }
        TestImage::PythonApp => {
            let base = ensure_python_base()?;
            let mut entries = vec![Entry::Dir {
                path: "/app".into(),
                mode: 0o755,
            }];
            entries.extend(tree_entries("/app", "python-app")?);
            Ok(Recipe {
                entries,
                dockerfile: format!(
                    "FROM {PYTHON_BASE_TAG}\nCOPY rootfs/ /\nWORKDIR /app\n\
                     ENV PORT=8000 PYTHONUNBUFFERED=1\nEXPOSE 8000\n\
                     CMD [\"python3\", \"/app/server.py\"]\n"
                ),
                extra_inputs: vec![format!("base={base}")],
            })
        }
        TestImage::ShellEntrypoint => {
            let mut entries = base_entries();
            entries.push(Entry::HostFile {
                path: "/bin/busybox".into(),
                host: "/bin/busybox".into(),
                mode: 0o755,
            });
            // Applets the entrypoint uses, and some it does not.
            for applet in [
                "sh", "cat", "cp", "echo", "ls", "mkdir", "sed", "sleep", "env", "grep", "rm",
                "vi", "tar", "gzip", "ps", "top", "wget", "id",
            ] {
                entries.push(Entry::Symlink {
                    path: format!("/bin/{applet}"),
                    target: "busybox".into(),
                });
            }
            entries.push(Entry::Symlink {
                path: "/usr/sbin/httpd".into(),
                target: "/bin/busybox".into(),
            });
            entries.push(file_entry(
                "/usr/local/bin/entrypoint.sh",
                "shell-entrypoint/entrypoint.sh",
                0o755,
            )?);
            entries.push(file_entry(
                "/etc/app/app.env",
                "shell-entrypoint/app.env",
                0o644,
            )?);
            entries.push(Entry::Dir {
                path: "/srv/templates".into(),
                mode: 0o755,
            });
            entries.extend(tree_entries(
                "/srv/templates",
                "shell-entrypoint/templates",
            )?);
            entries.push(Entry::Dir {
                path: "/srv/static".into(),
                mode: 0o755,
            });
            entries.extend(tree_entries("/srv/static", "shell-entrypoint/static")?);
            entries.push(Entry::Dir {
                path: "/run".into(),
                mode: 0o755,
            });
            entries.push(Entry::Bytes {
                path: "/usr/share/doc/busybox/unused.txt".into(),
                data: filler(64 << 10, 3),
                mode: 0o644,
            });
            Ok(Recipe {
                entries,
                dockerfile: "FROM scratch\nCOPY rootfs/ /\n\
                     ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
                     EXPOSE 8080\nSTOPSIGNAL SIGKILL\n\
                     ENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]\n"
                    .into(),
                extra_inputs: vec![],
            })
        }
        TestImage::CliOneshot => {
            let mut entries = base_entries();
            entries.extend(glibc_entries(&["libc.so.6", "libm.so.6", "libz.so.1"])?);
            entries.push(Entry::CBinary {
                path: "/usr/bin/wordstat".into(),
                source: fx.join("cli-oneshot/wordstat.c"),
                flags: vec!["-O2".into()],
            });
            entries.push(file_entry(
                "/etc/wordstat/config",
                "cli-oneshot/config",
                0o644,
            )?);
            entries.push(Entry::Dir {
                path: "/usr/share/wordstat".into(),
                mode: 0o755,
            });
            entries.extend(tree_entries("/usr/share/wordstat", "cli-oneshot/words")?);
            entries.push(Entry::Bytes {
                path: "/usr/share/wordstat-extra/dictionary.txt".into(),
                data: filler(128 << 10, 4),
                mode: 0o644,
            });
            Ok(Recipe {
                entries,
                dockerfile: "FROM scratch\nCOPY rootfs/ /\n\
                     ENTRYPOINT [\"/usr/bin/wordstat\"]\n\
                     CMD [\"--config\", \"/etc/wordstat/config\"]\n"
                    .into(),
                extra_inputs: vec![],
            })
        }
    }
}

fn gcc_version() -> Result<String> {
    static V: OnceLock<String> = OnceLock::new();
    if let Some(v) = V.get() {
        return Ok(v.clone());
    }
    let v = checked(
        Command::new("gcc").arg("--version"),
        Duration::from_secs(30),
    )
    .context("gcc is needed to build the test images")?;
    let v = v.lines().next().unwrap_or_default().to_string();
    Ok(V.get_or_init(|| v).clone())
}

/// The hash of everything that decides an image's content.
fn inputs_hash(recipe: &Recipe) -> Result<String> {
    let mut h = Sha256::new();
    let mut field = |parts: &[&[u8]]| {
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
    };
    field(&[
        b"recipe",
        RECIPE_VERSION.as_bytes(),
        recipe.dockerfile.as_bytes(),
    ]);
    for x in &recipe.extra_inputs {
        field(&[b"extra", x.as_bytes()]);
    }
    for e in &recipe.entries {
        match e {
            Entry::Bytes { path, data, mode } => {
                field(&[b"bytes", path.as_bytes(), data, &mode.to_le_bytes()])
            }
            Entry::HostFile { path, host, mode } => {
                let data = fs::read(host).with_context(|| format!("read {}", host.display()))?;
                field(&[b"host", path.as_bytes(), &data, &mode.to_le_bytes()])
            }
            Entry::Symlink { path, target } => {
                field(&[b"symlink", path.as_bytes(), target.as_bytes()])
            }
            Entry::Dir { path, mode } => field(&[b"dir", path.as_bytes(), &mode.to_le_bytes()]),
            Entry::CBinary {
                path,
                source,
                flags,
            } => {
                let src = fs::read(source).with_context(|| format!("read {}", source.display()))?;
                let gcc = gcc_version()?;
                field(&[
                    b"cc",
                    path.as_bytes(),
                    &src,
                    flags.join(" ").as_bytes(),
                    gcc.as_bytes(),
                ])
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The value of the inputs label on a local image, or `None` when absent.
fn image_inputs(tag: &str) -> Option<String> {
    let fmt = format!("{{{{ index .Config.Labels \"{INPUTS_LABEL}\" }}}}");
    docker_timeout(
        ["image", "inspect", "--format", &fmt, tag],
        Duration::from_secs(60),
    )
    .ok()
    .filter(|s| !s.is_empty() && s != "<no value>")
}

fn image_id(tag: &str) -> Option<String> {
    docker_timeout(
        ["image", "inspect", "--format", "{{.Id}}", tag],
        Duration::from_secs(60),
    )
    .ok()
}

/// An exclusive lock on `CACHE_DIR/<name>.lock`, so parallel test binaries
/// build each thing once.
fn lock(name: &str) -> Result<fs::File> {
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("create {CACHE_DIR}"))?;
    let path = Path::new(CACHE_DIR).join(format!("{}.lock", name.replace('/', "_")));
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    f.lock()
        .with_context(|| format!("lock {}", path.display()))?;
    Ok(f)
}

fn build_cached(tag: &str, recipe: &Recipe) -> Result<String> {
    build_unless_cached(tag, recipe).map(|_| tag.to_string())
}

/// Whether [`build_unless_cached`] had to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// An image with this tag and the same inputs label was there.
    Hit,
    Built,
}

/// Builds `recipe` as `tag` unless the image there carries the hash of the
/// same inputs in its label.
fn build_unless_cached(tag: &str, recipe: &Recipe) -> Result<Cache> {
    let hash = inputs_hash(recipe)?;
    if image_inputs(tag).as_deref() == Some(hash.as_str()) {
        return Ok(Cache::Hit);
    }
    let _lock = lock(tag)?;
    if image_inputs(tag).as_deref() == Some(hash.as_str()) {
        return Ok(Cache::Hit);
    }
    let old = image_id(tag);
    let ctx = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(CACHE_DIR)
        .context("create build context")?;
    let rootfs = ctx.path().join("rootfs");
    fs::create_dir_all(&rootfs)?;
    for e in &recipe.entries {
        materialize(&rootfs, e)?;
    }
    fs::write(ctx.path().join("Dockerfile"), &recipe.dockerfile)?;
    let label = format!("{INPUTS_LABEL}={hash}");
    docker_timeout(
        [
            "build",
            "--quiet",
            "--rm",
            "--force-rm",
            "--label",
            label.as_str(),
            "--tag",
            tag,
            &ctx.path().to_string_lossy(),
        ],
        Duration::from_secs(900),
    )?;
    if let Some(old) = old
        && image_id(tag).as_deref() != Some(old.as_str())
    {
        // The previous build is now untagged; drop it (ignore images in use).
        let _ = docker_timeout(["image", "rm", &old], Duration::from_secs(60));
    }
    Ok(Cache::Built)
}

/// Writes one entry under `rootfs`.
fn materialize(rootfs: &Path, e: &Entry) -> Result<()> {
    let at = |p: &str| rootfs.join(p.trim_start_matches('/'));
    let parent = |p: &Path| -> Result<()> {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        Ok(())
    };
    match e {
        Entry::Bytes { path, data, mode } => {
            let p = at(path);
            parent(&p)?;
            fs::write(&p, data).with_context(|| format!("write {}", p.display()))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
        }
        Entry::HostFile { path, host, mode } => {
            let p = at(path);
            parent(&p)?;
            fs::copy(host, &p).with_context(|| format!("copy {}", host.display()))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
        }
        Entry::Symlink { path, target } => {
            let p = at(path);
            parent(&p)?;
            symlink(target, &p).with_context(|| format!("symlink {}", p.display()))?;
        }
        Entry::Dir { path, mode } => {
            let p = at(path);
            fs::create_dir_all(&p)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
        }
        Entry::CBinary {
            path,
            source,
            flags,
        } => {
            let p = at(path);
            parent(&p)?;
            // Libraries go after the source for the linker.
            let (libs, opts): (Vec<&String>, Vec<&String>) =
                flags.iter().partition(|f| f.starts_with("-l"));
            let mut cmd = Command::new("gcc");
            cmd.args(opts).arg("-o").arg(&p).arg(source).args(libs);
            checked(&mut cmd, Duration::from_secs(120))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The Debian base for python-app
// ---------------------------------------------------------------------------

/// Tag of the imported debootstrap rootfs the Python app builds on.
pub const PYTHON_BASE_TAG: &str = "slimd-test/bookworm-python-base:latest";

/// Makes sure [`PYTHON_ROOTFS_TAR`] exists: `debootstrap --variant=minbase
/// --include=python3 bookworm` (minutes; needs the Debian mirror over HTTP),
/// without the downloaded .debs, apt lists and device nodes.
pub fn ensure_python_rootfs() -> Result<PathBuf> {
    let tar = PathBuf::from(PYTHON_ROOTFS_TAR);
    if tar.is_file() {
        return Ok(tar);
    }
    let _lock = lock("debootstrap-python")?;
    if tar.is_file() {
        return Ok(tar);
    }
    let dir = tempfile::Builder::new()
        .prefix("rootfs-python-")
        .tempdir_in(CACHE_DIR)?;
    checked(
        Command::new("debootstrap").args([
            "--variant=minbase",
            "--include=python3",
            "bookworm",
            &dir.path().to_string_lossy(),
            "http://deb.debian.org/debian",
        ]),
        Duration::from_secs(1200),
    )
    .context("debootstrap failed (is the Debian mirror reachable over HTTP?)")?;
    let tmp = tar.with_extension("tar.tmp");
    checked(
        Command::new("tar").args([
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./var/cache/apt/archives/*.deb",
            "--exclude=./var/lib/apt/lists/*",
            "-C",
            &dir.path().to_string_lossy(),
            "-cf",
            &tmp.to_string_lossy(),
            ".",
        ]),
        Duration::from_secs(600),
    )?;
    fs::rename(&tmp, &tar)?;
    Ok(tar)
}

/// Imports the rootfs tar as [`PYTHON_BASE_TAG`] (cached by the tar's size
/// and modification time); returns the image id.
fn ensure_python_base() -> Result<String> {
    let tar = ensure_python_rootfs()?;
    let meta = fs::metadata(&tar)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let hash = hex::encode(Sha256::digest(format!(
        "v{RECIPE_VERSION} {} {} {mtime}",
        tar.display(),
        meta.len()
    )));
    if image_inputs(PYTHON_BASE_TAG).as_deref() != Some(hash.as_str()) {
        let _lock = lock(PYTHON_BASE_TAG)?;
        if image_inputs(PYTHON_BASE_TAG).as_deref() != Some(hash.as_str()) {
            let label = format!("LABEL {INPUTS_LABEL}={hash}");
            docker_timeout(
                [
                    "import",
                    "--change",
                    label.as_str(),
                    "--change",
                    "CMD [\"/bin/bash\"]",
                    &tar.to_string_lossy(),
                    PYTHON_BASE_TAG,
                ],
                Duration::from_secs(900),
            )?;
        }
    }
    image_id(PYTHON_BASE_TAG).ok_or_else(|| anyhow!("{PYTHON_BASE_TAG} missing after import"))
}

// ---------------------------------------------------------------------------
// Containers and HTTP
// ---------------------------------------------------------------------------

/// A container started by these helpers; removed (with `-f`) on drop.
#[derive(Debug)]
pub struct Container {
    pub id: String,
}

impl Container {
    /// The host port published for `container_port` (re-read each call:
    /// a restart can change it).
    pub fn host_port(&self, container_port: u16) -> Result<u16> {
        let out = docker_timeout(
            ["port", &self.id, &format!("{container_port}/tcp")],
            Duration::from_secs(30),
        )?;
        out.lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .ok_or_else(|| anyhow!("no host port for {container_port} in {out:?}"))
    }

    /// Waits for the container to exit; its exit code.
    pub fn wait(&self, timeout: Duration) -> Result<i64> {
        let out = docker_timeout(["wait", &self.id], timeout)?;
        out.parse()
            .with_context(|| format!("docker wait said {out:?}"))
    }

    /// (stdout, stderr) so far.
    pub fn logs(&self) -> Result<(String, String)> {
        let out = run_with_timeout(
            Command::new("docker").args(["logs", &self.id]),
            Duration::from_secs(30),
        )?;
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_timeout(["rm", "-f", "-v", &self.id], Duration::from_secs(60));
    }
}

/// `docker run -d` of `image` with its port (if any) published on
/// 127.0.0.1 and the [`RUN_LABEL`] label; `extra` goes before the image name.
pub fn run_detached(image: TestImage, extra: &[&str]) -> Result<Container> {
    let label = format!("{RUN_LABEL}={}", image.name());
    let mut args = vec!["run", "-d", "--label", label.as_str()];
    let publish = image.port().map(|p| format!("127.0.0.1::{p}"));
    if let Some(p) = &publish {
        args.extend(["-p", p.as_str()]);
    }
    args.extend(extra);
    args.push(image.tag());
    let id = docker_timeout(args, Duration::from_secs(120))?;
    Ok(Container { id })
}

/// Removes every container the helpers started (by [`RUN_LABEL`]).
pub fn remove_test_containers() -> Result<()> {
    let ids = docker_timeout(
        ["ps", "-aq", "--filter", &format!("label={RUN_LABEL}")],
        Duration::from_secs(60),
    )?;
    for id in ids.split_whitespace() {
        let _ = docker_timeout(["rm", "-f", "-v", id], Duration::from_secs(60));
    }
    Ok(())
}

/// A plain HTTP/1.0 GET to 127.0.0.1:`port`; retries until a status line
/// arrives or `timeout` passes (docker-proxy accepts before the app listens).
/// Returns (status, body).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match http_get_once(port, path) {
            Ok(r) => return Ok(r),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "GET {path} on 127.0.0.1:{port}: no HTTP answer within {}s (last: {last})",
        timeout.as_secs()
    )
}

fn http_get_once(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete response ({} bytes)", buf.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {:?}", head.lines().next()))?;
    Ok((status, body.to_string()))
}

/// The size of a local image in bytes, as the engine reports it.
pub fn image_size(tag: &str) -> Result<u64> {
    let s = docker_timeout(
        ["image", "inspect", "--format", "{{.Size}}", tag],
        Duration::from_secs(60),
    )?;
    s.parse().with_context(|| format!("image size {s:?}"))
}
