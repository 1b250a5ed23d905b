//! Content served or read by name: the directory trees (a web server's
//! document root, templates, locale catalogs, static assets) that the app
//! reads files from by the name a request gives.
//!
//! A crawl never reaches every page: custom error pages, pages linked only
//! from scripts, sitemaps, downloads. A template-driven app loads templates
//! route by route. Kept file by file, such a tree loses everything the
//! probes did not ask for, so under the `package` granularity it is kept
//! whole (`--granularity file`, or a `file:PATH` override, keeps only what
//! was used).
//!
//! A *content root* is found from each regular file the app opened for
//! reading that
//! - no operating-system package owns (dpkg or apk database), that no
//!   language package or app source tree holds (those follow their own
//!   rules), and that is not an ELF object;
//! - lies outside the system trees: code (`/usr/lib`, `/usr/bin`, ...),
//!   state and caches (`/var/lib`, `/var/cache`, `/var/log`, ...), scratch
//!   (`/tmp`, `/run`), and the operating system's own data (`/usr/share/
//!   locale`, `/usr/share/zoneinfo`, CA certificates, ...).
//!
//! The root starts at the file's directory and climbs to the parent while
//! the parent is not a top-level directory (`/srv`, `/opt`, `/etc`,
//! `/usr/share`, `/var`, `/home`, ...), holds no ELF file, no language
//! package or app source tree, and no file of an OS package besides those
//! already below the root. So reads in `/srv/www/docs/` keep `/srv/www`,
//! a server's include directory `/etc/nginx/conf.d` stays itself (its
//! parent holds packaged files), and a directory of programs is never
//! content. The start directory may hold packaged files: a web server's
//! package often puts a default page in the document root the image then
//! fills.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use crate::image::path::parent;
use crate::image::{ImageFs, PackageDb};
use crate::resolve::packages::is_below;

/// Never a content root, and never climbed into.
const TOP_DIRS: &[&str] = &[
    "/",
    "/etc",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/srv",
    "/usr",
    "/usr/local",
    "/usr/local/share",
    "/usr/share",
    "/var",
    "/var/opt",
];

/// Trees whose files never make a content root: code, state, scratch, and
/// the operating system's own data.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/sbin",
    "/usr/src",
    "/usr/local/bin",
    "/usr/local/include",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/share/X11",
    "/usr/share/ca-certificates",
    "/usr/share/doc",
    "/usr/share/fonts",
    "/usr/share/i18n",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/man",
    "/usr/share/mime",
    "/usr/share/misc",
    "/usr/share/terminfo",
    "/usr/share/zoneinfo",
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/ssl",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

/// What [`find`] needs.
pub struct ContentInput<'a> {
    pub fs: &'a ImageFs,
    /// Regular files the app opened for reading (image paths, symlinks
    /// resolved).
    pub read: &'a BTreeSet<String>,
    /// The image's operating-system packages.
    pub os: &'a PackageDb,
    /// Whether a path belongs to a language package or an app source tree.
    pub is_code: &'a dyn Fn(&str) -> bool,
    /// Language package directories and app source trees.
    pub code_dirs: &'a [String],
}

/// One tree kept whole because the app read files from it by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentRoot {
    pub root: String,
    /// The first file read below it (in path order).
    pub read: String,
}

/// What a directory's subtree holds (memoised while climbing).
#[derive(Clone, Copy, Debug)]
struct Facts {
    /// An ELF file, or a path of a language package or app tree.
    code: bool,
    /// Non-directories an OS package owns.
    os_files: usize,
}

/// Finds the content roots; see the module docs. None lies below another.
pub fn find(input: &ContentInput<'_>) -> Vec<ContentRoot> {
    let mut memo: HashMap<String, Facts> = HashMap::new();
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for f in input.read {
        if !triggers(input, f) {
            continue;
        }
        let start = parent(f);
        if !eligible(input, start) {
            continue;
        }
        let mut facts = facts_of(input, start, &mut memo);
        if facts.code {
            continue;
        }
        let mut root = start;
        loop {
            let up = parent(root);
            if !eligible(input, up) {
                break;
            }
            let up_facts = facts_of(input, up, &mut memo);
            if up_facts.code || up_facts.os_files != facts.os_files {
                break;
            }
            root = up;
            facts = up_facts;
        }
        found.entry(root.to_string()).or_insert_with(|| f.clone());
    }
    let roots: Vec<String> = found.keys().cloned().collect();
    found
        .into_iter()
        .filter(|(r, _)| !roots.iter().any(|o| is_below(r, o)))
        .map(|(root, read)| ContentRoot { root, read })
        .collect()
}

fn in_system_tree(path: &str) -> bool {
    SYSTEM_TREES.iter().any(|t| path == *t || is_below(path, t))
}

/// Whether reading `f` can make a content root.
fn triggers(input: &ContentInput<'_>, f: &str) -> bool {
    input.fs.get(f).is_some_and(|e| e.is_file())
        && !in_system_tree(f)
        && input.os.owner_of(f).is_none()
        && !(input.is_code)(f)
        && !input.code_dirs.iter().any(|c| is_below(f, c))
        && !is_elf(input.fs, f)
}

/// Whether `dir` may be (part of) a content root.
fn eligible(input: &ContentInput<'_>, dir: &str) -> bool {
    !TOP_DIRS.contains(&dir)
        && !in_system_tree(dir)
        && !input
            .code_dirs
            .iter()
            .any(|c| c == dir || is_below(dir, c) || is_below(c, dir))
}

fn facts_of(input: &ContentInput<'_>, dir: &str, memo: &mut HashMap<String, Facts>) -> Facts {
    if let Some(f) = memo.get(dir) {
        return *f;
    }
    let mut facts = Facts {
        code: false,
        os_files: 0,
    };
    for (p, e) in input.fs.descendants(dir) {
        if (input.is_code)(p) || (e.is_file() && is_elf(input.fs, p)) {
            facts.code = true;
            break;
        }
        if !e.is_dir() && input.os.owner_of(p).is_some() {
            facts.os_files += 1;
        }
    }
    memo.insert(dir.to_string(), facts);
    facts
}

/// Whether a regular file starts with the ELF magic.
fn is_elf(fs: &ImageFs, path: &str) -> bool {
    let mut head = [0u8; 4];
    fs.open_entry(path)
        .ok()
        .is_some_and(|mut r| r.read_exact(&mut head).is_ok() && &head == b"\x7fELF")
}
