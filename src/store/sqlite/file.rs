//! The database file itself: which file a connection opened (so a file
//! put in its place is noticed), and leaving every write in it.

use std::path::Path;

use super::SqliteStore;

/// The (device, inode) of the file at `path`.
pub(super) fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Drop for SqliteStore {
    /// A process that wrote leaves its changes in the database file itself,
    /// not in the write-ahead log: a copy of `secrets.db` alone is then a
    /// whole backup, and a file restored over it is not mixed with a log
    /// written for the one it replaced. (Skipped when another connection is
    /// reading; the next writer does it.)
    fn drop(&mut self) {
        if self.wrote.get() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}
