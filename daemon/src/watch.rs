//! Watching the input paths: file events become one "the inputs may have changed"
//! call, once they have been quiet for the debounce window.
//!
//! A configured path is watched through every directory its resolution looks a name
//! up in, for that name alone: its parent (the name replaced, removed, re-created or
//! re-linked), every ancestor, and each directory that holds a symlink on the way (a
//! swapped link). The directory a directory input resolves to is watched for every
//! entry (files added, edited, removed; a ConfigMap's `..data` swap), and its
//! symlinked entries are traced like configured paths, so the files they point to are
//! watched too. A path that does not exist is watched through its nearest existing
//! ancestor, for the missing name. After every batch of events the paths are resolved
//! again and the watches re-armed: new directories watched, stale ones dropped, a
//! directory replaced under the same name watched anew. A slow periodic re-check
//! (the inputs' metadata, never their content) backs this up for changes inotify does
//! not report (network file systems) and watches that could not be added.
//!
//! The debounce is trailing-edge: one call after `debounce` without any event, or at
//! the latest `max_delay` after the first event of a burst, so a file rewritten
//! forever is still loaded. What an event changed is decided by the caller, by
//! hashing the inputs; this module only says "look again" and never reads them. Only
//! changes are asked of the kernel (no open or access events), so reading the inputs
//! never sets off a call.
//!
//! inotify is used directly rather than through `notify`: re-arming has to know which
//! watch belongs to which directory inode, and notify's path-keyed bookkeeping drops a
//! watch when an entry of that name is renamed in its parent, and keeps a stale one,
//! under the old name, when a watched directory is moved away.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::time::{Instant, Interval};

/// How often, by default, the inputs' metadata is compared with what the last call
/// (or the start) saw.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(30);

/// The least maximum delay of a call during an endless burst.
const MIN_MAX_DELAY: Duration = Duration::from_secs(2);

/// Symlinks followed while resolving one path (Linux's own limit before ELOOP).
const MAX_LINKS: u32 = 40;

/// Paths kept per call, for the debug log; a burst over thousands of files would
/// otherwise log them all.
const MAX_NAMED: usize = 32;

/// When a burst of events becomes a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The quiet that ends a burst.
    pub debounce: Duration,
    /// The longest a burst is waited for, from its first event.
    pub max_delay: Duration,
    /// How often the inputs' metadata is compared with the last call's (`None`: never).
    pub recheck: Option<Duration>,
}

impl Timing {
    /// `debounce`, its [`max_delay`], and the [`DEFAULT_RECHECK`].
    pub fn new(debounce: Duration) -> Timing {
        Timing {
            debounce,
            max_delay: max_delay(debounce),
            recheck: Some(DEFAULT_RECHECK),
        }
    }
}

/// The maximum delay for a debounce window: ten windows, at least 2 s. Long enough
/// that a burst (a copy of many files, an editor's several writes) is loaded once,
/// short enough that a file rewritten forever is still loaded.
pub fn max_delay(debounce: Duration) -> Duration {
    debounce.saturating_mul(10).max(MIN_MAX_DELAY)
}

/// How many relevant events (and re-check findings) a watch has seen since it started,
/// counted as they arrive, before the debounce: shared with whoever reads the inputs, so
/// that it can tell whether anything changed on disk since its last read (what `netpolctl
/// status` says of the files, without reading them: see [`crate::state::State::status`]).
#[derive(Clone, Debug, Default)]
pub struct Seen(Arc<AtomicU64>);

