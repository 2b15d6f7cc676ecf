//! Reading an input file without trusting it: only regular files, their size checked before
//! a byte is read, and never more than a limit.
//!
//! Every file signoff reads (manifests, workflows, scenarios, components) goes through
//! [`read_file`], so that `/dev/zero`, a FIFO that never gets a writer, a directory or a
//! sparse 2 GB file is refused at once with a message naming the file, instead of being read
//! until memory runs out or waiting forever.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The limit for text inputs (manifests, workflows, scenarios): the same as the YAML budget.
pub const TEXT_LIMIT: u64 = 4 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a {kind}, not a regular file")]
    NotAFile { path: String, kind: FileKind },
    #[error("{path}: is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
}

/// What a path that is not a regular file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

/// Reads a regular file of at most `limit` bytes. The kind and the size are checked before
/// the file is opened (opening a FIFO for reading would wait for a writer), checked again on
/// the open file, and reading stops one byte past the limit in case the file grew.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let name = path.display().to_string();
    let io = |source| InputError::Io {
        path: name.clone(),
        source,
    };
    check(&name, &std::fs::metadata(path).map_err(io)?, limit)?;
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check(&name, &meta, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: name,
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_file`] for text: the bytes must be UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_file(path, limit)?;
    String::from_utf8(bytes).map_err(|e| InputError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

fn check(name: &str, meta: &std::fs::Metadata, limit: u64) -> Result<(), InputError> {
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(InputError::NotAFile {
            path: name.to_owned(),
            kind: kind_of(&ft),
        });
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge {
            path: name.to_owned(),
            size: meta.len(),
            limit,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn kind_of(ft: &std::fs::FileType) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_char_device() {
        FileKind::CharDevice
    } else if ft.is_block_device() {
        FileKind::BlockDevice
    } else if ft.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Other
    }
}

#[cfg(not(unix))]
fn kind_of(ft: &std::fs::FileType) -> FileKind {
    if ft.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "directory",
            FileKind::Fifo => "FIFO (named pipe)",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Socket => "socket",
            FileKind::Other => "special file",
        })
    }
}
