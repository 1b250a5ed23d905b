//! An AppArmor profile from the files the app used and the address families
//! it opened sockets in.
//!
//! Shaped like Docker's own `docker-default` profile (attach to
//! disconnected paths, signals from the host and between the container's
//! processes, `capability,` since the container's capability set already
//! bounds those), but with `file` and `network` narrowed to what the run
//! showed. Load with `apparmor_parser -r FILE`, use with
//! `docker run --security-opt apparmor=<name>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::HardenError;
use super::network::AddressFamily;

/// How the app used a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileAccess {
    Read,
    Write,
    Exec,
}

/// One file (or directory, with a trailing `/`) the app used, as a path
/// inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUse {
    pub path: String,
    pub access: FileAccess,
}

/// A generated profile: its name (for `--security-opt apparmor=`) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArmorProfile {
    pub name: String,
    pub text: String,
}

/// The profile `slimd-<name>` allowing `files` and `families`.
///
/// Reads get `r`, plus `m` (executable mapping) for shared objects (a
/// `.so` in the name: the trace does not tell a library from data); writes
/// get `w`; execs get `ix` (run under this same profile) plus `mr`. Paths
/// under `/proc/<pid>` and `/proc/self` become `@{PROC}/@{pid}` so that the
/// profile matches the next run's pids.
pub fn apparmor_profile(
    name: &str,
    files: &[FileUse],
    families: &BTreeSet<AddressFamily>,
) -> Result<AppArmorProfile, HardenError> {
    let profile = format!("slimd-{}", profile_name(name));
    let mut modes: BTreeMap<String, BTreeSet<char>> = BTreeMap::new();
    for f in files {
        let path = apparmor_path(&f.path)?;
        let m = modes.entry(path).or_default();
        match f.access {
            FileAccess::Read => {
                m.insert('r');
                if is_shared_object(&f.path) {
                    m.insert('m');
                }
            }
            FileAccess::Write => {
                m.insert('w');
            }
            FileAccess::Exec => {
                m.extend(['m', 'r', 'i', 'x']);
            }
        }
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# AppArmor profile learned from one run of slimd; review before use."
    );
    let _ = writeln!(
        t,
        "# Files and address families the app did not use are denied."
    );
    t.push_str("abi <abi/3.0>,\n\ninclude <tunables/global>\n\n");
    let _ = writeln!(
        t,
        "profile {profile} flags=(attach_disconnected,mediate_deleted) {{"
    );
    t.push_str("  include <abstractions/base>\n\n");
    t.push_str("  # Bounded by the container's capability set, as in docker-default.\n");
    t.push_str("  capability,\n\n");
    t.push_str("  signal (receive) peer=unconfined,\n");
    let _ = writeln!(t, "  signal (send,receive) peer={profile},");
    t.push('\n');
    for domain in families.iter().filter_map(|f| f.apparmor_domain()) {
        let _ = writeln!(t, "  network {domain},");
    }
    if families.iter().any(|f| f.apparmor_domain().is_some()) {
        t.push('\n');
    }
    for (path, m) in &modes {
        // AppArmor's canonical order: m r w i x.
        let perms: String = ['m', 'r', 'w', 'i', 'x']
            .into_iter()
            .filter(|c| m.contains(c))
            .collect();
        let _ = writeln!(t, "  {path} {perms},");
    }
    t.push_str("\n  deny mount,\n  deny umount,\n  deny pivot_root,\n  deny ptrace,\n}\n");
    Ok(AppArmorProfile {
        name: profile,
        text: t,
    })
}

fn is_shared_object(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.ends_with(".so") || file.contains(".so.")
}

/// A profile name: letters, digits and `-._` only.
fn profile_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let s: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "app".into() } else { s }
}

