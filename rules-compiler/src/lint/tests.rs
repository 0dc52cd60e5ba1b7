//! Each check on one input that triggers it, at the exact place, and a near miss that
//! must not. Inputs go through the loader, so the places are the real ones.

use super::*;
use crate::validate::testutil::ok;

/// The inventory every test shares: `web` (frontend with `http` = 8080/TCP, checkout,
/// and a hostNetwork agent), `kube-system` with kube-dns (`dns` = 53/UDP, `dns-tcp` =
/// 53/TCP), both Namespaces with their `kubernetes.io/metadata.name` label written, and
/// `db`, whose Namespace object lacks it, with postgres.
const INVENTORY: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {name: web, kubernetes.io/metadata.name: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system, labels: {kubernetes.io/metadata.name: kube-system}}
---
apiVersion: v1
kind: Namespace
metadata: {name: db}
---
apiVersion: v1
kind: Pod
metadata: {namespace: web, name: frontend, labels: {app: frontend}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 198.18.1.3}
---
apiVersion: v1
kind: Pod
metadata: {namespace: web, name: checkout, labels: {app: checkout}}
status: {podIP: 198.18.1.2}
---
apiVersion: v1
kind: Pod
metadata: {namespace: web, name: agent, labels: {app: agent}}
spec: {hostNetwork: true}
status: {podIP: 198.18.9.1}
---
apiVersion: v1
kind: Pod
metadata: {namespace: kube-system, name: kube-dns, labels: {k8s-app: kube-dns}}
spec:
  containers:
  - name: coredns
    ports:
    - {name: dns, containerPort: 53, protocol: UDP}
    - {name: dns-tcp, containerPort: 53, protocol: TCP}
status: {podIP: 198.18.0.10}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: db, name: postgres, labels: {app: pg}}
ips: [198.18.2.5]
ports: [{name: pg, port: 5432}]
";

/// A policy document `web/<name>` (or `ns/<name>`) with this spec, indented by two.
fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{namespace: \
         {ns}, name: {name}}}\nspec:\n{spec}"
    )
}

/// Every finding for these policies (one file, `p.yaml`) against [`INVENTORY`].
fn findings(policies: &str) -> Vec<Finding> {
    let loaded = ok(&[("p.yaml", policies)], &[("inv.yaml", INVENTORY)]);
    let index = Index::new(&loaded.model);
    lint(&index, &loaded.spans)
}

/// The findings of one check.
fn of(check: Check, policies: &str) -> Vec<Finding> {
    findings(policies)
        .into_iter()
        .filter(|f| f.check == check)
        .collect()
}

