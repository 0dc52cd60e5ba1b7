//! `netpolctl`: the operator's tool. Parses arguments, calls `netpol_daemon::ctl`,
//! prints, and turns the result into an exit code (0 ok, 1 failed, 2 usage; for
//! `lint`, 1 a finding at `--fail-on` and 2 input that does not load).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use netpol_daemon::config::{self, Deny};
use netpol_daemon::control::{self, Request, Response};
use netpol_daemon::ctl::report_text::{event_line, reload_text, status_text};
use netpol_daemon::ctl::rollback;
use netpol_daemon::ctl::{self, CompileFormat, DiffFormat, MatrixFormat, ReportFormat};
use netpol_daemon::events::hub::LogsFilter;
use netpol_daemon::inputs::Paths;
use netpol_daemon::netlink::Netlink;
use netpol_daemon::state::report::Outcome;
use netpol_daemon::state::report::Verdict;
use rules_compiler::analysis::{FamilyFilter, Party, Probe};
use rules_compiler::load;
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{Failsafe, FailsafeError};

// A cold compile of a big inventory is mostly small allocations on several threads;
// mimalloc spends less time on them than glibc (benches/README.md, `compile`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "netpolctl",
    version = netpol_daemon::VERSION,
    about = "Compile, explain, apply and inspect netpol rulesets"
)]
struct Cli {
    /// netpold's control socket (for `reload` and `status`).
    #[arg(long, global = true, value_name = "PATH", default_value = control::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// How long `reload` and `status` wait for netpold, connecting included (default:
    /// 10 for status, 120 for reload); running out is an error (exit 1).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct InputArgs {
    /// NetworkPolicy files or directories (every *.yaml/*.yml/*.json in it); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// Inventory files or directories (Namespace, Pod, Endpoint); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    inventory: Vec<PathBuf>,
    /// Raise or lower an input limit (file-bytes, documents, nodes, scalar-bytes,
    /// depth); repeatable.
    #[arg(long = "limit", value_name = "NAME=N", value_parser = config::parse_limit)]
    limits: Vec<(String, u64)>,
    /// Take input files with no YAML documents as "no objects" instead of an error.
    #[arg(long)]
    allow_empty_files: bool,
}

impl InputArgs {
    fn paths(&self) -> Paths {
        let mut limits = load::Limits::default();
        for (name, value) in &self.limits {
            limits.set(name, *value).expect("checked by parse_limit");
        }
        Paths {
            policies: self.policies.clone(),
            inventory: self.inventory.clone(),
            options: load::Options {
                limits,
                allow_empty_files: self.allow_empty_files,
            },
        }
    }
}

#[derive(Args)]
struct FailsafeArgs {
    /// Accept this before any policy, for every local endpoint:
    /// DIRECTION:PROTOCOL:PORT, or with :CIDR after it, e.g. ingress:TCP:22 or egress:UDP:53:198.18.0.0/15;
    /// repeatable. Default: ingress:TCP:22 (SSH). Any given replaces the default;
    /// `none` gives none.
    #[arg(long = "failsafe", value_name = "DIR:PROTO:PORT[:CIDR]|none", value_parser = parse_failsafe)]
    failsafe: Vec<Option<Failsafe>>,
}

impl FailsafeArgs {
    fn entries(&self) -> Vec<Failsafe> {
        if self.failsafe.is_empty() {
            Failsafe::defaults()
        } else {
            self.failsafe.iter().flatten().copied().collect()
        }
    }
}

