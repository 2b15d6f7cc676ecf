//! The opt-in loopback mode of the egress gate: an allowed fetch to a host is forwarded, as
//! real HTTP/1.1, to a server the developer runs on this machine's loopback interface.
//!
//! By default nothing leaves the simulator's process: allowed fetches go to simulated
//! endpoints (closures, or fixed answers in a scenario's `endpoints:`). With
//! [`loopback_endpoint`], the same allowed fetch reaches a real local server (a mock of the
//! vendor's analytics API, say), after the gate has judged it and the ledger has recorded
//! it. Only loopback addresses (`127.0.0.0/8`, `::1`) are accepted, so this mode cannot
//! reach another machine. `https://` URLs are sent as plain HTTP to the local server (it
//! stands in for the remote host; no TLS is spoken).
//!
//! The mode trades determinism for realism: a run's answers now depend on the local server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Endpoint, EndpointRequest, EndpointResponse};

/// Answers larger than this are cut off and reported as a `502`.
pub const MAX_RESPONSE_BYTES: usize = 5 * 1024 * 1024;

/// An address that is not on the loopback interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a loopback address: the loopback mode only reaches 127.0.0.0/8 or ::1")]
pub struct NotLoopback(pub SocketAddr);

/// An endpoint that forwards each request to the HTTP server at `addr` (a loopback address)
/// and returns its answer. A connection failure, a timeout or an answer that is not HTTP
/// becomes a `502` answer with an `x-signoff-sim-error` header saying what went wrong; the
/// app sees a bad gateway, as it would on the platform.
pub fn loopback_endpoint(addr: SocketAddr, timeout: Duration) -> Result<Endpoint, NotLoopback> {
    if !addr.ip().is_loopback() {
        return Err(NotLoopback(addr));
    }
    Ok(Arc::new(move |req: &EndpointRequest| {
        forward(addr, timeout, req).unwrap_or_else(|e| EndpointResponse {
            status: 502,
            headers: vec![("x-signoff-sim-error".into(), e.clone())],
            body: format!("loopback endpoint {addr}: {e}"),
        })
    }))
}

fn forward(
    addr: SocketAddr,
    timeout: Duration,
    req: &EndpointRequest,
) -> Result<EndpointResponse, String> {
    let (host, target) = split_url(&req.url);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{} {target} HTTP/1.1\r\nhost: {host}\r\n", req.method);
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        // The framing headers are ours; a header with a line break would split the request.
        if matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) || k.contains(['\r', '\n'])
            || v.contains(['\r', '\n'])
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        req.body.len()
    ));
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(req.body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES as u64 + 64 * 1024 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    parse_response(&raw)
}

/// `https://host:port/path?q` → (`host:port`, `/path?q`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

fn parse_response(raw: &[u8]) -> Result<EndpointResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "the headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("not a header line: {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let mut body = raw[split + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if body.len() < len {
            return Err(format!(
                "the answer ended after {} of {len} body bytes",
                body.len()
            ));
        }
        body.truncate(len);
    }
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(format!("the answer is over {MAX_RESPONSE_BYTES} bytes"));
    }
    let body = String::from_utf8(body).map_err(|_| "the body is not UTF-8 text")?;
    Ok(EndpointResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line has no end")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 || out.len() + size > MAX_RESPONSE_BYTES {
            return Err("a chunk is cut off or the answer is too large".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_target() {
        assert_eq!(
            split_url("https://a.example:8443/v1/e?x=1"),
            ("a.example:8443", "/v1/e?x=1")
        );
        assert_eq!(split_url("https://a.example"), ("a.example", "/"));
    }

    #[test]
    fn answers_are_parsed_or_refused() {
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\nokEXTRA")
                .unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "ok"));
        assert!(r.headers.contains(&("x-a".into(), "b".into())));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abcde");
        for bad in [
            &b"garbage"[..],
            b"SMTP 220 hello\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let remote: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert_eq!(
            loopback_endpoint(remote, Duration::from_secs(1)).err(),
            Some(NotLoopback(remote))
        );
        assert!(loopback_endpoint("127.0.0.1:9".parse().unwrap(), Duration::from_secs(1)).is_ok());
        assert!(loopback_endpoint("[::1]:9".parse().unwrap(), Duration::from_secs(1)).is_ok());
    }
}
