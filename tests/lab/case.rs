//! A case: its inputs and its expected table (`expected.txt`, format in README.md).
//!
//! Also compiled into the `netpol-tests` suite (`tests/suite/cluster_conformance.rs`,
//! through `#[path]`), which reads the cases of `cluster-cases/` with it: this file
//! must not depend on the rest of the lab.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rules_compiler::analysis::Probe;

/// The first UDP source port the lab hands out; probed ports stay below it.
pub const FIRST_SOURCE_PORT: u16 = 40000;

/// An address family of the probe tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both, in table order.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The spelling of `netpolctl matrix --family` and of `expected.txt`.
    pub fn flag(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// Whether `ip` is of this family.
    pub fn admits(self, ip: &std::net::IpAddr) -> bool {
        ip.is_ipv4() == (self == Family::V4)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flag())
    }
}

/// One cell of the expected table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// `.`: the connection is allowed.
    Allowed,
    /// `X`: it is denied.
    Denied,
    /// `-`: one of the two endpoints has no address of the family: nothing to probe.
    NoPair,
}

impl Mark {
    fn parse(s: &str) -> Option<Mark> {
        match s {
            "." => Some(Mark::Allowed),
            "X" => Some(Mark::Denied),
            "-" => Some(Mark::NoPair),
            _ => None,
        }
    }
}

/// A host of the lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An endpoint of the inventory: `namespace/name`.
    Endpoint(String),
    /// A host that is not in the inventory, with its addresses: it applies no
    /// ruleset and `matrix` knows nothing of it, so its cells compare the kernel with
    /// the expected table only. It is how `ipBlock`s meet addresses of no endpoint.
    Stranger(Vec<std::net::IpAddr>),
}

/// A case, read from `tests/lab/cases/<name>/`.
#[derive(Debug)]
pub struct Case {
    /// The directory name.
    pub name: String,
    /// `--policies`.
    pub policies: PathBuf,
    /// `--inventory`.
    pub inventory: PathBuf,
    /// `--deny reject` rather than the default drop.
    pub reject: bool,
    /// The hosts as `expected.txt` names them, in the order of its `endpoints`
    /// section.
    pub endpoints: Vec<(String, Host)>,
    /// The probes, in the order of their first grid.
    pub probes: Vec<Probe>,
    /// `expected[(probe index, family)][from][to]`, indices into `endpoints`.
    pub expected: BTreeMap<(usize, Family), Vec<Vec<Mark>>>,
}

/// Where the cases live.
pub fn cases_dir() -> PathBuf {
    repo().join("tests/lab/cases")
}

/// `tests/lab/cluster-cases`: the ClusterNetworkPolicy cases.
pub fn cluster_cases_dir() -> PathBuf {
    repo().join("tests/lab/cluster-cases")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the daemon crate is one level down")
        .to_path_buf()
}

struct Lines<'a> {
    file: String,
    lines: Vec<(usize, Vec<&'a str>)>,
    at: usize,
}

impl<'a> Lines<'a> {
    fn new(file: String, text: &'a str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("")))
            .map(|(n, l)| (n, l.split_whitespace().collect::<Vec<_>>()))
            .filter(|(_, words)| !words.is_empty())
            .collect();
        Lines { file, lines, at: 0 }
    }

    fn peek(&self) -> Option<&(usize, Vec<&'a str>)> {
        self.lines.get(self.at)
    }

    fn next(&mut self) -> Option<(usize, Vec<&'a str>)> {
        let l = self.lines.get(self.at).cloned();
        self.at += 1;
        l
    }

    fn fail(&self, line: usize, msg: impl fmt::Display) -> ! {
        panic!("{}:{line}: {msg}", self.file)
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "policies" | "inventory" | "deny" | "endpoints" | "probe")
}

