//! The PostgreSQL store, for environments that share a server: the same
//! tables and sealed bytes as SQLite, the schema version in a table of its
//! own, upserts for concurrent writers, and a NOTIFY on every write so that
//! `watch` learns of changes without polling the tables.
//!
//! Built to hold up as a production client must:
//! - every wait is bounded ([`crate::store::pg_session`]): a server that
//!   stops answering is an error naming host:port, never a hang;
//! - opening reads the schema version and writes nothing, so a SELECT-only
//!   role or a read replica can read; the schema is created or migrated
//!   before the first write, under an advisory lock that `lock_timeout`
//!   bounds;
//! - transient refusals (too many connections, a server starting up, a
//!   connection lost before a transaction's COMMIT was sent) are retried
//!   with backoff; a connection lost *after* COMMIT was sent is never
//!   retried, since the change may be stored: it is reported as
//!   [`Error::CommitUnknown`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;

use super::pg_session::{Connector, Failure, Session};
use super::{ScopeFilter, SealedRow, SecretInfo, SecretStore};
use crate::error::{Error, Result};
use crate::secret::Scope;
use crate::settings::PostgresUrl;

const SCHEMA_VERSION: i32 = 3;
/// Key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6d61_6765_7365_6372;
/// The channel every write notifies, with the environment uuid as payload.
pub const CHANNEL: &str = "mage_secrets_changes";
const NOW: &str = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
/// How long transient refusals are retried before they are reported.
const RETRY_FOR: Duration = Duration::from_secs(20);
/// How often `watch`'s listening connection is asked for a reply, and how
/// long that reply may take, so that a connection that froze without being
/// reset is noticed within twice this.
const LISTENER_PING: Duration = Duration::from_secs(5);

fn migrations() -> [String; 3] {
    [
        format!(
            "CREATE TABLE environments (
             uuid       TEXT PRIMARY KEY NOT NULL,
             key_check  BYTEA NOT NULL,
             created_at TEXT NOT NULL DEFAULT {NOW}
         );
         CREATE TABLE secrets (
             env_uuid   TEXT NOT NULL,
             scope      TEXT NOT NULL,
             name       TEXT NOT NULL,
             value      BYTEA NOT NULL,
             created_at TEXT NOT NULL DEFAULT {NOW},
             updated_at TEXT NOT NULL DEFAULT {NOW},
             PRIMARY KEY (env_uuid, scope, name)
         );"
        ),
        "ALTER TABLE environments ADD COLUMN name TEXT;
     CREATE UNIQUE INDEX environments_name ON environments (name);"
            .to_string(),
        "CREATE TABLE mage_secrets_database (id TEXT NOT NULL);
     INSERT INTO mage_secrets_database
         VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));"
            .to_string(),
    ]
}

/// What opening found of the schema.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Schema {
    Current,
    /// No tables yet, or an older version: reads see nothing (or the old
    /// tables); the first write migrates.
    Behind,
}

pub struct PostgresStore {
    connector: Connector,
    session: Mutex<Option<Session>>,
    schema: Mutex<Schema>,
    listener: Mutex<Listener>,
}

struct Listener {
    session: Option<Session>,
    counter: u64,
    last_ping: Instant,
}

