//! One nf_tables expression as a libnftnl object, for a rule to take over.
//!
//! Mechanical: each [`Expr`] variant's attributes set as libnftnl names them.

use std::ffi::{CStr, CString};

use nftnl::nftnl_sys as sys;

use super::{cstring, len_u32, Obj};
use crate::encode::{k, EncodeError, Expr, Verdict};

/// Bytes of register data libnftnl copies into an expression (`NFT_DATA_VALUE_MAXLEN`:
/// its `nftnl_data_reg` holds no more, and libnftnl 1.2.4 copies without checking).
pub(super) const REG_DATA_MAX: usize = 64;

/// Refuses register data libnftnl would copy past its fixed-size field.
fn check_data(e: &Expr) -> Result<(), EncodeError> {
    let fits = |v: &[u8]| v.len() <= REG_DATA_MAX;
    let ok = match e {
        Expr::Cmp { data, .. } => fits(data),
        Expr::Bitwise { mask, xor, .. } => fits(mask) && fits(xor) && mask.len() == xor.len(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(EncodeError::new(format!(
            "expression {e:?}: register data over {REG_DATA_MAX} bytes (or a mask and xor \
             of different lengths)"
        )))
    }
}

/// One attribute of an expression, as libnftnl sets it.
enum Attr<'a> {
    U32(u32, u32),
    U16(u32, u16),
    U8(u32, u8),
    Data(u32, &'a [u8]),
    Str(u32, CString),
}

/// `e` as a libnftnl expression, its data checked first ([`REG_DATA_MAX`]).
pub(super) fn expr_obj(e: &Expr) -> Result<Obj<sys::nftnl_expr>, EncodeError> {
    check_data(e)?;
    let (name, attrs) = attrs(e)?;
    // SAFETY: `name` is a NUL-terminated string that libnftnl only reads; ownership of
    // the expression goes to `Obj`, which refuses a null pointer (no memory, or a libnftnl
    // without this expression type).
    let ex = Obj::try_new(
        unsafe { sys::nftnl_expr_alloc(name.as_ptr()) },
        sys::nftnl_expr_free,
    )
    .ok_or_else(|| EncodeError::new(format!("libnftnl could not make a {name:?} expression")))?;
    let p = ex.as_ptr();
    for attr in &attrs {
        match attr {
            // SAFETY: `p` is a live expression of the type that has `a` as a u32.
            Attr::U32(a, v) => unsafe { sys::nftnl_expr_set_u32(p, *a as u16, *v) },
            // SAFETY: as above, for a u16.
            Attr::U16(a, v) => unsafe { sys::nftnl_expr_set_u16(p, *a as u16, *v) },
            // SAFETY: as above, for a u8.
            Attr::U8(a, v) => unsafe { sys::nftnl_expr_set_u8(p, *a as u16, *v) },
            // SAFETY: as above; register data was checked to fit libnftnl's field
            // (`check_data`), and is copied.
            Attr::Data(a, v) => unsafe {
                sys::nftnl_expr_set(p, *a as u16, v.as_ptr().cast(), len_u32(v));
            },
            // SAFETY: as above; the string outlives the call and is copied.
            Attr::Str(a, v) => unsafe {
                sys::nftnl_expr_set_str(p, *a as u16, v.as_ptr());
            },
        };
    }
    Ok(ex)
}

/// The expression type of `e` and its attributes, as libnftnl names them.
fn attrs(e: &Expr) -> Result<(&'static CStr, Vec<Attr<'_>>), EncodeError> {
    match e {
        Expr::Cmp { .. }
        | Expr::Bitwise { .. }
        | Expr::Lookup { .. }
        | Expr::Objref { .. }
        | Expr::Log { .. } => data_attrs(e),
        _ => Ok(register_attrs(e)),
    }
}

/// [`attrs`] of the expressions with byte strings (register data, a set or object
/// name, a log prefix).
fn data_attrs(e: &Expr) -> Result<(&'static CStr, Vec<Attr<'_>>), EncodeError> {
    use Attr::{Data, U32};
    Ok(match e {
        Expr::Cmp { sreg, op, data } => (
            c"cmp",
            vec![
                U32(sys::NFTNL_EXPR_CMP_SREG, *sreg),
                U32(sys::NFTNL_EXPR_CMP_OP, *op),
                Data(sys::NFTNL_EXPR_CMP_DATA, data),
            ],
        ),
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => (
            c"bitwise",
            vec![
                U32(sys::NFTNL_EXPR_BITWISE_SREG, *sreg),
                U32(sys::NFTNL_EXPR_BITWISE_DREG, *dreg),
                U32(sys::NFTNL_EXPR_BITWISE_LEN, len_u32(mask)),
                Data(sys::NFTNL_EXPR_BITWISE_MASK, mask),
                Data(sys::NFTNL_EXPR_BITWISE_XOR, xor),
            ],
        ),
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
        } => {
            let mut a = vec![U32(sys::NFTNL_EXPR_LOOKUP_SREG, *sreg)];
            a.extend(dreg.map(|d| U32(sys::NFTNL_EXPR_LOOKUP_DREG, d)));
            a.push(Attr::Str(sys::NFTNL_EXPR_LOOKUP_SET, cstring(set)?));
            a.push(U32(sys::NFTNL_EXPR_LOOKUP_SET_ID, *set_id));
            (c"lookup", a)
        }
        Expr::Objref { kind, name } => (
            c"objref",
            vec![
                U32(sys::NFTNL_EXPR_OBJREF_IMM_TYPE, *kind),
                Attr::Str(sys::NFTNL_EXPR_OBJREF_IMM_NAME, cstring(name)?),
            ],
        ),
        // The prefix first, then the group: nft's order.
        Expr::Log { prefix, group } => (
            c"log",
            vec![
                Attr::Str(sys::NFTNL_EXPR_LOG_PREFIX, cstring(prefix)?),
                Attr::U16(sys::NFTNL_EXPR_LOG_GROUP, *group),
            ],
        ),
        _ => unreachable!("attrs sends only these here"),
    })
}

