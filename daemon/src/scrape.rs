//! The metrics endpoint: `GET /metrics` over HTTP/1.x, served by netpold itself so that
//! no client can hold more than it allows.
//!
//! Limits: [`MAX_CONNECTIONS`] open at once (more are answered 503 and closed at once),
//! [`MAX_HEAD_BYTES`] of request head, [`HEAD_TIMEOUT`] to send it and
//! [`DEADLINE`] for the whole exchange; one request per connection, answered with
//! `Connection: close`. Other paths are 404, other methods 405.
//!
//! It only reads a request line and headers and renders what the recorder holds; it must
//! never read a request body, keep a connection alive, or touch the daemon's state.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::listen::Gate;

/// Connections served at once; a scraper needs one.
pub const MAX_CONNECTIONS: usize = 32;
/// The longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time to send the whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the whole exchange, the answer included.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Headers parsed at most (more is 431).
const MAX_HEADERS: usize = 64;

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`head`: HEAD, the same without the body).
    Metrics {
        /// HEAD rather than GET.
        head: bool,
    },
    /// An answer without metrics: status code and reason.
    Status(u16, &'static str),
}

/// Reads of a request head so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// More bytes are needed.
    Partial,
    /// Complete (or bad enough to answer now).
    Done(Route),
}

/// Decides on the bytes of a request head received so far (pure: a fuzz target can use
/// it).
pub fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            Head::Done(Route::Status(431, "Request Header Fields Too Large"))
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            let head = match req.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Head::Done(Route::Status(405, "Method Not Allowed")),
            };
            if path == "/metrics" {
                Head::Done(Route::Metrics { head })
            } else {
                Head::Done(Route::Status(404, "Not Found"))
            }
        }
        Err(httparse::Error::TooManyHeaders) => {
            Head::Done(Route::Status(431, "Request Header Fields Too Large"))
        }
        Err(_) => Head::Done(Route::Status(400, "Bad Request")),
    }
}

/// Binds `address` (an error here stops the daemon before it touches anything).
/// Must run inside the tokio runtime.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serves `listener` until the process ends; `render` gives the page.
pub async fn serve<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let mut gate = Gate::new("metrics listener", MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match gate.admit() {
                Some(permit) => {
                    let render = render.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(DEADLINE, exchange(stream, render)).await;
                        drop(permit);
                    });
                }
                None => refuse(stream),
            },
            Err(e) => gate.failed(&e).await,
        }
    }
}

/// Over the limit: a 503 if the socket takes it without waiting, and close.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(&answer(503, "Service Unavailable", "text/plain", "", false));
}

/// One request and its answer. The caller bounds the whole of it by [`DEADLINE`].
pub async fn exchange<S, F>(mut stream: S, render: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn() -> String,
{
    let route = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(route)) => route,
        // Closed before a whole head, or a read error: nothing to answer.
        Ok(None) => return,
        Err(_) => Route::Status(408, "Request Timeout"),
    };
    let bytes = match route {
        Route::Metrics { head } => answer(
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(),
            head,
        ),
        Route::Status(code, reason) => answer(
            code,
            reason,
            "text/plain",
            &format!("{code} {reason}\n"),
            false,
        ),
    };
    if stream.write_all(&bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Reads until the head is complete, too long or bad; `None` when the client closed
/// first.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Route> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = MAX_HEAD_BYTES - buf.len();
        let n = stream.read(&mut chunk[..room.min(1024)]).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Head::Done(route) = parse_head(&buf) {
            return Some(route);
        }
    }
}

/// A whole answer, `Connection: close`.
fn answer(code: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn route(text: &str) -> Head {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_are_routed() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Head::Done(Route::Metrics { head: false })
        );
        assert_eq!(
            route("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Head::Done(Route::Metrics { head: true })
        );
        assert_eq!(
            route("GET / HTTP/1.1\r\n\r\n"),
            Head::Done(Route::Status(404, "Not Found"))
        );
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Head::Done(Route::Status(405, "Method Not Allowed"))
        );
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost:"), Head::Partial);
        assert_eq!(
            route("\x00\x01 garbage\r\n\r\n"),
            Head::Done(Route::Status(400, "Bad Request"))
        );
    }

    #[test]
    fn a_head_longer_than_the_limit_is_431() {
        let mut long = "GET /metrics HTTP/1.1\r\nX: ".to_string();
        long.push_str(&"a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            route(&long),
            Head::Done(Route::Status(431, "Request Header Fields Too Large"))
        );
        let mut many = "GET /metrics HTTP/1.1\r\n".to_string();
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            route(&many),
            Head::Done(Route::Status(431, "Request Header Fields Too Large"))
        );
    }

    async fn exchange_text(request: &[u8]) -> String {
        let (mut client, server) = duplex(64 * 1024);
        let task = tokio::spawn(exchange(server, || "netpol_generation 1\n".to_string()));
        client.write_all(request).await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_are_answered_and_the_connection_closed() {
        let out = exchange_text(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
        assert!(out.contains("\r\nContent-Length: 20\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nnetpol_generation 1\n"), "{out}");
        let out = exchange_text(b"HEAD /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            out.ends_with("Content-Length: 20\r\nConnection: close\r\n\r\n"),
            "{out}"
        );
        let out = exchange_text(b"DELETE /metrics HTTP/1.1\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
        assert!(out.contains("\r\nAllow: GET, HEAD\r\n"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_no_whole_head_is_cut_off() {
        let (mut client, server) = duplex(64 * 1024);
        let task = tokio::spawn(exchange(server, String::new));
        client
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        // The paused clock jumps to the timeout once everything else waits.
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    }
}
