//! The original image's file bytes by directory, and by the OS package
//! that installed them, each byte marked by its fate in the slim image:
//! kept because the app used it (or what it used needs it), kept by a rule
//! (always-keep, a flag, a package or tree kept whole), or dropped. The HTML
//! report draws it as an icicle; the session stores it in the report.
//!
//! A big image has tens of thousands of files, so the tree is cut to a
//! budget of nodes: the largest directories are opened first, and the
//! smallest entries of a directory fold into one "N more" node. Folding
//! keeps every sum, so the root always holds all the original's bytes.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

/// What became of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Kept: the app used it, or something it used needs it.
    Used,
    /// Kept by a rule, not because the trace showed it used.
    Rule,
    Dropped,
}

/// One directory, file, or folded group of small entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeNode {
    pub name: String,
    /// Bytes kept because they were used.
    pub used: u64,
    /// Bytes kept by a rule.
    pub rule: u64,
    pub dropped: u64,
    /// Regular files below (1 for a file).
    pub files: u64,
    /// Directory whose entries are not listed (the node budget ran out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<SizeNode>,
}

impl SizeNode {
    pub fn bytes(&self) -> u64 {
        self.used + self.rule + self.dropped
    }
}

/// Bytes of one OS package by fate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageBytes {
    pub name: String,
    pub used: u64,
    pub rule: u64,
    pub dropped: u64,
    pub files: u64,
}

/// See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeTree {
    /// `/`: every regular file of the original.
    pub root: SizeNode,
    /// Files no OS package lists, by fate, under the name `(no package)`,
    /// then each package, largest first.
    pub packages: Vec<PackageBytes>,
}

/// One regular file of the original.
pub struct FileFate<'a> {
    pub path: &'a str,
    pub size: u64,
    pub fate: Fate,
    /// The OS package that installed it.
    pub package: Option<&'a str>,
}

/// Most nodes a tree keeps (about 150 kB of JSON, 600 kB of page at most).
pub const NODE_BUDGET: usize = 1200;
/// Most entries one directory lists before the rest fold.
const LIST_PER_DIR: usize = 60;

struct Raw {
    name: String,
    sums: [u64; 3],
    files: u64,
    children: BTreeMap<String, usize>,
}

fn add(sums: &mut [u64; 3], fate: Fate, size: u64) {
    let i = match fate {
        Fate::Used => 0,
        Fate::Rule => 1,
        Fate::Dropped => 2,
    };
    sums[i] += size;
}

impl SizeTree {
    /// The tree of `files`, cut to `budget` nodes.
    pub fn build<'a>(files: impl IntoIterator<Item = FileFate<'a>>, budget: usize) -> SizeTree {
        let mut arena = vec![Raw {
            name: "/".into(),
            sums: [0; 3],
            files: 0,
            children: BTreeMap::new(),
        }];
        let mut packages: HashMap<&str, ([u64; 3], u64)> = HashMap::new();
        for f in files {
            let p = packages.entry(f.package.unwrap_or("")).or_default();
            add(&mut p.0, f.fate, f.size);
            p.1 += 1;
            let mut at = 0;
            add(&mut arena[0].sums, f.fate, f.size);
            arena[0].files += 1;
            for part in f.path.split('/').filter(|s| !s.is_empty()) {
                let next = match arena[at].children.get(part) {
                    Some(&i) => i,
                    None => {
                        arena.push(Raw {
                            name: part.to_string(),
                            sums: [0; 3],
                            files: 0,
                            children: BTreeMap::new(),
                        });
                        let i = arena.len() - 1;
                        arena[at].children.insert(part.to_string(), i);
                        i
                    }
                };
                at = next;
                add(&mut arena[at].sums, f.fate, f.size);
                arena[at].files += 1;
            }
        }
        let open = choose_open(&arena, budget);
        let root = emit(&arena, 0, &open);
        let mut packages: Vec<PackageBytes> = packages
            .into_iter()
            .map(|(name, (s, files))| PackageBytes {
                name: if name.is_empty() {
                    "(no package)".into()
                } else {
                    name.to_string()
                },
                used: s[0],
                rule: s[1],
                dropped: s[2],
                files,
            })
            .collect();
        packages.sort_by(|a, b| {
            let t = |p: &PackageBytes| p.used + p.rule + p.dropped;
            t(b).cmp(&t(a)).then_with(|| a.name.cmp(&b.name))
        });
        SizeTree { root, packages }
    }
}

fn total(r: &Raw) -> u64 {
    r.sums.iter().sum()
}

/// The directories to list, largest first, while the budget lasts.
fn choose_open(arena: &[Raw], budget: usize) -> Vec<bool> {
    let mut open = vec![false; arena.len()];
    let mut heap = BinaryHeap::from([(total(&arena[0]), 0usize)]);
    let mut nodes = 1usize;
    while let Some((_, i)) = heap.pop() {
        let listed = arena[i].children.len().min(LIST_PER_DIR + 1);
        if nodes + listed > budget {
            continue;
        }
        nodes += listed;
        open[i] = true;
        for c in listed_children(arena, i) {
            if !arena[c].children.is_empty() {
                heap.push((total(&arena[c]), c));
            }
        }
    }
    open
}

