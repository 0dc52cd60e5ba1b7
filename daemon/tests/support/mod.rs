//! What the daemon crate's kernel tests share: unique names, a network namespace that
//! is deleted on drop (also when the test panics), and running commands inside it.
//! Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod daemon;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Command output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `prefix-<pid>-<n>`: unique within this machine while this process lives.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Says why a test that needs root or a tool cannot run here and lets it pass, on a
/// machine without them. In CI (`CI` set) a kernel test that cannot run fails instead: a skip there would pass without proving anything.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("this test must run in CI, but cannot: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A named network namespace (`ip netns`), deleted on drop.
pub struct NetNs(pub String);

impl NetNs {
    /// A fresh namespace named `prefix-<pid>-<n>`, or `None` (with a message) when this
    /// machine cannot make one (not root); in CI, a failure (see [`skip`]).
    pub fn new(prefix: &str) -> Option<NetNs> {
        let name = unique(prefix);
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(o) if o.status.success() => Some(NetNs(name)),
            Ok(o) => {
                skip(&format!(
                    "cannot create a network namespace (needs root): {}",
                    text(&o.stderr).trim()
                ));
                None
            }
            Err(e) => {
                skip(&format!("cannot run `ip`: {e}"));
                None
            }
        }
    }

    /// `program args` inside the namespace, from the repository root.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program])
            .args(args)
            .current_dir(repo());
        c
    }

    /// Runs `program args` inside the namespace.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .expect("ip netns exec runs")
    }

    /// Like `run`, and fails the test if the command fails.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {} failed: {}{}",
            self.0,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
