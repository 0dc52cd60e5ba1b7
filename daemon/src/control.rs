//! The control socket's protocol, shared by `netpold` (server) and `netpolctl`
//! (client): one JSON [`Request`] per line in, one JSON [`Response`] per line out.
//!
//! The types are defined once here, so both sides cannot disagree; the text renderings
//! for people live here too, next to the values they show. So are the protocol's
//! limits: the server's ([`MAX_REQUEST_BYTES`], [`IDLE_TIMEOUT`], [`MAX_CONNECTIONS`])
//! and the client's time limits ([`STATUS_TIMEOUT`], [`RELOAD_TIMEOUT`]).

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Where `netpold` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netpol/netpold.sock";
/// The longest request line the server reads (without its newline); a longer one is
/// answered with an error and the connection closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long the server waits for a whole request line (and for a client to take an
/// answer) before it closes the connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections open at once; more are told so and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// How long `netpolctl status` waits for netpold, connecting included.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `netpolctl reload` waits: a reload of a big inventory takes seconds.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest part of a client's bad input repeated in an error answer.
const MAX_ECHO: usize = 200;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Re-read the inputs now and apply them if they changed; answer when done.
    Reload {
        /// Apply even inputs that would be held as suspicious ([`Outcome::Held`]).
        #[serde(default)]
        force: bool,
    },
    /// Describe what is loaded.
    Status,
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    /// The outcome of a reload.
    Reload(ReloadReport),
    /// The daemon's state.
    Status(Box<StatusReport>),
    /// The request could not be understood.
    Error {
        /// Why.
        message: String,
    },
}

/// What set a reload off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// The first load at start-up.
    Start,
    /// A change of the watched files.
    Files,
    /// SIGHUP.
    Signal,
    /// `netpolctl reload`.
    Control,
    /// This host's addresses changed the set of local endpoints.
    Addresses,
    /// A retry after a failure that may pass without any change of the files (a read
    /// error, the kernel refusing for lack of memory or file descriptors).
    Retry,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new ruleset is in the kernel.
    Applied,
    /// Nothing to do: the inputs (and local endpoints) are what is loaded.
    Unchanged,
    /// Something failed; the kernel keeps the last good ruleset.
    Failed,
    /// The inputs load, but applying them would take away most of the protection in
    /// force (every local endpoint, or most of the policies): the kind of change a
    /// truncated or half-written file makes. Nothing was applied; the files changing
    /// again or `netpolctl reload --force` ends it.
    Held,
}

/// The stage at which a reload failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Reading and parsing files, and validating the model.
    Load,
    /// Choosing the local endpoints (an unknown `--local`).
    Locals,
    /// The kernel refused the ruleset.
    Kernel,
}

/// Sizes of what is loaded (the compiler counts them).
pub use rules_compiler::Counts;

/// The content hashes of the inputs (SHA-256 over each file's path and bytes, in
/// reading order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputHashes {
    /// Of the policy files.
    pub policies: String,
    /// Of the inventory files.
    pub inventory: String,
}

/// How the kernel took the ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum KernelChange {
    /// The table was replaced in one transaction (its deny counters start at zero).
    Replaced,
    /// Only set and map elements changed, in one transaction; everything else, the
    /// deny counters included, stayed.
    Updated {
        /// Elements deleted plus elements added (an interval counts once).
        elements: usize,
    },
}

impl fmt::Display for KernelChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelChange::Replaced => f.write_str("table replaced"),
            KernelChange::Updated { elements } => {
                write!(f, "updated in place ({elements} set elements changed)")
            }
        }
    }
}

/// The answer to a reload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// How it ended.
    pub outcome: Outcome,
    /// What set it off.
    pub trigger: Trigger,
    /// The generation in force afterwards (0: nothing ever loaded).
    pub generation: u64,
    /// Sizes before (what was loaded, if anything).
    pub before: Option<Counts>,
    /// Sizes after (equal to `before` unless applied).
    pub after: Option<Counts>,
    /// Local endpoints that became local.
    pub locals_added: Vec<String>,
    /// Local endpoints that are no longer local.
    pub locals_removed: Vec<String>,
    /// Where it failed.
    pub stage: Option<Stage>,
    /// The whole error, when it failed.
    pub error: Option<String>,
    /// Time to read, validate and plan.
    pub compile_ms: f64,
    /// Time for the kernel transaction.
    pub apply_ms: f64,
    /// How the kernel took it, when applied.
    #[serde(default)]
    pub kernel: Option<KernelChange>,
    /// Established flows the applied ruleset no longer allows, cut after the apply;
    /// `None` when not applied or `revoke-established` is off.
    #[serde(default)]
    pub revoked: Option<Box<RevokedFlows>>,
}

