//! `slimd::engine` against the real Docker engine (20.10, API 1.41).

use std::time::{Duration, Instant};

use crate::{Container, RUN_LABEL, TestImage, ensure_image};
use slimd::engine::{ContainerSpec, Engine, EngineError, ExecRequest};
use slimd::probe::{self, Endpoint, HttpCheck};

fn spec(image: TestImage, name: &str) -> ContainerSpec {
    ContainerSpec {
        labels: [
            (RUN_LABEL.to_string(), name.to_string()),
            ("slimd.session".to_string(), format!("test-{name}")),
        ]
        .into(),
        publish: image.port().map(|p| p.to_string()).into_iter().collect(),
        cgroup_parent: Some("slimd-test".into()),
        ..ContainerSpec::new(image.tag())
    }
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn engine_runs_execs_and_stops_a_container() -> anyhow::Result<()> {
    let tag = ensure_image(TestImage::ShellEntrypoint)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;
        let v = engine.version().await?;
        assert_eq!(v.api_version, "1.41", "{v:?}");
        assert!(!v.kernel.is_empty() && !v.cgroup_driver.is_empty(), "{v:?}");

        let info = engine.inspect_image(tag).await?;
        assert!(info.id.starts_with("sha256:"));
        assert_eq!(info.config.exposed_ports, vec!["8080/tcp".to_string()]);
        assert_eq!(
            info.config.entrypoint.as_deref(),
            Some(&["/usr/local/bin/entrypoint.sh".to_string()][..])
        );
        assert_eq!(info.config.stop_signal.as_deref(), Some("SIGKILL"));
        assert!(info.config.labels.contains_key(crate::INPUTS_LABEL));
        assert!(info.size > 0);

        let id = engine
            .create_container(&spec(TestImage::ShellEntrypoint, "engine-test"))
            .await?;
        let _cleanup = Container { id: id.clone() };
        let found = engine
            .list_containers_by_label("slimd.session", Some("test-engine-test"))
            .await?;
        assert_eq!(found, vec![id.clone()]);

        engine.start(&id).await?;
        let c = engine.inspect_container(&id).await?;
        assert!(c.state.running, "{c:?}");
        assert!(c.state.pid.unwrap_or(0) > 0);
        assert_eq!(c.cgroup_parent.as_deref(), Some("slimd-test"));
        assert!(c.merged_dir.is_some());
        let host_port = c.host_port("8080").expect("8080 published");
        let ep = Endpoint::new("127.0.0.1", host_port, 8080);
        tokio::task::spawn_blocking(move || {
            crate::http_get(host_port, "/", Duration::from_secs(30))
        })
        .await??;
        assert_eq!(
            probe::speaks_http(&ep, Duration::from_secs(5)).await,
            HttpCheck::Http { status: 200 }
        );

        let deadline = || Instant::now() + Duration::from_secs(20);
        let out = engine
            .exec(
                &id,
                &ExecRequest::new(vec!["cat".into(), "/etc/app/app.env".into()]),
                deadline(),
            )
            .await?;
        assert_eq!(out.exit_code, Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("PORT=8080"));
        let mut req =
            ExecRequest::new(vec!["sh".into(), "-c".into(), "echo $X >&2; exit 7".into()]);
        req.env = vec!["X=from-exec".into()];
        let out = engine.exec(&id, &req, deadline()).await?;
        assert_eq!(out.exit_code, Some(7));
        assert_eq!(out.stderr, b"from-exec\n");
        let out = engine
            .exec(
                &id,
                &ExecRequest::new(vec!["/no/such/binary".into()]),
                deadline(),
            )
            .await?;
        assert!(matches!(out.exit_code, Some(126 | 127)), "{out:?}");
        let out = engine
            .exec(
                &id,
                &ExecRequest::new(vec!["sleep".into(), "30".into()]),
                Instant::now() + Duration::from_millis(500),
            )
            .await?;
        assert!(out.timed_out && out.exit_code.is_none(), "{out:?}");

        let logs = engine.logs(&id, 1 << 20).await?;
        assert!(
            String::from_utf8_lossy(&logs.stdout)
                .contains("entrypoint: serving /run/www on port 8080"),
            "{logs:?}"
        );

        assert_eq!(
            engine
                .wait_exit(&id, Instant::now() + Duration::from_millis(200))
                .await?,
            None
        );
        engine.stop(&id, None, Duration::from_secs(5)).await?;
        let code = engine.wait_exit(&id, deadline()).await?;
        assert_eq!(code, Some(137), "STOPSIGNAL SIGKILL");
        let c = engine.inspect_container(&id).await?;
        assert!(!c.state.running);
        engine.stop(&id, None, Duration::from_secs(1)).await?; // stopped: not an error
        assert!(matches!(
            engine.kill(&id, "SIGKILL").await,
            Err(EngineError::ContainerNotRunning(_))
        ));
        engine.remove(&id, false).await?;
        assert!(matches!(
            engine.inspect_container(&id).await,
            Err(EngineError::ContainerNotFound(_))
        ));
        Ok(())
    })
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn engine_reports_missing_images_and_containers() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;
        let missing = "slimd-test/does-not-exist:never";
        match engine.inspect_image(missing).await {
            Err(EngineError::ImageNotFound(name)) => assert_eq!(name, missing),
            other => panic!("expected ImageNotFound, got {other:?}"),
        }
        assert!(!engine.tag_exists(missing).await?);
        match engine.create_container(&ContainerSpec::new(missing)).await {
            Err(EngineError::ImageNotFound(name)) => assert_eq!(name, missing),
            other => panic!("expected ImageNotFound, got {other:?}"),
        }
        assert!(matches!(
            engine.start("slimd-test-no-such-container").await,
            Err(EngineError::ContainerNotFound(_))
        ));
        let err = Engine::connect(Some(std::path::Path::new("/nonexistent/docker.sock")))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Unreachable { .. }));
        assert!(err.to_string().contains("is dockerd running?"), "{err}");
        Ok(())
    })
}

