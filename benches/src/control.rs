//! A client of netpold's control socket for the benchmarks: one JSON line out, one JSON
//! line back, read as a [`serde_json::Value`] for the few fields the benchmarks follow.
//! Not netpold's protocol types (`netpol_daemon::control`): the benchmarks depend on the
//! daemon's binaries, never on its library.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How long a status request may take (netpold's own client waits as long).
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// The fields of netpold's status answer that the benchmarks read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Successful applies so far; 0 before the first.
    pub generation: u64,
    /// Reloads that failed.
    pub failed_reloads: u64,
    /// How the kernel took the ruleset in force: `updated` or `replaced`, if known.
    pub loaded_how: Option<String>,
}

/// Sends one request (a JSON object) and reads the one-line answer.
pub fn request(socket: &Path, request: &Value, timeout: Duration) -> io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = request.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(answer.trim_end()).map_err(io::Error::other)
}

/// netpold's status, or `None` when it does not answer one (not up yet, gone).
pub fn status(socket: &Path) -> Option<Status> {
    let answer = request(
        socket,
        &serde_json::json!({"request": "status"}),
        STATUS_TIMEOUT,
    );
    parse_status(&answer.ok()?)
}

/// The fields of a status answer (`{"response": "status", …}`).
fn parse_status(answer: &Value) -> Option<Status> {
    if answer.get("response")?.as_str()? != "status" {
        return None;
    }
    Some(Status {
        generation: answer.get("generation")?.as_u64()?,
        failed_reloads: answer.get("reloads")?.get("failed")?.as_u64()?,
        loaded_how: answer
            .get("loaded_how")
            .and_then(|h| h.get("how"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_answer_is_read_for_its_few_fields() {
        let answer = serde_json::json!({
            "response": "status",
            "pid": 7,
            "generation": 3,
            "reloads": {"applied": 3, "unchanged": 0, "failed": 1, "held": 0},
            "loaded_how": {"how": "updated", "elements": 2},
        });
        let s = parse_status(&answer).unwrap();
        assert_eq!(
            s,
            Status {
                generation: 3,
                failed_reloads: 1,
                loaded_how: Some("updated".into())
            }
        );
        let error = serde_json::json!({"response": "error", "message": "no"});
        assert_eq!(parse_status(&error), None);
    }
}
