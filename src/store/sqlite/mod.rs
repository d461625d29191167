//! The default store: one SQLite file, in WAL mode so readers never block
//! writers, with a busy timeout and short `BEGIN IMMEDIATE` transactions so
//! concurrent processes queue instead of failing with "database is locked".

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{ScopeFilter, SealedRow, SecretInfo, SecretStore};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::secret::Scope;

mod errors;
mod file;
mod read_only;

use errors::{db_error, is_busy};
use file::file_identity;
use read_only::writable;

/// Version of the schema below, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 3;

/// Migrations, indexed by the version they lead from (0 → 1, …).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE environments (
    uuid       TEXT PRIMARY KEY NOT NULL,
    key_check  BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE secrets (
    env_uuid   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (env_uuid, scope, name)
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE environments ADD COLUMN name TEXT;
CREATE UNIQUE INDEX environments_name ON environments (name);
"#,
    r#"
CREATE TABLE mage_secrets_database (id TEXT NOT NULL);
INSERT INTO mage_secrets_database VALUES (lower(hex(randomblob(16))));
"#,
];

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteStore {
    conn: Connection,
    location: String,
    /// The file's path and its (device, inode) when opened: a file put in
    /// its place later (a backup restored with `mv`, a data dir recreated)
    /// is another database, which this connection does not see.
    identity: (std::path::PathBuf, Option<(u64, u64)>),
    /// Whether this connection wrote: it then checkpoints when it closes.
    wrote: std::cell::Cell<bool>,
}

impl SqliteStore {
    /// Opens (creating 0600 if absent) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                fsutil::create_dir_all(parent, 0o700)?;
            }
        }
        // Create the file ourselves so it is 0600 from its first byte; SQLite
        // gives its -wal and -shm files the database file's permissions.
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
        match created {
            // Closed at once: closing any descriptor of the file later would
            // drop the POSIX locks SQLite's connection holds on it.
            Ok(file) => {
                // A file just made is 0600 whatever the umask (under 0277
                // it would be 0400, which SQLite could not write).
                let narrowed = file
                    .metadata()
                    .is_ok_and(|m| m.len() == 0 && m.permissions().mode() & 0o600 != 0o600);
                if narrowed {
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io("set permissions of", path, e))?;
                }
                drop(file)
            }
            // A database on a read-only mount, or one this user may only
            // read: commands that read work; a write is refused by SQLite.
            Err(e) if fsutil::is_read_only_error(&e) && path.is_file() => {
                return SqliteStore::open_read_only(path, location)
            }
            Err(e) => return Err(Error::io("open database", path, e)),
        }
        // Switching a new file to WAL and creating the schema take locks for
        // which SQLite returns "busy" at once, without waiting, when several
        // processes open the same new database: retry the whole opening.
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let attempt = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(Opening::Sqlite)
            .and_then(|conn| {
                let store = SqliteStore {
                    conn,
                    location: location.clone(),
                    identity: (path.to_path_buf(), file_identity(path)),
                    wrote: std::cell::Cell::new(false),
                };
                store.configure().map_err(Opening::Sqlite)?;
                store.migrate()?;
                Ok(store)
            });
            match attempt {
                Ok(store) => return Ok(store),
                Err(Opening::Sqlite(e)) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                // The file is writable but its folder is not (no room for
                // the WAL's files): read-only too. Otherwise these codes are
                // another process setting up the WAL: try again.
                Err(Opening::Sqlite(e))
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)
                    ) =>
                {
                    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
                    if !writable(path) || folder.is_some_and(|f| !writable(f)) {
                        return SqliteStore::open_read_only(path, location);
                    }
                    if started.elapsed() >= BUSY_TIMEOUT {
                        return Err(db_error(&location, e));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(Opening::Sqlite(e)) => return Err(db_error(&location, e)),
                Err(Opening::Refused(e)) => return Err(e),
            }
        }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.location, e)
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Reading the journal mode is the first read of the file: a file that
        // is not SQLite fails here, before anything is written to it.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
        }
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
    }

    fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    fn migrate(&self) -> std::result::Result<(), Opening> {
        let refused = |message: String| {
            Opening::Refused(Error::Database {
                location: self.location.clone(),
                message,
                source: None,
            })
        };
        let version = Self::user_version(&self.conn)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version > SCHEMA_VERSION {
            return Err(refused(format!(
                "schema version {version} is newer than this mage-secrets supports ({SCHEMA_VERSION}); upgrade mage-secrets"
            )));
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let mut version = Self::user_version(&tx)?;
        if version == 0 {
            let foreign: i64 = tx.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )?;
            if foreign > 0 {
                return Err(refused(
                    "this SQLite database belongs to another application (it has tables but no mage-secrets schema); pass a new path with --database".into(),
                ));
            }
        }
        while version < SCHEMA_VERSION {
            tx.execute_batch(MIGRATIONS[version as usize])?;
            version += 1;
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        Ok(())
    }

    /// Inside a write transaction: the environment's key check must still
    /// be the one the caller's key opened.
    fn expect_key_check(
        &self,
        tx: &rusqlite::Transaction<'_>,
        env_uuid: &str,
        expected: &[u8],
    ) -> Result<()> {
        let current: Option<Vec<u8>> = tx
            .query_row(
                "SELECT key_check FROM environments WHERE uuid = ?1",
                [env_uuid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if current.as_deref() != Some(expected) {
            return Err(Error::KeyRotated {
                env_uuid: env_uuid.to_string(),
            });
        }
        Ok(())
    }

    fn write_tx(&self) -> Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }
}

/// Why opening failed: SQLite (perhaps busy, to retry), or a refusal.
enum Opening {
    Sqlite(rusqlite::Error),
    Refused(Error),
}

impl From<rusqlite::Error> for Opening {
    fn from(e: rusqlite::Error) -> Opening {
        Opening::Sqlite(e)
    }
}

/// Every sealed row of an environment, on a connection or in a transaction.
fn sealed_rows(conn: &Connection, env_uuid: &str) -> rusqlite::Result<Vec<SealedRow>> {
    let mut st = conn.prepare_cached(
        "SELECT scope, name, value FROM secrets WHERE env_uuid = ?1 ORDER BY scope, name",
    )?;
    let rows = st.query_map([env_uuid], |r| {
        Ok(SealedRow {
            scope: scope_column(r, 0)?,
            name: r.get(1)?,
            sealed: r.get(2)?,
        })
    })?;
    rows.collect()
}

fn scope_column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Scope> {
    let text: String = row.get(idx)?;
    Scope::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("invalid scope '{text}'").into(),
        )
    })
}

