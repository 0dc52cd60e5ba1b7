//! The `netpolctl` subcommands that do not ask netpold: offline (`compile`, `matrix`,
//! `explain`, `diff`, `lint`) and against the kernel (`apply`, `flush`, `show`);
//! `reload` and `status` go over the control socket ([`crate::control`]), and so does
//! fetching the inputs `diff --against-daemon` compares with (the binary's, handed to
//! [`diff`] as [`Old::Loaded`]). Each returns the text to print, so the binary stays a
//! thin shell and tests can call these directly.
//!
//! Must not decide what is allowed (that is `rules_compiler`) nor touch the kernel,
//! except through the [`Backend`] that `apply`, `flush` and `show` are given.

pub mod report_text;
pub mod rollback;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use rules_compiler::analysis::{self, End, FamilyFilter, Party, Probe};
use rules_compiler::connectivity::{self, Side};
use rules_compiler::diag::{escape, Severity};
use rules_compiler::lint::Finding;
use rules_compiler::load;
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction, Failsafe};
use rules_compiler::render;
use rules_compiler::resolve::Index;
use rules_compiler::target::find_endpoint;
use rules_compiler::Target;

use crate::inputs::{self, Paths};
use crate::netlink::{Backend, DenyCounter, LoadedTable, TableInfo};

/// Output format of `compile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileFormat {
    /// nft text, ready for `nft -f`.
    Nft,
    /// The plan as JSON.
    Json,
}

/// Output format of `matrix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MatrixFormat {
    /// For people.
    Table,
    /// The stable JSON contract.
    Json,
    /// A Graphviz graph of the exact allowed sets (every port; `--probe` not needed).
    Dot,
}

/// Output format of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// For people, grouped by destination.
    Text,
    /// `{"changes":[…],"endpoints_added":[…],"endpoints_removed":[…],"ip_blocks":[…]}`.
    Json,
    /// A Graphviz graph: kept flows grey, added green, removed red.
    Dot,
}

/// Output format of `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Table,
    /// The stable JSON contract.
    Json,
}

/// What the loaded input produced, plus warnings for stderr.
pub struct Output {
    /// For stdout.
    pub stdout: String,
    /// Warnings for stderr.
    pub warnings: String,
}

fn load(paths: &Paths) -> Result<rules_compiler::Loaded> {
    inputs::load(paths).map_err(|rejected| anyhow::anyhow!("{rejected}"))
}

/// `netpolctl compile`: the ruleset for the given local endpoints, behind `failsafe`.
pub fn compile(
    paths: &Paths,
    locals: &[ObjectName],
    deny: DenyAction,
    failsafe: &[Failsafe],
    format: CompileFormat,
) -> Result<Output> {
    if locals.is_empty() {
        bail!("name at least one local endpoint with --local NAMESPACE/NAME");
    }
    let loaded = load(paths)?;
    let plan = rules_compiler::compile(
        &loaded.model,
        Target::Named(locals),
        &plan::Options {
            deny,
            failsafe: failsafe.to_vec(),
            ..Default::default()
        },
    )?
    .plan;
    let stdout = match format {
        CompileFormat::Nft => render::nft(&plan),
        CompileFormat::Json => {
            serde_json::to_string_pretty(&plan).context("serialising the plan")? + "\n"
        }
    };
    let warnings = inputs::format_warnings(&loaded.warnings);
    dispose(loaded);
    Ok(Output { stdout, warnings })
}

/// Frees `big` on a thread of its own. A model of 50,000 endpoints is a million small
/// allocations, 40–120 ms to free; a command about to print and exit need not wait.
/// Where no thread can be started (a process limit), `spawn` drops the closure, and
/// `big` is freed here; `thread::spawn` would panic instead.
fn dispose<T: Send + 'static>(big: T) {
    let _ = std::thread::Builder::new().spawn(move || drop(big));
}

