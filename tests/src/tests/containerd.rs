//! containerd's image store (the first slice of Kubernetes support): a
//! private containerd (Debian's 1.6, its own root, state and socket, CRI
//! off) holds a fixture imported with `ctr` into `k8s.io`; `slim xray
//! --containerd` reads it through the daemon, which speaks containerd's
//! gRPC API, and must see what `slim xray` sees through Docker; `slim load
//! --containerd` writes an OCI archive's blobs (a manifest, or an index
//! holding one), their garbage-collection
//! labels and the image record, and unpacks it into overlayfs, checked with
//! `ctr` (images, content and labels, snapshots, leases) and `ctr run`.
//! Not covered yet: the CRI plugin, kubelet.

use anyhow::{Context, Result, ensure};

use crate::TestImage;
use crate::containerd::{Containerd, K8S_NAMESPACE};
use crate::daemon::{Daemon, failed_with};
use crate::docker;

/// `slim --json ARGS` through the daemon, which must succeed.
fn slim_json(d: &Daemon, args: &[&str]) -> Result<serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = d.slim(&all)?;
    ensure!(
        out.status.success(),
        "slim {args:?} failed: {}\ndaemon log: {}",
        String::from_utf8_lossy(&out.stderr),
        crate::daemon::tail(&d.log())
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The parts of two xray reports that must agree when they read the same
/// image: its id, its layers, every count and size of its files.
fn same_image(a: &serde_json::Value, b: &serde_json::Value) -> Result<()> {
    for key in [
        "image_id",
        "os",
        "architecture",
        "total_size",
        "visible_bytes",
        "files",
        "directories",
        "symlinks",
        "other_entries",
        "largest_files",
        "packages",
    ] {
        ensure!(a[key] == b[key], "{key} differs: {} vs {}", a[key], b[key]);
    }
    let diff_ids = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["diff_id"].clone())
            .collect()
    };
    ensure!(diff_ids(a) == diff_ids(b), "layers differ");
    ensure!(a["files"].as_u64().unwrap_or(0) > 0, "no files: {a}");
    Ok(())
}

#[test]
#[ignore = "needs root, Docker and containerd: cargo xtask test"]
fn xray_through_containerd_matches_docker() -> Result<()> {
    let c = Containerd::start("xray")?;
    let d = Daemon::start("ctd-xray")?;
    let tag = TestImage::PythonApp.ensure()?;
    let name = c.import_docker_image(tag, &d.dir, false)?;
    let version = c.ctr(K8S_NAMESPACE, &["version"])?;
    println!(
        "{}",
        version
            .lines()
            .filter(|l| l.contains("Version"))
            .collect::<Vec<_>>()
            .join("; ")
    );

    let through_docker = slim_json(&d, &["xray", tag])?;
    let through_containerd = slim_json(
        &d,
        &[
            "xray",
            "--containerd",
            c.address(),
            "--namespace",
            K8S_NAMESPACE,
            &name,
        ],
    )?;
    same_image(&through_docker, &through_containerd)?;
    ensure!(
        through_containerd["format"] == "oci_layout",
        "{}",
        through_containerd["format"]
    );
    println!(
        "xray of {name} through containerd: {} files, {} bytes visible, same as through Docker",
        through_containerd["files"], through_containerd["visible_bytes"]
    );

    // No such image in the namespace: exit 3, saying which namespace.
    let out = d.slim(&[
        "xray",
        "--containerd",
        c.address(),
        "--namespace",
        K8S_NAMESPACE,
        "docker.io/slimd-e2e/none:1",
    ])?;
    let err = failed_with(&out, 3)?;
    ensure!(
        err.contains("no image docker.io/slimd-e2e/none:1 in containerd namespace k8s.io"),
        "{err}"
    );
    // The image is in k8s.io, not in another namespace.
    let out = d.slim(&[
        "xray",
        "--containerd",
        c.address(),
        "--namespace",
        "default",
        &name,
    ])?;
    failed_with(&out, 3)?;
    // No socket: exit 2, saying so.
    let missing = c.dir.join("none.sock");
    let out = d.slim(&["xray", "--containerd", missing.to_str().unwrap(), &name])?;
    let err = failed_with(&out, 2)?;
    ensure!(err.contains("is containerd running"), "{err}");
    d.assert_clean()
}

