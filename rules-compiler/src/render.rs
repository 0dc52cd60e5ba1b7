//! Render: the plan as `nft -f` text. Deterministic, so two compiles diff cleanly, and
//! accepted by `nft -c -f` as it is. Knows nftables syntax, not policy semantics.
//!
//! The script is one transaction that replaces the table whether or not it exists:
//! `table inet netpol {}` creates it if missing, `delete table` removes it with all it
//! holds, and the full table follows. nft applies the file atomically, so the host is
//! never without its ruleset. Elements go one per line so large sets diff line by line;
//! closing braces stand on their own lines (nft 1.0.6 misreads some other layouts).

use std::fmt::{self, Write};
use std::net::IpAddr;

use crate::plan::log_prefix;
use crate::plan::{
    AddrField, AddrProtoPort, AddrRange, Chain, DenyAction, Family, Hook, Plan, Set, SetElements,
    Stmt, TierVerdict, VerdictMap, ICMPV6_ALWAYS, PORT_PROTOCOLS, TABLE_COMMENT,
};

/// The plan as an nft script that replaces the netpol table in one transaction.
pub fn nft(plan: &Plan) -> String {
    let mut out = String::new();
    write_plan(&mut out, plan).expect("writing to a String cannot fail");
    out
}

fn write_plan(out: &mut String, plan: &Plan) -> fmt::Result {
    let t = &plan.table();
    writeln!(out, "table inet {t} {{}}")?;
    writeln!(out, "delete table inet {t}")?;
    writeln!(out, "table inet {t} {{")?;
    writeln!(out, "\tcomment \"{TABLE_COMMENT}\"")?;
    for limit in plan.limits() {
        writeln!(
            out,
            "\tlimit {} {{ rate {}/second burst {} packets }}",
            limit.name(),
            limit.rate(),
            limit.burst()
        )?;
    }
    for set in plan.sets() {
        write_set(out, set)?;
    }
    for map in plan.maps() {
        write_map(out, map)?;
    }
    for chain in plan.chains() {
        write_chain(out, chain)?;
    }
    writeln!(out, "}}")
}

fn addr_type(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn addr_expr(family: Family, field: AddrField) -> &'static str {
    match (family, field) {
        (Family::V4, AddrField::Saddr) => "ip saddr",
        (Family::V4, AddrField::Daddr) => "ip daddr",
        (Family::V6, AddrField::Saddr) => "ip6 saddr",
        (Family::V6, AddrField::Daddr) => "ip6 daddr",
    }
}

/// Writes `elements = { … }` with one element per line, or nothing when empty.
fn write_elements<I>(out: &mut String, items: I) -> fmt::Result
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let mut items = items.into_iter().peekable();
    if items.peek().is_none() {
        return Ok(());
    }
    writeln!(out, "\t\telements = {{")?;
    while let Some(item) = items.next() {
        let sep = if items.peek().is_some() { "," } else { "" };
        writeln!(out, "\t\t\t{item}{sep}")?;
    }
    writeln!(out, "\t\t}}")
}

fn write_set(out: &mut String, set: &Set) -> fmt::Result {
    let kind = if set.elements().is_map() {
        "map"
    } else {
        "set"
    };
    writeln!(out, "\t{kind} {} {{", set.name())?;
    let ty = addr_type(set.family());
    match &set.elements() {
        SetElements::AddrVerdict(v) => {
            writeln!(out, "\t\ttype {ty} : verdict; flags interval;")?;
            write_elements(
                out,
                v.iter()
                    .map(|(k, verdict)| format!("{} : {}", Range(k), Goto(verdict))),
            )?;
        }
        SetElements::AddrProtoPortVerdict(v) => {
            writeln!(
                out,
                "\t\ttype {ty} . inet_proto . inet_service : verdict; flags interval;"
            )?;
            write_elements(
                out,
                v.iter()
                    .map(|(k, verdict)| format!("{} : {}", Element(k), Goto(verdict))),
            )?;
        }
        SetElements::Addr(v) => {
            writeln!(out, "\t\ttype {ty}; flags interval;")?;
            write_elements(out, v.iter().map(Range))?;
        }
        SetElements::AddrProtoPort(v) => {
            writeln!(
                out,
                "\t\ttype {ty} . inet_proto . inet_service; flags interval;"
            )?;
            write_elements(out, v.iter().map(Element))?;
        }
    }
    writeln!(out, "\t}}")
}

fn write_map(out: &mut String, map: &VerdictMap) -> fmt::Result {
    writeln!(out, "\tmap {} {{", map.name())?;
    writeln!(out, "\t\ttype {} : verdict;", addr_type(map.family()))?;
    write_elements(
        out,
        map.elements()
            .iter()
            .map(|(ip, chain)| format!("{ip} : jump {chain}")),
    )?;
    writeln!(out, "\t}}")
}

fn write_chain(out: &mut String, chain: &Chain) -> fmt::Result {
    writeln!(out, "\tchain {} {{", chain.name())?;
    if let Some(hook) = chain.hook() {
        let hook = match hook {
            Hook::Input => "input",
            Hook::Output => "output",
        };
        writeln!(
            out,
            "\t\ttype filter hook {hook} priority filter; policy accept;"
        )?;
    }
    for stmt in chain.rules() {
        write_stmt(out, stmt)?;
    }
    writeln!(out, "\t}}")
}

