//! The test images build from local files and do their job under plain
//! `docker run` (before slimd touches them).

use std::time::Duration;

use crate::{TestImage, ensure_image, http_get, image_size, run_detached};

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn each_fixture_image_builds_and_runs() -> anyhow::Result<()> {
    for image in TestImage::ALL {
        let tag = ensure_image(image)?;
        let size = image_size(tag)?;
        eprintln!("{tag}: {size} bytes");
        let c = run_detached(image, &[])?;
        match image.port() {
            Some(port) => {
                let host_port = c.host_port(port)?;
                for path in image.expected_ok_paths() {
                    let (status, body) = http_get(host_port, path, Duration::from_secs(30))?;
                    let (out, err) = c.logs()?;
                    assert_eq!(
                        status, 200,
                        "{tag} {path}: {body}\nstdout: {out}\nstderr: {err}"
                    );
                }
                let (status, _) = http_get(host_port, "/no/such/page", Duration::from_secs(10))?;
                assert_eq!(status, 404, "{tag}");
            }
            None => {
                let code = c.wait(Duration::from_secs(60))?;
                let (out, err) = c.logs()?;
                assert_eq!(code, 0, "{tag} exited {code}: {err}");
                assert_eq!(Some(out.as_str()), image.expected_stdout(), "{tag}");
            }
        }
    }
    Ok(())
}

/// The inputs label decides: the same inputs reuse the image without a
/// build (the label check, not the process's memo, answers), changed inputs
/// rebuild it and move the label.
#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn images_are_cached_by_inputs() -> anyhow::Result<()> {
    use crate::{Cache, Entry, Recipe, build_unless_cached, image_id, image_inputs, inputs_hash};
    crate::ensure_docker()?;
    let tag = "slimd-test/cache-check:latest";
    let recipe = |data: String| Recipe {
        entries: vec![Entry::Bytes {
            path: "/data".into(),
            data: data.into_bytes(),
            mode: 0o644,
        }],
        dockerfile: "FROM scratch\nCOPY rootfs/ /\n".into(),
        extra_inputs: vec![],
    };
    // Fresh inputs each run, so the first call must build.
    let nonce = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
    let result = (|| {
        let first = recipe(format!("first {nonce}"));
        assert_eq!(build_unless_cached(tag, &first)?, Cache::Built);
        let id = image_id(tag).expect("built");
        assert_eq!(image_inputs(tag), Some(inputs_hash(&first)?));
        assert_eq!(build_unless_cached(tag, &first)?, Cache::Hit);
        assert_eq!(image_id(tag).as_deref(), Some(id.as_str()));
        let second = recipe(format!("second {nonce}"));
        assert_eq!(build_unless_cached(tag, &second)?, Cache::Built);
        assert_ne!(image_id(tag).as_deref(), Some(id.as_str()));
        assert_eq!(image_inputs(tag), Some(inputs_hash(&second)?));
        Ok(())
    })();
    let _ = crate::docker(["image", "rm", "-f", tag]);
    result
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn server_images_build_and_answer_their_clients() -> anyhow::Result<()> {
    use crate::ServerImage;
    for server in ServerImage::ALL {
        let tag = server.ensure()?;
        eprintln!("{tag}: {} bytes", image_size(tag)?);
        let c = server.run(tag)?;
        server.wait_answering(&c, Duration::from_secs(90))?;
        let (statement, answer) = server.seeded();
        assert_eq!(server.query(&c, statement)?, answer, "{tag}");
        let user = crate::docker(["exec", &c.id, "id", "-un"])?;
        assert_eq!(user, server.user(), "{tag}");
    }
    Ok(())
}
