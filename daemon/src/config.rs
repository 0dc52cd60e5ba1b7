//! `netpold`'s configuration: a YAML file and command-line flags, resolved into one
//! [`Settings`] value before anything is bound, opened or applied.
//!
//! Two stages, as in ripgrep's flags: [`Flags`] is what the command line said, faithful
//! and without I/O; [`Settings::resolve`] reads the config file (if any), lets each
//! flag that was given override the file's key, fills in defaults and checks
//! everything, reporting every problem at once with file, line, column and key.
//!
//! Keys are the flags' long names (`debounce-ms`, `socket-group`, …). A list flag
//! given on the command line replaces the file's list; it does not add to it. Relative
//! paths in the file are relative to the file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rules_compiler::diag::{quote, Diagnostic, Rejected};
use rules_compiler::load::{self, Input, Node, Value};
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction, EventLog, Failsafe, Mode};

use crate::control::DEFAULT_SOCKET;

/// Default debounce window for file events.
pub const DEFAULT_DEBOUNCE_MS: u64 = 200;
/// Default interval of the file watch's periodic re-check (`recheck-ms`).
pub const DEFAULT_RECHECK_MS: u64 = 30_000;
/// The range of `recheck-ms` other than 0 (off).
const RECHECK_RANGE: std::ops::RangeInclusive<u64> = 1_000..=86_400_000;
/// Default address for metrics: loopback only.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9469";
/// Default interval between reads of the kernel's deny counters for metrics.
pub const DEFAULT_METRICS_INTERVAL_MS: u64 = 5000;
/// The range of `metrics-interval-ms`.
const METRICS_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 100..=3_600_000;

/// Default NFLOG group of verdict events. Away from the small numbers other NFLOG
/// readers default to or document (ulogd2's examples use 0-2, Suricata 2, the
/// iptables/nftables man pages 0-2), since a group has one reader: a group already
/// bound stops netpold at start-up, so a clash should be unlikely and is never silent.
pub const DEFAULT_EVENTS_GROUP: u16 = 4713;
/// Default kernel rate limit of logged packets, a second, for the whole table: enough
/// for every denied connection of a host under normal churn, small enough that a flood
/// costs netpold (and the journal) a few hundred lines a second at most.
pub const DEFAULT_EVENTS_RATE: u32 = 50;
/// Default burst over [`DEFAULT_EVENTS_RATE`]: a port scan's first two seconds, or a
/// restart of a client fleet, is seen whole.
pub const DEFAULT_EVENTS_BURST: u32 = 100;
/// Default window in which packets of the same verdict and 5-tuple are one event: TCP
/// retransmits a SYN after 1, 3 and 7 s (Linux), so 10 s folds a connection attempt
/// into one event with its packets counted.
pub const DEFAULT_EVENTS_DEDUP_MS: u64 = 10_000;
/// Default size of the in-memory ring `netpolctl logs` reads: about 4 MB at most.
pub const DEFAULT_EVENTS_RING: usize = 10_000;
/// The range of `events.rate`.
const EVENTS_RATE_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;
/// The range of `events.burst`.
const EVENTS_BURST_RANGE: std::ops::RangeInclusive<i64> = 0..=1_000_000;
/// The range of `events.dedup-window-ms` (0: every packet is an event).
const EVENTS_DEDUP_RANGE: std::ops::RangeInclusive<i64> = 0..=3_600_000;
/// The range of `events.ring-size`.
const EVENTS_RING_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// The keys of the `events` section.
pub const EVENTS_KEYS: [&str; 7] = [
    "enabled",
    "group",
    "rate",
    "burst",
    "dedup-window-ms",
    "ring-size",
    "file",
];

/// `enforce` or `audit`, for `--mode` and the `mode` key alike.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "enforce" => Ok(Mode::Enforce),
        "audit" => Ok(Mode::Audit),
        other => Err(format!("expected enforce or audit, found {}", quote(other))),
    }
}

/// Verdict events: what the kernel logs (the plan's [`EventLog`]) and what netpold does
/// with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    /// NFLOG group, rate and burst, as the plan has them.
    pub log: EventLog,
    /// Packets of the same verdict and 5-tuple within this window are one event.
    pub dedup_window: Duration,
    /// Events kept in memory for `netpolctl logs`.
    pub ring_size: usize,
    /// A file events are appended to as JSON lines (reopened on SIGHUP).
    pub file: Option<PathBuf>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            log: EventLog {
                group: DEFAULT_EVENTS_GROUP,
                rate: DEFAULT_EVENTS_RATE,
                burst: DEFAULT_EVENTS_BURST,
            },
            dedup_window: Duration::from_millis(DEFAULT_EVENTS_DEDUP_MS),
            ring_size: DEFAULT_EVENTS_RING,
            file: None,
        }
    }
}

/// Where metrics are served, or nowhere (`off`, or an empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddress(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "off" => Ok(MetricsAddress(None)),
            a => a.parse().map(|a| MetricsAddress(Some(a))).map_err(|_| {
                format!("expected ADDRESS:PORT or off, e.g. {DEFAULT_METRICS_ADDRESS}, found {s:?}")
            }),
        }
    }
}

/// How log lines look on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (journald adds the time).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do with denied packets (the flag's spelling of [`DenyAction`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deny {
    /// Drop silently.
    Drop,
    /// TCP reset, ICMP administratively prohibited otherwise.
    Reject,
}

impl From<Deny> for DenyAction {
    fn from(d: Deny) -> Self {
        match d {
            Deny::Drop => DenyAction::Drop,
            Deny::Reject => DenyAction::Reject,
        }
    }
}

