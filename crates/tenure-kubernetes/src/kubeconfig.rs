//! Reading the current context of a kubeconfig file: the cluster's server
//! and CA, the user's bearer token, the context's namespace.
//!
//! Only bearer tokens (`token`, `tokenFile`) authenticate; a user with client
//! certificates, an exec plugin or an auth provider instead is refused
//! naming the field, as are `insecure-skip-tls-verify: true` and settings
//! that would change who is asked or who asks (`tls-server-name`,
//! `proxy-url`, impersonation).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use tenure_core::{Error, Result, Secret};

use crate::yaml;

/// What a kubeconfig's current context says.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) server: String,
    /// PEM.
    pub(crate) ca: Vec<u8>,
    pub(crate) token: Secret,
    /// Where the token came from, to re-read it when it rotates.
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) namespace: Option<String>,
}

fn unsupported(what: &'static str) -> Error {
    Error::Unsupported {
        backend: "k8s",
        what,
    }
}

/// Reads the kubeconfig at `path`; relative file names in it are relative
/// to its directory, as for kubectl.
pub(crate) fn read(path: &Path) -> Result<Context> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("kubeconfig", &shown, format!("cannot be read: {e}")))?;
    parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(|e| match e {
        Error::InvalidInput {
            field: "kubeconfig",
            rule,
            ..
        } => Error::invalid("kubeconfig", &shown, rule),
        other => other,
    })
}

/// Reads a kubeconfig's text; `dir` resolves relative file names.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<Context> {
    let bad = |rule: String| Error::invalid("kubeconfig", "", rule);
    let doc = yaml::parse(text).map_err(bad)?;
    let current =
        string(&doc, "current-context").ok_or_else(|| bad("has no current-context".into()))?;
    let context = named(&doc, "contexts", "context", current)?;
    let cluster_name = string(context, "cluster")
        .ok_or_else(|| bad(format!("context {current:?} names no cluster")))?;
    let user_name =
        string(context, "user").ok_or_else(|| bad(format!("context {current:?} names no user")))?;
    let cluster = named(&doc, "clusters", "cluster", cluster_name)?;
    let user = named(&doc, "users", "user", user_name)?;

    if is_true(cluster.get("insecure-skip-tls-verify")) {
        return Err(unsupported(
            "kubeconfig cluster field insecure-skip-tls-verify: TLS is always verified",
        ));
    }
    for (field, what) in [
        (
            "tls-server-name",
            "kubeconfig cluster field tls-server-name",
        ),
        ("proxy-url", "kubeconfig cluster field proxy-url"),
    ] {
        if cluster.get(field).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(what));
        }
    }
    let server = string(cluster, "server")
        .ok_or_else(|| bad(format!("cluster {cluster_name:?} has no server")))?;
    let ca = if let Some(data) = string(cluster, "certificate-authority-data") {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("certificate-authority-data is not base64: {e}")))?
    } else if let Some(file) = string(cluster, "certificate-authority") {
        read_file("certificate-authority", &dir.join(file))?
    } else {
        return Err(bad(format!(
            "cluster {cluster_name:?} has neither certificate-authority nor \
             certificate-authority-data (no system roots are trusted)"
        )));
    };

    for (field, what) in [
        ("as", "kubeconfig user field as (impersonation)"),
        ("as-uid", "kubeconfig user field as-uid (impersonation)"),
        (
            "as-groups",
            "kubeconfig user field as-groups (impersonation)",
        ),
        (
            "as-user-extra",
            "kubeconfig user field as-user-extra (impersonation)",
        ),
    ] {
        if user.get(field).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(what));
        }
    }
    let (token, token_file) = if let Some(token) = string(user, "token") {
        (Secret::new(token), None)
    } else if let Some(file) = string(user, "tokenFile") {
        let path = dir.join(file);
        (read_token(&path)?, Some(path))
    } else {
        // Kept in the order kubectl prefers them; the first present is named.
        let refused = [
            (
                "client-certificate",
                "kubeconfig user field client-certificate: use a bearer token",
            ),
            (
                "client-certificate-data",
                "kubeconfig user field client-certificate-data: use a bearer token",
            ),
            (
                "exec",
                "kubeconfig user field exec (credential plugins): use a bearer token",
            ),
            (
                "auth-provider",
                "kubeconfig user field auth-provider: use a bearer token",
            ),
            (
                "username",
                "kubeconfig user field username (basic auth): use a bearer token",
            ),
        ];
        if let Some((_, what)) = refused.iter().find(|(f, _)| user.get(*f).is_some()) {
            return Err(unsupported(what));
        }
        return Err(bad(format!("user {user_name:?} has no token or tokenFile")));
    };
    Ok(Context {
        server: server.to_owned(),
        ca,
        token,
        token_file,
        namespace: string(context, "namespace").map(str::to_owned),
    })
}

/// The `inner` of the element of list `list` whose `name` is `name`.
fn named<'a>(doc: &'a Value, list: &str, inner: &str, name: &str) -> Result<&'a Value> {
    doc.get(list)
        .and_then(Value::as_array)
        .and_then(|items| items.iter().find(|i| string(i, "name") == Some(name)))
        .and_then(|item| item.get(inner))
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            Error::invalid(
                "kubeconfig",
                "",
                format!("has no {inner} named {name:?} in {list}"),
            )
        })
}