/// `netpolctl matrix`: who may connect to whom, per probe, each endpoint behind
/// `failsafe`; or, as `dot`, the graph of every pair's exact allowed set (what the
/// policies allow: the failsafe, the same for every pair, is not drawn).
pub fn matrix(
    paths: &Paths,
    probes: &[Probe],
    family: FamilyFilter,
    failsafe: &[Failsafe],
    format: MatrixFormat,
) -> Result<Output> {
    if probes.is_empty() && format != MatrixFormat::Dot {
        bail!("name at least one --probe PORT/PROTOCOL, e.g. --probe 8080/TCP");
    }
    let loaded = load(paths)?;
    let stdout = match format {
        MatrixFormat::Dot => {
            let (ends, plan) = whole_cluster(&loaded.model, None)?;
            connectivity::graph(Side {
                ends: &ends,
                plan: &plan,
            })
            .render_dot()
        }
        MatrixFormat::Table | MatrixFormat::Json => {
            let index = Index::new(&loaded.model);
            let matrix = analysis::matrix(&index, probes, family, failsafe);
            if format == MatrixFormat::Table {
                matrix.render_table()
            } else {
                serde_json::to_string(&matrix).context("serialising the matrix")? + "\n"
            }
        }
    };
    Ok(Output {
        stdout,
        warnings: inputs::format_warnings(&loaded.warnings),
    })
}

/// `netpolctl explain`: the verdict for one flow and the rules behind it.
///
/// Either end may be an address: an endpoint's, or a stranger's (an event's peer).
/// Each endpoint enforces behind `failsafe`.
pub fn explain(
    paths: &Paths,
    from: &Party,
    to: &Party,
    probe: Probe,
    family: FamilyFilter,
    failsafe: &[Failsafe],
    format: ReportFormat,
) -> Result<Output> {
    let loaded = load(paths)?;
    let index = Index::new(&loaded.model);
    // A name must be an endpoint (find_endpoint says what is wrong with it); an
    // address is an endpoint's or nobody's.
    let end = |party: &Party| -> Result<End> {
        Ok(match party {
            Party::Endpoint(name) => End::Endpoint(find_endpoint(&index, name)?),
            Party::Address(ip) => analysis::resolve_address(&index, *ip),
        })
    };
    let (from, to) = (end(from)?, end(to)?);
    let explanation = analysis::explain(&index, from, to, probe, family, failsafe);
    let stdout = match format {
        ReportFormat::Table => explanation.render_text(),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&explanation).context("serialising the explanation")?
                + "\n"
        }
    };
    Ok(Output {
        stdout,
        warnings: inputs::format_warnings(&loaded.warnings),
    })
}

/// The ends of a model and the plan that polices `locals` of them (every endpoint
/// when `None`): one side of a connectivity diff. Enforce mode, no events: what is
/// allowed does not depend on them.
fn whole_cluster(
    model: &rules_compiler::model::Model,
    locals: Option<&[ObjectName]>,
) -> Result<(connectivity::Ends, plan::Plan)> {
    let names: Vec<ObjectName> = model
        .inventory
        .endpoints
        .iter()
        .map(|e| e.id.clone())
        .filter(|id| locals.is_none_or(|l| l.contains(id)))
        .collect();
    let plan =
        rules_compiler::compile(model, Target::Named(&names), &plan::Options::default())?.plan;
    Ok((connectivity::Ends::of(model), plan))
}

/// What `diff` compares the new inputs with.
pub enum Old<'a> {
    /// Other files.
    Files(&'a Paths),
    /// The inputs in force in netpold, as it read them, and the limits to load them
    /// within.
    Loaded(&'a crate::control::LoadedInputs, &'a load::Limits),
}