impl PostgresStore {
    /// Connects and reads the schema version; writes nothing.
    pub fn open(url: &PostgresUrl) -> Result<PostgresStore> {
        let connector = Connector::new(url)?;
        let store = PostgresStore {
            connector,
            session: Mutex::new(None),
            schema: Mutex::new(Schema::Behind),
            listener: Mutex::new(Listener {
                session: None,
                counter: 0,
                last_ping: Instant::now(),
            }),
        };
        let version = store.with_session(false, |s| {
            match s.query("SELECT max(version) FROM mage_secrets_schema", &[]) {
                Ok(rows) => Ok(rows.first().and_then(|r| r.get::<_, Option<i32>>(0))),
                Err(Failure::Pg(e))
                    if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })?;
        match version {
            Some(v) if v > SCHEMA_VERSION => return Err(store.newer_schema(v)),
            Some(SCHEMA_VERSION) => {
                *store.schema.lock().unwrap_or_else(|p| p.into_inner()) = Schema::Current
            }
            _ => {}
        }
        Ok(store)
    }

    fn newer_schema(&self, version: i32) -> Error {
        Error::Database {
            location: self.connector.location().to_string(),
            message: format!("schema version {version} is newer than this mage-secrets supports ({SCHEMA_VERSION}); upgrade mage-secrets"),
            source: None,
        }
    }

    /// Runs `f` on the connection (made on first use, and made again when
    /// the server dropped it). `f` is retried with backoff while the failure
    /// is transient and COMMIT was not sent; `write` calls first bring the
    /// schema up to date.
    fn with_session<T>(
        &self,
        write: bool,
        mut f: impl FnMut(&mut Session) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        if write {
            self.ensure_schema()?;
        }
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let session = match slot.as_mut() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    *slot = None;
                    slot.insert(self.connector.connect_retrying(RETRY_FOR)?)
                }
            };
            session.commit_sent = false;
            let outcome = f(session);
            let commit_sent = session.commit_sent;
            match outcome {
                Ok(value) => return Ok(value),
                Err(failure) => {
                    if !matches!(failure, Failure::Pg(ref e) if e.as_db_error().is_some())
                        || session.is_closed()
                    {
                        *slot = None;
                    }
                    if commit_sent && failure.outcome_unknown() {
                        return Err(self.connector.commit_unknown(&failure));
                    }
                    if failure.is_transient() && started.elapsed() < RETRY_FOR {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_secs(1));
                        continue;
                    }
                    return Err(self.connector.error(&failure));
                }
            }
        }
    }

    /// Creates or migrates the schema when it is behind, under the
    /// advisory lock (whose wait `lock_timeout` bounds).
    fn ensure_schema(&self) -> Result<()> {
        let mut schema = self.schema.lock().unwrap_or_else(|p| p.into_inner());
        if *schema == Schema::Current {
            return Ok(());
        }
        enum Found {
            Done,
            Foreign,
            Newer(i32),
        }
        let found = self.with_session(false, |s| {
            s.transaction(|s| {
                s.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
                let has_schema: bool = s
                    .query_one("SELECT to_regclass('mage_secrets_schema') IS NOT NULL", &[])?
                    .get(0);
                if !has_schema {
                    let foreign: bool = s
                        .query_one(
                            "SELECT to_regclass('secrets') IS NOT NULL OR to_regclass('environments') IS NOT NULL",
                            &[],
                        )?
                        .get(0);
                    if foreign {
                        return Ok((Found::Foreign, false));
                    }
                    s.batch("CREATE TABLE mage_secrets_schema (version INTEGER NOT NULL); INSERT INTO mage_secrets_schema VALUES (0);")?;
                }
                let version: i32 = s
                    .query_one("SELECT max(version) FROM mage_secrets_schema", &[])?
                    .get(0);
                if version > SCHEMA_VERSION {
                    return Ok((Found::Newer(version), false));
                }
                if version == SCHEMA_VERSION {
                    return Ok((Found::Done, false));
                }
                for migration in migrations().iter().skip(version.max(0) as usize) {
                    s.batch(migration)?;
                }
                s.execute("UPDATE mage_secrets_schema SET version = $1", &[&SCHEMA_VERSION])?;
                Ok((Found::Done, true))
            })
        })?;
        match found {
            Found::Foreign => Err(Error::Database {
                location: self.connector.location().to_string(),
                message: "has tables named secrets or environments that are not mage-secrets' own; use another database (or schema) for mage-secrets".into(),
                source: None,
            }),
            Found::Newer(v) => Err(self.newer_schema(v)),
            Found::Done => {
                *schema = Schema::Current;
                Ok(())
            }
        }
    }

    /// Whether the tables exist yet; reads of a database that has none see
    /// an empty store.
    fn has_tables(&self) -> bool {
        *self.schema.lock().unwrap_or_else(|p| p.into_inner()) == Schema::Current
    }

    fn read<T: Default>(
        &self,
        f: impl FnMut(&mut Session) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        if !self.has_tables() {
            return Ok(T::default());
        }
        self.with_session(false, f)
    }
}

/// Runs one query against the server a URL names (for `import-mage`):
/// `Err` for a connection failure, `Ok(Err(message))` for a failed query.
pub(crate) fn query_url(
    url: &PostgresUrl,
    sql: &str,
) -> Result<std::result::Result<Vec<tokio_postgres::Row>, String>> {
    let connector = Connector::new(url)?;
    let mut session = connector.connect_retrying(RETRY_FOR)?;
    match session.query(sql, &[]) {
        Ok(rows) => Ok(Ok(rows)),
        Err(Failure::Pg(e)) if e.as_db_error().is_some() => Ok(Err(e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default())),
        Err(other) => Err(connector.error(&other)),
    }
}

fn scope_of(text: &str) -> std::result::Result<Scope, Error> {
    Scope::parse(text).ok_or_else(|| Error::Database {
        location: String::new(),
        message: format!("invalid scope '{text}' in the secrets table"),
        source: None,
    })
}