/// A failsafe entry, or `none`.
fn parse_failsafe(s: &str) -> Result<Option<Failsafe>, String> {
    match s {
        "none" => Ok(None),
        _ => s
            .parse()
            .map(Some)
            .map_err(|e: FailsafeError| e.to_string()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogsFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Family {
    Any,
    Ipv4,
    Ipv6,
}

impl From<Family> for FamilyFilter {
    fn from(f: Family) -> Self {
        match f {
            Family::Any => FamilyFilter::Any,
            Family::Ipv4 => FamilyFilter::V4,
            Family::Ipv6 => FamilyFilter::V6,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print the nftables ruleset for the given local endpoints.
    Compile {
        #[command(flatten)]
        inputs: InputArgs,
        /// A local endpoint, NAMESPACE/NAME; repeatable, at least one (compile has no
        /// host to look addresses up on).
        #[arg(long = "local", value_name = "NS/NAME", value_parser = parse_name, required = true)]
        locals: Vec<ObjectName>,
        /// What to do with denied packets.
        #[arg(long, value_enum, default_value = "drop")]
        deny: Deny,
        #[command(flatten)]
        failsafe: FailsafeArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "nft")]
        output: CompileFormat,
    },
    /// Print who may connect to whom, for every endpoint of the inventory.
    Matrix {
        #[command(flatten)]
        inputs: InputArgs,
        /// A port and protocol to evaluate, e.g. 8080/TCP; repeatable; at least one,
        /// except for `-o dot` (which shows every port).
        #[arg(long = "probe", value_name = "PORT/PROTO")]
        probes: Vec<Probe>,
        /// Which address family to consider.
        #[arg(long, value_enum, default_value = "any")]
        family: Family,
        #[command(flatten)]
        failsafe: FailsafeArgs,
        /// Output format: table, json, or dot (a Graphviz graph of every pair's exact
        /// allowed ports, endpoints clustered by namespace, ipBlock peers as nodes; what
        /// the policies allow, the failsafe not drawn).
        #[arg(short, long, value_enum, default_value = "table")]
        output: MatrixFormat,
    },
    /// What a change of inputs does to connectivity: for every pair of endpoints (and
    /// ipBlock peers), the protocols and port ranges whose verdict changes.
    #[command(group(
        clap::ArgGroup::new("against")
            .required(true)
            .args(["against_policies", "against_daemon"])
    ))]
    Diff {
        /// The new inputs.
        #[command(flatten)]
        inputs: InputArgs,
        /// The old policies (files or directories); with --against-inventory.
        #[arg(long, value_name = "PATH", requires = "against_inventory")]
        against_policies: Vec<PathBuf>,
        /// The old inventory.
        #[arg(long, value_name = "PATH", requires = "against_policies")]
        against_inventory: Vec<PathBuf>,
        /// Compare with the inputs the running netpold has in force (over --socket).
        #[arg(long, conflicts_with_all = ["against_policies", "against_inventory"])]
        against_daemon: bool,
        /// Only pairs with this endpoint, judged by its own policies (what its host
        /// enforces), NAMESPACE/NAME; repeatable. Without it: every pair, both sides'
        /// policies.
        #[arg(long = "local", value_name = "NS/NAME", value_parser = parse_name)]
        locals: Vec<ObjectName>,
        /// text (grouped by destination), json, or dot (Graphviz: added green, removed
        /// red).
        #[arg(short, long, value_enum, default_value = "text")]
        output: DiffFormat,
    },
    /// Explain whether one endpoint may connect to another, and which rules decide it.
    Explain {
        #[command(flatten)]
        inputs: InputArgs,
        /// The sender: NAMESPACE/NAME, or an IP address (an endpoint's, or one of no
        /// endpoint, whose side is not policed).
        #[arg(long, value_name = "NS/NAME|IP")]
        from: Party,
        /// The receiver: NAMESPACE/NAME, or an IP address.
        #[arg(long, value_name = "NS/NAME|IP")]
        to: Party,
        /// Destination port and protocol, e.g. 8080/TCP.
        #[arg(long, value_name = "PORT/PROTO")]
        port: Probe,
        /// Which address family to consider.
        #[arg(long, value_enum, default_value = "any")]
        family: Family,
        #[command(flatten)]
        failsafe: FailsafeArgs,
        /// Output format (table is text for people).
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
    },
    /// Report the classic NetworkPolicy mistakes (egress without DNS, OR instead of
    /// AND, …), each with its check id, place and fix. Exit 1 when a finding reaches
    /// --fail-on, 2 when the input does not load.
    Lint {
        #[command(flatten)]
        inputs: InputArgs,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: ctl::LintFormat,
        /// The severity from which findings fail the run (exit 1).
        #[arg(long, value_enum, default_value = "error")]
        fail_on: ctl::FailOn,
    },
    /// Compile and load the ruleset into this host's kernel, replacing the netpol
    /// table in one transaction (needs root).
    Apply {
        #[command(flatten)]
        inputs: InputArgs,
        /// A local endpoint, NAMESPACE/NAME; repeatable. Without it: the inventory
        /// endpoints whose addresses are assigned to this host's interfaces.
        #[arg(long = "local", value_name = "NS/NAME", value_parser = parse_name)]
        locals: Vec<ObjectName>,
        /// What to do with denied packets.
        #[arg(long, value_enum, default_value = "drop")]
        deny: Deny,
        /// enforce the policies, or audit: accept what they would deny (its counters
        /// count it; verdict events need netpold, which reads them).
        #[arg(long, value_name = "enforce|audit", default_value = "enforce", value_parser = config::parse_mode)]
        mode: rules_compiler::plan::Mode,
        #[command(flatten)]
        failsafe: FailsafeArgs,
        /// After the apply, cut the established connections the new ruleset no longer
        /// allows (`false`: they go on until they end, as before the apply).
        #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
        revoke_established: bool,
        /// Replace a table named `inet netpol` even when netpol did not make it.
        #[arg(long)]
        force: bool,
        /// Load provisionally: unless `netpolctl confirm` comes within this time (1s-1h,
        /// e.g. 60s), a detached process loads the table in force before back, also if
        /// this session is gone.
        #[arg(long, value_name = "DURATION", value_parser = config::parse_confirm_within)]
        confirm_within: Option<Duration>,
    },
    /// The detached process of `apply --confirm-within` (not for people).
    #[command(hide = true)]
    RollbackAt {
        /// Its pending file.
        pending: PathBuf,
    },
    /// Write the man pages and shell completions of netpolctl and netpold under this
    /// directory, for packaging (scripts/package; not for people).
    #[command(hide = true)]
    PackageAssets {
        /// Where to write them (created if missing).
        out: PathBuf,
    },
    /// Remove the netpol table from the kernel, and nothing else (needs root).
    Flush {
        /// Remove a table named `inet netpol` even when netpol did not make it.
        #[arg(long)]
        force: bool,
    },
    /// Show what the kernel holds: chains, rule and element counts, deny counters.
    Show {
        /// Inventory files or directories, to label deny counters with whole endpoint
        /// names (the table's comments cut long ones); repeatable, optional.
        #[arg(long, value_name = "PATH")]
        inventory: Vec<PathBuf>,
        /// Output format (table is text for people).
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
    },
    /// Make netpold re-read its inputs now and print what changed, or the whole
    /// error (exit 1 when the reload failed or was held: the previous ruleset stays in
    /// force).
    Reload {
        /// Apply the inputs even when netpold holds them as suspicious (they would take
        /// away every local endpoint or most of the policies).
        #[arg(long)]
        force: bool,
        /// Apply provisionally: unless `netpolctl confirm` comes within this time
        /// (e.g. 60s, 5m; 1s-1h), netpold applies the last confirmed inputs again by
        /// itself, also if this session is gone.
        #[arg(long, value_name = "DURATION", value_parser = config::parse_confirm_within)]
        confirm_within: Option<Duration>,
        /// Output format (table is text for people).
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
    },
    /// Keep what a `reload --confirm-within` (netpold) or an `apply --confirm-within`
    /// (this namespace) loaded provisionally (exit 1 when nothing waits).
    Confirm {
        /// Output format (table is text for people).
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
    },
    /// Print netpold's verdict events: denied and audited connection attempts, oldest
    /// first (nothing, exit 0, when there are none).
    Logs {
        /// Keep printing new events as they happen, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N events of those kept.
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<usize>,
        /// Only events of this local endpoint.
        #[arg(long, value_name = "NS/NAME", value_parser = parse_name)]
        endpoint: Option<ObjectName>,
        /// Only deny or only audit events.
        #[arg(long, value_enum)]
        verdict: Option<Verdict>,
        /// text: one aligned line per event; json: one object per line.
        #[arg(short, long, value_enum, default_value = "text")]
        output: LogsFormat,
    },
    /// Show what netpold has loaded: generation, when, input hashes, counts, the last
    /// error, and whether the files on disk still match.
    Status {
        /// Output format (table is text for people).
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
    },
}

