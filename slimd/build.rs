//! Builds the kernel programs and embeds the object into the slimd binary.
//!
//! `slimd-ebpf` is built with Debian's cargo and rustc (the rustup toolchain
//! here has no `rust-src` for `-Z build-std`) and bpf-linker into its own
//! target directory. Before building, the toolchain is checked: when a part
//! is missing the build fails at once, naming it and the command that
//! installs it (`cargo xtask setup`), rather than producing a daemon that
//! cannot trace.
//!
//! Two explicit ways round the build:
//! - `SLIMD_EBPF_OBJECT=<path>` embeds a prebuilt object (it must not be
//!   empty).
//! - Without the default `ebpf` feature nothing is built or embedded: for
//!   crates that use slimd's image library but never trace, such as the
//!   fuzz targets (`slimd = { path = "../slimd", default-features = false }`).
//!   The tracer of such a build says it has no object when asked to load.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// What sets the toolchain up on a fresh machine (see README).
const SETUP: &str = "cargo xtask setup";

fn main() {
    println!("cargo:rerun-if-env-changed=SLIMD_EBPF_OBJECT");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("slimd-ebpf.o");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let ebpf_dir = root.join("slimd-ebpf");
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("slimd-common/src").display()
    );

    let result = match env::var_os("SLIMD_EBPF_OBJECT") {
        Some(obj) => prebuilt(Path::new(&obj)),
        None => Toolchain::find().and_then(|t| t.build(&ebpf_dir)),
    };
    let result = result.and_then(|obj| {
        fs::copy(&obj, &out).map(drop).map_err(|e| {
            Failure::from(format!(
                "cannot copy {} to {}: {e}",
                obj.display(),
                out.display()
            ))
        })
    });
    if let Err(f) = result {
        // Cargo shows this line and fails the build.
        println!("cargo::error={}", f.why);
        if f.show_output {
            // A failed exit makes cargo show our stderr too: the inner
            // build's errors.
            std::process::exit(1);
        }
    }
}

/// Why the object could not be had.
struct Failure {
    why: String,
    /// The inner build ran and failed: its output (our stderr) matters.
    show_output: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self {
            why,
            show_output: false,
        }
    }
}

/// `SLIMD_EBPF_OBJECT`: an object built elsewhere.
fn prebuilt(obj: &Path) -> Result<PathBuf, Failure> {
    println!("cargo:rerun-if-changed={}", obj.display());
    match fs::metadata(obj) {
        Ok(m) if m.len() > 0 => Ok(obj.to_path_buf()),
        Ok(_) => Err(format!(
            "SLIMD_EBPF_OBJECT={} is empty; to build slimd without its eBPF object, turn off its default `ebpf` feature instead",
            obj.display()
        )
        .into()),
        Err(e) => Err(format!("SLIMD_EBPF_OBJECT={}: {e}", obj.display()).into()),
    }
}

/// Debian's cargo and rustc with the library source, and bpf-linker.
struct Toolchain {
    cargo: PathBuf,
    rustc: PathBuf,
    /// PATH for the inner build: ours plus cargo's bin directory, where
    /// `cargo install` puts bpf-linker.
    path: String,
}

impl Toolchain {
    fn find() -> Result<Self, Failure> {
        let cargo = PathBuf::from("/usr/bin/cargo");
        let rustc = PathBuf::from("/usr/bin/rustc");
        let cargo_bin = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|h| h.join("bin"))
            .unwrap_or_default();
        let path = format!(
            "{}:{}",
            env::var("PATH").unwrap_or_default(),
            cargo_bin.display()
        );
        let mut missing = Vec::new();
        if !cargo.is_file() {
            missing.push(format!("Debian's cargo ({})", cargo.display()));
        }
        if !rustc.is_file() {
            missing.push(format!("Debian's rustc ({})", rustc.display()));
        } else if let Err(why) = rust_src(&rustc) {
            missing.push(why);
        }
        let linker = Command::new("bpf-linker")
            .arg("--version")
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !linker.is_ok_and(|s| s.success()) {
            missing.push(format!(
                "bpf-linker (not found or not working in PATH or {})",
                cargo_bin.display()
            ));
        }
        if missing.is_empty() {
            Ok(Self { cargo, rustc, path })
        } else {
            Err(format!(
                "the eBPF object cannot be built: missing {}. Run `{SETUP}` (as root), then build again",
                missing.join(", ")
            )
            .into())
        }
    }

    /// Builds the kernel programs into their own target dir (the outer
    /// cargo holds the lock on ours).
    fn build(&self, dir: &Path) -> Result<PathBuf, Failure> {
        let target_dir = dir.join("target");
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(dir)
            .args([
                "build",
                "--release",
                "-Z",
                "build-std=core",
                "--target",
                "bpfel-unknown-none",
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        // Nothing of the outer build may leak into the inner one (clippy sets a
        // rustc wrapper, cargo sets flags for the host target).
        for (k, _) in env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO") || k.starts_with("RUSTC") || k.starts_with("RUST") {
                cmd.env_remove(&k);
            }
        }
        if let Some(h) = env::var_os("CARGO_HOME") {
            cmd.env("CARGO_HOME", h);
        }
        cmd.env("PATH", &self.path)
            .env("RUSTC", &self.rustc)
            .env("RUSTC_BOOTSTRAP", "1");
        cmd.stdout(Stdio::null());
        let status = cmd
            .status()
            .map_err(|e| format!("running {}: {e}", self.cargo.display()))?;
        if !status.success() {
            return Err(Failure {
                why: format!("building slimd-ebpf failed ({status}): its errors follow"),
                show_output: true,
            });
        }
        Ok(target_dir.join("bpfel-unknown-none/release/slimd-ebpf"))
    }
}

/// The library source `-Z build-std` compiles `core` from.
fn rust_src(rustc: &Path) -> Result<(), String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("Debian's rustc ({} does not run: {e})", rustc.display()))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let core = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if core.is_file() {
        Ok(())
    } else {
        Err(format!(
            "the Rust library source for Debian's rustc ({} not found)",
            core.display()
        ))
    }
}