impl Seen {
    /// Events seen so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// One more event.
    pub fn note(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running watch (its own thread); dropping it stops it.
pub struct Watch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The directories watched at the start (ancestors included).
    pub dirs: Vec<PathBuf>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Watches `paths` (files or directories, through symlinks, existing or not); counts
/// each relevant event in `seen` as it arrives, and after each burst of events calls
/// `changed` with (some of) the paths the events named, on the watch's own thread.
/// Errors only if inotify cannot be set up at all; a directory that cannot be watched is
/// logged and tried again on later re-arms.
pub fn watch(
    paths: &[PathBuf],
    timing: Timing,
    seen: Seen,
    changed: impl Fn(Vec<PathBuf>) + Send + 'static,
) -> io::Result<Watch> {
    let paths = paths
        .iter()
        .map(std::path::absolute)
        .collect::<io::Result<Vec<_>>>()?;
    let (ready, setup) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    // The watch runs on a thread of its own with its own small runtime, so it works the
    // same in the daemon and in a plain test, and setting it up (or failing to) never
    // drops a runtime inside the daemon's.
    let thread = std::thread::Builder::new()
        .name("netpold-watch".into())
        .spawn(move || {
            let started = (|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let inotify = Inotify::init()?;
                let mut worker = Worker::new(paths, inotify.watches());
                worker.rearm();
                worker.baseline = worker.stamps();
                let events = {
                    let _context = runtime.enter();
                    inotify.into_event_stream(vec![0u8; 64 * 1024])?
                };
                io::Result::Ok((runtime, worker, events))
            })();
            match started {
                Ok((runtime, worker, events)) => {
                    let _ = ready.send(Ok(worker.armed.keys().cloned().collect()));
                    runtime.block_on(run(worker, events, timing, seen, changed, stopped));
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })?;
    let dirs = match setup.recv() {
        Ok(Ok(dirs)) => dirs,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(io::Error::other("the watch thread stopped while starting"));
        }
    };
    Ok(Watch {
        stop: Some(stop),
        thread: Some(thread),
        dirs,
    })
}

/// Events that are asked for: changes of entries and of the directory itself. Never
/// `OPEN`, `ACCESS` or `CLOSE_NOWRITE`: reading the inputs must not look like a
/// change. `ONLYDIR` and `DONT_FOLLOW`: only the real directory resolved just before
/// is watched, never what a link swapped in meanwhile points to.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
}

/// Events gathered since the last call.
struct Burst {
    first: Instant,
    last: Instant,
    named: BTreeSet<PathBuf>,
}

impl Burst {
    fn due(&self, timing: &Timing) -> Instant {
        (self.last + timing.debounce).min(self.first + timing.max_delay)
    }
}

async fn run(
    mut worker: Worker,
    mut events: EventStream<Vec<u8>>,
    timing: Timing,
    seen: Seen,
    changed: impl Fn(Vec<PathBuf>),
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut recheck = timing
        .recheck
        .filter(|every| !every.is_zero())
        .map(|every| tokio::time::interval_at(Instant::now() + every, every));
    let mut burst: Option<Burst> = None;
    // Far enough to never fire; only used while there is no burst.
    let never = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    loop {
        let due = burst.as_ref().map_or(never, |b| b.due(&timing));
        let mut named = BTreeSet::new();
        let relevant = tokio::select! {
            _ = &mut stop => return,
            event = events.next() => {
                let mut relevant = match event {
                    Some(Ok(e)) => worker.note(&e, &mut named),
                    Some(Err(e)) => {
                        tracing::error!("watching the inputs: {e}");
                        // Do not spin on a broken descriptor; the re-check still runs.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        false
                    }
                    None => {
                        tracing::error!("watching the inputs: the event stream ended");
                        return;
                    }
                };
                // Everything already queued is part of this batch: one re-arm for it.
                while let Some(Some(Ok(e))) = events.next().now_or_never() {
                    relevant |= worker.note(&e, &mut named);
                }
                if relevant {
                    worker.rearm();
                }
                relevant
            }
            _ = tokio::time::sleep_until(due), if burst.is_some() => {
                if let Some(b) = burst.take() {
                    worker.baseline = worker.stamps();
                    changed(b.named.into_iter().collect());
                }
                false
            }
            _ = tick(&mut recheck) => {
                let rearmed = worker.rearm();
                let stamps = worker.stamps();
                let differs = stamps != worker.baseline;
                if differs || rearmed {
                    tracing::info!(
                        differs,
                        rearmed,
                        "the periodic re-check of the inputs found what no file event reported"
                    );
                    named.insert(PathBuf::from("(periodic re-check)"));
                }
                differs || rearmed
            }
        };
        if relevant {
            seen.note();
            let now = Instant::now();
            let b = burst.get_or_insert_with(|| Burst {
                first: now,
                last: now,
                named: BTreeSet::new(),
            });
            b.last = now;
            for p in named {
                if b.named.len() >= MAX_NAMED {
                    break;
                }
                b.named.insert(p);
            }
        }
    }
}

/// The next tick of the re-check, or never without one.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What the paths' resolution looks at: each directory and which of its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Interests(BTreeMap<PathBuf, Interest>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Interest {
    /// Every entry (a directory input).
    All,
    /// These names (on the way to an input, or an input file).
    Names(BTreeSet<OsString>),
}

