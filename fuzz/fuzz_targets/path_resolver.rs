//! Differential fuzzing of path resolution: builds a small filesystem from
//! the input, resolves paths in it with `ImageFs::resolve`, and compares
//! with the kernel itself: the same tree is created in a temporary
//! directory and opened with openat2(RESOLVE_IN_ROOT), which has exactly the
//! semantics we model (the directory is `/`, `..` stops there, absolute
//! symlinks restart there, ELOOP after 40 links). Names are the input's
//! bytes, UTF-8 or not, through `slimd::image::name`.
#![no_main]

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use slimd::image::{Entry, EntryKind, ImageError, ImageFs, ResolveOptions, name};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Found(String),
    Missing,
    Loop,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_IN_ROOT: u64 = 0x10;

/// What the kernel says about `path` under `root`.
fn kernel(root: &Path, rootfd: i32, path: &str, follow: bool) -> Outcome {
    let Ok(c) = CString::new(name::encode(path).into_owned()) else {
        return Outcome::Missing;
    };
    let mut flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    if !follow {
        flags |= libc::O_NOFOLLOW as u64;
    }
    let how = OpenHow {
        flags,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // EAGAIN: a rename anywhere on the system raced with a ".." step and
    // the kernel would not vouch for the result; retrying is the documented
    // answer.
    let mut tries = 0;
    let (fd, err) = loop {
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                rootfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let err = if fd < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        };
        tries += 1;
        if err != libc::EAGAIN || tries >= 1000 {
            break (fd, err);
        }
    };
    if fd < 0 {
        return match err {
            libc::ELOOP => Outcome::Loop,
            libc::ENOENT | libc::ENOTDIR => Outcome::Missing,
            other => panic!("openat2({path:?}) failed with errno {other}"),
        };
    }
    let fd = fd as i32;
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("fd path");
    unsafe { libc::close(fd) };
    let rel = link.strip_prefix(root).expect("inside the root");
    Outcome::Found(format!("/{}", name::decode(rel.as_os_str().as_bytes())))
}

fn ours(fs: &ImageFs, path: &str, follow: bool) -> Outcome {
    let opts = if follow {
        ResolveOptions::default()
    } else {
        ResolveOptions::no_follow()
    };
    match fs.resolve(path, opts) {
        Ok(r) => {
            assert!(r.path.starts_with('/') && !r.path.contains("//"), "{r:?}");
            for s in &r.symlinks {
                assert!(fs.get(s).is_some_and(|e| e.is_symlink()), "{s} in {r:?}");
            }
            if r.exists {
                let e = fs.get(&r.path).expect("exists means present");
                assert!(!follow || !e.is_symlink() || path.ends_with('/'));
                Outcome::Found(r.path)
            } else {
                Outcome::Missing
            }
        }
        Err(ImageError::SymlinkLoop(_)) => Outcome::Loop,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Keeps names the real filesystem can hold (lengths in bytes).
fn usable(s: &str) -> bool {
    !s.is_empty()
        && !s.contains('\0')
        && name::byte_len(s) < 1024
        && s.split('/').all(|c| name::byte_len(c) <= 255)
}

/// A path string as a name on disk.
fn on_disk(s: &str) -> std::borrow::Cow<'_, Path> {
    match name::encode(s) {
        std::borrow::Cow::Borrowed(b) => Path::new(OsStr::from_bytes(b)).into(),
        std::borrow::Cow::Owned(b) => Path::new(OsStr::from_bytes(&b)).to_path_buf().into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = name::decode(data);
    let mut lines = text.split('\n');
    let mut fs = ImageFs::new();
    let mut queries = Vec::new();
    for line in lines.by_ref().take(64) {
        let mut chars = line.chars();
        let Some(op) = chars.next() else { continue };
        let rest = chars.as_str();
        let (a, b) = rest.split_once(' ').unwrap_or((rest, ""));
        if !usable(a) {
            continue;
        }
        let kind = match op {
            'd' => EntryKind::Dir,
            'f' => EntryKind::File(Default::default()),
            'l' if usable(b) => EntryKind::Symlink {
                target: b.to_string(),
            },
            '?' => {
                queries.push(a.to_string());
                continue;
            }
            _ => continue,
        };
        let _ = fs.insert(a, Entry::new(kind, 0o755));
    }
    if queries.is_empty() {
        return;
    }
    // The same tree on disk.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for (p, e) in fs.iter() {
        if p == "/" {
            continue;
        }
        let at = root.join(on_disk(&p[1..]));
        match &e.kind {
            EntryKind::Dir => std::fs::create_dir(&at).unwrap(),
            EntryKind::File(_) => {
                std::fs::File::create(&at).unwrap();
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(on_disk(target), &at).unwrap()
            }
            _ => unreachable!(),
        }
    }
    let c = CString::new(root.as_os_str().as_bytes()).unwrap();
    let rootfd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(rootfd >= 0);
    for q in queries.iter().take(16) {
        for follow in [true, false] {
            let k = kernel(&root, rootfd, q, follow);
            let o = ours(&fs, q, follow);
            assert_eq!(
                o,
                k,
                "resolving {q:?} (follow_last={follow}) in {:?}",
                fs.iter().collect::<Vec<_>>()
            );
            // Resolving a result again lands on itself.
            if let (Outcome::Found(p), true) = (&o, follow) {
                assert_eq!(ours(&fs, p, true), Outcome::Found(p.clone()));
            }
        }
    }
    unsafe { libc::close(rootfd) };
});
