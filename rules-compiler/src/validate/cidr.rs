//! `ipBlock`: CIDRs and their `except`s.
//!
//! Decision on non-canonical CIDRs: a CIDR with host bits set (`198.18.0.1/24`) is
//! accepted and masked to its network (`198.18.0.0/24`) with a warning, because the API
//! server accepts it and implementations match the whole block; rejecting it would make
//! policies that a cluster runs fail here. The same goes for each `except`. An address
//! without a prefix length (`198.18.0.1`) is an error: Kubernetes rejects it, and
//! guessing `/32` could hide a typo. An IPv4-mapped block (`::ffff:198.18.0.0/112`) is an
//! error naming the IPv4 block to write: it would never match IPv4 traffic.

use crate::diag::quote;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::decode::{self, index, Ctx};
use crate::load::Node;
use crate::model::IpBlock;

/// An `ipBlock`, decoded strictly.
pub(super) fn ip_block(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<IpBlock> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["cidr", "except"]);
    let cidr_field = m.field("cidr");
    let cidr = m
        .required(ctx, "cidr", "e.g. cidr: 198.18.0.0/16")
        .and_then(|n| decode::string(ctx, n, &cidr_field).map(|s| (s, n)))
        .and_then(|(s, n)| parse_cidr(ctx, n, &cidr_field, s));

    let except_path = m.field("except");
    let mut except = Vec::new();
    for (i, item) in decode::opt_seq(ctx, m.get("except"), &except_path)
        .iter()
        .enumerate()
    {
        let field = index(&except_path, i);
        let Some(text) = decode::string(ctx, item, &field) else {
            continue;
        };
        let Some(net) = parse_cidr(ctx, item, &field, text) else {
            continue;
        };
        let Some(cidr) = cidr else { continue };
        if let Some(why) = not_inside(&net, &cidr) {
            ctx.error(
                item,
                &field,
                format!("except {text} is not inside cidr {cidr}: {why}"),
            );
        } else {
            except.push(net);
        }
    }
    Some(IpBlock {
        cidr: cidr?,
        except,
    })
}

/// Why `inner` is not strictly inside `outer`, or `None` when it is.
fn not_inside(inner: &IpNet, outer: &IpNet) -> Option<String> {
    match (inner, outer) {
        (IpNet::V4(_), IpNet::V6(_)) => Some("it is IPv4 and the cidr IPv6".to_string()),
        (IpNet::V6(_), IpNet::V4(_)) => Some("it is IPv6 and the cidr IPv4".to_string()),
        _ if inner == outer => {
            Some("it is the whole cidr; an except must be strictly smaller".to_string())
        }
        _ if !outer.contains(inner) => {
            Some("an except must be a smaller block within the cidr".to_string())
        }
        _ => None,
    }
}

/// The IPv4 block an IPv4-mapped IPv6 block (inside `::ffff:0:0/96`) stands for.
/// A block that merely contains that range (`::/0`) is ordinary IPv6.
fn ipv4_mapped(net: &IpNet) -> Option<Ipv4Net> {
    let IpNet::V6(v6) = net else { return None };
    let v4 = v6.network().to_ipv4_mapped()?;
    let len = v6.prefix_len().checked_sub(96)?;
    Ipv4Net::new(v4, len).ok()
}

/// Parses a CIDR, masking host bits with a warning. An IPv4-mapped block is an error:
/// the kernel sees IPv4 traffic with IPv4 addresses, so such a block never matches it,
/// and an `except` written so would not take the IPv4 addresses out.
pub(super) fn parse_cidr(ctx: &mut Ctx<'_>, node: &Node, field: &str, text: &str) -> Option<IpNet> {
    match text.parse::<IpNet>() {
        Ok(net) => {
            if let Some(v4) = ipv4_mapped(&net) {
                ctx.error(
                    node,
                    field,
                    format!(
                        "{text} is an IPv4-mapped IPv6 block; IPv4 traffic never carries these \
                         addresses: use the IPv4 block {}",
                        v4.trunc()
                    ),
                );
                return None;
            }
            let canonical = net.trunc();
            if canonical != net {
                ctx.warning(
                    node,
                    field,
                    format!(
                        "{text} has host bits set; using {canonical}, the whole block, as \
                         Kubernetes implementations do"
                    ),
                );
            }
            Some(canonical)
        }
        Err(_) => {
            let message = match text.parse::<IpAddr>() {
                Ok(ip) => format!(
                    "{text} has no prefix length; write {text}/{} for this one address",
                    if ip.is_ipv4() { 32 } else { 128 }
                ),
                Err(_) => format!(
                    "invalid CIDR {}: expected an IPv4 or IPv6 network such as \
                     198.18.0.0/15 or 2001:db8::/32",
                    quote(text)
                ),
            };
            ctx.error(node, field, message);
            None
        }
    }
}
