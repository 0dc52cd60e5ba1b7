//! Revocation: which established connections a newly applied plan no longer allows.
//!
//! After a reload has put a plan into the kernel, connections that started under the
//! old rules keep flowing: `ct state established,related accept` comes before any
//! policy. [`decide`] judges every conntrack entry of a local endpoint as the table
//! would judge its first packet today, with the very plan the kernel got
//! ([`Plan::verdict`]), and picks those it denies; [`crate::state`] has the backend cut
//! them (`Backend::cut`). The hooks see a flow's first packet with `saddr` = the
//! original source, `daddr` = the reply's source and `dport` = the reply's source port:
//! the addresses after any destination NAT, as the input and output hooks (priority
//! filter) see them; without NAT these are the original destination and port.
//!
//! What it must not do: touch a flow the plan allows, a forwarded flow (neither end is
//! an address of this host: the table has no forward hook), or loopback traffic (to or
//! from 127.0.0.0/8 or ::1, or between two addresses of this host, which goes over `lo`
//! and which the table always accepts). [`decide`] is pure: the flows and this host's
//! addresses come in as values. [`revoke`] runs it against a [`Backend`], for netpold
//! and `netpolctl apply` alike.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rules_compiler::model::{Direction, ObjectName};
use rules_compiler::plan::{Hook, Packet, Plan};
use serde::Serialize;

use crate::netlink::{Backend, CutStats, Flow, FlowCut, KernelError, LocalSide, L4};

/// How many cut flows a log line names; the rest are counted.
pub const LOGGED_FLOWS: usize = 50;

/// A flow the plan no longer allows, and whose rule says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revoked {
    /// The flow and its local end.
    pub cut: FlowCut,
    /// The local endpoint whose chain denies it.
    pub endpoint: ObjectName,
    /// Which of its directions: ingress (the peer opened it) or egress (it did).
    pub direction: Direction,
}

impl fmt::Display for Revoked {
    /// `tcp 198.18.0.2:40000 -> 198.18.0.1:7000 (lab/server, ingress)`: the first
    /// packet as the hook saw it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = first_packet(&self.cut.flow);
        let sport = self.cut.flow.orig.l4.src_port();
        let proto = proto_name(self.cut.flow.proto);
        let end = |f: &mut fmt::Formatter<'_>, ip: IpAddr, port: Option<u16>| match (ip, port) {
            (IpAddr::V6(a), Some(port)) => write!(f, "[{a}]:{port}"),
            (a, Some(port)) => write!(f, "{a}:{port}"),
            (a, None) => write!(f, "{a}"),
        };
        write!(f, "{proto} ")?;
        end(f, p.saddr, sport)?;
        f.write_str(" -> ")?;
        end(f, p.daddr, self.cut.flow.reply.l4.src_port())?;
        if let L4::Icmp { kind, .. } = self.cut.flow.orig.l4 {
            write!(f, " type {kind}")?;
        }
        write!(f, " ({}, {})", self.endpoint, self.direction)
    }
}

fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

/// The first packet of a flow as the filter hooks saw it (see the module doc).
pub fn first_packet(flow: &Flow) -> Packet {
    Packet {
        saddr: flow.orig.src,
        daddr: flow.reply.src,
        proto: flow.proto,
        dport: flow.reply.l4.src_port().unwrap_or(0),
        icmpv6_type: match flow.orig.l4 {
            L4::Icmp { kind, .. } if flow.proto == 58 => Some(kind),
            _ => None,
        },
    }
}

