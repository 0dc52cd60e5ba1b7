//! Paths → input texts.
//!
//! Only regular files are opened, non-blocking and after a type check, so a FIFO or a
//! device in a watched directory can never hang or flood the reader; and no more than
//! [`Limits::file_bytes`] of a file is ever read.

use std::fs::{self, File, FileType, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Rejected};
use crate::load::{Input, Limits, Options};

/// Reads files and directories: a directory contributes every `*.yaml`/`*.yml`/`*.json`
/// entry directly in it (not recursively), sorted by file name, skipping hidden ones (a
/// leading `.`, which also skips the `..data` links of a mounted ConfigMap). A path given
/// explicitly as a file is read whatever its extension. The extension only picks a
/// directory's entries: whether a text is YAML or JSON is decided by its content.
///
/// Every path that cannot be read is an error naming it, and all of them are reported
/// together. That includes a `*.yaml` entry that is a directory, a FIFO, a socket, a
/// device or a dangling link: skipping it would silently drop whatever policies it was
/// meant to hold, which can un-isolate endpoints. So is a file with no YAML documents,
/// unless `options.allow_empty_files`.
pub fn read_paths(paths: &[PathBuf], options: &Options) -> Result<Vec<Input>, Rejected> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match dir_entries(path) {
                Ok(files) => {
                    for file in files {
                        read_one(&file, options, &mut inputs, &mut errors);
                    }
                }
                Err(e) => errors.push(io_error(path, "cannot list directory", &e)),
            },
            Ok(_) => read_one(path, options, &mut inputs, &mut errors),
            Err(e) => errors.push(io_error(path, "cannot read", &e)),
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(Rejected(errors))
    }
}

