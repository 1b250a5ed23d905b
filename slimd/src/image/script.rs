//! Scripts: which interpreter a `#!` line starts, resolved inside the image.
//!
//! Linux reads at most the first 256 bytes (BINPRM_BUF_SIZE); the
//! interpreter is the first word after `#!` and everything after it, trimmed,
//! is one argument. `#!/usr/bin/env X` runs `X` found through PATH; `env -S`
//! splits that one argument into words, so `#!/usr/bin/env -S python3 -u`
//! also means python3. Both the interpreter and the program found through
//! PATH, and every symlink on the way, must be in a slim image. The line is
//! bytes: it is decoded like any name ([`super::name`]).

use serde::Serialize;

use super::error::Result;
use super::fs::ImageFs;
use super::fs::{Resolution, ResolveOptions};
use super::path::join;

/// How many bytes of a file the kernel looks at for `#!`.
pub const SHEBANG_MAX: usize = 256;

/// A parsed `#!` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shebang {
    /// The interpreter path as written ("/usr/bin/env").
    pub interpreter: String,
    /// The rest of the line, trimmed, as the kernel passes it (one argument).
    pub arg: Option<String>,
}

impl Shebang {
    /// Parses the start of a file; `None` if it does not start with `#!` or
    /// names no interpreter.
    pub fn parse(head: &[u8]) -> Option<Shebang> {
        let head = &head[..head.len().min(SHEBANG_MAX)];
        let rest = head.strip_prefix(b"#!")?;
        let line = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => &rest[..i],
            None => rest,
        };
        let line = super::name::decode(line);
        let line = line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\0');
        let (interp, arg) = match line.find([' ', '\t']) {
            Some(i) => (&line[..i], line[i..].trim_matches([' ', '\t'])),
            None => (line, ""),
        };
        if interp.is_empty() {
            return None;
        }
        Some(Shebang {
            interpreter: interp.to_string(),
            arg: (!arg.is_empty()).then(|| arg.to_string()),
        })
    }

    /// Reads the `#!` line of the file at `path` (following symlinks).
    pub fn read(fs: &ImageFs, path: &str) -> Result<Option<Shebang>> {
        use std::io::Read;
        let mut r = fs.open(path)?;
        let mut head = vec![0u8; SHEBANG_MAX];
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(super::error::ImageError::io(format!("reading {path}"), e)),
            }
        }
        head.truncate(got);
        Ok(Shebang::parse(&head))
    }

    /// For `env` shebangs, the program `env` will run ("python3").
    pub fn env_program(&self) -> Option<String> {
        if super::path::file_name(&self.interpreter) != "env" {
            return None;
        }
        let arg = self.arg.as_deref()?;
        let mut words = arg.split_whitespace().peekable();
        while let Some(w) = words.next() {
            match w {
                "-S"
                | "--split-string"
                | "-i"
                | "--ignore-environment"
                | "-0"
                | "--null"
                | "-v"
                | "--debug"
                | "-" => {}
                "-u" | "--unset" | "-C" | "--chdir" => {
                    words.next();
                }
                "--" => return words.next().map(str::to_string),
                w if w.starts_with("-S") => return Some(w[2..].to_string()),
                w if w.starts_with("--") || (w.starts_with('-') && w.len() > 1) => {}
                w if w.contains('=') => {}
                w => return Some(w.to_string()),
            }
        }
        None
    }
}

/// What a script's `#!` line leads to inside the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShebangTarget {
    pub shebang: Shebang,
    /// The interpreter resolved (real path, whether it exists, symlinks).
    pub interpreter: Resolution,
    /// For `env X`: the program name.
    pub program: Option<String>,
    /// For `env X`: the PATH entry that matched ("/usr/bin/python3").
    pub program_found_as: Option<String>,
    /// For `env X`: `X` resolved through PATH; `None` if PATH has no `X`.
    pub program_resolved: Option<Resolution>,
}