/// `netpolctl diff`: how connectivity changes from `old` to `new`, for every pair of
/// endpoints and ipBlock peers (`rules_compiler::connectivity`), or with `locals` for
/// the pairs those endpoints are in, judged by their own policies only (what their
/// host enforces). A name in `locals` must be an endpoint of at least one side.
pub fn diff(
    new: &Paths,
    old: Old<'_>,
    locals: &[ObjectName],
    format: DiffFormat,
) -> Result<Output> {
    let after = load(new)?;
    let before = match old {
        Old::Files(paths) => load(paths)?,
        Old::Loaded(inputs, limits) => {
            let texts = |list: &[crate::control::InputText]| -> Vec<load::Input> {
                list.iter()
                    .map(|i| load::Input {
                        path: i.path.clone(),
                        text: i.text.clone().into(),
                    })
                    .collect()
            };
            rules_compiler::load_model_within(
                &texts(&inputs.policies),
                &texts(&inputs.inventory),
                limits,
            )
            .map_err(|rejected| anyhow::anyhow!("the inputs netpold has in force: {rejected}"))?
        }
    };
    let known = |id: &ObjectName, m: &rules_compiler::model::Model| {
        m.inventory.endpoint_index(id).is_some()
    };
    for id in locals {
        if !known(id, &before.model) && !known(id, &after.model) {
            bail!("no endpoint {id} in either input (--local names an endpoint)");
        }
    }
    let scope = (!locals.is_empty()).then_some(locals);
    let (ends_before, plan_before) = whole_cluster(&before.model, scope)?;
    let (ends_after, plan_after) = whole_cluster(&after.model, scope)?;
    let (a, b) = (
        Side {
            ends: &ends_before,
            plan: &plan_before,
        },
        Side {
            ends: &ends_after,
            plan: &plan_after,
        },
    );
    let stdout = match format {
        DiffFormat::Text => connectivity::diff(a, b).render_text(),
        DiffFormat::Json => {
            serde_json::to_string(&connectivity::diff(a, b)).context("serialising the diff")? + "\n"
        }
        DiffFormat::Dot => connectivity::diff_graph(a, b).render_dot(),
    };
    let mut warnings = inputs::format_warnings(&after.warnings);
    warnings.push_str(&inputs::format_warnings(&before.warnings));
    Ok(Output { stdout, warnings })
}

// ------------------------------------------------------------------ lint ----

/// Output format of `lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// One block per finding, for people.
    Text,
    /// `{"findings":[…]}`, the stable contract.
    Json,
}

/// From which severity on `lint` fails (exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Errors only (the default).
    Error,
    /// Warnings and errors.
    Warning,
    /// Never: report only.
    Never,
}

impl FailOn {
    /// Whether a finding of this severity fails the run.
    pub fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::Error => severity == Severity::Error,
            FailOn::Warning => true,
            FailOn::Never => false,
        }
    }
}

/// What `netpolctl lint` prints, and whether a finding reached `--fail-on`.
pub struct Linted {
    /// The findings, formatted, and the load's warnings.
    pub output: Output,
    /// True when at least one finding reached the `--fail-on` severity.
    pub failed: bool,
}

/// `netpolctl lint`: loads, runs `rules_compiler::lint`, formats. The only error is
/// input that does not load (the caller exits 2 for it: there is nothing to lint).
pub fn lint(paths: &Paths, format: LintFormat, fail_on: FailOn) -> Result<Linted> {
    let loaded = load(paths)?;
    let index = Index::new(&loaded.model);
    let findings = rules_compiler::lint::lint(&index, &loaded.spans);
    let stdout = match format {
        LintFormat::Text => lint_text(&findings),
        LintFormat::Json => {
            #[derive(serde::Serialize)]
            struct Report<'a> {
                findings: &'a [Finding],
            }
            serde_json::to_string_pretty(&Report {
                findings: &findings,
            })
            .context("serialising the findings")?
                + "\n"
        }
    };
    Ok(Linted {
        output: Output {
            stdout,
            warnings: inputs::format_warnings(&loaded.warnings),
        },
        failed: findings.iter().any(|f| fail_on.fails(f.severity)),
    })
}

/// `error[check] ns/name  file:line:column`, the message, `hint: …`; a blank line
/// between findings and a count at the end. Input-derived text is escaped, as in
/// diagnostics.
fn lint_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let file = f.file.as_deref().map_or_else(
            || "<input>".to_string(),
            |p| escape(&p.to_string_lossy()).into_owned(),
        );
        let _ = writeln!(
            out,
            "{severity}[{}] {}  {file}:{}:{}\n  {}\n  hint: {}\n",
            f.check,
            f.policy,
            f.line,
            f.column,
            escape(&f.message),
            escape(&f.hint)
        );
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let _ = writeln!(
        out,
        "lint: {}, {}",
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings")
    );
    out
}

