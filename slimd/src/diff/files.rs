//! Files added, removed and changed between two flattened filesystems, and
//! the totals per top-level directory. Both sides are walked once, in path
//! order, side by side; only metadata and content hashes are compared
//! (never file bytes), so memory stays that of the two path indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{Entry, EntryKind, ImageFs};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One way a path that is on both sides differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Aspect {
    /// File type (file, dir, symlink, ...).
    Kind { a: String, b: String },
    /// Content hash (sha256) of a regular file.
    Content { a: String, b: String },
    /// Permission bits, octal.
    Mode { a: String, b: String },
    /// Owner as `uid:gid`.
    Owner { a: String, b: String },
    /// Symlink target.
    Link { a: String, b: String },
    /// Device numbers as `major:minor`.
    Device { a: String, b: String },
    /// Extended attribute names (values compared too).
    Xattrs { a: Vec<String>, b: Vec<String> },
}

/// One path that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    /// The type on side A (or B when added): file, dir, symlink, ...
    pub kind: String,
    /// Bytes on each side (0 when absent or not a regular file).
    pub size_a: u64,
    pub size_b: u64,
    /// How it changed (empty unless `change` is `changed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aspects: Vec<Aspect>,
}

/// Counts and bytes of one top-level directory (or of the whole image).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// `/usr`, `/etc`, ...; `/` for files directly in the root; empty for
    /// the whole image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// Entries that are not directories, on each side.
    pub files_a: u64,
    pub files_b: u64,
    /// Bytes of regular files on each side.
    pub bytes_a: u64,
    pub bytes_b: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Bytes of added files, removed files, and the net change of changed ones.
    pub added_bytes: u64,
    pub removed_bytes: u64,
    pub changed_bytes_delta: i64,
}

/// The file half of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    pub totals: Totals,
    pub by_top_dir: Vec<Totals>,
    /// Every path that differs, in path order.
    pub changes: Vec<FileChange>,
}

impl FileDiff {
    /// Compares two filesystems path by path.
    pub fn compute(a: &ImageFs, b: &ImageFs) -> FileDiff {
        let mut dirs: BTreeMap<String, Totals> = BTreeMap::new();
        let mut changes = Vec::new();
        let mut ia = a.iter().peekable();
        let mut ib = b.iter().peekable();
        loop {
            let step = match (ia.peek(), ib.peek()) {
                (None, None) => break,
                (Some(_), None) => Step::A,
                (None, Some(_)) => Step::B,
                (Some((pa, _)), Some((pb, _))) => match pa.cmp(pb) {
                    std::cmp::Ordering::Less => Step::A,
                    std::cmp::Ordering::Greater => Step::B,
                    std::cmp::Ordering::Equal => Step::Both,
                },
            };
            match step {
                Step::A => {
                    let (p, e) = ia.next().unwrap();
                    let t = top(&mut dirs, p);
                    count(t, e, Side::A);
                    t.removed += 1;
                    t.removed_bytes += e.size();
                    changes.push(FileChange {
                        path: p.to_string(),
                        change: Change::Removed,
                        kind: kind_name(&e.kind).into(),
                        size_a: e.size(),
                        size_b: 0,
                        aspects: Vec::new(),
                    });
                }
                Step::B => {
                    let (p, e) = ib.next().unwrap();
                    let t = top(&mut dirs, p);
                    count(t, e, Side::B);
                    t.added += 1;
                    t.added_bytes += e.size();
                    changes.push(FileChange {
                        path: p.to_string(),
                        change: Change::Added,
                        kind: kind_name(&e.kind).into(),
                        size_a: 0,
                        size_b: e.size(),
                        aspects: Vec::new(),
                    });
                }
                Step::Both => {
                    let (p, ea) = ia.next().unwrap();
                    let (_, eb) = ib.next().unwrap();
                    let t = top(&mut dirs, p);
                    count(t, ea, Side::A);
                    count(t, eb, Side::B);
                    let aspects = aspects(ea, eb);
                    if !aspects.is_empty() {
                        t.changed += 1;
                        t.changed_bytes_delta += eb.size() as i64 - ea.size() as i64;
                        changes.push(FileChange {
                            path: p.to_string(),
                            change: Change::Changed,
                            kind: kind_name(&ea.kind).into(),
                            size_a: ea.size(),
                            size_b: eb.size(),
                            aspects,
                        });
                    }
                }
            }
        }
        let mut totals = Totals::default();
        for t in dirs.values() {
            totals.files_a += t.files_a;
            totals.files_b += t.files_b;
            totals.bytes_a += t.bytes_a;
            totals.bytes_b += t.bytes_b;
            totals.added += t.added;
            totals.removed += t.removed;
            totals.changed += t.changed;
            totals.added_bytes += t.added_bytes;
            totals.removed_bytes += t.removed_bytes;
            totals.changed_bytes_delta += t.changed_bytes_delta;
        }
        FileDiff {
            totals,
            by_top_dir: dirs.into_values().collect(),
            changes,
        }
    }

