//! Where training asked for over the network may read: the store, or files
//! under one configured directory (`--training-data-root`). A spec's
//! `data.path` is resolved against that root, canonicalised (which resolves
//! `..` and every symlink), and must still lie under it; a path with a `..`
//! component is refused before it is looked up. Without a root, file sources
//! are refused. The command line's own `train` reads local files as given:
//! its caller already has them.
//!
//! Every refusal says the same thing whether or not the file exists, so the
//! answer does not tell a caller what is on the server's disk.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::spec::DataSource;
use crate::model::ModelSpec;

/// Rewrites the spec's data path to the file it names under `root`.
///
/// # Errors
/// `FailedPrecondition` for a file source without a root; `InvalidArgument`
/// (`data.path`) for a path that is not a regular file under the root.
pub fn confine(spec: &mut ModelSpec, root: Option<&Path>) -> Result<()> {
    let path = match &mut spec.source {
        DataSource::Store => return Ok(()),
        DataSource::Table(t) => &mut t.path,
        DataSource::Events(e) => &mut e.path,
    };
    let root = root.ok_or_else(|| {
        Error::precondition(
            "training from a file over gRPC needs the server to be started with --training-data-root; \
             train from the store (source = \"store\") or run `rapport train` where the file is",
        )
    })?;
    *path = resolve(root, path)?.display().to_string();
    Ok(())
}

/// `given` (relative to `root`, or absolute) as a canonical path under `root`.
///
/// # Errors
/// `InvalidArgument` naming `data.path`.
pub fn resolve(root: &Path, given: &str) -> Result<PathBuf> {
    let refused = || {
        Error::invalid(
            "data.path",
            format!(
                "{given:?} is not a readable regular file under the training data root (no \"..\", no symlinks out)"
            ),
        )
    };
    let candidate = Path::new(given);
    if candidate
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(refused());
    }
    let root = root.canonicalize().map_err(|e| {
        Error::precondition(format!("the training data root cannot be opened: {e}"))
    })?;
    let joined = if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        root.join(candidate)
    };
    let resolved = joined.canonicalize().map_err(|_| refused())?;
    if !resolved.starts_with(&root) || !resolved.is_file() {
        return Err(refused());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_root_resolve() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.csv");
        std::fs::write(&secret, "password\nhunter2\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/data.csv"), "a,b\n1,2\n").unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("link.csv")).unwrap();
        let inside = resolve(root.path(), "sub/data.csv").unwrap();
        assert!(inside.ends_with("sub/data.csv"));
        let absolute = inside.display().to_string();
        assert_eq!(resolve(root.path(), &absolute).unwrap(), inside);
        for bad in [
            "../secret.csv",
            "sub/../sub/data.csv",
            "link.csv",
            "sub",
            "missing.csv",
            "/etc/passwd",
            "/proc/self/environ",
            secret.to_str().unwrap(),
        ] {
            let err = resolve(root.path(), bad).unwrap_err().to_string();
            assert!(err.contains("not a readable regular file"), "{bad}: {err}");
            assert!(!err.contains("hunter2") && !err.contains("root:"), "{err}");
        }
    }

    #[test]
    fn file_sources_need_a_root_and_the_store_does_not() {
        let mut spec = ModelSpec::demo();
        confine(&mut spec, None).unwrap();
        let mut table = ModelSpec::parse(
            "t",
            "name = \"t\"\n[data]\nsource = \"table\"\npath = \"x.csv\"\nlabel_column = \"churn\"\n",
        )
        .unwrap();
        let err = confine(&mut table, None).unwrap_err().to_string();
        assert!(err.contains("--training-data-root"), "{err}");
    }
}