/// Rewrites the layout that [`written_by_slimd`] left in `writer-out/` so
/// that `index.json` names an OCI index (platform linux/amd64) that names
/// the manifest; returns the tar of it.
fn wrap_in_index(d: &Daemon, written: &slimd::image::WrittenImage) -> Result<std::path::PathBuf> {
    use sha2::Digest;
    let dir = d.dir.join("writer-out");
    let hex = written.manifest_digest.trim_start_matches("sha256:");
    let size = std::fs::metadata(dir.join("blobs/sha256").join(hex))?.len();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": written.manifest_digest,
            "size": size,
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    }))?;
    let index_hex = hex::encode(sha2::Sha256::digest(&index));
    std::fs::write(dir.join("blobs/sha256").join(&index_hex), &index)?;
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{index_hex}"),
            "size": index.len(),
        }],
    }))?;
    std::fs::write(dir.join("index.json"), top)?;
    let tar_path = d.dir.join("indexed.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path)?);
    b.append_dir_all(".", &dir)?;
    b.finish()?;
    Ok(tar_path)
}

/// containerd's runc shim puts a container's cgroup under one named for
/// the namespace and leaves that (empty) one behind: removed here.
fn remove_namespace_cgroups(ns: &str) {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(ns));
    if let Ok(controllers) = std::fs::read_dir(root) {
        for c in controllers.flatten() {
            let _ = std::fs::remove_dir(c.path().join(ns));
        }
    }
}