/// The command line of `netpold`, as given.
#[derive(Clone, Debug, Default, clap::Parser)]
#[command(
    name = "netpold",
    version = crate::VERSION,
    about = "Keep this host's nftables ruleset in step with NetworkPolicy and inventory files"
)]
pub struct Flags {
    /// The YAML config file; flags override its keys.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// NetworkPolicy files or directories; repeatable; replaces the file's list.
    #[arg(long, value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// Inventory files or directories; repeatable; replaces the file's list.
    #[arg(long, value_name = "PATH")]
    pub inventory: Vec<PathBuf>,
    /// A local endpoint, NAMESPACE/NAME; repeatable. Without any: the inventory
    /// endpoints with an address of this host, followed as addresses come and go.
    #[arg(long = "local", value_name = "NS/NAME", value_parser = parse_name)]
    pub locals: Vec<ObjectName>,
    /// The control socket (`netpolctl reload`, `status`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// A group allowed to use the control socket (mode 0660 instead of 0600).
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Where to serve metrics (address:port), or `off`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_address: Option<MetricsAddress>,
    /// How often the kernel's deny counters are read for metrics, in milliseconds.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub metrics_interval_ms: Option<u64>,
    /// Quiet time after the last file event before reloading, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub debounce_ms: Option<u64>,
    /// How often the inputs' metadata is compared with what was last loaded, as a
    /// backstop for changes file events do not report, in milliseconds; 0 turns it off.
    #[arg(long, value_name = "MS", value_parser = parse_recheck)]
    pub recheck_ms: Option<u64>,
    /// What to do with denied packets.
    #[arg(long, value_enum)]
    pub deny: Option<Deny>,
    /// `enforce` the policies, or `audit`: accept what they would deny, and report it.
    #[arg(long, value_name = "enforce|audit", value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// Remove the ruleset when stopping (by default it stays in force).
    #[arg(long)]
    pub flush_on_exit: bool,
    /// Replace the whole table on every reload, even when only set elements change
    /// (by default such a reload sends just the element changes).
    #[arg(long)]
    pub no_incremental: bool,
    /// Make the table without kernel ownership: anyone with CAP_NET_ADMIN may change it,
    /// and netpold puts it back (by default only netpold may, where the kernel can).
    #[arg(long)]
    pub no_own_table: bool,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Raise or lower an input limit (file-bytes, documents, nodes, scalar-bytes,
    /// depth); repeatable; overrides the file's `limits` key by key.
    #[arg(long = "limit", value_name = "NAME=N", value_parser = parse_limit)]
    pub limits: Vec<(String, u64)>,
    /// Take input files with no YAML documents as "no objects" instead of an error.
    #[arg(long)]
    pub allow_empty_files: bool,
    /// After each apply, cut the established connections the new ruleset no longer
    /// allows (default true; `--revoke-established=false` keeps them until they end).
    #[arg(long, value_name = "true|false")]
    pub revoke_established: Option<bool>,
}

/// `NAME=N` for `--limit`, checked against [`load::Limits::set`].
pub fn parse_limit(s: &str) -> Result<(String, u64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=N, e.g. depth=128, found {s:?}"))?;
    let value: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number after {name}=, found {value:?}"))?;
    let name = name.trim().to_string();
    load::Limits::default().set(&name, value)?;
    Ok((name, value))
}

fn parse_recheck(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(ms) if ms == 0 || RECHECK_RANGE.contains(&ms) => Ok(ms),
        _ => Err(recheck_expected()),
    }
}

fn recheck_expected() -> String {
    format!(
        "expected 0 (off) or milliseconds from {} to {}",
        RECHECK_RANGE.start(),
        RECHECK_RANGE.end()
    )
}

fn parse_name(s: &str) -> Result<ObjectName, String> {
    ObjectName::parse(s).ok_or_else(|| format!("expected NAMESPACE/NAME, got {s:?}"))
}

/// The resolved configuration the daemon runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Policy files or directories.
    pub policies: Vec<PathBuf>,
    /// Inventory files or directories.
    pub inventory: Vec<PathBuf>,
    /// Named local endpoints; empty means "follow this host's addresses".
    pub locals: Vec<ObjectName>,
    /// The control socket.
    pub socket: PathBuf,
    /// The group allowed on the control socket, by name or number, with its id.
    pub socket_group: Option<(String, u32)>,
    /// Where metrics are served; `None`: not at all.
    pub metrics_address: Option<SocketAddr>,
    /// How often the kernel's deny counters are read for metrics.
    pub metrics_interval: Duration,
    /// The debounce window for file events.
    pub debounce: Duration,
    /// The file watch's periodic re-check; `None`: off.
    pub recheck: Option<Duration>,
    /// What denied packets get.
    pub deny: DenyAction,
    /// Host-wide mode: enforce, or audit (nothing dropped, everything reported).
    pub mode: Mode,
    /// Verdict events; `None`: off (`events: {enabled: false}`).
    pub events: Option<Events>,
    /// Accepted before any policy for every local endpoint (default: inbound TCP 22).
    pub failsafe: Vec<Failsafe>,
    /// Every reload that changes connectivity is provisional for this long; `None`:
    /// only `netpolctl reload --confirm-within` is.
    pub confirm_within: Option<Duration>,
    /// Remove the table on SIGTERM/SIGINT.
    pub flush_on_exit: bool,
    /// Send only element changes when a reload changes nothing else.
    pub incremental: bool,
    /// Make the table owned by netpold's netlink socket, where the kernel can.
    pub own_table: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// How inputs are read: limits, empty files.
    pub load: load::Options,
    /// Cut established connections a newly applied ruleset no longer allows.
    pub revoke_established: bool,
}

/// The keys of the config file, all optional.
#[derive(Debug, Default)]
struct FileConfig {
    policies: Option<Vec<PathBuf>>,
    inventory: Option<Vec<PathBuf>>,
    locals: Option<Vec<ObjectName>>,
    socket: Option<PathBuf>,
    socket_group: Option<String>,
    metrics_address: Option<MetricsAddress>,
    metrics_interval_ms: Option<u64>,
    debounce_ms: Option<u64>,
    recheck_ms: Option<u64>,
    deny: Option<DenyAction>,
    mode: Option<Mode>,
    events: Option<Option<Events>>,
    failsafe: Option<Vec<Failsafe>>,
    confirm_within: Option<Option<Duration>>,
    flush_on_exit: Option<bool>,
    incremental: Option<bool>,
    own_table: Option<bool>,
    log_format: Option<LogFormat>,
    limits: Vec<(String, u64)>,
    allow_empty_files: Option<bool>,
    revoke_established: Option<bool>,
}

/// Every key the file may have, in the order `config/netpold.yaml` documents them.
pub const KEYS: [&str; 21] = [
    "policies",
    "inventory",
    "local",
    "socket",
    "socket-group",
    "metrics-address",
    "metrics-interval-ms",
    "debounce-ms",
    "recheck-ms",
    "deny",
    "mode",
    "events",
    "failsafe",
    "confirm-within",
    "flush-on-exit",
    "incremental",
    "own-table",
    "log-format",
    "limits",
    "allow-empty-files",
    "revoke-established",
];

