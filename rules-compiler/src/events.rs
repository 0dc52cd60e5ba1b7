//! Events: what a logged packet is about — its endpoint, its peer, the policies that
//! deny (or would deny) it and the audit policies that would allow it, or the
//! ClusterNetworkPolicy rule that denied it.
//!
//! The kernel logs a denied or audited packet with a prefix that says only the verdict
//! and the direction ([`crate::plan::log_prefix`]); everything else an event names is
//! decided here, from the packet and the current model, with `resolve`'s rules (the
//! same as the plan's). [`expected`] is the E/F table of ARCHITECTURE.md for one
//! packet, the oracle the plan's log rules are tested against. No I/O, no clock, no
//! nftables vocabulary: reading packets, dedup and reporting are the daemon's.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Action, Direction, ObjectName, PolicyMode, Tier};
use crate::plan::{EventVerdict, Mode};
use crate::resolve::{ClusterRuleRef, EndpointId, Index, PolicyId, TierOutcome, Verdict};

/// A packet the kernel logged, as netpold reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Observed {
    /// What the packet met, from the log prefix.
    pub verdict: EventVerdict,
    /// The chain's direction, from the log prefix.
    pub direction: Direction,
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Source port; 0 for protocols without ports.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port; 0 for protocols without ports (then only rules without
    /// `ports` match it).
    pub dst_port: u16,
}

/// What an event names, judged against the current model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Judged {
    /// The local endpoint (holding the destination for ingress, the source for
    /// egress); `None` when no endpoint holds that address (any more).
    pub endpoint: Option<ObjectName>,
    /// The endpoint holding the remote address; `None` for a stranger.
    pub peer: Option<ObjectName>,
    /// For a deny, the enforced policies isolating the endpoint in that direction;
    /// for an audit, the policies that would deny it: the audit policies isolating the
    /// endpoint, or under host-wide audit the enforced ones when some isolate it.
    pub policies: Vec<ObjectName>,
    /// Audit policies one of whose rules allows the packet, when the event stands for
    /// an enforced denial (a deny, or a host-wide audit of what enforced policies
    /// deny); empty otherwise.
    pub would_allow: Vec<ObjectName>,
    /// The Admin or Baseline rule whose `Deny` the event stands for (then `policies`
    /// and `would_allow` are empty: no NetworkPolicy decided).
    pub cluster_rule: Option<ClusterRuleRef>,
}

/// The endpoint, peer and policies an observed packet is about, under host-wide `mode`.
///
/// Named ports resolve on the destination, as in [`Index::verdict`]. The answer is
/// about the model now: a packet logged before a reload is judged by the new model.
pub fn judge(index: &Index<'_>, mode: Mode, observed: &Observed) -> Judged {
    let dir = observed.direction;
    let (local, remote) = local_remote(observed);
    let name = |ep: EndpointId| index.endpoint(ep).id.clone();
    let peer = index.endpoint_at(&remote).map(name);
    let Some(ep) = index.endpoint_at(&local) else {
        return Judged {
            peer,
            ..Judged::default()
        };
    };
    let (proto, dport) = (observed.protocol, observed.dst_port);
    if let Some(by) = tier_denial(index, ep, dir, remote, proto, dport) {
        return Judged {
            endpoint: Some(name(ep)),
            peer,
            cluster_rule: Some(by),
            ..Judged::default()
        };
    }
    let enforced = index.isolating_in(ep, dir, PolicyMode::Enforce);
    let audited = index.isolating_in(ep, dir, PolicyMode::Audit);
    // Which table row the event stands for: an enforced denial (E denies) is reported
    // as `deny`, or as `audit` under host-wide audit when enforced policies isolate;
    // any other `audit` is "E allows (does not isolate), F denies".
    let enforced_denial = match observed.verdict {
        EventVerdict::Deny => true,
        EventVerdict::Audit => mode == Mode::Audit && !enforced.is_empty(),
    };
    let names = |ids: &[PolicyId]| -> Vec<ObjectName> {
        ids.iter().map(|&p| index.policy(p).id.clone()).collect()
    };
    let (policies, would_allow) = if enforced_denial {
        let allowing: Vec<PolicyId> = audited
            .iter()
            .copied()
            .filter(|&p| {
                index.allows_among(&[p], ep, dir, remote, observed.protocol, observed.dst_port)
            })
            .collect();
        (names(&enforced), names(&allowing))
    } else {
        (names(&audited), Vec::new())
    };
    Judged {
        endpoint: Some(name(ep)),
        peer,
        policies,
        would_allow,
        cluster_rule: None,
    }
}

