//! The harness's own checks: recipes hash only their inputs, commands are
//! killed at their deadline.

use crate::*;

#[test]
fn hash_changes_with_inputs_only() {
    let r = |data: &[u8]| Recipe {
        entries: vec![Entry::Bytes {
            path: "/a".into(),
            data: data.to_vec(),
            mode: 0o644,
        }],
        dockerfile: "FROM scratch\n".into(),
        extra_inputs: vec![],
    };
    assert_eq!(
        inputs_hash(&r(b"x")).unwrap(),
        inputs_hash(&r(b"x")).unwrap()
    );
    assert_ne!(
        inputs_hash(&r(b"x")).unwrap(),
        inputs_hash(&r(b"y")).unwrap()
    );
    assert_eq!(filler(16, 7), filler(16, 7));
}

#[test]
fn recipes_without_docker_resolve_their_files() {
    // Everything except python-app (which needs debootstrap and Docker).
    for image in [
        TestImage::StaticServer,
        TestImage::DynamicC,
        TestImage::ShellEntrypoint,
        TestImage::CliOneshot,
    ] {
        let r = recipe(image).unwrap();
        assert!(r.dockerfile.starts_with("FROM scratch"));
        assert!(!r.entries.is_empty());
    }
}

#[test]
fn run_with_timeout_kills_slow_commands() {
    let t = Instant::now();
    let err = run_with_timeout(
        Command::new("sh").args(["-c", "sleep 30"]),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(err.to_string().contains("did not finish"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let err = checked(
        Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
        Duration::from_secs(10),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("boom") && err.contains("3"), "{err}");
}