/// Asks netpold; the `bool` is whether the answer means success.
fn daemon_request(
    socket: &std::path::Path,
    request: Request,
    timeout: Option<Duration>,
    format: ReportFormat,
) -> anyhow::Result<(ctl::Output, bool)> {
    let timeout = timeout.unwrap_or_else(|| request.default_timeout());
    let response = control::request_within(socket, &request, timeout)?;
    let (text, ok) = match &response {
        Response::Reload(r) => (
            reload_text(r),
            !matches!(r.outcome, Outcome::Failed | Outcome::Held),
        ),
        Response::Status(s) => (status_text(s), true),
        Response::Confirmed { generation } => (
            format!("confirmed: generation {generation} stays in force\n"),
            true,
        ),
        Response::Error { message } => anyhow::bail!("netpold refused the request: {message}"),
        other => anyhow::bail!("netpold answered something else: {other:?}"),
    };
    let stdout = match format {
        ReportFormat::Table => text,
        ReportFormat::Json => serde_json::to_string_pretty(&response)? + "\n",
    };
    Ok((
        ctl::Output {
            stdout,
            warnings: String::new(),
        },
        ok,
    ))
}

/// `netpolctl diff`: the old side from files, or from netpold (the inputs it has in
/// force); the rest is [`ctl::diff`]'s.
fn diff(
    socket: &std::path::Path,
    timeout: Option<Duration>,
    inputs: &InputArgs,
    (policies, inventory): (Vec<PathBuf>, Vec<PathBuf>),
    against_daemon: bool,
    locals: &[ObjectName],
    format: DiffFormat,
) -> anyhow::Result<ctl::Output> {
    let new = inputs.paths();
    if !against_daemon {
        let old = Paths {
            policies,
            inventory,
            options: new.options,
        };
        return ctl::diff(&new, ctl::Old::Files(&old), locals, format);
    }
    let request = Request::Loaded;
    let timeout = timeout.unwrap_or_else(|| request.default_timeout());
    match control::request_within(socket, &request, timeout)? {
        Response::Loaded(loaded) => ctl::diff(
            &new,
            ctl::Old::Loaded(&loaded, &new.options.limits),
            locals,
            format,
        ),
        Response::Error { message } => anyhow::bail!("netpold refused the request: {message}"),
        other => anyhow::bail!("netpold answered something else: {other:?}"),
    }
}

