//! The netpol table as read back from the kernel ([`LoadedTable`]), what a plan's table
//! reads back as ([`LoadedTable::expected`]), and its deny counters labelled by the
//! endpoint and direction that own their chain ([`ChainOwners`]).
//!
//! Plain data: the reading is `readback`'s, the wire `ffi`'s.

use std::collections::HashMap;

use rules_compiler::model::{Direction, ObjectName, Tier};
use rules_compiler::plan::{EventVerdict, Plan, COMMENT_CUT_MARK};
use serde::Serialize;

use crate::encode::{self, Msg};
use crate::EncodeError;

/// The netpol table as the kernel holds it, objects named as the plan names them (the
/// [`Slot`](crate::Slot) prefix of a two-transaction replace dropped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedTable {
    /// Table name (family `inet`).
    pub name: String,
    /// Chains in the kernel's order.
    pub chains: Vec<LoadedChain>,
    /// Named sets and maps in the kernel's order (anonymous sets belong to their rule).
    pub sets: Vec<LoadedSet>,
    /// Named limits (table objects) in the kernel's order.
    pub limits: Vec<LoadedLimit>,
}

/// A named limit read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedLimit {
    /// Limit name.
    pub name: String,
    /// Packets a second.
    pub rate: u64,
    /// Packets above the rate let through at once.
    pub burst: u32,
}

/// A chain read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedChain {
    /// Chain name.
    pub name: String,
    /// `input`, `output`, or `hook N`, for base chains.
    pub hook: Option<String>,
    /// Number of rules.
    pub rules: usize,
    /// Every rule with a counter, in order: the log, deny and audit rules.
    pub counters: Vec<RuleCounter>,
}

/// A rule's counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCounter {
    /// The rule's comment (`deny ingress ns/name`).
    pub comment: Option<String>,
    /// The prefix of the rule's log statement (`netpol deny in`): the rule's counter
    /// counts the packets logged.
    pub log: Option<String>,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// A named set or map read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedSet {
    /// Set name.
    pub name: String,
    /// A (verdict) map rather than a set.
    pub map: bool,
    /// Elements, an interval counted once (as the plan counts them).
    pub elements: usize,
}

/// The deny (or audit) counter of one local endpoint and direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenyCounter {
    /// The endpoint.
    pub endpoint: ObjectName,
    /// The direction.
    pub direction: Direction,
    /// Its chain.
    pub chain: String,
    /// Packets denied (or, for [`EventVerdict::Audit`], accepted that would be).
    pub packets: u64,
    /// Bytes denied.
    pub bytes: u64,
    /// `Deny` for a deny rule (`deny ingress ns/name`), `Audit` for an audit rule
    /// (`audit ingress ns/name`: counted and accepted).
    pub verdict: EventVerdict,
    /// Packets the chain's log rule logged (within the table's limit); `None` when the
    /// chain logs nothing. `packets - logged` were held back by the limit.
    pub logged: Option<u64>,
    /// The ClusterNetworkPolicy tier whose deny chain this is (`Admin deny ingress
    /// ns/name`); `None` for the NetworkPolicy deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

impl DenyCounter {
    /// Whether the endpoint was read from a deny comment that nft's 128-byte limit cut:
    /// its name is then a prefix ending in `...` (never in a Kubernetes name), possibly
    /// shared with another endpoint (`chain` tells them apart). Never so after
    /// [`ChainOwners::label`] for the chains it knows.
    pub fn is_cut(&self) -> bool {
        self.endpoint.name.ends_with(COMMENT_CUT_MARK)
    }
}

/// Which endpoint and direction each endpoint chain of a plan polices (and, for a
/// cluster tier's deny chain, which tier): the identity of a deny counter, which its
/// comment (cut for long names) cannot be.
#[derive(Clone, Debug, Default)]
pub struct ChainOwners(HashMap<String, (ObjectName, Direction, Option<Tier>)>);