/// What revoking established flows did after an apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedFlows {
    /// Conntrack entries looked at.
    pub seen: usize,
    /// Flows the new ruleset denies, cut (their entries deleted, or gone already).
    pub cut: usize,
    /// Local TCP sockets of those flows destroyed (their peers got a reset).
    pub sockets_reset: usize,
    /// Why it failed, when it did: the ruleset is in force regardless.
    pub error: Option<String>,
}

/// A failed reload, remembered until one succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What set the reload off.
    pub trigger: Trigger,
    /// Where it failed.
    pub stage: Stage,
    /// The whole error.
    pub message: String,
}

/// Reloads counted since the daemon started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadCounts {
    /// Reloads that applied a new ruleset (the first load included).
    pub applied: u64,
    /// Reloads that found nothing to change.
    pub unchanged: u64,
    /// Reloads that failed.
    pub failed: u64,
    /// Reloads held as suspicious.
    #[serde(default)]
    pub held: u64,
}

/// Inputs held back as suspicious (see [`Outcome::Held`]), until the files change or
/// an operator forces them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What set the reload off.
    pub trigger: Trigger,
    /// What the inputs would take away.
    pub reason: String,
    /// The hashes of the inputs held.
    pub hashes: InputHashes,
}

/// Changes someone else made to netpol's table, and what netpold did about them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Foreign changes put right by replacing the table.
    pub repairs: u64,
    /// Repairs that failed (the kernel refused, or there was no plan to put back).
    pub failures: u64,
    /// The last foreign change.
    pub last: Option<DriftEvent>,
}

/// One foreign change to netpol's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// When it was seen (RFC 3339, UTC).
    pub at: String,
    /// Who made it: `nft (pid 4242)`; or why that is not known.
    pub by: String,
    /// What it did to the table (`deleted table`, `rules added to chain input`).
    pub changes: Vec<String>,
    /// What netpold did: `repaired` or why not.
    pub outcome: String,
}

/// Whether the files on disk are what is loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskState {
    /// They hash the same as the loaded inputs.
    Match,
    /// They changed since (a reload is pending or failed).
    Differ,
    /// They cannot be read now.
    Unreadable,
}

/// The answer to a status request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's process id.
    pub pid: u32,
    /// Successful applies so far; 0 before the first.
    pub generation: u64,
    /// When the ruleset in force was applied (RFC 3339, UTC).
    pub loaded_at: Option<String>,
    /// What set off the load in force.
    pub loaded_by: Option<Trigger>,
    /// Hashes of the inputs in force.
    pub hashes: Option<InputHashes>,
    /// Sizes of what is in force.
    pub counts: Option<Counts>,
    /// The local endpoints in force.
    pub local_endpoints: Vec<String>,
    /// True when local endpoints follow this host's addresses.
    pub follows_host: bool,
    /// Reloads since start, by outcome.
    pub reloads: ReloadCounts,
    /// The last failure, if no reload succeeded since.
    pub last_error: Option<LastError>,
    /// Whether the files on disk are what is loaded.
    pub disk: DiskState,
    /// How the kernel took the ruleset in force.
    #[serde(default)]
    pub loaded_how: Option<KernelChange>,
    /// Inputs on disk held back as suspicious, if any.
    #[serde(default)]
    pub held: Option<Held>,
    /// How the kernel holds the table (owned by this netpold, or not and why).
    #[serde(default)]
    pub ownership: Option<crate::netlink::Ownership>,
    /// Foreign changes to the table and their repairs.
    #[serde(default)]
    pub drift: Drift,
}

impl Request {
    /// How long a client waits for the answer unless told otherwise.
    pub fn default_timeout(&self) -> Duration {
        match self {
            Request::Status => STATUS_TIMEOUT,
            _ => RELOAD_TIMEOUT,
        }
    }
}

/// Decodes one request line (without its newline): UTF-8, then JSON. The error is the
/// answer's message, with at most a short part of the input in it.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not a request: not UTF-8 (an invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    serde_json::from_str(text).map_err(|e| format!("not a request: {}", cut(&e.to_string())))
}

