//! The control socket's protocol, shared by `netpold` (server) and `netpolctl`
//! (client): one JSON [`Request`] per line in, one JSON [`Response`] per line out.
//!
//! Framing only: the two messages ([`Request`], [`Response`]), decoding a request line
//! ([`decode_request`]), the client ([`request`], [`request_within`]) and the limits,
//! the server's ([`MAX_REQUEST_BYTES`], [`IDLE_TIMEOUT`], [`MAX_CONNECTIONS`]) and the
//! client's ([`STATUS_TIMEOUT`], [`RELOAD_TIMEOUT`]). The server's side of the socket
//! (accepting, the size cap and time limit on each line) is [`crate::daemon`]'s. The
//! reports an answer carries are the state's ([`crate::state::report`]); their text for
//! people is `netpolctl`'s ([`crate::ctl::report_text`]).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The reports the answers carry, defined with the state that makes them; named here
/// too, for clients of the socket.
pub use crate::state::report::{
    InputText, KernelChange, LoadedInputs, Outcome, ReloadReport, StatusReport,
};

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
        /// Apply provisionally: unless [`Request::Confirm`] comes within this many
        /// milliseconds, the last confirmed inputs are applied again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirm_within_ms: Option<u64>,
    },
    /// Keep the provisional generation: answered with [`Response::Confirmed`], or an
    /// error when none waits.
    Confirm,
    /// Describe what is loaded.
    Status,
    /// The inputs in force, as read (`netpolctl diff --against-daemon`): answered with
    /// [`Response::Loaded`], or an error when nothing is loaded or they are too big to
    /// send ([`crate::state::MAX_LOADED_BYTES`]).
    Loaded,
    /// Verdict events: those in the ring that pass the filter, each as a
    /// [`Response::Event`], then [`Response::End`]; with `follow`, new ones as they
    /// come instead of the end (and [`Response::Dropped`] when the client fell behind).
    Logs(crate::events::hub::LogsFilter),
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    /// The outcome of a reload.
    Reload(Box<ReloadReport>),
    /// The daemon's state.
    Status(Box<StatusReport>),
    /// The provisional generation is confirmed.
    Confirmed {
        /// The generation kept.
        generation: u64,
    },
    /// The inputs in force.
    Loaded(Box<LoadedInputs>),
    /// One verdict event (`logs`).
    Event(Box<crate::state::report::VerdictEvent>),
    /// Events this `logs --follow` client was too slow to take, dropped.
    Dropped {
        /// How many.
        events: u64,
    },
    /// The last answer to `logs` without `follow`.
    End,
    /// The request could not be understood.
    Error {
        /// Why.
        message: String,
    },
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
    let mut chunk = [0u8; 64 * 1024];
    // Only new bytes are searched for the end of the line: an answer may be megabytes
    // (`loaded`), and searching it whole after each read would be quadratic.
    let mut searched = 0;
    while !answer[searched..].contains(&b'\n') {
        searched = answer.len();
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

/// Sends a `logs` request and hands each answer to `each` until [`Response::End`]
/// or the daemon closes the connection. Connecting and the first answer wait at most
/// `timeout`; with `filter.follow` later answers wait as long as it takes.
pub fn logs(
    socket: &Path,
    filter: &crate::events::hub::LogsFilter,
    timeout: Duration,
    mut each: impl FnMut(Response) -> io::Result<()>,
) -> io::Result<()> {
    use std::io::BufRead;
    let mut stream = connect(socket, timeout).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach netpold at {}: {e} (is it running? --socket names another path)",
                socket.display()
            ),
        )
    })?;
    let mut line =
        serde_json::to_string(&Request::Logs(filter.clone())).map_err(io::Error::other)?;
    line.push('\n');
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(line.as_bytes())?;
    stream.set_read_timeout((!filter.follow).then_some(timeout))?;
    let mut reader = io::BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let response: Response = serde_json::from_slice(&buf)
            .map_err(|e| io::Error::other(format!("netpold's answer is not understood: {e}")))?;
        if response == Response::End {
            return Ok(());
        }
        each(response)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_one_json_line_each_way() {
        assert_eq!(
            serde_json::to_string(&Request::Reload {
                force: true,
                confirm_within_ms: None
            })
            .unwrap(),
            r#"{"request":"reload","force":true}"#
        );
        // Clients from before `force` existed still mean a plain reload.
        let r: Request = serde_json::from_str(r#"{"request":"reload"}"#).unwrap();
        assert_eq!(
            r,
            Request::Reload {
                force: false,
                confirm_within_ms: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"request":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let provisional = Request::Reload {
            force: false,
            confirm_within_ms: Some(60_000),
        };
        let text = serde_json::to_string(&provisional).unwrap();
        assert_eq!(
            text,
            r#"{"request":"reload","force":false,"confirm_within_ms":60000}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), provisional);
        assert_eq!(
            serde_json::to_string(&Request::Confirm).unwrap(),
            r#"{"request":"confirm"}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::Confirmed { generation: 4 }).unwrap(),
            r#"{"response":"confirmed","generation":4}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Loaded).unwrap(),
            r#"{"request":"loaded"}"#
        );
        let r: Request = serde_json::from_str(
            r#"{"request":"logs","follow":true,"last":5,"endpoint":"db/pg","verdict":"audit"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Logs(crate::events::hub::LogsFilter {
                follow: true,
                last: Some(5),
                endpoint: Some("db/pg".into()),
                verdict: Some(crate::state::report::Verdict::Audit),
            })
        );
        let r: Request = serde_json::from_str(r#"{"request":"logs"}"#).unwrap();
        assert_eq!(r, Request::Logs(Default::default()));
        assert_eq!(
            serde_json::to_string(&Response::End).unwrap(),
            r#"{"response":"end"}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::Dropped { events: 3 }).unwrap(),
            r#"{"response":"dropped","events":3}"#
        );
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
            Ok(Request::Reload {
                force: false,
                confirm_within_ms: None
            }),
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
            Request::Reload {
                force: true,
                confirm_within_ms: None
            }
            .default_timeout(),
            RELOAD_TIMEOUT
        );
    }
}
