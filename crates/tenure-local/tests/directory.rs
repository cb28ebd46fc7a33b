//! What the local backend does with the directory it is given: creation,
//! permissions, format markers, corruption — each a clear, typed error, with
//! nothing overwritten.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tenure_core::{Backend, Error, Guard, Path};
use tenure_local::LocalBackend;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenure-dir-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn open_err(path: &std::path::Path) -> Error {
    LocalBackend::open(path)
        .await
        .expect_err("the directory must be refused")
}

#[tokio::test]
async fn a_new_directory_is_private() {
    let dir = temp_dir("private").join("nested");
    let backend = LocalBackend::open(&dir).await.unwrap();
    backend
        .put(&Path::parse("k", "a").unwrap(), b"1", Guard::ANY)
        .await
        .unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("sessions")), 0o700);
    for file in ["FORMAT", "lock", "state"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(
        fs::read_to_string(dir.join("FORMAT")).unwrap(),
        "tenure-local 1\n"
    );
    backend.close().await.unwrap();
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn paths_that_cannot_be_a_directory_are_refused() {
    let base = temp_dir("paths");
    fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    fs::write(&file, b"x").unwrap();
    for (path, says) in [
        (file.clone(), "is a file, not a directory"),
        (file.join("below"), "cannot be created"),
        (PathBuf::from("relative/dir"), "absolute"),
    ] {
        let err = open_err(&path).await;
        assert!(
            matches!(&err, Error::InvalidInput { field: "path", rule, .. } if rule.contains(says)),
            "{}: {err}",
            path.display()
        );
    }
    fs::remove_dir_all(&base).unwrap();
}

#[tokio::test]
async fn a_directory_or_file_others_can_write_is_refused() {
    let dir = temp_dir("perms");
    LocalBackend::open(&dir)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    let err = open_err(&dir).await;
    assert!(
        matches!(&err, Error::InvalidInput { rule, .. } if rule.contains("writable by other users")),
        "{err}"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(dir.join("state"), fs::Permissions::from_mode(0o666)).unwrap();
    let err = open_err(&dir).await;
    assert!(
        matches!(&err, Error::InvalidInput { value, .. } if value.ends_with("state")),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_unknown_format_is_refused_and_left_alone() {
    let dir = temp_dir("format");
    LocalBackend::open(&dir)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    for marker in ["tenure-local 2\n", "something else\n"] {
        fs::write(dir.join("FORMAT"), marker).unwrap();
        let state = fs::read(dir.join("state")).unwrap();
        let err = open_err(&dir).await;
        assert!(
            matches!(&err, Error::Corrupted { key, .. } if key.ends_with("FORMAT")),
            "{marker:?}: {err}"
        );
        assert_eq!(fs::read_to_string(dir.join("FORMAT")).unwrap(), marker);
        assert_eq!(fs::read(dir.join("state")).unwrap(), state);
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_directory_holding_other_files_is_not_taken_over() {
    let dir = temp_dir("foreign");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(dir.join("precious.txt"), b"keep me").unwrap();
    let err = open_err(&dir).await;
    assert!(
        matches!(&err, Error::InvalidInput { rule, .. } if rule.contains("precious.txt")),
        "{err}"
    );
    assert!(!dir.join("FORMAT").exists(), "a marker was written");
    assert!(!dir.join("state").exists(), "state was written");
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_corrupted_state_file_is_reported_by_name_and_never_overwritten() {
    let dir = temp_dir("corrupt");
    let backend = LocalBackend::open(&dir).await.unwrap();
    let key = Path::parse("k", "a").unwrap();
    backend.put(&key, b"precious", Guard::ANY).await.unwrap();
    let state = dir.join("state");
    let mut bytes = fs::read(&state).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x20;
    fs::write(&state, &bytes).unwrap();

    // A running process: its writes fail, naming the file; nothing is written.
    let err = backend.put(&key, b"new", Guard::ANY).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { key, .. } if key.ends_with("state")),
        "{err}"
    );
    assert_eq!(
        fs::read(&state).unwrap(),
        bytes,
        "the corrupted file was overwritten"
    );

    // A new process: refused at open, with the file and the fault named.
    let err = open_err(&dir).await;
    assert!(
        matches!(&err, Error::Corrupted { key, reason } if key.ends_with("state") && reason.contains("checksum")),
        "{err}"
    );
    assert_eq!(fs::read(&state).unwrap(), bytes);
    let _ = backend.close().await;
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn terms_survive_every_process_restarting() {
    let dir = temp_dir("terms");
    let mut last = 0;
    for round in 0..3 {
        let backend = std::sync::Arc::new(LocalBackend::open(&dir).await.unwrap());
        let leadership = tenure_core::ElectionFactory::new(backend.clone())
            .new_election("restart")
            .unwrap()
            .campaign()
            .await
            .unwrap();
        assert!(
            leadership.term() > last,
            "round {round}: {} after {last}",
            leadership.term()
        );
        last = leadership.term();
        backend.close().await.unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
}
