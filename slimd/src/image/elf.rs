//! ELF analysis: what a binary needs to start, computed the way the image's
//! own dynamic loader would find it, without running anything in the image
//! (no `ldd`, so images without one still get a closure).
//!
//! Only the ELF header, program headers, interpreter and dynamic segment
//! are read (through a read cache over the spooled layer), never whole
//! binaries.
//!
//! Search order, glibc (`elf/dl-load.c`): a name with a slash is a path;
//! otherwise DT_RPATH of the requesting object and then of each object up
//! its loader chain to the executable (only when the requesting object has
//! no DT_RUNPATH; an object with DT_RUNPATH has its DT_RPATH ignored), then
//! LD_LIBRARY_PATH, then the requesting object's own DT_RUNPATH (never
//! inherited), then the ld.so.cache (emulated by the directories of
//! `/etc/ld.so.conf` and its includes), then the default directories unless
//! DF_1_NODEFLIB. Candidates of another ELF class or machine are skipped.
//! Objects already loaded are reused by SONAME or by file.
//!
//! musl (`ldso/dynlink.c`): reserved names (libc, libpthread, libm, ...)
//! are the loader itself; then LD_LIBRARY_PATH, then the RUNPATH (or RPATH)
//! of the requester and each object up its chain, then
//! `/etc/ld-musl-<arch>.path` or `/lib:/usr/local/lib:/usr/lib`.

use std::collections::HashMap;
use std::io::Read;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, ReadCache, ReadRef};
use serde::Serialize;

use super::archive::Image;
use super::error::{ImageError, Result};
use super::fs::ImageFs;
use super::path::{join, parent};

/// What kind of ELF object a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElfKind {
    /// ET_EXEC with an interpreter.
    Executable,
    /// ET_DYN with an interpreter (a PIE program).
    PieExecutable,
    /// ET_DYN without an interpreter that is not a static PIE.
    SharedLibrary,
    /// ET_EXEC without an interpreter: needs nothing at run time.
    StaticExecutable,
    /// ET_DYN flagged DF_1_PIE without an interpreter: self-relocating,
    /// needs nothing at run time.
    StaticPie,
    /// Relocatable objects, core files and the like.
    Other,
}

impl ElfKind {
    /// Programs one can exec (static or dynamic).
    pub fn is_executable(self) -> bool {
        matches!(
            self,
            ElfKind::Executable
                | ElfKind::PieExecutable
                | ElfKind::StaticExecutable
                | ElfKind::StaticPie
        )
    }

    /// Programs that need no loader.
    pub fn is_static(self) -> bool {
        matches!(self, ElfKind::StaticExecutable | ElfKind::StaticPie)
    }
}

/// What the headers of one ELF file say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    pub kind: ElfKind,
    pub class64: bool,
    pub little_endian: bool,
    /// `e_machine` (62 = x86-64, 183 = aarch64, ...).
    pub machine: u16,
    /// PT_INTERP, e.g. "/lib64/ld-linux-x86-64.so.2".
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// DT_RPATH entries (empty when DT_RUNPATH is present: the loader ignores it).
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    /// DF_1_NODEFLIB: skip the default directories for this object's needs.
    pub nodeflib: bool,
}

/// Which dynamic loader the binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LibcFlavor {
    Glibc,
    Musl,
}

/// Where a library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundVia {
    Interpreter,
    Path,
    Rpath,
    LdLibraryPath,
    Runpath,
    LdSoConf,
    DefaultDirs,
}

/// A library in the closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedLib {
    /// The name asked for (DT_NEEDED value or PT_INTERP path).
    pub name: String,
    /// The real file (every symlink resolved).
    pub path: String,
    /// The path the loader opened ("/lib/x86_64-linux-gnu/libc.so.6").
    pub found_as: String,
    pub via: FoundVia,
    /// Every symlink passed from `found_as` to `path` ("/lib",
    /// "libfoo.so.1" -> "libfoo.so.1.2.3"); each must be kept.
    pub symlinks: Vec<String>,
    /// Real paths of the objects that asked for it.
    pub needed_by: Vec<String>,
    pub soname: Option<String>,
}

/// A needed library the loader would not find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingLib {
    pub name: String,
    pub needed_by: String,
}

/// The shared-library closure of one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfClosure {
    /// The binary's real path.
    pub binary: String,
    /// Symlinks passed to reach the binary from the path asked for.
    pub binary_symlinks: Vec<String>,
    pub info: ElfInfo,
    pub flavor: Option<LibcFlavor>,
    pub interpreter: Option<ResolvedLib>,
    /// In load order (breadth first, as the loader maps them).
    pub libraries: Vec<ResolvedLib>,
    pub missing: Vec<MissingLib>,
}