/// `text`, cut to [`MAX_ECHO`] bytes (at a character boundary) with a mark.
fn cut(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_string();
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Sends one request to the daemon at `socket` and waits for its answer, for at most
/// the request's [`Request::default_timeout`].
pub fn request(socket: &Path, request: &Request) -> io::Result<Response> {
    request_within(socket, request, request.default_timeout())
}

/// Sends one request and waits for its answer, for at most `timeout` in all
/// (connecting, sending and reading); running out is an error of kind `TimedOut`.
pub fn request_within(socket: &Path, request: &Request, timeout: Duration) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "netpold did not answer within {} s (--timeout SECONDS waits longer)",
                timeout.as_secs_f64()
            ),
        )
    };
    // Time left, or the timeout error when none is.
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)
    };
    let is_timeout = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    let mut stream = connect(socket, left()?).map_err(|e| {
        if is_timeout(&e) {
            return timed_out();
        }
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach netpold at {}: {e} (is it running? --socket names another path)",
                socket.display()
            ),
        )
    })?;
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    stream.set_write_timeout(Some(left()?))?;
    stream
        .write_all(line.as_bytes())
        .map_err(|e| if is_timeout(&e) { timed_out() } else { e })?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    while !answer.contains(&b'\n') {
        stream.set_read_timeout(Some(left()?))?;
        match stream.read(&mut chunk) {
            Ok(0) if answer.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "netpold closed the connection without answering",
                ))
            }
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(timed_out()),
            Err(e) => return Err(e),
        }
    }
    let end = answer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(answer.len());
    serde_json::from_slice(&answer[..end])
        .map_err(|e| io::Error::other(format!("netpold's answer is not understood: {e}")))
}

/// Connects to a Unix socket, waiting at most `timeout` (a connect blocks while the
/// server's listen backlog is full; Linux bounds that wait by the send timeout).
fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.set_write_timeout(Some(timeout))?;
    socket.connect(&SockAddr::unix(path)?)?;
    Ok(UnixStream::from(OwnedFd::from(socket)))
}

/// The id of a group given by number or by name (looked up in the system's group
/// database).
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group {group:?} in the system's group database")),
        Err(e) => Err(format!("cannot look up group {group:?}: {e}")),
    }
}

/// `t` as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn arrow(before: Option<usize>, after: Option<usize>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => format!("{a} (unchanged)"),
        (Some(b), Some(a)) => format!("{b} -> {a}"),
        (None, Some(a)) => a.to_string(),
        (Some(b), None) => b.to_string(),
        (None, None) => "-".into(),
    }
}