/// Loopback and unspecified addresses: their traffic goes over `lo`, which the table
/// always accepts.
fn on_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback() || a.is_unspecified(),
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The flows among `flows` that `plan` would deny if they started now, judged at this
/// host's input hook (a local endpoint is the destination) or output hook (it is the
/// source). `host` holds this host's addresses. Sorted, without repeats.
pub fn decide(plan: &Plan, flows: &[Flow], host: &BTreeSet<IpAddr>) -> Vec<Revoked> {
    let owners: HashMap<&str, (&ObjectName, Direction)> = plan
        .locals()
        .iter()
        .flat_map(|l| {
            [Direction::Ingress, Direction::Egress]
                .into_iter()
                .filter_map(move |d| l.chain(d).map(|c| (c, (&l.id, d))))
        })
        .collect();
    let mut out: Vec<Revoked> = Vec::new();
    for flow in flows {
        let p = first_packet(flow);
        if on_loopback(&p.saddr) || on_loopback(&p.daddr) {
            continue;
        }
        let (from_host, to_host) = (host.contains(&p.saddr), host.contains(&p.daddr));
        let (hook, local) = match (from_host, to_host) {
            // Between two addresses of this host: over lo.
            (true, true) => continue,
            (false, true) => (Hook::Input, LocalSide::Responder),
            (true, false) => (Hook::Output, LocalSide::Initiator),
            // Forwarded: not this table's.
            (false, false) => continue,
        };
        let verdict = plan.verdict(hook, &p);
        if verdict.is_accept() {
            continue;
        }
        let Some(&(endpoint, direction)) = verdict.chain.and_then(|c| owners.get(c)) else {
            continue;
        };
        out.push(Revoked {
            cut: FlowCut { flow: *flow, local },
            endpoint: endpoint.clone(),
            direction,
        });
    }
    out.sort_by_key(|r| r.cut);
    out.dedup_by(|a, b| a.cut == b.cut);
    out
}

/// The log's list of cut flows: the first [`LOGGED_FLOWS`], one per line, then how many
/// more.
pub fn describe(revoked: &[Revoked]) -> String {
    let mut s = String::new();
    for r in revoked.iter().take(LOGGED_FLOWS) {
        s.push_str(&format!("\n  {r}"));
    }
    if revoked.len() > LOGGED_FLOWS {
        s.push_str(&format!("\n  … and {} more", revoked.len() - LOGGED_FLOWS));
    }
    s
}

/// Why a revocation did not happen or did not finish. The ruleset is in force either
/// way; only established flows it no longer allows may go on.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// This host's addresses could not be read.
    #[error("reading this host's addresses: {0}")]
    Addresses(io::Error),
    /// The conntrack table could not be read.
    #[error("reading the conntrack table: {0}")]
    Dump(KernelError),
    /// Cutting failed part-way.
    #[error("cutting {flows} flows: {err}")]
    Cut {
        /// How many were to be cut.
        flows: usize,
        /// Why.
        err: KernelError,
    },
}

/// What a revocation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocation {
    /// Conntrack entries looked at.
    pub seen: usize,
    /// The flows the plan denies, all of which were cut (or gone already).
    pub revoked: Vec<Revoked>,
    /// What the kernel did.
    pub stats: CutStats,
    /// Time to read, decide and cut.
    pub took: Duration,
}

/// Reads every conntrack entry, decides with `plan` (which the kernel holds now) and
/// cuts what it denies. `host` gives this host's addresses.
pub fn revoke<B: Backend + ?Sized>(
    backend: &mut B,
    plan: &Plan,
    host: impl FnOnce() -> io::Result<BTreeSet<IpAddr>>,
) -> Result<Revocation, RevokeError> {
    let started = Instant::now();
    let host = host().map_err(RevokeError::Addresses)?;
    let flows = backend.flows().map_err(RevokeError::Dump)?;
    let revoked = decide(plan, &flows, &host);
    let stats = if revoked.is_empty() {
        CutStats::default()
    } else {
        let cuts: Vec<FlowCut> = revoked.iter().map(|r| r.cut).collect();
        backend.cut(&cuts).map_err(|err| RevokeError::Cut {
            flows: cuts.len(),
            err,
        })?
    };
    Ok(Revocation {
        seen: flows.len(),
        revoked,
        stats,
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::Tuple;
    use rules_compiler::model::{Inventory, Model};
    use rules_compiler::plan::{self, Options};
    use rules_compiler::resolve::Index;

    const INVENTORY: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: lab}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: server, labels: {app: server}}
ips: [198.18.100.1, \"2001:db8::1\"]
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: client, labels: {app: client}}
ips: [198.18.100.2, \"2001:db8::2\"]
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: other, labels: {app: other}}
ips: [198.18.100.3]
";

    /// The server takes 7000/TCP from the client only, and may send to the client's
    /// 53/UDP only.
    const POLICY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: lab, name: server}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 7000}]
  egress:
  - to: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: UDP, port: 53}]