/// The whole of the Docker image `tag` written by slimd's image writer as
/// one layer into an OCI layout, tarred; its summary and the tar's path.
fn written_by_slimd(
    d: &Daemon,
    tag: &str,
) -> Result<(slimd::image::WrittenImage, std::path::PathBuf)> {
    let save = d.dir.join("writer-in.tar");
    docker(["save", "-o", save.to_str().unwrap(), tag])?;
    let scratch = tempfile::tempdir_in(&d.dir)?;
    let image = slimd::image::Image::open(&save, scratch.path())?;
    let mut selection = slimd::image::Selection::new();
    selection.insert_tree(&image, "/");
    let options = slimd::image::WriteOptions {
        tag: Some("example.com/slimd-e2e/written:1".into()),
        ..Default::default()
    };
    let dir = d.dir.join("writer-out");
    let written =
        slimd::image::ImageWriter::new(&image, &selection, &options).write_oci_dir(&dir)?;
    let tar_path = d.dir.join("writer-out.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path)?);
    b.append_dir_all(".", &dir)?;
    b.finish()?;
    let _ = std::fs::remove_file(&save);
    Ok((written, tar_path))
}

#[test]
#[ignore = "needs root, Docker and containerd: cargo xtask test"]
fn load_writes_blobs_labels_and_the_image() -> Result<()> {
    const NS: &str = "slimd-ctd-e2e";
    let c = Containerd::start("load")?;
    let d = Daemon::start("ctd-load")?;
    let tag = TestImage::CliOneshot.ensure()?;
    let imported = c.import_docker_image(tag, &d.dir, false)?;
    // An OCI image layout archive of it (ctr writes one).
    let archive = d.dir.join("oci.tar");
    c.ctr(
        K8S_NAMESPACE,
        &[
            "images",
            "export",
            "--platform",
            "linux/amd64",
            archive.to_str().unwrap(),
            &imported,
        ],
    )?;

    let target = "example.com/slimd-e2e/loaded:1";
    let loaded = slim_json(
        &d,
        &[
            "load",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            "--file",
            archive.to_str().unwrap(),
            "--tag",
            target,
        ],
    )?;
    ensure!(
        loaded["name"] == target && loaded["namespace"] == NS,
        "{loaded}"
    );
    ensure!(loaded["replaced"] == false, "{loaded}");
    let manifest = loaded["target"]["digest"]
        .as_str()
        .context("no target digest")?
        .to_string();

    // ctr sees the image, pointing at that manifest.
    let images = c.ctr(NS, &["images", "ls"])?;
    ensure!(
        images
            .lines()
            .any(|l| l.starts_with(target) && l.contains(&manifest)),
        "{target} @ {manifest} not in ctr images ls:\n{images}"
    );
    // ...and every blob, the manifest labelled with its config and layers.
    let content = c.ctr(NS, &["content", "ls"])?;
    let xray = slim_json(
        &d,
        &[
            "xray",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            target,
        ],
    )?;
    let manifest_line = content
        .lines()
        .find(|l| l.starts_with(&manifest))
        .with_context(|| format!("manifest {manifest} not in ctr content ls:\n{content}"))?;
    ensure!(
        manifest_line.contains(&format!(
            "containerd.io/gc.ref.content.config={}",
            xray["image_id"].as_str().unwrap_or("?")
        )),
        "no config gc label: {manifest_line}"
    );
    for (i, layer) in xray["layers"].as_array().into_iter().flatten().enumerate() {
        let digest = layer["digest"].as_str().context("layer digest")?;
        ensure!(
            content.lines().any(|l| l.starts_with(digest)),
            "layer {digest} not in ctr content ls:\n{content}"
        );
        ensure!(
            manifest_line.contains(&format!("containerd.io/gc.ref.content.l.{i}={digest}")),
            "no gc label of layer {i}: {manifest_line}"
        );
    }
    // What slimd wrote reads back as the same image Docker has.
    same_image(&slim_json(&d, &["xray", tag])?, &xray)?;
    println!(
        "loaded {target} into {NS}: {} blobs written, {} already there, {} bytes; {} layers labelled",
        loaded["blobs_written"],
        loaded["blobs_present"],
        loaded["bytes_written"],
        xray["layers"].as_array().map_or(0, |l| l.len())
    );

    // An archive of slimd's own image writer (all of the fixture as one
    // new layer): blobs containerd has nowhere yet, so each goes through
    // Content Write and is committed against its digest.
    let written = written_by_slimd(&d, tag)?;
    let fresh = "example.com/slimd-e2e/written:1";
    let w = slim_json(
        &d,
        &[
            "load",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            "--file",
            written.1.to_str().unwrap(),
            "--tag",
            fresh,
        ],
    )?;
    ensure!(w["blobs_written"] == 3 && w["blobs_present"] == 0, "{w}");
    ensure!(
        w["target"]["digest"] == written.0.manifest_digest.as_str(),
        "{w}"
    );
    let wx = slim_json(
        &d,
        &[
            "xray",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            fresh,
        ],
    )?;
    ensure!(wx["image_id"] == written.0.image_id.as_str(), "{wx}");
    ensure!(
        wx["files"] == xray["files"] && wx["visible_bytes"] == xray["visible_bytes"],
        "{wx}"
    );
    let content = c.ctr(NS, &["content", "ls"])?;
    let line = content
        .lines()
        .find(|l| l.starts_with(&written.0.manifest_digest))
        .with_context(|| format!("written manifest not in ctr content ls:\n{content}"))?;
    ensure!(
        line.contains(&format!(
            "containerd.io/gc.ref.content.l.0={}",
            written.0.diff_id
        )),
        "{line}"
    );
    println!(
        "loaded slimd's own archive as {fresh}: {} blobs written, {} bytes, unpacked: {}",
        w["blobs_written"], w["bytes_written"], w["unpacked"]
    );
    // Unpacked into overlayfs: the top snapshot is there, the config holds
    // it for the garbage collector, and containerd runs the image.
    let chain = w["unpacked"]["chain_id"].as_str().context("not unpacked")?;
    ensure!(w["unpacked"]["layers_applied"] == 1, "{w}");
    let snapshots = c.ctr(NS, &["snapshots", "--snapshotter", "overlayfs", "ls"])?;
    ensure!(snapshots.contains(chain), "{chain} not in:\n{snapshots}");
    let content = c.ctr(NS, &["content", "ls"])?;
    ensure!(
        content.lines().any(|l| l.starts_with(&written.0.image_id)
            && l.contains(&format!("containerd.io/gc.ref.snapshot.overlayfs={chain}"))),
        "config has no snapshot gc label:\n{content}"
    );
    let out = c.ctr(NS, &["run", "--rm", fresh, "slimd-e2e-run"]);
    remove_namespace_cgroups(NS);
    let out = out?;
    ensure!(
        !std::path::Path::new("/sys/fs/cgroup/memory")
            .join(NS)
            .exists()
            && !std::path::Path::new("/sys/fs/cgroup").join(NS).exists(),
        "the run's cgroup {NS} was left behind"
    );
    ensure!(
        Some(out.as_str()) == TestImage::CliOneshot.expected_stdout().map(str::trim_end),
        "ctr run printed:\n{out}"
    );
    println!("ctr run --rm {fresh}: the one-shot CLI's output, as expected");

    // The same image behind an index (as multi-platform images are): the
    // index is the record's target and holds its manifest by gc label; xray
    // through containerd follows it to the linux/amd64 manifest, and the
    // unpack finds the layer's snapshot there already.
    let indexed_tar = wrap_in_index(&d, &written.0)?;
    let indexed = "example.com/slimd-e2e/indexed:1";
    let i = slim_json(
        &d,
        &[
            "load",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            "--file",
            indexed_tar.to_str().unwrap(),
            "--tag",
            indexed,
        ],
    )?;
    ensure!(
        i["target"]["mediaType"] == "application/vnd.oci.image.index.v1+json"
            && i["blobs_written"] == 1
            && i["unpacked"]["layers_present"] == 1,
        "{i}"
    );
    let index_digest = i["target"]["digest"].as_str().context("no index digest")?;
    let content = c.ctr(NS, &["content", "ls"])?;
    ensure!(
        content.lines().any(|l| l.starts_with(index_digest)
            && l.contains(&format!(
                "containerd.io/gc.ref.content.m.0={}",
                written.0.manifest_digest
            ))),
        "index {index_digest} has no manifest gc label:\n{content}"
    );
    let ix = slim_json(
        &d,
        &[
            "xray",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            indexed,
        ],
    )?;
    ensure!(
        ix["image_id"] == written.0.image_id.as_str() && ix["files"] == wx["files"],
        "{ix}"
    );

    // The name exists now: refused without --force (exit 4), replaced with it.
    let out = d.slim(&[
        "load",
        "--containerd",
        c.address(),
        "--namespace",
        NS,
        "--file",
        archive.to_str().unwrap(),
        "--tag",
        target,
    ])?;
    let err = failed_with(&out, 4)?;
    ensure!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let again = slim_json(
        &d,
        &[
            "load",
            "--containerd",
            c.address(),
            "--namespace",
            NS,
            "--file",
            archive.to_str().unwrap(),
            "--tag",
            target,
            "--force",
        ],
    )?;
    ensure!(
        again["replaced"] == true && again["blobs_written"] == 0,
        "{again}"
    );

    // A docker save archive of Docker 20.10 is not an OCI layout: exit 2.
    let save = d.dir.join("save.tar");
    docker(["save", "-o", save.to_str().unwrap(), tag])?;
    let out = d.slim(&[
        "load",
        "--containerd",
        c.address(),
        "--namespace",
        NS,
        "--file",
        save.to_str().unwrap(),
        "--tag",
        "example.com/slimd-e2e/legacy:1",
    ])?;
    let err = failed_with(&out, 2)?;
    ensure!(err.contains("not an OCI image layout"), "{err}");
    let images = c.ctr(NS, &["images", "ls", "-q"])?;
    ensure!(!images.contains("legacy"), "{images}");
    // The daemon left no scratch, and containerd no lease.
    let leases = c.ctr(NS, &["leases", "ls", "-q"])?;
    ensure!(leases.trim().is_empty(), "leases left: {leases}");
    d.assert_clean()
}
