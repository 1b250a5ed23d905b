//! Resolving image paths through symlinks, the kernel's way with the image
//! root as `/`: absolute symlink targets restart at the image root, relative
//! ones at the link's directory, `..` at the root stays at the root, and
//! more than [`MAX_SYMLINKS`] links in one lookup is a loop (ELOOP). It also
//! returns every symlink it passed through: a slim image must keep each of
//! them for the path to keep working.

use super::{EntryKind, ImageFs};
use crate::image::error::{ImageError, Result};
use crate::image::path::normalize;

/// The kernel's limit on symlinks followed in one lookup.
pub const MAX_SYMLINKS: u32 = 40;

/// How to treat the last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Follow a symlink in the last component (stat/open) or not
    /// (lstat/readlink). A trailing slash always follows.
    pub follow_last: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions { follow_last: true }
    }
}

impl ResolveOptions {
    /// lstat/readlink semantics.
    pub fn no_follow() -> Self {
        ResolveOptions { follow_last: false }
    }
}

/// Where a path leads inside the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    /// The final clean path. When the lookup failed part way, this is the
    /// missing path with the rest of the input appended lexically.
    pub path: String,
    /// Whether the final path exists (false also when a middle component is
    /// not a directory, or a trailing slash names a non-directory).
    pub exists: bool,
    /// Every symlink passed through, in the order first met, each once.
    pub symlinks: Vec<String>,
}

impl ImageFs {
    /// Resolves `path` from the image root (a relative path is taken from "/").
    pub fn resolve(&self, path: &str, opts: ResolveOptions) -> Result<Resolution> {
        self.resolve_at("/", path, opts)
    }

    /// Resolves `path` relative to the directory `base` (a clean image path,
    /// e.g. a process's cwd); absolute paths ignore `base`.
    pub fn resolve_at(&self, base: &str, path: &str, opts: ResolveOptions) -> Result<Resolution> {
        // Work stack of components still to walk, next one last. Empty and
        // "." components stay in it: after a name they mean "this must be a
        // directory" (a trailing slash), which also makes a final symlink be
        // followed, as the kernel does.
        let mut todo: Vec<String> = components_rev(path);
        let mut cur: Vec<String> = if path.starts_with('/') {
            Vec::new()
        } else {
            normalize(base)
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut symlinks: Vec<String> = Vec::new();
        let mut followed = 0u32;
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                // `cur` is always a directory here: a non-directory followed
                // by more components ended the walk below.
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let is_last = todo.is_empty();
            cur.push(comp);
            let candidate = to_path(&cur);
            match self.get(&candidate).map(|e| &e.kind) {
                None => {
                    return Ok(Resolution {
                        path: finish_lexically(cur, todo),
                        exists: false,
                        symlinks,
                    });
                }
                Some(EntryKind::Dir) => {}
                Some(EntryKind::Symlink { target }) => {
                    if is_last && !opts.follow_last {
                        break;
                    }
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(ImageError::SymlinkLoop(path.to_string()));
                    }
                    if !symlinks.contains(&candidate) {
                        symlinks.push(candidate);
                    }
                    cur.pop();
                    if target.is_empty() {
                        // Linux: an empty target is ENOENT.
                        return Ok(Resolution {
                            path: finish_lexically(cur, todo),
                            exists: false,
                            symlinks,
                        });
                    }
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(components_rev(target));
                }
                Some(_) => {
                    if !is_last {
                        // ENOTDIR: a file used as a directory.
                        return Ok(Resolution {
                            path: finish_lexically(cur, todo),
                            exists: false,
                            symlinks,
                        });
                    }
                }
            }
        }
        Ok(Resolution {
            path: to_path(&cur),
            exists: true,
            symlinks,
        })
    }
}

/// Components of `path` reversed so `pop` gives the next; a leading slash
/// gives no component, a trailing one an empty component.
fn components_rev(path: &str) -> Vec<String> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .rev()
        .map(str::to_string)
        .collect()
}

