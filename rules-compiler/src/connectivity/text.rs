//! A [`Diff`] as text for people: short enough to read in review, grouped by the
//! receiving end. Lays out; decides nothing.

use std::fmt::Write as _;

use super::{Allowed, Diff, FamilyTag, Node};

/// `  (IPv4 only)` and the like, after a label.
fn family_note(tag: FamilyTag) -> &'static str {
    match tag {
        FamilyTag::Any => "",
        FamilyTag::V4 => " (IPv4 only)",
        FamilyTag::V6 => " (IPv6 only)",
    }
}

/// One set as a label, with its family note.
pub(super) fn tagged_label(tag: FamilyTag, set: &Allowed) -> String {
    format!("{}{}", set.label(), family_note(tag))
}

impl Diff {
    /// The change for people:
    ///
    /// ```text
    /// connectivity: +1 flow allowed, -0 denied
    ///
    /// payments/payments-api
    ///   + web/frontend  8080/TCP
    /// ```
    ///
    /// `+` is denied → allowed, `-` allowed → denied; `all` is every protocol and port,
    /// `*` every port, `other` the protocols without ports (ICMP …).
    pub fn render_text(&self) -> String {
        let mut out = format!("connectivity: {}\n", self.summary());
        let list = |names: &[crate::model::ObjectName]| {
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.endpoints_added.is_empty() {
            let _ = writeln!(
                out,
                "new endpoints (every flow to or from them is added): {}",
                list(&self.endpoints_added)
            );
        }
        if !self.endpoints_removed.is_empty() {
            let _ = writeln!(
                out,
                "gone endpoints (every flow to or from them is removed): {}",
                list(&self.endpoints_removed)
            );
        }
        let width = self
            .pairs
            .iter()
            .map(|p| p.from.to_string().len())
            .max()
            .unwrap_or(0);
        let mut to: Option<&Node> = None;
        for p in &self.pairs {
            if to != Some(&p.to) {
                let _ = write!(out, "\n{}\n", p.to);
                to = Some(&p.to);
            }
            for (sign, sets) in [('+', p.added()), ('-', p.removed())] {
                for (tag, set) in sets {
                    let from = p.from.to_string();
                    let _ = writeln!(out, "  {sign} {from:width$}  {}", tagged_label(tag, &set));
                }
            }
        }
        out
    }
}
