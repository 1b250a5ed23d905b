//! Image paths, lexically: cleaning tar names, joining, parents, names.
//!
//! Every path in this library is absolute and clean ("/usr/bin/python3"):
//! one leading slash, no `.`/`..`, no repeated or trailing slashes. The root
//! is "/". Resolution through symlinks, which needs the filesystem, lives
//! with it in [`super::fs::resolve`].
//!
//! Paths are path strings (see [`super::name`]): a name that is not UTF-8
//! holds escape code points, never `/`, so splitting and joining on `/`
//! works on them unchanged; lengths that the kernel limits are counted in
//! bytes ([`super::name::byte_len`]).

/// Longest cleaned entry name we accept from a layer (PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// Cleans a tar entry or hardlink name into an absolute image path.
/// Leading slashes are contained (they name the same place under the image
/// root); `..` that would leave the root is refused.
pub fn clean_entry_path(name: &str) -> std::result::Result<String, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.contains('\0') {
        return Err("NUL in name");
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("'..' leaves the image root");
                }
            }
            c => parts.push(c),
        }
    }
    let out = format!("/{}", parts.join("/"));
    if super::name::byte_len(&out) > MAX_PATH_LEN {
        return Err("name longer than PATH_MAX");
    }
    Ok(out)
}

/// Cleans any path lexically (no symlinks consulted); `..` at the root stays
/// at the root and relative paths are taken from the root.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    push_components(&mut parts, path);
    format!("/{}", parts.join("/"))
}

/// Joins `rel` onto the directory `base` lexically; an absolute `rel` wins.
pub fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return normalize(rel);
    }
    let mut parts: Vec<&str> = Vec::new();
    push_components(&mut parts, base);
    push_components(&mut parts, rel);
    format!("/{}", parts.join("/"))
}

fn push_components<'a>(parts: &mut Vec<&'a str>, path: &'a str) {
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
}

/// The directory holding a clean path ("/" for "/" itself).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a clean path ("" for "/").
pub fn file_name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Ancestors of a clean path, nearest last, root excluded
/// ("/a/b/c" gives "/a", "/a/b").
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .map(move |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean_entry_path("./usr/bin/").unwrap(), "/usr/bin");
        assert_eq!(clean_entry_path("/etc//passwd").unwrap(), "/etc/passwd");
        assert_eq!(clean_entry_path("a/../b").unwrap(), "/b");
        assert_eq!(clean_entry_path("./").unwrap(), "/");
        assert!(clean_entry_path("../etc/passwd").is_err());
        assert!(clean_entry_path("a/../../b").is_err());
        assert_eq!(normalize("../../a//./b/.."), "/a");
        assert_eq!(join("/usr/lib", "../bin/x"), "/usr/bin/x");
        assert_eq!(join("/usr/lib", "/etc"), "/etc");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a", "/a/b"]);
    }
}
