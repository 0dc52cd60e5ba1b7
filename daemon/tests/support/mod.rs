//! What the daemon crate's kernel tests share: unique names, a network namespace that
//! is deleted on drop (also when the test panics), and running commands inside it.
//! Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod daemon;

use netpol_daemon::netlink::Slot;

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

/// A listing with each set's elements in sorted order (one line per set) and the raw
/// element lines of a bytecode listing sorted per set: the kernel lists elements in
/// the order they were added (or of its hash buckets), which an update and a fresh
/// load cannot share; everything else must be the same. The table's own head comment
/// and flags line go too (nft names the owning program there, and Debian 12's nft
/// prints `persist` as nothing), blank lines and rule handles; and names are the plan's (netpold
/// loads every other replace under the other slot's names: `Slot`).
pub fn normalised(listing: &str) -> String {
    let listing = &Slot::plain_listing(listing);
    let mut out = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut pending: Option<(String, String)> = None;
    let joined = |head: &str, body: &str| {
        let inner = body.split('}').next().unwrap_or("");
        let mut elements: Vec<&str> = inner.split(',').map(str::trim).collect();
        elements.sort_unstable();
        format!("{head}elements = {{ {} }}", elements.join(", "))
    };
    // Counters count traffic: runtime state, not ruleset.
    let zeroed = |line: &str| -> String {
        let mut words: Vec<&str> = line.split(' ').collect();
        for i in 1..words.len() {
            if matches!(words[i - 1], "packets" | "pkts" | "bytes") {
                words[i] = "_";
            }
        }
        words.join(" ")
    };
    for line in listing.lines() {
        // A blank line follows the table's flags and comment only when nft printed
        // flags.
        if line.starts_with("\tflags ") || line == "\tflags" || line.is_empty() {
            continue;
        }
        let line = match line.split_once(" { # progname ") {
            Some((head, _)) => format!("{head} {{"),
            None => line.to_string(),
        };
        let line = &zeroed(&line);
        // A bytecode listing's rule head (`inet netpol input 55 54`) names the rule's
        // handle and its predecessor's: a swap or a refused transaction moves the
        // table's handle counter on, so a fresh load numbers them differently.
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() > 3
            && words[0] == "inet"
            && words[3..].iter().all(|w| w.parse::<u64>().is_ok())
        {
            out.push(words[..3].join(" "));
            continue;
        }
        if line.starts_with("\telement ") {
            run.push(line.to_string());
            continue;
        }
        run.sort_unstable();
        out.append(&mut run);
        if let Some((head, mut body)) = pending.take() {
            body.push_str(line);
            if line.contains('}') {
                out.push(joined(&head, &body));
            } else {
                pending = Some((head, body));
            }
            continue;
        }
        match line.split_once("elements = {") {
            Some((head, rest)) if rest.contains('}') => out.push(joined(head, rest)),
            Some((head, rest)) => pending = Some((head.to_string(), rest.to_string())),
            None => out.push(line.to_string()),
        }
    }
    run.sort_unstable();
    out.append(&mut run);
    out.join("\n")
}

/// The listing of netpol's table without the sets, maps and chains that no base chain
/// reaches (through rules, verdict maps and jumps): what a kill between the two
/// transactions of a replace leaves besides the old table, which it enforces unchanged.
pub fn enforced(listing: &str) -> String {
    // Objects at depth one: `\tchain NAME {` … `\t}`, with the text between.
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut outside: Vec<(usize, &str)> = Vec::new();
    for line in listing.lines() {
        let head = ["\tset ", "\tmap ", "\tchain "]
            .iter()
            .find_map(|k| line.strip_prefix(k))
            .and_then(|rest| rest.strip_suffix(" {"));
        match (head, blocks.last_mut()) {
            (Some(name), _) => blocks.push((name.to_string(), vec![line])),
            (None, Some((_, body))) if body.last().is_none_or(|l| *l != "\t}") => body.push(line),
            _ => outside.push((blocks.len(), line)),
        }
    }
    let refs = |body: &[&str]| -> Vec<String> {
        body.iter()
            .flat_map(|l| l.split([' ', ',', '{', '}']))
            .filter_map(|w| w.strip_prefix('@'))
            .map(String::from)
            .chain(body.iter().flat_map(|l| {
                let words: Vec<&str> = l
                    .split([' ', ',', '{', '}'])
                    .filter(|w| !w.is_empty())
                    .collect();
                words
                    .windows(2)
                    .filter(|w| matches!(w[0], "jump" | "goto"))
                    .map(|w| w[1].to_string())
                    .collect::<Vec<_>>()
            }))
            .collect()
    };
    let mut reached: Vec<String> = blocks
        .iter()
        .filter(|(_, body)| body.iter().any(|l| l.contains(" hook ")))
        .map(|(name, _)| name.clone())
        .collect();
    let mut i = 0;
    while i < reached.len() {
        let name = reached[i].clone();
        for (n, body) in &blocks {
            if *n == name {
                for r in refs(body) {
                    if !reached.contains(&r) {
                        reached.push(r);
                    }
                }
            }
        }
        i += 1;
    }
    let mut out: Vec<&str> = Vec::new();
    let mut lines_outside = outside.into_iter().peekable();
    for (k, (name, body)) in blocks.iter().enumerate() {
        while let Some((_, l)) = lines_outside.next_if(|(at, _)| *at <= k) {
            out.push(l);
        }
        if reached.contains(name) {
            out.extend(body.iter().copied());
        }
    }
    out.extend(lines_outside.map(|(_, l)| l));
    out.join("\n") + "\n"
}