/// The cluster rule whose `Deny` decides a packet: Admin's, or where the enforced
/// NetworkPolicies do not isolate and Admin did not decide, Baseline's.
fn tier_denial(
    index: &Index<'_>,
    ep: EndpointId,
    dir: Direction,
    remote: IpAddr,
    proto: u8,
    dport: u16,
) -> Option<ClusterRuleRef> {
    // Admin's Accept or Deny is final; its Pass or no rule goes on.
    match index.cluster_tier(Tier::Admin, ep, dir, remote, proto, dport) {
        TierOutcome::Matched {
            action: Action::Deny,
            by,
        } => return Some(by),
        TierOutcome::Matched {
            action: Action::Accept,
            ..
        } => return None,
        _ => {}
    }
    if index.verdict(ep, dir, remote, proto, dport) != Verdict::NotIsolated {
        return None;
    }
    match index.cluster_tier(Tier::Baseline, ep, dir, remote, proto, dport) {
        TierOutcome::Matched {
            action: Action::Deny,
            by,
        } => Some(by),
        _ => None,
    }
}

/// The event a new connection's first packet gives at local endpoint `local` under
/// host-wide `mode`: `None` when E and F both allow it, `Deny` when E denies it
/// (enforced), `Audit` when F denies what E allows, or E denies under host-wide audit.
/// E is the enforced policies' verdict, F the verdict with the audit policies added.
/// A cluster tier's `Deny` is a denial as E's is; its `Accept` (Admin) reports nothing.
pub fn expected(
    index: &Index<'_>,
    mode: Mode,
    local: EndpointId,
    dir: Direction,
    remote: IpAddr,
    proto: u8,
    dport: u16,
) -> Option<EventVerdict> {
    let denied = match mode {
        Mode::Enforce => EventVerdict::Deny,
        Mode::Audit => EventVerdict::Audit,
    };
    // Cluster tiers first: Admin's Accept or Deny decides; Baseline's Deny where the
    // enforced NetworkPolicies do not isolate (before anything an audit policy says).
    match index
        .cluster_tier(Tier::Admin, local, dir, remote, proto, dport)
        .action()
    {
        Some(Action::Deny) => return Some(denied),
        Some(Action::Accept) => return None,
        _ => {}
    }
    if tier_denial(index, local, dir, remote, proto, dport).is_some() {
        return Some(denied);
    }
    let enforced = index.isolating_in(local, dir, PolicyMode::Enforce);
    if !index.allows_among(&enforced, local, dir, remote, proto, dport) {
        return Some(match mode {
            Mode::Enforce => EventVerdict::Deny,
            Mode::Audit => EventVerdict::Audit,
        });
    }
    let mut all = enforced;
    all.extend(index.isolating_in(local, dir, PolicyMode::Audit));
    all.sort_unstable();
    (!index.allows_among(&all, local, dir, remote, proto, dport)).then_some(EventVerdict::Audit)
}

