//! tracefs: mounted when missing, and the source of tracepoint record layouts.
//!
//! The layouts of `sched:*` records change between kernels (6.x turned the
//! fork record's comms into `__data_loc` strings, moving `child_pid`), so
//! offsets are read from each event's `format` file at load time instead of
//! being compiled into the kernel object.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use super::TracerError;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes sure tracefs is mounted at `/sys/kernel/tracing` and returns it.
pub fn ensure_mounted() -> Result<PathBuf, TracerError> {
    let path = Path::new(TRACEFS);
    if path.join("events").is_dir() {
        return Ok(path.to_path_buf());
    }
    let legacy = Path::new("/sys/kernel/debug/tracing");
    if legacy.join("events").is_dir() {
        return Ok(legacy.to_path_buf());
    }
    let target = CString::new(TRACEFS).unwrap();
    let fstype = CString::new("tracefs").unwrap();
    let source = CString::new("nodev").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracerError::Tracefs(io::Error::last_os_error()));
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(path.to_path_buf())
}

/// Whether `<category>/<name>` exists on this kernel.
pub fn has_event(tracefs: &Path, category: &str, name: &str) -> bool {
    tracefs.join("events").join(category).join(name).is_dir()
}

/// Field offsets of one tracepoint record.
#[derive(Debug, Default)]
pub struct Format {
    fields: Vec<(String, u32, u32)>,
}

impl Format {
    pub fn read(tracefs: &Path, category: &str, name: &str) -> Result<Self, TracerError> {
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = fs::read_to_string(&path).map_err(|source| TracerError::FormatRead {
            path: path.clone(),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// Parses `field:<type> <name>;\toffset:<n>;\tsize:<n>;...` lines.
    pub fn parse(text: &str) -> Self {
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().unwrap_or("");
            let mut offset = None;
            let mut size = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            // The name is the last word, minus any array suffix.
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .unwrap_or("")
                .split('[')
                .next()
                .unwrap_or("");
            if let (Some(o), Some(s)) = (offset, size) {
                fields.push((name.to_string(), o, s));
            }
        }
        Self { fields }
    }

    /// Offset and size of a field.
    pub fn field(&self, name: &str) -> Option<(u32, u32)> {
        self.fields
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, o, s)| (*o, *s))
    }

    /// Offset of a field that must exist with the given size.
    pub fn offset(&self, event: &str, name: &str, size: u32) -> Result<u32, TracerError> {
        match self.field(name) {
            Some((o, s)) if s == size => Ok(o),
            Some((_, s)) => Err(TracerError::Format {
                path: event.into(),
                msg: format!("field {name} has size {s}, expected {size}"),
            }),
            None => Err(TracerError::Format {
                path: event.into(),
                msg: format!("no field {name}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_618: &str = "name: sched_process_fork
ID: 310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";
    const FORK_OLD: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
";

    #[test]
    fn parses_new_and_old_fork_layouts() {
        let f = Format::parse(FORK_618);
        assert_eq!(f.field("child_pid"), Some((20, 4)));
        assert_eq!(f.field("parent_comm"), Some((8, 4)));
        let f = Format::parse(FORK_OLD);
        assert_eq!(f.field("child_pid"), Some((44, 4)));
        assert_eq!(f.field("child_comm"), Some((28, 16)));
        assert!(f.offset("fork", "child_pid", 4).is_ok());
        assert!(f.offset("fork", "child_comm", 4).is_err());
        assert!(f.offset("fork", "nope", 4).is_err());
    }

    #[test]
    fn parses_pointer_fields() {
        let f = Format::parse("\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n");
        assert_eq!(f.field("filename"), Some((24, 8)));
    }
}
