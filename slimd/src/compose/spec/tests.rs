//! Parsing and validation of Compose files: what is run, what is refused.

use super::*;

fn bundle(text: &str) -> ComposeBundle {
    ComposeBundle {
        file: "/p/shop/compose.yml".into(),
        project_dir: "/p/shop".into(),
        text: text.into(),
        ..Default::default()
    }
}

const APP: &str = r#"
name: shop
x-slim:
  probe-cmds: ["curl -fsS $$SLIM_WEB_URL/items"]
services:
  web:
    image: shop-web:${TAG:-1}
    command: python3 -m app --port 8000
    ports: ["127.0.0.1:8080:8000"]
    environment:
      CACHE: cache:6379
      FROM_CALLER:
    env_file: web.env
    depends_on:
      cache:
        condition: service_healthy
    x-slim:
      exec-probes: ["python3 -c 'import app'"]
  cache:
    image: shop-cache
    expose: ["6379"]
    healthcheck:
      test: redis-cli ping
      interval: 1s
      retries: 30
    depends_on: [db]
    restart: always
  db:
    image: shop-db
    volumes: ["db-data:/var/lib/postgresql"]
    networks: [back]
  tools:
    image: tools
    profiles: [debug]
volumes:
  db-data: {}
networks:
  back: {}
"#;

#[test]
fn services_come_in_dependency_order_with_their_settings() {
    let mut b = bundle(APP);
    b.env_files
        .insert("web.env".into(), "GREETING=hello\n".into());
    b.environment.insert("FROM_CALLER".into(), "yes".into());
    let s = StackSpec::parse(&b, &[], &[]).unwrap();
    assert_eq!(s.name, "shop");
    let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["db", "cache", "web"],
        "profiles off: tools is not enabled"
    );
    let web = s.service("web").unwrap();
    assert_eq!(web.image, "shop-web:1");
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["python3", "-m", "app", "--port", "8000"]
    );
    assert_eq!(web.ports, ["8000/tcp"]);
    assert_eq!(
        web.environment,
        ["GREETING=hello", "CACHE=cache:6379", "FROM_CALLER=yes"]
    );
    assert_eq!(web.depends_on[0].condition, Condition::ServiceHealthy);
    assert_eq!(web.slim.exec_probes, ["python3 -c 'import app'"]);
    assert_eq!(web.networks, ["default"]);
    assert!(web.chosen);
    let cache = s.service("cache").unwrap();
    assert_eq!(cache.ports, ["6379/tcp"]);
    let h = cache.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "redis-cli ping"]);
    assert_eq!(h.interval, Some(Duration::from_secs(1)));
    assert_eq!(h.retries, Some(30));
    let db = s.service("db").unwrap();
    assert_eq!(
        db.volumes,
        [MountSpec::Named {
            volume: "db-data".into(),
            target: "/var/lib/postgresql".into(),
            read_only: false
        }]
    );
    assert_eq!(db.networks, ["back"]);
    assert_eq!(s.networks, ["back", "default"]);
    assert_eq!(s.volumes, ["db-data"]);
    assert_eq!(s.host_commands, ["curl -fsS $SLIM_WEB_URL/items"]);
    assert!(
        s.notes.iter().any(|n| n.contains("services.cache.restart")),
        "{:?}",
        s.notes
    );
}

#[test]
fn chosen_services_and_profiles() {
    let mut b = bundle(APP);
    b.env_files.insert("web.env".into(), String::new());
    let s = StackSpec::parse(&b, &["web".into()], &[]).unwrap();
    let chosen: Vec<&str> = s
        .services
        .iter()
        .filter(|s| s.chosen)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(chosen, ["web"]);
    assert_eq!(s.services.len(), 3, "dependencies run untraced");
    let s = StackSpec::parse(&b, &[], &["debug".into()]).unwrap();
    assert!(s.service("tools").is_some());
    let s = StackSpec::parse(&b, &["tools".into()], &[]).unwrap();
    assert!(
        s.service("tools").unwrap().chosen,
        "naming a service enables it"
    );
    assert!(matches!(
        StackSpec::parse(&b, &["nope".into()], &[]),
        Err(ComposeError::UnknownService(n)) if n == "nope"
    ));
}

