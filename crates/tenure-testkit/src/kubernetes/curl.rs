//! HTTPS requests to the apiserver with the `curl` program: the kit is
//! std-only and has no TLS of its own.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::TestkitError;

/// One request: what [`send`] needs besides the server's CA and URL.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request<'a> {
    pub(super) method: &'a str,
    pub(super) url: &'a str,
    pub(super) token: &'a str,
    pub(super) body: Option<&'a str>,
    pub(super) timeout: Duration,
}

/// Sends `request`, trusting the CA in `ca`: the HTTP status and body. Any
/// status is an answer; only a failure to get one (refused, timed out, a TLS
/// error) is an error.
///
/// The bearer token and the body go to curl on its stdin, as a config file,
/// never on its command line, where `ps` and error messages would show them.
pub(super) fn send(ca: &Path, request: Request<'_>) -> Result<(u16, String), TestkitError> {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--config", "-", "--output", "-"])
        // The apiserver pretty-prints JSON for a `curl/…` user agent; tests
        // match on compact JSON.
        .args(["--user-agent", "tenure-testkit"])
        // The status on a line of its own after the body.
        .args(["--write-out", "\n%{http_code}"])
        .arg("--max-time")
        .arg(format!("{:.3}", request.timeout.as_secs_f64()))
        .arg("--cacert")
        .arg(ca)
        .args(["--request", request.method])
        .arg(request.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut config = format!(
        "header = {}\n",
        quote(&format!("Authorization: Bearer {}", request.token))
    );
    if let Some(body) = request.body {
        // Kubernetes takes a merge patch as JSON; everything else is JSON.
        let content_type = if request.method.eq_ignore_ascii_case("PATCH") {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        config.push_str(&format!(
            "header = {}\ndata-raw = {}\n",
            quote(&format!("Content-Type: {content_type}")),
            quote(body)
        ));
    }
    let mut child = command
        .spawn()
        .map_err(|e| TestkitError::spawn("curl", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(config.as_bytes())
            .map_err(|e| TestkitError::io("cannot write curl's config", e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| TestkitError::io("cannot wait for curl", e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout
        .rsplit_once('\n')
        .and_then(|(body, code)| Some((code.trim().parse::<u16>().ok()?, body)));
    match answer {
        Some((status, body)) if output.status.success() && status != 0 => {
            Ok((status, body.to_owned()))
        }
        _ => Err(TestkitError::CommandFailed {
            command: format!("curl --request {} {}", request.method, request.url),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
    }
}

/// `value` as a double-quoted string of curl's config syntax, which knows
/// the escapes `\\`, `\"`, `\n`, `\r` and `\t`.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_escaped() {
        assert_eq!(quote("{\"a\":\"b\\\\c\"}\n"), r#""{\"a\":\"b\\\\c\"}\n""#);
    }

    #[test]
    fn no_server_is_an_error_naming_the_request() {
        let port = crate::ports::free_port().unwrap();
        let url = format!("https://127.0.0.1:{port}/readyz");
        let err = send(
            Path::new("/nonexistent/ca.crt"),
            Request {
                method: "GET",
                url: &url,
                token: "secret-token",
                body: None,
                timeout: Duration::from_secs(2),
            },
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("curl --request GET {url}")),
            "{message}"
        );
        assert!(!message.contains("secret-token"), "{message}");
    }
}
