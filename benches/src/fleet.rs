//! Inputs for the apply benchmark: a ruleset with many rules and many set elements,
//! as the policies and inventory YAML that `netpolctl apply` reads.
//!
//! The synthetic cluster of [`crate::generate`] gives one local endpoint a big plan
//! (tens of thousands of elements) but only a handful of rules, since one endpoint's
//! chain has at most five: an address-only set and an address · protocol · port set
//! per family, and the deny. A thousand rules therefore need some two hundred isolated
//! local endpoints, which is what this generator makes: a *fleet* of `locals`
//! dual-stack services on one host, each isolated by its own policy that allows
//!
//! - the clients of one shard (namespace AND pod selector) on TCP 8080 and TCP
//!   9000–9099 (`endPort`): `peers_per_shard` × 2 elements per family, in the port
//!   sets; shards interleave their addresses, so a shard's addresses never touch and
//!   each client stays an element of its own;
//! - `blocks` IPv4 and `blocks` IPv6 `ipBlock`s, each with an `except` in its middle
//!   (two ranges each, spaced so that neighbours never merge), on every port: the
//!   address-only sets.
//!
//! So every local endpoint's ingress chain has five rules and
//! `2 × (2 × peers_per_shard + 2 × blocks)` elements; [`FleetScale::DEFAULT`] gives
//! 200 × 5 = 1,000 endpoint rules and 100,000 set elements (plus the two base chains
//! and the verdict maps). All addresses are from 198.18.0.0/15 and 2001:db8::/32.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// How big a fleet to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetScale {
    /// Local endpoints, each isolated by its own policy (at most 1,000).
    pub locals: usize,
    /// Client shards; local endpoint `i` admits shard `i % shards`.
    pub shards: usize,
    /// Clients per shard (`shards × peers_per_shard` at most 16,000).
    pub peers_per_shard: usize,
    /// `ipBlock`s per family in each local endpoint's policy (local endpoints share
    /// them cyclically past 2,048 in all).
    pub blocks: usize,
}

impl FleetScale {
    /// About 1,000 rules and 100,000 set elements.
    pub const DEFAULT: FleetScale = FleetScale {
        locals: 200,
        shards: 20,
        peers_per_shard: 100,
        blocks: 25,
    };

    /// Rules of the endpoint chains (five per local endpoint; the two base chains add
    /// theirs).
    pub fn endpoint_rules(&self) -> usize {
        5 * self.locals
    }

    /// Elements of the endpoint chains' sets (the verdict maps add two per local
    /// endpoint).
    pub fn set_elements(&self) -> usize {
        self.locals * 2 * (2 * self.peers_per_shard + 2 * self.blocks)
    }

    /// `NAMESPACE/NAME` of every local endpoint, for `--local`.
    pub fn local_names(&self) -> Vec<String> {
        (0..self.locals)
            .map(|i| format!("{LOCAL_NS}/{}", local_name(i)))
            .collect()
    }
}

/// Namespace of the local endpoints.
pub const LOCAL_NS: &str = "fleet";
/// Namespace of the clients.
pub const CLIENT_NS: &str = "clients";

/// Distinct ipBlock slots per family.
const BLOCK_SLOTS: usize = 2_048;

fn local_name(i: usize) -> String {
    format!("svc-{i:04}")
}

fn local_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i as u32)
}

fn local_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)) + 1 + i as u128)
}

fn client_v4(c: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 64, 1)) + c as u32)
}

fn client_v6(c: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0)) + 1 + c as u128)
}

/// Block `g`: a /28 of 198.19.0.0/16 with a /30 taken out of its middle, and every
/// other /28 unused so neighbouring blocks do not merge; likewise a /64 of
/// 2001:db8:ff::/48 minus a /66.
fn block(g: usize) -> [(String, String); 2] {
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (g as u32) * 32;
    let v4 = Ipv4Addr::from(base);
    let v4_except = Ipv4Addr::from(base + 4);
    let net = (0x2001_0db8_00ff_u128 << 80) | ((2 * g as u128) << 64);
    let v6 = Ipv6Addr::from(net);
    let v6_except = Ipv6Addr::from(net | (0x4000_u128 << 48));
    [
        (format!("{v4}/28"), format!("{v4_except}/30")),
        (format!("{v6}/64"), format!("{v6_except}/66")),
    ]
}