fn to_path(parts: &[String]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>().max(1));
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The path reached so far plus what was left, cleaned without lookups.
fn finish_lexically(mut cur: Vec<String>, mut todo: Vec<String>) -> String {
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                cur.pop();
            }
            _ => cur.push(c),
        }
    }
    to_path(&cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fs::Entry;

    fn fs_with(entries: &[(&str, EntryKind)]) -> ImageFs {
        let mut fs = ImageFs::new();
        for (p, k) in entries {
            fs.insert(p, Entry::new(k.clone(), 0o755)).unwrap();
        }
        fs
    }

    fn link(t: &str) -> EntryKind {
        EntryKind::Symlink {
            target: t.to_string(),
        }
    }

    fn file() -> EntryKind {
        EntryKind::File(Default::default())
    }

    #[test]
    fn symlink_chains_absolute_and_relative() {
        let fs = fs_with(&[
            ("/usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3", file()),
            (
                "/usr/lib/x86_64-linux-gnu/libfoo.so.1",
                link("libfoo.so.1.2.3"),
            ),
            ("/lib", link("usr/lib")),
            ("/usr/bin/python3.11", file()),
            ("/usr/bin/python3", link("python3.11")),
            ("/usr/local/bin/python", link("/usr/bin/python3")),
        ]);
        let r = fs
            .resolve(
                "/lib/x86_64-linux-gnu/libfoo.so.1",
                ResolveOptions::default(),
            )
            .unwrap();
        assert!(r.exists);
        assert_eq!(r.path, "/usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3");
        assert_eq!(
            r.symlinks,
            vec!["/lib", "/usr/lib/x86_64-linux-gnu/libfoo.so.1"]
        );
        let r = fs
            .resolve("//usr/local/./bin/../bin/python", ResolveOptions::default())
            .unwrap();
        assert_eq!(r.path, "/usr/bin/python3.11");
        assert_eq!(
            r.symlinks,
            vec!["/usr/local/bin/python", "/usr/bin/python3"]
        );

        // lstat semantics stop at the last link, but still pass earlier ones.
        let r = fs
            .resolve(
                "/lib/x86_64-linux-gnu/libfoo.so.1",
                ResolveOptions::no_follow(),
            )
            .unwrap();
        assert_eq!(r.path, "/usr/lib/x86_64-linux-gnu/libfoo.so.1");
        assert_eq!(r.symlinks, vec!["/lib"]);
        // A trailing slash follows anyway.
        let r = fs.resolve("/lib/", ResolveOptions::no_follow()).unwrap();
        assert_eq!(r.path, "/usr/lib");
    }

    #[test]
    fn escapes_stay_inside_the_root() {
        let fs = fs_with(&[
            ("/etc/passwd", file()),
            ("/app/up", link("../../../../etc")),
            ("/app/abs", link("/../../etc/passwd")),
        ]);
        let r = fs
            .resolve("/../../../etc/passwd", Default::default())
            .unwrap();
        assert_eq!(r.path, "/etc/passwd");
        let r = fs.resolve("/app/up/passwd", Default::default()).unwrap();
        assert!(r.exists);
        assert_eq!(r.path, "/etc/passwd");
        let r = fs.resolve("/app/abs", Default::default()).unwrap();
        assert_eq!(r.path, "/etc/passwd");
        let r = fs
            .resolve_at("/app", "up/../etc/passwd", Default::default())
            .unwrap();
        assert_eq!(r.path, "/etc/passwd");
    }

    #[test]
    fn loops_and_missing() {
        let fs = fs_with(&[
            ("/a", link("b")),
            ("/b", link("a")),
            ("/self", link("self")),
            ("/f", file()),
            ("/dangling", link("/nowhere/x")),
        ]);
        assert!(matches!(
            fs.resolve("/a", Default::default()),
            Err(ImageError::SymlinkLoop(_))
        ));
        assert!(fs.resolve("/self/x", Default::default()).is_err());
        // lstat on a looping link is fine.
        assert!(
            fs.resolve("/a", ResolveOptions::no_follow())
                .unwrap()
                .exists
        );
        let r = fs.resolve("/f/x", Default::default()).unwrap();
        assert!(!r.exists);
        let r = fs.resolve("/f/", Default::default()).unwrap();
        assert!(!r.exists);
        let r = fs.resolve("/dangling", Default::default()).unwrap();
        assert_eq!(r.path, "/nowhere/x");
        assert!(!r.exists);
        assert_eq!(r.symlinks, vec!["/dangling"]);
        let r = fs.resolve("/missing/../f", Default::default()).unwrap();
        assert!(!r.exists, "the kernel fails at /missing before '..'");
    }

    #[test]
    fn trailing_slashes_demand_directories() {
        let fs = fs_with(&[
            ("/f", file()),
            ("/d/x", file()),
            ("/to_f_slash", link("f/")),
            ("/to_d_slash", link("d/")),
            ("/to_f", link("f")),
        ]);
        let found = |p: &str, o| fs.resolve(p, o).unwrap();
        assert!(!found("/to_f_slash", Default::default()).exists);
        assert_eq!(found("/to_d_slash", Default::default()).path, "/d");
        assert!(!found("/f/.", Default::default()).exists);
        assert!(!found("/f/..", Default::default()).exists);
        assert!(!found("/to_f/", ResolveOptions::no_follow()).exists);
        assert_eq!(
            found("/to_d_slash/.", ResolveOptions::no_follow()).path,
            "/d"
        );
        assert_eq!(found("/to_f", ResolveOptions::no_follow()).path, "/to_f");
        assert_eq!(found("/", Default::default()).path, "/");
        assert_eq!(found("", Default::default()).path, "/");
        assert_eq!(found("d//x", Default::default()).path, "/d/x");
    }

    #[test]
    fn exactly_forty_links_resolve() {
        let mut entries = vec![("/l0".to_string(), file())];
        for i in 1..=41 {
            entries.push((format!("/l{i}"), link(&format!("l{}", i - 1))));
        }
        let mut fs = ImageFs::new();
        for (p, k) in &entries {
            fs.insert(p, Entry::new(k.clone(), 0o755)).unwrap();
        }
        assert!(fs.resolve("/l40", Default::default()).unwrap().exists);
        assert!(fs.resolve("/l41", Default::default()).is_err());
    }
}
