//! The upstream ClusterNetworkPolicy conformance suite (kubernetes-sigs/network-policy-api,
//! `conformance/tests/`), translated by hand into lab cases (`tests/lab/cluster-cases/`),
//! checked against the one-packet semantics without packets and without root.
//!
//! Each case is read with the lab's own parser (`tests/lab/case.rs`) and validated with
//! `validate::validate` (`load_model` refuses ClusterNetworkPolicies until they are
//! enforced). For every cell (from, to, probe, family) the composed verdict is the
//! sender's egress `Index::cluster_verdict` AND the receiver's ingress one; an endpoint
//! talking to itself is always allowed (loopback; no failsafe is modelled). A host
//! outside the inventory (a stranger) enforces nothing: only the endpoint's side is asked.
//! Every cell that differs from `expected.txt` is printed before the case fails.
//!
//! The expected tables come from the upstream assertions and the API's text, written by
//! hand; they are never generated from this code. Once the data plane enforces these
//! policies, the same cases run with real packets in the lab.

#[path = "../lab/case.rs"]
#[allow(dead_code)]
mod case;

use std::fmt::Write as _;
use std::net::IpAddr;

use rules_compiler::load::{Input, Limits};
use rules_compiler::model::Direction;
use rules_compiler::resolve::{EndpointId, Index};
use rules_compiler::validate::validate;

use case::{Case, Family, Host, Mark};

/// Declares one test per case directory, and `CASES`, the list of them.
macro_rules! cases {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_case($dir);
            }
        )*
        const CASES: &[&str] = &[$($dir),*];
    };
}

cases! {
    admin_gress_rules => "admin-gress-rules",
    admin_gress_rules_deny_first => "admin-gress-rules-deny-first",
    admin_gress_rules_pass_first => "admin-gress-rules-pass-first",
    baseline_gress_rules => "baseline-gress-rules",
    baseline_gress_rules_deny_first => "baseline-gress-rules-deny-first",
    integration_admin_deny => "integration-admin-deny",
    integration_pass_to_network_policy => "integration-pass-to-network-policy",
    integration_pass_to_baseline => "integration-pass-to-baseline",
    priority_deny_first => "priority-deny-first",
    priority_pass_to_baseline => "priority-pass-to-baseline",
    inline_cidr_deny => "inline-cidr-deny",
    inline_cidr_allow_pod_ips => "inline-cidr-allow-pod-ips",
    port_ranges => "port-ranges",
    pod_selectors => "pod-selectors",
    named_port_egress => "named-port-egress",
    baseline_named_port_egress => "baseline-named-port-egress",
    node_peers => "node-peers",
    baseline_node_peers => "baseline-node-peers",
    admin_udp_rules => "admin-udp-rules",
    admin_udp_rules_deny_first => "admin-udp-rules-deny-first",
    admin_udp_rules_pass_first => "admin-udp-rules-pass-first",
    baseline_egress_udp_rules => "baseline-egress-udp-rules",
    baseline_egress_udp_rules_deny_first => "baseline-egress-udp-rules-deny-first",
    baseline_ingress_udp_rules => "baseline-ingress-udp-rules",
    baseline_ingress_udp_rules_deny_first => "baseline-ingress-udp-rules-deny-first",
    admin_ingress_rules_egress_unaffected => "admin-ingress-rules-egress-unaffected",
    admin_egress_rules_ingress_unaffected => "admin-egress-rules-ingress-unaffected",
    baseline_ingress_rules_egress_unaffected => "baseline-ingress-rules-egress-unaffected",
    baseline_egress_rules_ingress_unaffected => "baseline-egress-rules-ingress-unaffected",
    same_priority => "same-priority",
    same_priority_shared_subject => "same-priority-shared-subject",
    baseline_same_priority_shared_subject => "baseline-same-priority-shared-subject",
    hairpin_without_service => "hairpin-without-service",
}

