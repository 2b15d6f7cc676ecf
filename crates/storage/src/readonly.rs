//! [`ReadOnlyFile`]: a redb storage backend that reads a file and never writes it.
//!
//! redb 2.6 has no read-only mode: opening a database takes the file for writing, a store
//! that was not closed cleanly is repaired in place, and closing it writes the allocator
//! state back. Read-only commands must work on a file without write permission and must
//! never change the file (a damaged file rewritten on close may no longer open at all), so
//! this backend keeps every write redb makes in memory, over the file's bytes: redb sees a
//! writable file, the disk sees only reads. The overlay holds the pages redb touched
//! (repair of a store that was not closed cleanly touches many of them), and is dropped
//! with the database.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The overlay's unit: a write dirties whole blocks of this size.
const BLOCK: u64 = 4096;

/// A file read through an in-memory overlay of everything written to it.
#[derive(Debug)]
pub struct ReadOnlyFile {
    state: Mutex<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    file: File,
    /// The length redb sees.
    len: u64,
    /// How much of the file's own bytes is still visible: a shrink hides the rest, and
    /// growing again must show zeros there, not the old bytes.
    visible: u64,
    /// Blocks written (or zeroed), by block number, each `BLOCK` bytes.
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl ReadOnlyFile {
    /// Opens `path` for reading only.
    pub fn open(path: &Path) -> io::Result<ReadOnlyFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(ReadOnlyFile {
            state: Mutex::new(Overlay {
                file,
                len,
                visible: len,
                blocks: BTreeMap::new(),
            }),
        })
    }
}

impl Overlay {
    /// Block `b` as redb last left it: the overlay's copy, or the file's visible bytes
    /// padded with zeros.
    fn block(&mut self, b: u64) -> io::Result<Vec<u8>> {
        if let Some(block) = self.blocks.get(&b) {
            return Ok(block.clone());
        }
        let mut out = vec![0; BLOCK as usize];
        let start = b * BLOCK;
        if start < self.visible {
            let n = (self.visible - start).min(BLOCK) as usize;
            self.file.seek(SeekFrom::Start(start))?;
            self.file.read_exact(&mut out[..n])?;
        }
        Ok(out)
    }
}

impl redb::StorageBackend for ReadOnlyFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().len)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        let end = offset
            .checked_add(len as u64)
            .filter(|end| *end <= s.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut out = Vec::with_capacity(len);
        let mut at = offset;
        while at < end {
            let b = at / BLOCK;
            let block = s.block(b)?;
            let from = (at - b * BLOCK) as usize;
            let to = ((end - b * BLOCK).min(BLOCK)) as usize;
            out.extend_from_slice(&block[from..to]);
            at = b * BLOCK + to as u64;
        }
        Ok(out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        if len < s.len {
            s.visible = s.visible.min(len);
            // Blocks past the end go; the bytes of the last one past the end become zeros.
            let last = len / BLOCK;
            s.blocks.retain(|b, _| *b <= last);
            let cut = (len - last * BLOCK) as usize;
            if let Some(block) = s.blocks.get_mut(&last) {
                block[cut..].fill(0);
            } else if cut > 0 && last * BLOCK < s.visible {
                let mut block = s.block(last)?;
                block[cut..].fill(0);
                s.blocks.insert(last, block);
            }
        }
        s.len = len;
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        // Nothing reaches the disk, so there is nothing to sync.
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        let end = offset + data.len() as u64;
        if end > s.len {
            s.len = end;
        }
        let mut at = offset;
        while at < end {
            let b = at / BLOCK;
            let mut block = s.block(b)?;
            let from = (at - b * BLOCK) as usize;
            let to = ((end - b * BLOCK).min(BLOCK)) as usize;
            let src = (at - offset) as usize;
            block[from..to].copy_from_slice(&data[src..src + (to - from)]);
            s.blocks.insert(b, block);
            at = b * BLOCK + to as u64;
        }
        Ok(())
    }
}

impl ReadOnlyFile {
    /// The overlay. A panic while it was locked happened inside redb's call, which the
    /// store reports as damage; the overlay itself is changed block by block, so it is used
    /// as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