/// Checks, in a write transaction, that the key check is still `expected`,
/// and keeps the environment row locked against a concurrent rotation.
fn expect_key_check(
    s: &mut Session,
    env_uuid: &str,
    expected: &[u8],
    lock: &str,
) -> std::result::Result<bool, Failure> {
    let rows = s.query(
        &format!("SELECT key_check FROM environments WHERE uuid = $1 FOR {lock}"),
        &[&env_uuid],
    )?;
    Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)).as_deref() == Some(expected))
}

impl SecretStore for PostgresStore {
    fn location(&self) -> &str {
        self.connector.location()
    }

    fn database_id(&self) -> Result<Option<String>> {
        let rows = self.read(|s| s.query("SELECT id FROM mage_secrets_database LIMIT 1", &[]))?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn key_check(&self, env_uuid: &str) -> Result<Option<Vec<u8>>> {
        self.read(|s| {
            Ok(s.query(
                "SELECT key_check FROM environments WHERE uuid = $1",
                &[&env_uuid],
            )?
            .first()
            .map(|r| r.get(0)))
        })
    }

    fn register_environment(&self, env_uuid: &str, key_check: &[u8], replace: bool) -> Result<()> {
        let sql = if replace {
            "INSERT INTO environments (uuid, key_check) VALUES ($1, $2)
             ON CONFLICT (uuid) DO UPDATE SET key_check = excluded.key_check"
        } else {
            "INSERT INTO environments (uuid, key_check) VALUES ($1, $2) ON CONFLICT (uuid) DO NOTHING"
        };
        // Idempotent: repeating it after a lost reply changes nothing more.
        self.with_session(true, |s| s.execute(sql, &[&env_uuid, &key_check]).map(drop))
    }

    fn get(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        let scope = scope.to_string();
        self.read(|s| {
            Ok(s.query(
                "SELECT value FROM secrets WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                &[&env_uuid, &scope, &name],
            )?
            .first()
            .map(|r| r.get(0)))
        })
    }

    fn put(
        &self,
        env_uuid: &str,
        scope: &Scope,
        name: &str,
        sealed: &[u8],
        key_check: &[u8],
    ) -> Result<()> {
        let scope = scope.to_string();
        let current = self.with_session(true, |s| {
            s.transaction(|s| {
                if !expect_key_check(s, env_uuid, key_check, "SHARE")? {
                    return Ok((false, false));
                }
                s.execute(
                    &format!(
                        "INSERT INTO secrets (env_uuid, scope, name, value) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (env_uuid, scope, name) DO UPDATE SET value = excluded.value, updated_at = {NOW}"
                    ),
                    &[&env_uuid, &scope, &name, &sealed],
                )?;
                s.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
                Ok((true, true))
            })
        })?;
        if current {
            Ok(())
        } else {
            Err(Error::KeyRotated {
                env_uuid: env_uuid.to_string(),
            })
        }
    }

    fn delete(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<bool> {
        let scope = scope.to_string();
        if !self.has_tables() {
            return Ok(false);
        }
        self.with_session(true, |s| {
            s.transaction(|s| {
                let n = s.execute(
                    "DELETE FROM secrets WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                    &[&env_uuid, &scope, &name],
                )?;
                s.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
                Ok((n > 0, true))
            })
        })
    }

    fn list(&self, env_uuid: &str, filter: &ScopeFilter) -> Result<Vec<SecretInfo>> {
        let scope = match filter {
            ScopeFilter::One(s) => Some(s.to_string()),
            ScopeFilter::All => None,
        };
        let rows = self.read(|s| {
            s.query(
                "SELECT name, scope, created_at, updated_at FROM secrets
                 WHERE env_uuid = $1 AND ($2::TEXT IS NULL OR scope = $2)
                 ORDER BY scope = 'global' DESC, scope COLLATE \"C\", name COLLATE \"C\"",
                &[&env_uuid, &scope],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(SecretInfo {
                    name: r.get(0),
                    scope: scope_of(r.get(1))?,
                    created_at: r.get(2),
                    updated_at: r.get(3),
                })
            })
            .collect()
    }

    fn count(&self, env_uuid: &str) -> Result<u64> {
        self.read(|s| {
            Ok(s.query_one(
                "SELECT count(*) FROM secrets WHERE env_uuid = $1",
                &[&env_uuid],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    fn rows(&self, env_uuid: &str) -> Result<Vec<SealedRow>> {
        let rows = self.read(|s| {
            s.query(
                "SELECT scope, name, value FROM secrets WHERE env_uuid = $1 ORDER BY scope COLLATE \"C\", name COLLATE \"C\"",
                &[&env_uuid],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(SealedRow {
                    scope: scope_of(r.get(0))?,
                    name: r.get(1),
                    sealed: r.get(2),
                })
            })
            .collect()
    }

    fn environment_names(&self) -> Result<Vec<(String, String)>> {
        // Names came with schema version 2; a database that is behind has none.
        if !self.has_tables() {
            return Ok(Vec::new());
        }
        let rows = self.read(|s| {
            s.query(
                "SELECT uuid, name FROM environments WHERE name IS NOT NULL ORDER BY uuid",
                &[],
            )
        })?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn set_environment_name(&self, env_uuid: &str, name: Option<&str>) -> Result<Option<String>> {
        let outcome = self.with_session(true, |s| {
            s.transaction(|s| {
                let holder = s.query(
                    "SELECT uuid FROM environments WHERE name = $1 AND uuid <> $2",
                    &[&name, &env_uuid],
                )?;
                if let Some(row) = holder.first() {
                    return Ok((Some(Some(row.get::<_, String>(0))), false));
                }
                let changed = s.execute(
                    "UPDATE environments SET name = $2 WHERE uuid = $1",
                    &[&env_uuid, &name],
                )?;
                if changed == 0 {
                    return Ok((None, false));
                }
                Ok((Some(None), true))
            })
        })?;
        outcome.ok_or_else(|| {
            Error::NotFound(format!(
                "environment {env_uuid} is not registered in database {}",
                self.connector.location()
            ))
        })
    }

    fn environments(&self) -> Result<Vec<String>> {
        let rows = self.read(|s| {
            s.query(
                "SELECT uuid FROM environments UNION SELECT env_uuid FROM secrets ORDER BY 1",
                &[],
            )
        })?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    fn rotate(
        &self,
        env_uuid: &str,
        old_check: &[u8],
        new_check: &[u8],
        reseal: &mut dyn FnMut(&SealedRow) -> Result<Vec<u8>>,
    ) -> Result<usize> {
        let mut failure: Option<Error> = None;
        let outcome = self.with_session(true, |s| {
            s.transaction(|s| {
                if !expect_key_check(s, env_uuid, old_check, "UPDATE")? {
                    return Ok((None, false));
                }
                let rows = s.query(
                    "SELECT scope, name, value FROM secrets WHERE env_uuid = $1",
                    &[&env_uuid],
                )?;
                for r in &rows {
                    let Ok(scope) = scope_of(r.get(0)) else { continue };
                    let row = SealedRow {
                        scope,
                        name: r.get(1),
                        sealed: r.get(2),
                    };
                    match reseal(&row) {
                        Ok(sealed) => {
                            let params: [&(dyn ToSql + Sync); 4] =
                                [&env_uuid, &row.scope.to_string(), &row.name, &sealed];
                            s.execute(
                                "UPDATE secrets SET value = $4 WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                                &params,
                            )?;
                        }
                        Err(e) => {
                            failure = Some(e);
                            return Ok((Some(0), false));
                        }
                    }
                }
                s.execute(
                    "UPDATE environments SET key_check = $2 WHERE uuid = $1",
                    &[&env_uuid, &new_check],
                )?;
                s.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
                Ok((Some(rows.len()), true))
            })
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        outcome.ok_or_else(|| Error::KeyRotated {
            env_uuid: env_uuid.to_string(),
        })
    }

    fn integrity_problem(&self) -> Result<Option<String>> {
        self.with_session(false, |s| s.query("SELECT 1", &[]).map(|_| None))
    }

    /// Counts notifications received on a listening connection (LISTEN/
    /// NOTIFY). A dropped connection is made again, and counts as a change
    /// since notifications may have been missed meanwhile; the connection
    /// is pinged every few seconds so that one that froze without a reset
    /// is noticed within the reply timeout.
    fn change_counter(&self) -> Result<u64> {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        let listener = &mut *listener;
        if listener.session.as_ref().is_none_or(Session::is_closed) {
            listener.session = None;
            let mut session = self.connector.connect()?;
            session
                .batch(&format!("LISTEN {CHANNEL}"))
                .map_err(|e| self.connector.error(&e))?;
            listener.session = Some(session);
            listener.last_ping = Instant::now();
            listener.counter += 1;
        }
        let session = listener.session.as_mut().expect("connected above");
        let mut received = session.take_notifications(Duration::from_millis(1));
        let mut broken = session.is_closed();
        if !broken && listener.last_ping.elapsed() >= LISTENER_PING {
            listener.last_ping = Instant::now();
            if session.query_within(LISTENER_PING, "SELECT 1").is_err() {
                broken = true;
            }
            received += session.take_notifications(Duration::ZERO);
        }
        if broken {
            listener.session = None;
            received += 1;
        }
        listener.counter += received;
        Ok(listener.counter)
    }
}
