//! The cookie store's revocations on disk, so a restart does not bring logged-out sessions back:
//! one JSON object a line, appended (and synced) before a logout is answered, rewritten whole
//! (to a temporary file, then renamed) at start and whenever the appended lines outgrow the
//! live set. A line cut short by a crash is skipped: its logout was never confirmed to anyone.
//!
//! The file is opened by its path for every append rather than held open: a file that was
//! removed, replaced or made unwritable is noticed at the next sign-out (and reported), instead
//! of lines going to an inode nobody will read again. A missing file is written whole from the
//! live set, so nothing the store holds is lost with it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::core::session::revoked::Entry;

/// Far above what the bounded set ever writes (100,000 entries of ~150 bytes, twice over): a
/// larger file is not ours, or is damaged.
pub const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RevocationFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: {size} bytes is more than the {MAX_LOG_BYTES} this store ever writes (not ours, or damaged)")]
    TooLarge { path: PathBuf, size: u64 },
}

pub struct RevocationLog {
    path: PathBuf,
    /// How many lines were appended since the log was last rewritten; the lock also keeps an
    /// append from falling between a rewrite's snapshot and its rename.
    appended: Mutex<usize>,
}

impl RevocationLog {
    /// Reads the log (a missing file is an empty one); the caller then [`rewrite`]s it.
    ///
    /// [`rewrite`]: RevocationLog::rewrite
    pub fn open(path: &Path) -> Result<(RevocationLog, Vec<Entry>), RevocationFileError> {
        let io = |source| RevocationFileError::Io { path: path.to_path_buf(), source };
        let entries = match existing(path)? {
            Some(file) => read_entries(path, BufReader::new(file.take(MAX_LOG_BYTES))),
            None => Vec::new(),
        };
        OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok((RevocationLog { path: path.to_path_buf(), appended: Mutex::new(0) }, entries))
    }

    /// Appends entries and syncs them to disk; when the file is gone, writes `snapshot()` (the
    /// live set, which holds these entries too) as a new one. Runs on the blocking pool.
    pub fn append(&self, entries: &[Entry], snapshot: impl FnOnce() -> Vec<Entry>) -> std::io::Result<()> {
        let mut appended = self.appended.lock();
        // Opened before anything is encoded: a file that cannot take the backlog costs an
        // `open` per try, not the encoding of every entry waiting.
        let mut file = match OpenOptions::new().append(true).open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %self.path.display(), "the revocation file was removed; writing it again whole");
                return self.write_whole(&mut appended, snapshot());
            }
            Err(e) => return Err(e),
        };
        let mut text = String::new();
        for entry in entries {
            text.push_str(&serde_json::to_string(entry).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        *appended += entries.len();
        Ok(())
    }

    /// Whether the log can be opened for writing (a missing one can be created): checked before a
    /// whole rewrite, so a file that cannot take anything costs an `open`, not a rewrite.
    pub fn opens(&self) -> std::io::Result<()> {
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the appended lines have outgrown `live` entries enough to rewrite the log.
    pub fn wants_rewrite(&self, live: usize) -> bool {
        *self.appended.lock() > (2 * live).max(10_000)
    }

    /// Replaces the log with `snapshot()` (taken while the log is locked, so no append can fall
    /// between the snapshot and the swap).
    pub fn rewrite(&self, snapshot: impl FnOnce() -> Vec<Entry>) -> std::io::Result<()> {
        let mut appended = self.appended.lock();
        self.write_whole(&mut appended, snapshot())
    }

    fn write_whole(&self, appended: &mut usize, entries: Vec<Entry>) -> std::io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        {
            let mut out = std::io::BufWriter::new(File::create(&temporary)?);
            for entry in &entries {
                serde_json::to_writer(&mut out, entry).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        *appended = 0;
        Ok(())
    }
}

/// What [`RevocationLog::open`] and the rewrite after it need, checked for `validate` without
/// changing anything a running service uses: the file, when present, is a log this store could
/// have written and opens for append; its directory takes new files (a rewrite writes a
/// temporary file beside the log, then renames it). Errors read as `open`'s, so `validate`
/// says what a start would.
pub fn check_writable(path: &Path) -> Result<(), RevocationFileError> {
    let io = |source| RevocationFileError::Io { path: path.to_path_buf(), source };
    if existing(path)?.is_some() {
        OpenOptions::new().append(true).open(path).map_err(io)?;
    }
    // A name of its own (never the rewrite's temporary file, which a running service may
    // be writing), created exclusively and removed at once.
    let probe = path.with_extension(format!("validate-{}", std::process::id()));
    OpenOptions::new().write(true).create_new(true).open(&probe).map_err(io)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The log already on disk, opened for reading; `None` when there is none yet. Anything but a
/// regular file of a size this store could have written is refused.
fn existing(path: &Path) -> Result<Option<File>, RevocationFileError> {
    let io = |source| RevocationFileError::Io { path: path.to_path_buf(), source };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(RevocationFileError::NotAFile { path: path.to_path_buf() });
    }
    let size = metadata.len();
    if size > MAX_LOG_BYTES {
        return Err(RevocationFileError::TooLarge { path: path.to_path_buf(), size });
    }
    Ok(Some(file))
}

fn read_entries(path: &Path, reader: impl BufRead) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut skipped = 0usize;
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(entry) => entries.push(entry),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(file = %path.display(), skipped, "revocation log: unreadable lines skipped");
    }
    entries
}
