//! Whether a user may read (or write) a host path, decided the way the
//! kernel decides for that user: search permission on every directory on
//! the way, then the wanted permission on the file, from its owner, group,
//! mode bits and POSIX access ACL (`system.posix_acl_access`, see acl(5)).
//!
//! The daemon runs as root; a client's host path must be checked with the
//! client's ids ([`Ids`], from the connection's peer credentials), never
//! with root's. Anything the daemon cannot inspect is refused.

use std::{
    ffi::CString,
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt},
    },
    path::{Path, PathBuf},
};

/// Read permission.
pub const READ: u32 = 4;
/// Write permission.
pub const WRITE: u32 = 2;
/// Search (directories) or execute permission.
pub const SEARCH: u32 = 1;

/// The ids permission checks use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ids {
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Why access is refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: cannot be inspected: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: permission denied ({what})")]
    Denied { path: PathBuf, what: &'static str },
    #[error("{path}: {what} (refused)")]
    Kind { path: PathBuf, what: &'static str },
    #[error("{path}: more than {limit} entries below it (refused: too large to check)")]
    TooLarge { path: PathBuf, limit: usize },
}

/// An inode's access facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub acl: Option<Acl>,
}

/// A POSIX access ACL's entries (beyond the mode bits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    pub users: Vec<(u32, u32)>,
    pub groups: Vec<(u32, u32)>,
    pub group_obj: u32,
    pub mask: Option<u32>,
}

const ACL_XATTR_VERSION: u32 = 2;
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

impl Acl {
    /// Parses the xattr value: a little-endian u32 version (2), then
    /// entries of u16 tag, u16 permissions, u32 id.
    pub fn parse(raw: &[u8]) -> Option<Acl> {
        let (head, body) = raw.split_at_checked(4)?;
        if u32::from_le_bytes(head.try_into().ok()?) != ACL_XATTR_VERSION || body.len() % 8 != 0 {
            return None;
        }
        let mut acl = Acl::default();
        for e in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u32::from(u16::from_le_bytes([e[2], e[3]])) & 7;
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            match tag {
                ACL_USER => acl.users.push((id, perm)),
                ACL_GROUP => acl.groups.push((id, perm)),
                ACL_GROUP_OBJ => acl.group_obj = perm,
                ACL_MASK => acl.mask = Some(perm),
                ACL_USER_OBJ | ACL_OTHER => {}
                _ => return None,
            }
        }
        Some(acl)
    }
}

impl Perms {
    /// Whether `ids` have every bit of `want` (acl(5)'s access check).
    pub fn allow(&self, ids: &Ids, want: u32) -> bool {
        if ids.uid == 0 {
            return true;
        }
        let has = |perm: u32| perm & want == want;
        let owner = (self.mode >> 6) & 7;
        let group = (self.mode >> 3) & 7;
        let other = self.mode & 7;
        if self.uid == ids.uid {
            return has(owner);
        }
        let Some(acl) = &self.acl else {
            return if ids.in_group(self.gid) {
                has(group)
            } else {
                has(other)
            };
        };
        let mask = acl.mask.unwrap_or(7);
        if let Some((_, p)) = acl.users.iter().find(|(u, _)| *u == ids.uid) {
            return has(p & mask);
        }
        let mut matched = false;
        let group_entries = std::iter::once((self.gid, acl.group_obj)).chain(acl.groups.clone());
        for (g, p) in group_entries {
            if ids.in_group(g) {
                matched = true;
                if has(p & mask) {
                    return true;
                }
            }
        }
        !matched && has(other)
    }
}

/// The access facts of `path` itself (a symlink is not followed).
pub fn perms(path: &Path) -> Result<(Perms, std::fs::FileType), AccessError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| AccessError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((
        Perms {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            acl: access_acl(path),
        },
        meta.file_type(),
    ))
}

fn access_acl(path: &Path) -> Option<Acl> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"system.posix_acl_access";
    let mut buf = vec![0u8; 4096];
    // SAFETY: lgetxattr writes at most buf.len() bytes into buf; both
    // strings are NUL-terminated.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Acl::parse(&buf)
}

/// Checks that `ids` may reach and use `path` (absolute, no symlinks:
/// canonicalize it first): search on each directory above it, `want` on
/// it. With `whole_tree`, a directory's every entry below it must be
/// readable too (directories also searchable), with no device node or
/// socket among them; symlinks are not followed (in a container they point
/// into the container). At most `limit` entries are looked at.
pub fn check(
    path: &Path,
    ids: &Ids,
    want: u32,
    whole_tree: bool,
    limit: usize,
) -> Result<(), AccessError> {
    let mut dir = PathBuf::from("/");
    for c in path.parent().into_iter().flat_map(Path::components).skip(1) {
        dir.push(c);
        let (p, _) = perms(&dir)?;
        if !p.allow(ids, SEARCH) {
            return Err(AccessError::Denied {
                path: dir,
                what: "no search permission on a directory above it",
            });
        }
    }
    if path != Path::new("/") {
        let (p, _) = perms(Path::new("/"))?;
        if !p.allow(ids, SEARCH) {
            return Err(AccessError::Denied {
                path: "/".into(),
                what: "no search permission",
            });
        }
    }
    let (p, kind) = perms(path)?;
    refuse_kind(path, &kind)?;
    let want_here = if kind.is_dir() { want | SEARCH } else { want };
    if !p.allow(ids, want_here) {
        return Err(AccessError::Denied {
            path: path.to_path_buf(),
            what: what(want_here),
        });
    }
    if whole_tree && kind.is_dir() {
        let mut seen = 0usize;
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| AccessError::Inspect {
                path: d.clone(),
                source,
            })?;
            for e in entries {
                let e = e.map_err(|source| AccessError::Inspect {
                    path: d.clone(),
                    source,
                })?;
                seen += 1;
                if seen > limit {
                    return Err(AccessError::TooLarge {
                        path: path.to_path_buf(),
                        limit,
                    });
                }
                let child = e.path();
                let (p, kind) = perms(&child)?;
                if kind.is_symlink() {
                    continue;
                }
                refuse_kind(&child, &kind)?;
                let need = if kind.is_dir() { READ | SEARCH } else { READ };
                if !p.allow(ids, need) {
                    return Err(AccessError::Denied {
                        path: child,
                        what: what(need),
                    });
                }
                if kind.is_dir() {
                    stack.push(child);
                }
            }
        }
    }
    Ok(())
}