impl Case {
    /// Reads the case `name` of the directory `cases` (`cases_dir()` or
    /// `cluster_cases_dir()`); a malformed `expected.txt` fails with its line.
    pub fn read_in(cases: &Path, name: &str) -> Case {
        let dir = cases.join(name);
        let path = dir.join("expected.txt");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = Lines::new(path.display().to_string(), &text);
        let mut case = Case {
            name: name.to_string(),
            policies: dir.join("policies.yaml"),
            inventory: dir.join("inventory.yaml"),
            reject: false,
            endpoints: Vec::new(),
            probes: Vec::new(),
            expected: BTreeMap::new(),
        };
        while let Some((n, words)) = lines.next() {
            match words[..] {
                ["policies", p] => case.policies = repo().join(p),
                ["inventory", p] => case.inventory = repo().join(p),
                ["deny", "drop"] => case.reject = false,
                ["deny", "reject"] => case.reject = true,
                ["endpoints"] => {
                    while let Some((n, words)) = lines.peek().cloned() {
                        if is_keyword(words[0]) {
                            break;
                        }
                        lines.next();
                        let host = match words[..] {
                            [_, name] if name.contains('/') => Host::Endpoint(name.into()),
                            [_, ref ips @ ..] if !ips.is_empty() => Host::Stranger(
                                ips.iter()
                                    .map(|ip| {
                                        ip.parse().unwrap_or_else(|_| {
                                            lines.fail(n, format!("{ip:?} is not an address"))
                                        })
                                    })
                                    .collect(),
                            ),
                            _ => lines.fail(
                                n,
                                "expected `ALIAS NAMESPACE/NAME` or `ALIAS ADDRESS…`",
                            ),
                        };
                        let alias = words[0];
                        if case.endpoints.iter().any(|(a, _)| a == alias) {
                            lines.fail(n, format!("alias {alias} given twice"));
                        }
                        case.endpoints.push((alias.into(), host));
                    }
                }
                ["probe", probe, ref family @ ..] => {
                    let probe: Probe = probe
                        .parse()
                        .unwrap_or_else(|e| lines.fail(n, format!("{probe}: {e}")));
                    if probe.port >= FIRST_SOURCE_PORT {
                        lines.fail(
                            n,
                            format!("probe ports must stay below {FIRST_SOURCE_PORT}, the lab's UDP source ports"),
                        );
                    }
                    let families: Vec<Family> = match family {
                        [] => Family::BOTH.to_vec(),
                        ["ipv4"] => vec![Family::V4],
                        ["ipv6"] => vec![Family::V6],
                        _ => lines.fail(n, "expected `probe PORT/PROTOCOL [ipv4|ipv6]`"),
                    };
                    let k = match case.probes.iter().position(|p| *p == probe) {
                        Some(k) => k,
                        None => {
                            case.probes.push(probe);
                            case.probes.len() - 1
                        }
                    };
                    let grid = case.grid(&mut lines, n);
                    for f in families {
                        if case.expected.insert((k, f), grid.clone()).is_some() {
                            lines.fail(n, format!("a second {f} grid for {probe}"));
                        }
                    }
                }
                _ => lines.fail(
                    n,
                    "expected `policies PATH`, `inventory PATH`, `deny drop|reject`, `endpoints` or `probe PORT/PROTOCOL [ipv4|ipv6]`",
                ),
            }
        }
        if case.endpoints.is_empty() {
            lines.fail(0, "no `endpoints` section");
        }
        for (k, probe) in case.probes.iter().enumerate() {
            for f in Family::BOTH {
                if !case.expected.contains_key(&(k, f)) {
                    lines.fail(0, format!("no {f} grid for {probe}"));
                }
            }
        }
        case
    }

    /// A grid: a header of every alias, then one row per alias: the alias and one
    /// mark per column.
    fn grid(&self, lines: &mut Lines<'_>, at: usize) -> Vec<Vec<Mark>> {
        let n = self.endpoints.len();
        let index = |lines: &Lines<'_>, line: usize, alias: &str| {
            self.endpoints
                .iter()
                .position(|(a, _)| a == alias)
                .unwrap_or_else(|| lines.fail(line, format!("unknown alias {alias}")))
        };
        let Some((h, header)) = lines.next() else {
            lines.fail(at, "a grid header must follow");
        };
        let columns: Vec<usize> = header.iter().map(|a| index(lines, h, a)).collect();
        let mut sorted = columns.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != n || columns.len() != n {
            lines.fail(h, "the header must name every endpoint once");
        }
        let mut grid = vec![vec![None; n]; n];
        for _ in 0..n {
            let Some((r, row)) = lines.next() else {
                lines.fail(at, format!("the grid needs {n} rows"));
            };
            let from = index(lines, r, row[0]);
            if row.len() != n + 1 {
                lines.fail(r, format!("expected the alias and {n} marks"));
            }
            for (c, word) in row[1..].iter().enumerate() {
                let mark = Mark::parse(word)
                    .unwrap_or_else(|| lines.fail(r, format!("{word:?}: a mark is ., X or -")));
                if grid[from][columns[c]].replace(mark).is_some() {
                    lines.fail(r, format!("row {} given twice", row[0]));
                }
            }
        }
        grid.into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|m| m.expect("every row given"))
                    .collect()
            })
            .collect()
    }
}