fn string<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str().filter(|s| !s.is_empty())
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || value.and_then(Value::as_str) == Some("true")
}

/// The bytes of `path`, or an error naming `field` and the file.
pub(crate) fn read_file(field: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(
            field,
            &path.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })
}

/// The token in `path`, without surrounding whitespace.
pub(crate) fn read_token(path: &Path) -> Result<Secret> {
    let bytes = read_file("token_file", path)?;
    let token = String::from_utf8(bytes)
        .map_err(|_| Error::invalid("token_file", &path.display().to_string(), "is not UTF-8"))?;
    Ok(Secret::new(token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kind get kubeconfig` and kubeadm write, with a token user added
    /// and made current.
    const KUBECONFIG: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:39205
  name: kind-kind
- cluster:
    certificate-authority: certs/ca.crt
    server: \"https://prod.example.com:6443\"
  name: prod
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
- context:
    cluster: prod
    namespace: team-a   # where the elections live
    user: elector
  name: prod-elector
current-context: prod-elector
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: LS0tLS1CRUdJTg==
    client-key-data: LS0tLS1CRUdJTg==
- name: elector
  user:
    tokenFile: /var/run/elector/token
";

    #[test]
    fn reads_the_current_context() {
        let dir = Path::new("/etc/kube");
        let with_token = KUBECONFIG.replace("tokenFile: /var/run/elector/token", "token: abc.def");
        let context = parse(&with_token, dir).unwrap_err();
        // certs/ca.crt does not exist under /etc/kube: resolved relative to it.
        assert!(
            context.to_string().contains("/etc/kube/certs/ca.crt"),
            "{context}"
        );

        let tmp = std::env::temp_dir().join(format!("tenure-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("certs")).unwrap();
        std::fs::write(tmp.join("certs/ca.crt"), "PEM").unwrap();
        std::fs::write(tmp.join("token"), "from-file\n").unwrap();
        let context = parse(&with_token, &tmp).unwrap();
        assert_eq!(context.server, "https://prod.example.com:6443");
        assert_eq!(context.ca, b"PEM");
        assert_eq!(context.token.expose(), "abc.def");
        assert_eq!(context.namespace.as_deref(), Some("team-a"));

        let with_file = KUBECONFIG.replace("/var/run/elector/token", "token");
        let context = parse(&with_file, &tmp).unwrap();
        assert_eq!(context.token.expose(), "from-file");
        assert_eq!(context.token_file, Some(tmp.join("token")));

        // kind's own context: inline CA, but client certificates.
        let kind = with_token.replace(
            "current-context: prod-elector",
            "current-context: kind-kind",
        );
        let err = parse(&kind, &tmp).unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { what, .. } if what.contains("client-certificate-data")),
            "{err}"
        );
        let kind = kind.replace(
            "    client-certificate-data: LS0tLS1CRUdJTg==\n",
            "    token: t\n",
        );
        let context = parse(&kind, &tmp).unwrap();
        assert!(context.ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(context.namespace, None);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn reads_json_kubeconfigs() {
        let json = r#"{"apiVersion":"v1","kind":"Config","current-context":"c",
            "clusters":[{"name":"k","cluster":{"server":"https://h:6443","certificate-authority-data":"UEVN"}}],
            "contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],
            "users":[{"name":"u","user":{"token":"t"}}]}"#;
        let context = parse(json, Path::new("/")).unwrap();
        assert_eq!(
            (context.server.as_str(), context.ca.as_slice()),
            ("https://h:6443", &b"PEM"[..])
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour_naming_the_field() {
        let base = KUBECONFIG
            .replace("tokenFile: /var/run/elector/token", "token: t")
            .replace(
                "certificate-authority: certs/ca.crt",
                "certificate-authority-data: UEVN",
            );
        assert_eq!(parse(&base, Path::new("/")).unwrap().ca, b"PEM");
        for (from, to, field) in [
            (
                "    server: \"https",
                "    insecure-skip-tls-verify: true\n    server: \"https",
                "insecure-skip-tls-verify",
            ),
            (
                "    server: \"https",
                "    tls-server-name: x\n    server: \"https",
                "tls-server-name",
            ),
            (
                "    token: t",
                "    token: t\n    as: root",
                "impersonation",
            ),
            ("    token: t", "    exec:\n      command: aws", "exec"),
            (
                "    token: t",
                "    auth-provider:\n      name: gcp",
                "auth-provider",
            ),
        ] {
            let err = parse(&base.replace(from, to), Path::new("/")).unwrap_err();
            assert!(
                matches!(&err, Error::Unsupported { what, .. } if what.contains(field)),
                "{field}: {err}"
            );
        }
        for (from, to, says) in [
            (
                "current-context: prod-elector",
                "current-context: nope",
                "no context named \"nope\"",
            ),
            ("current-context: prod-elector", "", "no current-context"),
            ("    token: t", "    other: x", "no token"),
            (
                "    certificate-authority-data: UEVN\n",
                "",
                "certificate-authority",
            ),
            (
                "    server: \"https://prod.example.com:6443\"\n",
                "",
                "no server",
            ),
            ("preferences: {}", "preferences: |\n  x", "line 23"),
        ] {
            let err = parse(&base.replace(from, to), Path::new("/")).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: "kubeconfig", rule, .. } if rule.contains(says)),
                "{says}: {err}"
            );
        }
    }
}
