//! The pipeline with packets made here and the bundled example's model: from what
//! NFLOG's reader gives to the event `netpolctl logs -o json` prints, every field.
//! SCTP and the protocols without ports have no other way in on every kernel (the
//! kernel tests send them from raw sockets), so their events are pinned here too.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rules_compiler::plan::Mode;
use rules_compiler::resolve::Index;

use super::hub::{Hub, LogsFilter};
use super::Pipeline;
use crate::config::Events;
use crate::inputs::{load, Paths};
use crate::netlink::LoggedPacket;

const WINDOW: Duration = Duration::from_secs(10);

/// The bundled example: payments-api (198.18.1.10) behind a default deny and a policy
/// admitting checkout (198.18.2.10) on TCP 8080.
fn example() -> rules_compiler::model::Model {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("config");
    load(&Paths {
        policies: vec![config.join("policies")],
        inventory: vec![config.join("inventory")],
        options: Default::default(),
    })
    .unwrap()
    .model
}

fn pipeline() -> (Pipeline, Arc<Hub>) {
    let hub = Arc::new(Hub::new(100, 4713));
    let events = Events {
        dedup_window: WINDOW,
        ..Events::default()
    };
    (Pipeline::new(Mode::Enforce, &events, Arc::clone(&hub)), hub)
}

/// A packet logged by payments-api's ingress deny, from `src` to `dst`.
fn logged(protocol: u8, src: &str, src_port: u16, dst: &str, dst_port: u16) -> LoggedPacket {
    LoggedPacket {
        prefix: "netpol deny in".into(),
        protocol,
        src: src.parse().unwrap(),
        src_port,
        dst: dst.parse().unwrap(),
        dst_port,
    }
}

/// The hub's events as `logs -o json` prints them, each without its time (checked to
/// be RFC 3339 UTC), after every window has ended.
fn emitted(p: &mut Pipeline, hub: &Hub, index: Option<&Index<'_>>) -> Vec<serde_json::Value> {
    p.flush(Instant::now() + WINDOW, index);
    let (events, _) = hub.read(&LogsFilter::default());
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(&**e).unwrap();
            let time = v["time"].as_str().unwrap();
            assert!(time.ends_with('Z') && time.len() == 24, "{time}");
            v.as_object_mut().unwrap().remove("time");
            v
        })
        .collect()
}

fn payments_policies() -> serde_json::Value {
    serde_json::json!([
        "payments/allow-checkout-to-api",
        "payments/default-deny-ingress"
    ])
}

#[test]
fn an_sctp_init_and_its_retransmit_are_one_sctp_event_with_every_field() {
    let model = example();
    let index = Index::new(&model);
    let (mut p, hub) = pipeline();
    // SCTP 8080 from checkout: only TCP 8080 is allowed.
    let init = logged(132, "198.18.2.10", 40001, "198.18.1.10", 8080);
    p.packet(&init, Some(&index));
    p.packet(&init, Some(&index));
    assert_eq!(
        emitted(&mut p, &hub, Some(&index)),
        [serde_json::json!({
            "verdict": "deny",
            "direction": "ingress",
            "endpoint": "payments/payments-api",
            "peer": "web/checkout",
            "src": "198.18.2.10",
            "src_port": 40001,
            "dst": "198.18.1.10",
            "dst_port": 8080,
            "protocol": "SCTP",
            "policies": payments_policies(),
            "would_allow": [],
            "packets": 2,
        })]
    );
    let counts = hub.counts();
    assert_eq!((counts.deny, counts.deduplicated), (1, 1));
}

