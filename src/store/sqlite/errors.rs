//! SQLite's errors as this crate reports them: what failed, where, and
//! what to do.

use rusqlite::ErrorCode;

use crate::error::Error;

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(super) fn db_error(location: &str, e: rusqlite::Error) -> Error {
    let message = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "is not a SQLite database (or is encrypted or damaged); pass the right file with --database".to_string()
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "is locked by another process for longer than 30 s; try again".to_string()
        }
        Some(ErrorCode::ReadOnly) => {
            "is read-only here (a read-only mount, or a file or folder this user may not write): commands that read work, this one writes; run it where the database is writable".to_string()
        }
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
            format!("cannot be written: {e}; check its permissions and those of its folder")
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            format!("is damaged: {e}; restore it from a backup")
        }
        _ => e.to_string(),
    };
    Error::Database {
        location: location.to_string(),
        message,
        source: Some(Box::new(e)),
    }
}
