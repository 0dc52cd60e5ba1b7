//! Watching the input paths: file events, debounced, become one "the files changed"
//! call.
//!
//! Directories are watched, never files: a file's parent for a file path (an editor's
//! rename-replace gives the name a new inode, and a watch on the old inode would go
//! quiet), the directory itself for a directory path (ConfigMap mounts swap their
//! `..data` symlink inside it; the events name `..data`, never the file). Every event
//! in a watched directory counts, except `Access` ones: reading the inputs opens them,
//! and counting those would make the daemon reload itself forever. What an event
//! changed is decided later by hashing the inputs; this module only says "look again".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{
    new_debouncer, DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache,
};

/// A running watch; dropping it stops it.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    /// The directories watched.
    pub dirs: Vec<PathBuf>,
}

/// The directories to watch for `paths`: a directory itself, a file's parent.
pub fn directories(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        if p.is_dir() {
            dirs.insert(p.clone());
        } else {
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            dirs.insert(parent);
        }
    }
    dirs.into_iter().collect()
}

/// The longest the debouncer waits between checks for a quiet window.
const MAX_TICK: Duration = Duration::from_millis(10);

/// Whether an event can mean the inputs changed (everything but reads).
pub fn counts(event: &notify::Event) -> bool {
    !matches!(event.kind, EventKind::Access(_))
}

/// Watches the directories of `paths`; after each burst of events followed by
/// `window` of quiet, calls `changed` with the paths the events named (on the
/// debouncer's thread). Watch errors are logged.
pub fn watch(
    paths: &[PathBuf],
    window: Duration,
    changed: impl Fn(Vec<PathBuf>) + Send + 'static,
) -> notify::Result<Watch> {
    let dirs = directories(paths);
    // The debouncer checks for quiet every tick; its default tick is a quarter of the
    // window (50 ms at the default 200 ms), which alone added about 25 ms to every
    // reload. A 10 ms tick costs 100 wake-ups a second of an otherwise idle thread.
    let tick = (window / 4).clamp(Duration::from_millis(1), MAX_TICK);
    let mut debouncer =
        new_debouncer(
            window,
            Some(tick),
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let named = relevant(&events);
                    if !named.is_empty() {
                        changed(named);
                    }
                }
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("watching the inputs: {e}");
                    }
                }
            },
        )?;
    for dir in &dirs {
        debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(Watch {
        _debouncer: debouncer,
        dirs,
    })
}

fn relevant(events: &[DebouncedEvent]) -> Vec<PathBuf> {
    let mut named = BTreeSet::new();
    for e in events.iter().filter(|e| counts(e)) {
        tracing::debug!(kind = ?e.kind, paths = ?e.paths, "file event");
        named.extend(e.paths.iter().cloned());
        if e.paths.is_empty() {
            named.insert(Path::new("?").to_path_buf());
        }
    }
    named.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn files_are_watched_through_their_directory() {
        let dir = TempDir::new("watch");
        let file = dir.write("pol/a.yaml", "a");
        let sub = dir.path().join("inv");
        std::fs::create_dir(&sub).unwrap();
        let got: BTreeSet<PathBuf> =
            directories(&[file.clone(), sub.clone(), file, "rel.yaml".into()])
                .into_iter()
                .collect();
        let want: BTreeSet<PathBuf> = [PathBuf::from("."), dir.path().join("pol"), sub].into();
        assert_eq!(got, want);
    }

    /// Waits for one debounced call, then makes sure no other follows.
    fn one_call(rx: &mpsc::Receiver<Vec<PathBuf>>, what: &str) -> Vec<PathBuf> {
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no event for {what}"));
        assert!(
            rx.recv_timeout(Duration::from_millis(600)).is_err(),
            "a second call for {what}"
        );
        got
    }

    #[test]
    fn each_kind_of_change_gives_one_call_and_reads_give_none() {
        let dir = TempDir::new("watch");
        let file = dir.write("p/policy.yaml", "one");
        let (tx, rx) = mpsc::channel();
        let _w = watch(
            &[dir.path().join("p")],
            Duration::from_millis(100),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();

        // Reading (open, read, close without writing) is not a change.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());

        std::fs::write(&file, "two").unwrap();
        assert!(one_call(&rx, "in-place write").contains(&file));

        let tmp = dir.write("p/.policy.yaml.swp", "three");
        std::fs::rename(&tmp, &file).unwrap();
        assert!(one_call(&rx, "rename-replace").contains(&file));

        let added = dir.write("p/added.yaml", "x");
        assert!(one_call(&rx, "added file").contains(&added));

        std::fs::remove_file(&added).unwrap();
        assert!(one_call(&rx, "deleted file").contains(&added));
    }
}