/// `netpolctl logs`: prints each event as it is read (a follower sees it at once).
fn logs(
    socket: &std::path::Path,
    filter: &LogsFilter,
    timeout: Option<Duration>,
    format: LogsFormat,
) -> anyhow::Result<ctl::Output> {
    let mut stdout = std::io::stdout().lock();
    control::logs(
        socket,
        filter,
        timeout.unwrap_or(control::STATUS_TIMEOUT),
        |response| {
            let line = match response {
                Response::Event(e) => match format {
                    LogsFormat::Text => event_line(&e),
                    LogsFormat::Json => serde_json::to_string(&e).map_err(std::io::Error::other)?,
                },
                Response::Dropped { events } => {
                    format!("netpolctl: {events} events dropped: this client was too slow")
                }
                Response::Error { message } => {
                    return Err(std::io::Error::other(format!(
                        "netpold refused the request: {message}"
                    )))
                }
                other => format!("netpolctl: unexpected answer {other:?}"),
            };
            writeln!(stdout, "{line}")?;
            stdout.flush()
        },
    )?;
    Ok(ctl::Output {
        stdout: String::new(),
        warnings: String::new(),
    })
}

/// A positive number of seconds (fractions allowed).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("expected a positive number of seconds, got {s:?}"))
}

fn parse_name(s: &str) -> Result<ObjectName, String> {
    ObjectName::parse(s).ok_or_else(|| format!("expected NAMESPACE/NAME, got {s:?}"))
}