impl Interests {
    fn name(&mut self, dir: &Path, name: &OsStr) {
        match self
            .0
            .entry(dir.to_path_buf())
            .or_insert_with(|| Interest::Names(BTreeSet::new()))
        {
            Interest::All => {}
            Interest::Names(names) => {
                names.insert(name.to_os_string());
            }
        }
    }

    fn all(&mut self, dir: &Path) {
        self.0.insert(dir.to_path_buf(), Interest::All);
    }

    /// Whether an event about `name` in `dir` can matter.
    fn wants(&self, dir: &Path, name: &OsStr) -> bool {
        match self.0.get(dir) {
            Some(Interest::All) => true,
            Some(Interest::Names(names)) => names.contains(name),
            None => false,
        }
    }
}

/// Where a path's resolution ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A directory, by its real path.
    Dir(PathBuf),
    /// Something else (a file), by its real path.
    File(PathBuf),
    /// Nothing: a name is missing, a link loops or dangles, a file is used as a
    /// directory.
    Missing,
}

enum Step {
    Root,
    Up,
    Name(OsString),
}

fn push_steps(todo: &mut Vec<Step>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::RootDir => todo.push(Step::Root),
            Component::ParentDir => todo.push(Step::Up),
            Component::Normal(n) => todo.push(Step::Name(n.to_os_string())),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Resolves the absolute `path` as the kernel would (`..` after a link goes to the
/// link target's parent), noting in `interests` every directory a name is looked up
/// in, with that name.
fn trace(path: &Path, interests: &mut Interests) -> End {
    let mut todo = Vec::new();
    push_steps(&mut todo, path);
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(step) = todo.pop() {
        let name = match step {
            Step::Root => {
                cur = PathBuf::from("/");
                continue;
            }
            Step::Up => {
                cur.pop();
                continue;
            }
            Step::Name(n) => n,
        };
        interests.name(&cur, &name);
        let next = cur.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            return End::Missing;
        };
        if meta.file_type().is_symlink() {
            links += 1;
            match std::fs::read_link(&next) {
                Ok(target) if links <= MAX_LINKS => push_steps(&mut todo, &target),
                _ => return End::Missing,
            }
        } else if meta.is_dir() {
            cur = next;
        } else if todo.is_empty() {
            return End::File(next);
        } else {
            return End::Missing;
        }
    }
    End::Dir(cur)
}

/// What identifies a file's content for the re-check: which inode, its size and its
/// modification and change times (a write changes the change time, whatever it does
/// to the modification time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// Which real directory is at `path` now (`None`: none, or a link).
fn identity(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

/// What to watch for `paths` now, and (with `stamps`) the metadata of every input.
fn survey(
    paths: &[PathBuf],
    mut stamps: Option<&mut BTreeMap<PathBuf, Option<Stamp>>>,
) -> Interests {
    let mut interests = Interests::default();
    for path in paths {
        match trace(path, &mut interests) {
            End::Dir(dir) => {
                interests.all(&dir);
                if let Some(s) = stamps.as_deref_mut() {
                    // The directory's own times change with every temporary file; only
                    // which directory it is counts.
                    let id = stamp(&dir).map(|s| Stamp {
                        size: 0,
                        mtime: (0, 0),
                        ctime: (0, 0),
                        ..s
                    });
                    s.insert(dir.clone(), id);
                }
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    // Hidden entries are never inputs (the loader skips them); the
                    // directory's watch still sees them (`..data`).
                    if name.as_encoded_bytes().starts_with(b".") {
                        continue;
                    }
                    let file = dir.join(&name);
                    if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                        trace(&file, &mut interests);
                    }
                    if let Some(s) = stamps.as_deref_mut() {
                        s.insert(file.clone(), stamp(&file));
                    }
                }
            }
            End::File(file) => {
                if let Some(s) = stamps.as_deref_mut() {
                    s.insert(file.clone(), stamp(&file));
                }
            }
            End::Missing => {
                if let Some(s) = stamps.as_deref_mut() {
                    s.insert(path.clone(), None);
                }
            }
        }
    }
    interests
}

