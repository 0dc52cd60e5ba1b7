//! Tests against the real kernel, each in a throwaway network namespace.
//!
//! A test written with [`netns_test!`] re-executes this test binary under
//! `unshare --net`, filtered to itself, with an environment variable that tells the
//! child to run the body. The body therefore runs in a network namespace of its own,
//! and so does every `nft` it starts: the host's ruleset is never touched, and the
//! namespace disappears with the child, also when the test fails or panics. The body
//! refuses to run in the namespace the test was started in.
//!
//! Without root (`unshare` fails) or without `nft`, the test prints why and passes
//! without running: it cannot fail for the wrong reason.

use std::path::Path;
use std::process::{Command, Stdio};

const ENV: &str = "NETPOL_NETNS_TEST";
/// The namespace the test was started in, which the body must not run in.
const ENV_PARENT: &str = "NETPOL_NETNS_PARENT";

/// Declares a `#[test]` whose body runs in a fresh network namespace.
macro_rules! netns_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            $crate::testns::run(concat!(module_path!(), "::", stringify!($name)), || $body);
        }
    };
}
pub(crate) use netns_test;

/// Runs `body` in a new network namespace (see the module doc). `path` is the test's
/// full path, crate name first.
pub(crate) fn run(path: &str, body: impl FnOnce()) {
    let name = path.split_once("::").map_or(path, |(_, rest)| rest);
    if std::env::var(ENV).as_deref() == Ok(name) {
        assert_not_host_namespace();
        body();
        return;
    }
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED {name}: {why}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([
            name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(ENV, name)
        .env(ENV_PARENT, own_namespace())
        .output()
        .expect("running the test under unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ran = stdout.contains("1 passed") || stdout.contains("1 failed");
    if !out.status.success() || !ran {
        panic!(
            "{name} failed in its network namespace ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
    }
    // Keep what the body printed (timings) visible with --nocapture, without the
    // child's libtest lines, which would read as results of a test run of their own.
    let prefix = format!("test {name} ... ");
    let body: String = stdout
        .lines()
        .map(|l| l.strip_prefix(prefix.as_str()).unwrap_or(l))
        .filter(|l| {
            !(l.is_empty()
                || *l == "ok"
                || l.starts_with("running ")
                || l.starts_with("test result:"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // `print!`, not a write to stdout: libtest captures it like the test's own output.
    print!("{body}");
}

/// Why kernel tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let why = probe_unavailable();
    // In CI (`CI` set) a kernel test that cannot run fails instead: a skip there would pass without proving anything.
    if let (Some(why), Some(_)) = (&why, std::env::var_os("CI")) {
        panic!("this kernel test must run in CI, but cannot: {why}");
    }
    why
}

fn probe_unavailable() -> Option<String> {
    match Command::new("unshare")
        .args(["--net", "--", "true"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`unshare --net` failed (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("cannot run `unshare`: {e}")),
    }
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`nft` not found (install nftables)".into()),
    }
}

fn own_namespace() -> String {
    let link = std::fs::read_link("/proc/self/ns/net").expect("own network namespace");
    link.to_string_lossy().into_owned()
}

fn assert_not_host_namespace() {
    let parent = std::env::var(ENV_PARENT).unwrap_or_default();
    assert!(
        !parent.is_empty() && parent != own_namespace(),
        "refusing to run a kernel test outside a namespace of its own"
    );
}

/// Runs `nft` with `args` in the current namespace; panics with its error if it fails.
pub(crate) fn nft(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("running nft");
    assert!(
        out.status.success(),
        "nft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nft prints UTF-8")
}

/// Loads `script` with `nft -f` into another fresh namespace and returns the output
/// of each of `lists` (nft argument lists) run there afterwards.
pub(crate) fn nft_elsewhere(script: &str, lists: &[&[&str]]) -> Vec<String> {
    let dir = tempfile::Builder::new()
        .prefix("netpol-test-nft-")
        .tempdir()
        .expect("creating a temporary directory");
    let file = dir.path().join("script.nft");
    std::fs::write(&file, script).expect("writing the script");
    let mut outs = Vec::new();
    let mut sh = format!("nft -f {} || exit 1", file.display());
    for (i, args) in lists.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        sh.push_str(&format!(
            "; nft {} > {} || exit 1",
            args.join(" "),
            out.display()
        ));
        outs.push(out);
    }
    let status = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &sh])
        .stdout(Stdio::inherit())
        .status()
        .expect("running nft in a namespace");
    assert!(status.success(), "nft -f of the script failed:\n{script}");
    outs.iter()
        .map(|p| std::fs::read_to_string(p).expect("nft output"))
        .collect()
}

/// A file in the temporary directory (`tempfile`'s), removed on drop.
pub(crate) struct TempFile(tempfile::NamedTempFile);

impl TempFile {
    /// Writes `text` to a new file `netpol-test-<tag>-<random>`.
    pub(crate) fn new(tag: &str, text: &str) -> TempFile {
        use std::io::Write as _;
        let mut file = tempfile::Builder::new()
            .prefix(&format!("netpol-test-{tag}-"))
            .tempfile()
            .expect("creating a temporary file");
        file.write_all(text.as_bytes())
            .expect("writing a temporary file");
        TempFile(file)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}
