//! A private containerd for the end-to-end tests: Debian's containerd
//! started with its own config (root, state and sockets under a temporary
//! directory, the CRI plugin off, or on with [`Containerd::start_cri`]),
//! never dockerd's own containerd and never a node's `/run/containerd`. It is stopped and its directory removed when
//! the value is dropped. The harness uses `ctr` to put fixtures in and to
//! look at what slimd wrote; slimd itself speaks gRPC.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{checked, wait_for};

/// The namespace kubelet uses, and the one the suite imports into.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// `containerd` and `ctr`, or the command that installs them.
pub fn require_containerd() -> Result<()> {
    for tool in ["containerd", "ctr"] {
        match Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            _ => bail!(
                "{tool} is not installed: run `cargo xtask setup` (Debian's containerd package)"
            ),
        }
    }
    Ok(())
}

/// A running private containerd.
pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Starts one and waits (30 s at most) until `ctr version` answers.
    pub fn start(name: &str) -> Result<Self> {
        Self::start_config(name, None)
    }

    /// Same, with the CRI plugin on, as on a Kubernetes node: runc with
    /// the cgroupfs driver (`SystemdCgroup = false`, cgroup parents are
    /// paths such as `/kubepods/besteffort/pod<uid>`), pod sandboxes from
    /// `sandbox_image` (which the caller imports into `k8s.io`: nothing is
    /// pulled), no CNI configured (pods must use the node's network), its
    /// streaming server on a free loopback port. `restrict_oom_score_adj`:
    /// the sandbox's OOM score (-998) is clamped to containerd's own, since
    /// lowering it needs CAP_SYS_RESOURCE, which this machine's bounding
    /// set lacks (runc fails with "can't get final child's PID" otherwise).
    pub fn start_cri(name: &str, sandbox_image: &str) -> Result<Self> {
        Self::start_config(name, Some(sandbox_image))
    }

    fn start_config(name: &str, cri_sandbox_image: Option<&str>) -> Result<Self> {
        require_containerd()?;
        // Short: a Unix socket path has 108 bytes at most.
        let dir = tempfile::Builder::new()
            .prefix(&format!("ctd-{name}-"))
            .tempdir_in("/tmp")?
            .keep();
        let socket = dir.join("c.sock");
        let config = dir.join("config.toml");
        // Top-level keys come before the first table.
        let (top, plugins) = match cri_sandbox_image {
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
                String::new(),
            ),
            Some(image) => {
                for d in ["cni-bin", "cni-conf"] {
                    std::fs::create_dir_all(dir.join(d))?;
                }
                let tables = format!(
                    "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
                     \x20 sandbox_image = \"{image}\"\n\
                     \x20 stream_server_address = \"127.0.0.1\"\n\
                     \x20 stream_server_port = \"0\"\n\
                     \x20 restrict_oom_score_adj = true\n\
                     \x20 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
                     \x20   snapshotter = \"overlayfs\"\n\
                     \x20   default_runtime_name = \"runc\"\n\
                     \x20   [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
                     \x20     runtime_type = \"io.containerd.runc.v2\"\n\
                     \x20     [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n\
                     \x20       SystemdCgroup = false\n\
                     \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
                     \x20   bin_dir = \"{bin}\"\n\
                     \x20   conf_dir = \"{conf}\"\n",
                    bin = dir.join("cni-bin").display(),
                    conf = dir.join("cni-conf").display(),
                );
                ("", tables)
            }
        };
        std::fs::write(
            &config,
            format!(
                "# Written by the slimd tests (tests/src/containerd.rs).\n\
                 version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 {top}\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n\
                 {plugins}",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = crate::spawn_service(
            Command::new("containerd")
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )
        .context("cannot start containerd")?;
        let mut c = Containerd {
            dir,
            socket,
            child: Some(child),
        };
        let sock = c.socket.clone();
        let answers = || {
            Command::new("ctr")
                .arg("--address")
                .arg(&sock)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !wait_for(answers, Duration::from_secs(30)) {
            let log = c.log();
            c.stop();
            bail!(
                "containerd did not answer on {} within 30 s: {}",
                sock.display(),
                crate::daemon::tail(&log)
            );
        }
        Ok(c)
    }

    /// Runs `ctr --address SOCK --namespace NS ARGS...` and returns stdout.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", namespace])
            .args(args);
        checked(&mut cmd, Duration::from_secs(300))
    }

    /// Saves the Docker image `tag` (through `scratch`, removed after) and
    /// imports it into [`K8S_NAMESPACE`], unpacked so it can run or as
    /// blobs only; returns containerd's name of it.
    pub fn import_docker_image(&self, tag: &str, scratch: &Path, unpack: bool) -> Result<String> {
        let archive = scratch.join("fixture-save.tar");
        let path = archive.to_str().context("non-UTF-8 scratch path")?;
        crate::docker(["save", "-o", path, tag])?;
        let mut import = vec!["images", "import"];
        if !unpack {
            import.push("--no-unpack");
        }
        import.push(path);
        let imported = self.ctr(K8S_NAMESPACE, &import);
        let _ = std::fs::remove_file(&archive);
        imported?;
        let names = self.ctr(K8S_NAMESPACE, &["images", "ls", "-q"])?;
        names
            .lines()
            .find(|n| n.ends_with(tag))
            .map(str::to_string)
            .with_context(|| format!("{tag} not among containerd's images: {names}"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The socket as a string, for command lines.
    pub fn address(&self) -> &str {
        self.socket.to_str().unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, then SIGKILL after 10 s.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let stopped = wait_for(
                || child.try_wait().is_ok_and(|s| s.is_some()),
                Duration::from_secs(10),
            );
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = remove_tree(&self.dir);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes containerd's directory; mounts left below it (none expected:
/// images are imported without unpacking) are unmounted first.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let mut below: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(dir))
            .collect();
        below.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in below {
            let _ = Command::new("umount").arg(m).status();
        }
    }
    std::fs::remove_dir_all(dir)
}