#[test]
#[ignore = "needs root and Docker: cargo xtask test"]
fn engine_saves_and_loads_images_and_records_one_shot_runs() -> anyhow::Result<()> {
    let tag = ensure_image(TestImage::CliOneshot)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let engine = Engine::connect(None).await?;

        // Save under a temporary tag, drop the tag, load it back.
        let tmp_tag = "slimd-test/engine-load:latest";
        engine
            .tag_image(tag, "slimd-test/engine-load", "latest")
            .await?;
        let dir = tempfile::tempdir()?;
        let tar = dir.path().join("image.tar");
        let size = engine.export_image_to_file(tmp_tag, &tar).await?;
        assert!(size > 1_000_000, "{size}");
        engine.remove_image(tmp_tag, false).await?;
        assert!(!engine.tag_exists(tmp_tag).await?);
        let msgs = engine.load_image_file(&tar).await?;
        assert!(msgs.iter().any(|m| m.contains(tmp_tag)), "{msgs:?}");
        assert!(engine.tag_exists(tmp_tag).await?);
        engine.remove_image(tmp_tag, false).await?;
        assert!(matches!(
            engine.export_image_to_file(tmp_tag, &tar).await,
            Err(EngineError::ImageNotFound(_))
        ));

        // Two runs of the one-shot CLI record the same result.
        let mut runs = Vec::new();
        for n in 0..2 {
            let id = engine
                .create_container(&spec(TestImage::CliOneshot, &format!("oneshot-{n}")))
                .await?;
            let _cleanup = Container { id: id.clone() };
            engine.start(&id).await?;
            let run =
                probe::record_oneshot_run(&engine, &id, Instant::now() + Duration::from_secs(60))
                    .await?;
            assert_eq!(run.exit_code, Some(0), "{run:?}");
            assert_eq!(
                Some(run.stdout.text.as_str()),
                TestImage::CliOneshot.expected_stdout()
            );
            engine.remove(&id, true).await?;
            runs.push(run);
        }
        let c = probe::compare_runs(&runs[0], &runs[1]);
        assert!(c.mismatches.is_empty(), "{:?}", c.mismatches);
        assert_eq!(c.agreed, ["container run"]);
        Ok(())
    })
}