/// 1-based line and column of the `nth` (0-based) occurrence of `needle` in `text`.
fn place(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in the input"))
        .0;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Checks every finding of one check, in order: policy, place, severity, and a part
/// of the message.
#[track_caller]
fn assert_findings(found: &[Finding], expected: &[(&str, (usize, usize), &str)]) {
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (f, (policy, at, message)) in found.iter().zip(expected) {
        assert_eq!(f.policy.to_string(), *policy, "{f:#?}");
        assert_eq!(f.file.as_deref(), Some(std::path::Path::new("p.yaml")));
        assert_eq!((f.line, f.column), *at, "{f:#?}");
        assert_eq!(f.severity, f.check.severity());
        assert!(
            f.message.contains(message),
            "{:?} lacks {message:?}",
            f.message
        );
        assert!(!f.hint.is_empty());
    }
}

/// [`assert_findings`] for exactly one finding.
#[track_caller]
fn assert_one(found: &[Finding], policy: &str, at: (usize, usize), message: &str) {
    assert_findings(found, &[(policy, at, message)]);
}

/// An egress policy for all of web allowing `ports` to kube-dns.
fn dns_policy(ports: &str) -> String {
    policy(
        "web",
        "dns",
        &format!(
            "  podSelector: {{}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}
      podSelector: {{matchLabels: {{k8s-app: kube-dns}}}}
    ports: {ports}
"
        ),
    )
}

#[test]
fn egress_without_dns_finds_udp_only_and_accepts_both_by_number_or_name() {
    let text = dns_policy("[{protocol: UDP, port: 53}]");
    let found = of(Check::EgressWithoutDns, &text);
    assert_one(
        &found,
        "web/dns",
        place(&text, "egress:", 0),
        "no peer on 53/TCP",
    );
    assert!(found[0]
        .message
        .contains("2 endpoints (web/checkout, web/frontend)"));

    // A lockdown with no rule at all misses both, at policyTypes (no egress key).
    let text = policy(
        "web",
        "lockdown",
        "  podSelector: {}\n  policyTypes: [Egress]\n",
    );
    let found = of(Check::EgressWithoutDns, &text);
    assert_one(
        &found,
        "web/lockdown",
        place(&text, "policyTypes", 0),
        "53/UDP nor 53/TCP",
    );

    for ports in [
        "[{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]",
        // Named ports resolve on kube-dns, as the compiler resolves them.
        "[{protocol: UDP, port: dns}, {port: dns-tcp}]",
        // A rule without ports allows every port.
        "[]",
    ] {
        assert_eq!(
            of(Check::EgressWithoutDns, &dns_policy(ports)),
            [],
            "{ports}"
        );
    }
}

#[test]
fn egress_without_dns_counts_the_union_of_the_isolating_policies() {
    // frontend-only egress to postgres: frontend still has DNS through web/dns.
    let text = dns_policy("[{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]")
        + &policy(
            "web",
            "to-db",
            "  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: pg}}}]
",
        );
    assert_eq!(of(Check::EgressWithoutDns, &text), []);
    // Without TCP 53, frontend and checkout are one finding, at the policy that selects
    // them both (where the DNS rule belongs), not at the narrower one that sorts first.
    let text = policy(
        "web",
        "a-narrow",
        "  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: pg}}}]
    ports: [{port: 5432}]
",
    ) + &dns_policy("[{protocol: UDP, port: 53}]");
    let found = of(Check::EgressWithoutDns, &text);
    assert_one(
        &found,
        "web/dns",
        place(&text, "egress:", 1),
        "2 endpoints (web/checkout, web/frontend) are isolated for egress by web/a-narrow, \
         web/dns, whose rules allow no peer on 53/TCP",
    );
    // The named port `dns` is TCP by default: kube-dns declares it for UDP only.
    let found = of(
        Check::EgressWithoutDns,
        &dns_policy("[{port: dns}, {port: dns-tcp}]"),
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains("no peer on 53/UDP,"),
        "{}",
        found[0].message
    );
}

#[test]
fn or_instead_of_and_points_at_the_second_entry() {
    let text = policy(
        "web",
        "p",
        "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
    - podSelector: {matchLabels: {app: checkout}}
",
    );
    let found = of(Check::OrInsteadOfAnd, &text);
    assert_one(
        &found,
        "web/p",
        place(&text, "podSelector: {matchLabels: {app: checkout", 0),
        "from[0] has only a namespaceSelector and from[1] only a podSelector",
    );

    // Near miss: one entry with both selectors (ANDed).
    let text = text.replace(
        "    - podSelector: {matchLabels: {app: checkout}}",
        "      podSelector: {matchLabels: {app: checkout}}",
    );
    assert_eq!(of(Check::OrInsteadOfAnd, &text), []);
}

#[test]
fn selector_matches_nothing_at_the_pod_selector_and_at_the_peer() {
    let text = policy(
        "web",
        "typo",
        "  podSelector: {matchLabels: {app: frontnd}}\n  ingress: []\n",
    ) + &policy(
        "web",
        "peers",
        "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: nobody}}
    - podSelector: {matchLabels: {app: checkuot}}
",
    );
    let found = of(Check::SelectorMatchesNothing, &text);
    assert_findings(
        &found,
        &[
            (
                "web/typo",
                place(&text, "podSelector", 0),
                "matches no endpoint of namespace web",
            ),
            (
                "web/peers",
                place(&text, "namespaceSelector", 0),
                "matches no namespace",
            ),
            (
                "web/peers",
                place(&text, "podSelector: {matchLabels: {app: checkuot", 0),
                "matches no endpoint of the inventory in namespace web",
            ),
        ],
    );

    // Near miss: the same selectors spelt right.
    let text = text
        .replace("frontnd", "frontend")
        .replace("team: nobody", "name: web")
        .replace("checkuot", "checkout");
    assert_eq!(of(Check::SelectorMatchesNothing, &text), []);
}

#[test]
fn missing_metadata_name_label_only_for_a_namespace_written_without_it() {
    let text = policy(
        "web",
        "to-db",
        "  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: db}}
",
    );
    let found = of(Check::MissingMetadataNameLabel, &text);
    assert_one(
        &found,
        "web/to-db",
        place(&text, "namespaceSelector", 0),
        "Namespace db does not carry that label",
    );
    // Near miss: kube-system's object writes the label.
    let text = text.replace("name: db}", "name: kube-system}");
    assert_eq!(of(Check::MissingMetadataNameLabel, &text), []);
}

#[test]
fn host_network_selected_by_the_pod_selector_and_by_a_peer() {
    let text = policy("web", "all", "  podSelector: {}\n  ingress: []\n");
    let found = of(Check::HostNetworkSelected, &text);
    assert_one(
        &found,
        "web/all",
        place(&text, "podSelector", 0),
        "(web/agent)",
    );

    let text = policy(
        "web",
        "from-agent",
        "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [agent, checkout]}]}
",
    );
    let found = of(Check::HostNetworkSelected, &text);
    assert_one(
        &found,
        "web/from-agent",
        place(&text, "podSelector: {matchExpressions", 0),
        "this from entry selects hostNetwork pods (web/agent)",
    );

    // Near miss: neither selects the agent.
    let text = text.replace("agent, checkout", "checkout");
    assert_eq!(of(Check::HostNetworkSelected, &text), []);
}

#[test]
fn named_port_unresolved_on_the_local_endpoint_and_on_peers() {
    let text = policy(
        "web",
        "in",
        "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - ports:
    - {port: http, protocol: UDP}
",
    );
    let found = of(Check::NamedPortUnresolved, &text);
    assert_one(
        &found,
        "web/in",
        place(&text, "{port: http", 0),
        "named port \"http\" with protocol UDP is declared by none of the endpoints the \
         policy selects (1 endpoint) (web/frontend declares it as TCP)",
    );
    assert_eq!(
        of(
            Check::NamedPortUnresolved,
            &text.replace(", protocol: UDP", "")
        ),
        []
    );

    let text = dns_policy("[{port: dns}, {protocol: TCP, port: 53}]");
    let found = of(Check::NamedPortUnresolved, &text);
    assert_one(
        &found,
        "web/dns",
        place(&text, "{port: dns}", 0),
        "kube-system/kube-dns declares it as UDP",
    );
    let text = dns_policy("[{port: dns, protocol: UDP}, {protocol: TCP, port: 53}]");
    assert_eq!(of(Check::NamedPortUnresolved, &text), []);
}

#[test]
fn ipblock_covers_endpoints_at_the_ipblock() {
    let text = policy(
        "web",
        "outside",
        "  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 198.18.0.0/16, except: [198.18.2.0/24]}
",
    );
    let found = of(Check::IpblockCoversEndpoints, &text);
    assert_one(
        &found,
        "web/outside",
        place(&text, "ipBlock", 0),
        "contains addresses of 3 endpoints (kube-system/kube-dns, web/checkout, web/frontend)",
    );
    // Near miss: the block has no endpoint left (postgres is excepted, the rest outside).
    let text = text.replace("198.18.0.0/16", "198.18.2.0/23");
    let text = text.replace(
        "except: [198.18.2.0/24]",
        "except: [198.18.2.0/24, 198.18.3.0/24]",
    );
    assert_eq!(of(Check::IpblockCoversEndpoints, &text), []);
}

#[test]
fn ignored_rules_at_the_direction_key() {
    let text = policy(
        "web",
        "in-only",
        "  podSelector: {}
  policyTypes: [Ingress]
  egress:
  - to: [{podSelector: {}}]
",
    ) + &policy("web", "empty", "  podSelector: {}\n  egress: []\n");
    let found = of(Check::IgnoredRules, &text);
    assert_findings(
        &found,
        &[
            (
                "web/in-only",
                place(&text, "egress:", 0),
                "egress holds 1 rule but policyTypes leaves Egress out",
            ),
            (
                "web/empty",
                place(&text, "egress: []", 0),
                "egress is not isolated at all",
            ),
        ],
    );

    // Near misses: Egress listed; `egress: []` with policyTypes.
    let text = text
        .replace("policyTypes: [Ingress]", "policyTypes: [Ingress, Egress]")
        .replace("egress: []", "policyTypes: [Ingress, Egress]\n  egress: []");
    assert_eq!(of(Check::IgnoredRules, &text), []);
}

#[test]
fn duplicate_rule_finds_rules_and_peers_another_allows_entirely() {
    let text = policy(
        "web",
        "wide",
        "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 8080}]
  - from:
    - podSelector: {matchLabels: {app: checkout}}
    ports: [{port: http}]
  - from:
    - ipBlock: {cidr: 203.0.113.0/24}
    - ipBlock: {cidr: 203.0.113.128/25}
",
    );
    let found = of(Check::DuplicateRule, &text);
    assert_eq!(found.len(), 2, "{found:#?}");
    // Rule 1: checkout on `http`, which is 8080 on frontend: within rule 0.
    assert_one(
        &found[..1],
        "web/wide",
        place(&text, "from:", 1),
        "ingress rule 1 allows nothing not already allowed by ingress rule 0,",
    );
    assert_one(
        &found[1..],
        "web/wide",
        place(&text, "ipBlock: {cidr: 203.0.113.128", 0),
        "ingress rule 2 from[1] allows nothing not already allowed by ingress rule 2 from[0],",
    );

    // Near misses: another port; blocks that only overlap (the first leaves a hole).
    let text = text.replace("[{port: http}]", "[{port: 8443}]").replace(
        "203.0.113.0/24}",
        "203.0.113.0/24, except: [203.0.113.192/26]}",
    );
    assert_eq!(of(Check::DuplicateRule, &text), []);
}

#[test]
fn duplicate_rule_reports_the_later_of_two_equal_rules_across_policies() {
    let rule = "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: checkout}}}]
    ports: [{port: 8080}]
";
    let text = policy("web", "a", rule) + &policy("web", "b", rule);
    let found = of(Check::DuplicateRule, &text);
    assert_one(
        &found,
        "web/b",
        place(&text, "from: [", 1),
        "allows nothing not already allowed by ingress rule 0 of web/a,",
    );
    // Near miss: b also selects checkout, for which a's rule does not exist.
    let text =
        policy("web", "a", rule) + &policy("web", "b", &rule.replace("{app: frontend}", "{}"));
    assert_eq!(of(Check::DuplicateRule, &text), []);
}

#[test]
fn duplicate_rule_covered_by_different_rules_on_different_endpoints() {
    let open = |name: &str, app: &str| {
        policy(
            "web",
            name,
            &format!(
                "  podSelector: {{matchLabels: {{app: {app}}}}}\n  ingress:\n  - from: \
                 [{{podSelector: {{}}}}]\n"
            ),
        )
    };
    let text = policy(
        "web",
        "both",
        "  podSelector: {matchExpressions: [{key: app, operator: In, values: [frontend, checkout]}]}
  ingress:
  - from: [{podSelector: {matchLabels: {app: checkout}}}]
",
    ) + &open("only-checkout", "checkout")
        + &open("only-frontend", "frontend");
    let found = of(Check::DuplicateRule, &text);
    assert_one(
        &found,
        "web/both",
        place(&text, "from:", 0),
        "ingress rule 0 allows nothing not already allowed by the other rules of its endpoints",
    );
    // Near miss: one of its endpoints has no other rule.
    let text = text.replace(&open("only-frontend", "frontend"), "");
    assert_eq!(of(Check::DuplicateRule, &text), []);
}

#[test]
fn allow_all_shadows_deny_at_the_allow_all_rule() {
    let deny = policy(
        "web",
        "deny",
        "  podSelector: {}\n  policyTypes: [Ingress]\n",
    );
    let text = deny.clone()
        + &policy(
            "web",
            "open",
            "  podSelector: {matchLabels: {app: frontend}}\n  ingress:\n  - {}\n",
        );
    let found = of(Check::AllowAllShadowsDeny, &text);
    assert_one(
        &found,
        "web/open",
        place(&text, "{}\n", 1),
        "ingress rule 0 allows every peer on every port, so for 1 endpoint (web/frontend) \
         the isolation by web/deny denies nothing",
    );
    // Near miss: the allow rule names its peers.
    let text = text.replace("  - {}\n", "  - from: [{podSelector: {}}]\n");
    assert_eq!(of(Check::AllowAllShadowsDeny, &text), []);
}

#[test]
fn on_the_bundled_example_only_the_name_labels_are_missing() {
    let read = |dir: &str| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        crate::load::read_paths(&[root.join(dir)], &Default::default()).unwrap()
    };
    let loaded = crate::load_model(&read("config/policies"), &read("config/inventory")).unwrap();
    let found = lint(&Index::new(&loaded.model), &loaded.spans);
    let summary: Vec<(Check, String, (usize, usize))> = found
        .iter()
        .map(|f| (f.check, f.policy.to_string(), (f.line, f.column)))
        .collect();
    let web = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/policies/web.yaml"),
    )
    .unwrap();
    // DNS is allowed and the peers are ANDed; only the Namespace objects, trimmed,
    // lack the label the web policies select on.
    assert_eq!(
        summary,
        vec![
            (
                Check::MissingMetadataNameLabel,
                "web/default-deny-egress".to_string(),
                place(&web, "namespaceSelector", 0)
            ),
            (
                Check::MissingMetadataNameLabel,
                "web/allow-checkout-to-payments".to_string(),
                place(&web, "namespaceSelector", 1)
            ),
        ]
    );
}

