//! One nf_tables expression as a libnftnl object, for a rule to take over.
//!
//! Mechanical: each [`Expr`] variant's attributes set as libnftnl names them.

use std::ffi::CStr;

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

/// `e` as a libnftnl expression, its data checked first ([`REG_DATA_MAX`]).
pub(super) fn expr_obj(e: &Expr) -> Result<Obj<sys::nftnl_expr>, EncodeError> {
    check_data(e)?;
    let name: &CStr = match e {
        Expr::Meta { .. } => c"meta",
        Expr::Ct { .. } => c"ct",
        Expr::Cmp { .. } => c"cmp",
        Expr::Bitwise { .. } => c"bitwise",
        Expr::Payload { .. } => c"payload",
        Expr::Byteorder { .. } => c"byteorder",
        Expr::Lookup { .. } => c"lookup",
        Expr::Counter => c"counter",
        Expr::Immediate(_) => c"immediate",
        Expr::Reject { .. } => c"reject",
    };
    // SAFETY: `name` is a NUL-terminated string that libnftnl only reads; ownership of
    // the expression goes to `Obj`, which refuses a null pointer (no memory, or a libnftnl
    // without this expression type).
    let ex = Obj::try_new(
        unsafe { sys::nftnl_expr_alloc(name.as_ptr()) },
        sys::nftnl_expr_free,
    )
    .ok_or_else(|| EncodeError::new(format!("libnftnl could not make a {name:?} expression")))?;
    let p = ex.as_ptr();
    let u32_ = |attr: u32, v: u32| {
        // SAFETY: `p` is a live expression of the type that has `attr` as a u32.
        unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) }
    };
    let data = |attr: u32, v: &[u8]| {
        // SAFETY: as above; register data was checked to fit libnftnl's field
        // (`check_data`), and is copied.
        unsafe { sys::nftnl_expr_set(p, attr as u16, v.as_ptr().cast(), len_u32(v)) };
    };
    match e {
        Expr::Meta { key, dreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, *key);
            u32_(sys::NFTNL_EXPR_META_DREG, *dreg);
        }
        Expr::Ct { key, dreg } => {
            u32_(sys::NFTNL_EXPR_CT_KEY, *key);
            u32_(sys::NFTNL_EXPR_CT_DREG, *dreg);
        }
        Expr::Cmp { sreg, op, data: d } => {
            u32_(sys::NFTNL_EXPR_CMP_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_CMP_OP, *op);
            data(sys::NFTNL_EXPR_CMP_DATA, d);
        }
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            u32_(sys::NFTNL_EXPR_BITWISE_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_BITWISE_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_BITWISE_LEN, len_u32(mask));
            data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
            data(sys::NFTNL_EXPR_BITWISE_XOR, xor);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, *base);
            u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
            u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
        }
        Expr::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => {
            u32_(sys::NFTNL_EXPR_BYTEORDER_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_BYTEORDER_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_BYTEORDER_OP, *op);
            u32_(sys::NFTNL_EXPR_BYTEORDER_LEN, *len);
            u32_(sys::NFTNL_EXPR_BYTEORDER_SIZE, *size);
        }
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
        } => {
            let set = cstring(set)?;
            u32_(sys::NFTNL_EXPR_LOOKUP_SREG, *sreg);
            if let Some(dreg) = dreg {
                u32_(sys::NFTNL_EXPR_LOOKUP_DREG, *dreg);
            }
            // SAFETY: `p` is a live lookup expression; the string is copied.
            unsafe { sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, set.as_ptr()) };
            u32_(sys::NFTNL_EXPR_LOOKUP_SET_ID, *set_id);
        }
        Expr::Counter => {}
        Expr::Immediate(v) => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, k::NFT_REG_VERDICT);
            let code = match v {
                Verdict::Accept => k::NF_ACCEPT_VERDICT,
                Verdict::Drop => k::NF_DROP,
            };
            u32_(sys::NFTNL_EXPR_IMM_VERDICT, code as u32);
        }
        Expr::Reject { kind, code } => {
            u32_(sys::NFTNL_EXPR_REJECT_TYPE, *kind);
            // SAFETY: `p` is a live reject expression, whose code is a u8.
            unsafe { sys::nftnl_expr_set_u8(p, sys::NFTNL_EXPR_REJECT_CODE as u16, *code) };
        }
    }
    Ok(ex)
}