impl ElfClosure {
    /// Every image path to keep for the binary to start: the binary, the
    /// interpreter and libraries, and every symlink on the way.
    pub fn all_paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![&self.binary];
        v.extend(self.binary_symlinks.iter().map(String::as_str));
        for l in self.interpreter.iter().chain(&self.libraries) {
            v.push(&l.path);
            v.extend(l.symlinks.iter().map(String::as_str));
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Knobs for [`elf_closure`].
#[derive(Debug, Clone, Default)]
pub struct ElfOptions {
    /// LD_LIBRARY_PATH of the container, already split.
    pub ld_library_path: Vec<String>,
    /// Force a loader flavour; default: from the interpreter's name.
    pub flavor: Option<LibcFlavor>,
}

impl ElfOptions {
    /// Options for a binary run as the image's config says (its
    /// LD_LIBRARY_PATH).
    pub fn from_image(image: &Image) -> Self {
        ElfOptions {
            ld_library_path: image
                .config
                .config
                .env_var("LD_LIBRARY_PATH")
                .map(split_path_list)
                .unwrap_or_default(),
            flavor: None,
        }
    }
}

fn split_path_list(s: &str) -> Vec<String> {
    s.split([':', ';'])
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Caps on what we read from one file's headers.
const MAX_DYNAMIC: u64 = 1 << 20;
const MAX_INTERP: u64 = 4096;
const MAX_NEEDED: usize = 4096;
/// Most objects one closure may load.
const MAX_OBJECTS: usize = 4096;

/// Reads the ELF headers of the file at `path` (following symlinks).
/// `Ok(None)` when the file is not ELF.
pub fn read_elf_info(fs: &ImageFs, path: &str) -> Result<Option<ElfInfo>> {
    let mut r = fs.open(path)?;
    let mut magic = [0u8; 4];
    if r.len() < 52 || r.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
        return Ok(None);
    }
    parse_elf(r, path).map(Some)
}

/// Parses headers from any seekable reader.
pub(crate) fn parse_elf<R: std::io::Read + std::io::Seek>(r: R, path: &str) -> Result<ElfInfo> {
    let cache = ReadCache::new(r);
    let data = &cache;
    let bad = |reason: &str| ImageError::Elf {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let ident = data.read_bytes_at(0, 16).map_err(|_| bad("too short"))?;
    if &ident[..4] != b"\x7fELF" {
        return Err(bad("no ELF magic"));
    }
    match ident[4] {
        elf::ELFCLASS32 => parse_headers::<elf::FileHeader32<Endianness>, _>(data, path),
        elf::ELFCLASS64 => parse_headers::<elf::FileHeader64<Endianness>, _>(data, path),
        _ => Err(bad("unknown ELF class")),
    }
}

fn parse_headers<'data, H, R>(data: R, path: &str) -> Result<ElfInfo>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let bad = |reason: &str| ImageError::Elf {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let header = H::parse(data).map_err(|e| bad(&e.to_string()))?;
    let endian = header.endian().map_err(|e| bad(&e.to_string()))?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| bad(&e.to_string()))?;
    let mut interpreter = None;
    let mut dynamic = None;
    let mut loads: Vec<(u64, u64, u64)> = Vec::new();
    for ph in phdrs {
        let (offset, size) = ph.file_range(endian);
        match ph.p_type(endian) {
            elf::PT_INTERP => {
                if size > MAX_INTERP {
                    return Err(bad("PT_INTERP too long"));
                }
                let raw = data
                    .read_bytes_at(offset, size)
                    .map_err(|_| bad("PT_INTERP out of bounds"))?;
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                interpreter = Some(super::name::decode(&raw[..end]).into_owned());
            }
            elf::PT_DYNAMIC => {
                if size > MAX_DYNAMIC {
                    return Err(bad("PT_DYNAMIC too large"));
                }
                dynamic = Some(
                    ph.dynamic(endian, data)
                        .map_err(|e| bad(&e.to_string()))?
                        .unwrap_or(&[]),
                );
            }
            elf::PT_LOAD => loads.push((ph.p_vaddr(endian).into(), offset, size)),
            _ => {}
        }
    }
    let mut needed_off = Vec::new();
    let mut rpath_off = None;
    let mut runpath_off = None;
    let mut soname_off = None;
    let mut strtab = None;
    let mut strsz = None;
    let mut flags_1 = 0u64;
    for d in dynamic.unwrap_or(&[]) {
        let tag = d.tag(endian);
        let val = d.val(endian);
        match tag {
            elf::DT_NULL => break,
            elf::DT_NEEDED if needed_off.len() < MAX_NEEDED => needed_off.push(val),
            elf::DT_RPATH => rpath_off = Some(val),
            elf::DT_RUNPATH => runpath_off = Some(val),
            elf::DT_SONAME => soname_off = Some(val),
            elf::DT_STRTAB => strtab = Some(val),
            elf::DT_STRSZ => strsz = Some(val),
            elf::DT_FLAGS_1 => flags_1 = val,
            _ => {}
        }
    }
    // DT_STRTAB is an address: map it to a file offset through PT_LOAD.
    let str_range = strtab.and_then(|addr| {
        loads.iter().find_map(|&(vaddr, off, size)| {
            (addr >= vaddr && addr - vaddr < size).then(|| {
                let start = off + (addr - vaddr);
                let end = match strsz {
                    Some(sz) => start.saturating_add(sz).min(off + size),
                    None => off + size,
                };
                (start, end)
            })
        })
    });
    let string = |val: u64| -> Result<String> {
        let (start, end) =
            str_range.ok_or_else(|| bad("dynamic strings without a string table"))?;
        let at = start
            .checked_add(val)
            .filter(|&a| a < end)
            .ok_or_else(|| bad("dynamic string out of bounds"))?;
        let s = data
            .read_bytes_at_until(at..end, 0)
            .map_err(|_| bad("unterminated dynamic string"))?;
        Ok(super::name::decode(s).into_owned())
    };
    let needed = needed_off
        .into_iter()
        .map(&string)
        .collect::<Result<Vec<_>>>()?;
    let runpath = runpath_off.map(&string).transpose()?;
    // The loader drops DT_RPATH when DT_RUNPATH is present.
    let rpath = match runpath {
        Some(_) => None,
        None => rpath_off.map(&string).transpose()?,
    };
    let soname = soname_off.map(&string).transpose()?;
    let e_type = header.e_type(endian);
    let kind = match (e_type, interpreter.is_some()) {
        (elf::ET_EXEC, true) => ElfKind::Executable,
        (elf::ET_EXEC, false) => ElfKind::StaticExecutable,
        (elf::ET_DYN, true) => ElfKind::PieExecutable,
        (elf::ET_DYN, false) if flags_1 & u64::from(elf::DF_1_PIE) != 0 => ElfKind::StaticPie,
        (elf::ET_DYN, false) => ElfKind::SharedLibrary,
        _ => ElfKind::Other,
    };
    Ok(ElfInfo {
        kind,
        class64: header.is_class_64(),
        little_endian: header.is_little_endian(),
        machine: header.e_machine(endian),
        interpreter,
        needed,
        soname,
        rpath: rpath.as_deref().map(split_path_list).unwrap_or_default(),
        runpath: runpath.as_deref().map(split_path_list).unwrap_or_default(),
        nodeflib: flags_1 & u64::from(elf::DF_1_NODEFLIB) != 0,
    })
}

/// The Debian multiarch triplet for a machine and class.
fn triplet(machine: u16, class64: bool) -> Option<&'static str> {
    Some(match (machine, class64) {
        (elf::EM_X86_64, true) => "x86_64-linux-gnu",
        (elf::EM_X86_64, false) => "x86_64-linux-gnux32",
        (elf::EM_386, _) => "i386-linux-gnu",
        (elf::EM_AARCH64, _) => "aarch64-linux-gnu",
        (elf::EM_ARM, _) => "arm-linux-gnueabihf",
        (elf::EM_PPC64, _) => "powerpc64le-linux-gnu",
        (elf::EM_S390, _) => "s390x-linux-gnu",
        (elf::EM_RISCV, true) => "riscv64-linux-gnu",
        _ => return None,
    })
}