#[test]
fn every_check_has_a_distinct_kebab_id_that_serde_agrees_with() {
    let ids: std::collections::BTreeSet<&str> = Check::ALL.iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), Check::ALL.len());
    for check in Check::ALL {
        assert_eq!(
            serde_json::to_value(check).unwrap(),
            serde_json::Value::String(check.id().to_string())
        );
    }
}

#[test]
fn egress_without_dns_agrees_with_the_packet_verdicts() {
    // Whether some isolated endpoint has no allowed 53/UDP or no 53/TCP to any address
    // of the inventory or outside it, by `Index::verdict`, the compiler's semantics.
    let by_verdicts = |loaded: &crate::Loaded| {
        let index = Index::new(&loaded.model);
        let outside = ["203.0.113.1".parse().unwrap(), "192.0.2.1".parse().unwrap()];
        let remotes: Vec<std::net::IpAddr> = index
            .model
            .inventory
            .endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied())
            .chain(outside)
            .collect();
        (0..index.model.inventory.endpoints.len()).any(|ep| {
            !index.isolating(ep, Direction::Egress).is_empty()
                && [17, 6].iter().any(|&proto| {
                    !remotes.iter().any(|&ip| {
                        index
                            .verdict(ep, Direction::Egress, ip, proto, 53)
                            .is_allowed()
                    })
                })
        })
    };
    let to_block = "  - to: [{ipBlock: {cidr: 203.0.113.0/24}}]\n    ports: ";
    let mut blocks = 0;
    for ports in [
        "[{protocol: UDP, port: 53}]",
        "[{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]",
        "[{protocol: UDP, port: dns}, {port: dns-tcp}]",
        "[{port: dns}, {port: dns-tcp}]",
        "[{protocol: UDP, port: 50, endPort: 60}, {port: 1, endPort: 100}]",
        "[{protocol: SCTP, port: 53}, {port: 53}]",
        "[]",
    ] {
        for text in [
            dns_policy(ports),
            // The same ports to an ipBlock of no endpoint: names never match there.
            dns_policy(ports).replace(
                "  - to:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: \
                 kube-system}}\n      podSelector: {matchLabels: {k8s-app: kube-dns}}\n    \
                 ports: ",
                to_block,
            ),
        ] {
            assert!(
                text.contains(ports),
                "the replacement kept the ports: {text}"
            );
            let loaded = ok(&[("p.yaml", &text)], &[("inv.yaml", INVENTORY)]);
            let found = lint(&Index::new(&loaded.model), &loaded.spans)
                .iter()
                .any(|f| f.check == Check::EgressWithoutDns);
            assert_eq!(found, by_verdicts(&loaded), "{text}");
            blocks += usize::from(text.contains("ipBlock"));
        }
    }
    assert_eq!(blocks, 7, "every ipBlock variant was made");
}