// ---------------------------------------------------------------- the kernel ----
//
// `apply`, `flush` and `show` talk to the kernel through a `netlink::Backend` that the
// caller passes in (the real one from the binary, a fake in tests), and `apply` gets
// this host's addresses from a function for the same reason.

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `netpolctl apply`: compiles like `compile` and loads the ruleset into the kernel in
/// one transaction. Without `locals`, the local endpoints are those with an address
/// that `host_addresses` returns. Input that does not compile never reaches the kernel.
/// With `revoke`, established flows the new ruleset no longer allows are cut afterwards
/// ([`crate::revoke`]); a failure there is a warning, not a failed apply.
/// `options` say what denied packets get and the host-wide mode; `netpolctl apply` gives
/// no event log (`options.events` is `None`): no one would read the NFLOG group.
pub fn apply(
    paths: &Paths,
    locals: &[ObjectName],
    options: &plan::Options,
    revoke: bool,
    backend: &mut dyn Backend,
    force: bool,
    host_addresses: impl Fn() -> std::io::Result<BTreeSet<IpAddr>>,
) -> Result<Output> {
    let loaded = load(paths)?;
    refuse_foreign(backend, force, "replaces")?;
    let mut stdout = String::new();
    let addresses;
    let target = if locals.is_empty() {
        addresses = host_addresses().context("reading this host's addresses")?;
        Target::HostAddresses(&addresses)
    } else {
        Target::Named(locals)
    };
    let compiled = rules_compiler::compile(&loaded.model, target, options)?;
    match target {
        Target::HostAddresses(_) if compiled.locals.is_empty() => stdout.push_str(
            "no inventory endpoint has an address of this host: the table isolates no endpoint\n",
        ),
        Target::HostAddresses(_) => {
            stdout.push_str("local endpoints (by this host's addresses):\n")
        }
        Target::Named(_) => stdout.push_str("local endpoints (named):\n"),
    }
    for local in &compiled.locals {
        if local.addresses.is_empty() {
            let _ = writeln!(stdout, "  {}", local.id);
        } else {
            let ips: Vec<String> = local.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(stdout, "  {} ({})", local.id, ips.join(", "));
        }
    }
    let plan = compiled.plan;
    let stats = backend
        .apply(&plan)
        .with_context(|| format!("applying table inet {}", plan.table()))?;
    let isolated = plan
        .locals()
        .iter()
        .filter(|l| l.ingress_chain.is_some() || l.egress_chain.is_some())
        .count();
    let _ = writeln!(
        stdout,
        "applied table inet {} in one transaction: {}, {}; {isolated} of {} isolated ({} messages, {} bytes; encode {:.1} ms, kernel {:.1} ms)",
        plan.table(),
        plural(stats.rules, "rule", "rules"),
        plural(stats.elements, "set element", "set elements"),
        plural(compiled.locals.len(), "local endpoint", "local endpoints"),
        stats.messages,
        stats.bytes,
        stats.encode.as_secs_f64() * 1000.0,
        stats.kernel.as_secs_f64() * 1000.0,
    );
    let mut warnings = inputs::format_warnings(&loaded.warnings);
    if revoke {
        match crate::revoke::revoke(backend, &plan, &host_addresses) {
            Ok(done) => {
                let _ = writeln!(
                    stdout,
                    "revoked {} of {} established flows that the ruleset no longer allows ({} TCP sockets reset){}",
                    done.revoked.len(),
                    done.seen,
                    done.stats.sockets_destroyed,
                    crate::revoke::describe(&done.revoked)
                );
                if let Some(e) = &done.stats.first_error {
                    let _ = writeln!(warnings, "warning: revoking established flows: {e}");
                }
            }
            Err(e) => {
                let _ = writeln!(
                    warnings,
                    "warning: revoking established flows failed; the ruleset is in force, but \
                     established flows it no longer allows may go on: {e}"
                );
            }
        }
    }
    Ok(Output { stdout, warnings })
}

/// `netpolctl flush`: removes the netpol table and nothing else.
pub fn flush(backend: &mut dyn Backend, force: bool) -> Result<Output> {
    refuse_foreign(backend, force, "removes")?;
    let removed = backend.flush().context("removing table inet netpol")?;
    let stdout = if removed {
        "removed table inet netpol\n"
    } else {
        "no table inet netpol to remove\n"
    };
    Ok(Output {
        stdout: stdout.into(),
        warnings: String::new(),
    })
}

/// An error when a table named `inet netpol` is in the kernel that netpol did not make
/// (it lacks [`TABLE_COMMENT`](rules_compiler::plan::TABLE_COMMENT)), unless `force`:
/// it may be another tool's, whose rules would be lost.
fn refuse_foreign(backend: &mut dyn Backend, force: bool, verb: &str) -> Result<()> {
    let info = backend.table_info().context("reading table inet netpol")?;
    match info {
        Some(t) if !t.is_netpols() && !force => bail!(
            "table inet netpol is in the kernel, but netpol did not make it (it lacks the \
             comment \"{}\"): it may be another tool's. Nothing was changed; `--force` {verb} \
             it.",
            rules_compiler::plan::TABLE_COMMENT
        ),
        _ => Ok(()),
    }
}

