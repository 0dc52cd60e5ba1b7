//! `systemd/netpold.service` passes `systemd-analyze verify`, with its binaries
//! pointed at the ones just built (verify wants ExecStart's programs to exist), and
//! keeps the settings netpold relies on. `verify` exits 0 on mere warnings (an unknown
//! key, a bad value), so any line it prints about the unit fails the test too.
//! Skips with a message when `systemd-analyze` is not installed (scripts/install-deps
//! installs it).

use std::path::Path;
use std::process::Command;

mod support;

const NETPOLD: &str = env!("CARGO_BIN_EXE_netpold");
const NETPOLCTL: &str = env!("CARGO_BIN_EXE_netpolctl");

fn unit_text() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(repo.join("systemd/netpold.service")).unwrap()
}

/// Runs `systemd-analyze verify` on `text` as `netpold.service` in a directory of
/// its own (`name`); `None` when there
/// is no systemd-analyze. Returns whether it succeeded and what it printed.
fn verify(name: &str, text: &str) -> Option<(bool, String)> {
    let dir = tempfile::TempDir::with_prefix(format!("netpold-unit-{name}-")).unwrap();
    let unit = dir.path().join("netpold.service");
    std::fs::write(&unit, text).unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            support::skip(&format!(
                "cannot run systemd-analyze ({e}); scripts/install-deps installs it"
            ));
            return None;
        }
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), printed))
}

/// The unit with its binaries at the ones cargo built.
fn built_unit() -> String {
    let text = unit_text();
    for program in ["/usr/local/bin/netpold ", "/usr/local/bin/netpolctl "] {
        assert!(text.contains(program), "the unit runs {program}");
    }
    text.replace("/usr/local/bin/netpold ", &format!("{NETPOLD} "))
        .replace("/usr/local/bin/netpolctl ", &format!("{NETPOLCTL} "))
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some((ok, printed)) = verify("good", &built_unit()) else {
        return;
    };
    let about_unit: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("netpold.service"))
        .collect();
    assert!(
        ok && about_unit.is_empty(),
        "systemd-analyze verify:\n{printed}"
    );
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above can fail: a bad value is reported.
    let broken = built_unit().replace("ProtectHome=yes", "ProtectHome=maybe");
    let Some((_, printed)) = verify("broken", &broken) else {
        return;
    };
    assert!(
        printed.lines().any(|l| l.contains("netpold.service")),
        "{printed}"
    );
}

#[test]
fn the_unit_keeps_what_netpold_relies_on() {
    let text = unit_text();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecStart=/usr/local/bin/netpold --config /etc/netpol/netpold.yaml",
        "ExecReload=/usr/local/bin/netpolctl --timeout 85 reload",
        "Restart=on-failure",
        // The default control socket is /run/netpol/netpold.sock.
        "RuntimeDirectory=netpol",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_CHOWN",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
    ] {
        assert!(lines.contains(&want), "the unit lacks {want:?}");
    }
    assert_eq!(
        netpol_daemon::control::DEFAULT_SOCKET,
        "/run/netpol/netpold.sock"
    );
}
