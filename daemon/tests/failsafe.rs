//! The failsafe with real packets: a default deny of everything on a local endpoint
//! still lets TCP 22 in (netpold's default), and nothing else; `failsafe: []` turns it
//! off; `netpolctl apply --failsafe` replaces it. Needs root.

mod support;
use support::daemon::*;
use support::text;

/// Denies every direction of every payments pod, beside the example's policies.
const DENY_ALL: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
    namespace: payments\n  name: deny-all\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

/// Whether a UDP datagram from frontend to payments-api's `port` gets through: nothing
/// listens, so the host answers what it receives with ICMP port unreachable (a refused
/// `recv`); a dropped datagram gets no answer.
fn udp_reaches_api(peer: &support::NetNs, port: u16) -> bool {
    let python = std::env::var("NETPOL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('198.18.2.11', 0))\ns.connect(('198.18.1.10', {port}))\ns.settimeout(2)\n\
         s.send(b'x')\ntry:\n    s.recv(1)\n    print('answer')\nexcept ConnectionRefusedError:\n    \
         print('refused')\nexcept socket.timeout:\n    print('dropped')\n"
    );
    match peer.ok(&python, &["-c", &script]).trim() {
        "refused" | "answer" => true,
        "dropped" => false,
        other => panic!("{other}"),
    }
}

#[test]
fn a_deny_all_still_lets_ssh_in_and_nothing_else_unless_the_failsafe_is_off() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    lab.write("policies/deny-all.yaml", DENY_ALL);
    let d = Daemon::start(&host, &lab, &[]);
    // frontend is allowed nothing by the policies.
    assert!(!reaches_api(&peer, "198.18.2.11"));
    assert!(
        reaches_api_on(&peer, "198.18.2.11", 22),
        "the failsafe: TCP 22"
    );
    assert!(!reaches_api_on(&peer, "198.18.2.11", 23));
    assert!(!udp_reaches_api(&peer, 22), "TCP only");
    let s = d.status(&host);
    assert_eq!(
        s["failsafe"],
        serde_json::json!(["ingress TCP 22"]),
        "{s:#}"
    );
    let st = text(&d.ctl(&host, &["status"]).stdout);
    assert!(
        st.contains("failsafe:        ingress TCP 22 (accepted before any policy)"),
        "{st}"
    );
    assert!(d.terminate().success());

    // Off: port 22 is denied like the rest.
    lab.write("off.yaml", "failsafe: []\n");
    let off = lab.path("off.yaml").display().to_string();
    let d = Daemon::start(&host, &lab, &["--config", &off]);
    assert!(!reaches_api_on(&peer, "198.18.2.11", 22));
    let st = text(&d.ctl(&host, &["status"]).stdout);
    assert!(st.contains("failsafe:        none"), "{st}");
    assert!(d.terminate().success());

    // netpolctl apply: a UDP port from frontend's /32 only, instead of SSH.
    let mut args = lab.args();
    args.truncate(4); // --policies P --inventory I
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut apply = vec!["apply", "--force"];
    apply.extend(&args);
    apply.extend(["--failsafe", "ingress:UDP:5353:198.18.2.11/32"]);
    host.ok(NETPOLCTL, &apply);
    assert!(!reaches_api_on(&peer, "198.18.2.11", 22));
    assert!(udp_reaches_api(&peer, 5353));
    assert!(!udp_reaches_api(&peer, 5354));
}

#[test]
fn explain_and_matrix_name_the_failsafe() {
    let lab = Lab::new();
    let mut args = lab.args();
    args.truncate(4);
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(args.iter().map(String::as_str));
        let out = std::process::Command::new(NETPOLCTL)
            .args(&all)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let explain = [
        "explain",
        "--from",
        "198.19.0.5",
        "--to",
        "payments/payments-api",
    ];
    let ssh = run(&[&explain[..], &["--port", "22/TCP"]].concat());
    assert!(ssh.contains(": ALLOWED"), "{ssh}");
    assert!(
        ssh.contains("allowed by the failsafe (ingress TCP 22), before any policy"),
        "{ssh}"
    );
    let off = run(&[&explain[..], &["--port", "22/TCP", "--failsafe", "none"]].concat());
    assert!(off.contains(": DENIED"), "{off}");
    let m = run(&["matrix", "--probe", "22/TCP"]);
    assert!(
        m.contains("failsafe, accepted before any policy: ingress TCP 22"),
        "{m}"
    );
    let nft = run(&["compile", "--local", "payments/payments-api"]);
    assert!(nft.contains("set failsafe_in_v4_ports"), "{nft}");
    let bare = run(&[
        "compile",
        "--local",
        "payments/payments-api",
        "--failsafe",
        "none",
    ]);
    assert!(!bare.contains("failsafe"), "{bare}");
}