/// What `show -o json` prints.
#[derive(Debug, serde::Serialize)]
pub struct ShowReport {
    /// The table as loaded; `null` when there is none.
    pub table: Option<LoadedTable>,
    /// Deny counters per local endpoint and direction.
    pub denies: Vec<DenyCounter>,
    /// The table's flags, owner and comment; `null` when there is none.
    pub info: Option<TableInfo>,
}

/// `netpolctl show`: what the kernel holds: chains, rule and element counts, and the
/// deny counters per local endpoint and direction. A counter is labelled by its chain's
/// owner in `inventory` when given and that owner's deny comment is the counter's
/// (whole names, even where nft's 128-byte comments are cut); else by its comment.
pub fn show(
    backend: &mut dyn Backend,
    format: ReportFormat,
    inventory: Option<&Paths>,
) -> Result<Output> {
    let owners = match inventory {
        Some(paths) => {
            let loaded = load(paths)?;
            plan::chain_owners(loaded.model.inventory.endpoints.iter().map(|e| &e.id))
        }
        None => Default::default(),
    };
    let table = backend.read().context("reading table inet netpol")?;
    let mut denies = table.as_ref().map(LoadedTable::denies).unwrap_or_default();
    for d in &mut denies {
        if let Some((id, dir)) = owners.get(&d.chain) {
            // The comment the owner's deny rule gets is this one: the chain is not a
            // stranger's that happens to share the name.
            if *dir == d.direction
                && plan::deny_comment(*dir, id) == format!("deny {} {}", d.direction, d.endpoint)
            {
                d.endpoint = id.clone();
            }
        }
    }
    let info = backend.table_info().context("reading table inet netpol")?;
    let report = ShowReport {
        table,
        denies,
        info,
    };
    let stdout = match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report).context("serialising the table")? + "\n"
        }
        ReportFormat::Table => show_text(&report),
    };
    Ok(Output {
        stdout,
        warnings: String::new(),
    })
}