/// One watched directory.
struct Armed {
    wd: WatchDescriptor,
    /// The directory inode the watch is on.
    id: (u64, u64),
}

/// The watches and what they are for; owned by the watch thread.
struct Worker {
    paths: Vec<PathBuf>,
    watches: Watches,
    wanted: Interests,
    armed: BTreeMap<PathBuf, Armed>,
    /// One descriptor serves every path of the same inode (bind mounts).
    by_wd: HashMap<WatchDescriptor, Vec<PathBuf>>,
    /// Directories that could not be watched, so each failure is logged once.
    failing: BTreeSet<PathBuf>,
    /// The inputs' metadata at the last call (or the start).
    baseline: BTreeMap<PathBuf, Option<Stamp>>,
}

impl Worker {
    fn new(paths: Vec<PathBuf>, watches: Watches) -> Worker {
        Worker {
            paths,
            watches,
            wanted: Interests::default(),
            armed: BTreeMap::new(),
            by_wd: HashMap::new(),
            failing: BTreeSet::new(),
            baseline: BTreeMap::new(),
        }
    }

    fn stamps(&self) -> BTreeMap<PathBuf, Option<Stamp>> {
        let mut stamps = BTreeMap::new();
        survey(&self.paths, Some(&mut stamps));
        stamps
    }

    /// Resolves the paths again and makes the watches match: adds the new, drops the
    /// stale, and watches anew a directory replaced under the same name. True when a
    /// watch was added (what it sees may already have changed unseen).
    fn rearm(&mut self) -> bool {
        let wanted = survey(&self.paths, None);
        let stale: Vec<PathBuf> = self
            .armed
            .keys()
            .filter(|d| !wanted.0.contains_key(*d))
            .cloned()
            .collect();
        for dir in stale {
            self.disarm(&dir);
        }
        let mut added = false;
        // Parents sort before their children: a directory is watched before anything
        // in it, so a replacement in between is reported by the parent.
        for dir in wanted.0.keys() {
            // Read before the watch is added: if the directory is replaced after this,
            // the next re-arm sees another inode and watches again.
            let id = identity(dir);
            match (self.armed.get(dir), id) {
                (Some(a), Some(id)) if a.id == id => continue,
                (Some(_), _) => self.disarm(dir),
                (None, _) => {}
            }
            // Gone for now: its parent is watched for its name.
            let Some(id) = id else { continue };
            match self.watches.add(dir, mask()) {
                Ok(wd) => {
                    self.failing.remove(dir);
                    self.by_wd.entry(wd.clone()).or_default().push(dir.clone());
                    self.armed.insert(dir.clone(), Armed { wd, id });
                    added = true;
                }
                // Replaced or removed since it was looked at: the parent reports it.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
                Err(e) => {
                    if self.failing.insert(dir.clone()) {
                        // Quoted and escaped: directory names are input.
                        tracing::warn!(
                            "cannot watch {dir:?}: {e}; changes there are seen by the periodic \
                             re-check only"
                        );
                    }
                }
            }
        }
        self.wanted = wanted;
        added
    }

    fn disarm(&mut self, dir: &Path) {
        let Some(a) = self.armed.remove(dir) else {
            return;
        };
        if let Some(dirs) = self.by_wd.get_mut(&a.wd) {
            dirs.retain(|d| d != dir);
            if dirs.is_empty() {
                self.by_wd.remove(&a.wd);
                // Fails when the kernel dropped it already (the directory is gone).
                let _ = self.watches.remove(a.wd);
            }
        }
    }