/// `netpolctl lint`: exit 1 when a finding reaches `--fail-on`, 2 when the input does
/// not load (nothing could be linted), 0 otherwise.
fn lint(inputs: &InputArgs, format: ctl::LintFormat, fail_on: ctl::FailOn) -> ExitCode {
    match ctl::lint(&inputs.paths(), format, fail_on) {
        Ok(linted) => {
            eprint!("{}", linted.output.warnings);
            let _ = std::io::stdout().write_all(linted.output.stdout.as_bytes());
            if linted.failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("netpolctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A usage error like clap's own (exit 2): only `-o dot` needs no probe.
    if let Command::Matrix { probes, output, .. } = &cli.command {
        if probes.is_empty() && *output != MatrixFormat::Dot {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "the following required arguments were not provided:\n  --probe <PORT/PROTO> \
                     (every output but -o dot)",
                )
                .exit();
        }
    }
    let mut ok = true;
    let result = match cli.command {
        Command::Compile {
            inputs,
            locals,
            deny,
            failsafe,
            output,
        } => ctl::compile(
            &inputs.paths(),
            &locals,
            deny.into(),
            &failsafe.entries(),
            output,
        ),
        Command::Matrix {
            inputs,
            probes,
            family,
            failsafe,
            output,
        } => ctl::matrix(
            &inputs.paths(),
            &probes,
            family.into(),
            &failsafe.entries(),
            output,
        ),
        Command::Diff {
            inputs,
            against_policies,
            against_inventory,
            against_daemon,
            locals,
            output,
        } => diff(
            &cli.socket,
            cli.timeout,
            &inputs,
            (against_policies, against_inventory),
            against_daemon,
            &locals,
            output,
        ),
        Command::Explain {
            inputs,
            from,
            to,
            port,
            family,
            failsafe,
            output,
        } => ctl::explain(
            &inputs.paths(),
            &from,
            &to,
            port,
            family.into(),
            &failsafe.entries(),
            output,
        ),
        Command::Lint {
            inputs,
            output,
            fail_on,
        } => return lint(&inputs, output, fail_on),
        Command::Apply {
            inputs,
            locals,
            deny,
            mode,
            failsafe,
            revoke_established,
            force,
            confirm_within,
        } => (|| {
            // Held to the end: a rollback due now runs before this apply or after it.
            let _lock = confirm_within.map(|_| rollback::lock()).transpose()?;
            let saved = confirm_within.map(|_| rollback::save()).transpose()?;
            let mut out = ctl::apply(
                &inputs.paths(),
                &locals,
                &rules_compiler::plan::Options {
                    deny: deny.into(),
                    mode,
                    events: None,
                    failsafe: failsafe.entries(),
                    ..Default::default()
                },
                revoke_established,
                &mut Netlink::new(),
                force,
                netpol_daemon::addrs::local_addresses,
            )?;
            if let (Some(saved), Some(within)) = (saved, confirm_within) {
                out.stdout.push_str(&rollback::arm(saved, within)?);
            }
            Ok(out)
        })(),
        Command::RollbackAt { pending } => rollback::watch(&pending).map(|()| ctl::Output {
            stdout: String::new(),
            warnings: String::new(),
        }),
        Command::PackageAssets { out } => {
            use clap::CommandFactory;
            netpol_daemon::docs::write(&out, vec![Cli::command(), config::Flags::command()])
                .map(|written| ctl::Output {
                    stdout: written
                        .iter()
                        .map(|p| format!("{}\n", p.display()))
                        .collect(),
                    warnings: String::new(),
                })
                .map_err(|e| anyhow::anyhow!("writing to {}: {e}", out.display()))
        }
        Command::Flush { force } => ctl::flush(&mut Netlink::new(), force),
        Command::Show { inventory, output } => {
            let inventory = (!inventory.is_empty()).then(|| Paths {
                policies: Vec::new(),
                inventory,
                options: load::Options::default(),
            });
            ctl::show(&mut Netlink::new(), output, inventory.as_ref())
        }
        Command::Reload {
            force,
            confirm_within,
            output,
        } => {
            let request = Request::Reload {
                force,
                confirm_within_ms: confirm_within.map(|d| d.as_millis() as u64),
            };
            daemon_request(&cli.socket, request, cli.timeout, output).map(|(out, good)| {
                ok = good;
                out
            })
        }
        // A pending `apply --confirm-within` of this namespace first, else netpold's.
        Command::Confirm { output } => match rollback::confirm() {
            Ok(Some(stdout)) => Ok(ctl::Output {
                stdout,
                warnings: String::new(),
            }),
            Ok(None) => daemon_request(&cli.socket, Request::Confirm, cli.timeout, output)
                .map(|(out, good)| {
                    ok = good;
                    out
                })
                .map_err(|e| match rollback::rolled_back() {
                    Some(line) => e.context(format!("nothing to confirm here; {line}")),
                    None => e,
                }),
            Err(e) => Err(e),
        },
        Command::Logs {
            follow,
            lines,
            endpoint,
            verdict,
            output,
        } => logs(
            &cli.socket,
            &LogsFilter {
                follow,
                last: lines,
                endpoint: endpoint.map(|e| e.to_string()),
                verdict,
            },
            cli.timeout,
            output,
        ),
        Command::Status { output } => {
            daemon_request(&cli.socket, Request::Status, cli.timeout, output).map(|(out, _)| out)
        }
    };
    match result {
        Ok(out) => {
            eprint!("{}", out.warnings);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(out.stdout.as_bytes());
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("netpolctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