fn show_text(report: &ShowReport) -> String {
    let Some(t) = &report.table else {
        return "no table inet netpol is loaded\n".into();
    };
    let mut out = format!(
        "table inet {}: {}, {}, {}, {}\n",
        t.name,
        plural(t.chains.len(), "chain", "chains"),
        plural(t.rule_count(), "rule", "rules"),
        plural(t.sets.len(), "set or map", "sets and maps"),
        plural(t.element_count(), "element", "elements"),
    );
    if let Some(info) = &report.info {
        let _ = writeln!(out, "{}", info.describe());
    }
    let width = t.chains.iter().map(|c| c.name.len()).max().unwrap_or(0);
    out.push_str("\nchains:\n");
    for c in &t.chains {
        let hook = c
            .hook
            .as_ref()
            .map(|h| format!("hook {h}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:width$}  {:11}  {}",
            c.name,
            hook,
            plural(c.rules, "rule", "rules")
        );
    }
    if !t.sets.is_empty() {
        let width = t.sets.iter().map(|s| s.name.len()).max().unwrap_or(0);
        out.push_str("\nsets and maps:\n");
        for s in &t.sets {
            let kind = if s.map { "map" } else { "set" };
            let _ = writeln!(
                out,
                "  {:width$}  {kind}  {}",
                s.name,
                plural(s.elements, "element", "elements")
            );
        }
    }
    out.push_str("\ndenied:\n");
    if report.denies.is_empty() {
        out.push_str("  no isolated local endpoint\n");
        return out;
    }
    let rows: Vec<[String; 4]> = report
        .denies
        .iter()
        .map(|d| {
            // A cut name may be shared by two endpoints; their chains are not.
            let endpoint = if d.is_cut() {
                format!("{} (chain {})", d.endpoint, d.chain)
            } else {
                d.endpoint.to_string()
            };
            [
                endpoint,
                d.direction.to_string(),
                d.packets.to_string(),
                d.bytes.to_string(),
            ]
        })
        .collect();
    let head = ["ENDPOINT", "DIRECTION", "PACKETS", "BYTES"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(head.map(String::from)).chain(rows) {
        let _ = writeln!(
            out,
            "  {:w0$}  {:w1$}  {:>w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    out
}

#[cfg(test)]
mod kernel_tests {
    //! `apply`, `flush` and `show` over the fake backend and the bundled example.

    use std::path::{Path, PathBuf};

    use super::*;
    use crate::netlink::fake::FakeBackend;

    fn example() -> Paths {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        Paths {
            policies: vec![repo.join("config/policies")],
            inventory: vec![repo.join("config/inventory")],
            options: Default::default(),
        }
    }

    fn addresses(list: &[&str]) -> impl Fn() -> std::io::Result<BTreeSet<IpAddr>> {
        let set: BTreeSet<IpAddr> = list.iter().map(|a| a.parse().unwrap()).collect();
        move || Ok(set.clone())
    }

    fn no_addresses_asked() -> std::io::Result<BTreeSet<IpAddr>> {
        panic!("named local endpoints need no address lookup")
    }

    fn failure(r: Result<Output>) -> anyhow::Error {
        match r {
            Ok(out) => panic!("succeeded: {}", out.stdout),
            Err(e) => e,
        }
    }

    fn locals_of(fake: &FakeBackend) -> Vec<String> {
        let plan = fake.loaded.as_ref().expect("a plan was applied");
        plan.locals().iter().map(|l| l.id.to_string()).collect()
    }

    #[test]
    fn apply_chooses_endpoints_by_this_hosts_addresses() {
        let mut fake = FakeBackend::new();
        // payments-api's v6 address and checkout's v4 one; 198.18.9.9 is nobody's.
        let out = apply(
            &example(),
            &[],
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            true,
            &mut fake,
            false,
            addresses(&["127.0.0.1", "2001:db8:1::10", "198.18.2.10", "198.18.9.9"]),
        )
        .unwrap();
        assert_eq!(locals_of(&fake), ["payments/payments-api", "web/checkout"]);
        assert!(
            out.stdout.starts_with(
                "local endpoints (by this host's addresses):\n  payments/payments-api (2001:db8:1::10)\n  web/checkout (198.18.2.10)\n"
            ),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains("applied table inet netpol in one transaction"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("2 of 2 local endpoints isolated"),
            "{}",
            out.stdout
        );
    }

    #[test]
    fn apply_revokes_established_flows_the_ruleset_denies_unless_told_not_to() {
        let flow = |src: &str, dst: &str, dport: u16| {
            let ip = |s: &str| s.parse().unwrap();
            crate::netlink::Flow::ports(6, ip(src), 40000, ip(dst), dport, u32::from(dport))
        };
        // frontend (198.18.2.11) -> payments-api (this host) is denied; checkout's
        // call is allowed.
        let denied = flow("198.18.2.11", "198.18.1.10", 8080);
        let allowed = flow("198.18.2.10", "198.18.1.10", 8080);
        for revoke in [true, false] {
            let mut fake = FakeBackend::new();
            fake.conntrack = vec![denied, allowed];
            let out = apply(
                &example(),
                &[],
                &plan::Options {
                    deny: DenyAction::Drop,
                    ..Default::default()
                },
                revoke,
                &mut fake,
                false,
                addresses(&["198.18.1.10"]),
            )
            .unwrap();
            if revoke {
                assert_eq!(fake.conntrack, vec![allowed]);
                assert!(
                    out.stdout.contains(
                        "revoked 1 of 2 established flows that the ruleset no longer allows \
                         (1 TCP sockets reset)\n  tcp 198.18.2.11:40000 -> 198.18.1.10:8080 \
                         (payments/payments-api, ingress)\n"
                    ),
                    "{}",
                    out.stdout
                );
            } else {
                assert_eq!(fake.conntrack, vec![denied, allowed]);
                assert!(!out.stdout.contains("revoked"), "{}", out.stdout);
            }
        }
    }

    #[test]
    fn apply_with_no_local_endpoint_says_so() {
        let mut fake = FakeBackend::new();
        let out = apply(
            &example(),
            &[],
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            true,
            &mut fake,
            false,
            addresses(&["198.18.9.9"]),
        )
        .unwrap();
        assert!(out.stdout.starts_with(
            "no inventory endpoint has an address of this host: the table isolates no endpoint\n"
        ));
        let plan = fake.loaded.as_ref().unwrap();
        assert!(plan.locals().is_empty());
        assert!(
            plan.chains().iter().all(|c| c.hook().is_some()),
            "only base chains"
        );
    }

    #[test]
    fn apply_named_endpoints_with_reject() {
        let mut fake = FakeBackend::new();
        let out = apply(
            &example(),
            &[ObjectName::new("web", "checkout")],
            &plan::Options {
                deny: DenyAction::Reject,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        )
        .unwrap();
        assert_eq!(locals_of(&fake), ["web/checkout"]);
        assert!(out
            .stdout
            .starts_with("local endpoints (named):\n  web/checkout\n"));
        let plan = fake.loaded.as_ref().unwrap();
        assert!(plan
            .chains()
            .iter()
            .flat_map(|c| c.rules())
            .any(|r| matches!(
                r,
                plan::Stmt::Deny {
                    action: DenyAction::Reject,
                    ..
                }
            )));
    }

    #[test]
    fn invalid_input_never_reaches_the_kernel() {
        let mut fake = FakeBackend::new();
        let mut paths = example();
        paths.inventory = vec![PathBuf::from("/nonexistent/inventory")];
        let err = failure(apply(
            &paths,
            &[],
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        ));
        assert!(
            format!("{err:#}").contains("nothing was compiled"),
            "{err:#}"
        );
        let err = failure(apply(
            &example(),
            &[ObjectName::new("web", "nobody")],
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        ));
        assert!(
            format!("{err:#}").contains("no endpoint web/nobody"),
            "{err:#}"
        );
        assert_eq!(fake.applies, 0);
        assert!(fake.loaded.is_none());
    }

    #[test]
    fn a_kernel_rejection_is_an_error_and_keeps_the_loaded_plan() {
        let mut fake = FakeBackend::new();
        let web = [ObjectName::new("web", "checkout")];
        apply(
            &example(),
            &web,
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        )
        .unwrap();
        let before = fake.loaded.clone();
        fake.fail_next("set out_web_checkout_v4_ports", libc::ENOMEM);
        let err = failure(apply(
            &example(),
            &web,
            &plan::Options {
                deny: DenyAction::Reject,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        ));
        let text = format!("{err:#}");
        assert!(
            text.contains("the kernel rejected the batch at set out_web_checkout_v4_ports"),
            "{text}"
        );
        assert_eq!(fake.loaded, before);
    }

    #[test]
    fn show_and_flush_report_what_the_kernel_holds() {
        let mut fake = FakeBackend::new();
        assert_eq!(
            show(&mut fake, ReportFormat::Table, None).unwrap().stdout,
            "no table inet netpol is loaded\n"
        );
        let json = show(&mut fake, ReportFormat::Json, None).unwrap().stdout;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["table"].is_null());

        let locals = [
            ObjectName::new("payments", "payments-api"),
            ObjectName::new("web", "checkout"),
        ];
        apply(
            &example(),
            &locals,
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
            false,
            &mut fake,
            false,
            no_addresses_asked,
        )
        .unwrap();
        let plan = fake.loaded.clone().unwrap();
        let text = show(&mut fake, ReportFormat::Table, None).unwrap().stdout;
        let head = format!(
            "table inet netpol: {} chains, {} rules, {} sets and maps, {} elements\n",
            plan.chains().len(),
            plan.rule_count(),
            plan.sets().len() + plan.maps().len(),
            plan.element_count()
        );
        assert!(text.starts_with(&head), "{text}");
        assert!(
            text.contains("  payments/payments-api  ingress          0      0\n"),
            "{text}"
        );
        assert!(
            text.contains("  web/checkout           egress           0      0\n"),
            "{text}"
        );

        let json = show(&mut fake, ReportFormat::Json, None).unwrap().stdout;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["table"]["name"], "netpol");
        assert_eq!(v["denies"].as_array().unwrap().len(), 2);
        assert_eq!(v["denies"][1]["endpoint"], "web/checkout");
        assert_eq!(v["denies"][1]["direction"], "egress");

        assert_eq!(
            flush(&mut fake, false).unwrap().stdout,
            "removed table inet netpol\n"
        );
        assert_eq!(
            flush(&mut fake, false).unwrap().stdout,
            "no table inet netpol to remove\n"
        );
    }
}
