//! A component's WASI stdout and stderr, turned into log lines (`info` and `error`), as the
//! platform's runtime turns `console.log` and `console.error` into log lines. What the guest
//! writes is kept here until the host takes its complete lines: before each line of the
//! `log` import (so the order of the two holds, stdout before stderr within one take) and at
//! the end of the invocation (with a last line that has no newline). Writes never fail, so a
//! guest that prints too much is never stopped by it: past [`MAX_PENDING`] bytes waiting to
//! be taken, the rest is dropped and its lines counted as dropped log lines, and the
//! invocation's log limits apply to the lines taken.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The most bytes kept waiting to be taken (more than the 200 KB of logs an invocation may
/// keep).
pub(crate) const MAX_PENDING: usize = 256 * 1024;

/// One standard stream, lent to one invocation at a time (the platform keeps the pair and
/// each invocation's end takes everything out). Clones share the buffer.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Pending>>);

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// When each complete line in `bytes` was ended: the log limits count lines per minute
    /// of run time, by when they were written, not when they were taken.
    ended: VecDeque<Instant>,
    /// Lines dropped because the buffer was full (a dropped tail without a newline counts
    /// as one when the next newline or the end comes).
    dropped_lines: usize,
    /// Whether the last byte dropped was not a newline: a line is being dropped.
    dropping: bool,
}

/// Lines taken from a stream, and lines that were dropped before they could be.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Each line and when it was written (its newline; the end, for a last line without).
    pub(crate) lines: Vec<(String, Instant)>,
    pub(crate) dropped: usize,
}

impl Captured {
    fn push(&self, mut data: &[u8]) {
        let mut p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if p.dropping {
            // The rest of a line being dropped goes too, up to its newline.
            let Some(end) = data.iter().position(|b| *b == b'\n') else {
                return;
            };
            p.dropped_lines += 1;
            p.dropping = false;
            data = &data[end + 1..];
        }
        let room = MAX_PENDING.saturating_sub(p.bytes.len());
        let (kept, rest) = data.split_at(room.min(data.len()));
        p.bytes.extend_from_slice(kept);
        let ended = kept.iter().filter(|b| **b == b'\n').count();
        if ended > 0 {
            let now = Instant::now();
            p.ended.extend(std::iter::repeat_n(now, ended));
        }
        if rest.is_empty() {
            return;
        }
        // The line that does not fit is dropped whole: its start in the buffer goes too.
        if p.bytes.last().is_some_and(|b| *b != b'\n') {
            let cut = p
                .bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            p.bytes.truncate(cut);
        }
        // Each newline ends a dropped line; text after the last one is a line being dropped.
        p.dropped_lines += rest.iter().filter(|b| **b == b'\n').count();
        p.dropping = !rest.ends_with(b"\n");
    }

    /// The complete lines written so far (`\n`, or `\r\n`, ends a line; text that is not
    /// UTF-8 is replaced), and with `all` the last one without a newline too.
    pub(crate) fn take(&self, all: bool) -> Taken {
        let mut p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let end = if all {
            p.bytes.len()
        } else {
            p.bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let mut dropped = std::mem::take(&mut p.dropped_lines);
        if all && p.dropping {
            dropped += 1;
            p.dropping = false;
        }
        if end == 0 {
            return Taken {
                lines: Vec::new(),
                dropped,
            };
        }
        let rest = p.bytes.split_off(end);
        let text = std::mem::replace(&mut p.bytes, rest);
        let text = String::from_utf8_lossy(&text);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let now = Instant::now();
        let lines = text
            .split('\n')
            .map(|l| {
                let at = p.ended.pop_front().unwrap_or(now);
                (l.strip_suffix('\r').unwrap_or(l).to_string(), at)
            })
            .collect();
        Taken { lines, dropped }
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: what does not fit is dropped and counted, never refused.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines' text and the dropped count.
    fn text(t: Taken) -> (Vec<String>, usize) {
        (t.lines.into_iter().map(|(l, _)| l).collect(), t.dropped)
    }

    fn taken(lines: &[&str], dropped: usize) -> (Vec<String>, usize) {
        (lines.iter().map(|l| l.to_string()).collect(), dropped)
    }

    #[test]
    fn complete_lines_are_taken_and_the_rest_waits() {
        let c = Captured::default();
        c.push(b"one\r\ntw");
        assert_eq!(text(c.take(false)), taken(&["one"], 0));
        assert_eq!(text(c.take(false)), taken(&[], 0));
        c.push(b"o\n\nthree");
        assert_eq!(text(c.take(false)), taken(&["two", ""], 0));
        assert_eq!(text(c.take(true)), taken(&["three"], 0));
        assert_eq!(text(c.take(true)), taken(&[], 0));
        c.push(&[0xff, b'\n']);
        assert_eq!(text(c.take(false)), taken(&["\u{fffd}"], 0));
    }

    #[test]
    fn a_line_keeps_the_time_it_was_written() {
        let c = Captured::default();
        let before = Instant::now();
        c.push(b"early\n");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let middle = Instant::now();
        c.push(b"late\npartial");
        let t = c.take(true);
        assert!(
            t.lines[0].1 >= before && t.lines[0].1 < middle,
            "{:?}",
            t.lines
        );
        assert!(
            t.lines[1].1 >= middle && t.lines[2].1 >= middle,
            "{:?}",
            t.lines
        );
    }

    #[test]
    fn past_the_limit_lines_are_dropped_whole_and_counted() {
        let c = Captured::default();
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        for _ in 0..MAX_PENDING / 1024 {
            c.push(&line);
        }
        // Full: a line that does not fit, in two writes, then three more.
        c.push(b"cut ");
        c.push(b"here\nmore\nand more\nlast");
        let (lines, dropped) = text(c.take(true));
        assert_eq!(lines.len(), MAX_PENDING / 1024);
        assert_eq!(dropped, 4);
        // Room again once taken.
        c.push(b"after\n");
        assert_eq!(text(c.take(false)), taken(&["after"], 0));
    }

    #[test]
    fn a_line_cut_by_the_limit_keeps_nothing_of_its_start() {
        let c = Captured::default();
        c.push(&vec![b'y'; MAX_PENDING - 3]);
        c.push(b"\nab");
        c.push(b"cdef\n");
        assert_eq!(text(c.take(true)), (vec!["y".repeat(MAX_PENDING - 3)], 1));
        // The rest of a dropped line is dropped too, even once there is room again.
        c.push(&vec![b'z'; MAX_PENDING - 2]);
        c.push(b"\nab");
        c.push(b"cd");
        c.push(b"ef\nnext\n");
        // `abcdef` and `next` (which no longer fits either).
        assert_eq!(text(c.take(true)), (vec!["z".repeat(MAX_PENDING - 2)], 2));
    }
}