impl ShebangTarget {
    /// Every image path to keep for the script to start.
    pub fn all_paths(&self) -> Vec<&str> {
        let mut v = Vec::new();
        for r in std::iter::once(&self.interpreter).chain(self.program_resolved.as_ref()) {
            if r.exists {
                v.push(r.path.as_str());
            }
            v.extend(r.symlinks.iter().map(String::as_str));
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Finds `program` through `path_var` ("/usr/local/bin:/usr/bin:...") the
/// way execvp does: the first existing regular file with an execute bit.
/// Returns (the PATH candidate, its resolution).
pub fn which(fs: &ImageFs, program: &str, path_var: &str) -> Option<(String, Resolution)> {
    if program.contains('/') {
        let candidate = join("/", program);
        let r = fs.resolve(&candidate, ResolveOptions::default()).ok()?;
        return is_executable(fs, &r).then_some((candidate, r));
    }
    for dir in path_var.split(':') {
        // An empty entry means the cwd, which only the running process knows.
        if dir.is_empty() {
            continue;
        }
        let candidate = join(dir, program);
        if let Ok(r) = fs.resolve(&candidate, ResolveOptions::default())
            && is_executable(fs, &r)
        {
            return Some((candidate, r));
        }
    }
    None
}

fn is_executable(fs: &ImageFs, r: &Resolution) -> bool {
    r.exists
        && fs
            .get(&r.path)
            .is_some_and(|e| e.is_file() && e.mode & 0o111 != 0)
}

/// Reads the script at `path` and resolves its interpreter, and for `env`
/// shebangs the program through `path_var` (usually the image config's
/// PATH: [`super::ContainerConfig::path_var`]). `Ok(None)` for a file
/// without `#!`.
pub fn resolve_shebang(fs: &ImageFs, path: &str, path_var: &str) -> Result<Option<ShebangTarget>> {
    let Some(shebang) = Shebang::read(fs, path)? else {
        return Ok(None);
    };
    let interpreter = fs.resolve(&join("/", &shebang.interpreter), ResolveOptions::default())?;
    let program = shebang.env_program();
    let (program_found_as, program_resolved) =
        match program.as_deref().and_then(|p| which(fs, p, path_var)) {
            Some((c, r)) => (Some(c), Some(r)),
            None => (None, None),
        };
    Ok(Some(ShebangTarget {
        shebang,
        interpreter,
        program,
        program_found_as,
        program_resolved,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::{LayerBuilder, image_from};

    #[test]
    fn interpreter_names_are_bytes() {
        let s = Shebang::parse(b"#!/opt/caf\xe9/bin/python3 -u\n").unwrap();
        assert_eq!(
            s.interpreter,
            crate::image::name::decode(b"/opt/caf\xe9/bin/python3")
        );
        assert_eq!(s.arg.as_deref(), Some("-u"));
    }

    #[test]
    fn parses_like_the_kernel() {
        let s = Shebang::parse(b"#!/bin/sh\necho").unwrap();
        assert_eq!((s.interpreter.as_str(), s.arg), ("/bin/sh", None));
        let s = Shebang::parse(b"#! /usr/bin/python3  -u -O \r\n").unwrap();
        assert_eq!(s.interpreter, "/usr/bin/python3");
        assert_eq!(s.arg.as_deref(), Some("-u -O"));
        assert!(Shebang::parse(b"#!\n").is_none());
        assert!(Shebang::parse(b"\x7fELF").is_none());
        let env = |l: &[u8]| Shebang::parse(l).unwrap().env_program();
        assert_eq!(env(b"#!/usr/bin/env python3\n").as_deref(), Some("python3"));
        assert_eq!(
            env(b"#!/usr/bin/env -S python3 -u\n").as_deref(),
            Some("python3")
        );
        assert_eq!(env(b"#!/usr/bin/env -Snode --x\n").as_deref(), Some("node"));
        assert_eq!(
            env(b"#!/usr/bin/env -S -i A=1 -u B ruby -w\n").as_deref(),
            Some("ruby")
        );
        assert_eq!(env(b"#!/bin/sh\n"), None);
        // Longer than the kernel reads: cut at 256 bytes.
        let mut long = b"#!/bin/".to_vec();
        long.extend(vec![b'x'; 400]);
        assert_eq!(Shebang::parse(&long).unwrap().interpreter.len(), 254);
    }

    #[test]
    fn env_program_found_through_path() {
        let layer = LayerBuilder::new()
            .symlink("bin", "usr/bin")
            .exe("usr/bin/env", b"\x7fELF")
            .exe("usr/bin/python3.11", b"\x7fELF")
            .symlink("usr/bin/python3", "python3.11")
            .file("usr/local/bin/python3", b"not executable")
            .exe("app/main.py", b"#!/usr/bin/env -S python3 -u\nprint(1)\n")
            .exe("app/run.sh", b"#!/bin/sh -e\n")
            .file("app/data", b"plain")
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], s.path()).unwrap();
        let fs = &img.fs;
        let path = "/usr/local/bin:/usr/bin:/bin";
        let t = resolve_shebang(fs, "/app/main.py", path).unwrap().unwrap();
        assert_eq!(t.interpreter.path, "/usr/bin/env");
        assert_eq!(t.program.as_deref(), Some("python3"));
        assert_eq!(t.program_found_as.as_deref(), Some("/usr/bin/python3"));
        let p = t.program_resolved.as_ref().unwrap();
        assert_eq!(p.path, "/usr/bin/python3.11");
        assert_eq!(p.symlinks, vec!["/usr/bin/python3"]);
        assert_eq!(
            t.all_paths(),
            vec!["/usr/bin/env", "/usr/bin/python3", "/usr/bin/python3.11"]
        );
        let t = resolve_shebang(fs, "/app/run.sh", path).unwrap().unwrap();
        // /bin leads to /usr/bin, which has no sh: missing, but the link is known.
        assert_eq!(t.interpreter.path, "/usr/bin/sh");
        assert!(!t.interpreter.exists);
        assert_eq!(t.interpreter.symlinks, vec!["/bin"]);
        assert_eq!(t.shebang.arg.as_deref(), Some("-e"));
        assert!(resolve_shebang(fs, "/app/data", path).unwrap().is_none());
    }
}