/// The inventory: two namespaces, the local endpoints and the clients, in netpol's
/// native `Endpoint` form.
pub fn inventory_yaml(scale: &FleetScale) -> String {
    let mut out = String::new();
    for ns in [LOCAL_NS, CLIENT_NS] {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n"
        );
    }
    for i in 0..scale.locals {
        let _ = write!(
            out,
            "apiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: {LOCAL_NS}\n  name: {name}\n  labels: {{app: {name}}}\nips: [{v4}, \"{v6}\"]\nports:\n- {{name: http, port: 8080}}\n---\n",
            name = local_name(i),
            v4 = local_v4(i),
            v6 = local_v6(i),
        );
    }
    for c in 0..scale.shards * scale.peers_per_shard {
        let _ = write!(
            out,
            "apiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: {CLIENT_NS}\n  name: client-{c:05}\n  labels: {{shard: s{shard}}}\nips: [{v4}, \"{v6}\"]\n---\n",
            shard = c % scale.shards,
            v4 = client_v4(c),
            v6 = client_v6(c),
        );
    }
    out
}

/// One policy per local endpoint (see the module doc).
pub fn policies_yaml(scale: &FleetScale) -> String {
    let mut out = String::new();
    for i in 0..scale.locals {
        let name = local_name(i);
        let _ = write!(
            out,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: {LOCAL_NS}\n  name: allow-{name}\nspec:\n  podSelector:\n    matchLabels: {{app: {name}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {{kubernetes.io/metadata.name: {CLIENT_NS}}}\n      podSelector:\n        matchLabels: {{shard: s{shard}}}\n    ports:\n    - {{protocol: TCP, port: 8080}}\n    - {{protocol: TCP, port: 9000, endPort: 9099}}\n  - from:\n",
            shard = i % scale.shards.max(1),
        );
        for k in 0..scale.blocks {
            for (cidr, except) in block((i * scale.blocks + k) % BLOCK_SLOTS) {
                let _ = writeln!(
                    out,
                    "    - ipBlock: {{cidr: \"{cidr}\", except: [\"{except}\"]}}"
                );
            }
        }
        out.push_str("---\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules_compiler::load::Input;
    use rules_compiler::model::ObjectName;
    use rules_compiler::plan::{self, DenyAction, SetElements};
    use rules_compiler::resolve::Index;

    fn plan_of(scale: &FleetScale) -> plan::Plan {
        let loaded = rules_compiler::load_model(
            &[Input {
                path: "policies.yaml".into(),
                text: policies_yaml(scale).into(),
            }],
            &[Input {
                path: "inventory.yaml".into(),
                text: inventory_yaml(scale).into(),
            }],
        )
        .unwrap_or_else(|r| panic!("{r}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let index = Index::new(&loaded.model);
        let ids: Vec<_> = scale
            .local_names()
            .iter()
            .map(|n| {
                let name = ObjectName::parse(n).unwrap();
                index.model.inventory.endpoint_index(&name).unwrap()
            })
            .collect();
        plan::build(
            &index,
            &ids,
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
        )
    }

    fn count(plan: &plan::Plan) -> (usize, usize) {
        let rules = plan
            .chains()
            .iter()
            .filter(|c| c.hook().is_none())
            .map(|c| c.rules().len())
            .sum();
        let elements = plan.sets().iter().map(|s| s.elements().len()).sum();
        (rules, elements)
    }

    #[test]
    fn the_plan_has_the_promised_rules_and_elements() {
        let scale = FleetScale {
            locals: 12,
            shards: 5,
            peers_per_shard: 7,
            blocks: 3,
        };
        let plan = plan_of(&scale);
        assert_eq!(count(&plan), (scale.endpoint_rules(), scale.set_elements()));
        assert_eq!(
            plan.maps()
                .iter()
                .map(|m| m.elements().len())
                .sum::<usize>(),
            2 * scale.locals
        );
        // Each local endpoint admits its own shard only.
        let svc3 = plan
            .sets()
            .iter()
            .find(|s| s.name().contains("svc-0003") && s.name().ends_with("_v4_ports"))
            .unwrap();
        let SetElements::AddrProtoPort(elems) = svc3.elements() else {
            panic!("{:?}", svc3.elements())
        };
        assert!(elems.iter().all(|e| {
            let c = u32::from(match e.addr.start {
                std::net::IpAddr::V4(a) => a,
                other => panic!("{other}"),
            }) - u32::from(client_v4(0));
            c as usize % scale.shards == 3
        }));
    }

    #[test]
    fn the_default_scale_is_about_1000_rules_and_100000_elements() {
        let s = FleetScale::DEFAULT;
        assert_eq!(s.endpoint_rules(), 1_000);
        assert_eq!(s.set_elements(), 100_000);
        assert!(s.shards * s.peers_per_shard <= 16_000 && s.locals <= 1_000);
    }
}
