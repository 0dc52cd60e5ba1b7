//! Names of chains and sets, and deny comments.
//!
//! A chain's name depends only on its direction and endpoint (unless a hash collides
//! with another chain of the same plan), so it is stable when other endpoints come and
//! go. Names must be nft identifiers that need no quoting and fit
//! [`MAX_NAME`](super::MAX_NAME) (the kernel's 255 bytes less room for a backend's
//! prefix); comments fit nft's 128-byte limit. Names of one plan
//! are made distinct here ([`disambiguate`]), whatever the input; comments are for
//! people and may be cut, so nothing may rely on them to identify an endpoint.

use std::collections::{HashMap, HashSet};

use super::EventVerdict;
use crate::model::{Direction, ObjectName, Tier};

/// Longest chain name; leaves room for set suffixes under [`MAX_NAME`](super::MAX_NAME).
pub(crate) const MAX_CHAIN_NAME: usize = 200;

/// Longest rule comment, in bytes (without the NUL), that nft accepts
/// (`NFTNL_UDATA_COMMENT_MAXLEN`; nft 1.0.6 refuses 129). [`Chain::new`](super::Chain::new)
/// refuses a longer one, so the netlink encoder need not.
pub const MAX_COMMENT: usize = 128;

/// What ends a deny comment that was cut to [`MAX_COMMENT`]. Kubernetes names never
/// hold `..`, so a cut comment cannot be mistaken for a whole one; but two endpoints
/// whose names share a long prefix can have the same cut comment, so a reader must not
/// take one as an endpoint's identity (the daemon labels counters by chain instead).
pub const COMMENT_CUT_MARK: &str = "...";

/// The NFLOG prefix of a [`Stmt::Log`](super::Stmt::Log): `netpol deny in`, `netpol
/// audit out`, …. Short (NFLOG keeps 64 bytes) and the same in every plan: netpold
/// learns endpoint, peer and policies from the packet and the model, not from this.
pub fn log_prefix(verdict: EventVerdict, direction: Direction) -> &'static str {
    match (verdict, direction) {
        (EventVerdict::Deny, Direction::Ingress) => "netpol deny in",
        (EventVerdict::Deny, Direction::Egress) => "netpol deny out",
        (EventVerdict::Audit, Direction::Ingress) => "netpol audit in",
        (EventVerdict::Audit, Direction::Egress) => "netpol audit out",
    }
}

/// The verdict and direction a [`log_prefix`] names; `None` for any other prefix.
pub fn parse_log_prefix(prefix: &str) -> Option<(EventVerdict, Direction)> {
    [EventVerdict::Deny, EventVerdict::Audit]
        .into_iter()
        .flat_map(|v| [Direction::Ingress, Direction::Egress].map(|d| (v, d)))
        .find(|&(v, d)| log_prefix(v, d) == prefix)
}

/// Hex digits of the hash appended to a shortened or cleaned name.
const HASH_DIGITS: usize = 12;

/// Characters kept as they are: nft reads `[A-Za-z0-9._-]` after a letter as one
/// unquoted identifier. `_` is reserved as our separator (Kubernetes names never
/// contain it), so a name holding one is cleaned and hashed.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.'
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if is_plain(c) { c } else { '-' })
        .collect()
}

/// FNV-1a, 64 bits: tiny, and stable across Rust versions (std's hasher is not).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The chain policing one endpoint in one direction: `in_<namespace>_<name>` or
/// `out_<namespace>_<name>`. A name that would be longer than 200 characters or holds
/// characters nft would not read unquoted is cleaned, cut and suffixed with a hash of
/// the exact direction and endpoint. A hash can collide: the plan checks its names and
/// suffixes colliding ones (see `disambiguate`), so the chain a plan really uses is the
/// one in [`LocalEndpoint`](super::LocalEndpoint), not necessarily this.
pub fn chain_name(dir: Direction, id: &ObjectName) -> String {
    let prefix = match dir {
        Direction::Ingress => "in",
        Direction::Egress => "out",
    };
    let plain = id.namespace.chars().all(is_plain) && id.name.chars().all(is_plain);
    let name = format!("{prefix}_{}_{}", id.namespace, id.name);
    if plain && name.len() <= MAX_CHAIN_NAME {
        return name;
    }
    let hash = fnv1a(&format!("{prefix}/{}/{}", id.namespace, id.name));
    let mut short = format!("{prefix}_{}_{}", clean(&id.namespace), clean(&id.name));
    // Cleaned names are ASCII, so cutting at a byte index is cutting at a character.
    short.truncate(MAX_CHAIN_NAME - HASH_DIGITS - 1);
    format!("{short}_{:0width$x}", hash >> 16, width = HASH_DIGITS)
}