#[test]
fn protocols_without_ports_are_named_or_numbered_with_ports_zero() {
    let model = example();
    let index = Index::new(&model);
    let (mut p, hub) = pipeline();
    p.packet(&logged(1, "198.18.2.11", 0, "198.18.1.10", 0), Some(&index));
    p.packet(
        &logged(58, "2001:db8:2::11", 0, "2001:db8:1::10", 0),
        Some(&index),
    );
    // A stranger, by GRE.
    p.packet(&logged(47, "198.19.0.5", 0, "198.18.1.10", 0), Some(&index));
    let event = |src: &str, dst: &str, peer: Option<&str>, protocol: serde_json::Value| {
        serde_json::json!({
            "verdict": "deny",
            "direction": "ingress",
            "endpoint": "payments/payments-api",
            "peer": peer,
            "src": src,
            "src_port": 0,
            "dst": dst,
            "dst_port": 0,
            "protocol": protocol,
            "policies": payments_policies(),
            "would_allow": [],
            "packets": 1,
        })
    };
    assert_eq!(
        emitted(&mut p, &hub, Some(&index)),
        [
            event(
                "198.18.2.11",
                "198.18.1.10",
                Some("web/frontend"),
                "ICMP".into()
            ),
            event(
                "2001:db8:2::11",
                "2001:db8:1::10",
                Some("web/frontend"),
                "ICMPv6".into()
            ),
            event("198.19.0.5", "198.18.1.10", None, "47".into()),
        ]
    );
}

#[test]
fn a_foreign_prefix_is_counted_unreadable_and_no_model_names_nothing() {
    let (mut p, hub) = pipeline();
    p.packet(
        &LoggedPacket {
            prefix: "someone else".into(),
            ..logged(6, "198.18.2.11", 40000, "198.18.1.10", 8080)
        },
        None,
    );
    assert_eq!(hub.counts().unreadable, 1);
    // Before the first model (or after every endpoint went): the packet's fields only.
    p.packet(&logged(6, "198.18.2.11", 40000, "198.18.1.10", 8080), None);
    let got = emitted(&mut p, &hub, None);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["endpoint"], serde_json::Value::Null);
    assert_eq!(got[0]["peer"], serde_json::Value::Null);
    assert_eq!(got[0]["policies"], serde_json::json!([]));
    assert_eq!(got[0]["protocol"], "TCP");
}

/// The thread's supervision and the event file, without a kernel.
mod thread {
    use super::super::*;
    use rules_compiler::model::Direction;
    use rules_compiler::plan::{log_prefix, EventVerdict};

    #[test]
    fn a_failure_or_a_panic_is_reported_and_the_source_opened_again() {
        let hub = Arc::new(Hub::new(10, 7));
        let (_models_tx, models) = watch::channel(None);
        let wiring = Wiring {
            models,
            reopen: Arc::new(Notify::new()),
        };
        let events = Events::default();
        let stopped = |hub: &Hub| hub.counts().stopped.map(|s| s.reason);
        // What status showed when each open was tried, and what each run saw: the hub
        // (cleared once open) and the events pending in its pipeline's window.
        let mut at_open = Vec::new();
        let mut at_run = Vec::new();
        let open = || {
            at_open.push(stopped(&hub));
            match at_open.len() {
                2 => Err("binding NFLOG group 7: busy".to_string()),
                n => Ok(n),
            }
        };
        let run = |source: usize, pipeline: &mut Pipeline, _: &mut Wiring| -> Ended {
            at_run.push((source, stopped(&hub), pipeline.dedup.len()));
            pipeline.packet(&packet(source as u16), None);
            match source {
                1 => Err("reading the NFLOG socket: boom".into()),
                3 => panic!("a bug"),
                4 => panic!("{}", String::from("another bug")),
                5 => Err("again".into()),
                _ => Ok(()),
            }
        };
        supervise(
            open,
            run,
            || Pipeline::new(Mode::Enforce, &events, Arc::clone(&hub)),
            &hub,
            wiring,
            Duration::from_millis(1),
        );
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            at_open,
            [
                None,
                some("reading the NFLOG socket: boom"),
                some("binding NFLOG group 7: busy"),
                some("panicked: a bug"),
                some("panicked: another bug"),
                some("again"),
            ]
        );
        // Open 2 failed and ran nothing. Pending events outlive an error, not a panic.
        assert_eq!(
            at_run,
            [
                (1, None, 0),
                (3, None, 1),
                (4, None, 0),
                (5, None, 0),
                (6, None, 1)
            ]
        );
        assert_eq!(stopped(&hub), None, "it ended by shutdown, reading");
    }

    fn packet(port: u16) -> LoggedPacket {
        LoggedPacket {
            prefix: log_prefix(EventVerdict::Deny, Direction::Ingress).into(),
            protocol: 6,
            src: "198.18.0.1".parse().unwrap(),
            src_port: port,
            dst: "198.18.0.2".parse().unwrap(),
            dst_port: 80,
        }
    }
}