impl Settings {
    /// Reads the config file named by `flags` (if any), applies the flags over it,
    /// and checks the result. Every problem is in the `Err`, each with the file, line,
    /// column and key when it comes from the file.
    pub fn resolve(flags: &Flags) -> Result<Settings, Rejected> {
        let mut errors = Vec::new();
        // Read as inputs are: a regular file only, of bounded size; empty means defaults.
        let read = load::Options {
            allow_empty_files: true,
            ..load::Options::default()
        };
        let file = match &flags.config {
            Some(path) => match load::read_paths(std::slice::from_ref(path), &read) {
                Ok(inputs) => inputs
                    .first()
                    .map(|input| parse_file(input, &mut errors))
                    .unwrap_or_default(),
                Err(Rejected(diags)) => {
                    errors.extend(diags);
                    FileConfig::default()
                }
            },
            None => FileConfig::default(),
        };
        let mut limits = load::Limits::default();
        // File first, flags over it; each was checked where it was read.
        for (name, value) in file.limits.iter().chain(&flags.limits) {
            limits
                .set(name, *value)
                .expect("limits are checked when read");
        }
        let pick = |flag: &Vec<PathBuf>, file: Option<Vec<PathBuf>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let policies = pick(&flags.policies, file.policies);
        let inventory = pick(&flags.inventory, file.inventory);
        for (list, key) in [(&policies, "policies"), (&inventory, "inventory")] {
            if list.is_empty() {
                errors.push(
                    Diagnostic::error(format!(
                        "no {key} given: set `{key}` in the config file or pass --{key}"
                    ))
                    .field(key),
                );
            }
        }
        let socket_group_name = flags.socket_group.clone().or(file.socket_group);
        let socket_group = match socket_group_name {
            Some(name) => match group_id(&name) {
                Ok(gid) => Some((name, gid)),
                Err(e) => {
                    errors.push(Diagnostic::error(e).field("socket-group"));
                    None
                }
            },
            None => None,
        };
        let settings = Settings {
            policies,
            inventory,
            locals: if flags.locals.is_empty() {
                file.locals.unwrap_or_default()
            } else {
                flags.locals.clone()
            },
            socket: flags
                .socket
                .clone()
                .or(file.socket)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            socket_group,
            metrics_address: flags
                .metrics_address
                .or(file.metrics_address)
                .unwrap_or_else(|| DEFAULT_METRICS_ADDRESS.parse().expect("a valid default"))
                .0,
            metrics_interval: Duration::from_millis(
                flags
                    .metrics_interval_ms
                    .or(file.metrics_interval_ms)
                    .unwrap_or(DEFAULT_METRICS_INTERVAL_MS),
            ),
            debounce: Duration::from_millis(
                flags
                    .debounce_ms
                    .or(file.debounce_ms)
                    .unwrap_or(DEFAULT_DEBOUNCE_MS),
            ),
            recheck: match flags
                .recheck_ms
                .or(file.recheck_ms)
                .unwrap_or(DEFAULT_RECHECK_MS)
            {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            deny: flags
                .deny
                .map(DenyAction::from)
                .or(file.deny)
                .unwrap_or_default(),
            mode: flags.mode.or(file.mode).unwrap_or_default(),
            events: file.events.unwrap_or_else(|| Some(Events::default())),
            failsafe: file.failsafe.unwrap_or_else(Failsafe::defaults),
            confirm_within: file.confirm_within.flatten(),
            flush_on_exit: flags.flush_on_exit || file.flush_on_exit.unwrap_or(false),
            incremental: !flags.no_incremental && file.incremental.unwrap_or(true),
            own_table: !flags.no_own_table && file.own_table.unwrap_or(true),
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
            load: load::Options {
                limits,
                allow_empty_files: flags.allow_empty_files
                    || file.allow_empty_files.unwrap_or(false),
            },
            revoke_established: flags
                .revoke_established
                .or(file.revoke_established)
                .unwrap_or(true),
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(Rejected(errors))
        }
    }

    /// Whether local endpoints follow this host's addresses (no `--local` given).
    pub fn follows_host(&self) -> bool {
        self.locals.is_empty()
    }
}

/// Parses a config file's text and returns every problem found in it (empty when the
/// file is valid). Pure: reads nothing, so the fuzz target `config` can drive it; paths
/// in the file are only joined to the file's directory, never opened.
pub fn check_file(input: &Input) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    parse_file(input, &mut errors);
    errors
}

