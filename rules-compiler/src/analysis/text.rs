//! The matrix and explanations as text for people (`netpolctl matrix`, `explain`).
//! Decides nothing: every answer is computed in [`super`]; this only lays it out.

use std::fmt::Write as _;

use super::{Cell, DecidingTier, Explanation, FamilyFilter, Matrix, Party, Probe, SideExplanation};
use crate::model::Direction;
use crate::resolve::Verdict;

impl Matrix {
    /// The matrix for people: a numbered legend of endpoints, then per probe a grid
    /// (rows send, columns receive) of `.` allowed, `X` denied, `-` no address pair, and
    /// a count. Columns are numbered with their digits stacked so 30 endpoints fit in
    /// 70 columns.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let endpoints = self.probes.first().map_or(&[][..], |p| &p.endpoints[..]);
        let n = endpoints.len();
        let _ = writeln!(
            out,
            "connectivity matrix: row = sender, column = receiver; families: {}",
            self.family
        );
        out.push_str(
            "  .  allowed    X  denied    -  no address pair of a considered family
",
        );
        out.push_str(
            "  the diagonal is self-traffic over loopback: always allowed
",
        );
        if !self.failsafe.is_empty() {
            let entries: Vec<String> = self.failsafe.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  failsafe, accepted before any policy: {}",
                entries.join("; ")
            );
        }
        if self.probes.is_empty() {
            out.push_str("no probes asked\n");
            return out;
        }
        if n == 0 {
            out.push_str("no endpoints in the inventory\n");
            return out;
        }
        let width = n.to_string().len();
        out.push('\n');
        for (i, e) in endpoints.iter().enumerate() {
            let _ = writeln!(out, "  {:>width$}  {e}", i + 1);
        }
        for pm in &self.probes {
            let _ = writeln!(out, "\n{}", pm.probe());
            // Column numbers, one digit per line, right-aligned over their column.
            for digit in 0..width {
                let _ = write!(out, "  {:width$} ", "");
                for j in 1..=n {
                    let s = format!("{j:>width$}");
                    let _ = write!(out, " {}", &s[digit..digit + 1]);
                }
                trim_end(&mut out);
                out.push('\n');
            }
            let (mut allowed, mut denied, mut unpaired) = (0, 0, 0);
            for i in 0..n {
                let _ = write!(out, "  {:>width$} ", i + 1);
                for j in 0..n {
                    let cell = pm.cell(i, j);
                    match cell {
                        Cell::SelfTraffic | Cell::Allowed => allowed += 1,
                        Cell::Denied => denied += 1,
                        Cell::NoAddressPair => unpaired += 1,
                    }
                    let _ = write!(out, " {}", cell.mark());
                }
                out.push('\n');
            }
            let _ = write!(
                out,
                "{}: {allowed} allowed (including {n} self), {denied} denied",
                pm.probe()
            );
            if unpaired > 0 {
                let _ = write!(out, ", {unpaired} without an address pair");
            }
            out.push('\n');
        }
        out
    }
}

fn trim_end(s: &mut String) {
    let len = s.trim_end_matches(' ').len();
    s.truncate(len);
}

impl Explanation {
    /// The families the verdict covers: those of the pairs considered (an IPv4-only
    /// pair under "any" is IPv4), or the filter when there is no pair.
    fn families_shown(&self) -> FamilyFilter {
        let v4 = self.pairs.iter().any(|p| p.from_address.is_ipv4());
        let v6 = self.pairs.iter().any(|p| p.from_address.is_ipv6());
        match (v4, v6) {
            (true, false) => FamilyFilter::V4,
            (false, true) => FamilyFilter::V6,
            _ => self.family,
        }
    }