impl SecretStore for SqliteStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn database_id(&self) -> Result<Option<String>> {
        // A database opened read-only may be of an older schema.
        let has_table: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'mage_secrets_database'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !has_table {
            return Ok(None);
        }
        self.conn
            .prepare_cached("SELECT id FROM mage_secrets_database LIMIT 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    fn key_check(&self, env_uuid: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached("SELECT key_check FROM environments WHERE uuid = ?1")
            .and_then(|mut st| st.query_row([env_uuid], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    fn register_environment(&self, env_uuid: &str, key_check: &[u8], replace: bool) -> Result<()> {
        self.wrote.set(true);
        let sql = if replace {
            "INSERT INTO environments (uuid, key_check) VALUES (?1, ?2)
             ON CONFLICT(uuid) DO UPDATE SET key_check = excluded.key_check"
        } else {
            "INSERT INTO environments (uuid, key_check) VALUES (?1, ?2) ON CONFLICT(uuid) DO NOTHING"
        };
        self.conn
            .execute(sql, params![env_uuid, key_check])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn get(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached(
                "SELECT value FROM secrets WHERE env_uuid = ?1 AND scope = ?2 AND name = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![env_uuid, scope.to_string(), name], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    fn put(
        &self,
        env_uuid: &str,
        scope: &Scope,
        name: &str,
        sealed: &[u8],
        key_check: &[u8],
    ) -> Result<()> {
        self.wrote.set(true);
        let tx = self.write_tx()?;
        self.expect_key_check(&tx, env_uuid, key_check)?;
        tx.execute(
            "INSERT INTO secrets (env_uuid, scope, name, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(env_uuid, scope, name) DO UPDATE
             SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
            params![env_uuid, scope.to_string(), name, sealed],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn delete(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<bool> {
        self.wrote.set(true);
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "DELETE FROM secrets WHERE env_uuid = ?1 AND scope = ?2 AND name = ?3",
                params![env_uuid, scope.to_string(), name],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn list(&self, env_uuid: &str, filter: &ScopeFilter) -> Result<Vec<SecretInfo>> {
        let scope = match filter {
            ScopeFilter::One(s) => Some(s.to_string()),
            ScopeFilter::All => None,
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT name, scope, created_at, updated_at FROM secrets
                 WHERE env_uuid = ?1 AND (?2 IS NULL OR scope = ?2)
                 ORDER BY scope = 'global' DESC, scope, name",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![env_uuid, scope], |r| {
                Ok(SecretInfo {
                    name: r.get(0)?,
                    scope: scope_column(r, 1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn count(&self, env_uuid: &str) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM secrets WHERE env_uuid = ?1",
                [env_uuid],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn rows(&self, env_uuid: &str) -> Result<Vec<SealedRow>> {
        sealed_rows(&self.conn, env_uuid).map_err(|e| self.err(e))
    }

    fn environment_names(&self) -> Result<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT uuid, name FROM environments WHERE name IS NOT NULL ORDER BY uuid",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(String, String)>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn set_environment_name(&self, env_uuid: &str, name: Option<&str>) -> Result<Option<String>> {
        self.wrote.set(true);
        let tx = self.write_tx()?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT uuid FROM environments WHERE name = ?1 AND uuid <> ?2",
                params![name, env_uuid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if holder.is_some() {
            return Ok(holder);
        }
        let changed = tx
            .execute(
                "UPDATE environments SET name = ?2 WHERE uuid = ?1",
                params![env_uuid, name],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::NotFound(format!(
                "environment {env_uuid} is not registered in database {}",
                self.location
            )));
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(None)
    }

    fn environments(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT uuid FROM environments UNION SELECT env_uuid FROM secrets ORDER BY 1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn rotate(
        &self,
        env_uuid: &str,
        old_check: &[u8],
        new_check: &[u8],
        reseal: &mut dyn FnMut(&SealedRow) -> Result<Vec<u8>>,
    ) -> Result<usize> {
        self.wrote.set(true);
        let tx = self.write_tx()?;
        self.expect_key_check(&tx, env_uuid, old_check)?;
        let rows = sealed_rows(&tx, env_uuid).map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare("UPDATE secrets SET value = ?4 WHERE env_uuid = ?1 AND scope = ?2 AND name = ?3")
                .map_err(|e| self.err(e))?;
            for row in &rows {
                let sealed = reseal(row)?;
                st.execute(params![env_uuid, row.scope.to_string(), row.name, sealed])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.execute(
            "UPDATE environments SET key_check = ?2 WHERE uuid = ?1",
            params![env_uuid, new_check],
        )
        .map_err(|e| self.err(e))?;
        match tx.commit() {
            // An I/O error during COMMIT may come after the journal made
            // the transaction durable: the outcome is unknown, not "failed".
            Err(e) if !is_busy(&e) => Err(Error::CommitUnknown {
                location: self.location.clone(),
                cause: e.to_string(),
            }),
            Err(e) => Err(self.err(e)),
            Ok(()) if super::fault_active("sqlite-commit-reply-lost") => {
                Err(Error::CommitUnknown {
                    location: self.location.clone(),
                    cause: "disk I/O error (fault injected)".into(),
                })
            }
            Ok(()) => Ok(rows.len()),
        }
    }

    fn integrity_problem(&self) -> Result<Option<String>> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((result != "ok").then_some(result))
    }

    fn replaced(&self) -> bool {
        let (path, opened) = &self.identity;
        opened.is_some() && file_identity(path) != *opened
    }

    fn change_counter(&self) -> Result<u64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_keeps_or_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.register_environment("e", b"one", false).unwrap();
        store.register_environment("e", b"two", false).unwrap();
        assert_eq!(store.key_check("e").unwrap().unwrap(), b"one");
        store.register_environment("e", b"two", true).unwrap();
        assert_eq!(store.key_check("e").unwrap().unwrap(), b"two");
    }

    #[test]
    fn refuses_foreign_and_non_sqlite_files() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database, just some text".repeat(100)).unwrap();
        let err = SqliteStore::open(&junk).err().unwrap().to_string();
        assert!(err.contains("not a SQLite database"), "{err}");

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE secret (id INTEGER)")
            .unwrap();
        let err = SqliteStore::open(&foreign).err().unwrap().to_string();
        assert!(err.contains("another application"), "{err}");
    }
}