/// Decodes the file's one mapping; unknown keys and bad values go to `errors`.
fn parse_file(input: &Input, errors: &mut Vec<Diagnostic>) -> FileConfig {
    let mut config = FileConfig::default();
    let (docs, diags) = load::parse(input, &load::Limits::default());
    errors.extend(diags);
    let base = input.path.parent().unwrap_or(Path::new("."));
    let at = |node: &Node, key: &str, message: String| {
        Diagnostic::error(message)
            .in_file(&input.path)
            .at(node.line(), node.column())
            .field(key)
    };
    if docs.len() > 1 {
        let d = &docs[1].root;
        errors.push(
            Diagnostic::error("expected one YAML document, found more")
                .in_file(&input.path)
                .at(d.line(), d.column()),
        );
    }
    let Some(doc) = docs.first() else {
        return config;
    };
    let Value::Map(entries) = &doc.root.value else {
        errors.push(
            Diagnostic::error(format!(
                "expected a mapping of keys, found {}",
                doc.root.value.describe()
            ))
            .in_file(&input.path)
            .at(doc.root.line(), doc.root.column()),
        );
        return config;
    };
    for (k, v) in entries {
        let Value::Str(key) = &k.value else {
            errors.push(
                Diagnostic::error(format!("expected a key, found {}", k.value.describe()))
                    .in_file(&input.path)
                    .at(k.line(), k.column()),
            );
            continue;
        };
        let key = key.as_str();
        let result: Result<(), String> = (|| {
            match key {
                "policies" => config.policies = Some(paths(v, base)?),
                "inventory" => config.inventory = Some(paths(v, base)?),
                "local" => {
                    config.locals = Some(
                        strings(v)?
                            .iter()
                            .map(|s| parse_name(s))
                            .collect::<Result<_, _>>()?,
                    )
                }
                "socket" => config.socket = Some(base.join(string(v)?)),
                "socket-group" => {
                    config.socket_group = match &v.value {
                        Value::Int(i) if *i >= 0 => Some(i.to_string()),
                        _ => Some(string(v)?),
                    }
                }
                "metrics-address" => {
                    config.metrics_address = Some(match &v.value {
                        Value::Null => MetricsAddress(None),
                        Value::Str(s) => s.parse()?,
                        other => {
                            return Err(format!(
                                "expected ADDRESS:PORT or off, found {}",
                                other.describe()
                            ))
                        }
                    })
                }
                "metrics-interval-ms" => {
                    config.metrics_interval_ms = Some(match v.value {
                        Value::Int(i) if i >= 0 && METRICS_INTERVAL_RANGE.contains(&(i as u64)) => {
                            i as u64
                        }
                        _ => {
                            return Err(format!(
                                "expected milliseconds from {} to {}, found {}",
                                METRICS_INTERVAL_RANGE.start(),
                                METRICS_INTERVAL_RANGE.end(),
                                v.value.describe()
                            ))
                        }
                    })
                }
                "recheck-ms" => {
                    config.recheck_ms = Some(match v.value {
                        Value::Int(i)
                            if i == 0 || (i > 0 && RECHECK_RANGE.contains(&(i as u64))) =>
                        {
                            i as u64
                        }
                        _ => {
                            return Err(format!(
                                "{}, found {}",
                                recheck_expected(),
                                v.value.describe()
                            ))
                        }
                    })
                }
                "debounce-ms" => {
                    config.debounce_ms = Some(match v.value {
                        Value::Int(i) if (0..=60_000).contains(&i) => i as u64,
                        _ => {
                            return Err(format!(
                                "expected milliseconds from 0 to 60000, found {}",
                                v.value.describe()
                            ))
                        }
                    })
                }
                "deny" => {
                    // The flag's parser: one spelling for the file and the command line.
                    let text = string(v)?;
                    let deny = <Deny as clap::ValueEnum>::from_str(&text, false)
                        .map_err(|_| format!("expected drop or reject, found {}", quote(&text)))?;
                    config.deny = Some(deny.into())
                }
                "mode" => config.mode = Some(parse_mode(&string(v)?)?),
                "events" => {
                    let Value::Map(_) = &v.value else {
                        return Err(format!(
                            "expected a mapping of {}, found {}",
                            EVENTS_KEYS.join(", "),
                            v.value.describe()
                        ));
                    };
                    config.events = Some(parse_events(v, base, &at, errors));
                }
                "failsafe" => {
                    let Value::Seq(items) = &v.value else {
                        return Err(format!(
                            "expected a list of {{direction, protocol, port, cidr}} (or [] for \
                             none), found {}",
                            v.value.describe()
                        ));
                    };
                    config.failsafe = Some(
                        items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, item)| parse_failsafe(item, i, &at, errors))
                            .collect(),
                    );
                }
                "confirm-within" => {
                    config.confirm_within = Some(match &v.value {
                        Value::Null => None,
                        _ => Some(parse_confirm_within(&string(v)?)?),
                    })
                }
                "flush-on-exit" => config.flush_on_exit = Some(boolean(v)?),
                "allow-empty-files" => config.allow_empty_files = Some(boolean(v)?),
                "revoke-established" => config.revoke_established = Some(boolean(v)?),
                "limits" => {
                    let Value::Map(entries) = &v.value else {
                        return Err(format!(
                            "expected a mapping of limit names to numbers, e.g. {{depth: 128}}, \
                             found {}",
                            v.value.describe()
                        ));
                    };
                    for (name, value) in entries {
                        let name_text = match &name.value {
                            Value::Str(s) => s.to_string(),
                            other => other.describe(),
                        };
                        let checked = match value.value {
                            Value::Int(n) if n >= 0 => load::Limits::default()
                                .set(&name_text, n as u64)
                                .map(|()| n as u64),
                            _ => Err(format!(
                                "expected a whole number, found {}",
                                value.value.describe()
                            )),
                        };
                        match checked {
                            Ok(n) => config.limits.push((name_text, n)),
                            Err(message) => {
                                errors.push(at(value, &format!("limits.{name_text}"), message))
                            }
                        }
                    }
                }
                "incremental" => config.incremental = Some(boolean(v)?),
                "own-table" => config.own_table = Some(boolean(v)?),
                "log-format" => {
                    config.log_format = Some(match string(v)?.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        other => {
                            return Err(format!("expected text or json, found {}", quote(other)))
                        }
                    })
                }
                _ => return Err(format!("unknown key; the keys are: {}", KEYS.join(", "))),
            }
            Ok(())
        })();
        if let Err(message) = result {
            // Unknown keys point at the key, bad values at the value.
            let node = if KEYS.contains(&key) { v } else { k };
            errors.push(at(node, key, message));
        }
    }
    config
}

/// The `events` mapping; each bad key or value is an error at its place, named
/// `events.KEY`. `None` when `enabled: false`.
fn parse_events(
    map: &Node,
    base: &Path,
    at: &dyn Fn(&Node, &str, String) -> Diagnostic,
    errors: &mut Vec<Diagnostic>,
) -> Option<Events> {
    let mut events = Events::default();
    let mut enabled = true;
    let Value::Map(entries) = &map.value else {
        return Some(events);
    };
    let number = |v: &Node, range: &std::ops::RangeInclusive<i64>, what: &str| match v.value {
        Value::Int(i) if range.contains(&i) => Ok(i),
        _ => Err(format!(
            "expected {what} from {} to {}, found {}",
            range.start(),
            range.end(),
            v.value.describe()
        )),
    };
    for (k, v) in entries {
        let key = match &k.value {
            Value::Str(s) => s.as_str(),
            other => {
                errors.push(at(
                    k,
                    "events",
                    format!("expected a key, found {}", other.describe()),
                ));
                continue;
            }
        };
        // Each value checked against its range first, so the casts below cannot wrap.
        let result: Result<(), String> = match key {
            "enabled" => boolean(v).map(|b| enabled = b),
            "group" => number(v, &(0..=i64::from(u16::MAX)), "a group number")
                .map(|n| events.log.group = n as u16),
            "rate" => number(v, &EVENTS_RATE_RANGE, "packets a second")
                .map(|n| events.log.rate = n as u32),
            "burst" => {
                number(v, &EVENTS_BURST_RANGE, "packets").map(|n| events.log.burst = n as u32)
            }
            "dedup-window-ms" => number(v, &EVENTS_DEDUP_RANGE, "milliseconds")
                .map(|n| events.dedup_window = Duration::from_millis(n as u64)),
            "ring-size" => {
                number(v, &EVENTS_RING_RANGE, "events").map(|n| events.ring_size = n as usize)
            }
            "file" => match &v.value {
                Value::Null => {
                    events.file = None;
                    Ok(())
                }
                _ => string(v).map(|s| events.file = Some(base.join(s))),
            },
            _ => Err(format!(
                "unknown key; the keys of events are: {}",
                EVENTS_KEYS.join(", ")
            )),
        };
        if let Err(message) = result {
            let node = if EVENTS_KEYS.contains(&key) { v } else { k };
            errors.push(at(node, &format!("events.{key}"), message));
        }
    }
    enabled.then_some(events)
}

