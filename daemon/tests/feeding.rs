//! What the README's "Feeding many hosts" says of inputs written by a sync tool or a
//! scheduled export: a big inventory written to a hidden temporary file in the watched
//! directory and renamed into place gives exactly one applied reload, of the whole file,
//! however slowly the temporary file was written; the same file written in place is
//! read half-way — an empty file and a cut inside a document fail (the last good
//! ruleset stays), but a cut between documents is applied as it is.
//!
//! The real binary in a throwaway network namespace, inputs in a temporary directory
//! (both removed on drop, also when a test panics). Needs root; without it the tests
//! say so and pass. Nothing asserts how long anything took.

use std::io::Write as _;
use std::time::Duration;

mod support;
use support::daemon::*;
use support::NetNs;

/// Pods of the extra bulk: as many as a big export adds (5,000 pods, about 0.8 MB).
const BULK: usize = 5_000;

/// Pod `n` of the bulk, in namespace web, as one document (flow style: a cut inside
/// its quoted name is a YAML error whatever the parser).
fn bulk_pod(n: usize) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{namespace: web, name: \"bulk-{n}\", \
         labels: {{app: bulk}}}}\nspec: {{containers: [{{name: c}}]}}\n\
         status: {{phase: Running, podIP: 198.19.{}.{}}}\n",
        n / 250,
        n % 250 + 1
    )
}

fn bulk(range: std::ops::Range<usize>) -> String {
    range.map(bulk_pod).collect()
}

fn endpoints(s: &serde_json::Value) -> u64 {
    s["counts"]["endpoints"].as_u64().unwrap()
}

#[test]
fn a_big_inventory_renamed_into_place_gives_one_reload_of_the_whole_file() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    let before = endpoints(&d.status(&ns));
    let whole = format!("{}{}", lab.read("inventory/pods.yaml"), bulk(0..BULK));

    // Written slowly, in 12 pieces cut anywhere (mid-document), each after a pause
    // longer than the debounce window (200 ms), 3 s in all: longer than the most a
    // burst is waited for (2 s). The file is hidden (a leading `.`), so never read.
    let tmp = lab.path("inventory/.pods.yaml.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    let piece = whole.len().div_ceil(12);
    for chunk in whole.as_bytes().chunks(piece) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(f);
    let s = d.status(&ns);
    assert_eq!(s["generation"], 1, "the temporary file was loaded: {s:#}");
    std::fs::rename(&tmp, lab.path("inventory/pods.yaml")).unwrap();

    d.exactly_one_reload_to(&ns, 2, "the rename into place");
    let s = d.status(&ns);
    assert_eq!(endpoints(&s), before + BULK as u64, "{s:#}");
    assert_eq!(s["reloads"]["applied"], 2, "{s:#}");
    assert_eq!(s["reloads"]["failed"], 0, "{s:#}");
    assert_eq!(s["reloads"]["held"], 0, "{s:#}");
    assert_eq!(s["disk"], "match");
    // The temporary file's events make netpold look (after each quiet window, and at
    // the latest every 2 s): it finds the inputs unchanged and does nothing more.
    eprintln!(
        "looks that found the inputs unchanged while the temporary file was written: {}",
        s["reloads"]["unchanged"]
    );
}

#[test]
fn a_big_inventory_written_in_place_is_read_half_way() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    let before = endpoints(&d.status(&ns));
    let table = ns.table().unwrap();
    let base = lab.read("inventory/pods.yaml");
    let path = lab.path("inventory/pods.yaml");
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };

    // `kubectl get pods -A -o yaml > pods.yaml`: the shell truncates the file before
    // kubectl has anything to write. An empty file is an error, not "no pods".
    std::fs::File::create(&path).unwrap();
    let s = d.wait_for(&ns, "the empty file to fail", |s| {
        s["reloads"]["failed"] == 1
    });
    assert_eq!(s["generation"], 1);
    assert_eq!(ns.table().unwrap(), table, "the last good ruleset stays");

    // Then a writer pausing inside a document: a YAML error, the last good stays.
    let cut = bulk_pod(2_000);
    let (head, rest) = cut.split_at(cut.find("bulk-").unwrap() + 5);
    append(&format!("{base}{}{head}", bulk(0..2_000)));
    let s = d.wait_for(&ns, "the cut document to fail", |s| {
        s["reloads"]["failed"] == 2
    });
    assert_eq!(s["generation"], 1, "{s:#}");
    assert_eq!(s["last_error"]["stage"], "load", "{s:#}");
    assert_eq!(ns.table().unwrap(), table, "the last good ruleset stays");

    // A pause between documents: what is there is valid, and it is applied — a part
    // of the inventory (neither every local endpoint nor most policies go, so it is
    // not held).
    append(&format!("{rest}{}", bulk(2_001..3_000)));
    let s = d.wait_for(&ns, "the part to be applied", |s| s["generation"] == 2);
    assert_eq!(endpoints(&s), before + 3_000, "{s:#}");
    assert_eq!(s["reloads"]["held"], 0, "{s:#}");

    // The rest: the whole file, one more reload.
    append(&bulk(3_000..BULK));
    d.wait_for(&ns, "the whole file", |s| s["generation"] == 3);
    std::thread::sleep(SETTLE);
    let s = d.status(&ns);
    assert_eq!(s["generation"], 3, "one reload for the rest: {s:#}");
    assert_eq!(s["reloads"]["failed"], 2, "{s:#}");
    assert_eq!(endpoints(&s), before + BULK as u64, "{s:#}");
    assert!(s["last_error"].is_null(), "{s:#}");
}