/// [`attrs`] of the expressions of registers and numbers only.
fn register_attrs(e: &Expr) -> (&'static CStr, Vec<Attr<'_>>) {
    use Attr::U32;
    match e {
        Expr::Meta { key, dreg } => (
            c"meta",
            vec![
                U32(sys::NFTNL_EXPR_META_KEY, *key),
                U32(sys::NFTNL_EXPR_META_DREG, *dreg),
            ],
        ),
        Expr::Ct { key, dreg } => (
            c"ct",
            vec![
                U32(sys::NFTNL_EXPR_CT_KEY, *key),
                U32(sys::NFTNL_EXPR_CT_DREG, *dreg),
            ],
        ),
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => (
            c"payload",
            vec![
                U32(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg),
                U32(sys::NFTNL_EXPR_PAYLOAD_BASE, *base),
                U32(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset),
                U32(sys::NFTNL_EXPR_PAYLOAD_LEN, *len),
            ],
        ),
        Expr::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => (
            c"byteorder",
            vec![
                U32(sys::NFTNL_EXPR_BYTEORDER_SREG, *sreg),
                U32(sys::NFTNL_EXPR_BYTEORDER_DREG, *dreg),
                U32(sys::NFTNL_EXPR_BYTEORDER_OP, *op),
                U32(sys::NFTNL_EXPR_BYTEORDER_LEN, *len),
                U32(sys::NFTNL_EXPR_BYTEORDER_SIZE, *size),
            ],
        ),
        Expr::Counter => (c"counter", vec![]),
        Expr::Immediate(v) => {
            let code = match v {
                Verdict::Accept => k::NF_ACCEPT_VERDICT,
                Verdict::Drop => k::NF_DROP,
            };
            let a = vec![
                U32(sys::NFTNL_EXPR_IMM_DREG, k::NFT_REG_VERDICT),
                U32(sys::NFTNL_EXPR_IMM_VERDICT, code as u32),
            ];
            (c"immediate", a)
        }
        Expr::Reject { kind, code } => (
            c"reject",
            vec![
                U32(sys::NFTNL_EXPR_REJECT_TYPE, *kind),
                Attr::U8(sys::NFTNL_EXPR_REJECT_CODE, *code),
            ],
        ),
        Expr::Cmp { .. }
        | Expr::Bitwise { .. }
        | Expr::Lookup { .. }
        | Expr::Objref { .. }
        | Expr::Log { .. } => {
            unreachable!("attrs sends these to data_attrs")
        }
    }
}
