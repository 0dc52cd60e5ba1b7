//! `netpolctl reload` and `status` for people: the daemon's reports
//! ([`ReloadReport`], [`StatusReport`]) as text, and `netpolctl logs`' line per verdict
//! event ([`event_line`]). The JSON form (`-o json`) is the
//! reports' own serde form; this is the other.

use std::fmt::Write as _;

use crate::state::report::{
    Counts, DiskState, EventDirection, Mode, Outcome, ReloadReport, Stage, StatusReport, Trigger,
    VerdictEvent,
};

fn arrow(before: Option<usize>, after: Option<usize>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => format!("{a} (unchanged)"),
        (Some(b), Some(a)) => format!("{b} -> {a}"),
        (None, Some(a)) => a.to_string(),
        (Some(b), None) => b.to_string(),
        (None, None) => "-".into(),
    }
}

/// The outcome of a reload for people: one line, then what changed or the whole error.
pub fn reload_text(report: &ReloadReport) -> String {
    let mut out = match report.outcome {
        Outcome::Applied => format!(
            "reloaded: generation {} applied ({:.1} ms compile, {:.1} ms kernel)\n",
            report.generation, report.compile_ms, report.apply_ms
        ),
        Outcome::Unchanged => format!(
            "unchanged: the inputs are what generation {} loaded; nothing applied\n",
            report.generation
        ),
        Outcome::Failed => format!(
            "reload failed at the {} stage; generation {} stays in force\n",
            match report.stage {
                Some(Stage::Load) => "load",
                Some(Stage::Locals) => "local endpoints",
                Some(Stage::Kernel) => "kernel",
                None => "unknown",
            },
            report.generation
        ),
        Outcome::Held => format!(
            "held: nothing applied, generation {} stays in force; \
                 `netpolctl reload --force` applies the files as they are\n",
            report.generation
        ),
    };
    if let Some(k) = report.kernel {
        let _ = writeln!(out, "  kernel:          {k}");
    }
    if let Some(r) = &report.revoked {
        let _ = match &r.error {
                Some(e) => writeln!(out, "  revoked:         failed ({e}); the ruleset is in force"),
                None => writeln!(
                    out,
                    "  revoked:         {} of {} established flows no longer allowed ({} TCP sockets reset)",
                    r.cut, r.seen, r.sockets_reset
                ),
            };
    }
    if let Some(c) = &report.connectivity {
        let _ = writeln!(out, "  connectivity:    {c} (this host's local endpoints)");
    }
    if report.outcome == Outcome::Applied {
        let b = report.before;
        let a = report.after;
        let field = |f: fn(&Counts) -> usize| arrow(b.as_ref().map(f), a.as_ref().map(f));
        let _ = writeln!(out, "  policies:        {}", field(|c| c.policies));
        let _ = writeln!(out, "  endpoints:       {}", field(|c| c.endpoints));
        let _ = writeln!(out, "  local endpoints: {}", field(|c| c.local_endpoints));
        let _ = writeln!(out, "  rules:           {}", field(|c| c.rules));
        let _ = writeln!(out, "  set elements:    {}", field(|c| c.elements));
        for l in &report.locals_added {
            let _ = writeln!(out, "  + local {l}");
        }
        for l in &report.locals_removed {
            let _ = writeln!(out, "  - local {l}");
        }
    }
    if let Some(e) = &report.error {
        for line in e.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// One verdict event as one line for people: time, verdict, direction, endpoint, peer
/// (its name, or the remote address of a stranger), destination, policies, packets.
/// Columns are padded to widths that fit common names, so lines align at a glance.
pub fn event_line(e: &VerdictEvent) -> String {
    let remote = match e.direction {
        EventDirection::Ingress => e.src,
        EventDirection::Egress => e.dst,
    };
    let peer = e.peer.clone().unwrap_or_else(|| remote.to_string());
    let arrow = match e.direction {
        EventDirection::Ingress => "<-",
        EventDirection::Egress => "->",
    };
    // A port only where the protocol has one: `198.18.0.2/ICMP`, not `:0/ICMP`.
    let dst = match (e.dst, e.protocol.has_ports()) {
        (std::net::IpAddr::V6(a), true) => format!("[{a}]:{}/{}", e.dst_port, e.protocol),
        (std::net::IpAddr::V6(a), false) => format!("[{a}]/{}", e.protocol),
        (a, true) => format!("{a}:{}/{}", e.dst_port, e.protocol),
        (a, false) => format!("{a}/{}", e.protocol),
    };
    let mut line = format!(
        "{} {:<5} {:<7} {:<28} {arrow} {:<28} {:<28} {}",
        e.time,
        // Display of these ignores width: padded as strings.
        e.verdict.to_string(),
        e.direction.to_string(),
        e.endpoint.as_deref().unwrap_or("-"),
        peer,
        dst,
        match (&e.cluster_rule, e.policies.is_empty()) {
            (Some(rule), _) => rule.to_string(),
            (None, true) => "-".to_string(),
            (None, false) => e.policies.join(","),
        },
    );
    if !e.would_allow.is_empty() {
        let _ = write!(line, " would-allow={}", e.would_allow.join(","));
    }
    let _ = write!(line, " ×{}", e.packets);
    line
}

/// The daemon's state for people.
pub fn status_text(status: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "netpold (pid {})", status.pid);
    match (&status.loaded_at, &status.counts) {
        (Some(at), Some(c)) => {
            let _ = writeln!(
                out,
                "generation:      {} (loaded {at}{})",
                status.generation,
                status
                    .loaded_by
                    .map(|t| format!(" by {}", trigger_name(t)))
                    .unwrap_or_default()
            );
            if let Some(k) = status.loaded_how {
                let _ = writeln!(out, "kernel:          {k}");
            }
            let _ = writeln!(out, "policies:        {}", c.policies);
            if c.admin_policies + c.baseline_policies > 0 {
                let _ = writeln!(
                    out,
                    "cluster:         {} Admin, {} Baseline ClusterNetworkPolicies",
                    c.admin_policies, c.baseline_policies
                );
            }
            let _ = writeln!(out, "endpoints:       {}", c.endpoints);
            let _ = writeln!(
                out,
                "local endpoints: {}{} {}",
                c.local_endpoints,
                if status.follows_host {
                    " (by this host's addresses)"
                } else {
                    " (named)"
                },
                status.local_endpoints.join(", ")
            );
            let _ = writeln!(out, "rules:           {}", c.rules);
            let _ = writeln!(out, "set elements:    {}", c.elements);
        }
        _ => {
            let _ = writeln!(out, "generation:      0 (nothing loaded)");
        }
    }
    if let Some(h) = &status.hashes {
        let _ = writeln!(out, "policies hash:   {}", h.policies);
        let _ = writeln!(out, "inventory hash:  {}", h.inventory);
    }
    let _ = writeln!(
        out,
        "files on disk:   {}",
        match status.disk {
            DiskState::Match => "match what is loaded",
            DiskState::Differ => "differ from what is loaded",
            DiskState::Unreadable => "cannot be read",
        }
    );
    let _ = writeln!(
        out,
        "mode:            {}",
        match status.mode {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit (nothing is denied; what would be is reported)",
        }
    );
    let failsafe = match status.failsafe.is_empty() {
        true => "none: nothing is accepted before the policies".to_string(),
        false => format!(
            "{} (accepted before any policy)",
            status.failsafe.join("; ")
        ),
    };
    let _ = writeln!(out, "failsafe:        {failsafe}");
    if let Some(p) = &status.pending {
        let _ = writeln!(
            out,
            "PROVISIONAL:     generation {} until {}: `netpolctl confirm` keeps it, else \
             generation {}'s inputs come back",
            p.generation, p.deadline, p.rollback_to
        );
    }
    if status.rollbacks > 0 {
        let _ = writeln!(out, "rollbacks:       {}", status.rollbacks);
    }
    if !status.audit_policies.is_empty() {
        let _ = writeln!(out, "audit policies:  {}", status.audit_policies.join(", "));
    }
    if let Some(d) = status.denied {
        let _ = writeln!(
            out,
            "denied:          {} packets by NetworkPolicy, {} by Admin, {} by Baseline (since start)",
            d.network_policy, d.admin, d.baseline
        );
    }
    match &status.events {
        Some(e) => {
            let _ = writeln!(
                out,
                "events:          {} deny, {} audit, {} retransmits folded (NFLOG group {}, {} in the ring)",
                e.deny, e.audit, e.deduplicated, e.group, e.in_ring
            );
            let _ = writeln!(
                out,
                "events lost:     {} socket overflow, {} ring, {} slow followers, {} rate limit",
                e.lost_socket,
                e.lost_ring,
                e.lost_followers,
                e.lost_rate_limit
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unknown".into())
            );
            if e.unreadable > 0 {
                let _ = writeln!(out, "events unread:   {} logged packets", e.unreadable);
            }
            if let Some(stopped) = &e.stopped {
                let _ = writeln!(
                    out,
                    "events STOPPED:  since {}: {} (retrying)",
                    stopped.at, stopped.reason
                );
            }
        }
        None => {
            let _ = writeln!(out, "events:          off");
        }
    }
    let r = status.reloads;
    let _ = writeln!(
        out,
        "reloads:         {} applied, {} unchanged, {} failed, {} held",
        r.applied, r.unchanged, r.failed, r.held
    );
    if let Some(h) = &status.held {
        let _ = writeln!(
            out,
            "held:            since {} ({}): {}; `netpolctl reload --force` applies it",
            h.at,
            trigger_name(h.trigger),
            h.reason
        );
    }
    if let Some(o) = status.ownership {
        let _ = writeln!(out, "table:           {o}");
    }
    let d = &status.drift;
    let _ = writeln!(
        out,
        "foreign changes: {} repaired, {} not repaired",
        d.repairs, d.failures
    );
    if let Some(e) = &d.last {
        let _ = writeln!(
            out,
            "  last at {} by {}: {}; {}",
            e.at,
            e.by,
            e.changes.join(", "),
            e.outcome
        );
    }
    match &status.last_error {
        None => out.push_str("last error:      none\n"),
        Some(e) => {
            let _ = writeln!(
                out,
                "last error:      at {} ({}, {:?} stage):",
                e.at,
                trigger_name(e.trigger),
                e.stage
            );
            for line in e.message.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Start => "start-up",
        Trigger::Files => "file change",
        Trigger::Signal => "SIGHUP",
        Trigger::Control => "netpolctl reload",
        Trigger::Addresses => "address change",
        Trigger::Retry => "retry",
        Trigger::Rollback => "rollback",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_aligned_line() {
        let e = crate::state::report::tests::full_event();
        assert_eq!(
            event_line(&e),
            "2026-01-01T00:00:04.000Z deny  ingress db/pg                        <- 198.18.0.9                   198.18.0.2:5432/TCP          db/default-deny would-allow=db/allow-web ×3"
        );
        let out = VerdictEvent {
            direction: EventDirection::Egress,
            peer: Some("web/a".into()),
            would_allow: vec![],
            cluster_rule: None,
            ..e
        };
        assert!(
            event_line(&out).contains(" -> web/a "),
            "{}",
            event_line(&out)
        );
        // Without ports: no `:0`.
        for (proto, dst, want) in [
            (1, "198.18.0.2", " 198.18.0.2/ICMP "),
            (58, "2001:db8::2", " [2001:db8::2]/ICMPv6 "),
            (47, "198.18.0.2", " 198.18.0.2/47 "),
            (132, "2001:db8::2", " [2001:db8::2]:5432/SCTP "),
        ] {
            let line = event_line(&VerdictEvent {
                protocol: crate::state::report::EventProtocol::of(proto),
                dst: dst.parse().unwrap(),
                dst_port: if proto == 132 { 5432 } else { 0 },
                ..out.clone()
            });
            assert!(line.contains(want), "{line}");
        }
    }
    use crate::state::report::tests::full_reports;
    use crate::state::report::{KernelChange, RevokedFlows};

    #[test]
    fn every_field_is_shown() {
        let (reload, status) = full_reports();
        assert_eq!(reload_text(&reload), "reloaded: generation 3 applied (2.5 ms compile, 8.1 ms kernel)\n  kernel:          updated in place (4 set elements changed)\n  revoked:         failed (x); the ruleset is in force\n  connectivity:    +3 flows allowed, -1 denied (this host's local endpoints)\n  policies:        4 (unchanged)\n  endpoints:       5 (unchanged)\n  local endpoints: 1 (unchanged)\n  rules:           13 -> 15\n  set elements:    8 (unchanged)\n  + local web/checkout\n  - local web/frontend\n  e\n");
        assert_eq!(status_text(&status), "netpold (pid 42)\ngeneration:      3 (loaded 2026-01-01T00:00:00.000Z by address change)\nkernel:          table replaced\npolicies:        4\nendpoints:       5\nlocal endpoints: 1 (by this host's addresses) web/checkout\nrules:           13\nset elements:    8\npolicies hash:   pppp\ninventory hash:  iiii\nfiles on disk:   cannot be read\nmode:            audit (nothing is denied; what would be is reported)\nfailsafe:        ingress TCP 22 (accepted before any policy)\nPROVISIONAL:     generation 3 until 2026-01-01T00:01:00.000Z: `netpolctl confirm` keeps it, else generation 2's inputs come back\nrollbacks:       1\naudit policies:  web/lockdown\ndenied:          12 packets by NetworkPolicy, 3 by Admin, 0 by Baseline (since start)\nevents:          5 deny, 6 audit, 7 retransmits folded (NFLOG group 4713, 11 in the ring)\nevents lost:     1 socket overflow, 2 ring, 3 slow followers, 4 rate limit\nevents unread:   8 logged packets\nevents STOPPED:  since 2026-01-01T00:00:04.000Z: reading the NFLOG socket: boom (retrying)\nreloads:         3 applied, 2 unchanged, 1 failed, 1 held\nheld:            since 2026-01-01T00:00:02.000Z (SIGHUP): r; `netpolctl reload --force` applies it\ntable:           owned by this netpold (NFT_TABLE_F_OWNER|NFT_TABLE_F_PERSIST)\nforeign changes: 1 repaired, 2 not repaired\n  last at 2026-01-01T00:00:03.000Z by nft (pid 7): deleted table; repaired\nlast error:      at 2026-01-01T00:00:01.000Z (retry, Kernel stage):\n  no\n");
    }

    #[test]
    fn an_applied_reload_shows_before_and_after() {
        let c = |p, r| Counts {
            policies: p,
            admin_policies: 0,
            baseline_policies: 0,
            endpoints: 5,
            local_endpoints: 1,
            rules: r,
            elements: 7,
        };
        let report = ReloadReport {
            outcome: Outcome::Applied,
            trigger: Trigger::Control,
            generation: 3,
            before: Some(c(4, 20)),
            after: Some(c(5, 24)),
            locals_added: vec!["web/checkout".into()],
            locals_removed: vec![],
            stage: None,
            error: None,
            compile_ms: 1.0,
            apply_ms: 2.0,
            kernel: Some(KernelChange::Updated { elements: 4 }),
            revoked: Some(Box::new(RevokedFlows {
                seen: 9,
                cut: 2,
                sockets_reset: 1,
                error: None,
            })),
            connectivity: None,
        };
        let text = reload_text(&report);
        assert!(text.starts_with("reloaded: generation 3 applied"), "{text}");
        assert!(
            text.contains("  kernel:          updated in place (4 set elements changed)\n"),
            "{text}"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains(r#""kernel":{"how":"updated","elements":4}"#),
            "{json}"
        );
        assert!(
            text.contains(
                "  revoked:         2 of 9 established flows no longer allowed (1 TCP sockets reset)\n"
            ),
            "{text}"
        );
        assert!(text.contains("  policies:        4 -> 5\n"), "{text}");
        assert!(
            text.contains("  endpoints:       5 (unchanged)\n"),
            "{text}"
        );
        assert!(text.contains("  rules:           20 -> 24\n"), "{text}");
        assert!(text.contains("  + local web/checkout\n"), "{text}");
    }
}
