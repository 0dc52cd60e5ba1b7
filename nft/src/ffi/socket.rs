//! The netlink socket: opening and binding it, its buffers and multicast groups, one
//! datagram out, one in (waiting a bounded time).
//!
//! Bytes only: what is sent and how the answer is read is decided above.

use std::ffi::c_void;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use super::Aligned;
use crate::{Monitor, Nflog};

/// A duplicate descriptor of a subscribed socket: leaving and joining its group acts on
/// the socket itself.
#[derive(Debug)]
pub(crate) struct Membership {
    fd: std::os::fd::OwnedFd,
    group: i32,
}

impl Membership {
    /// Leaves the group: the socket gets nothing from it until [`join`](Self::join).
    pub(crate) fn leave(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        setsockopt_int(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_DROP_MEMBERSHIP,
            self.group,
        )
    }

    /// Joins the group again.
    pub(crate) fn join(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        setsockopt_int(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            self.group,
        )
    }
}

/// `monitor` registered with tokio's reactor, to wait for it to be readable.
pub(crate) fn readable(monitor: Monitor) -> io::Result<AsyncFd<Monitor>> {
    // SAFETY: a monitor's descriptor (`as_raw_fd`) is the one of its `sock`, a private
    // field of `monitor.rs` set once when the monitor is made and never reassigned, and a
    // `Socket` closes its descriptor only on drop: it stays open and the same while the
    // `AsyncFd`, which owns the monitor, lives.
    unsafe { AsyncFd::register_with_interest(monitor, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// `nflog` registered with tokio's reactor, to wait for it to be readable.
pub(crate) fn readable_nflog(nflog: Nflog) -> io::Result<AsyncFd<Nflog>> {
    // SAFETY: as in `readable`: an `Nflog`'s descriptor (`as_raw_fd`) is the one of its
    // `sock`, a private field of `nflog.rs` set once when it is opened and never
    // reassigned, and a `Socket` closes its descriptor only on drop, so it stays open
    // and the same while the `AsyncFd`, which owns the `Nflog`, lives.
    unsafe { AsyncFd::register_with_interest(nflog, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// A netlink socket of the current network namespace (`NETLINK_NETFILTER` unless
/// opened on another bus).
pub(crate) struct Socket {
    sock: mnl::Socket,
}

// SAFETY: an `mnl::Socket` is a file descriptor and libmnl's record of its address, with
// no thread-local state and nothing shared with another object; every use takes
// `&self` or `&mut self` of the one owner, so moving the owner to another thread (the
// daemon's backend lives in a tokio task) cannot race.
unsafe impl Send for Socket {}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value is a live `c_int` whose size
    // is passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast::<c_void>(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Socket {
    /// Opens and binds the socket, asking for extended acknowledgements (which say
    /// which attribute failed) without the echoed request (which may be 64 KiB).
    pub(crate) fn open() -> io::Result<Socket> {
        Socket::open_bus(mnl::Bus::Netfilter)
    }

    /// Like [`open`](Socket::open), for another netlink protocol (`NETLINK_SOCK_DIAG`).
    pub(crate) fn open_bus(bus: mnl::Bus) -> io::Result<Socket> {
        let sock = mnl::Socket::new(bus)?;
        let fd = sock.as_raw_fd();
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1)?;
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1)?;
        Ok(Socket { sock })
    }

    /// The port id the kernel answers to.
    pub(crate) fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// The file descriptor, to wait on.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Joins multicast `group` and sizes the receive buffer to `buffer` bytes (the
    /// system maximum is passed as root).
    pub(crate) fn subscribe(&self, group: u32, buffer: i32) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let group = i32::try_from(group).map_err(io::Error::other)?;
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group)?;
        self.receive_buffer(buffer)
    }

    /// Sizes the receive buffer to `bytes` (the system maximum is passed as root).
    pub(crate) fn receive_buffer(&self, bytes: i32) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
        }
        Ok(())
    }

    /// A second descriptor of this socket, whose multicast groups can be left and
    /// joined again from another thread ([`Membership`]).
    pub(crate) fn membership(&self, group: u32) -> io::Result<Membership> {
        let fd = self.sock.as_raw_fd();
        // SAFETY: `fd` is this socket's descriptor, open for as long as `self` lives,
        // which outlives this call; the borrow only serves to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        Ok(Membership {
            fd: borrowed.try_clone_to_owned()?,
            group: i32::try_from(group).map_err(io::Error::other)?,
        })
    }

    /// Throws away whatever is queued (answers to a batch that failed part-way).
    pub(crate) fn drain(&self, buf: &mut Aligned) {
        while let Ok(Some(_)) = self.recv(buf, None) {}
    }

    /// Sizes the buffers for one batch of `send` bytes with room for `replies`
    /// answers: a batch is one datagram, and a 4 MB batch needs a 4 MB send buffer.
    /// The forcing options pass the system maximum (root only); without them the
    /// plain ones are tried.
    pub(crate) fn size_buffers(&self, send: usize, replies: usize) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let snd = clamp(send + 64 * 1024);
        let rcv = clamp((replies * 2048).max(1 << 20));
        for (force, plain, size) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, snd),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcv),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, size).is_err() {
                setsockopt_int(fd, libc::SOL_SOCKET, plain, size)?;
            }
        }
        Ok(())
    }

    /// Sends `bytes` as one datagram (one `sendto`): the kernel reads a batch from a
    /// single message only.
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.sock.send(bytes)?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes of the batch",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`; waits at most `wait` (`None`: not at all).
    /// `Ok(None)` when nothing arrived in time.
    pub(crate) fn recv(
        &self,
        buf: &mut Aligned,
        wait: Option<Duration>,
    ) -> io::Result<Option<usize>> {
        let fd = self.sock.as_raw_fd();
        if let Some(wait) = wait {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd, its count, and a timeout.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(e);
            }
            if rc == 0 {
                return Ok(None);
            }
        }
        let cap = buf.capacity();
        // SAFETY: the buffer is writable for `cap` bytes and borrowed uniquely for the
        // call; `recv` writes at most `cap` bytes.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast::<c_void>(),
                cap,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        if n > cap {
            return Err(io::Error::other(format!(
                "a netlink answer of {n} bytes did not fit in {cap}"
            )));
        }
        Ok(Some(n))
    }
}