fn refuse_kind(path: &Path, kind: &std::fs::FileType) -> Result<(), AccessError> {
    let what = if kind.is_block_device() || kind.is_char_device() {
        "a device node"
    } else if kind.is_socket() {
        "a socket"
    } else {
        return Ok(());
    };
    Err(AccessError::Kind {
        path: path.to_path_buf(),
        what,
    })
}

fn what(want: u32) -> &'static str {
    match want {
        w if w & WRITE != 0 => "no write permission",
        w if w & SEARCH != 0 => "no read and search permission",
        _ => "no read permission",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(uid: u32, gid: u32, groups: &[u32]) -> Ids {
        Ids {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    fn file(uid: u32, gid: u32, mode: u32) -> Perms {
        Perms {
            uid,
            gid,
            mode,
            acl: None,
        }
    }

    #[test]
    fn mode_bits_decide_by_owner_then_group_then_other() {
        let shadow = file(0, 42, 0o640);
        assert!(!shadow.allow(&ids(1000, 1000, &[]), READ));
        assert!(shadow.allow(&ids(1000, 1000, &[42]), READ));
        assert!(!shadow.allow(&ids(1000, 1000, &[42]), WRITE));
        assert!(shadow.allow(&ids(0, 0, &[]), READ | WRITE));
        // The owner class decides for the owner, even against other bits.
        let odd = file(1000, 1000, 0o047);
        assert!(!odd.allow(&ids(1000, 1000, &[]), READ));
        assert!(odd.allow(&ids(1001, 5, &[]), READ | WRITE));
    }

    #[test]
    fn acl_entries_are_masked_and_a_matching_group_shuts_out_other() {
        let mut raw = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (ACL_USER_OBJ, 6u16, u32::MAX),
            (ACL_USER, 6, 2000),
            (ACL_GROUP_OBJ, 0, u32::MAX),
            (ACL_GROUP, 4, 3000),
            (ACL_MASK, 4, u32::MAX),
            (ACL_OTHER, 4, u32::MAX),
        ] {
            raw.extend(tag.to_le_bytes());
            raw.extend(perm.to_le_bytes());
            raw.extend(id.to_le_bytes());
        }
        let acl = Acl::parse(&raw).unwrap();
        let p = Perms {
            uid: 0,
            gid: 50,
            mode: 0o644,
            acl: Some(acl),
        };
        assert!(p.allow(&ids(2000, 1, &[]), READ));
        assert!(!p.allow(&ids(2000, 1, &[]), WRITE), "masked");
        assert!(p.allow(&ids(4000, 1, &[3000]), READ));
        assert!(
            !p.allow(&ids(4000, 50, &[]), READ),
            "group_obj grants nothing"
        );
        assert!(p.allow(&ids(4000, 1, &[]), READ), "other");
        assert!(Acl::parse(&[1, 0, 0, 0]).is_none());
        assert!(Acl::parse(&raw[..7]).is_none());
    }

    #[test]
    fn a_tree_is_checked_entry_by_entry() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok"), "x").unwrap();
        std::fs::write(root.join("secret"), "x").unwrap();
        std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        for p in [root.clone(), root.join("sub")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(root.join("sub/ok"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let me = std::fs::metadata(&root).unwrap().uid();
        let stranger = ids(me.wrapping_add(4242), 4242, &[]);
        // Reading the directory itself or a readable file is fine (the
        // temporary directory's parents are searchable by anyone)...
        check(&root, &stranger, READ, false, 100).unwrap();
        check(&root.join("sub/ok"), &stranger, READ, false, 100).unwrap();
        // ...but the whole tree holds a file only its owner may read.
        let e = check(&root, &stranger, READ, true, 100).unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        assert!(matches!(
            check(&root, &ids(me, 0, &[]), READ, true, 1).unwrap_err(),
            AccessError::TooLarge { .. }
        ));
        assert!(check(&root, &ids(me, 0, &[]), READ, true, 100).is_ok());
        let e = check(Path::new("/dev/null"), &stranger, READ, false, 10).unwrap_err();
        assert!(e.to_string().contains("device node"), "{e}");
    }
}