#[test]
fn every_case_directory_is_listed() {
    let mut dirs: Vec<String> = std::fs::read_dir(case::cluster_cases_dir())
        .expect("tests/lab/cluster-cases")
        .map(|e| e.expect("a directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    listed.sort();
    assert_eq!(dirs, listed, "cluster-cases/ and the cases! list differ");
}

fn input(path: &std::path::Path) -> Input {
    Input {
        path: path.to_path_buf(),
        text: std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into(),
    }
}

/// The address of this family of a host, if it has one.
fn address(
    host: &Host,
    ids: &[Option<EndpointId>],
    at: usize,
    index: &Index<'_>,
    f: Family,
) -> Option<IpAddr> {
    let ips: &[IpAddr] = match (host, ids[at]) {
        (Host::Endpoint(_), Some(id)) => &index.endpoint(id).ips,
        (Host::Stranger(ips), _) => ips,
        (Host::Endpoint(name), None) => panic!("{name} is not an endpoint of the inventory"),
    };
    let mut of = ips.iter().filter(|ip| f.admits(ip));
    let ip = of.next().copied();
    assert!(
        of.next().is_none(),
        "a lab host has at most one address per family"
    );
    ip
}

fn check_case(name: &str) {
    let case = Case::read_in(&case::cluster_cases_dir(), name);
    let loaded = validate(
        &[input(&case.policies)],
        &[input(&case.inventory)],
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: the case does not validate: {e:?}"));
    let model = &loaded.model;
    assert!(
        !model.cluster_policies.is_empty(),
        "{name}: a cluster case holds at least one ClusterNetworkPolicy"
    );
    let index = Index::new(model);
    // The inventory's endpoints are exactly the case's `endpoints` (strangers apart).
    let ids: Vec<Option<EndpointId>> = case
        .endpoints
        .iter()
        .map(|(_, host)| match host {
            Host::Endpoint(n) => Some(
                model
                    .inventory
                    .endpoints
                    .iter()
                    .position(|ep| format!("{}/{}", ep.id.namespace, ep.id.name) == *n)
                    .unwrap_or_else(|| panic!("{name}: {n} is not an endpoint of the inventory")),
            ),
            Host::Stranger(_) => None,
        })
        .collect();
    assert_eq!(
        ids.iter().flatten().count(),
        model.inventory.endpoints.len(),
        "{name}: `endpoints` must name every inventory endpoint"
    );

    let mut diffs = String::new();
    let mut cells = 0;
    for (k, probe) in case.probes.iter().enumerate() {
        for f in Family::BOTH {
            let grid = &case.expected[&(k, f)];
            for (i, (from_alias, from)) in case.endpoints.iter().enumerate() {
                for (j, (to_alias, to)) in case.endpoints.iter().enumerate() {
                    let src = address(from, &ids, i, &index, f);
                    let dst = address(to, &ids, j, &index, f);
                    let got = match (src, dst) {
                        (Some(_), Some(_)) if i == j => Mark::Allowed,
                        (Some(src), Some(dst)) => {
                            let (proto, port) = (probe.protocol.number(), probe.port);
                            let egress = ids[i].is_none_or(|e| {
                                index
                                    .cluster_verdict(e, Direction::Egress, dst, proto, port)
                                    .is_allowed()
                            });
                            let ingress = ids[j].is_none_or(|e| {
                                index
                                    .cluster_verdict(e, Direction::Ingress, src, proto, port)
                                    .is_allowed()
                            });
                            if egress && ingress {
                                Mark::Allowed
                            } else {
                                Mark::Denied
                            }
                        }
                        _ => Mark::NoPair,
                    };
                    cells += 1;
                    let want = grid[i][j];
                    if got != want {
                        let _ = writeln!(
                            diffs,
                            "  {name}: {probe} {f} {from_alias} -> {to_alias}: semantics {}, expected {}",
                            mark(got),
                            mark(want)
                        );
                    }
                }
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{name}: cells where cluster_verdict and expected.txt differ:\n{diffs}"
    );
    println!("{name}: {cells} cells agree");
}

fn mark(m: Mark) -> &'static str {
    match m {
        Mark::Allowed => ".",
        Mark::Denied => "X",
        Mark::NoPair => "-",
    }
}
