//! `slimd::probe` against real containers: the crawl of a real site, replay
//! and compare on a second container, and the HTTP check of a port.
//! (Readiness needs the tracer: the daemon's e2e tests cover it.)

use std::time::{Duration, Instant};

use crate::{Container, RUN_LABEL, TestImage, ensure_image};
use slimd::engine::{ContainerSpec, Engine};
use slimd::probe::{self, Endpoint, HttpCheck, HttpProbeConfig, ProbePlan};

async fn start(engine: &Engine, spec: &ContainerSpec) -> anyhow::Result<(Container, Endpoint)> {
    let id = engine.create_container(spec).await?;
    let guard = Container { id: id.clone() };
    engine.start(&id).await?;
    let info = engine.inspect_container(&id).await?;
    let port = slimd::engine::port_number(&spec.publish[0]).unwrap();
    let host_port = info.host_port(&spec.publish[0]).expect("published");
    Ok((guard, Endpoint::new("127.0.0.1", host_port, port)))
}

/// Waits (30 s at most) until the server behind `ep` answers HTTP.
async fn answers(ep: &Endpoint) -> anyhow::Result<()> {
    let port = ep.host_port;
    tokio::task::spawn_blocking(move || {
        crate::http_get(port, "/", Duration::from_secs(30)).map(|_| ())
    })
    .await?
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
            answers(&ep).await?;
            assert!(
                matches!(
                    probe::speaks_http(&ep, Duration::from_secs(5)).await,
                    HttpCheck::Http { status: 200 }
                ),
                "{image:?} speaks HTTP"
            );
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
                &probe::NoClient("no host commands in this test".into()),
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
            answers(&ep2).await?;
            let replay = plan.replay_of(&original, vec![ep2]);
            let again = probe::run_probes(
                &engine,
                &second.id,
                &replay,
                &probe::NoClient("no host commands in this test".into()),
                Instant::now() + Duration::from_secs(120),
            )
            .await;
            let c = probe::compare(&original, &again);
            assert!(c.mismatches.is_empty(), "{image:?}: {:?}", c.mismatches);
            assert!(c.problems.is_empty(), "{image:?}: {:?}", c.problems);
            assert_eq!(c.agreed.len(), original.http.len());
            assert_eq!(original.http.len(), again.http.len());
        }
        Ok(())
    })
}