/// Makes `names` (the chains of one plan, in a deterministic order) distinct.
///
/// [`chain_name`] hashes long names to 48 bits, and inputs can be searched for a pair
/// that collides; two chains of one name would make nft merge them (and their sets),
/// enforcing one endpoint's rules for the other. A name that is unique stays as it is,
/// so endpoints not involved in a collision keep their chains (incremental updates
/// compare names). Within a group of equal names the first keeps it and each later one
/// gets the first free `-<n>` suffix (`n` = 1, 2, …), checked against every name taken,
/// so the result is distinct whatever the input. The suffix keeps names nft
/// identifiers, and at most a few characters over [`MAX_CHAIN_NAME`] leaves room for
/// set suffixes under [`MAX_NAME`](super::MAX_NAME).
pub(crate) fn disambiguate(names: &mut [String]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for n in names.iter() {
        *count.entry(n.as_str()).or_default() += 1;
    }
    if count.len() == names.len() {
        return;
    }
    let mut taken: HashSet<String> = count.keys().map(|n| n.to_string()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    for name in names.iter_mut() {
        if seen.insert(name.clone()) {
            continue;
        }
        let unique = (1u64..)
            .map(|n| format!("{name}-{n}"))
            .find(|candidate| !taken.contains(candidate))
            .expect("a free suffix exists");
        taken.insert(unique.clone());
        *name = unique;
    }
}

/// The endpoint and direction that each chain name of an inventory stands for: every
/// endpoint in both directions, named by [`chain_name`]. For telling whose a deny
/// counter is when the plan that loaded it is not at hand (`netpolctl show`): the
/// counter's chain, not its cut comment, is the identity. A name two endpoints would
/// share (a hash collision, which a plan makes distinct with a suffix) is left out, as
/// are suffixed names: their owner depends on the plan.
pub fn chain_owners<'a>(
    endpoints: impl IntoIterator<Item = &'a ObjectName>,
) -> HashMap<String, (ObjectName, Direction)> {
    let mut owners: HashMap<String, Option<(ObjectName, Direction)>> = HashMap::new();
    for id in endpoints {
        for dir in [Direction::Ingress, Direction::Egress] {
            owners
                .entry(chain_name(dir, id))
                .and_modify(|o| *o = None)
                .or_insert_with(|| Some((id.clone(), dir)));
        }
    }
    owners
        .into_iter()
        .filter_map(|(name, owner)| Some((name, owner?)))
        .collect()
}

/// The comment of an endpoint chain's deny rule, e.g. `deny ingress payments/api`, for
/// people reading `nft list`. Double quotes, which would end the nft string, become `'`.
/// A comment longer than nft accepts is cut on a character boundary and ends in
/// [`COMMENT_CUT_MARK`].
pub fn deny_comment(dir: Direction, id: &ObjectName) -> String {
    tail_comment("deny", dir, id)
}

/// The comment of an endpoint chain's [`super::Stmt::Audit`]: `audit ingress ns/name`,
/// cut as [`deny_comment`]'s.
pub fn audit_comment(dir: Direction, id: &ObjectName) -> String {
    tail_comment("audit", dir, id)
}

/// The comment of a cluster tier's deny chain end: `Admin deny ingress ns/name` (or
/// `audit`), cut as [`deny_comment`]'s; the tier first, so a cut keeps it.
pub fn tier_comment(tier: Tier, verb: &str, dir: Direction, id: &ObjectName) -> String {
    tail_comment(&format!("{} {verb}", tier.as_str()), dir, id)
}