/// `$PLATFORM` for a machine.
fn platform(machine: u16) -> &'static str {
    match machine {
        elf::EM_X86_64 => "x86_64",
        elf::EM_386 => "i686",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "v7l",
        elf::EM_PPC64 => "power8",
        elf::EM_S390 => "z900",
        elf::EM_RISCV => "riscv64",
        _ => "unknown",
    }
}

/// One object the simulated loader has mapped.
struct Loaded {
    path: String,
    info: ElfInfo,
    /// `$ORIGIN`: the directory of the path it was opened as.
    origin: String,
    /// The object that first asked for it (glibc's `l_loader`, musl's
    /// `needed_by`).
    loader: Option<usize>,
    /// Index in `libraries`, or None for the main binary / interpreter.
    lib: Option<usize>,
}

/// A search hit: (found_as, real path, symlinks passed, headers, how).
type Hit = (String, String, Vec<String>, ElfInfo, FoundVia);

/// State of one closure computation.
struct Loader<'a> {
    fs: &'a ImageFs,
    opts: &'a ElfOptions,
    flavor: LibcFlavor,
    main: ElfInfo,
    objects: Vec<Loaded>,
    by_path: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    conf_dirs: Option<Vec<String>>,
    libraries: Vec<ResolvedLib>,
    missing: Vec<MissingLib>,
    interp: Option<usize>,
}

/// Computes the shared-library closure of the binary at `path` as the
/// image's own loader would.
pub fn elf_closure(fs: &ImageFs, path: &str, opts: &ElfOptions) -> Result<ElfClosure> {
    let res = fs.resolve(path, Default::default())?;
    if !res.exists {
        return Err(ImageError::NotFound(path.to_string()));
    }
    let info = read_elf_info(fs, &res.path)?.ok_or_else(|| ImageError::Elf {
        path: path.to_string(),
        reason: "not an ELF file".into(),
    })?;
    let flavor = opts.flavor.or_else(|| {
        info.interpreter.as_deref().map(|i| {
            if i.contains("ld-musl") {
                LibcFlavor::Musl
            } else {
                LibcFlavor::Glibc
            }
        })
    });
    let mut closure = ElfClosure {
        binary: res.path.clone(),
        binary_symlinks: res.symlinks,
        info: info.clone(),
        flavor,
        interpreter: None,
        libraries: Vec::new(),
        missing: Vec::new(),
    };
    if info.kind.is_static() || (info.interpreter.is_none() && info.needed.is_empty()) {
        return Ok(closure);
    }
    let mut l = Loader {
        fs,
        opts,
        flavor: flavor.unwrap_or(LibcFlavor::Glibc),
        main: info.clone(),
        objects: vec![Loaded {
            path: res.path.clone(),
            origin: parent(&res.path).to_string(),
            info,
            loader: None,
            lib: None,
        }],
        by_path: HashMap::new(),
        by_name: HashMap::new(),
        conf_dirs: None,
        libraries: Vec::new(),
        missing: Vec::new(),
        interp: None,
    };
    l.by_path.insert(res.path.clone(), 0);
    l.load_interpreter();
    // Breadth first, like the loader's dependency walk.
    let mut i = 0;
    while i < l.objects.len() && l.objects.len() < MAX_OBJECTS {
        let needed = l.objects[i].info.needed.clone();
        for name in needed {
            l.need(i, &name);
        }
        i += 1;
    }
    closure.interpreter = l
        .interp
        .and_then(|i| l.objects[i].lib)
        .map(|i| l.libraries[i].clone());
    let interp_lib = l.interp.and_then(|i| l.objects[i].lib);
    closure.libraries = l
        .libraries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != interp_lib)
        .map(|(_, lib)| lib)
        .collect();
    closure.missing = l.missing;
    Ok(closure)
}