impl ReloadReport {
    /// The outcome for people: one line, then what changed or the whole error.
    pub fn render_text(&self) -> String {
        let mut out = match self.outcome {
            Outcome::Applied => format!(
                "reloaded: generation {} applied ({:.1} ms compile, {:.1} ms kernel)\n",
                self.generation, self.compile_ms, self.apply_ms
            ),
            Outcome::Unchanged => format!(
                "unchanged: the inputs are what generation {} loaded; nothing applied\n",
                self.generation
            ),
            Outcome::Failed => format!(
                "reload failed at the {} stage; generation {} stays in force\n",
                match self.stage {
                    Some(Stage::Load) => "load",
                    Some(Stage::Locals) => "local endpoints",
                    Some(Stage::Kernel) => "kernel",
                    None => "unknown",
                },
                self.generation
            ),
            Outcome::Held => format!(
                "held: nothing applied, generation {} stays in force; \
                 `netpolctl reload --force` applies the files as they are\n",
                self.generation
            ),
        };
        if let Some(k) = self.kernel {
            let _ = writeln!(out, "  kernel:          {k}");
        }
        if let Some(r) = &self.revoked {
            let _ = match &r.error {
                Some(e) => writeln!(out, "  revoked:         failed ({e}); the ruleset is in force"),
                None => writeln!(
                    out,
                    "  revoked:         {} of {} established flows no longer allowed ({} TCP sockets reset)",
                    r.cut, r.seen, r.sockets_reset
                ),
            };
        }
        if self.outcome == Outcome::Applied {
            let b = self.before;
            let a = self.after;
            let field = |f: fn(&Counts) -> usize| arrow(b.as_ref().map(f), a.as_ref().map(f));
            let _ = writeln!(out, "  policies:        {}", field(|c| c.policies));
            let _ = writeln!(out, "  endpoints:       {}", field(|c| c.endpoints));
            let _ = writeln!(out, "  local endpoints: {}", field(|c| c.local_endpoints));
            let _ = writeln!(out, "  rules:           {}", field(|c| c.rules));
            let _ = writeln!(out, "  set elements:    {}", field(|c| c.elements));
            for l in &self.locals_added {
                let _ = writeln!(out, "  + local {l}");
            }
            for l in &self.locals_removed {
                let _ = writeln!(out, "  - local {l}");
            }
        }
        if let Some(e) = &self.error {
            for line in e.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}

impl StatusReport {
    /// The state for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "netpold (pid {})", self.pid);
        match (&self.loaded_at, &self.counts) {
            (Some(at), Some(c)) => {
                let _ = writeln!(
                    out,
                    "generation:      {} (loaded {at}{})",
                    self.generation,
                    self.loaded_by
                        .map(|t| format!(" by {}", trigger_name(t)))
                        .unwrap_or_default()
                );
                if let Some(k) = self.loaded_how {
                    let _ = writeln!(out, "kernel:          {k}");
                }
                let _ = writeln!(out, "policies:        {}", c.policies);
                let _ = writeln!(out, "endpoints:       {}", c.endpoints);
                let _ = writeln!(
                    out,
                    "local endpoints: {}{} {}",
                    c.local_endpoints,
                    if self.follows_host {
                        " (by this host's addresses)"
                    } else {
                        " (named)"
                    },
                    self.local_endpoints.join(", ")
                );
                let _ = writeln!(out, "rules:           {}", c.rules);
                let _ = writeln!(out, "set elements:    {}", c.elements);
            }
            _ => {
                let _ = writeln!(out, "generation:      0 (nothing loaded)");
            }
        }
        if let Some(h) = &self.hashes {
            let _ = writeln!(out, "policies hash:   {}", h.policies);
            let _ = writeln!(out, "inventory hash:  {}", h.inventory);
        }
        let _ = writeln!(
            out,
            "files on disk:   {}",
            match self.disk {
                DiskState::Match => "match what is loaded",
                DiskState::Differ => "differ from what is loaded",
                DiskState::Unreadable => "cannot be read",
            }
        );
        let r = self.reloads;
        let _ = writeln!(
            out,
            "reloads:         {} applied, {} unchanged, {} failed, {} held",
            r.applied, r.unchanged, r.failed, r.held
        );
        if let Some(h) = &self.held {
            let _ = writeln!(
                out,
                "held:            since {} ({}): {}; `netpolctl reload --force` applies it",
                h.at,
                trigger_name(h.trigger),
                h.reason
            );
        }
        if let Some(o) = self.ownership {
            let _ = writeln!(out, "table:           {o}");
        }
        let d = &self.drift;
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
        match &self.last_error {
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
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Start => "start-up",
        Trigger::Files => "file change",
        Trigger::Signal => "SIGHUP",
        Trigger::Control => "netpolctl reload",
        Trigger::Addresses => "address change",
        Trigger::Retry => "retry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_one_json_line_each_way() {
        assert_eq!(
            serde_json::to_string(&Request::Reload { force: true }).unwrap(),
            r#"{"request":"reload","force":true}"#
        );
        // Clients from before `force` existed still mean a plain reload.
        let r: Request = serde_json::from_str(r#"{"request":"reload"}"#).unwrap();
        assert_eq!(r, Request::Reload { force: false });
        let r: Request = serde_json::from_str(r#"{"request":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let resp = Response::Error {
            message: "bad".into(),
        };
        let text = serde_json::to_string(&resp).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(text, r#"{"response":"error","message":"bad"}"#);
    }

    #[test]
    fn request_lines_decode_or_say_why_not() {
        assert_eq!(
            decode_request(br#"{"request":"status"}"#),
            Ok(Request::Status)
        );
        assert_eq!(
            decode_request(b"{\"request\":\"reload\"}\r"),
            Ok(Request::Reload { force: false }),
            "a CR before the newline is JSON whitespace"
        );
        let e = decode_request(b"{\"request\":\"st\xffatus\"}").unwrap_err();
        assert_eq!(e, "not a request: not UTF-8 (an invalid byte at offset 14)");
        let e = decode_request(b"{\"request\":").unwrap_err();
        assert!(e.starts_with("not a request: EOF while parsing"), "{e}");
        let e = decode_request(b"").unwrap_err();
        assert!(e.starts_with("not a request: "), "{e}");
        // A long bad value is not repeated whole.
        let long = format!(r#"{{"request":"{}"}}"#, "é".repeat(10_000));
        let e = decode_request(long.as_bytes()).unwrap_err();
        assert!(e.len() < 300, "{} bytes: {e}", e.len());
        assert!(e.starts_with("not a request: unknown variant `éé"), "{e}");
    }

    #[test]
    fn clients_wait_longer_for_a_reload_than_for_the_status() {
        assert_eq!(Request::Status.default_timeout(), STATUS_TIMEOUT);
        assert_eq!(
            Request::Reload { force: true }.default_timeout(),
            RELOAD_TIMEOUT
        );
    }

    #[test]
    fn rfc3339_in_utc() {
        use std::time::UNIX_EPOCH;
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // leap year
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn group_ids_by_number_and_name() {
        assert_eq!(group_id("4242"), Ok(4242));
        assert_eq!(group_id("root"), Ok(0));
        assert!(group_id("no-such-group-here").is_err());
    }

    #[test]
    fn an_applied_reload_shows_before_and_after() {
        let c = |p, r| Counts {
            policies: p,
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
        };
        let text = report.render_text();
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
