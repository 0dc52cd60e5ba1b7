//! The kernel's change notifications, as the monitor reads them.

use super::*;
use crate::{Monitor, News};

fn commits(news: &[News]) -> Vec<&crate::Commit> {
    news.iter()
        .filter_map(|n| match n {
            News::Commit(c) => Some(c),
            News::Lost => None,
        })
        .collect()
}

netns_test! {
    fn each_commit_is_announced_with_its_generation_its_process_and_what_it_did() {
        let mut monitor = Monitor::open().expect("subscribe");
        let mut kernel = Netlink::owner();
        kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        let mine = GenerationReader::open().unwrap().read().unwrap();
        assert!(kernel.committed(mine), "the backend knows its commit");
        nft(&["add", "table", "ip", "other"]);
        let news = monitor.read().expect("read");
        let c = commits(&news);
        assert_eq!(c.len(), 2, "{news:?}");
        assert_eq!(c[0].generation, mine);
        assert!(c[0].by_this_process(), "{:?}", c[0]);
        // A replace: the table deleted and made again.
        assert_eq!(c[0].changes.len(), 2, "{:?}", c[0]);
        assert_eq!(c[0].changes[0], "deleted table");
        assert!(c[0].changes[1].starts_with("made it again: 6 chains, 16 sets, 26 rules"), "{:?}", c[0]);
        // Someone else's, on another table: announced, with nothing done to ours.
        assert_eq!(c[1].generation, mine.wrapping_add(1));
        assert_eq!(c[1].process, "nft");
        assert!(c[1].changes.is_empty(), "{:?}", c[1]);
        assert!(!c[1].by_this_process(), "{:?}", c[1]);
        assert!(!kernel.committed(c[1].generation));

        // Without ownership, someone else's change to the table, described.
        drop(kernel);
        let mut plain = Netlink::new();
        plain.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        monitor.read().unwrap();
        nft(&["insert", "rule", "inet", "netpol", "input", "accept"]);
        nft(&["flush", "map", "inet", "netpol", "ingress_v4"]);
        nft(&["delete", "table", "inet", "netpol"]);
        let news = monitor.read().unwrap();
        let lines: Vec<Vec<String>> =
            commits(&news).iter().map(|c| c.changes.clone()).collect();
        assert_eq!(
            lines,
            [
                vec!["rules added to chain input".to_string()],
                vec!["elements deleted from ingress_v4".to_string()],
                vec!["deleted table".to_string()],
            ],
            "{news:?}"
        );

        // Objects (netpol's limits) too: made again with the table, added and deleted.
        plain.apply(&events_plan(DenyAction::Drop, 20, 40, 7)).expect("apply");
        let news = monitor.read().unwrap();
        let last = commits(&news).last().map(|c| c.changes.clone()).unwrap_or_default();
        assert!(last.iter().any(|l| l.ends_with(", 1 objects")), "{news:?}");
        nft(&["add", "limit", "inet", "netpol", "foreign", "{ rate 1/second; }"]);
        nft(&["delete", "limit", "inet", "netpol", "foreign"]);
        let news = monitor.read().unwrap();
        let lines: Vec<Vec<String>> =
            commits(&news).iter().map(|c| c.changes.clone()).collect();
        assert_eq!(
            lines,
            [vec!["added object foreign".to_string()], vec!["deleted object foreign".to_string()]],
            "{news:?}"
        );
    }
}

netns_test! {
    fn a_full_buffer_is_reported_as_lost_news() {
        // As small as the kernel allows: a table's announcements do not fit.
        let mut monitor = Monitor::with_buffer(1).expect("subscribe");
        let mut kernel = Netlink::new();
        for _ in 0..20 {
            kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        }
        let news = monitor.read().expect("read");
        assert!(news.contains(&News::Lost), "{news:?}");
        // After the loss, commits are announced again (a small one fits).
        nft(&["add", "table", "ip", "other"]);
        let news = monitor.read().expect("read");
        assert_eq!(commits(&news).len(), 1, "{news:?}");
    }
}