impl Loader<'_> {
    fn load_interpreter(&mut self) {
        let Some(name) = self.main.interpreter.clone() else {
            return;
        };
        let found_as = join("/", &name);
        match self.try_candidate(&found_as, false) {
            Some((path, symlinks, info)) => {
                let idx = self.add(
                    &name,
                    path,
                    found_as,
                    symlinks,
                    info,
                    FoundVia::Interpreter,
                    0,
                );
                self.interp = Some(idx);
            }
            None => self.missing.push(MissingLib {
                name,
                needed_by: self.objects[0].path.clone(),
            }),
        }
    }

    /// Resolves a candidate path; returns it if it is an ELF object the
    /// main binary's loader can use.
    fn try_candidate(
        &self,
        candidate: &str,
        check_arch: bool,
    ) -> Option<(String, Vec<String>, ElfInfo)> {
        let res = self.fs.resolve(candidate, Default::default()).ok()?;
        if !res.exists || !self.fs.get(&res.path)?.is_file() {
            return None;
        }
        let info = read_elf_info(self.fs, &res.path).ok()??;
        if check_arch
            && (info.class64 != self.main.class64
                || info.machine != self.main.machine
                || info.little_endian != self.main.little_endian)
        {
            return None;
        }
        Some((res.path, res.symlinks, info))
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        name: &str,
        path: String,
        found_as: String,
        symlinks: Vec<String>,
        info: ElfInfo,
        via: FoundVia,
        requester: usize,
    ) -> usize {
        let lib = self.libraries.len();
        self.libraries.push(ResolvedLib {
            name: name.to_string(),
            path: path.clone(),
            found_as: found_as.clone(),
            via,
            symlinks,
            needed_by: vec![self.objects[requester].path.clone()],
            soname: info.soname.clone(),
        });
        let idx = self.objects.len();
        if let Some(s) = &info.soname {
            self.by_name.entry(s.clone()).or_insert(idx);
        }
        self.by_name.entry(name.to_string()).or_insert(idx);
        self.by_path.insert(path.clone(), idx);
        self.objects.push(Loaded {
            path,
            info,
            origin: parent(&found_as).to_string(),
            loader: Some(requester),
            lib: Some(lib),
        });
        idx
    }

    /// Records that `requester` was also satisfied by object `idx`.
    fn reuse(&mut self, idx: usize, requester: usize, name: &str) {
        self.by_name.entry(name.to_string()).or_insert(idx);
        let by = self.objects[requester].path.clone();
        if let Some(lib) = self.objects[idx].lib {
            let needed_by = &mut self.libraries[lib].needed_by;
            if !needed_by.contains(&by) {
                needed_by.push(by);
            }
        }
    }

    fn need(&mut self, requester: usize, name: &str) {
        if name.is_empty() {
            return;
        }
        if let Some(&idx) = self.by_name.get(name) {
            self.reuse(idx, requester, name);
            return;
        }
        if self.flavor == LibcFlavor::Musl
            && musl_reserved(name)
            && let Some(i) = self.interp
        {
            self.reuse(i, requester, name);
            return;
        }
        match self.search(requester, name) {
            Some((found_as, path, symlinks, info, via)) => {
                if let Some(&idx) = self.by_path.get(&path) {
                    self.reuse(idx, requester, name);
                } else {
                    self.add(name, path, found_as, symlinks, info, via, requester);
                }
            }
            None => self.missing.push(MissingLib {
                name: name.to_string(),
                needed_by: self.objects[requester].path.clone(),
            }),
        }
    }

    /// The directories of `dirs` with dynamic string tokens expanded for
    /// object `obj`.
    fn expand(&self, obj: usize, dirs: &[String]) -> Vec<String> {
        let o = &self.objects[obj];
        let lib = self.lib_token();
        let plat = platform(self.main.machine);
        dirs.iter()
            .map(|d| {
                d.replace("${ORIGIN}", &o.origin)
                    .replace("$ORIGIN", &o.origin)
                    .replace("${LIB}", &lib)
                    .replace("$LIB", &lib)
                    .replace("${PLATFORM}", plat)
                    .replace("$PLATFORM", plat)
            })
            .collect()
    }

    /// `$LIB`: Debian's multiarch directory if the image has it, else
    /// lib64/lib by class.
    fn lib_token(&self) -> String {
        if let Some(t) = triplet(self.main.machine, self.main.class64) {
            let dir = format!("/lib/{t}");
            if self
                .fs
                .resolve(&dir, Default::default())
                .is_ok_and(|r| r.exists)
            {
                return format!("lib/{t}");
            }
        }
        if self.main.class64 { "lib64" } else { "lib" }.to_string()
    }

    fn search_dirs(&self, dirs: &[String], name: &str, via: FoundVia) -> Option<Hit> {
        for d in dirs {
            if d.is_empty() {
                continue;
            }
            let candidate = join(d, name);
            if let Some((path, links, info)) = self.try_candidate(&candidate, true) {
                return Some((candidate, path, links, info, via));
            }
        }
        None
    }

    fn search(&mut self, requester: usize, name: &str) -> Option<Hit> {
        if name.contains('/') {
            let expanded = self.expand(requester, &[name.to_string()]).remove(0);
            let candidate = join(&self.objects[requester].origin, &expanded);
            let (path, links, info) = self.try_candidate(&candidate, true)?;
            return Some((candidate, path, links, info, FoundVia::Path));
        }
        match self.flavor {
            LibcFlavor::Glibc => self.search_glibc(requester, name),
            LibcFlavor::Musl => self.search_musl(requester, name),
        }
    }

    fn search_glibc(&mut self, requester: usize, name: &str) -> Option<Hit> {
        if self.objects[requester].info.runpath.is_empty() {
            let mut cur = Some(requester);
            let mut did_main = false;
            while let Some(o) = cur {
                let dirs = self.expand(o, &self.objects[o].info.rpath);
                if let Some(hit) = self.search_dirs(&dirs, name, FoundVia::Rpath) {
                    return Some(hit);
                }
                did_main |= o == 0;
                cur = self.objects[o].loader;
            }
            if !did_main {
                let dirs = self.expand(0, &self.objects[0].info.rpath);
                if let Some(hit) = self.search_dirs(&dirs, name, FoundVia::Rpath) {
                    return Some(hit);
                }
            }
        }
        if let Some(hit) =
            self.search_dirs(&self.opts.ld_library_path, name, FoundVia::LdLibraryPath)
        {
            return Some(hit);
        }
        let runpath = self.expand(requester, &self.objects[requester].info.runpath);
        if let Some(hit) = self.search_dirs(&runpath, name, FoundVia::Runpath) {
            return Some(hit);
        }
        if self.objects[requester].info.nodeflib {
            return None;
        }
        let conf = self.ld_so_conf().to_vec();
        if let Some(hit) = self.search_dirs(&conf, name, FoundVia::LdSoConf) {
            return Some(hit);
        }
        let defaults = self.default_dirs();
        self.search_dirs(&defaults, name, FoundVia::DefaultDirs)
    }

    fn search_musl(&mut self, requester: usize, name: &str) -> Option<Hit> {
        if let Some(hit) =
            self.search_dirs(&self.opts.ld_library_path, name, FoundVia::LdLibraryPath)
        {
            return Some(hit);
        }
        let mut cur = Some(requester);
        while let Some(o) = cur {
            let info = &self.objects[o].info;
            let (dirs, via) = if info.runpath.is_empty() {
                (&info.rpath, FoundVia::Rpath)
            } else {
                (&info.runpath, FoundVia::Runpath)
            };
            let dirs = self.expand(o, dirs);
            if let Some(hit) = self.search_dirs(&dirs, name, via) {
                return Some(hit);
            }
            cur = self.objects[o].loader;
        }
        let dirs = self.musl_path();
        self.search_dirs(&dirs, name, FoundVia::DefaultDirs)
    }

    /// glibc's built-in directories: multiarch first (Debian), then the
    /// lib64 pair for 64-bit (Fedora), then /lib and /usr/lib.
    fn default_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(t) = triplet(self.main.machine, self.main.class64) {
            v.push(format!("/lib/{t}"));
            v.push(format!("/usr/lib/{t}"));
        }
        if self.main.class64 {
            v.push("/lib64".into());
            v.push("/usr/lib64".into());
        }
        v.push("/lib".into());
        v.push("/usr/lib".into());
        v
    }

    /// Directories from /etc/ld.so.conf and its includes, in order.
    fn ld_so_conf(&mut self) -> &[String] {
        if self.conf_dirs.is_none() {
            let mut dirs = Vec::new();
            read_ld_so_conf(self.fs, "/etc/ld.so.conf", &mut dirs, 0);
            let mut seen = std::collections::HashSet::new();
            dirs.retain(|d| seen.insert(d.clone()));
            self.conf_dirs = Some(dirs);
        }
        self.conf_dirs.as_deref().unwrap_or(&[])
    }

    /// musl's system path: `/etc/ld-musl-<arch>.path` or its default.
    fn musl_path(&self) -> Vec<String> {
        let arch = self
            .main
            .interpreter
            .as_deref()
            .and_then(|i| {
                let base = i.rsplit('/').next()?;
                base.strip_prefix("ld-musl-")?.strip_suffix(".so.1")
            })
            .unwrap_or("x86_64");
        let file = format!("/etc/ld-musl-{arch}.path");
        if let Ok(bytes) = self.fs.read(&file, 64 << 10) {
            let text = super::name::decode(&bytes);
            return text
                .split(['\n', ':'])
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
        }
        ["/lib", "/usr/local/lib", "/usr/lib"]
            .map(String::from)
            .to_vec()
    }
}

