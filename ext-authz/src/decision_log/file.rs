//! The decision log's file: appended to, reopened when it is renamed or deleted under us (what
//! logrotate's default `create` mode does) or when asked (SIGHUP), and optionally rotated by
//! size (`file` → `file.1` → … → `file.N`, the oldest deleted).
//!
//! Only the writer thread touches it, so every write, reopen and rotation happens between two
//! whole lines: a line is never split across files. Lines written between a rename and its
//! discovery land in the renamed file, which is where logrotate expects late lines.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shared::clock::Clock;

/// Size-based rotation: the file is renamed `<file>.1` before a line would take it past
/// `max_size`, and at most `max_files` renamed files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRotation {
    pub max_size: u64,
    /// Renamed files kept (`<file>.1` … `<file>.N`); 0 keeps none (the file starts afresh).
    pub max_files: u32,
}

/// The buffer in front of the file: one `write` carries many lines.
const BUFFER_BYTES: usize = 64 * 1024;

pub struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    /// The open file's device and inode: when the path names another file (or none), the
    /// file was rotated away from under us.
    id: (u64, u64),
    /// Bytes in the file, buffered ones included (re-read at each check, so a `copytruncate`
    /// that emptied the file is seen).
    size: u64,
    rotation: Option<SizeRotation>,
    /// Unix seconds; the path is looked at no more than once per second of it.
    clock: Clock,
    checked_at: u64,
    /// A rotation failed (a read-only directory, say): lines keep going to the current file,
    /// and rotation is tried again at the next check rather than once per line.
    rotation_failed: bool,
}

impl LogFile {
    /// Opens (creating it when missing) the file at `path` for appending.
    pub fn open(path: PathBuf, rotation: Option<SizeRotation>, clock: Clock) -> io::Result<LogFile> {
        let (file, id, size) = open_append(&path)?;
        let checked_at = clock();
        Ok(LogFile {
            path,
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            id,
            size,
            rotation,
            clock,
            checked_at,
            rotation_failed: false,
        })
    }

    /// Appends `line` and its newline (buffered), rotating first when the line would take the
    /// file past its size.
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        let bytes = line.len() as u64 + 1;
        if let Some(rotation) = self.rotation {
            if self.size > 0 && self.size + bytes > rotation.max_size && !self.rotation_failed {
                if let Err(e) = self.rotate(rotation.max_files) {
                    self.rotation_failed = true;
                    tracing::error!(file = %self.path.display(), "decision log: cannot rotate, writing on: {e}");
                }
            }
        }
        writeln!(self.out, "{line}")?;
        self.size += bytes;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Reopens the file when `reopen` is asked for, or when the path no longer names the open
    /// file (renamed or deleted); the path is looked at no more than once a second. Call it
    /// between batches (nothing buffered).
    pub fn check(&mut self, reopen: bool) -> io::Result<()> {
        let now = (self.clock)();
        if !reopen && now == self.checked_at {
            return Ok(());
        }
        self.checked_at = now;
        self.rotation_failed = false;
        self.out.flush()?;
        match std::fs::metadata(&self.path) {
            Ok(meta) if !reopen && (meta.dev(), meta.ino()) == self.id => {
                self.size = meta.len();
                Ok(())
            }
            Ok(_) => self.reopen(),
            Err(e) if reopen || e.kind() == io::ErrorKind::NotFound => self.reopen(),
            Err(e) => Err(e),
        }
    }

    /// What is buffered goes to the old file, then the path is opened afresh.
    fn reopen(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let (file, id, size) = open_append(&self.path)?;
        // The old file is closed here: once it is renamed and deleted, its space is freed.
        self.out = BufWriter::with_capacity(BUFFER_BYTES, file);
        (self.id, self.size) = (id, size);
        Ok(())
    }

    /// `file.{N-1}` → `file.N` … `file` → `file.1`, then a new `file`.
    fn rotate(&mut self, max_files: u32) -> io::Result<()> {
        self.out.flush()?;
        for n in (1..max_files).rev() {
            match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.reopen()
    }
}

/// `<path>.<n>`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The file, its (device, inode) and its size, from the opened file itself (not the path,
/// which may already name another).
fn open_append(path: &Path) -> io::Result<(File, (u64, u64), u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, (meta.dev(), meta.ino()), meta.len()))
}

#[cfg(test)]
mod tests;