impl ChainOwners {
    /// The owners of `plan`'s chains.
    pub fn of(plan: &Plan) -> ChainOwners {
        let mut owners = HashMap::new();
        for local in plan.locals() {
            for dir in [Direction::Ingress, Direction::Egress] {
                if let Some(chain) = local.chain(dir) {
                    owners.insert(chain.to_string(), (local.id.clone(), dir, None));
                }
            }
            for t in &local.tier_chains {
                owners.insert(
                    t.chain.clone(),
                    (local.id.clone(), t.direction, Some(t.tier)),
                );
            }
        }
        ChainOwners(owners)
    }

    /// Labels each deny or audit counter by its chain's owner. A counter of a chain this plan does not
    /// have (a table someone else loaded) keeps what its comment says, unless the
    /// comment was cut: that one is left out, since its label could be another
    /// endpoint's or shared by two.
    pub fn label(&self, counters: Vec<DenyCounter>) -> Vec<DenyCounter> {
        counters
            .into_iter()
            .filter_map(|mut c| match self.0.get(&c.chain) {
                Some((endpoint, direction, tier)) => {
                    c.endpoint = endpoint.clone();
                    c.direction = *direction;
                    c.tier = *tier;
                    Some(c)
                }
                None => (!c.is_cut()).then_some(c),
            })
            .collect()
    }
}

pub(crate) fn hook_name(hooknum: u32) -> String {
    match hooknum {
        encode::k::NF_INET_LOCAL_IN => "input".into(),
        encode::k::NF_INET_LOCAL_OUT => "output".into(),
        n => format!("hook {n}"),
    }
}