/// A confirmation window (`confirm-within`, `netpolctl reload --confirm-within`): 1 s
/// to 1 h, as `60s`, `5m`.
pub fn parse_confirm_within(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| {
        format!(
            "expected a duration such as 60s or 5m, found {}: {e}",
            quote(text)
        )
    })?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
        return Err(format!("expected from 1s to 1h, found {}", quote(text)));
    }
    Ok(d)
}

/// The keys of a `failsafe` entry.
const FAILSAFE_KEYS: [&str; 4] = ["direction", "protocol", "port", "cidr"];

/// One `failsafe` entry, `failsafe[i]`; each bad key or value is an error at its place,
/// named `failsafe[i].KEY`. `None` when it has any.
fn parse_failsafe(
    item: &Node,
    i: usize,
    at: &dyn Fn(&Node, &str, String) -> Diagnostic,
    errors: &mut Vec<Diagnostic>,
) -> Option<Failsafe> {
    let Value::Map(entries) = &item.value else {
        errors.push(at(
            item,
            &format!("failsafe[{i}]"),
            format!(
                "expected a mapping of {}, found {}",
                FAILSAFE_KEYS.join(", "),
                item.value.describe()
            ),
        ));
        return None;
    };
    let before = errors.len();
    let (mut direction, mut protocol, mut ports, mut cidr) = (None, None, None, None);
    for (k, v) in entries {
        let key = match &k.value {
            Value::Str(s) => s.as_str(),
            other => {
                let message = format!("expected a key, found {}", other.describe());
                errors.push(at(k, &format!("failsafe[{i}]"), message));
                continue;
            }
        };
        let result: Result<(), String> = match key {
            "direction" => string(v)
                .and_then(|s| plan::parse_direction(&s).map_err(|e| e.to_string()))
                .map(|d| direction = Some(d)),
            "protocol" => string(v)
                .and_then(|s| plan::parse_protocol(&s).map_err(|e| e.to_string()))
                .map(|p| protocol = Some(p)),
            "port" => {
                let text = match &v.value {
                    Value::Int(n) => Ok(n.to_string()),
                    _ => string(v),
                };
                text.and_then(|t| plan::parse_ports(&t).map_err(|e| e.to_string()))
                    .map(|p| ports = Some(p))
            }
            "cidr" => string(v)
                .and_then(|s| plan::parse_cidr(&s).map_err(|e| e.to_string()))
                .map(|c| cidr = Some(c)),
            _ => Err(format!(
                "unknown key; the keys of a failsafe entry are: {}",
                FAILSAFE_KEYS.join(", ")
            )),
        };
        if let Err(message) = result {
            let node = if FAILSAFE_KEYS.contains(&key) { v } else { k };
            errors.push(at(node, &format!("failsafe[{i}].{key}"), message));
        }
    }
    // A key with a bad value is not missing too.
    let bad: Vec<String> = errors[before..].iter().map(|d| d.to_string()).collect();
    for (missing, key) in [
        (direction.is_none(), "direction"),
        (protocol.is_none(), "protocol"),
        (ports.is_none(), "port"),
    ] {
        let named = format!("failsafe[{i}].{key}");
        if missing && !bad.iter().any(|b| b.contains(&named)) {
            errors.push(at(
                item,
                &format!("failsafe[{i}].{key}"),
                format!("missing; a failsafe entry needs {key}"),
            ));
        }
    }
    match Failsafe::new(direction?, protocol?, ports?, cidr) {
        Ok(f) if errors.len() == before => Some(f),
        Ok(_) => None,
        Err(e) => {
            errors.push(at(item, &format!("failsafe[{i}]"), e.to_string()));
            None
        }
    }
}

fn boolean(v: &Node) -> Result<bool, String> {
    match v.value {
        Value::Bool(b) => Ok(b),
        _ => Err(format!(
            "expected true or false, found {}",
            v.value.describe()
        )),
    }
}

fn string(v: &Node) -> Result<String, String> {
    match &v.value {
        Value::Str(s) if !s.is_empty() => Ok(s.to_string()),
        other => Err(format!(
            "expected a non-empty string, found {}",
            other.describe()
        )),
    }
}

/// One string or a list of them.
fn strings(v: &Node) -> Result<Vec<String>, String> {
    match &v.value {
        Value::Seq(items) => items.iter().map(string).collect(),
        Value::Str(_) => Ok(vec![string(v)?]),
        other => Err(format!(
            "expected a string or a list of strings, found {}",
            other.describe()
        )),
    }
}

fn paths(v: &Node, base: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(strings(v)?.into_iter().map(|s| base.join(s)).collect())
}

