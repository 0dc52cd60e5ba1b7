//! Table ownership (`NFT_TABLE_F_OWNER`, `NFT_TABLE_F_PERSIST`) against the kernel.

use super::*;
use crate::{Claim, Ownership};

/// `nft args`: (succeeded, stderr).
fn try_nft(args: &[&str]) -> (bool, String) {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("running nft");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tables() -> String {
    nft(&["list", "tables"])
}

/// A listing without its first two lines: the table's head (nft names the owner's
/// program there) and its flags (nft 1.0.6 prints no name for `persist`).
fn body(listing: &str) -> String {
    listing.lines().skip(2).collect::<Vec<_>>().join("\n")
}

netns_test! {
    fn an_owned_table_refuses_every_other_process_and_socket() {
        let plan = sample_plan(DenyAction::Drop);
        let mut owner = Netlink::owner();
        owner.apply(&plan).expect("apply");
        assert_eq!(owner.ownership(), Ownership::Owned);
        let info = owner.table_info().expect("table info").expect("a table");
        println!("{info:?}\n{}", nft(LIST));
        assert!(info.owned() && !info.orphaned(), "{info:?}");
        assert!(info.is_netpols(), "{info:?}");
        let before = nft(LIST);

        for args in [
            &["delete", "table", "inet", "netpol"][..],
            &["add", "rule", "inet", "netpol", "input", "accept"],
            &["flush", "chain", "inet", "netpol", "input"],
            &["add", "chain", "inet", "netpol", "extra"],
        ] {
            let (ok, err) = try_nft(args);
            assert!(!ok, "nft {args:?} succeeded on an owned table");
            assert!(err.contains("Operation not permitted"), "nft {args:?}: {err}");
        }
        // `flush ruleset` passes an owned table by (and succeeds).
        nft(&["add", "table", "ip", "other"]);
        let (ok, err) = try_nft(&["flush", "ruleset"]);
        assert!(ok, "{err}");
        assert_eq!(tables(), "table inet netpol\n");
        assert_eq!(nft(LIST), before, "the owned table is untouched");

        // Another socket of this very process is someone else too, and is told who
        // owns the table.
        let mut other = Netlink::new();
        let err = other.apply(&plan).expect_err("apply by a second socket");
        assert!(
            matches!(&err, KernelError::NotOurs { port, .. } if Some(*port) == info.owner),
            "{err}"
        );
        // This test binary holds the owner's socket.
        let me = format!("(pid {})", std::process::id());
        assert!(err.to_string().contains(&me), "{err}");
        let err = other.flush().expect_err("flush by a second socket");
        assert!(matches!(err, KernelError::NotOurs { .. }), "{err}");
        assert_eq!(nft(LIST), before);

        // The owner itself may do everything.
        owner.apply(&plan).expect("the owner's replace");
        let fewer = edit_ranges(plan.clone(), "in_x_a_v4_all", |v| {
            v.pop();
        });
        let delta = Update::between(&plan, &fewer).unwrap();
        assert_eq!(delta.changed(), 1);
        owner.update(&delta).expect("the owner's update");
        assert!(owner.table_info().unwrap().unwrap().owned());
        assert!(owner.flush().expect("the owner's flush"));
        assert_eq!(tables(), "");
    }
}

netns_test! {
    fn an_owned_table_outlives_its_owner_and_the_next_one_takes_it_over() {
        let plan = sample_plan(DenyAction::Drop);
        let mut first = Netlink::owner();
        first.apply(&plan).expect("apply");
        let listing = nft(LIST);
        drop(first);
        // The owner's socket is closed: the table stays, with no owner.
        let info = Netlink::new().table_info().unwrap().expect("the table stayed");
        assert!(info.orphaned(), "{info:?}");
        assert_eq!(body(&nft(LIST)), body(&listing), "in force as it was");

        let mut second = Netlink::owner();
        assert_eq!(second.claim().expect("claim"), Claim::TakenOver);
        let info = second.table_info().unwrap().unwrap();
        assert!(info.owned() && info.is_netpols(), "{info:?}");
        assert_eq!(body(&nft(LIST)), body(&listing), "taking over changes nothing else");
        let (ok, err) = try_nft(&["delete", "table", "inet", "netpol"]);
        assert!(!ok && err.contains("Operation not permitted"), "{err}");
        assert_eq!(second.claim().expect("claim again"), Claim::OwnedBy(info.owner.unwrap()));
        second.apply(&plan).expect("the new owner replaces it");
        assert!(second.table_info().unwrap().unwrap().owned());
    }
}

netns_test! {
    fn a_table_without_owner_is_anyones_until_netpold_replaces_it() {
        let plan = sample_plan(DenyAction::Drop);
        // As `netpolctl apply` makes it: no flags, netpol's comment.
        Netlink::new().apply(&plan).expect("apply");
        let info = Netlink::new().table_info().unwrap().unwrap();
        assert!(!info.owned() && !info.orphaned() && info.is_netpols(), "{info:?}");
        let mut daemon = Netlink::owner();
        assert_eq!(daemon.claim().unwrap(), Claim::Unowned { netpols: true });
        daemon.apply(&plan).expect("replace");
        assert!(daemon.table_info().unwrap().unwrap().owned());
        // An orphan can be deleted by anyone: the window between two netpolds.
        drop(daemon);
        let (ok, err) = try_nft(&["delete", "table", "inet", "netpol"]);
        assert!(ok, "{err}");
        assert_eq!(tables(), "");
        assert_eq!(Netlink::owner().claim().unwrap(), Claim::NoTable);
    }
}