impl LoadedTable {
    /// What reading the table back right after applying `plan` gives (counters at 0):
    /// the plan as the kernel holds it.
    pub fn expected(plan: &Plan) -> Result<LoadedTable, EncodeError> {
        let batch = encode::encode(plan)?;
        let mut chains: Vec<LoadedChain> = Vec::new();
        for m in &batch.msgs {
            match &m.msg {
                Msg::NewChain(c) => chains.push(LoadedChain {
                    name: c.name.clone(),
                    hook: c.hook.map(|h| hook_name(h.hooknum)),
                    rules: 0,
                    counters: Vec::new(),
                }),
                Msg::NewRule(r) => {
                    if let Some(c) = chains.iter_mut().find(|c| c.name == r.chain) {
                        c.rules += 1;
                        if r.exprs.contains(&encode::Expr::Counter) {
                            let log = r.exprs.iter().find_map(|e| match e {
                                encode::Expr::Log { prefix, .. } => Some(prefix.clone()),
                                _ => None,
                            });
                            c.counters.push(RuleCounter {
                                comment: r.comment.clone(),
                                log,
                                packets: 0,
                                bytes: 0,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        let sets = plan
            .sets()
            .iter()
            .map(|s| LoadedSet {
                name: s.name().to_owned(),
                map: s.elements().is_map(),
                elements: s.elements().len(),
            })
            .chain(plan.maps().iter().map(|m| LoadedSet {
                name: m.name().to_owned(),
                map: true,
                elements: m.elements().len(),
            }))
            .collect();
        let limits = plan
            .limits()
            .iter()
            .map(|l| LoadedLimit {
                name: l.name().to_owned(),
                rate: u64::from(l.rate()),
                burst: l.burst(),
            })
            .collect();
        Ok(LoadedTable {
            name: plan.table().to_owned(),
            chains,
            sets,
            limits,
        })
    }

    /// Total rules.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules).sum()
    }

    /// Total elements of named sets and maps.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elements).sum()
    }

    /// The deny and audit counters, from the comments netpol gives them
    /// (`deny <direction> <namespace>/<name>`, `audit …`, cut ones ending in `...`: see
    /// [`DenyCounter::is_cut`]), each with its chain's log counter; counters with other
    /// comments are left out. Without the plan
    /// this is all the table says; with it, [`ChainOwners::label`] gives exact names.
    pub fn denies(&self) -> Vec<DenyCounter> {
        let mut out = Vec::new();
        for chain in &self.chains {
            let logged = chain
                .counters
                .iter()
                .find(|c| c.log.is_some())
                .map(|c| c.packets);
            for c in &chain.counters {
                let Some(comment) = &c.comment else { continue };
                let mut words = comment.split(' ').peekable();
                // A cluster tier's deny chain: `Admin deny ingress ns/name`.
                let tier = match words.peek() {
                    Some(&"Admin") => Some(Tier::Admin),
                    Some(&"Baseline") => Some(Tier::Baseline),
                    _ => None,
                };
                if tier.is_some() {
                    words.next();
                }
                let (Some(verdict), Some(dir), Some(who), None) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let verdict = match verdict {
                    "deny" => EventVerdict::Deny,
                    "audit" => EventVerdict::Audit,
                    _ => continue,
                };
                let direction = match dir {
                    "ingress" => Direction::Ingress,
                    "egress" => Direction::Egress,
                    _ => continue,
                };
                let Some(endpoint) = ObjectName::parse(who) else {
                    continue;
                };
                out.push(DenyCounter {
                    endpoint,
                    direction,
                    chain: chain.name.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                    verdict,
                    logged,
                    tier,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(comment: Option<&str>, log: Option<&str>, packets: u64) -> RuleCounter {
        RuleCounter {
            comment: comment.map(str::to_string),
            log: log.map(str::to_string),
            packets,
            bytes: packets * 60,
        }
    }

    #[test]
    fn deny_and_audit_counters_come_with_their_chains_log_counter() {
        let chain = |name: &str, counters| LoadedChain {
            name: name.into(),
            hook: None,
            rules: 3,
            counters,
        };
        let table = LoadedTable {
            name: "netpol".into(),
            chains: vec![
                chain(
                    "in_x_a",
                    vec![
                        counter(None, Some("netpol deny in"), 5),
                        counter(Some("deny ingress x/a"), None, 50),
                    ],
                ),
                chain(
                    "out_x_a",
                    vec![
                        counter(None, Some("netpol audit out"), 2),
                        counter(Some("audit egress x/a"), None, 2),
                    ],
                ),
                chain("in_y_b", vec![counter(Some("deny ingress y/b"), None, 1)]),
                // Other comments are no deny or audit counters.
                chain("c", vec![counter(Some("allow ingress x/a"), None, 1)]),
            ],
            sets: vec![],
            limits: vec![],
        };
        let got: Vec<(String, Direction, EventVerdict, u64, Option<u64>)> = table
            .denies()
            .into_iter()
            .map(|d| {
                let who = d.endpoint.to_string();
                (who, d.direction, d.verdict, d.packets, d.logged)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "x/a".into(),
                    Direction::Ingress,
                    EventVerdict::Deny,
                    50,
                    Some(5)
                ),
                (
                    "x/a".into(),
                    Direction::Egress,
                    EventVerdict::Audit,
                    2,
                    Some(2)
                ),
                (
                    "y/b".into(),
                    Direction::Ingress,
                    EventVerdict::Deny,
                    1,
                    None
                ),
            ]
        );
    }

    #[test]
    fn a_cluster_tiers_deny_counter_names_its_tier_and_the_plan_labels_it() {
        let chain = |name: &str, comment: &str| LoadedChain {
            name: name.into(),
            hook: None,
            rules: 1,
            counters: vec![RuleCounter {
                comment: Some(comment.into()),
                log: None,
                packets: 7,
                bytes: 420,
            }],
        };
        let table = LoadedTable {
            name: "netpol".into(),
            chains: vec![
                chain("in_x_a_admin", "Admin deny ingress x/a"),
                chain("out_x_a_baseline", "Baseline audit egress x/a"),
                chain("in_x_a", "deny ingress x/a"),
                // Not a tier: left out.
                chain("c", "Other deny ingress x/a"),
            ],
            sets: vec![],
            limits: vec![],
        };
        let tiers: Vec<(String, Option<Tier>, EventVerdict)> = table
            .denies()
            .into_iter()
            .map(|d| (d.chain, d.tier, d.verdict))
            .collect();
        assert_eq!(
            tiers,
            [
                ("in_x_a_admin".into(), Some(Tier::Admin), EventVerdict::Deny),
                (
                    "out_x_a_baseline".into(),
                    Some(Tier::Baseline),
                    EventVerdict::Audit
                ),
                ("in_x_a".into(), None, EventVerdict::Deny),
            ]
        );
    }
}
