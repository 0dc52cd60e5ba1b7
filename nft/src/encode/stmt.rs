//! Each statement of a plan's chain as the rule (or rules, and anonymous set) that nft
//! makes of the same text: one method per statement shape.
//!
//! Pure, like the rest of `encode`: expressions as plain data, registers as nft
//! allocates them. Which statements a chain has is the compiler's decision.

use rules_compiler::plan::{
    log_prefix, AddrField, DenyAction, Family, Hook, Stmt, ICMPV6_ALWAYS, PORT_PROTOCOLS,
};

use super::{k, udata, Elem, ElemSource, EncodeError, Encoder, Expr, Key, Msg, SetDef, Verdict};

const R1: u32 = k::NFT_REG_1;

impl Encoder<'_> {
    /// The rule (or rules) of statement `n` of `chain`.
    pub(super) fn stmt(&mut self, chain: &str, n: usize, stmt: &Stmt) -> Result<(), EncodeError> {
        let what = format!("rule {n} of chain {chain}");
        match stmt {
            Stmt::CtEstablishedAccept => {
                self.ct_state(chain, what, k::CT_ESTABLISHED_RELATED, Verdict::Accept);
            }
            Stmt::CtInvalidDrop => self.ct_state(chain, what, k::CT_INVALID, Verdict::Drop),
            Stmt::LoopbackAccept(hook) => self.loopback_accept(chain, what, *hook),
            Stmt::NeighbourDiscoveryAccept => self.neighbour_discovery_accept(chain, what),
            Stmt::Dispatch { family, field, map } => {
                self.dispatch(chain, what, *family, *field, map)?;
            }
            Stmt::AcceptAddr { family, field, set } => {
                self.accept_addr(chain, what, *family, *field, set)?;
            }
            Stmt::AcceptAddrProtoPort { family, field, set } => {
                self.accept_addr_proto_port(chain, what, *family, *field, set)?;
            }
            Stmt::TierPorts { family, field, map } => {
                let exprs = self.addr_proto_port_lookup(
                    &what,
                    *family,
                    *field,
                    map,
                    Some(k::NFT_REG_VERDICT),
                )?;
                self.rule(chain, what, exprs, None);
            }
            // An address looked up in a verdict map, as the dispatch rules are.
            Stmt::TierClass { family, field, map } => {
                self.dispatch(chain, what, *family, *field, map)?;
            }
            Stmt::TierOther { family, field, map } => {
                // `meta l4proto != 6 meta l4proto != 17 meta l4proto != 132`, as nft
                // encodes the three comparisons: a load before each.
                let mut exprs = Vec::new();
                for proto in PORT_PROTOCOLS {
                    exprs.push(Expr::Meta {
                        key: k::NFT_META_L4PROTO,
                        dreg: R1,
                    });
                    exprs.push(Expr::Cmp {
                        sreg: R1,
                        op: k::NFT_CMP_NEQ,
                        data: vec![proto],
                    });
                }
                exprs.extend(self.addr_lookup(
                    &what,
                    *family,
                    *field,
                    map,
                    Some(k::NFT_REG_VERDICT),
                )?);
                self.rule(chain, what, exprs, None);
            }
            Stmt::Deny { action, comment } => self.deny(chain, what, action, comment)?,
            Stmt::Audit { comment } => {
                let exprs = vec![Expr::Counter, Expr::Immediate(Verdict::Accept)];
                self.rule(chain, what, exprs, Some(comment.to_string()));
            }
            Stmt::Log {
                verdict,
                direction,
                group,
                limit,
            } => self.log(chain, what, log_prefix(*verdict, *direction), *group, limit)?,
        }
        Ok(())
    }

    /// `ct state established,related accept` / `ct state invalid drop`: the state bits
    /// masked, compared with zero.
    fn ct_state(&mut self, chain: &str, what: String, bits: u32, verdict: Verdict) {
        let exprs = vec![
            Expr::Ct {
                key: k::NFT_CT_STATE,
                dreg: R1,
            },
            Expr::Bitwise {
                sreg: R1,
                dreg: R1,
                mask: bits.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Expr::Cmp {
                sreg: R1,
                op: k::NFT_CMP_NEQ,
                data: vec![0; 4],
            },
            Expr::Immediate(verdict),
        ];
        self.rule(chain, what, exprs, None);
    }

    /// `iifname "lo" accept` (input) / `oifname "lo" accept` (output).
    fn loopback_accept(&mut self, chain: &str, what: String, hook: Hook) {
        let key = match hook {
            Hook::Input => k::NFT_META_IIFNAME,
            Hook::Output => k::NFT_META_OIFNAME,
        };
        let mut name = vec![0u8; 16];
        name[..2].copy_from_slice(b"lo");
        let exprs = vec![
            Expr::Meta { key, dreg: R1 },
            Expr::Cmp {
                sreg: R1,
                op: k::NFT_CMP_EQ,
                data: name,
            },
            Expr::Immediate(Verdict::Accept),
        ];
        self.rule(chain, what, exprs, None);
    }

    /// `meta nfproto ipv6 icmpv6 type { … } accept`: an anonymous constant set of the
    /// neighbour discovery types, made right before its rule.
    fn neighbour_discovery_accept(&mut self, chain: &str, what: String) {
        let id = self.new_set_id();
        let set_what = format!("the ICMPv6 type set of {what}");
        self.push(
            Msg::NewSet(SetDef {
                name: "__set%d".into(),
                id,
                flags: k::NFT_SET_ANONYMOUS | k::NFT_SET_CONSTANT,
                key_type: k::TYPE_ICMP6_TYPE,
                key_len: 1,
                verdict_map: false,
                size: Some(ICMPV6_ALWAYS.len() as u32),
                concat: Vec::new(),
                udata: udata::ICMPV6_TYPE_SET,
            }),
            set_what.clone(),
        );
        let elems = ICMPV6_ALWAYS
            .iter()
            .enumerate()
            .map(|(i, t)| Elem {
                key: Key::new(&[&[*t]]),
                key_end: None,
                interval_end: false,
                open: false,
                verdict: None,
                origin: i as u32,
            })
            .collect();
        self.elems("__set%d", id, ElemSource::Icmpv6Types, elems, &set_what);
        let exprs = vec![
            Expr::Meta {
                key: k::NFT_META_NFPROTO,
                dreg: R1,
            },
            Expr::Cmp {
                sreg: R1,
                op: k::NFT_CMP_EQ,
                data: vec![k::NFPROTO_IPV6],
            },
            Expr::Meta {
                key: k::NFT_META_L4PROTO,
                dreg: R1,
            },
            Expr::Cmp {
                sreg: R1,
                op: k::NFT_CMP_EQ,
                data: vec![k::IPPROTO_ICMPV6],
            },
            Expr::Payload {
                base: k::NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 0,
                len: 1,
                dreg: R1,
            },
            Expr::Lookup {
                sreg: R1,
                dreg: None,
                set: "__set%d".into(),
                set_id: id,
            },
            Expr::Immediate(Verdict::Accept),
        ];
        self.rule(chain, what, exprs, None);
    }

    /// `ip daddr vmap @map`: the address looked up in a verdict map.
    fn dispatch(
        &mut self,
        chain: &str,
        what: String,
        family: Family,
        field: AddrField,
        map: &str,
    ) -> Result<(), EncodeError> {
        let exprs = self.addr_lookup(&what, family, field, map, Some(k::NFT_REG_VERDICT))?;
        self.rule(chain, what, exprs, None);
        Ok(())
    }

    /// The address loaded and looked up in `set` (a verdict map when `dreg` is the
    /// verdict register).
    fn addr_lookup(
        &self,
        what: &str,
        family: Family,
        field: AddrField,
        set: &str,
        dreg: Option<u32>,
    ) -> Result<Vec<Expr>, EncodeError> {
        let set_id = self.set_id(set, what)?;
        let mut exprs = addr_load(family, field, 0);
        exprs.push(Expr::Lookup {
            sreg: R1,
            dreg,
            set: self.slot.name(set),
            set_id,
        });
        Ok(exprs)
    }

    /// `ip saddr @set accept`.
    fn accept_addr(
        &mut self,
        chain: &str,
        what: String,
        family: Family,
        field: AddrField,
        set: &str,
    ) -> Result<(), EncodeError> {
        let mut exprs = self.addr_lookup(&what, family, field, set, None)?;
        exprs.push(Expr::Immediate(Verdict::Accept));
        self.rule(chain, what, exprs, None);
        Ok(())
    }

    /// `ip saddr . meta l4proto . th dport @set accept`: the address, the protocol and
    /// the port in consecutive registers, looked up together.
    fn accept_addr_proto_port(
        &mut self,
        chain: &str,
        what: String,
        family: Family,
        field: AddrField,
        set: &str,
    ) -> Result<(), EncodeError> {
        let mut exprs = self.addr_proto_port_lookup(&what, family, field, set, None)?;
        exprs.push(Expr::Immediate(Verdict::Accept));
        self.rule(chain, what, exprs, None);
        Ok(())
    }

    /// The address, the protocol and the port loaded and looked up in `set` (a verdict
    /// map when `dreg` is the verdict register).
    fn addr_proto_port_lookup(
        &self,
        what: &str,
        family: Family,
        field: AddrField,
        set: &str,
        dreg: Option<u32>,
    ) -> Result<Vec<Expr>, EncodeError> {
        let set_id = self.set_id(set, what)?;
        let mut exprs = addr_load(family, field, 0);
        // The protocol and the port follow the address in the next 32-bit slots.
        let proto = match family {
            Family::V4 => 1,
            Family::V6 => 4,
        };
        exprs.extend([
            Expr::Meta {
                key: k::NFT_META_L4PROTO,
                dreg: reg(proto),
            },
            // nft emits this (a no-op for one byte) for the host-order protocol inside
            // a concatenation; kept so both renderings list the same.
            Expr::Byteorder {
                sreg: reg(proto),
                dreg: reg(proto),
                op: k::NFT_BYTEORDER_HTON,
                len: 1,
                size: 2,
            },
            Expr::Payload {
                base: k::NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 2,
                len: 2,
                dreg: reg(proto + 1),
            },
            Expr::Lookup {
                sreg: R1,
                dreg,
                set: self.slot.name(set),
                set_id,
            },
        ]);
        Ok(exprs)
    }

    /// `limit name "L" counter log prefix "P" group G`: within the named limit (the
    /// slot's), counted, to NFLOG. The counter counts what was logged; what the limit
    /// held back is the chain's deny (or audit) counter less this one.
    fn log(
        &mut self,
        chain: &str,
        what: String,
        prefix: &str,
        group: u16,
        limit: &str,
    ) -> Result<(), EncodeError> {
        if !self.plan.limits().iter().any(|l| l.name() == limit) {
            return Err(EncodeError::new(format!(
                "{what} uses limit {limit}, which the plan does not define"
            )));
        }
        let exprs = vec![
            Expr::Objref {
                kind: k::NFT_OBJECT_LIMIT,
                name: self.slot.name(limit),
            },
            Expr::Counter,
            Expr::Log {
                prefix: prefix.to_string(),
                group,
            },
        ];
        self.rule(chain, what, exprs, None);
        Ok(())
    }

    /// `counter drop comment "…"`, or for `reject` the counter rule, then a TCP reset
    /// for TCP and an ICMP(v6) administratively-prohibited for the rest (as render
    /// writes it).
    fn deny(
        &mut self,
        chain: &str,
        what: String,
        action: &DenyAction,
        comment: &str,
    ) -> Result<(), EncodeError> {
        // Within nft's limit and without a NUL: `Chain::new` checked it.
        match action {
            DenyAction::Drop => {
                let exprs = vec![Expr::Counter, Expr::Immediate(Verdict::Drop)];
                self.rule(chain, what, exprs, Some(comment.to_string()));
            }
            DenyAction::Reject => {
                let comment = Some(comment.to_string());
                self.rule(chain, what.clone(), vec![Expr::Counter], comment);
                let exprs = vec![
                    Expr::Meta {
                        key: k::NFT_META_L4PROTO,
                        dreg: R1,
                    },
                    Expr::Cmp {
                        sreg: R1,
                        op: k::NFT_CMP_EQ,
                        data: vec![k::IPPROTO_TCP],
                    },
                    Expr::Reject {
                        kind: k::NFT_REJECT_TCP_RST,
                        code: 0,
                    },
                ];
                self.rule(chain, format!("{what} (tcp reset)"), exprs, None);
                let exprs = vec![Expr::Reject {
                    kind: k::NFT_REJECT_ICMPX_UNREACH,
                    code: k::NFT_REJECT_ICMPX_ADMIN_PROHIBITED,
                }];
                self.rule(chain, format!("{what} (icmpx reject)"), exprs, None);
            }
        }
        Ok(())
    }
}

