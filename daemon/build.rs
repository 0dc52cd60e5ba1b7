//! Sets `NETPOL_COMMIT` for `--version`: the short commit of the checkout being built
//! (`git rev-parse --short HEAD`), else the environment's `NETPOL_COMMIT` (a build from
//! a tarball), else `unknown`. Reruns when HEAD or the branch it names moves.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NETPOL_COMMIT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest
        .parent()
        .expect("the daemon crate is in the workspace");
    // Only the workspace's own repository: a tarball unpacked inside some other
    // checkout must not take that checkout's commit.
    let ours = git(workspace, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .zip(workspace.canonicalize().ok())
        .is_some_and(|(top, ws)| top == ws);
    let commit = ours
        .then(|| git(workspace, &["rev-parse", "--short", "HEAD"]))
        .flatten();
    if commit.is_some() {
        // HEAD (a worktree has its own), the branch it names and packed-refs (in the
        // common directory); only files that exist, or cargo would rerun every build.
        let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
        if let Some(branch) = git(workspace, &["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for name in watched {
            if let Some(path) = git(workspace, &["rev-parse", "--git-path", &name]) {
                let path = workspace.join(path);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    let commit = commit
        .or_else(|| {
            std::env::var("NETPOL_COMMIT")
                .ok()
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NETPOL_COMMIT={commit}");
}