    /// The explanation for people: the verdict first, then for each address pair the
    /// sender's egress and the receiver's ingress, naming policies and rules.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let verdict = if self.allowed { "ALLOWED" } else { "DENIED" };
        let _ = writeln!(
            out,
            "{} -> {} on {} ({}): {verdict}",
            self.from,
            self.to,
            self.probe,
            self.families_shown()
        );
        if self.self_traffic {
            out.push_str(
                "  self-traffic: it stays on the host's loopback interface, which the data plane always accepts\n",
            );
            return out;
        }
        if self.pairs.is_empty() {
            let _ = writeln!(
                out,
                "  no address pair: {} and {} have no addresses of a common family in {}",
                self.from, self.to, self.family
            );
            return out;
        }
        for pair in &self.pairs {
            let _ = writeln!(
                out,
                "  {} -> {}: {}",
                pair.from_address,
                pair.to_address,
                if pair.allowed { "allowed" } else { "denied" }
            );
            for (side, dir, who, other) in [
                (&pair.egress, Direction::Egress, &self.from, &self.to),
                (&pair.ingress, Direction::Ingress, &self.to, &self.from),
            ] {
                match side {
                    Some(side) => {
                        side.render_into(&mut out, self.probe, other, self.cluster_policies)
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "    {dir} of {who}: allowed, not an endpoint (netpol polices only \
                             endpoints of the inventory)"
                        );
                    }
                }
            }
        }
        out
    }
}

impl SideExplanation {
    /// `remote_name` is the endpoint that owns [`SideExplanation::remote`]. `tiers`:
    /// the model holds cluster policies, so say which tier decided even when
    /// NetworkPolicy did or nothing did (without them the text is as it was before
    /// the tiers).
    fn render_into(&self, out: &mut String, probe: Probe, remote_name: &Party, tiers: bool) {
        let head = format!("    {} of {}", self.direction, self.endpoint);
        if let Some(f) = &self.failsafe {
            let _ = writeln!(
                out,
                "{head}: allowed by the failsafe ({f}), before any policy"
            );
            return;
        }
        let names = |refs: &[crate::resolve::PolicyRef]| {
            refs.iter()
                .map(|r| r.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(rule) = &self.cluster_rule {
            let verdict = if self.allowed { "allowed" } else { "DENIED" };
            let _ = writeln!(out, "{head}: {verdict} by {rule}");
            self.render_passed(out);
            // Only an Admin rule can overrule NetworkPolicies; a Baseline rule
            // decides only where none isolates the endpoint.
            if self.tier == DecidingTier::Admin && !self.verdict.isolating().is_empty() {
                let would = if self.verdict.is_allowed() {
                    "allow"
                } else {
                    "deny"
                };
                let _ = writeln!(
                    out,
                    "      NetworkPolicy not consulted (isolated by {}, it would {would})",
                    names(self.verdict.isolating())
                );
            }
            self.render_audit(out);
            return;
        }
        match &self.verdict {
            Verdict::NotIsolated if tiers => {
                let _ = writeln!(
                    out,
                    "{head}: allowed by default: no tier decided (no Admin or Baseline rule accepted \
                     or denied it, and no NetworkPolicy selects it for {})",
                    self.direction
                );
            }
            Verdict::NotIsolated => {
                let _ = writeln!(
                    out,
                    "{head}: allowed, not isolated (no policy selects it for {})",
                    self.direction
                );
            }
            Verdict::Allowed { isolating, .. } => {
                let _ = writeln!(
                    out,
                    "{head}: allowed; isolated by {}; allowed by:",
                    names(isolating)
                );
                for r in &self.rules {
                    let _ = writeln!(
                        out,
                        "      {} {}: peer: {}; port: {}",
                        r.policy, r.field, r.peer, r.port
                    );
                }
            }
            Verdict::Denied { isolating } => {
                let who = match remote_name {
                    Party::Endpoint(name) => format!("{name} ({})", self.remote),
                    Party::Address(_) => format!("{} (no endpoint)", self.remote),
                };
                let what = match self.direction {
                    Direction::Egress => format!("to {who}"),
                    Direction::Ingress => format!("from {who}"),
                };
                let _ = writeln!(
                    out,
                    "{head}: DENIED; isolated by {}, and no rule of these policies allows {probe} {what}",
                    names(isolating)
                );
            }
        }
        if tiers && self.tier == DecidingTier::NetworkPolicy {
            let _ = writeln!(
                out,
                "      decided by the NetworkPolicy tier: no Admin rule accepted or denied it"
            );
        }
        self.render_passed(out);
        self.render_audit(out);
    }

    /// The `Pass` rules followed, in order.
    fn render_passed(&self, out: &mut String) {
        for rule in &self.passed_rules {
            let _ = writeln!(out, "      after {rule}");
        }
    }

    /// Audit policies are not enforced: they only say what would change.
    fn render_audit(&self, out: &mut String) {
        for a in &self.audit {
            let would = if a.would_allow { "allow" } else { "deny" };
            let _ = writeln!(out, "      audit policy {}: would {would}", a.policy);
        }
    }
}