/// musl resolves these to itself (`libc.so`, `libc.musl-x86_64.so.1`,
/// `libpthread.so.0`, ...).
fn musl_reserved(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("lib") else {
        return false;
    };
    ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."]
        .iter()
        .any(|r| rest.starts_with(r))
}

/// Parses one ld.so.conf-style file, following `include` globs.
fn read_ld_so_conf(fs: &ImageFs, file: &str, out: &mut Vec<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    let Ok(bytes) = fs.read(file, 1 << 20) else {
        return;
    };
    let text = super::name::decode(&bytes);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(pattern) = line
            .strip_prefix("include")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            for pat in pattern.split_whitespace() {
                let pat = join(parent(file), pat);
                for f in glob_files(fs, &pat) {
                    read_ld_so_conf(fs, &f, out, depth + 1);
                }
            }
        } else if line.starts_with("hwcap") {
            continue;
        } else {
            for d in line.split([':', ',', ' ', '\t']) {
                // "dir=TYPE" is a libc5-era annotation.
                let d = d.split('=').next().unwrap_or("");
                if d.starts_with('/') {
                    out.push(super::path::normalize(d));
                }
            }
        }
    }
}

/// Files matching a glob whose wildcards are in the last component only
/// (what ld.so.conf uses), sorted like glob(3).
fn glob_files(fs: &ImageFs, pattern: &str) -> Vec<String> {
    let dir = parent(pattern);
    let Ok(glob) = globset::Glob::new(super::path::file_name(pattern)) else {
        return Vec::new();
    };
    let m = glob.compile_matcher();
    let Ok(res) = fs.resolve(dir, Default::default()) else {
        return Vec::new();
    };
    let mut v: Vec<String> = fs
        .children(&res.path)
        .filter(|(p, _)| m.is_match(super::path::file_name(p)))
        .map(|(p, _)| p.to_string())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::image::tests::{LayerBuilder, image_from};

    /// Compiles with the host's gcc; None (test skipped) if there is none.
    fn gcc(dir: &Path, out: &str, args: &[&str]) -> Option<Vec<u8>> {
        let st = Command::new("gcc")
            .current_dir(dir)
            .args(args)
            .arg("-o")
            .arg(out)
            .status()
            .ok()?;
        assert!(st.success(), "gcc {args:?} failed");
        Some(std::fs::read(dir.join(out)).unwrap())
    }

    struct Built {
        base: Vec<u8>,
        mid: Vec<u8>,
        main: Vec<u8>,
        exe_rpath: Vec<u8>,
        exe_runpath: Vec<u8>,
        leaf: Vec<u8>,
        mid2: Vec<u8>,
        custom_user: Vec<u8>,
        custom: Vec<u8>,
        static_exe: Vec<u8>,
        static_pie: Vec<u8>,
    }

    fn build() -> Option<Built> {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let w = |n: &str, s: &str| std::fs::write(d.join(n), s).unwrap();
        w("base.c", "int base(void){return 1;}\n");
        w("mid.c", "int base(void); int mid(void){return base()+1;}\n");
        w(
            "main.c",
            "int mid(void); void _start(void){ mid(); for(;;); }\n",
        );
        w("leaf.c", "int leaf(void){return 3;}\n");
        w("mid2.c", "int leaf(void); int mid2(void){return leaf();}\n");
        w(
            "exe2.c",
            "int mid2(void); void _start(void){ mid2(); for(;;); }\n",
        );
        w("custom.c", "int custom(void){return 4;}\n");
        w(
            "cu.c",
            "int custom(void); void _start(void){ custom(); for(;;); }\n",
        );
        w(
            "miss.c",
            "int custom(void); void _start(void){ custom(); for(;;); }\n",
        );
        w("st.c", "void _start(void){ for(;;); }\n");
        let interp = "-Wl,--dynamic-linker=/lib64/ld-linux-x86-64.so.2";
        let so = ["-shared", "-fPIC", "-nostdlib"];
        let base = gcc(
            d,
            "libbase.so.1.0",
            &[&so[..], &["-Wl,-soname,libbase.so.1", "base.c"]].concat(),
        )?;
        std::fs::copy(d.join("libbase.so.1.0"), d.join("libbase.so.1")).unwrap();
        let mid = gcc(
            d,
            "libmid.so",
            &[
                &so[..],
                &[
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
                    "mid.c",
                    "-L.",
                    "-l:libbase.so.1",
                ],
            ]
            .concat(),
        )?;
        let main = gcc(
            d,
            "main",
            &[
                "-nostdlib",
                interp,
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
                "main.c",
                "-L.",
                "-lmid",
                "-Wl,-rpath-link,.",
            ],
        )?;
        let leaf = gcc(d, "libleaf.so", &[&so[..], &["leaf.c"]].concat())?;
        let mid2 = gcc(
            d,
            "libmid2.so",
            &[&so[..], &["mid2.c", "-L.", "-lleaf"]].concat(),
        )?;
        let exe_rpath = gcc(
            d,
            "exe_rpath",
            &[
                "-nostdlib",
                interp,
                "-Wl,--disable-new-dtags,-rpath,/opt/rp",
                "exe2.c",
                "-L.",
                "-lmid2",
                "-Wl,-rpath-link,.",
            ],
        )?;
        let exe_runpath = gcc(
            d,
            "exe_runpath",
            &[
                "-nostdlib",
                interp,
                "-Wl,--enable-new-dtags,-rpath,/opt/rp",
                "exe2.c",
                "-L.",
                "-lmid2",
                "-Wl,-rpath-link,.",
            ],
        )?;
        let custom = gcc(d, "libcustom.so", &[&so[..], &["custom.c"]].concat())?;
        let custom_user = gcc(d, "cu", &["-nostdlib", interp, "cu.c", "-L.", "-lcustom"])?;
        let static_exe = gcc(d, "st", &["-static", "-nostdlib", "st.c"])?;
        let static_pie = gcc(d, "stpie", &["-static-pie", "-nostdlib", "-fPIE", "st.c"])?;
        Some(Built {
            base,
            mid,
            main,
            exe_rpath,
            exe_runpath,
            leaf,
            mid2,
            custom_user,
            custom,
            static_exe,
            static_pie,
        })
    }

    #[test]
    fn closure_follows_runpath_rpath_origin_and_ld_so_conf() {
        let Some(b) = build() else {
            eprintln!("gcc not available: skipped");
            return;
        };
        let layer = LayerBuilder::new()
            .dir("usr/lib/x86_64-linux-gnu", 0o755)
            .symlink("lib", "usr/lib")
            .dir("usr/lib64", 0o755)
            .symlink("lib64", "usr/lib64")
            // Any ELF will do as the loader; one without a SONAME that could
            // satisfy a DT_NEEDED.
            .exe("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &b.leaf)
            .symlink(
                "usr/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            )
            .exe("opt/app/bin/main", &b.main)
            .exe("opt/app/lib/libmid.so", &b.mid)
            .exe("opt/app/lib/libbase.so.1.0", &b.base)
            .symlink("opt/app/lib/libbase.so.1", "libbase.so.1.0")
            .exe("opt/rp/libmid2.so", &b.mid2)
            .exe("opt/rp/libleaf.so", &b.leaf)
            .exe("bin/exe_rpath", &b.exe_rpath)
            .exe("bin/exe_runpath", &b.exe_runpath)
            .file(
                "etc/ld.so.conf",
                b"# comment\ninclude /etc/ld.so.conf.d/*.conf\n",
            )
            .file("etc/ld.so.conf.d/custom.conf", b"/usr/local/custom\n")
            .exe("usr/local/custom/libcustom.so", &b.custom)
            .exe("bin/cu", &b.custom_user)
            .exe("bin/static", &b.static_exe)
            .exe("bin/static-pie", &b.static_pie)
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], s.path()).unwrap();
        let fs = &img.fs;
        let opts = ElfOptions::default();

        let c = elf_closure(fs, "/opt/app/bin/main", &opts).unwrap();
        assert!(c.info.kind.is_executable());
        assert_eq!(c.flavor, Some(LibcFlavor::Glibc));
        let interp = c.interpreter.as_ref().unwrap();
        assert_eq!(
            interp.path,
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        assert_eq!(
            interp.symlinks,
            vec!["/lib64", "/usr/lib64/ld-linux-x86-64.so.2", "/lib"]
        );
        let names: Vec<(&str, &str, FoundVia)> = c
            .libraries
            .iter()
            .map(|l| (l.name.as_str(), l.path.as_str(), l.via))
            .collect();
        assert_eq!(
            names,
            vec![
                ("libmid.so", "/opt/app/lib/libmid.so", FoundVia::Runpath),
                (
                    "libbase.so.1",
                    "/opt/app/lib/libbase.so.1.0",
                    FoundVia::Runpath
                ),
            ]
        );
        assert_eq!(c.libraries[1].symlinks, vec!["/opt/app/lib/libbase.so.1"]);
        assert_eq!(c.libraries[1].needed_by, vec!["/opt/app/lib/libmid.so"]);
        assert!(c.missing.is_empty());
        let keep = c.all_paths();
        assert!(keep.contains(&"/opt/app/lib/libbase.so.1"));
        assert!(keep.contains(&"/lib64"));

        // DT_RPATH of the executable serves its libraries' needs too...
        let c = elf_closure(fs, "/bin/exe_rpath", &opts).unwrap();
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        let leaf = c.libraries.iter().find(|l| l.name == "libleaf.so").unwrap();
        assert_eq!(
            (leaf.path.as_str(), leaf.via),
            ("/opt/rp/libleaf.so", FoundVia::Rpath)
        );
        // ...DT_RUNPATH does not.
        let c = elf_closure(fs, "/bin/exe_runpath", &opts).unwrap();
        assert_eq!(c.libraries.len(), 1);
        assert_eq!(
            c.missing,
            vec![MissingLib {
                name: "libleaf.so".into(),
                needed_by: "/opt/rp/libmid2.so".into()
            }]
        );
        // LD_LIBRARY_PATH fills the gap.
        let with_env = ElfOptions {
            ld_library_path: vec!["/opt/rp".into()],
            ..ElfOptions::default()
        };
        let c = elf_closure(fs, "/bin/exe_runpath", &with_env).unwrap();
        assert!(c.missing.is_empty());

        let c = elf_closure(fs, "/bin/cu", &opts).unwrap();
        assert_eq!(c.libraries[0].path, "/usr/local/custom/libcustom.so");
        assert_eq!(c.libraries[0].via, FoundVia::LdSoConf);

        let c = elf_closure(fs, "/bin/static", &opts).unwrap();
        assert_eq!(c.info.kind, ElfKind::StaticExecutable);
        assert!(c.libraries.is_empty() && c.interpreter.is_none());
        let c = elf_closure(fs, "/bin/static-pie", &opts).unwrap();
        assert_eq!(c.info.kind, ElfKind::StaticPie);

        let info = read_elf_info(fs, "/opt/app/lib/libbase.so.1")
            .unwrap()
            .unwrap();
        assert_eq!(info.kind, ElfKind::SharedLibrary);
        assert_eq!(info.soname.as_deref(), Some("libbase.so.1"));
        assert!(read_elf_info(fs, "/etc/ld.so.conf").unwrap().is_none());
        assert!(elf_closure(fs, "/etc/ld.so.conf", &opts).is_err());
    }

    #[test]
    fn missing_library_and_musl_reserved_names() {
        let Some(b) = build() else {
            return;
        };
        // Without ld.so.conf the custom library is not found.
        let layer = LayerBuilder::new()
            .exe("lib64/ld-linux-x86-64.so.2", &b.leaf)
            .exe("bin/cu", &b.custom_user)
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], s.path()).unwrap();
        let c = elf_closure(&img.fs, "/bin/cu", &ElfOptions::default()).unwrap();
        assert_eq!(c.missing.len(), 1);
        assert_eq!(c.missing[0].name, "libcustom.so");
        assert!(musl_reserved("libc.musl-x86_64.so.1"));
        assert!(musl_reserved("libpthread.so.0"));
        assert!(!musl_reserved("libcrypto.so.3"));
        assert!(!musl_reserved("libcurl.so.4"));
    }

    #[test]
    fn musl_loader_path_file_and_reserved_libc() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("z.c"), "int z(void){return 1;}\n").unwrap();
        std::fs::write(d.join("c.c"), "int c(void){return 1;}\n").unwrap();
        std::fs::write(
            d.join("m.c"),
            "int z(void); int c(void); void _start(void){ z(); c(); for(;;); }\n",
        )
        .unwrap();
        let so = ["-shared", "-fPIC", "-nostdlib"];
        let Some(libz) = gcc(
            d,
            "libz.so.1.3",
            &[&so[..], &["-Wl,-soname,libz.so.1", "z.c"]].concat(),
        ) else {
            return;
        };
        let libc = gcc(
            d,
            "libc.musl-x86_64.so.1",
            &[&so[..], &["-Wl,-soname,libc.musl-x86_64.so.1", "c.c"]].concat(),
        )
        .unwrap();
        let exe = gcc(
            d,
            "m",
            &[
                "-nostdlib",
                "-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1",
                "m.c",
                "libz.so.1.3",
                "libc.musl-x86_64.so.1",
            ],
        )
        .unwrap();
        let layer = LayerBuilder::new()
            .exe("lib/ld-musl-x86_64.so.1", &libc)
            .symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
            .file("etc/ld-musl-x86_64.path", b"/usr/local/lib\n/usr/lib\n")
            .exe("usr/lib/libz.so.1.3", &libz)
            .symlink("usr/lib/libz.so.1", "libz.so.1.3")
            // Not on musl's path: must not be found.
            .exe("lib/x86_64-linux-gnu/libz.so.1", &libz)
            .exe("bin/app", &exe)
            .build();
        let s = tempfile::tempdir().unwrap();
        let img = image_from(vec![layer], s.path()).unwrap();
        let c = elf_closure(&img.fs, "/bin/app", &ElfOptions::default()).unwrap();
        assert_eq!(c.flavor, Some(LibcFlavor::Musl));
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        let interp = c.interpreter.as_ref().unwrap();
        assert_eq!(interp.path, "/lib/ld-musl-x86_64.so.1");
        assert_eq!(c.libraries.len(), 1, "{:?}", c.libraries);
        assert_eq!(c.libraries[0].path, "/usr/lib/libz.so.1.3");
        assert_eq!(c.libraries[0].symlinks, vec!["/usr/lib/libz.so.1"]);
    }

    #[test]
    fn garbage_elf_is_an_error_not_a_panic() {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(200, 0xff);
        let r = parse_elf(std::io::Cursor::new(bytes), "/x");
        assert!(r.is_err());
    }
}