fn tail_comment(verb: &str, dir: Direction, id: &ObjectName) -> String {
    let mut c: String = format!("{verb} {dir} {id}").replace('"', "'");
    if c.len() > MAX_COMMENT {
        let mut cut = MAX_COMMENT - COMMENT_CUT_MARK.len();
        while !c.is_char_boundary(cut) {
            cut -= 1;
        }
        c.truncate(cut);
        c.push_str(COMMENT_CUT_MARK);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_read_as_direction_namespace_name() {
        let id = ObjectName::new("payments", "payments-api");
        assert_eq!(
            chain_name(Direction::Ingress, &id),
            "in_payments_payments-api"
        );
        assert_eq!(
            chain_name(Direction::Egress, &id),
            "out_payments_payments-api"
        );
        let dotted = ObjectName::new("ns-1", "web-0.v2");
        assert_eq!(chain_name(Direction::Ingress, &dotted), "in_ns-1_web-0.v2");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_distinct_hash() {
        let a = ObjectName::new("ns", "a".repeat(253));
        let mut b_name = "a".repeat(252);
        b_name.push('b');
        let b = ObjectName::new("ns", b_name);
        let na = chain_name(Direction::Ingress, &a);
        let nb = chain_name(Direction::Ingress, &b);
        assert_eq!(na.len(), MAX_CHAIN_NAME);
        assert_eq!(nb.len(), MAX_CHAIN_NAME);
        assert!(na.starts_with("in_ns_aaaa"));
        assert_ne!(na, nb);
        assert_eq!(na, chain_name(Direction::Ingress, &a));
        assert!(chain_name(Direction::Egress, &a).starts_with("out_ns_aaaa"));
    }

    #[test]
    fn names_nft_would_misread_are_cleaned_and_hashed() {
        let odd = ObjectName::new("ns", "a_b c");
        let n = chain_name(Direction::Egress, &odd);
        assert!(n.starts_with("out_ns_a-b-c_"), "{n}");
        assert!(n.chars().all(|c| is_plain(c) || c == '_'));
        assert_ne!(
            n,
            chain_name(Direction::Egress, &ObjectName::new("ns", "a-b-c"))
        );
    }

    #[test]
    fn equal_names_are_suffixed_and_unique_ones_kept() {
        let mut names: Vec<String> = ["a", "b", "a", "a-1", "a"].map(String::from).to_vec();
        disambiguate(&mut names);
        assert_eq!(names, ["a", "b", "a-2", "a-1", "a-3"]);
        let mut distinct: Vec<String> = ["x", "y"].map(String::from).to_vec();
        disambiguate(&mut distinct);
        assert_eq!(distinct, ["x", "y"]);
    }

    #[test]
    fn an_inventory_names_the_owner_of_each_chain_unless_two_share_it() {
        let long = |tail: &str| ObjectName::new("ns", format!("{}{tail}", "x".repeat(250)));
        let (a, b, plain) = (long("-a"), long("-b"), ObjectName::new("ns", "web"));
        let owners = chain_owners([&a, &b, &plain]);
        assert_eq!(owners.len(), 6);
        for id in [&a, &b, &plain] {
            for dir in [Direction::Ingress, Direction::Egress] {
                assert_eq!(owners[&chain_name(dir, id)], (id.clone(), dir));
            }
        }
        // Two endpoints whose chain names collide: neither is named the owner.
        let data = include_str!("../../testdata/chain-name-collision.txt");
        let mut pair = data.lines().filter(|l| !l.starts_with('#'));
        let (x, y) = (
            ObjectName::new("lab", pair.next().unwrap()),
            ObjectName::new("lab", pair.next().unwrap()),
        );
        assert_eq!(
            chain_name(Direction::Ingress, &x),
            chain_name(Direction::Ingress, &y)
        );
        let owners = chain_owners([&x, &y]);
        assert!(!owners.contains_key(&chain_name(Direction::Ingress, &x)));
    }

    #[test]
    fn comments_fit_nft_and_say_when_they_are_cut() {
        let id = ObjectName::new("n".repeat(63), "p\"".repeat(120));
        let c = deny_comment(Direction::Ingress, &id);
        assert_eq!(c.len(), MAX_COMMENT);
        assert!(c.starts_with("deny ingress nnn"));
        assert!(c.ends_with("p'p'..."), "{c}");
        assert!(!c.contains('"'));
        assert_eq!(
            deny_comment(Direction::Egress, &ObjectName::new("a", "b")),
            "deny egress a/b"
        );
        // Exactly at the limit: whole, unmarked.
        let fits = ObjectName::new("ns", "x".repeat(MAX_COMMENT - "deny egress ns/".len()));
        let c = deny_comment(Direction::Egress, &fits);
        assert_eq!(c.len(), MAX_COMMENT);
        assert!(c.ends_with('x'));
        // Cut on a character boundary (names that reach the compiler are ASCII, but the
        // comment must never be invalid UTF-8).
        let wide = ObjectName::new("ns", "é".repeat(100));
        let c = deny_comment(Direction::Egress, &wide);
        assert!(c.len() <= MAX_COMMENT && c.ends_with("é..."), "{c}");
    }

    #[test]
    fn log_prefixes_are_short_distinct_and_read_back() {
        use crate::plan::EventVerdict;
        let mut seen = std::collections::HashSet::new();
        for v in [EventVerdict::Deny, EventVerdict::Audit] {
            for d in [Direction::Ingress, Direction::Egress] {
                let p = log_prefix(v, d);
                assert!(p.len() < 64 && seen.insert(p), "{p}");
                assert_eq!(parse_log_prefix(p), Some((v, d)));
            }
        }
        assert_eq!(parse_log_prefix("netpol deny"), None);
        assert_eq!(parse_log_prefix("DROP"), None);
    }
}