    /// Whether an event can mean the inputs changed; adds the path it names to `named`.
    fn note(&mut self, e: &inotify::Event<OsString>, named: &mut BTreeSet<PathBuf>) -> bool {
        if e.mask.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!("the kernel's file event queue overflowed; looking again");
            named.insert(PathBuf::from("(event queue overflow)"));
            return true;
        }
        // A watch dropped already (its last events may still arrive).
        let Some(dirs) = self.by_wd.get(&e.wd).cloned() else {
            return false;
        };
        if e.mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch: the directory was deleted or unmounted.
            self.by_wd.remove(&e.wd);
            for d in &dirs {
                self.armed.remove(d);
            }
            return true;
        }
        let mut relevant = false;
        for dir in dirs {
            let path = match &e.name {
                Some(name) if self.wanted.wants(&dir, name) => dir.join(name),
                Some(_) => continue,
                // About the directory itself: moved, deleted, its mode changed.
                None => dir,
            };
            tracing::debug!(mask = ?e.mask, path = ?path, "file event");
            if named.len() < MAX_NAMED {
                named.insert(path);
            }
            relevant = true;
        }
        relevant
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;

    use super::*;
    use crate::testdir::TempDir;

    fn watching(paths: &[PathBuf], debounce_ms: u64) -> (Watch, mpsc::Receiver<Vec<PathBuf>>) {
        let (tx, rx) = mpsc::channel();
        let w = watch(
            paths,
            Timing::new(Duration::from_millis(debounce_ms)),
            Seen::default(),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();
        (w, rx)
    }

    /// Waits for one call, then makes sure no other follows.
    fn one_call(rx: &mpsc::Receiver<Vec<PathBuf>>, what: &str) -> Vec<PathBuf> {
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no call for {what}"));
        assert!(
            rx.recv_timeout(Duration::from_millis(600)).is_err(),
            "a second call for {what}"
        );
        got
    }

    fn no_call(rx: &mpsc::Receiver<Vec<PathBuf>>, what: &str) {
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(600)) {
            panic!("a call for {what}: {p:?}");
        }
    }

    fn real(p: &Path) -> PathBuf {
        p.canonicalize().unwrap()
    }

    #[test]
    fn a_path_is_traced_through_every_directory_and_link() {
        let dir = TempDir::new("watch");
        let root = real(dir.path());
        dir.write("v1/pol/a.yaml", "a");
        symlink("v1", root.join("cur")).unwrap();
        symlink("cur/pol/a.yaml", root.join("a.yaml")).unwrap();
        let mut i = Interests::default();
        assert_eq!(
            trace(&root.join("cur/pol"), &mut i),
            End::Dir(root.join("v1/pol"))
        );
        assert!(i.wants(&root, OsStr::new("cur")), "the link's directory");
        assert!(i.wants(&root, OsStr::new("v1")), "the link's target");
        assert!(i.wants(&root.join("v1"), OsStr::new("pol")));
        assert!(i.wants(Path::new("/"), root.iter().nth(1).unwrap()));
        assert!(!i.wants(&root, OsStr::new("other")));

        let mut i = Interests::default();
        assert_eq!(
            trace(&root.join("a.yaml"), &mut i),
            End::File(root.join("v1/pol/a.yaml"))
        );
        assert!(i.wants(&root.join("v1/pol"), OsStr::new("a.yaml")));
        assert!(!i.wants(&root.join("v1/pol"), OsStr::new("b.yaml")));

        // Missing: watched through the nearest existing ancestor, for the name.
        let mut i = Interests::default();
        assert_eq!(trace(&root.join("v1/gone/x"), &mut i), End::Missing);
        assert!(i.wants(&root.join("v1"), OsStr::new("gone")));
        assert!(!i.0.contains_key(&root.join("v1/gone")));

        // `..` after a link is the target's parent; a loop ends.
        let mut i = Interests::default();
        assert_eq!(
            trace(&root.join("cur/pol/.."), &mut i),
            End::Dir(root.join("v1"))
        );
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(trace(&root.join("loop"), &mut i), End::Missing);
    }

    #[test]
    fn each_kind_of_change_gives_one_call_and_reads_give_none() {
        let dir = TempDir::new("watch");
        let file = real(&dir.write("p/policy.yaml", "one"));
        let (_w, rx) = watching(&[dir.path().join("p")], 100);

        // Reading (open, read, close without writing) is not a change.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        no_call(&rx, "a read");

        std::fs::write(&file, "two").unwrap();
        assert!(one_call(&rx, "in-place write").contains(&file));

        let tmp = dir.write("p/.policy.yaml.swp", "three");
        std::fs::rename(&tmp, &file).unwrap();
        assert!(one_call(&rx, "rename-replace").contains(&file));

        let added = real(&dir.write("p/added.yaml", "x"));
        assert!(one_call(&rx, "added file").contains(&added));

        std::fs::remove_file(&added).unwrap();
        assert!(one_call(&rx, "deleted file").contains(&added));
    }

    #[test]
    fn a_file_input_sees_its_name_only() {
        let dir = TempDir::new("watch");
        let file = dir.write("p/policy.yaml", "one");
        let (_w, rx) = watching(std::slice::from_ref(&file), 100);
        dir.write("p/other.yaml", "x");
        no_call(&rx, "another file in the same directory");
        std::fs::write(&file, "two").unwrap();
        one_call(&rx, "the file itself");
    }

    #[test]
    fn a_replaced_directory_is_watched_anew() {
        let dir = TempDir::new("watch");
        dir.write("p/a.yaml", "a");
        let (_w, rx) = watching(&[dir.path().join("p")], 100);

        std::fs::rename(dir.path().join("p"), dir.path().join("p.bak")).unwrap();
        dir.write("p/a.yaml", "b");
        one_call(&rx, "mv, mkdir, write");

        dir.write("p/a.yaml", "c");
        one_call(&rx, "an edit in the new directory");
        dir.write("p.bak/a.yaml", "d");
        no_call(&rx, "an edit in the old directory");
    }

    #[test]
    fn a_deleted_directory_is_seen_when_it_comes_back() {
        let dir = TempDir::new("watch");
        dir.write("a/p/a.yaml", "a");
        let (_w, rx) = watching(&[dir.path().join("a/p")], 100);

        // Two levels go, so the nearest existing ancestor is the one watched.
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        one_call(&rx, "the deletion");
        std::fs::create_dir(dir.path().join("a")).unwrap();
        one_call(&rx, "the parent made again");
        std::fs::create_dir(dir.path().join("a/p")).unwrap();
        dir.write("a/p/a.yaml", "b");
        one_call(&rx, "the directory made again");
        dir.write("a/p/a.yaml", "c");
        one_call(&rx, "an edit in it");
    }

    #[test]
    fn a_path_that_does_not_exist_yet_is_seen_when_it_appears() {
        let dir = TempDir::new("watch");
        let (_w, rx) = watching(&[dir.path().join("later/p.yaml")], 100);
        std::fs::create_dir(dir.path().join("later")).unwrap();
        one_call(&rx, "its directory appears");
        dir.write("later/p.yaml", "a");
        one_call(&rx, "the file appears");
        dir.write("later/p.yaml", "b");
        one_call(&rx, "an edit");
    }

    #[test]
    fn a_directory_link_swap_moves_the_watch_to_the_new_target() {
        let dir = TempDir::new("watch");
        dir.write("polA/a.yaml", "a");
        dir.write("polB/a.yaml", "b");
        symlink("polA", dir.path().join("policies")).unwrap();
        let (_w, rx) = watching(&[dir.path().join("policies")], 100);

        symlink("polB", dir.path().join("tmp")).unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("policies")).unwrap();
        one_call(&rx, "the link swap");
        dir.write("polB/a.yaml", "c");
        one_call(&rx, "an edit in the new target");
        dir.write("polA/a.yaml", "d");
        no_call(&rx, "an edit in the old target");
    }

    #[test]
    fn a_file_link_swap_moves_the_watch_to_the_new_target() {
        let dir = TempDir::new("watch");
        dir.write("v1/p.yaml", "a");
        dir.write("v2/p.yaml", "b");
        symlink("v1/p.yaml", dir.path().join("p.yaml")).unwrap();
        // Both a file input and a directory input holding a link.
        dir.write("d/x.yaml", "x");
        symlink("../v1/p.yaml", dir.path().join("d/linked.yaml")).unwrap();
        let (_w, rx) = watching(&[dir.path().join("p.yaml"), dir.path().join("d")], 100);

        dir.write("v1/p.yaml", "c");
        one_call(&rx, "an edit of the target of both links");

        symlink("v2/p.yaml", dir.path().join("tmp")).unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("p.yaml")).unwrap();
        one_call(&rx, "the file input's link swap");
        dir.write("v2/p.yaml", "d");
        one_call(&rx, "an edit of the new target");

        symlink("../v2/p.yaml", dir.path().join("d/tmp")).unwrap();
        std::fs::rename(dir.path().join("d/tmp"), dir.path().join("d/linked.yaml")).unwrap();
        one_call(&rx, "the directory entry's link swap");
        dir.write("v1/p.yaml", "e");
        no_call(&rx, "an edit of the old target");
    }

    #[test]
    fn a_swapped_parent_link_is_seen() {
        let dir = TempDir::new("watch");
        dir.write("r1/policies/a.yaml", "a");
        dir.write("r2/policies/a.yaml", "b");
        symlink("r1", dir.path().join("etc")).unwrap();
        let (_w, rx) = watching(&[dir.path().join("etc/policies")], 100);

        symlink("r2", dir.path().join("tmp")).unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("etc")).unwrap();
        one_call(&rx, "the parent's link swap");
        dir.write("r2/policies/a.yaml", "c");
        one_call(&rx, "an edit under the new parent");
        dir.write("r1/policies/a.yaml", "d");
        no_call(&rx, "an edit under the old parent");
    }

    /// Writes `n` times, `every` apart; returns the longest gap seen between writes.
    fn writes(file: &Path, n: usize, every: Duration) -> Duration {
        let mut last = std::time::Instant::now();
        let mut longest = Duration::ZERO;
        for i in 0..n {
            std::fs::write(file, format!("{i}")).unwrap();
            let now = std::time::Instant::now();
            longest = longest.max(now - last);
            last = now;
            std::thread::sleep(every);
        }
        longest
    }

    #[test]
    fn a_burst_gives_one_call_after_it_goes_quiet() {
        let dir = TempDir::new("watch");
        let file = dir.write("p/a.yaml", "a");
        let (tx, rx) = mpsc::channel();
        let seen = Seen::default();
        let _w = watch(
            &[dir.path().join("p")],
            Timing {
                debounce: Duration::from_millis(300),
                max_delay: Duration::from_secs(60),
                recheck: None,
            },
            seen.clone(),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();
        // Writes 50 ms apart for about 2.5 s: the old debouncer called about every
        // 300 ms during the burst; a trailing edge calls once, after it.
        let longest = writes(&file, 50, Duration::from_millis(50));
        // The writes are counted as they come, not only when the burst ends.
        let counted = std::time::Instant::now();
        while seen.count() == 0 {
            assert!(
                counted.elapsed() < Duration::from_secs(5),
                "no event counted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut calls = 0;
        while rx.recv_timeout(Duration::from_millis(1000)).is_ok() {
            calls += 1;
        }
        if longest < Duration::from_millis(300) {
            assert_eq!(calls, 1, "one call for the whole burst");
        } else {
            // A write came late enough for the window to close: one more is right.
            assert!(calls >= 1, "{calls} calls");
        }
    }

    #[test]
    fn an_endless_burst_is_still_called_at_the_maximum_delay() {
        let dir = TempDir::new("watch");
        let file = dir.write("p/a.yaml", "a");
        let (tx, rx) = mpsc::channel();
        let _w = watch(
            &[dir.path().join("p")],
            Timing {
                debounce: Duration::from_millis(300),
                max_delay: Duration::from_millis(600),
                recheck: None,
            },
            Seen::default(),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();
        let writer = std::thread::spawn(move || writes(&file, 100, Duration::from_millis(20)));
        // The writer goes on for two seconds or more; a call comes while it does.
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a call during the burst");
        assert!(!writer.is_finished(), "the call came only after the burst");
        writer.join().unwrap();
    }

    #[test]
    fn the_recheck_finds_what_events_missed_and_nothing_else() {
        let dir = TempDir::new("watch");
        let file = dir.write("p/a.yaml", "a");
        let paths = vec![real(&dir.path().join("p"))];
        let worker = Worker::new(paths.clone(), Inotify::init().unwrap().watches());
        let before = worker.stamps();
        // Reading changes nothing the re-check looks at.
        std::fs::read(&file).unwrap();
        assert_eq!(worker.stamps(), before);
        // A write does, even one that puts back the size and the modification time.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, "b").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_ne!(worker.stamps(), before);

        // A running watch with a short re-check and nothing changing never calls.
        let (tx, rx) = mpsc::channel();
        let seen = Seen::default();
        let _w = watch(
            &paths,
            Timing {
                debounce: Duration::from_millis(10),
                max_delay: Duration::from_secs(2),
                recheck: Some(Duration::from_millis(100)),
            },
            seen.clone(),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();
        std::fs::read(&file).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(1000)).is_err());
        assert_eq!(seen.count(), 0, "reading is not an event");
    }
}
