//! Who changed nftables, and what they did to netpol's table: the kernel's change
//! notifications (group `NFNLGRP_NFTABLES`), read into one [`Commit`] per committed
//! transaction, and the table's own flags and owner ([`TableInfo`]).
//!
//! Only reads and describes. Whether a change is netpold's own, and what to do about
//! a foreign one, is decided above (`state`).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};

use super::encode::k;
use super::ffi::{Aligned, Socket};
use super::reply::{self, attrs, HDRLEN};
use super::KernelError;

/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_TABLE_OWNER: u16 = 7;
const NFTA_GEN_ID: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;
/// Attribute 1 of every object message is the name of its table.
const NFTA_OBJECT_TABLE: u16 = 1;
/// Attribute 2 names the set of an element list, the chain of a rule, a set, an object.
const NFTA_OBJECT_2: u16 = 2;
/// Attribute 3 names a chain.
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;

/// One committed nftables transaction, as the kernel announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The ruleset generation it made.
    pub generation: u32,
    /// The process (thread) that committed it, as the kernel names it.
    pub pid: u32,
    /// That process's name (`comm`).
    pub process: String,
    /// What it did to netpol's table, one line per kind of change
    /// (`deleted table`, `added 1 rule to chain input`); empty: nothing.
    pub changes: Vec<String>,
}

impl Commit {
    /// Whether a thread of this process committed it (the kernel names the committing
    /// thread): known as one's own even when its generation could not be read.
    pub fn by_this_process(&self) -> bool {
        self.pid != 0 && std::path::Path::new(&format!("/proc/self/task/{}", self.pid)).exists()
    }
}

/// What a read of the notifications gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum News {
    /// A transaction was committed.
    Commit(Commit),
    /// The kernel dropped notifications (the socket's buffer was full): what happened
    /// meanwhile is unknown.
    Lost,
}

/// Takes a [`Monitor`] out of its group while netpold commits a transaction of its own:
/// the kernel builds no notifications while nobody listens, and building them for a
/// replace of a big table costs about as much again as the replace (see
/// `benches/README.md`). What another process commits meanwhile is found by the
/// generation check after it resumes.
#[derive(Debug)]
pub struct Quiet(super::ffi::Membership);

impl Quiet {
    /// Stops the notifications.
    pub(crate) fn pause(&self) -> std::io::Result<()> {
        self.0.leave()
    }

    /// Starts them again.
    pub(crate) fn resume(&self) -> std::io::Result<()> {
        self.0.join()
    }
}

/// netpol's table as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableInfo {
    /// `NFT_TABLE_F_*`.
    pub flags: u32,
    /// The netlink port id of its owner, when it has one.
    pub owner: Option<u32>,
    /// Its comment.
    pub comment: Option<String>,
}

impl TableInfo {
    /// Made by netpol (it carries netpol's comment).
    pub fn is_netpols(&self) -> bool {
        self.comment.as_deref() == Some(rules_compiler::plan::TABLE_COMMENT)
    }

    /// Owned by a live netlink socket.
    pub fn owned(&self) -> bool {
        self.flags & k::NFT_TABLE_F_OWNER != 0
    }

    /// Persistent without an owner: its owner went; anyone may delete it, and the next
    /// process to set `NFT_TABLE_F_OWNER` on it owns it.
    pub fn orphaned(&self) -> bool {
        self.flags & k::TABLE_OWNED == k::NFT_TABLE_F_PERSIST
    }

    /// Who made it and who may change it, for people.
    pub fn describe(&self) -> String {
        let made = if self.is_netpols() {
            "made by netpol"
        } else {
            "not made by netpol"
        };
        if self.owned() {
            let port = self.owner.unwrap_or(0);
            let owner = process_of_port(port).unwrap_or_else(|| format!("netlink port id {port}"));
            format!("{made}; owned by {owner}: only it may change the table")
        } else if self.orphaned() {
            format!(
                "{made}; persistent, its owner ended: anyone may change it until the next \
                 netpold takes it over"
            )
        } else {
            format!("{made}; not owned: anyone with CAP_NET_ADMIN may change it")
        }
    }
}

/// The notification socket, subscribed.
pub struct Monitor {
    sock: Socket,
    buf: Aligned,
    table: String,
    /// Changes to the table seen since the last commit notification.
    pending: Changes,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("table", &self.table)
            .finish()
    }
}

/// Notifications queued for a reader: a replace of a big table announces every element,
/// which overflows this now and then; [`News::Lost`] says so.
const RECEIVE_BUFFER: i32 = 16 << 20;

impl Monitor {
    /// Opens a netlink socket subscribed to nftables' notifications of this network
    /// namespace, for netpol's table.
    pub fn open() -> Result<Monitor, KernelError> {
        Monitor::with_buffer(RECEIVE_BUFFER)
    }