/// A 32-bit register slot as nft names it: slots that start a 128-bit register use
/// that register's number (`NFT_REG_1` …), others `NFT_REG32_xx`.
pub(super) fn reg(slot: u32) -> u32 {
    if slot % 4 == 0 {
        k::NFT_REG_1 + slot / 4
    } else {
        k::NFT_REG32_00 + slot
    }
}

/// `meta nfproto ipvN` then the address into the register at `slot`: in an inet table
/// the family must be checked before the network header is read.
fn addr_load(family: Family, field: AddrField, slot: u32) -> Vec<Expr> {
    let (nfproto, offset, len) = match (family, field) {
        (Family::V4, AddrField::Saddr) => (k::NFPROTO_IPV4, 12, 4),
        (Family::V4, AddrField::Daddr) => (k::NFPROTO_IPV4, 16, 4),
        (Family::V6, AddrField::Saddr) => (k::NFPROTO_IPV6, 8, 16),
        (Family::V6, AddrField::Daddr) => (k::NFPROTO_IPV6, 24, 16),
    };
    vec![
        Expr::Meta {
            key: k::NFT_META_NFPROTO,
            dreg: k::NFT_REG_1,
        },
        Expr::Cmp {
            sreg: k::NFT_REG_1,
            op: k::NFT_CMP_EQ,
            data: vec![nfproto],
        },
        Expr::Payload {
            base: k::NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
            dreg: reg(slot),
        },
    ]
}