/// One statement as one or more rules (a reject needs one per reject type).
fn write_stmt(out: &mut String, stmt: &Stmt) -> fmt::Result {
    match stmt {
        Stmt::CtEstablishedAccept => writeln!(out, "\t\tct state established,related accept"),
        Stmt::CtInvalidDrop => writeln!(out, "\t\tct state invalid drop"),
        Stmt::LoopbackAccept(Hook::Input) => writeln!(out, "\t\tiifname \"lo\" accept"),
        Stmt::LoopbackAccept(Hook::Output) => writeln!(out, "\t\toifname \"lo\" accept"),
        Stmt::NeighbourDiscoveryAccept => {
            let types: Vec<String> = ICMPV6_ALWAYS.iter().map(|&t| icmpv6_type(t)).collect();
            writeln!(out, "\t\ticmpv6 type {{ {} }} accept", types.join(", "))
        }
        Stmt::Dispatch { family, field, map } => {
            writeln!(out, "\t\t{} vmap @{map}", addr_expr(*family, *field))
        }
        Stmt::AcceptAddr { family, field, set } => {
            writeln!(out, "\t\t{} @{set} accept", addr_expr(*family, *field))
        }
        Stmt::AcceptAddrProtoPort { family, field, set } => writeln!(
            out,
            "\t\t{} . meta l4proto . th dport @{set} accept",
            addr_expr(*family, *field)
        ),
        Stmt::TierPorts { family, field, map } => writeln!(
            out,
            "\t\t{} . meta l4proto . th dport vmap @{map}",
            addr_expr(*family, *field)
        ),
        Stmt::TierClass { family, field, map } => {
            writeln!(out, "\t\t{} vmap @{map}", addr_expr(*family, *field))
        }
        Stmt::TierOther { family, field, map } => {
            let not: Vec<String> = PORT_PROTOCOLS
                .iter()
                .map(|p| format!("meta l4proto != {p}"))
                .collect();
            writeln!(
                out,
                "\t\t{} {} vmap @{map}",
                not.join(" "),
                addr_expr(*family, *field)
            )
        }
        Stmt::Log {
            verdict,
            direction,
            group,
            limit,
        } => writeln!(
            out,
            "\t\tlimit name \"{limit}\" counter log prefix \"{}\" group {group}",
            log_prefix(*verdict, *direction)
        ),
        Stmt::Audit { comment } => writeln!(out, "\t\tcounter accept comment \"{comment}\""),
        Stmt::Deny { action, comment } => match action {
            DenyAction::Drop => writeln!(out, "\t\tcounter drop comment \"{comment}\""),
            DenyAction::Reject => {
                // Counted once, then the reject that fits the protocol: a TCP reset makes
                // clients fail fast; everything else gets an ICMP(v6) prohibited.
                writeln!(out, "\t\tcounter comment \"{comment}\"")?;
                writeln!(out, "\t\tmeta l4proto tcp reject with tcp reset")?;
                writeln!(out, "\t\treject with icmpx admin-prohibited")
            }
        },
    }
}

/// nft's name for an ICMPv6 type, so the listing reads like the script.
fn icmpv6_type(t: u8) -> String {
    match t {
        130 => "mld-listener-query".into(),
        131 => "mld-listener-report".into(),
        132 => "mld-listener-done".into(),
        133 => "nd-router-solicit".into(),
        134 => "nd-router-advert".into(),
        135 => "nd-neighbor-solicit".into(),
        136 => "nd-neighbor-advert".into(),
        143 => "mld2-listener-report".into(),
        other => other.to_string(),
    }
}

fn bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// An address range as nft writes it: one address, a prefix when the range is exactly
/// one, else `first-last`.
struct Range<'a>(&'a AddrRange);

impl fmt::Display for Range<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AddrRange { start, end } = *self.0;
        if start == end {
            return write!(f, "{start}");
        }
        let ((lo, width), (hi, _)) = (bits(start), bits(end));
        // A prefix: the span is 2^k - 1 and `lo` has the low k bits clear.
        let span = hi - lo;
        if span & span.wrapping_add(1) == 0 && lo & span == 0 {
            let len = width - span.count_ones();
            return write!(f, "{start}/{len}");
        }
        write!(f, "{start}-{end}")
    }
}

/// A tier map element's verdict: `accept` or `goto CHAIN`.
struct Goto<'a>(&'a TierVerdict);

impl fmt::Display for Goto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TierVerdict::Accept => f.write_str("accept"),
            TierVerdict::Goto(chain) => write!(f, "goto {chain}"),
            TierVerdict::Jump(chain) => write!(f, "jump {chain}"),
        }
    }
}

/// `address . protocol . ports`.
struct Element<'a>(&'a AddrProtoPort);

impl fmt::Display for Element<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{} . ", Range(&e.addr))?;
        match e.proto {
            6 => f.write_str("tcp")?,
            17 => f.write_str("udp")?,
            132 => f.write_str("sctp")?,
            other => write!(f, "{other}")?,
        }
        let (lo, hi) = e.ports;
        if lo == hi {
            write!(f, " . {lo}")
        } else {
            write!(f, " . {lo}-{hi}")
        }
    }
}

#[cfg(test)]
mod tests;
