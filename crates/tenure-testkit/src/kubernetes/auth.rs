//! Who may talk to the test apiserver: static bearer tokens, the
//! service-account signing key, and a kubeconfig for the admin.

use std::fmt;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;
use crate::TestkitError;

/// The admin's user name; its group `system:masters` passes every RBAC check.
pub(super) const ADMIN_USER: &str = "admin";
/// A user with no role binding: RBAC lets it do next to nothing.
pub(super) const UNPRIVILEGED_USER: &str = "tenure-unprivileged";

/// The apiserver's authentication files, all in one directory.
pub(super) struct Auth {
    pub(super) admin_token: String,
    pub(super) unprivileged_token: String,
    /// `--token-auth-file`: `token,user,uid,"groups"` lines.
    pub(super) token_file: PathBuf,
    /// The admin token alone, for clients that read a token from a file.
    pub(super) admin_token_file: PathBuf,
    /// An RSA key that signs and verifies service-account tokens.
    pub(super) service_account_key: PathBuf,
    /// A kubeconfig for the admin, written by [`write_kubeconfig`](Self::write_kubeconfig).
    pub(super) kubeconfig: PathBuf,
}

impl Auth {
    /// Writes fresh tokens and a fresh key into `dir`.
    pub(super) fn generate(dir: &Path) -> Result<Self, TestkitError> {
        let auth = Self {
            admin_token: token(),
            unprivileged_token: token(),
            token_file: dir.join("tokens.csv"),
            admin_token_file: dir.join("admin.token"),
            service_account_key: dir.join("service-account.key"),
            kubeconfig: dir.join("kubeconfig"),
        };
        write(
            &auth.token_file,
            &format!(
                "{admin},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n\
                 {unprivileged},{UNPRIVILEGED_USER},{UNPRIVILEGED_USER}\n",
                admin = auth.admin_token,
                unprivileged = auth.unprivileged_token,
            ),
        )?;
        write(&auth.admin_token_file, &auth.admin_token)?;
        run(
            Command::new("openssl")
                .arg("genrsa")
                .arg("-out")
                .arg(&auth.service_account_key)
                .arg("2048"),
            "openssl",
        )?;
        Ok(auth)
    }

    /// Writes the admin's kubeconfig for the apiserver at `url`, trusting `ca`.
    pub(super) fn write_kubeconfig(&self, url: &str, ca: &Path) -> Result<(), TestkitError> {
        write(
            &self.kubeconfig,
            &format!(
                "apiVersion: v1\n\
                 kind: Config\n\
                 clusters:\n\
                 - name: tenure-test\n\
                 \x20 cluster:\n\
                 \x20   server: {url}\n\
                 \x20   certificate-authority: \"{ca}\"\n\
                 users:\n\
                 - name: {ADMIN_USER}\n\
                 \x20 user:\n\
                 \x20   token: {token}\n\
                 contexts:\n\
                 - name: tenure-test\n\
                 \x20 context:\n\
                 \x20   cluster: tenure-test\n\
                 \x20   user: {ADMIN_USER}\n\
                 current-context: tenure-test\n",
                ca = ca.display(),
                token = self.admin_token,
            ),
        )
    }
}

impl fmt::Debug for Auth {
    /// The files, never the tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("token_file", &self.token_file)
            .field("service_account_key", &self.service_account_key)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// 32 hex digits from the standard library's randomly seeded hasher: unique
/// per server, nothing to guess for another test.
fn token() -> String {
    let random = RandomState::new();
    format!("{:016x}{:016x}", random.hash_one(1u8), random.hash_one(2u8))
}

fn write(path: &Path, contents: &str) -> Result<(), TestkitError> {
    fs::write(path, contents)
        .map_err(|e| TestkitError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_hex() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
