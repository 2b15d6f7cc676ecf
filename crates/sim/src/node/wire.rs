//! The channel to a Node worker: length-prefixed JSON frames (a 4-byte big-endian length,
//! then UTF-8 JSON) over a Unix socket that the worker holds as its stdin.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The largest frame either side sends: an invocation's payload (5 MB) with JSON's escapes
/// and the frame's own fields. A bigger length is a broken or hostile worker.
pub(crate) const MAX_FRAME: usize = 24 * 1024 * 1024;

pub(crate) struct Link {
    sock: UnixStream,
    buf: Vec<u8>,
    /// What one read takes: allocated once, not zeroed again for every read.
    chunk: Box<[u8]>,
    /// The socket's read timeout as last set: kept while it is close enough to what a wait
    /// needs (a system call saved on most reads).
    timeout: Option<Duration>,
}

/// How much longer than asked a read may wait: the watchdog's checks come at most this late.
const TIMEOUT_SLACK: Duration = Duration::from_millis(2);

/// Why no frame came.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Nothing yet, and `until` has passed.
    Idle,
    /// The worker closed its end or sent something that is not a frame.
    Closed(String),
}

impl Link {
    pub(crate) fn new(sock: UnixStream) -> Link {
        Link {
            sock,
            buf: Vec::with_capacity(64 * 1024),
            chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
            timeout: None,
        }
    }

    pub(crate) fn send(&mut self, frame: &Value) -> io::Result<()> {
        let body = serde_json::to_vec(frame).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        self.sock.write_all(&out)
    }

    /// Closes both directions: the worker reads the end of its channel.
    pub(crate) fn close(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// The next frame, waiting at most until `until`.
    pub(crate) fn recv(&mut self, until: Instant) -> Result<Value, Wait> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(frame);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Wait::Idle);
            }
            let want = left.max(Duration::from_millis(1));
            if !self
                .timeout
                .is_some_and(|t| t >= want && t <= want + TIMEOUT_SLACK)
            {
                self.sock
                    .set_read_timeout(Some(want))
                    .map_err(|e| Wait::Closed(e.to_string()))?;
                self.timeout = Some(want);
            }
            match self.sock.read(&mut self.chunk) {
                Ok(0) => return Err(Wait::Closed("the worker closed the channel".into())),
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Wait::Idle);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Wait::Closed(e.to_string())),
            }
        }
    }

    fn take(&mut self) -> Result<Option<Value>, Wait> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(Wait::Closed(format!(
                "the worker sent a frame of {len} bytes; frames are at most {MAX_FRAME}"
            )));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let frame = serde_json::from_slice(&self.buf[4..4 + len])
            .map_err(|e| Wait::Closed(format!("the worker sent a frame that is not JSON: {e}")));
        self.buf.drain(..4 + len);
        frame.map(Some)
    }
}
