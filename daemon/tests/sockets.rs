//! What local users can reach — the metrics port and the control socket — and the
//! client side (`netpolctl`'s timeouts), with the real binaries. Kernel tests run in
//! throwaway network namespaces (removed on drop, also when a test panics); the
//! client-timeout tests need no kernel, only a Unix socket in a temporary directory.
//! Nothing asserts how long anything took: every wait is bounded and polled, and a
//! bound that runs out fails the test with what was seen.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::daemon::*;
use support::{text, NetNs};

/// Waits for `child` to end; kills it and fails after `limit` (a hang is the bug).
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?} (it hangs); stderr:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `netpolctl status -o json` in `ns`, given up on (None) after 30 s.
fn status_bounded(ns: &NetNs, socket: &str) -> Option<Value> {
    let child = ns
        .command(
            "timeout",
            &["30", NETPOLCTL, "--socket", socket, "status", "-o", "json"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// A child process killed and reaped on drop (also when the test panics).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first lines of a log that may be huge (the bug logged in a tight loop).
fn head(log: &str) -> String {
    log.lines().take(60).collect::<Vec<_>>().join("\n")
}

/// Lines of the log about accepting connections on the metrics port: the old exporter
/// logged "Error accepting connection" in a tight loop.
fn accept_log_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("accept") || l.contains("metrics listener")
        })
        .count()
}

