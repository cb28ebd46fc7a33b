//! `pkg/generated/openapi/zz_generated.openapi.go`, which the source package
//! leaves out (it is generated at build time, by `make`'s `gen_openapi`), made
//! as Kubernetes' `Makefile.generated_files` makes it.

use std::fs;
use std::io;
use std::path::Path;

use super::steps::{Go, Steps};
use crate::TestkitError;

/// The packages whose OpenAPI definitions go into other files than the
/// apiserver's (`Makefile.generated_files`' `KUBE_OPENAPI_TAG_FILES`).
const EXCLUDED: [&str; 2] = [
    "vendor/k8s.io/code-generator/",
    "vendor/k8s.io/sample-apiserver/",
];

/// Generates the file with the vendored `openapi_gen` binary over every
/// package of `tree` that asks for OpenAPI definitions.
pub(super) fn generate(
    steps: &Steps,
    go: &Go,
    tree: &Path,
    openapi_gen: &Path,
) -> Result<(), TestkitError> {
    let step = "find the packages tagged +k8s:openapi-gen";
    let dirs = tagged_dirs(tree).map_err(|e| steps.failed(step, e))?;
    // A sanity check on the scan: the Lease type is what tenure needs.
    if !dirs
        .iter()
        .any(|d| d == "vendor/k8s.io/api/coordination/v1")
    {
        return Err(steps.failed(
            step,
            io::Error::other(format!(
                "k8s.io/api/coordination/v1 is not among the {} packages found",
                dirs.len()
            )),
        ));
    }
    let inputs: Vec<String> = dirs
        .iter()
        .map(|dir| format!("k8s.io/kubernetes/{dir}"))
        .collect();
    let mut command = go.command(openapi_gen, tree);
    command
        .arg("--input-dirs")
        .arg(inputs.join(","))
        .arg("--output-base")
        .arg(steps.staging().join("src"))
        .args([
            "--output-package",
            "k8s.io/kubernetes/pkg/generated/openapi",
        ])
        .args(["--output-file-base", "zz_generated.openapi"])
        .arg("--go-header-file")
        .arg(tree.join("vendor/k8s.io/code-generator/hack/boilerplate.go.txt"))
        // With a report file, known API rule violations (there are some
        // hundred in 1.20) are listed there instead of failing the run.
        .arg("--report-filename")
        .arg(steps.staging().join("openapi-violations.report"));
    steps.run("openapi-gen", command)
}

/// The directories of `tree`, as the vendored packages' import paths name
/// them (`staging/src/k8s.io/…` is `vendor/k8s.io/…`), holding a Go file
/// with a `// +k8s:` tag line that asks for `+k8s:openapi-gen=`: the
/// Makefile's `grep` over `ALL_K8S_TAG_FILES`, in its (byte) order.
fn tagged_dirs(tree: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(tree)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The Makefile leaves out `vendor` (the staging tree is the
        // vendored k8s.io code) and `_output`-like and hidden entries.
        if name == "vendor" || name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &name, &mut found)?;
        }
    }
    let mut dirs: Vec<String> = found
        .into_iter()
        .map(|dir| match dir.strip_prefix("staging/src/") {
            Some(rest) => format!("vendor/{rest}"),
            None => dir,
        })
        .filter(|dir| !EXCLUDED.iter().any(|ex| dir.starts_with(ex)))
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Adds `dir` (named `relative` in the tree) and the directories below it
/// that have a tagged file. Symbolic links are not followed, as `find -H`
/// does not.
fn walk(dir: &Path, relative: &str, found: &mut Vec<String>) -> io::Result<()> {
    let mut tagged = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            walk(&entry.path(), &format!("{relative}/{name}"), found)?;
        } else if kind.is_file() && !tagged && name.ends_with(".go") {
            tagged = asks_for_openapi(&fs::read(entry.path())?);
        }
    }
    if tagged {
        found.push(relative.to_owned());
    }
    Ok(())
}

/// Whether a Go file has a tag line (`^// *+k8s:`) and mentions
/// `+k8s:openapi-gen=` somewhere.
fn asks_for_openapi(source: &[u8]) -> bool {
    let text = String::from_utf8_lossy(source);
    text.contains("+k8s:openapi-gen=")
        && text.lines().any(|line| {
            line.strip_prefix("//")
                .is_some_and(|rest| rest.trim_start_matches(' ').starts_with("+k8s:"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_line_and_the_openapi_tag_are_both_needed() {
        assert!(asks_for_openapi(b"// +k8s:openapi-gen=true\npackage v1\n"));
        assert!(asks_for_openapi(
            b"// +k8s:deepcopy-gen=package\n// +k8s:openapi-gen=true\n"
        ));
        assert!(!asks_for_openapi(b"// +k8s:deepcopy-gen=package\n"));
        assert!(!asks_for_openapi(b"\t// +k8s:openapi-gen=true\n"));
    }

    #[test]
    fn staging_packages_are_named_by_their_vendor_path() {
        let tree = crate::temp::TempDir::new("kube-openapi").unwrap();
        let write = |dir: &str| {
            let dir = tree.path().join(dir);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("doc.go"), "// +k8s:openapi-gen=true\n").unwrap();
        };
        write("staging/src/k8s.io/api/coordination/v1");
        write("staging/src/k8s.io/sample-apiserver/pkg/apis/wardle/v1");
        write("pkg/apis/abac/v1beta1");
        write("vendor/github.com/x/y");
        write("_output/local/go/src/z");
        assert_eq!(
            tagged_dirs(tree.path()).unwrap(),
            ["pkg/apis/abac/v1beta1", "vendor/k8s.io/api/coordination/v1"]
        );
    }
}
