//! The kit against a real kube-apiserver: Leases with optimistic
//! concurrency, RBAC, restart, pause and cleanup. The first run builds the
//! apiserver (a few minutes); later runs take seconds.

use std::path::Path;

use tenure_testkit::KubeApiserver;

fn leases(namespace: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
}

/// The `metadata.resourceVersion` of an object's JSON.
fn resource_version(json: &str) -> String {
    let key = r#""resourceVersion":""#;
    let start = json
        .find(key)
        .unwrap_or_else(|| panic!("no resourceVersion in {json}"))
        + key.len();
    let end = start + json[start..].find('"').unwrap();
    json[start..end].to_owned()
}

fn lease(name: &str, holder: &str, resource_version: Option<&str>) -> String {
    let version =
        resource_version.map_or(String::new(), |v| format!(r#","resourceVersion":"{v}""#));
    format!(
        r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease",
            "metadata":{{"name":"{name}"{version}}},
            "spec":{{"holderIdentity":"{holder}","leaseDurationSeconds":15}}}}"#
    )
}

fn proc_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[test]
fn a_lease_update_needs_the_current_resource_version_and_a_role() {
    let api = KubeApiserver::shared();
    assert!(api.url().starts_with("https://127.0.0.1:"), "{}", api.url());
    api.create_namespace("lease-cas").unwrap();
    let admin = api.admin_token();
    let path = leases("lease-cas");

    let (status, created) = api
        .request(admin, "POST", &path, Some(&lease("leader", "a", None)))
        .unwrap();
    assert_eq!(status, 201, "{created}");
    assert!(created.contains(r#""holderIdentity":"a""#), "{created}");
    let first = resource_version(&created);

    let object = format!("{path}/leader");
    let (status, updated) = api
        .request(
            admin,
            "PUT",
            &object,
            Some(&lease("leader", "b", Some(&first))),
        )
        .unwrap();
    assert_eq!(status, 200, "{updated}");
    assert!(updated.contains(r#""holderIdentity":"b""#), "{updated}");
    assert_ne!(resource_version(&updated), first);

    // The update a deposed leader would make: its read is stale.
    let (status, conflict) = api
        .request(
            admin,
            "PUT",
            &object,
            Some(&lease("leader", "a", Some(&first))),
        )
        .unwrap();
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict.contains(r#""reason":"Conflict""#), "{conflict}");

    let nobody = api.unprivileged_token();
    for (method, path, body) in [
        ("GET", object.as_str(), None),
        ("POST", path.as_str(), Some(lease("other", "c", None))),
    ] {
        let (status, answer) = api.request(nobody, method, path, body.as_deref()).unwrap();
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer.contains("tenure-unprivileged"), "{answer}");
    }
    let (status, answer) = api.request("no-such-token", "GET", &object, None).unwrap();
    assert_eq!(status, 401, "{answer}");

    // `/version` is always pretty-printed.
    let (_, version) = api.request(admin, "GET", "/version", None).unwrap();
    assert!(version.contains(r#""gitVersion": "v1.20.2""#), "{version}");
    let token = std::fs::read_to_string(api.admin_token_file()).unwrap();
    assert_eq!(token, admin);
    let kubeconfig = std::fs::read_to_string(api.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(&api.url()), "{kubeconfig}");
}

#[test]
fn it_restarts_with_its_data_pauses_and_leaves_nothing_behind() {
    let api = KubeApiserver::start().unwrap();
    api.create_namespace("survives").unwrap();
    let err = api.create_namespace("survives").unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");

    let first = api.pid().unwrap();
    api.restart().unwrap();
    let pid = api.pid().unwrap();
    assert!(
        pid != first && !proc_exists(first),
        "a restart is a new process"
    );
    let (status, answer) = api
        .request(
            api.admin_token(),
            "GET",
            "/api/v1/namespaces/survives",
            None,
        )
        .unwrap();
    assert_eq!(status, 200, "same etcd: {answer}");

    api.pause();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert_eq!(
        state.rsplit_once(')').unwrap().1.split_whitespace().next(),
        Some("T")
    );
    api.resume();
    api.wait_ready().unwrap();

    api.kill();
    assert_eq!(api.pid(), None);
    assert!(!proc_exists(pid));
    api.restart().unwrap();

    let pid = api.pid().unwrap();
    let etcd = api.etcd().pid(0).unwrap();
    let dirs = [api.dir().to_owned(), api.etcd().dir().to_owned()];
    assert!(dirs.iter().all(|dir| dir.is_dir()));
    drop(api);
    assert!(!proc_exists(pid), "the apiserver outlived its value");
    assert!(!proc_exists(etcd), "its etcd outlived it");
    for dir in dirs {
        assert!(!dir.exists(), "{} outlived it", dir.display());
    }
}