/// Bug 5: a local user's idle connections to the metrics port must not take netpold's
/// file descriptors. netpold runs with 256 of them; `nobody` opens 350 idle
/// connections; an edit must still be applied, `/metrics` must answer again once the
/// idle ones are cut, and the log must stay short.
#[test]
fn idle_connections_to_the_metrics_port_do_not_starve_netpold() {
    let Some((host, _peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let address = "198.18.1.10:9469";
    let d = Daemon::start(&host, &lab, &["--metrics-address", address]);
    let pid = d.child.id().to_string();
    // `ip netns exec` execs netpold itself: the child is the daemon.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "netpold");
    let out = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:256"])
        .output()
        .unwrap();
    assert!(out.status.success(), "prlimit: {}", text(&out.stderr));

    // As nobody: 350 connections, held open by the process that made them.
    let script = "ulimit -n 4096; n=0; \
        for i in $(seq 350); do exec {fd}<>/dev/tcp/198.18.1.10/9469 || break; n=$((n+1)); done; \
        echo opened $n; exec sleep 600";
    let mut idle = Reaped(
        host.command(
            "setpriv",
            &[
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "bash",
                "-c",
                script,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(idle.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "opened 350", "the idle connections are made");

    // An edit while they are held: applied, nothing failed.
    let edited = lab
        .read("policies/payments.yaml")
        .replace("port: 8080", "port: 8081");
    lab.write("policies/payments.yaml", &edited);
    let start = Instant::now();
    let s = loop {
        let s = status_bounded(&host, &d.socket);
        if let Some(s) = &s {
            if s["generation"].as_u64() >= Some(2) || s["reloads"]["failed"] != 0 {
                break s.clone();
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no reload applied the edit; last status: {s:?}\nlog:\n{}",
            head(&d.log())
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(s["generation"], 2, "{s:#}\nlog:\n{}", head(&d.log()));
    assert_eq!(s["reloads"]["failed"], 0, "{s:#}\nlog:\n{}", head(&d.log()));
    assert!(host.table().unwrap().contains("8081"));

    // The held connections are cut by the header timeout; then scrapes work again
    // (while the idle client still holds its 350 sockets).
    let url = format!("http://{address}/metrics");
    let start = Instant::now();
    loop {
        let out = host.run("curl", &["-sS", "--fail", "--max-time", "3", &url]);
        if out.status.success() {
            assert!(text(&out.stdout).contains("netpol_generation 2"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "/metrics never answered again: {}\nlog:\n{}",
            text(&out.stderr),
            head(&d.log())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = d.log();
    assert!(
        accept_log_lines(&log) <= 10,
        "the log about refused or failed connections is bounded; got {} lines:\n{}",
        accept_log_lines(&log),
        head(&log)
    );
    assert!(
        log.contains("anyone who can reach 198.18.1.10:9469 can read"),
        "a metrics address that is not loopback is warned about:\n{}",
        head(&log)
    );
}

/// A control-socket client with a bound on every read.
fn client(socket: &str) -> UnixStream {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads one answer line (None at end of stream).
fn answer(r: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no answer and no close: {e}"));
    (n > 0).then(|| serde_json::from_str(&line).unwrap())
}

/// Reads to the end of the stream: the server closed the connection.
fn assert_closed(mut r: BufReader<UnixStream>, what: &str) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{what}: the connection stays open: {e}"));
}

/// netpold in a namespace of its own, with the example and one named local endpoint.
fn control_daemon() -> Option<(NetNs, Lab, Daemon)> {
    let ns = NetNs::new("npd")?;
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "payments/payments-api"]);
    Some((ns, lab, d))
}

#[test]
fn an_over_long_control_request_is_answered_and_closed() {
    let Some((_ns, _lab, d)) = control_daemon() else {
        return;
    };
    let socket = d.socket.clone();
    // An error answer, then the connection is closed (the line is never buffered
    // whole).
    let mut s = client(&socket);
    let long = vec![b'x'; netpol_daemon::control::MAX_REQUEST_BYTES + 4096];
    // The server may close before it has read everything.
    let _ = s.write_all(&long);
    let mut r = BufReader::new(s);
    let a = answer(&mut r).expect("an answer to an over-long line");
    assert_eq!(a["response"], "error", "{a}");
    assert!(
        a["message"].as_str().unwrap().contains("longer than"),
        "{a}"
    );
    assert_closed(r, "after an over-long line");
}

#[test]
fn invalid_utf8_and_json_get_error_answers() {
    let Some((_ns, _lab, d)) = control_daemon() else {
        return;
    };
    let socket = d.socket.clone();
    // Error answers, and the connection still serves.
    let mut s = client(&socket);
    s.write_all(b"{\"request\":\"st\xffatus\"}\n").unwrap();
    s.write_all(b"{\"request\":\n").unwrap();
    s.write_all(b"{\"request\":\"status\"}\n").unwrap();
    let mut r = BufReader::new(s);
    let a = answer(&mut r).expect("an answer to invalid UTF-8");
    assert_eq!(a["response"], "error", "{a}");
    assert!(a["message"].as_str().unwrap().contains("UTF-8"), "{a}");
    let a = answer(&mut r).expect("an answer to invalid JSON");
    assert_eq!(a["response"], "error", "{a}");
    assert!(
        a["message"].as_str().unwrap().contains("not a request"),
        "{a}"
    );
    let a = answer(&mut r).expect("a status answer");
    assert_eq!(a["response"], "status", "{a}");
}

#[test]
fn an_idle_control_client_is_closed() {
    let Some((_ns, _lab, d)) = control_daemon() else {
        return;
    };
    let socket = d.socket.clone();
    // After the idle timeout, with a word why.
    let s = client(&socket);
    let mut r = BufReader::new(s);
    let a = answer(&mut r).expect("a word before the close");
    assert!(
        a["message"].as_str().unwrap().contains("no request within"),
        "{a}"
    );
    assert_closed(r, "an idle client");
}

#[test]
fn control_connections_beyond_the_limit_are_refused() {
    let Some((ns, _lab, d)) = control_daemon() else {
        return;
    };
    let socket = d.socket.clone();
    // Beyond the limit, new clients are told so and closed at once.
    let max = netpol_daemon::control::MAX_CONNECTIONS;
    let held: Vec<UnixStream> = (0..max).map(|_| client(&socket)).collect();
    let mut r = BufReader::new(client(&socket));
    let a = answer(&mut r).expect("an answer over the limit");
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("too many connections"),
        "{a}"
    );
    assert_closed(r, "a client over the limit");
    drop(held);
    // Once they are gone, netpolctl is served again.
    let start = Instant::now();
    while !d.ctl(&ns, &["status"]).status.success() {
        assert!(start.elapsed() < PATIENCE, "status never answered again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.generation(&ns), 1);
}

/// A Unix listener that accepts connections and never answers (`accept`), or never
/// even accepts them (they wait in the backlog), in a temporary directory.
struct Silent {
    /// Removed on drop.
    _dir: tempfile::TempDir,
    socket: String,
}

impl Silent {
    fn new(accept: bool) -> Silent {
        let dir = tempfile::TempDir::with_prefix("netpolctl-silent-").unwrap();
        let path = dir.path().join("netpold.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            if accept {
                for s in listener.incoming() {
                    held.push(s);
                }
            } else {
                std::thread::sleep(Duration::from_secs(3600));
                drop(listener);
            }
        });
        Silent {
            socket: path.display().to_string(),
            _dir: dir,
        }
    }
}

fn netpolctl(args: &[&str]) -> Child {
    Command::new(NETPOLCTL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Bug 4's other half: a stuck netpold must not hang `netpolctl`.
#[test]
fn netpolctl_gives_up_on_a_daemon_that_does_not_answer() {
    for accept in [true, false] {
        let silent = Silent::new(accept);
        for command in ["status", "reload"] {
            let out = wait_bounded(
                netpolctl(&["--socket", &silent.socket, command, "--timeout", "1"]),
                Duration::from_secs(60),
                command,
            );
            assert_eq!(out.status.code(), Some(1), "{command} (accept: {accept})");
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("netpold did not answer within 1 s"),
                "{command}: {stderr}"
            );
        }
    }
    // Without --timeout, status still gives up (after its default of 10 s).
    let silent = Silent::new(true);
    let out = wait_bounded(
        netpolctl(&["--socket", &silent.socket, "status"]),
        Duration::from_secs(60),
        "status without --timeout",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("netpold did not answer within 10 s"),
        "{}",
        text(&out.stderr)
    );
    // A timeout that is not a positive number is bad usage.
    let out = wait_bounded(
        netpolctl(&["--socket", &silent.socket, "status", "--timeout", "0"]),
        Duration::from_secs(60),
        "--timeout 0",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// netpold with `--socket PATH` in `ns`, given up on after 30 s (a daemon that
/// started and runs fails the test).
fn netpold_with_socket(ns: &NetNs, lab: &Lab, socket: &str) -> Output {
    let policies = lab.path("policies").display().to_string();
    let inventory = lab.path("inventory").display().to_string();
    let child = ns
        .command(
            NETPOLD,
            &[
                "--policies",
                &policies,
                "--inventory",
                &inventory,
                "--local",
                "payments/payments-api",
                "--socket",
                socket,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, PATIENCE, &format!("netpold --socket {socket}"))
}

#[test]
fn a_socket_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();

    let file = lab.path("precious.txt");
    std::fs::write(&file, "precious\n").unwrap();
    let dir = lab.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside"), "inside\n").unwrap();
    let link = lab.path("a-link");
    std::os::unix::fs::symlink(&file, &link).unwrap();

    for (path, kind) in [
        (&file, "a regular file"),
        (&dir, "a directory"),
        (&link, "a symbolic link"),
    ] {
        let p = path.display().to_string();
        let out = netpold_with_socket(&ns, &lab, &p);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {stderr}");
        assert!(
            stderr.contains(&p) && stderr.contains(&format!("is {kind}, not a socket")),
            "{kind}: {stderr}"
        );
        assert_eq!(ns.table(), None, "{kind}: the kernel is untouched");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("inside")).unwrap(),
        "inside\n"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), file);

    // A socket file nobody answers on (a daemon that died) is replaced as before.
    let stale = lab.path("netpold.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(std::fs::symlink_metadata(&stale)
        .unwrap()
        .file_type()
        .is_socket());
    let d = Daemon::start(&ns, &lab, &["--local", "payments/payments-api"]);
    assert_eq!(d.generation(&ns), 1);
}