    /// [`open`](Self::open) with a receive buffer of `bytes` (tests make it overflow).
    pub(crate) fn with_buffer(bytes: i32) -> Result<Monitor, KernelError> {
        let sock = Socket::open().map_err(KernelError::io("socket"))?;
        sock.subscribe(libc::NFNLGRP_NFTABLES as u32, bytes)
            .map_err(KernelError::io("subscribing to nftables notifications"))?;
        Ok(Monitor {
            sock,
            buf: Aligned::new(256 * 1024),
            table: rules_compiler::plan::TABLE_NAME.to_string(),
            pending: Changes::default(),
        })
    }

    /// A handle that silences this monitor during the holder's own transactions (see
    /// [`Quiet`]).
    pub fn quiet(&self) -> Result<Quiet, KernelError> {
        let m = self
            .sock
            .membership(libc::NFNLGRP_NFTABLES as u32)
            .map_err(KernelError::io("duplicating the notification socket"))?;
        Ok(Quiet(m))
    }

    /// This monitor, to wait on with tokio (`readable_mut`, then [`read`](Self::read)).
    pub fn into_async(self) -> std::io::Result<tokio::io::unix::AsyncFd<Monitor>> {
        super::ffi::readable(self)
    }

    /// Everything queued, without waiting.
    pub fn read(&mut self) -> Result<Vec<News>, KernelError> {
        let mut news = Vec::new();
        loop {
            let n = match self.sock.recv(&mut self.buf, None) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(news),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.pending = Changes::default();
                    news.push(News::Lost);
                    continue;
                }
                Err(e) => return Err(KernelError::io("reading nftables notifications")(e)),
            };
            for (h, msg) in reply::messages(self.buf.bytes(n)) {
                if h.kind >> 8 != NFNL_SUBSYS_NFTABLES {
                    continue;
                }
                let kind = i32::from(h.kind & 0xff);
                if kind == libc::NFT_MSG_NEWGEN {
                    if let Some(mut commit) = parse_gen(msg) {
                        commit.changes = std::mem::take(&mut self.pending).lines();
                        news.push(News::Commit(commit));
                    }
                } else {
                    self.pending.note(kind, msg, &self.table);
                }
            }
        }
    }
}

impl AsRawFd for Monitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw_fd()
    }
}

/// Changes to one table within a transaction, counted by kind and object.
#[derive(Debug, Default)]
struct Changes(BTreeMap<String, usize>);

impl Changes {
    /// Counts `msg` (an nf_tables notification of type `kind`) if it is about `table`
    /// of family inet.
    fn note(&mut self, kind: i32, msg: &[u8], table: &str) {
        let Some(family) = msg.get(HDRLEN) else {
            return;
        };
        if u16::from(*family) != k::NFPROTO_INET {
            return;
        }
        let end = reply::header(msg).map_or(0, |h| (h.len as usize).min(msg.len()));
        let mut names: BTreeMap<u16, String> = BTreeMap::new();
        let mut elements = 0;
        for (t, at, len) in attrs(msg, HDRLEN + 4, end) {
            let value = &msg[at + 4..at + len];
            if t == NFTA_SET_ELEM_LIST_ELEMENTS && kind_is_elems(kind) {
                elements = attrs(msg, at + 4, at + len).count();
            } else {
                let text = value.split(|b| *b == 0).next().unwrap_or_default();
                names.insert(t, String::from_utf8_lossy(text).into_owned());
            }
        }
        if names.get(&NFTA_OBJECT_TABLE).map(String::as_str) != Some(table) {
            return;
        }
        let name = |t: u16| names.get(&t).cloned().unwrap_or_default();
        let (what, n) = match kind {
            libc::NFT_MSG_NEWTABLE => ("changed table".to_string(), 1),
            libc::NFT_MSG_DELTABLE => ("deleted table".to_string(), 1),
            libc::NFT_MSG_NEWCHAIN => (
                format!("added or changed chain {}", name(NFTA_CHAIN_NAME)),
                1,
            ),
            libc::NFT_MSG_DELCHAIN => (format!("deleted chain {}", name(NFTA_CHAIN_NAME)), 1),
            libc::NFT_MSG_NEWRULE => (format!("rules added to chain {}", name(NFTA_OBJECT_2)), 1),
            libc::NFT_MSG_DELRULE => (
                format!("rules deleted from chain {}", name(NFTA_OBJECT_2)),
                1,
            ),
            libc::NFT_MSG_NEWSET => (format!("added set {}", name(NFTA_OBJECT_2)), 1),
            libc::NFT_MSG_DELSET => (format!("deleted set {}", name(NFTA_OBJECT_2)), 1),
            libc::NFT_MSG_NEWSETELEM => (
                format!("elements added to {}", name(NFTA_OBJECT_2)),
                elements,
            ),
            libc::NFT_MSG_DELSETELEM => (
                format!("elements deleted from {}", name(NFTA_OBJECT_2)),
                elements,
            ),
            // Named objects: netpol's limits.
            libc::NFT_MSG_NEWOBJ => (format!("added object {}", name(NFTA_OBJECT_2)), 1),
            libc::NFT_MSG_DELOBJ => (format!("deleted object {}", name(NFTA_OBJECT_2)), 1),
            other => (format!("nf_tables message {other}"), 1),
        };
        *self.0.entry(what).or_default() += n;
    }