/// The id of a group given by number or by name (looked up in the system's group
/// database).
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group {group:?} in the system's group database")),
        Err(e) => Err(format!("cannot look up group {group:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn group_ids_by_number_and_name() {
        assert_eq!(group_id("4242"), Ok(4242));
        assert_eq!(group_id("root"), Ok(0));
        assert!(group_id("no-such-group-here").is_err());
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("netpold").chain(args.iter().copied())).unwrap()
    }

    fn errors(r: Result<Settings, Rejected>) -> Vec<String> {
        match r {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(Rejected(d)) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn flags_alone_give_defaults_for_the_rest() {
        let s = Settings::resolve(&flags(&["--policies", "p", "--inventory", "i"])).unwrap();
        assert_eq!(s.policies, [PathBuf::from("p")]);
        assert_eq!(s.inventory, [PathBuf::from("i")]);
        assert!(s.follows_host());
        assert_eq!(s.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(s.socket_group, None);
        assert_eq!(s.metrics_address, Some("127.0.0.1:9469".parse().unwrap()));
        assert_eq!(s.metrics_interval, Duration::from_secs(5));
        assert_eq!(s.debounce, Duration::from_millis(200));
        assert_eq!(s.recheck, Some(Duration::from_secs(30)));
        assert_eq!(s.deny, DenyAction::Drop);
        assert!(!s.flush_on_exit);
        assert!(s.incremental);
        assert_eq!(s.log_format, LogFormat::Text);
        let s = Settings::resolve(&flags(&[
            "--policies",
            "p",
            "--inventory",
            "i",
            "--no-incremental",
        ]))
        .unwrap();
        assert!(!s.incremental);
        assert!(s.revoke_established, "on unless turned off");
    }

    #[test]
    fn failsafe_entries_from_the_file_and_their_errors_at_their_place() {
        let dir = TempDir::new("config");
        let file = dir.write(
            "netpold.yaml",
            "policies: p\ninventory: i\nfailsafe:\n- {direction: ingress, protocol: TCP, port: 2222}\n\
             - {direction: egress, protocol: UDP, port: \"53-54\", cidr: 2001:db8::/32}\n",
        );
        let s = Settings::resolve(&flags(&["--config", file.to_str().unwrap()])).unwrap();
        let want: Vec<Failsafe> = ["ingress:TCP:2222", "egress:UDP:53-54:2001:db8::/32"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(s.failsafe, want);
        let off = dir.write("off.yaml", "policies: p\ninventory: i\nfailsafe: []\n");
        let s = Settings::resolve(&flags(&["--config", off.to_str().unwrap()])).unwrap();
        assert!(s.failsafe.is_empty());

        let bad = dir.write(
            "bad.yaml",
            "policies: p\ninventory: i\nfailsafe:\n- {direction: in, protocol: SCTP, port: 0, colour: red}\n\
             - {protocol: TCP}\n- 22\n",
        );
        let f = bad.display();
        assert_eq!(
            errors(Settings::resolve(&flags(&["--config", bad.to_str().unwrap()]))),
            [
                format!("{f}:4:15: error: failsafe[0].direction: direction \"in\": expected ingress or egress"),
                format!("{f}:4:29: error: failsafe[0].protocol: protocol \"SCTP\": expected TCP or UDP"),
                format!("{f}:4:41: error: failsafe[0].port: port \"0\": expected a port (1-65535) or a range N-M with N <= M"),
                format!("{f}:4:44: error: failsafe[0].colour: unknown key; the keys of a failsafe entry are: direction, protocol, port, cidr"),
                format!("{f}:5:3: error: failsafe[1].direction: missing; a failsafe entry needs direction"),
                format!("{f}:5:3: error: failsafe[1].port: missing; a failsafe entry needs port"),
                format!("{f}:6:3: error: failsafe[2]: expected a mapping of direction, protocol, port, cidr, found the integer 22"),
            ]
        );
    }

    #[test]
    fn confirm_within_from_the_file() {
        let dir = TempDir::new("config");
        let file = dir.write("c.yaml", "policies: p\ninventory: i\nconfirm-within: 90s\n");
        let s = Settings::resolve(&flags(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(s.confirm_within, Some(Duration::from_secs(90)));
        let s = Settings::resolve(&flags(&["--policies", "p", "--inventory", "i"])).unwrap();
        assert_eq!(s.confirm_within, None);
        for bad in ["0s", "2h", "soon", "60"] {
            let file = dir.write(
                "bad.yaml",
                &format!("policies: p\ninventory: i\nconfirm-within: {bad}\n"),
            );
            let e = errors(Settings::resolve(&flags(&[
                "--config",
                file.to_str().unwrap(),
            ])));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].contains(":3:17: error: confirm-within: expected"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn revoke_established_from_the_file_and_the_flag_over_it() {
        let dir = TempDir::new("config");
        let file = dir.write(
            "netpold.yaml",
            "policies: p\ninventory: i\nrevoke-established: false\n",
        );
        let path = file.to_str().unwrap();
        let s = Settings::resolve(&flags(&["--config", path])).unwrap();
        assert!(!s.revoke_established);
        let s =
            Settings::resolve(&flags(&["--config", path, "--revoke-established=true"])).unwrap();
        assert!(s.revoke_established);
        let s = Settings::resolve(&flags(&[
            "--policies",
            "p",
            "--inventory",
            "i",
            "--revoke-established",
            "false",
        ]))
        .unwrap();
        assert!(!s.revoke_established);
        let bad = dir.write(
            "bad.yaml",
            "policies: p\ninventory: i\nrevoke-established: sometimes\n",
        );
        let e = errors(Settings::resolve(&flags(&[
            "--config",
            bad.to_str().unwrap(),
        ])));
        assert!(e.iter().any(|e| e.contains("revoke-established")), "{e:?}");
    }

    #[test]
    fn file_values_with_paths_relative_to_the_file_and_flags_override_them() {
        let dir = TempDir::new("config");
        let file = dir.write(
            "netpold.yaml",
            "policies: [pol, /abs/pol2]\ninventory: inv\nlocal: [web/checkout]\n\
             socket: /tmp/x.sock\nsocket-group: 0\nmetrics-address: \"[::1]:9000\"\n\
             metrics-interval-ms: 1000\n\
             debounce-ms: 50\nrecheck-ms: 0\ndeny: reject\nflush-on-exit: true\nincremental: false\n\
             log-format: json\n",
        );
        let config = file.to_str().unwrap();
        let s = Settings::resolve(&flags(&["--config", config])).unwrap();
        assert!(!s.incremental);
        assert_eq!(
            s.policies,
            [dir.path().join("pol"), PathBuf::from("/abs/pol2")]
        );
        assert_eq!(s.inventory, [dir.path().join("inv")]);
        assert_eq!(s.locals, [ObjectName::new("web", "checkout")]);
        assert_eq!(s.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(s.socket_group, Some(("0".into(), 0)));
        assert_eq!(s.metrics_address, Some("[::1]:9000".parse().unwrap()));
        assert_eq!(s.metrics_interval, Duration::from_secs(1));
        assert_eq!(s.debounce, Duration::from_millis(50));
        assert_eq!(s.recheck, None, "0 is off");
        assert_eq!(s.deny, DenyAction::Reject);
        assert!(s.flush_on_exit);
        assert_eq!(s.log_format, LogFormat::Json);

        let s = Settings::resolve(&flags(&[
            "--config",
            config,
            "--policies",
            "a",
            "--policies",
            "b",
            "--local",
            "payments/payments-api",
            "--socket",
            "/tmp/y.sock",
            "--debounce-ms",
            "10",
            "--recheck-ms",
            "5000",
            "--deny",
            "drop",
            "--log-format",
            "text",
            "--metrics-address",
            "127.0.0.1:1",
        ]))
        .unwrap();
        assert_eq!(s.policies, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(s.inventory, [dir.path().join("inv")], "kept from the file");
        assert_eq!(s.locals, [ObjectName::new("payments", "payments-api")]);
        assert_eq!(s.socket, PathBuf::from("/tmp/y.sock"));
        assert_eq!(s.debounce, Duration::from_millis(10));
        assert_eq!(s.recheck, Some(Duration::from_secs(5)));
        assert_eq!(s.deny, DenyAction::Drop);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.metrics_address, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(
            s.metrics_interval,
            Duration::from_secs(1),
            "kept from the file"
        );
    }

    #[test]
    fn metrics_can_be_turned_off_in_the_file_or_by_flag() {
        let dir = TempDir::new("config");
        for (text, flag) in [
            ("metrics-address: off\n", None),
            ("metrics-address: \"\"\n", None),
            ("metrics-address:\n", None),
            ("", Some("off")),
            ("metrics-address: 127.0.0.1:9\n", Some("")),
        ] {
            let file = dir.write(
                "netpold.yaml",
                &format!("policies: p\ninventory: i\n{text}"),
            );
            let mut args = vec!["--config", file.to_str().unwrap()];
            if let Some(f) = flag {
                args.extend(["--metrics-address", f]);
            }
            let s = Settings::resolve(&flags(&args)).unwrap();
            assert_eq!(s.metrics_address, None, "{text:?} {flag:?}");
        }
        let file = dir.write(
            "netpold.yaml",
            "policies: p\ninventory: i\nmetrics-address: localhost\nmetrics-interval-ms: 5\n",
        );
        let f = file.display().to_string();
        let errs = errors(Settings::resolve(&flags(&["--config", &f])));
        assert_eq!(
            errs,
            [
                format!("{f}:3:18: error: metrics-address: expected ADDRESS:PORT or off, e.g. {DEFAULT_METRICS_ADDRESS}, found \"localhost\""),
                format!("{f}:4:22: error: metrics-interval-ms: expected milliseconds from 100 to 3600000, found the integer 5"),
            ]
        );
    }

    #[test]
    fn every_file_error_names_file_line_column_and_key() {
        let dir = TempDir::new("config");
        let file = dir.write(
            "bad.yaml",
            "policies: pol\ninventory: [inv]\ndebounce: 100\ndeny: block\n\
             debounce-ms: -5\nflush-on-exit: yes please\nlocal: [nobody]\nrecheck-ms: 10\n",
        );
        let f = file.display().to_string();
        let errs = errors(Settings::resolve(&flags(&["--config", &f])));
        assert_eq!(
            errs,
            [
                format!("{f}:3:1: error: debounce: unknown key; the keys are: {}", KEYS.join(", ")),
                format!("{f}:4:7: error: deny: expected drop or reject, found \"block\""),
                format!("{f}:5:14: error: debounce-ms: expected milliseconds from 0 to 60000, found the integer -5"),
                format!("{f}:6:16: error: flush-on-exit: expected true or false, found the string \"yes please\""),
                format!("{f}:7:8: error: local: expected NAMESPACE/NAME, got \"nobody\""),
                format!("{f}:8:13: error: recheck-ms: expected 0 (off) or milliseconds from 1000 to 86400000, found the integer 10"),
            ]
        );
    }

    #[test]
    fn mode_and_events_from_the_file_and_the_flag() {
        let s = Settings::resolve(&flags(&["--policies", "p", "--inventory", "i"])).unwrap();
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(
            s.events,
            Some(Events::default()),
            "events are on by default"
        );
        let e = s.events.unwrap();
        assert_eq!(
            (e.log.group, e.log.rate, e.log.burst),
            (DEFAULT_EVENTS_GROUP, 50, 100)
        );
        assert_eq!(e.dedup_window, Duration::from_secs(10));
        assert_eq!((e.ring_size, e.file), (10_000, None));

        let dir = TempDir::new("config-events");
        let file = dir.write(
            "netpold.yaml",
            "policies: p\ninventory: i\nmode: audit\nevents:\n  group: 7\n  rate: 5\n  \
             burst: 0\n  dedup-window-ms: 0\n  ring-size: 3\n  file: verdicts.jsonl\n",
        );
        let path = file.to_str().unwrap();
        let s = Settings::resolve(&flags(&["--config", path])).unwrap();
        assert_eq!(s.mode, Mode::Audit);
        assert_eq!(
            s.events,
            Some(Events {
                log: EventLog {
                    group: 7,
                    rate: 5,
                    burst: 0
                },
                dedup_window: Duration::ZERO,
                ring_size: 3,
                file: Some(dir.path().join("verdicts.jsonl")),
            })
        );
        let s = Settings::resolve(&flags(&["--config", path, "--mode", "enforce"])).unwrap();
        assert_eq!(s.mode, Mode::Enforce, "the flag over the file");
        assert!(Flags::try_parse_from(["netpold", "--mode", "warn"]).is_err());

        let off = dir.write(
            "off.yaml",
            "policies: p\ninventory: i\nevents: {enabled: false, rate: 9}\n",
        );
        let s = Settings::resolve(&flags(&["--config", off.to_str().unwrap()])).unwrap();
        assert_eq!(s.events, None);
    }

    #[test]
    fn every_events_error_at_once_with_its_place() {
        let dir = TempDir::new("config-events");
        let file = dir.write(
            "bad.yaml",
            "policies: p\ninventory: i\nmode: loud\nevents:\n  group: 70000\n  rate: 0\n  \
             burst: -1\n  dedup-window-ms: x\n  ring-size: 0\n  file: \"\"\n  colour: red\n  \
             enabled: maybe\n",
        );
        let f = file.display().to_string();
        let errs = errors(Settings::resolve(&flags(&["--config", &f])));
        assert_eq!(
            errs,
            [
                format!("{f}:3:7: error: mode: expected enforce or audit, found \"loud\""),
                format!("{f}:5:10: error: events.group: expected a group number from 0 to 65535, found the integer 70000"),
                format!("{f}:6:9: error: events.rate: expected packets a second from 1 to 100000, found the integer 0"),
                format!("{f}:7:10: error: events.burst: expected packets from 0 to 1000000, found the integer -1"),
                format!("{f}:8:20: error: events.dedup-window-ms: expected milliseconds from 0 to 3600000, found the string \"x\""),
                format!("{f}:9:14: error: events.ring-size: expected events from 1 to 1000000, found the integer 0"),
                format!("{f}:10:9: error: events.file: expected a non-empty string, found the string \"\""),
                format!("{f}:11:3: error: events.colour: unknown key; the keys of events are: {}", EVENTS_KEYS.join(", ")),
                format!("{f}:12:12: error: events.enabled: expected true or false, found the string \"maybe\""),
            ]
        );
        let file = dir.write("bad2.yaml", "policies: p\ninventory: i\nevents: 5\n");
        let f = file.display().to_string();
        let errs = errors(Settings::resolve(&flags(&["--config", &f])));
        assert_eq!(
            errs,
            [format!(
                "{f}:3:9: error: events: expected a mapping of {}, found the integer 5",
                EVENTS_KEYS.join(", ")
            )]
        );
    }

    #[test]
    fn malformed_yaml_and_missing_inputs_are_errors() {
        let dir = TempDir::new("config");
        let file = dir.write("broken.yaml", "policies: [a\n");
        let f = file.display().to_string();
        let errs = errors(Settings::resolve(&flags(&["--config", &f])));
        assert!(errs[0].starts_with(&format!("{f}:")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains(
                "no inventory given: set `inventory` in the config file or pass --inventory"
            )),
            "{errs:?}"
        );
        let errs = errors(Settings::resolve(&flags(&[
            "--config",
            "/nonexistent/netpold.yaml",
        ])));
        assert!(
            errs[0].starts_with("/nonexistent/netpold.yaml: error: cannot read:"),
            "{errs:?}"
        );
        let errs = errors(Settings::resolve(&flags(&[
            "--policies",
            "p",
            "--inventory",
            "i",
            "--socket-group",
            "no-such-group-here",
        ])));
        assert_eq!(
            errs,
            ["error: socket-group: no group \"no-such-group-here\" in the system's group database"]
        );
    }

    #[test]
    fn the_documented_example_config_is_valid_and_holds_every_key_with_its_default() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let path = repo.join("config/netpold.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        for key in KEYS {
            assert!(
                text.contains(&format!("\n{key}:")) || text.contains(&format!("\n# {key}:")),
                "config/netpold.yaml does not document `{key}`"
            );
        }
        let s = Settings::resolve(&flags(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(s.policies, [repo.join("config/policies")]);
        assert_eq!(s.inventory, [repo.join("config/inventory")]);
        assert_eq!(s.debounce, Duration::from_millis(DEFAULT_DEBOUNCE_MS));
        assert_eq!(s.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(s.load, load::Options::default());
        assert!(s.revoke_established);
        // The failsafe line shows the default.
        let line = text
            .lines()
            .find(|l| l.starts_with("# failsafe: "))
            .unwrap();
        let dir = TempDir::new("config");
        let file = dir.write(
            "f.yaml",
            &format!("policies: p\ninventory: i\n{}\n", &line[2..]),
        );
        let shown = Settings::resolve(&flags(&["--config", file.to_str().unwrap()]));
        assert_eq!(shown.unwrap().failsafe, Failsafe::defaults());
        assert_eq!(s.failsafe, Failsafe::defaults());
        // The limits line shows the defaults.
        let line = text.lines().find(|l| l.starts_with("# limits: ")).unwrap();
        for (name, value) in load::Limits::default().entries() {
            assert!(line.contains(&format!("{name}: {value}")), "{line}");
        }
    }

    #[test]
    fn limits_and_empty_files_from_the_file_and_flags() {
        let dir = TempDir::new("config-limits");
        let path = dir.path().join("netpold.yaml");
        std::fs::write(
            &path,
            "policies: p\ninventory: i\nallow-empty-files: true\n\
             limits: {depth: 100, nodes: 5}\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let s = Settings::resolve(&flags(&["--config", config, "--limit", "nodes=7"])).unwrap();
        assert!(s.load.allow_empty_files);
        assert_eq!(s.load.limits.depth, 100);
        assert_eq!(s.load.limits.nodes, 7);
        assert_eq!(s.load.limits.file_bytes, load::Limits::default().file_bytes);

        std::fs::write(
            &path,
            "policies: p\ninventory: i\nlimits: {depth: 5000, speed: 1, nodes: x}\n",
        )
        .unwrap();
        let errs = errors(Settings::resolve(&flags(&["--config", config])));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].contains(":3:17: error: limits.depth: limit depth must be at most 1024"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(":3:30: error: limits.speed: unknown limit \"speed\""),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("limits.nodes: expected a whole number"),
            "{errs:?}"
        );
        for bad in ["depth", "depth=0", "speed=3", "nodes=-1"] {
            assert!(
                Flags::try_parse_from(["netpold", "--limit", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn check_file_reports_what_resolve_would_without_reading_anything() {
        let input = |text: &str| Input {
            path: PathBuf::from("/nonexistent/netpold.yaml"),
            text: text.to_string().into(),
        };
        assert!(check_file(&input("policies: [p]\ninventory: i\ndeny: reject\n")).is_empty());
        let errors: Vec<String> = check_file(&input("deny: maybe\nbogus: 1\n"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("expected drop or reject"), "{errors:?}");
        assert!(errors[1].contains("unknown key"), "{errors:?}");
    }
}
