//! Netlink framing read in plain Rust: message headers, acknowledgements and errors
//! with their extended-ack attribute offset, and the attribute walk that turns such
//! an offset into "element 17 of this message".
//!
//! Pure parsing of bytes the kernel sent: no socket, no libnftnl, and no judgement of
//! what an answer means for the batch (that is `netlink::transact`'s).

/// `NLMSG_ERROR`: an acknowledgement (error 0) or an error.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub(crate) const NLMSG_DONE: u16 = 3;
/// The dump was interrupted by a change: its content may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;
pub(crate) const HDRLEN: usize = 16;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A netlink message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

/// The header at the start of `b`.
pub(crate) fn header(b: &[u8]) -> Option<Header> {
    Some(Header {
        len: u32_at(b, 0)?,
        kind: u16_at(b, 4)?,
        flags: u16_at(b, 6)?,
        seq: u32_at(b, 8)?,
        pid: u32_at(b, 12)?,
    })
}

/// The messages of one datagram, each as its header and its complete bytes. Stops at
/// the first malformed one.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = header(buf.get(at..)?)?;
        let len = h.len as usize;
        if len < HDRLEN || at + len > buf.len() {
            return None;
        }
        let msg = &buf[at..at + len];
        at += align4(len);
        Some((h, msg))
    })
}

/// An `NLMSG_ERROR` message read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ack {
    /// 0 for an acknowledgement, else a positive errno.
    pub errno: i32,
    /// Sequence number of the request it answers.
    pub seq: u32,
    /// Offset of the failing attribute in the request, from its header.
    pub offset: Option<u32>,
    /// The kernel's own words, when it gave some.
    pub text: Option<String>,
}

/// Reads an `NLMSG_ERROR` message (header included).
pub(crate) fn parse_ack(msg: &[u8]) -> Option<Ack> {
    let h = header(msg)?;
    if h.kind != NLMSG_ERROR {
        return None;
    }
    let error = i32::from_ne_bytes(msg.get(HDRLEN..HDRLEN + 4)?.try_into().ok()?);
    let orig = header(msg.get(HDRLEN + 4..)?)?;
    let mut ack = Ack {
        errno: error.checked_neg().unwrap_or(i32::MAX).max(0),
        seq: orig.seq,
        offset: None,
        text: None,
    };
    if h.flags & NLM_F_ACK_TLVS != 0 {
        let tlvs = if h.flags & NLM_F_CAPPED != 0 {
            HDRLEN + 4 + HDRLEN
        } else {
            HDRLEN + 4 + align4(orig.len as usize)
        };
        let mut at = tlvs;
        while let (Some(len), Some(kind)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
            let len = usize::from(len);
            if len < 4 || at + len > msg.len() {
                break;
            }
            let value = &msg[at + 4..at + len];
            match kind & NLA_TYPE_MASK {
                NLMSGERR_ATTR_OFFS => ack.offset = u32_at(value, 0),
                NLMSGERR_ATTR_MSG => {
                    let text = value.split(|b| *b == 0).next().unwrap_or_default();
                    ack.text = Some(String::from_utf8_lossy(text).into_owned());
                }
                _ => {}
            }
            at += align4(len);
        }
    }
    Some(ack)
}

/// The attributes in `b[from..to]`: (type, start, length) of each.
pub(crate) fn attrs(
    b: &[u8],
    from: usize,
    to: usize,
) -> impl Iterator<Item = (u16, usize, usize)> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)?;
        if len < 4 || at + len > to {
            return None;
        }
        let item = (kind & NLA_TYPE_MASK, at, len);
        at += align4(len);
        Some(item)
    })
}

/// In a `NFT_MSG_NEWSETELEM` message, the byte range (start, length) of each element.
pub(crate) fn elem_spans(msg: &[u8]) -> Vec<(usize, usize)> {
    let Some(h) = header(msg) else {
        return Vec::new();
    };
    let len = (h.len as usize).min(msg.len());
    // The message: header, nfgenmsg (4 bytes), attributes.
    let Some((_, start, alen)) =
        attrs(msg, HDRLEN + 4, len).find(|(t, _, _)| *t == NFTA_SET_ELEM_LIST_ELEMENTS)
    else {
        return Vec::new();
    };
    attrs(msg, start + 4, start + alen)
        .map(|(_, s, l)| (s, l))
        .collect()
}

