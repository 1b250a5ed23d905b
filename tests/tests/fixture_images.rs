//! The test images build from local files and do their job under plain
//! `docker run` (before slimd touches them).

use std::time::Duration;

use slimd_tests::{TestImage, ensure_image, http_get, image_size, run_detached};

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

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn images_are_cached_by_inputs() -> anyhow::Result<()> {
    let tag = ensure_image(TestImage::StaticServer)?;
    let id = slimd_tests::docker(["image", "inspect", "--format", "{{.Id}}", tag])?;
    // A second call in this process, and the label check behind it, keep the image.
    ensure_image(TestImage::StaticServer)?;
    let again = slimd_tests::docker(["image", "inspect", "--format", "{{.Id}}", tag])?;
    assert_eq!(id, again);
    Ok(())
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn server_images_build_and_answer_their_clients() -> anyhow::Result<()> {
    use slimd_tests::ServerImage;
    for server in ServerImage::ALL {
        let tag = server.ensure()?;
        eprintln!("{tag}: {} bytes", image_size(tag)?);
        let c = server.run(tag)?;
        server.wait_answering(&c, Duration::from_secs(90))?;
        let (statement, answer) = server.seeded();
        assert_eq!(server.query(&c, statement)?, answer, "{tag}");
        let user = slimd_tests::docker(["exec", &c.id, "id", "-un"])?;
        assert_eq!(user, server.user(), "{tag}");
    }
    Ok(())
}
