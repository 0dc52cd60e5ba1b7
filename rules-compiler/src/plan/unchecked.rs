//! Plans the checked constructors refuse (overlapping elements, a set twice, a jump to
//! a missing chain), for tests of what a backend and the kernel do with a batch they
//! reject. Feature `test-support` only: a production build cannot make one.

use std::net::IpAddr;

use super::{
    AddrProtoPort, AddrProtoPorts, AddrRange, AddrRanges, Chain, Delta, Family, LocalEndpoint,
    Plan, Set, SetDelta, SetElements, VerdictMap,
};

/// Address ranges as given.
pub fn addr_ranges(v: Vec<AddrRange>) -> AddrRanges {
    AddrRanges(v)
}

/// Address · protocol · port elements as given.
pub fn addr_proto_ports(v: Vec<AddrProtoPort>) -> AddrProtoPorts {
    AddrProtoPorts(v)
}

/// A set as given.
pub fn set(name: &str, family: Family, elements: SetElements) -> Set {
    Set {
        name: name.into(),
        family,
        elements,
    }
}

/// A verdict map as given.
pub fn map(name: &str, family: Family, elements: Vec<(IpAddr, String)>) -> VerdictMap {
    VerdictMap {
        name: name.into(),
        family,
        elements,
    }
}

/// A plan as given.
pub fn plan(
    table: &str,
    sets: Vec<Set>,
    maps: Vec<VerdictMap>,
    chains: Vec<Chain>,
    locals: Vec<LocalEndpoint>,
) -> Plan {
    Plan {
        table: table.into(),
        sets,
        maps,
        chains,
        locals,
        limits: Vec::new(),
    }
}

/// `delta` with one more set change, as given.
pub fn with_set_change(
    mut delta: Delta,
    name: &str,
    family: Family,
    delete: SetElements,
    add: SetElements,
) -> Delta {
    delta.sets.push(SetDelta {
        name: name.into(),
        family,
        delete,
        add,
    });
    delta
}