";

    fn plan_for(locals: &[&str]) -> Plan {
        let input = |name: &str, text: &str| rules_compiler::load::Input {
            path: name.into(),
            text: text.to_string().into(),
        };
        let loaded = rules_compiler::load_model(
            &[input("policy.yaml", POLICY)],
            &[input("inventory.yaml", INVENTORY)],
        )
        .expect("the inputs load");
        let model: &Model = &loaded.model;
        let index = Index::new(model);
        let inv: &Inventory = &model.inventory;
        let ids: Vec<usize> = locals
            .iter()
            .map(|l| {
                inv.endpoints
                    .iter()
                    .position(|e| e.id.to_string() == *l)
                    .unwrap()
            })
            .collect();
        plan::build(&index, &ids, &Options::default())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A flow from `src:sport` to `dst:dport` without NAT.
    fn flow(proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        let id = u32::from(sport) << 8 | u32::from(proto);
        Flow::ports(proto, ip(src), sport, ip(dst), dport, id)
    }

    fn host() -> BTreeSet<IpAddr> {
        ["198.18.100.1", "2001:db8::1", "127.0.0.1", "::1"]
            .iter()
            .map(|s| ip(s))
            .collect()
    }

    fn cut_ids(revoked: &[Revoked]) -> Vec<u32> {
        revoked.iter().map(|r| r.cut.flow.id).collect()
    }

    #[test]
    fn only_flows_the_plan_denies_are_cut_each_with_its_local_end() {
        let plan = plan_for(&["lab/server"]);
        let allowed_in = flow(6, "198.18.100.2", 40000, "198.18.100.1", 7000);
        let denied_port = flow(6, "198.18.100.2", 40001, "198.18.100.1", 7001);
        let denied_peer = flow(6, "198.18.100.3", 40002, "198.18.100.1", 7000);
        let allowed_out = flow(17, "198.18.100.1", 40003, "198.18.100.2", 53);
        let denied_out = flow(6, "198.18.100.1", 40004, "198.18.100.2", 7000);
        let denied_v6 = flow(6, "2001:db8::3", 40005, "2001:db8::1", 7000);
        let allowed_v6 = flow(6, "2001:db8::2", 40006, "2001:db8::1", 7000);
        let flows = [
            allowed_in,
            denied_port,
            denied_peer,
            allowed_out,
            denied_out,
            denied_v6,
            allowed_v6,
        ];
        let revoked = decide(&plan, &flows, &host());
        let got: BTreeSet<(u32, LocalSide, Direction)> = revoked
            .iter()
            .map(|r| (r.cut.flow.id, r.cut.local, r.direction))
            .collect();
        let want: BTreeSet<(u32, LocalSide, Direction)> = [
            (denied_port.id, LocalSide::Responder, Direction::Ingress),
            (denied_peer.id, LocalSide::Responder, Direction::Ingress),
            (denied_out.id, LocalSide::Initiator, Direction::Egress),
            (denied_v6.id, LocalSide::Responder, Direction::Ingress),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert_eq!(revoked.len(), 4, "no repeats");
        let ids: BTreeSet<u32> = cut_ids(&revoked).into_iter().collect();
        let want: BTreeSet<u32> = [denied_port.id, denied_peer.id, denied_out.id, denied_v6.id]
            .into_iter()
            .collect();
        assert_eq!(ids, want);
        assert!(revoked
            .iter()
            .all(|r| r.endpoint == ObjectName::parse("lab/server").unwrap()));
        let shown = describe(&revoked);
        assert!(
            shown.contains("tcp 198.18.100.3:40002 -> 198.18.100.1:7000 (lab/server, ingress)"),
            "{shown}"
        );
        assert!(
            shown.contains("tcp 198.18.100.1:40004 -> 198.18.100.2:7000 (lab/server, egress)"),
            "{shown}"
        );
        assert!(
            shown.contains("tcp [2001:db8::3]:40005 -> [2001:db8::1]:7000"),
            "{shown}"
        );
    }

    #[test]
    fn a_nated_flow_is_judged_by_the_address_and_port_the_hook_saw() {
        let plan = plan_for(&["lab/server"]);
        // The client called 198.18.50.50:80, which this host's prerouting DNATs to the
        // server's 7000: the input hook saw 198.18.100.1:7000, which the client may
        // reach. Judged by the original destination, it would be cut.
        let mut dnat = flow(6, "198.18.100.2", 40000, "198.18.50.50", 80);
        dnat.reply.src = ip("198.18.100.1");
        dnat.reply.l4 = L4::Ports {
            src: 7000,
            dst: 40000,
        };
        assert_eq!(decide(&plan, &[dnat], &host()), vec![]);
        // The same DNAT to 7001, which nobody may reach: cut, and described as seen.
        let mut denied = dnat;
        denied.id += 1;
        denied.reply.l4 = L4::Ports {
            src: 7001,
            dst: 40000,
        };
        let revoked = decide(&plan, &[denied], &host());
        assert_eq!(cut_ids(&revoked), vec![denied.id]);
        assert_eq!(revoked[0].cut.local, LocalSide::Responder);
        assert_eq!(
            revoked[0].to_string(),
            "tcp 198.18.100.2:40000 -> 198.18.100.1:7001 (lab/server, ingress)"
        );
        // The socket to destroy is the server's, as it sees the connection.
        let s = revoked[0].cut.socket().unwrap();
        assert_eq!(
            (s.local, s.local_port, s.remote, s.remote_port),
            (ip("198.18.100.1"), 7001, ip("198.18.100.2"), 40000)
        );
    }

    #[test]
    fn forwarded_loopback_and_host_internal_flows_are_never_touched() {
        let plan = plan_for(&["lab/server"]);
        // Denied by the plan were they judged, but none reaches a hook of this table
        // with a new packet off lo:
        let flows = [
            // forwarded: neither end is this host's (the server's address is elsewhere)
            flow(6, "198.18.100.3", 1, "198.18.100.9", 7000),
            // loopback addresses
            flow(6, "127.0.0.1", 2, "127.0.0.1", 7001),
            flow(6, "::1", 3, "::1", 7001),
            // between two addresses of this host: over lo
            flow(6, "2001:db8::1", 4, "198.18.100.1", 7001),
        ];
        let mut both = flow(6, "198.18.100.1", 5, "198.18.100.1", 7001);
        both.id = 99;
        let mut all = flows.to_vec();
        all.push(both);
        assert_eq!(decide(&plan, &all, &host()), vec![]);
        // A local endpoint named with --local whose address is not on this host is
        // not reached through this host's hooks either.
        let elsewhere: BTreeSet<IpAddr> = [ip("198.18.100.7")].into_iter().collect();
        let denied = flow(6, "198.18.100.3", 6, "198.18.100.1", 7000);
        assert_eq!(decide(&plan, &[denied], &elsewhere), vec![]);
        assert_eq!(cut_ids(&decide(&plan, &[denied], &host())), vec![denied.id]);
    }

    #[test]
    fn endpoints_that_are_not_isolated_or_not_local_keep_their_flows() {
        // Only the client is local: it is not isolated in any direction.
        let plan = plan_for(&["lab/client"]);
        let host: BTreeSet<IpAddr> = [ip("198.18.100.2")].into_iter().collect();
        let flows = [
            flow(6, "198.18.100.3", 1, "198.18.100.2", 22),
            flow(17, "198.18.100.2", 2, "198.18.100.3", 9),
        ];
        assert_eq!(decide(&plan, &flows, &host), vec![]);
    }

    #[test]
    fn icmp_is_judged_without_ports_and_the_log_list_is_capped() {
        let plan = plan_for(&["lab/server"]);
        let ping = Flow {
            proto: 1,
            orig: Tuple {
                src: ip("198.18.100.2"),
                dst: ip("198.18.100.1"),
                l4: L4::Icmp {
                    id: 7,
                    kind: 8,
                    code: 0,
                },
            },
            reply: Tuple {
                src: ip("198.18.100.1"),
                dst: ip("198.18.100.2"),
                l4: L4::Icmp {
                    id: 7,
                    kind: 0,
                    code: 0,
                },
            },
            zone: 0,
            id: 1,
        };
        let revoked = decide(&plan, &[ping], &host());
        assert_eq!(cut_ids(&revoked), vec![1]);
        assert_eq!(
            revoked[0].to_string(),
            "icmp 198.18.100.2 -> 198.18.100.1 type 8 (lab/server, ingress)"
        );
        assert_eq!(revoked[0].cut.socket(), None);

        let many: Vec<Flow> = (0..60)
            .map(|i| flow(6, "198.18.100.3", 30000 + i, "198.18.100.1", 7000))
            .collect();
        let revoked = decide(&plan, &many, &host());
        assert_eq!(revoked.len(), 60);
        let shown = describe(&revoked);
        assert_eq!(shown.lines().count(), 1 + LOGGED_FLOWS + 1, "{shown}");
        assert!(shown.ends_with("\n  … and 10 more"), "{shown}");
    }
}