/// A directory's entries, largest first.
fn sorted_children(arena: &[Raw], i: usize) -> Vec<usize> {
    let mut kids: Vec<usize> = arena[i].children.values().copied().collect();
    kids.sort_by(|&a, &b| {
        total(&arena[b])
            .cmp(&total(&arena[a]))
            .then_with(|| arena[a].name.cmp(&arena[b].name))
    });
    kids
}

/// The entries a listed directory shows by name (the rest fold).
fn listed_children(arena: &[Raw], i: usize) -> Vec<usize> {
    let mut kids = sorted_children(arena, i);
    if kids.len() > LIST_PER_DIR + 1 {
        kids.truncate(LIST_PER_DIR);
    }
    kids
}

fn emit(arena: &[Raw], i: usize, open: &[bool]) -> SizeNode {
    let r = &arena[i];
    let mut node = SizeNode {
        name: r.name.clone(),
        used: r.sums[0],
        rule: r.sums[1],
        dropped: r.sums[2],
        files: r.files,
        folded: !r.children.is_empty() && !open[i],
        children: Vec::new(),
    };
    if !open[i] {
        return node;
    }
    let mut kids = sorted_children(arena, i);
    let rest = if kids.len() > LIST_PER_DIR + 1 {
        kids.split_off(LIST_PER_DIR)
    } else {
        Vec::new()
    };
    node.children = kids.iter().map(|&c| emit(arena, c, open)).collect();
    if !rest.is_empty() {
        let mut more = SizeNode {
            name: format!("({} more entries)", rest.len()),
            folded: true,
            ..Default::default()
        };
        for c in rest {
            let s = &arena[c].sums;
            more.used += s[0];
            more.rule += s[1];
            more.dropped += s[2];
            more.files += arena[c].files;
        }
        node.children.push(more);
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64, fate: Fate) -> FileFate<'_> {
        FileFate {
            path,
            size,
            fate,
            package: None,
        }
    }

    fn check_sums(n: &SizeNode) {
        if !n.children.is_empty() {
            let sum: u64 = n.children.iter().map(SizeNode::bytes).sum();
            let files: u64 = n.children.iter().map(|c| c.files).sum();
            assert_eq!(sum, n.bytes(), "bytes of {}", n.name);
            assert_eq!(files, n.files, "files of {}", n.name);
            n.children.iter().for_each(check_sums);
        }
    }

    #[test]
    fn sums_by_directory_and_fate() {
        let t = SizeTree::build(
            [
                f("/usr/bin/app", 100, Fate::Used),
                f("/usr/lib/libc.so", 50, Fate::Used),
                f("/usr/share/doc/x", 7, Fate::Dropped),
                f("/etc/passwd", 3, Fate::Rule),
            ],
            NODE_BUDGET,
        );
        assert_eq!(t.root.bytes(), 160);
        assert_eq!((t.root.used, t.root.rule, t.root.dropped), (150, 3, 7));
        assert_eq!(t.root.files, 4);
        let usr = &t.root.children[0];
        assert_eq!((usr.name.as_str(), usr.bytes()), ("usr", 157));
        assert_eq!(usr.children[0].name, "bin", "largest first");
        check_sums(&t.root);
        assert_eq!(t.packages.len(), 1);
        assert_eq!(t.packages[0].name, "(no package)");
    }

    #[test]
    fn budget_folds_but_keeps_every_byte() {
        let paths: Vec<String> = (0..500)
            .map(|i| format!("/d{}/sub{}/f{i}", i % 7, i % 13))
            .collect();
        let files = paths
            .iter()
            .enumerate()
            .map(|(i, p)| f(p, i as u64 + 1, Fate::Dropped));
        let t = SizeTree::build(files, 40);
        let all: u64 = (1..=500).sum();
        assert_eq!(t.root.bytes(), all);
        assert_eq!(t.root.files, 500);
        check_sums(&t.root);
        fn count(n: &SizeNode) -> usize {
            1 + n.children.iter().map(count).sum::<usize>()
        }
        assert!(count(&t.root) <= 40, "{}", count(&t.root));
        assert!(t.root.children.iter().any(|c| c.folded));
    }

    #[test]
    fn wide_directories_fold_their_smallest_entries() {
        let paths: Vec<String> = (0..200).map(|i| format!("/many/f{i:03}")).collect();
        let files = paths
            .iter()
            .enumerate()
            .map(|(i, p)| f(p, i as u64, Fate::Used));
        let t = SizeTree::build(files, NODE_BUDGET);
        let many = &t.root.children[0];
        assert_eq!(many.children.len(), LIST_PER_DIR + 1);
        assert_eq!(many.children[0].name, "f199");
        let more = many.children.last().unwrap();
        assert_eq!(more.name, "(140 more entries)");
        assert_eq!(more.files, 140);
        check_sums(&t.root);
    }

    #[test]
    fn packages_are_summed() {
        let t = SizeTree::build(
            [
                FileFate {
                    path: "/bin/ls",
                    size: 10,
                    fate: Fate::Used,
                    package: Some("coreutils"),
                },
                FileFate {
                    path: "/bin/cp",
                    size: 20,
                    fate: Fate::Dropped,
                    package: Some("coreutils"),
                },
                f("/app/main", 5, Fate::Used),
            ],
            NODE_BUDGET,
        );
        assert_eq!(
            t.packages[0],
            PackageBytes {
                name: "coreutils".into(),
                used: 10,
                rule: 0,
                dropped: 20,
                files: 2
            }
        );
        assert_eq!(t.packages[1].name, "(no package)");
    }
}