/// The path as an AppArmor rule path: pids made variables, pattern
/// characters escaped, quoted when it has spaces; each byte of a name that
/// is not UTF-8 ([`crate::image::name`]) becomes `?`.
fn apparmor_path(path: &str) -> Result<String, HardenError> {
    if !path.starts_with('/') || path.contains(['"', '\n', '\0']) {
        return Err(HardenError::UnsafePath(path.to_string()));
    }
    let (prefix, rest) = match path.strip_prefix("/proc/") {
        Some(rest) => {
            let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let sep = if tail.is_empty() && !rest.contains('/') {
                ""
            } else {
                "/"
            };
            if first == "self" || (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())) {
                (format!("@{{PROC}}/@{{pid}}{sep}"), tail)
            } else if first == "thread-self" {
                (format!("@{{PROC}}/@{{pid}}/task/@{{tid}}{sep}"), tail)
            } else {
                ("@{PROC}/".to_string(), rest)
            }
        }
        None => (String::new(), path),
    };
    let mut out = prefix;
    for c in rest.chars() {
        // A byte that is not UTF-8 cannot be written in a profile as
        // itself: `?` (one byte, not `/`) matches it.
        if crate::image::name::escaped_byte(c).is_some() {
            out.push('?');
            continue;
        }
        if "*?[]{}^@\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    if out.contains([' ', '\t']) {
        out = format!("\"{out}\"");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses() -> Vec<FileUse> {
        let f = |path: &str, access| FileUse {
            path: path.into(),
            access,
        };
        vec![
            f("/usr/bin/wordstat", FileAccess::Exec),
            f("/etc/wordstat/config", FileAccess::Read),
            f("/usr/lib/x86_64-linux-gnu/libc.so.6", FileAccess::Read),
            f("/usr/share/wordstat/", FileAccess::Read),
            f("/tmp/out file.txt", FileAccess::Write),
            f("/tmp/out file.txt", FileAccess::Read),
            f("/proc/self/status", FileAccess::Read),
            f("/proc/4242/fd/", FileAccess::Read),
            f("/proc/sys/kernel/hostname", FileAccess::Read),
            f("/srv/a*b[1].txt", FileAccess::Read),
            f(
                &crate::image::name::decode(b"/srv/caf\xe9.html"),
                FileAccess::Read,
            ),
        ]
    }

    #[test]
    fn profile_text_lists_files_families_and_denies() {
        let fam = [
            AddressFamily::Inet,
            AddressFamily::Unix,
            AddressFamily::Other(40),
        ]
        .into();
        let p = apparmor_profile("slimd-test/cli-oneshot:latest", &uses(), &fam).unwrap();
        assert_eq!(p.name, "slimd-cli-oneshot-latest");
        let t = &p.text;
        assert!(t.starts_with("# AppArmor profile learned from one run of slimd"));
        assert!(t.contains(
            "profile slimd-cli-oneshot-latest flags=(attach_disconnected,mediate_deleted) {"
        ));
        for line in [
            "  network unix,\n",
            "  network inet,\n",
            "  /usr/bin/wordstat mrix,\n",
            "  /etc/wordstat/config r,\n",
            "  /usr/lib/x86_64-linux-gnu/libc.so.6 mr,\n",
            "  /usr/share/wordstat/ r,\n",
            "  \"/tmp/out file.txt\" rw,\n",
            "  @{PROC}/@{pid}/status r,\n",
            "  @{PROC}/@{pid}/fd/ r,\n",
            "  @{PROC}/sys/kernel/hostname r,\n",
            "  /srv/a\\*b\\[1\\].txt r,\n",
            "  /srv/caf?.html r,\n",
            "  signal (send,receive) peer=slimd-cli-oneshot-latest,\n",
            "  deny mount,\n",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        assert!(!t.contains("network inet6"));
        assert_eq!(t.matches("@{PROC}/@{pid}/status").count(), 1);
        assert!(t.ends_with("}\n"));
        assert_eq!(
            apparmor_profile("x", &uses(), &fam)
                .unwrap()
                .text
                .lines()
                .count(),
            t.lines().count(),
            "deterministic shape"
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["relative", "/a\"b", "/a\nb"] {
            let f = [FileUse {
                path: bad.into(),
                access: FileAccess::Read,
            }];
            assert!(matches!(
                apparmor_profile("x", &f, &BTreeSet::new()),
                Err(HardenError::UnsafePath(_))
            ));
        }
    }

    /// The real parser, where this machine has it (`-Q`: parse and compile,
    /// do not load, so neither root nor an AppArmor kernel is needed).
    #[test]
    fn apparmor_parser_accepts_the_profile() {
        let parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(parser) = parser else {
            eprintln!("apparmor_parser not installed: checked the text only");
            return;
        };
        if !std::path::Path::new("/etc/apparmor.d/tunables/global").exists() {
            eprintln!("no /etc/apparmor.d/tunables: checked the text only");
            return;
        }
        let fam = [
            AddressFamily::Inet,
            AddressFamily::Inet6,
            AddressFamily::Unix,
        ]
        .into();
        let p = apparmor_profile("cli", &uses(), &fam).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profile");
        std::fs::write(&file, &p.text).unwrap();
        let out = std::process::Command::new(parser)
            .args(["-Q", "-K", "--skip-cache"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            p.text
        );
    }
}
