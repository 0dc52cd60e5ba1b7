//! The sd_notify protocol, which is small enough not to need a crate: one datagram of
//! `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract-namespace name when it starts with `@`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `"READY=1\nSTATUS=…"`) to systemd. `Ok(false)` when not run
/// by systemd (no `$NOTIFY_SOCKET`).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(&target)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// A `STATUS=` value on one line (systemd shows it in `systemctl status`).
pub fn status_line(text: &str) -> String {
    let one: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    format!("STATUS={one}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_one_line() {
        assert_eq!(status_line("a\nb"), "STATUS=a");
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = crate::testdir::TempDir::new("sdnotify");
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        // The variable is read per call; this test is the only one that sets it.
        std::env::set_var("NOTIFY_SOCKET", &path);
        let sent = notify("READY=1\nSTATUS=ok");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(sent.unwrap());
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        assert!(
            !notify("READY=1").unwrap(),
            "no NOTIFY_SOCKET, nothing sent"
        );
    }
}
