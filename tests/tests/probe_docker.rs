//! `slimd::probe` against real containers: readiness through docker-proxy,
//! the crawl of a real site, replay and compare on a second container.

use std::time::{Duration, Instant};

use slimd::engine::{ContainerSpec, Engine};
use slimd::probe::{self, Endpoint, HttpProbeConfig, ProbeError, ProbePlan};
use slimd_tests::{Container, RUN_LABEL, TestImage, ensure_image};

async fn start(engine: &Engine, spec: &ContainerSpec) -> anyhow::Result<(Container, Endpoint)> {
    let id = engine.create_container(spec).await?;
    let guard = Container { id: id.clone() };
    engine.start(&id).await?;
    let info = engine.inspect_container(&id).await?;
    let port = slimd::engine::port_number(&spec.publish[0]).unwrap();
    let host_port = info.host_port(&spec.publish[0]).expect("published");
    Ok((guard, Endpoint::new("127.0.0.1", host_port, port)))
}

fn spec(image: TestImage) -> ContainerSpec {
    ContainerSpec {
        labels: [(RUN_LABEL.to_string(), "probe-test".to_string())].into(),
        publish: vec![image.port().unwrap().to_string()],
        ..ContainerSpec::new(image.tag())
    }
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn crawl_replay_and_compare_on_real_servers() -> anyhow::Result<()> {
    for image in [TestImage::StaticServer, TestImage::PythonApp] {
        ensure_image(image)?;
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;
        for image in [TestImage::StaticServer, TestImage::PythonApp] {
            let (first, ep) = start(&engine, &spec(image)).await?;
            probe::wait_http_ready(&ep, Instant::now() + Duration::from_secs(30)).await?;
            let plan = ProbePlan {
                endpoints: vec![ep.clone()],
                http: Some(HttpProbeConfig::default()),
                exec: vec![],
                ..ProbePlan::default()
            };
            let original = probe::run_probes(
                &engine,
                &first.id,
                &plan,
                Instant::now() + Duration::from_secs(120),
            )
            .await;
            assert!(original.failures().is_empty(), "{:?}", original.failures());
            let got: Vec<&str> = original
                .http
                .iter()
                .map(|r| r.request.path.as_str())
                .collect();
            for path in image.expected_ok_paths() {
                let rec = original.http.iter().find(|r| r.request.path == *path);
                let rec =
                    rec.unwrap_or_else(|| panic!("{image:?}: crawl missed {path}; got {got:?}"));
                assert_eq!(rec.status, Some(200), "{path}");
            }
            assert!(!got.iter().any(|p| p.contains("unused")), "{got:?}");

            // A second container of the same image answers the same way.
            let (second, ep2) = start(&engine, &spec(image)).await?;
            probe::wait_http_ready(&ep2, Instant::now() + Duration::from_secs(30)).await?;
            let replay = plan.replay_of(&original, vec![ep2]);
            let again = probe::run_probes(
                &engine,
                &second.id,
                &replay,
                Instant::now() + Duration::from_secs(120),
            )
            .await;
            let mismatches = probe::compare(&original, &again);
            assert!(mismatches.is_empty(), "{image:?}: {mismatches:?}");
            assert_eq!(original.http.len(), again.http.len());
        }
        Ok(())
    })
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn readiness_fails_clearly_when_the_app_does_not_listen_on_the_port() -> anyhow::Result<()> {
    ensure_image(TestImage::StaticServer)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;
        // The server listens on 9999; 8080 is published, so only docker-proxy answers.
        let spec = ContainerSpec {
            cmd: Some(["-p", "9999", "-d", "/srv/www"].map(String::from).to_vec()),
            ..spec(TestImage::StaticServer)
        };
        let (_c, ep) = start(&engine, &spec).await?;
        let t = Instant::now();
        let err = probe::wait_http_ready(&ep, Instant::now() + Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(
            matches!(
                err,
                ProbeError::NotReady {
                    container_port: 8080,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("nothing answered HTTP on 127.0.0.1:"),
            "{msg}"
        );
        assert!(
            msg.contains("within 3s; the app may not listen on container port 8080"),
            "{msg}"
        );
        Ok(())
    })
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn readiness_stops_early_when_the_container_exits() -> anyhow::Result<()> {
    ensure_image(TestImage::ShellEntrypoint)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;
        let spec = ContainerSpec {
            entrypoint: Some(
                ["sh", "-c", "echo cannot read config >&2; exit 3"]
                    .map(String::from)
                    .to_vec(),
            ),
            ..spec(TestImage::ShellEntrypoint)
        };
        let id = engine.create_container(&spec).await?;
        let c = Container { id: id.clone() };
        engine.start(&id).await?;
        // It may be gone already, and with it its published port.
        let info = engine.inspect_container(&id).await?;
        let ep = Endpoint::new("127.0.0.1", info.host_port("8080").unwrap_or(9), 8080);
        let t = Instant::now();
        let err = probe::wait_ready_or_exit(
            &engine,
            &c.id,
            &[ep],
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(
            matches!(err, ProbeError::ContainerExited { code: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("cannot read config"), "{err}");
        Ok(())
    })
}