/// The YAML and JSON entries directly in `dir`, sorted by name, whatever their type.
fn dir_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let s = name.to_string_lossy();
        if s.starts_with('.') || ![".yaml", ".yml", ".json"].iter().any(|e| s.ends_with(e)) {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

fn read_one(path: &Path, options: &Options, inputs: &mut Vec<Input>, errors: &mut Vec<Diagnostic>) {
    match read_text(path, &options.limits) {
        Ok(text) if !options.allow_empty_files && is_empty_yaml(&text) => errors.push(
            Diagnostic::error(
                "empty: no YAML documents (a file being written or cut short looks like \
                 this, so it is not taken as \"no objects\"); write inputs to a temporary \
                 file and rename it into place, or set allow-empty-files if this file may \
                 be empty",
            )
            .in_file(path),
        ),
        Ok(text) => inputs.push(Input {
            path: path.to_path_buf(),
            text: text.into(),
        }),
        Err(message) => errors.push(Diagnostic::error(message).in_file(path)),
    }
}

/// The file's text, read only if it is a regular file of at most `limits.file_bytes`
/// bytes of UTF-8; or why not.
fn read_text(path: &Path, limits: &Limits) -> Result<String, String> {
    // The type is checked before opening (opening a FIFO for reading blocks until a
    // writer comes) and again on the open file, which may have been swapped in between.
    let meta = fs::metadata(path).map_err(|e| not_found_or(path, e))?;
    check_regular(&meta)?;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    check_regular(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len().min(limits.file_bytes) as usize);
    // One byte more than allowed tells a file at the limit from one past it, also when
    // it grows while being read.
    file.take(limits.file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limits.file_bytes {
        return Err(format!(
            "too big: more than {} bytes (limit file-bytes)",
            limits.file_bytes
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn not_found_or(path: &Path, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && fs::symlink_metadata(path).is_ok() {
        "cannot read: a dangling symbolic link".to_string()
    } else {
        format!("cannot read: {e}")
    }
}

fn check_regular(meta: &Metadata) -> Result<(), String> {
    if meta.is_file() {
        return Ok(());
    }
    Err(format!(
        "cannot read: not a regular file ({}); only regular files (or links to them) are \
         read",
        file_kind(meta.file_type())
    ))
}

/// What a file is, for messages: "a regular file", "a directory", "a FIFO", ….
pub fn file_kind(t: FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "of an unknown type"
    }
}

/// Whether a text holds no YAML document: only blank lines, comments, directives and
/// document markers.
fn is_empty_yaml(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().all(|line| {
        let t = line.trim();
        t.is_empty()
            || t.starts_with('#')
            || line.starts_with('%')
            || ["---", "..."].iter().any(|m| {
                line.strip_prefix(m).is_some_and(|rest| {
                    rest.trim().is_empty() || rest.trim_start().starts_with('#')
                })
            })
    })
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(format!("{what}: {e}")).in_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// A fresh directory under the system temp dir, removed on drop.
    fn tempdir() -> TempDir {
        tempfile::Builder::new()
            .prefix("netpol-load-test-")
            .tempdir()
            .unwrap()
    }

    /// Writes `name` in `dir` and returns its path.
    fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn read(paths: &[PathBuf]) -> Result<Vec<Input>, Rejected> {
        read_paths(paths, &Options::default())
    }

    fn names(inputs: &[Input]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn directory_gives_yaml_and_json_files_sorted_skipping_hidden_and_others() {
        let dir = tempdir();
        write(&dir, "b.yaml", "b");
        write(&dir, "a.yml", "a");
        write(&dir, "c.yaml", "c");
        write(&dir, ".hidden.yaml", "h");
        write(&dir, "notes.txt", "n");
        write(&dir, "d.json", "d");
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub").join("inner.yaml"), "i").unwrap();
        let inputs = read(&[dir.path().to_owned()]).unwrap();
        // `d.json` holds YAML: the content decides how it is parsed.
        assert_eq!(names(&inputs), vec!["a.yml", "b.yaml", "c.yaml", "d.json"]);
        assert_eq!(&*inputs[1].text, "b");
        assert_eq!(inputs[1].path, dir.path().join("b.yaml"));
    }

    #[test]
    fn explicit_file_is_read_whatever_its_extension() {
        let dir = tempdir();
        let f = write(&dir, "policy.txt", "kind: X");
        let inputs = read(std::slice::from_ref(&f)).unwrap();
        assert_eq!(
            inputs,
            vec![Input {
                path: f,
                text: "kind: X".to_string().into()
            }]
        );
    }

    /// The one error of reading `paths`.
    fn only_error(paths: &[PathBuf], options: &Options) -> Diagnostic {
        let err = read_paths(paths, options).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        err.0.into_iter().next().unwrap()
    }

    #[test]
    fn a_fifo_is_an_error_and_never_opened() {
        let dir = tempdir();
        write(&dir, "a.yaml", "a: 1");
        let fifo = dir.path().join("zz.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening it for reading would block this test for good.
        let d = only_error(&[dir.path().to_owned()], &Options::default());
        assert_eq!(d.file.as_deref(), Some(fifo.as_path()));
        assert!(d.message.contains("not a regular file (a FIFO)"), "{d}");
        // Given explicitly, too.
        let d = only_error(&[fifo], &Options::default());
        assert!(d.message.contains("(a FIFO)"), "{d}");
    }

    #[test]
    fn a_directory_or_device_named_yaml_and_a_dangling_link_are_errors() {
        let dir = tempdir();
        fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("zz.yaml")).unwrap();
        let err = read_paths(&[dir.path().to_owned()], &Options::default()).unwrap_err();
        let got: Vec<(String, &str)> = err
            .0
            .iter()
            .map(|d| {
                let f = d.file.as_ref().unwrap().file_name().unwrap();
                (f.to_string_lossy().into_owned(), d.message.as_str())
            })
            .collect();
        assert_eq!(got.len(), 3, "{err}");
        assert_eq!(got[0].0, "sub.yaml");
        assert!(got[0].1.contains("(a directory)"), "{err}");
        assert_eq!(got[1].0, "zero.yaml");
        assert!(got[1].1.contains("(a character device)"), "{err}");
        assert_eq!(got[2].0, "zz.yaml");
        assert!(got[2].1.contains("dangling symbolic link"), "{err}");
    }

    #[test]
    fn a_file_past_the_size_limit_is_an_error_and_one_at_it_is_read() {
        let dir = tempdir();
        let at = write(&dir, "at.yaml", "a: 12345");
        let past = write(&dir, "past.yaml", "a: 123456");
        let mut options = Options::default();
        options.limits.file_bytes = 8;
        assert_eq!(read_paths(&[at], &options).unwrap().len(), 1);
        let d = only_error(&[past], &options);
        assert_eq!(d.message, "too big: more than 8 bytes (limit file-bytes)");
    }

    #[test]
    fn an_empty_file_is_an_error_unless_allowed() {
        let dir = tempdir();
        let files: Vec<PathBuf> = [
            ("empty.yaml", ""),
            ("blank.yaml", "\n  \n"),
            ("comments.yaml", "# all\n---\n# gone\n...\n--- # x\n"),
        ]
        .iter()
        .map(|(n, t)| write(&dir, n, t))
        .collect();
        let err = read_paths(&files, &Options::default()).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err
            .0
            .iter()
            .all(|d| d.message.starts_with("empty: no YAML documents")));
        let allowed = Options {
            allow_empty_files: true,
            ..Options::default()
        };
        assert_eq!(read_paths(&files, &allowed).unwrap().len(), 3);
        // Anything at all is not empty: validation judges it.
        let some = write(&dir, "some.yaml", "---\n~\n");
        assert_eq!(read(&[some]).unwrap().len(), 1);
    }

    #[test]
    fn paths_keep_the_order_given() {
        let dir = tempdir();
        let z = write(&dir, "z.yaml", "z");
        let a = write(&dir, "a.yaml", "a");
        let inputs = read(&[z, a]).unwrap();
        assert_eq!(names(&inputs), vec!["z.yaml", "a.yaml"]);
    }

    #[test]
    fn every_missing_or_unreadable_path_is_named() {
        let dir = tempdir();
        let ok = write(&dir, "ok.yaml", "x");
        let missing1 = dir.path().join("missing1.yaml");
        let missing2 = dir.path().join("nodir");
        let bad = dir.path().join("bad.yaml");
        fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
        let err = read(&[missing1.clone(), ok, missing2.clone(), bad.clone()]).unwrap_err();
        let files: Vec<_> = err.0.iter().map(|d| d.file.clone().unwrap()).collect();
        assert_eq!(files, vec![missing1, missing2, bad]);
        assert!(err.0.iter().all(|d| d.is_error()));
        assert!(err.0[0].message.starts_with("cannot read"), "{}", err.0[0]);
        assert!(err.0[2].message.contains("not UTF-8"), "{}", err.0[2]);
    }
}