#[test]
fn deleting_every_duplicate_allows_exactly_the_same() {
    let cases = [
        // Entries of two rules that each other's rule covers (s.from[0] by r, r.from[0]
        // by s): only one of the two may go.
        policy(
            "web",
            "r",
            "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: checkout}}}, {ipBlock: {cidr: 198.51.100.0/24}}]
    ports: [{port: 8080}]
",
        ) + &policy(
            "web",
            "s",
            "  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: checkout}}}, {ipBlock: {cidr: 203.0.113.0/24}}]
    ports: [{port: http}]
",
        ) + &policy(
            "web",
            "t",
            "  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 198.51.100.0/24}}]
    ports: [{port: 8080}]
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}, {ipBlock: {cidr: 192.0.2.0/25}}]
    ports: [{port: 8080}, {protocol: UDP}]
",
        ),
        // Egress: equal rules, named ports on peers, all peers, an allow-all.
        policy(
            "web",
            "e",
            "  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: dns, protocol: UDP}, {port: 53}]
  - to: [{ipBlock: {cidr: 198.18.0.0/24}}]
    ports: [{port: 53, protocol: UDP}, {port: dns-tcp}]
  - ports: [{port: 53, protocol: UDP}]
  - to: [{ipBlock: {cidr: 198.18.0.0/16}}, {podSelector: {}}]
    ports: [{port: 1, endPort: 1000}]
  - to: [{podSelector: {matchLabels: {app: checkout}}}]
",
        ) + &policy("web", "f", "  podSelector: {matchLabels: {app: frontend}}\n  policyTypes: [Egress]\n  egress: [{}]\n"),
    ];
    let outside = ["198.51.100.7", "203.0.113.200", "203.0.113.9", "192.0.2.1"];
    for text in cases {
        let loaded = ok(&[("p.yaml", &text)], &[("inv.yaml", INVENTORY)]);
        let index = Index::new(&loaded.model);
        let lint = Lint::new(&index, &loaded.spans);
        // The model without every duplicate unit; later indices first, so earlier
        // ones stay valid.
        let mut pruned = loaded.model.clone();
        let mut removed = 0;
        for dir in DIRECTIONS {
            let units = checks::duplicate_units(&lint, dir);
            removed += units.len();
            for unit in units.keys().rev() {
                let policy = &mut pruned.policies[unit.policy];
                let shared = match dir {
                    Direction::Ingress => policy.ingress.as_mut(),
                    Direction::Egress => policy.egress.as_mut(),
                }
                .unwrap();
                // Rules are shared with the loaded model: edit a copy.
                let mut rules = shared.to_vec();
                match (unit.peer, &mut rules[unit.rule].peers) {
                    (None, _) => {
                        rules.remove(unit.rule);
                    }
                    (Some(k), crate::model::Peers::List(list)) => {
                        list.remove(k);
                        assert!(!list.is_empty(), "a rule's last entry is never a duplicate");
                    }
                    (Some(_), crate::model::Peers::All) => unreachable!(),
                }
                *shared = rules.into();
            }
        }
        assert!(removed > 0, "the case has duplicates\n{text}");
        let after = Index::new(&pruned);
        let remotes: Vec<std::net::IpAddr> = loaded
            .model
            .inventory
            .endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied())
            .chain(outside.iter().map(|a| a.parse().unwrap()))
            .collect();
        for ep in 0..loaded.model.inventory.endpoints.len() {
            for dir in DIRECTIONS {
                for &remote in &remotes {
                    for proto in [1, 6, 17, 132] {
                        for port in [0, 1, 53, 80, 999, 1000, 1001, 5432, 8080, 9000, 65535] {
                            assert_eq!(
                                index.verdict(ep, dir, remote, proto, port).is_allowed(),
                                after.verdict(ep, dir, remote, proto, port).is_allowed(),
                                "{} {dir} {remote} {proto}/{port}\n{text}",
                                index.endpoint(ep).id
                            );
                        }
                    }
                }
            }
        }
    }
}