/// In a `NFT_MSG_NEWSETELEM` message, the index of the element whose attributes hold
/// byte `offset` (as the kernel reports a failing element).
pub(crate) fn elem_index_at(msg: &[u8], offset: usize) -> Option<usize> {
    elem_spans(msg)
        .iter()
        .position(|(s, l)| (*s..*s + *l).contains(&offset))
}

/// The comment in a rule's user data (`NFTNL_UDATA_RULE_COMMENT` TLV, NUL-terminated).
pub(crate) fn udata_comment(b: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 2 <= b.len() {
        let (kind, len) = (b[at], usize::from(b[at + 1]));
        let value = b.get(at + 2..at + 2 + len)?;
        if kind == 0 {
            let text = value.split(|c| *c == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        v.resize(align4(v.len()), 0);
        v
    }

    #[test]
    fn capped_error_with_offset_and_message() {
        let mut tlvs = attr(NLMSGERR_ATTR_MSG, b"bad key\0");
        tlvs.extend(attr(NLMSGERR_ATTR_OFFS, &48u32.to_ne_bytes()));
        let mut msg = hdr(0, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 5);
        msg.extend_from_slice(&(-17i32).to_ne_bytes());
        msg.extend(hdr(300, 0x0a0c, 0, 5));
        msg.extend(tlvs);
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        let ack = parse_ack(&msg).unwrap();
        assert_eq!(
            ack,
            Ack {
                errno: 17,
                seq: 5,
                offset: Some(48),
                text: Some("bad key".into())
            }
        );
    }

    #[test]
    fn plain_ack_and_message_iteration() {
        let mut one = hdr(36, NLMSG_ERROR, 0, 9);
        one.extend_from_slice(&0i32.to_ne_bytes());
        one.extend(hdr(20, 0x0a11, 0, 9));
        let mut two = hdr(20, NLMSG_DONE, 0, 10);
        two.extend_from_slice(&[0; 4]);
        let buf = [one.clone(), two].concat();
        let kinds: Vec<u16> = messages(&buf).map(|(h, _)| h.kind).collect();
        assert_eq!(kinds, vec![NLMSG_ERROR, NLMSG_DONE]);
        let ack = parse_ack(&one).unwrap();
        assert_eq!((ack.errno, ack.seq, ack.offset), (0, 9, None));
        // A truncated datagram yields what is complete and stops.
        assert_eq!(messages(&buf[..40]).count(), 1);
    }

    #[test]
    fn offset_maps_to_element_index() {
        let elem = |k: u8| attr(1 | 0x8000, &attr(1, &attr(1, &[198, 18, 0, k])));
        let list = [elem(1), elem(2), elem(3)].concat();
        let mut msg = hdr(0, 0x0a0c, 0, 3);
        msg.extend_from_slice(&[1, 0, 0, 10]);
        msg.extend(attr(1, b"netpol\0"));
        msg.extend(attr(2, b"s\0"));
        let list_at = msg.len();
        msg.extend(attr(NFTA_SET_ELEM_LIST_ELEMENTS | 0x8000, &list));
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        let each = elem(1).len();
        let first = list_at + 4;
        assert_eq!(elem_index_at(&msg, first), Some(0));
        assert_eq!(elem_index_at(&msg, first + each + 8), Some(1));
        assert_eq!(elem_index_at(&msg, first + 2 * each), Some(2));
        assert_eq!(elem_index_at(&msg, 20), None);
    }

    #[test]
    fn comment_from_user_data() {
        let mut u = vec![0u8, 6];
        u.extend_from_slice(b"deny!\0");
        assert_eq!(udata_comment(&u).as_deref(), Some("deny!"));
        let other = [1u8, 1, 9, 0, 3, b'a', b'b', 0];
        assert_eq!(udata_comment(&other).as_deref(), Some("ab"));
        assert_eq!(udata_comment(&[1, 1, 9]), None);
    }
}
