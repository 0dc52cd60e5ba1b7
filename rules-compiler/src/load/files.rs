//! Paths → input texts.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Rejected};
use crate::load::Input;

/// Reads files and directories: a directory contributes every `*.yaml`/`*.yml` file
/// directly in it (not recursively), sorted by file name, skipping hidden files (a
/// leading `.`, which also skips the `..data` links of a mounted ConfigMap). A path given
/// explicitly as a file is read whatever its extension. Every path that cannot be read
/// is an error naming it; all of them are reported together.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Input>, Rejected> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match dir_files(path) {
                Ok(files) => {
                    for file in files {
                        read_one(&file, &mut inputs, &mut errors);
                    }
                }
                Err(e) => errors.push(io_error(path, "cannot list directory", &e)),
            },
            Ok(_) => read_one(path, &mut inputs, &mut errors),
            Err(e) => errors.push(io_error(path, "cannot read", &e)),
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(Rejected(errors))
    }
}

/// The YAML files directly in `dir`, sorted by name.
fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let s = name.to_string_lossy();
        if s.starts_with('.') || !(s.ends_with(".yaml") || s.ends_with(".yml")) {
            continue;
        }
        let path = dir.join(&name);
        // Follows symlinks: a link to a file counts, a directory named x.yaml does not.
        // A dangling link stays in, so reading it reports it.
        if fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

fn read_one(path: &Path, inputs: &mut Vec<Input>, errors: &mut Vec<Diagnostic>) {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => inputs.push(Input {
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => errors.push(
                Diagnostic::error(format!(
                    "cannot read: not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ))
                .in_file(path),
            ),
        },
        Err(e) => errors.push(io_error(path, "cannot read", &e)),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(format!("{what}: {e}")).in_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "netpol-load-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names(inputs: &[Input]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn directory_gives_yaml_files_sorted_skipping_hidden_and_others() {
        let dir = TempDir::new();
        dir.write("b.yaml", "b");
        dir.write("a.yml", "a");
        dir.write("c.yaml", "c");
        dir.write(".hidden.yaml", "h");
        dir.write("notes.txt", "n");
        dir.write("d.json", "d");
        fs::create_dir(dir.0.join("sub.yaml")).unwrap();
        fs::write(dir.0.join("sub.yaml").join("inner.yaml"), "i").unwrap();
        let inputs = read_paths(std::slice::from_ref(&dir.0)).unwrap();
        assert_eq!(names(&inputs), vec!["a.yml", "b.yaml", "c.yaml"]);
        assert_eq!(inputs[1].text, "b");
        assert_eq!(inputs[1].path, dir.0.join("b.yaml"));
    }

    #[test]
    fn explicit_file_is_read_whatever_its_extension() {
        let dir = TempDir::new();
        let f = dir.write("policy.txt", "kind: X");
        let inputs = read_paths(std::slice::from_ref(&f)).unwrap();
        assert_eq!(
            inputs,
            vec![Input {
                path: f,
                text: "kind: X".into()
            }]
        );
    }

    #[test]
    fn paths_keep_the_order_given() {
        let dir = TempDir::new();
        let z = dir.write("z.yaml", "z");
        let a = dir.write("a.yaml", "a");
        let inputs = read_paths(&[z, a]).unwrap();
        assert_eq!(names(&inputs), vec!["z.yaml", "a.yaml"]);
    }

    #[test]
    fn every_missing_or_unreadable_path_is_named() {
        let dir = TempDir::new();
        let ok = dir.write("ok.yaml", "x");
        let missing1 = dir.0.join("missing1.yaml");
        let missing2 = dir.0.join("nodir");
        let bad = dir.0.join("bad.yaml");
        fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
        let err = read_paths(&[missing1.clone(), ok, missing2.clone(), bad.clone()]).unwrap_err();
        let files: Vec<_> = err.0.iter().map(|d| d.file.clone().unwrap()).collect();
        assert_eq!(files, vec![missing1, missing2, bad]);
        assert!(err.0.iter().all(|d| d.is_error()));
        assert!(err.0[0].message.starts_with("cannot read"), "{}", err.0[0]);
        assert!(err.0[2].message.contains("not UTF-8"), "{}", err.0[2]);
    }
}
