//! A SQLite database that may only be read here (a read-only mount, or a
//! file or folder this user may not write): opened read-only, as immutable
//! where its folder cannot hold the WAL's shared-memory file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{db_error, SqliteStore, BUSY_TIMEOUT};
use crate::error::Result;

impl SqliteStore {
    /// Opens an existing database for reading only. A WAL database needs
    /// its shared-memory file; where that cannot be made (a read-only
    /// folder), the file is opened as immutable, which is what it is there.
    pub(super) fn open_read_only(path: &Path, location: String) -> Result<SqliteStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut last = None;
        for immutable in [false, true] {
            // Immutable reads ignore the write-ahead log: with changes in
            // it, what they read would be old values.
            if immutable {
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                    return Err(crate::error::Error::Database {
                        location: location.clone(),
                        message: format!(
                            "has changes in its write-ahead log ({}) that cannot be read here (a read-only folder without its -shm file); open it once where it is writable (any `mage-secrets list` there folds the log in), or copy the folder with both files",
                            std::path::Path::new(&wal).display()
                        ),
                        source: None,
                    });
                }
            }
            let uri = format!(
                "file:{}{}",
                uri_path(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())),
                if immutable { "?immutable=1" } else { "" }
            );
            let attempt = Connection::open_with_flags(&uri, flags).and_then(|conn| {
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })?;
                Ok(conn)
            });
            match attempt {
                Ok(conn) => {
                    return Ok(SqliteStore {
                        conn,
                        location,
                        identity: (path.to_path_buf(), super::file_identity(path)),
                        wrote: std::cell::Cell::new(false),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(db_error(&location, last.expect("two attempts")))
    }
}

/// Whether this process may write `path` (its permissions, its mount).
pub(super) fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// A path as an SQLite URI path: `%`, `?` and `#` percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