#[test]
fn a_missing_env_file_and_required_variables_are_errors() {
    let e = StackSpec::parse(&bundle(APP), &[], &[]).unwrap_err();
    assert!(matches!(e, ComposeError::EnvFileMissing { .. }), "{e}");
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: ${IMG:?give IMG}\n"),
        &[],
        &[],
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("services.a.image") && m.contains("IMG") && m.contains("give IMG"),
        "{m}"
    );
}

#[test]
fn dot_env_sets_variables_and_the_caller_overrides_it() {
    let mut b = bundle("services:\n  a:\n    image: app:${TAG}\n");
    b.dot_env = Some("TAG=from-dotenv\n".into());
    assert_eq!(
        StackSpec::parse(&b, &[], &[]).unwrap().services[0].image,
        "app:from-dotenv"
    );
    b.environment.insert("TAG".into(), "from-caller".into());
    assert_eq!(
        StackSpec::parse(&b, &[], &[]).unwrap().services[0].image,
        "app:from-caller"
    );
}

/// Each unsupported part is refused with the key that names it.
#[test]
fn unsupported_keys_are_refused_by_name() {
    let cases = [
        ("services:\n  a:\n    build: .\n", "services.a.build"),
        (
            "services:\n  a:\n    image: x\n    extends: b\n",
            "services.a.extends",
        ),
        (
            "include: [other.yml]\nservices:\n  a:\n    image: x\n",
            "include",
        ),
        ("secrets: {}\nservices:\n  a:\n    image: x\n", "secrets"),
        (
            "services:\n  a:\n    image: x\n    privileged: true\n",
            "services.a.privileged",
        ),
        (
            "services:\n  a:\n    image: x\n    network_mode: host\n",
            "services.a.network_mode",
        ),
        (
            "services:\n  a:\n    image: x\n    deploy: {replicas: 2}\n",
            "services.a.deploy",
        ),
        (
            "services:\n  a:\n    image: x\n    volumes: ['./data:/data']\n",
            "services.a.volumes",
        ),
        (
            "services:\n  a:\n    image: x\nnetworks:\n  n:\n    external: true\n",
            "networks.n.external",
        ),
        (
            "services:\n  a:\n    image: x\nvolumes:\n  v:\n    driver: nfs\n",
            "volumes.v.driver",
        ),
        (
            "services:\n  a:\n    image: x\n    ports: ['8000-8010:8000-8010']\n",
            "services.a.ports",
        ),
    ];
    for (text, key) in cases {
        let e = StackSpec::parse(&bundle(text), &[], &[]).unwrap_err();
        assert!(
            matches!(&e, ComposeError::Unsupported { key: k, .. } if k == key),
            "{text}: {e}"
        );
        assert!(e.to_string().starts_with(key), "{e}");
    }
}

#[test]
fn dependencies_are_checked() {
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, ComposeError::Cycle(_)), "{e}");
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    depends_on: [c]\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, ComposeError::DependencyUnknown { .. }), "{e}");
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    profiles: [p]\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, ComposeError::DependencyDisabled { .. }), "{e}");
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_healthy}\n  b:\n    image: y\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("healthcheck"), "{e}");
}

#[test]
fn model_errors_and_bad_x_slim_are_errors() {
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    bogus: 1\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("services.a.bogus"), "{e}");
    let e = StackSpec::parse(
        &bundle("services:\n  a:\n    image: x\n    x-slim: {exec-probe: [ls]}\n"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("services.a.x-slim"), "{e}");
    let e = StackSpec::parse(&bundle("services:\n  a:\n    command: ls\n"), &[], &[]).unwrap_err();
    assert!(e.to_string().contains("services.a.image"), "{e}");
    assert!(matches!(
        StackSpec::parse(&bundle("services: {}\n"), &[], &[]),
        Err(ComposeError::NoServices)
    ));
}