    /// One line per kind of change. A deleted table is one line, not one per object it
    /// held; what the same transaction made again is summed up in one more.
    fn lines(self) -> Vec<String> {
        let line = |what: String, n: usize| match n {
            1 => what,
            n => format!("{what} ({n})"),
        };
        if !self.0.contains_key("deleted table") {
            return self.0.into_iter().map(|(w, n)| line(w, n)).collect();
        }
        let mut again = [
            ("chains", 0),
            ("sets", 0),
            ("rules", 0),
            ("elements", 0),
            ("objects", 0),
        ];
        for (what, n) in &self.0 {
            let kind = if what.starts_with("added or changed chain") {
                0
            } else if what.starts_with("added set") {
                1
            } else if what.starts_with("rules added") {
                2
            } else if what.starts_with("elements added") {
                3
            } else if what.starts_with("added object") {
                4
            } else {
                continue;
            };
            again[kind].1 += n;
        }
        let mut out = vec!["deleted table".to_string()];
        if again.iter().any(|(_, n)| *n > 0) {
            let parts: Vec<String> = again.iter().map(|(k, n)| format!("{n} {k}")).collect();
            out.push(format!("made it again: {}", parts.join(", ")));
        }
        out
    }
}

fn kind_is_elems(kind: i32) -> bool {
    kind == libc::NFT_MSG_NEWSETELEM || kind == libc::NFT_MSG_DELSETELEM
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// A `NFT_MSG_NEWGEN` notification (no changes yet).
fn parse_gen(msg: &[u8]) -> Option<Commit> {
    let end = (reply::header(msg)?.len as usize).min(msg.len());
    let mut commit = Commit {
        generation: 0,
        pid: 0,
        process: String::new(),
        changes: Vec::new(),
    };
    let mut seen = false;
    for (t, at, len) in attrs(msg, HDRLEN + 4, end) {
        let value = &msg[at + 4..at + len];
        match t {
            NFTA_GEN_ID => {
                commit.generation = be32(value)?;
                seen = true;
            }
            NFTA_GEN_PROC_PID => commit.pid = be32(value)?,
            NFTA_GEN_PROC_NAME => {
                let text = value.split(|b| *b == 0).next().unwrap_or_default();
                commit.process = String::from_utf8_lossy(text).into_owned();
            }
            _ => {}
        }
    }
    seen.then_some(commit)
}

/// A `NFT_MSG_NEWTABLE` answer to a `GETTABLE`.
pub(crate) fn parse_table(msg: &[u8]) -> Option<TableInfo> {
    let end = (reply::header(msg)?.len as usize).min(msg.len());
    let mut info = TableInfo {
        flags: 0,
        owner: None,
        comment: None,
    };
    for (t, at, len) in attrs(msg, HDRLEN + 4, end) {
        let value = &msg[at + 4..at + len];
        match t {
            NFTA_TABLE_FLAGS => info.flags = be32(value)?,
            NFTA_TABLE_OWNER => info.owner = be32(value),
            NFTA_TABLE_USERDATA => info.comment = reply::udata_comment(value),
            _ => {}
        }
    }
    Some(info)
}

/// The process that holds the netlink socket with port id `port`, as `name (pid N)`:
/// from `/proc/net/netlink` (port id → socket inode) and the processes' open files.
/// `None` when it cannot be found (another PID namespace, no permission).
pub fn process_of_port(port: u32) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/netlink").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        let (eth, pid, inode) = (cols.get(1)?, cols.get(2)?, cols.get(9)?);
        (*eth == "12" && pid.parse::<u32>().ok()? == port).then(|| inode.to_string())
    })?;
    let target = format!("socket:[{inode}]");
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_dir
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
        });
        if holds {
            let comm = std::fs::read_to_string(proc_dir.path().join("comm")).unwrap_or_default();
            return Some(format!("{} (pid {pid})", comm.trim()));
        }
    }
    None
}