/// (local, remote) address of a packet in its direction.
fn local_remote(o: &Observed) -> (IpAddr, IpAddr) {
    match o.direction {
        Direction::Ingress => (o.dst, o.src),
        Direction::Egress => (o.src, o.dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol::Tcp;
    use crate::model::{Model, Peers, Ports};
    use crate::testkit::proto::{ICMP, TCP};
    use crate::testkit::*;
    use Direction::{Egress, Ingress};
    use EventVerdict::{Audit, Deny};

    const STRANGER: &str = "198.19.7.7";

    /// web/a and web/b, db/pg (named port `pg` = TCP 5432).
    fn world() -> ModelBuilder {
        ModelBuilder::new()
            .namespace("web", &[])
            .namespace("db", &[])
            .endpoint("web/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
            .endpoint("web/b", &[("app", "b")], &["198.18.0.2"])
            .endpoint("db/pg", &[("app", "pg")], &["198.18.1.1"])
            .named_ports("db/pg", &[("pg", 5432, Tcp)])
    }

    fn packet(verdict: EventVerdict, dir: Direction, src: &str, dst: &str, port: u16) -> Observed {
        Observed {
            verdict,
            direction: dir,
            protocol: TCP,
            src: ip(src),
            src_port: 40000,
            dst: ip(dst),
            dst_port: port,
        }
    }

    fn names(list: &[&str]) -> Vec<ObjectName> {
        list.iter().map(|s| oname(s)).collect()
    }

    /// The E/F table's verdict for `o` at its local endpoint, then `judge`'s answer;
    /// checks that the packet's verdict is the one the table gives.
    fn judged(model: &Model, mode: Mode, o: Observed) -> Judged {
        let index = Index::new(model);
        let (local, remote) = local_remote(&o);
        let ep = index.endpoint_at(&local).expect("a local endpoint");
        let want = expected(
            &index,
            mode,
            ep,
            o.direction,
            remote,
            o.protocol,
            o.dst_port,
        );
        assert_eq!(want, Some(o.verdict), "{o:?}");
        judge(&index, mode, &o)
    }

    /// web/a: enforced default-deny ingress plus enforced allow of web/b on 80; audit
    /// policy allowing web/b on 8080, and one allowing the stranger block on 443.
    fn both() -> Model {
        world()
            .policy(ingress_policy("web/deny", sel(&[("app", "a")]), vec![]))
            .policy(ingress_policy(
                "web/allow-b",
                sel(&[("app", "a")]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    ports(vec![tcp(80)]),
                )],
            ))
            .policy(audit(ingress_policy(
                "web/audit-b",
                sel(&[("app", "a")]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    ports(vec![tcp(8080)]),
                )],
            )))
            .policy(audit(ingress_policy(
                "web/audit-outside",
                sel(&[]),
                vec![rule(
                    peers(vec![ip_block("198.19.0.0/16", &[])]),
                    ports(vec![tcp(443)]),
                )],
            )))
            .build()
    }

    #[test]
    fn e_allows_f_allows_gives_no_event() {
        let m = both();
        let index = Index::new(&m);
        let a = ep(&index, "web/a");
        assert_eq!(
            expected(&index, Mode::Enforce, a, Ingress, ip("198.18.0.2"), TCP, 80),
            None
        );
        // web/b is isolated by nobody, and web/audit-outside selects it but allows
        // nothing from web/a: F denies what E allows.
        let b = ep(&index, "web/b");
        assert_eq!(
            expected(&index, Mode::Enforce, b, Egress, ip("198.18.0.1"), TCP, 80),
            None
        );
        assert_eq!(
            expected(&index, Mode::Enforce, b, Ingress, ip("198.18.0.1"), TCP, 80),
            Some(Audit)
        );
    }

    #[test]
    fn e_denies_f_allows_names_the_audit_policy_that_would_allow() {
        let j = judged(
            &both(),
            Mode::Enforce,
            packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", 8080),
        );
        assert_eq!(
            j,
            Judged {
                endpoint: Some(oname("web/a")),
                peer: Some(oname("web/b")),
                policies: names(&["web/allow-b", "web/deny"]),
                would_allow: names(&["web/audit-b"]),
                cluster_rule: None,
            }
        );
    }

    #[test]
    fn e_denies_f_denies_names_the_enforced_policies_only() {
        let j = judged(
            &both(),
            Mode::Enforce,
            packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", 22),
        );
        assert_eq!(j.policies, names(&["web/allow-b", "web/deny"]));
        assert_eq!(j.would_allow, Vec::<ObjectName>::new());
    }

    #[test]
    fn e_allows_f_denies_names_the_audit_policies_that_would_deny() {
        // web/b: only web/audit-outside isolates its ingress.
        let j = judged(
            &both(),
            Mode::Enforce,
            packet(Audit, Ingress, "198.18.0.1", "198.18.0.2", 80),
        );
        assert_eq!(
            j,
            Judged {
                endpoint: Some(oname("web/b")),
                peer: Some(oname("web/a")),
                policies: names(&["web/audit-outside"]),
                would_allow: vec![],
                cluster_rule: None,
            }
        );
        // web/a: both audit policies isolate, both would deny.
        let m = world()
            .policy(audit(ingress_policy("web/x", sel(&[("app", "a")]), vec![])))
            .policy(audit(ingress_policy("web/y", sel(&[]), vec![])))
            .build();
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Audit, Ingress, "198.18.0.2", "198.18.0.1", 80),
        );
        assert_eq!(j.policies, names(&["web/x", "web/y"]));
    }

    #[test]
    fn host_wide_audit_names_the_enforced_policies() {
        let m = both();
        let j = judged(
            &m,
            Mode::Audit,
            packet(Audit, Ingress, "198.18.0.2", "198.18.0.1", 8080),
        );
        assert_eq!(j.policies, names(&["web/allow-b", "web/deny"]));
        assert_eq!(j.would_allow, names(&["web/audit-b"]));
        // Where no enforced policy isolates, the audit policies are named, as under
        // enforce.
        let j = judged(
            &m,
            Mode::Audit,
            packet(Audit, Ingress, "198.18.0.1", "198.18.0.2", 80),
        );
        assert_eq!(j.policies, names(&["web/audit-outside"]));
        assert!(j.would_allow.is_empty());
    }

    #[test]
    fn a_stranger_peer_is_none_and_matches_ip_blocks_only() {
        let m = both();
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Ingress, STRANGER, "198.18.0.1", 443),
        );
        assert_eq!(j.endpoint, Some(oname("web/a")));
        assert_eq!(j.peer, None);
        assert_eq!(j.would_allow, names(&["web/audit-outside"]));
        // web/audit-b's pod selector never matches a stranger.
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Ingress, STRANGER, "198.18.0.1", 8080),
        );
        assert!(j.would_allow.is_empty());
    }

    #[test]
    fn egress_takes_the_endpoint_from_the_source_and_named_ports_from_the_peer() {
        let m = world()
            .policy(egress_policy("web/deny-out", sel(&[]), vec![]))
            .policy(audit(egress_policy(
                "web/to-pg",
                sel(&[("app", "a")]),
                vec![rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[("app", "pg")]))]),
                    ports(vec![named(Tcp, "pg")]),
                )],
            )))
            .build();
        let to_pg = |port| packet(Deny, Egress, "198.18.0.1", "198.18.1.1", port);
        let j = judged(&m, Mode::Enforce, to_pg(5432));
        assert_eq!(
            j,
            Judged {
                endpoint: Some(oname("web/a")),
                peer: Some(oname("db/pg")),
                policies: names(&["web/deny-out"]),
                would_allow: names(&["web/to-pg"]),
                cluster_rule: None,
            }
        );
        // `pg` is 5432 on db/pg only.
        assert!(judged(&m, Mode::Enforce, to_pg(5433))
            .would_allow
            .is_empty());
        // web/b is not selected by web/to-pg.
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Egress, "198.18.0.2", "198.18.1.1", 5432),
        );
        assert_eq!(j.endpoint, Some(oname("web/b")));
        assert!(j.would_allow.is_empty());
    }

    #[test]
    fn named_ports_on_ingress_resolve_on_the_local_endpoint() {
        let m = world()
            .policy(ingress_policy("db/deny", sel(&[]), vec![]))
            .policy(audit(ingress_policy(
                "db/pg",
                sel(&[]),
                vec![rule(Peers::All, ports(vec![named(Tcp, "pg")]))],
            )))
            .build();
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Ingress, "2001:db8::1", "198.18.1.1", 5432),
        );
        assert_eq!(j.would_allow, names(&["db/pg"]));
    }

    #[test]
    fn packets_without_ports_match_rules_without_ports_only() {
        let m = world()
            .policy(ingress_policy("web/deny", sel(&[]), vec![]))
            .policy(audit(ingress_policy(
                "web/all-from-b",
                sel(&[]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    Ports::All,
                )],
            )))
            .policy(audit(ingress_policy(
                "web/tcp-from-b",
                sel(&[]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    ports(vec![any_port(Tcp)]),
                )],
            )))
            .build();
        let ping = Observed {
            protocol: ICMP,
            src_port: 0,
            dst_port: 0,
            ..packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", 0)
        };
        assert_eq!(
            judged(&m, Mode::Enforce, ping).would_allow,
            names(&["web/all-from-b"])
        );
    }

    /// SCTP is judged by its own port rules: an SCTP packet to a port a TCP rule names
    /// is denied (the E/F table says so too), and only the audit policy naming SCTP
    /// would allow it.
    #[test]
    fn sctp_is_judged_by_sctp_port_rules_only() {
        use crate::model::Protocol::Sctp;
        use crate::testkit::proto::SCTP;
        let from_b = |name: &str, port| {
            audit(ingress_policy(
                name,
                sel(&[("app", "a")]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    ports(vec![port]),
                )],
            ))
        };
        let m = world()
            .policy(ingress_policy(
                "web/tcp-only",
                sel(&[("app", "a")]),
                vec![rule(
                    peers(vec![pods_in("web", sel(&[("app", "b")]))]),
                    ports(vec![tcp(9000)]),
                )],
            ))
            .policy(from_b("web/audit-sctp", port_range(Sctp, 9000, 9001)))
            .policy(from_b("web/audit-tcp", tcp(9001)))
            .build();
        let init = |port| Observed {
            protocol: SCTP,
            src_port: 40001,
            ..packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", port)
        };
        for port in [9000, 9001] {
            assert_eq!(
                judged(&m, Mode::Enforce, init(port)),
                Judged {
                    endpoint: Some(oname("web/a")),
                    peer: Some(oname("web/b")),
                    policies: names(&["web/tcp-only"]),
                    would_allow: names(&["web/audit-sctp"]),
                    cluster_rule: None,
                },
                "SCTP {port}"
            );
        }
        // TCP 9000 is allowed: no event; TCP 9001 would be allowed by the TCP one only.
        let index = Index::new(&m);
        let a = ep(&index, "web/a");
        let b = ip("198.18.0.2");
        assert_eq!(
            expected(&index, Mode::Enforce, a, Ingress, b, TCP, 9000),
            None
        );
        let tcp_9001 = packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", 9001);
        assert_eq!(
            judged(&m, Mode::Enforce, tcp_9001).would_allow,
            names(&["web/audit-tcp"])
        );
    }

    #[test]
    fn an_address_of_no_endpoint_names_nothing() {
        let m = both();
        let index = Index::new(&m);
        let j = judge(
            &index,
            Mode::Enforce,
            &packet(Deny, Ingress, "198.18.0.2", STRANGER, 80),
        );
        assert_eq!(
            j,
            Judged {
                peer: Some(oname("web/b")),
                ..Judged::default()
            }
        );
    }

    /// `both()` plus an Admin deny of web/b → web/a on TCP 8080 (which an audit policy
    /// allows), an Admin accept of the strangers' block, and a Baseline deny of every
    /// endpoint.
    fn tiers() -> Model {
        use crate::model::Action::{Accept as CAccept, Deny as CDeny};
        use crate::model::Tier::{Admin, Baseline};
        let web_b = || cpeer_pods(sel(&[]), sel(&[("app", "b")]));
        let mut m = both();
        m.cluster_policies = vec![
            cnp(
                "guard",
                Admin,
                10,
                subject_ns(sel(&[])),
                vec![
                    named_rule(
                        "no-8080",
                        crule(
                            CDeny,
                            vec![web_b()],
                            Some(vec![crate::model::ClusterPort::Protocol {
                                protocol: Tcp,
                                ports: Some((8080, 8080)),
                            }]),
                        ),
                    ),
                    crule(CAccept, vec![networks(&["198.19.0.0/16"])], None),
                ],
                vec![],
            ),
            cnp(
                "floor",
                Baseline,
                10,
                subject_ns(sel(&[])),
                vec![crule(CDeny, vec![cpeer_ns(sel(&[]))], None)],
                vec![],
            ),
        ];
        m
    }

    #[test]
    fn a_cluster_tiers_deny_is_an_event_naming_its_rule_and_no_policy() {
        let m = tiers();
        let index = Index::new(&m);
        // Admin denies what an audit policy would allow: the rule, nothing else.
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Ingress, "198.18.0.2", "198.18.0.1", 8080),
        );
        let rule = j.cluster_rule.clone().expect("a cluster rule");
        assert_eq!(
            (rule.tier, rule.policy.as_str(), rule.rule),
            (Tier::Admin, "guard", 0)
        );
        assert_eq!(rule.name.as_deref(), Some("no-8080"));
        assert!(j.policies.is_empty() && j.would_allow.is_empty(), "{j:?}");
        // Under host-wide audit the same packet is an audit event naming the rule.
        let j = judged(
            &m,
            Mode::Audit,
            packet(Audit, Ingress, "198.18.0.2", "198.18.0.1", 8080),
        );
        assert_eq!(j.cluster_rule.map(|r| r.policy), Some("guard".to_string()));
        // An Admin accept: no event at all, though NetworkPolicy isolates web/a.
        let (a, stranger) = (index.endpoint_at(&ip("198.18.0.1")).unwrap(), ip(STRANGER));
        assert_eq!(
            expected(&index, Mode::Enforce, a, Ingress, stranger, TCP, 22),
            None
        );
        // web/b: no enforced NetworkPolicy isolates it, so Baseline's deny decides, before
        // what the audit policy web/audit-outside (which selects web/b) would say.
        let j = judged(
            &m,
            Mode::Enforce,
            packet(Deny, Ingress, "198.18.0.1", "198.18.0.2", 80),
        );
        let rule = j.cluster_rule.expect("Baseline's rule");
        assert_eq!((rule.tier, rule.policy.as_str()), (Tier::Baseline, "floor"));
        // web/a is isolated by NetworkPolicy, which allows web/b on 80: Baseline is
        // never reached, no event.
        assert_eq!(
            expected(&index, Mode::Enforce, a, Ingress, ip("198.18.0.2"), TCP, 80),
            None
        );
    }
}