    /// Whether the two filesystems hold the same paths with the same
    /// contents and metadata.
    pub fn is_same(&self) -> bool {
        self.changes.is_empty()
    }
}

enum Step {
    A,
    B,
    Both,
}

#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

/// The top-level directory a path is counted under.
fn top_dir(path: &str) -> &str {
    let rest = &path[1.min(path.len())..];
    match rest.find('/') {
        Some(i) => &path[..i + 1],
        None => {
            if rest.is_empty() {
                "/"
            } else {
                path
            }
        }
    }
}

fn top<'a>(dirs: &'a mut BTreeMap<String, Totals>, path: &str) -> &'a mut Totals {
    let d = top_dir(path);
    dirs.entry(d.to_string()).or_insert_with(|| Totals {
        dir: d.to_string(),
        ..Totals::default()
    })
}

fn count(t: &mut Totals, e: &Entry, side: Side) {
    if e.is_dir() {
        return;
    }
    match side {
        Side::A => {
            t.files_a += 1;
            t.bytes_a += e.size();
        }
        Side::B => {
            t.files_b += 1;
            t.bytes_b += e.size();
        }
    }
}

fn kind_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::Dir => "dir",
        EntryKind::File(_) => "file",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::CharDevice { .. } => "char_device",
        EntryKind::BlockDevice { .. } => "block_device",
        EntryKind::Fifo => "fifo",
    }
}

/// How two entries at one path differ (mtime and layer do not count).
fn aspects(a: &Entry, b: &Entry) -> Vec<Aspect> {
    let mut out = Vec::new();
    match (&a.kind, &b.kind) {
        (EntryKind::File(x), EntryKind::File(y)) => {
            if x.sha256 != y.sha256 {
                out.push(Aspect::Content {
                    a: hex::encode(x.sha256),
                    b: hex::encode(y.sha256),
                });
            }
        }
        (EntryKind::Symlink { target: x }, EntryKind::Symlink { target: y }) => {
            if x != y {
                out.push(Aspect::Link {
                    a: x.clone(),
                    b: y.clone(),
                });
            }
        }
        (
            EntryKind::CharDevice { major, minor },
            EntryKind::CharDevice {
                major: m2,
                minor: n2,
            },
        )
        | (
            EntryKind::BlockDevice { major, minor },
            EntryKind::BlockDevice {
                major: m2,
                minor: n2,
            },
        ) => {
            if (major, minor) != (m2, n2) {
                out.push(Aspect::Device {
                    a: format!("{major}:{minor}"),
                    b: format!("{m2}:{n2}"),
                });
            }
        }
        (EntryKind::Dir, EntryKind::Dir) | (EntryKind::Fifo, EntryKind::Fifo) => {}
        (x, y) => out.push(Aspect::Kind {
            a: kind_name(x).into(),
            b: kind_name(y).into(),
        }),
    }
    // A symlink's mode means nothing on Linux.
    if a.mode != b.mode && !(a.is_symlink() && b.is_symlink()) {
        out.push(Aspect::Mode {
            a: format!("{:04o}", a.mode),
            b: format!("{:04o}", b.mode),
        });
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(Aspect::Owner {
            a: format!("{}:{}", a.uid, a.gid),
            b: format!("{}:{}", b.uid, b.gid),
        });
    }
    if a.xattrs != b.xattrs {
        out.push(Aspect::Xattrs {
            a: a.xattrs.iter().map(|(n, _)| n.clone()).collect(),
            b: b.xattrs.iter().map(|(n, _)| n.clone()).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_dirs() {
        assert_eq!(top_dir("/"), "/");
        assert_eq!(top_dir("/usr"), "/usr");
        assert_eq!(top_dir("/usr/bin/ls"), "/usr");
        assert_eq!(top_dir("/etc/passwd"), "/etc");
    }
}
