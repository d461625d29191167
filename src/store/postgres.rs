//! The PostgreSQL store, for environments that share a server: the same
//! tables and sealed bytes as SQLite, the schema version in a table of its
//! own, migrations serialised by an advisory lock, upserts for concurrent
//! writers, and a NOTIFY on every write so that `watch` learns of changes
//! without polling the tables. Connections that the server dropped (a
//! restart) are made again on the next call.

use std::sync::Mutex;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::{ScopeFilter, SealedRow, SecretInfo, SecretStore};
use crate::error::{Error, Result};
use crate::secret::Scope;
use crate::settings::PostgresUrl;

const SCHEMA_VERSION: i32 = 1;
/// Key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6d61_6765_7365_6372;
/// The channel every write notifies, with the environment uuid as payload.
pub const CHANNEL: &str = "mage_secrets_changes";
const NOW: &str = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

fn migrations() -> [String; 1] {
    [format!(
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
    )]
}

pub struct PostgresStore {
    config: Config,
    location: String,
    client: Mutex<Client>,
    listener: Mutex<Listener>,
}

#[derive(Default)]
struct Listener {
    client: Option<Client>,
    counter: u64,
}

fn describe_endpoint(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

impl PostgresStore {
    pub fn open(url: &PostgresUrl) -> Result<PostgresStore> {
        let (config, location) = parse_config(url)?;
        let client = connect(&config, &location)?;
        let store = PostgresStore {
            config,
            location,
            client: Mutex::new(client),
            listener: Mutex::new(Listener::default()),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, e: postgres::Error) -> Error {
        db_error(&self.location, &self.config, e)
    }

    /// Runs `f` on the connection, making it again once if the server dropped it.
    fn with_client<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_closed() {
            *client = connect(&self.config, &self.location)?;
        }
        match f(&mut client) {
            Err(e) if client.is_closed() => {
                let _ = e;
                *client = connect(&self.config, &self.location)?;
                f(&mut client).map_err(|e| self.err(e))
            }
            other => other.map_err(|e| self.err(e)),
        }
    }

    fn migrate(&self) -> Result<()> {
        let location = self.location.clone();
        let result = self.with_client(|client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            let has_schema: bool = tx
                .query_one("SELECT to_regclass('mage_secrets_schema') IS NOT NULL", &[])?
                .get(0);
            if !has_schema {
                let foreign: bool = tx
                    .query_one(
                        "SELECT to_regclass('secrets') IS NOT NULL OR to_regclass('environments') IS NOT NULL",
                        &[],
                    )?
                    .get(0);
                if foreign {
                    return Ok(Err(()));
                }
                tx.batch_execute("CREATE TABLE mage_secrets_schema (version INTEGER NOT NULL); INSERT INTO mage_secrets_schema VALUES (0);")?;
            }
            let version: i32 = tx.query_one("SELECT version FROM mage_secrets_schema", &[])?.get(0);
            if version > SCHEMA_VERSION {
                return Ok(Ok(Some(version)));
            }
            for migration in migrations().iter().skip(version.max(0) as usize) {
                tx.batch_execute(migration)?;
            }
            tx.execute("UPDATE mage_secrets_schema SET version = $1", &[&SCHEMA_VERSION])?;
            tx.commit()?;
            Ok(Ok(None))
        })?;
        match result {
            Err(()) => Err(Error::Database {
                location,
                message: "has tables named secrets or environments that are not mage-secrets' own; use another database (or schema) for mage-secrets".into(),
            }),
            Ok(Some(version)) => Err(Error::Database {
                location,
                message: format!("schema version {version} is newer than this mage-secrets supports ({SCHEMA_VERSION}); upgrade mage-secrets"),
            }),
            Ok(None) => Ok(()),
        }
    }
}

/// Connects, with TLS unless `sslmode=disable`: `prefer` (the default)
/// falls back to plain text when the server has no TLS, `require` does not.
/// The server's certificate is verified against the system's CA store
/// (stricter than libpq's `require`, which checks nothing).
fn connect(config: &Config, location: &str) -> Result<Client> {
    let result = match config.get_ssl_mode() {
        SslMode::Disable => config.connect(NoTls),
        _ => config.connect(tls_connector()),
    };
    result.map_err(|e| db_error(location, config, e))
}

/// A URL's connection settings (with a 5 s connect timeout unless it sets
/// one) and its description without the password.
fn parse_config(url: &PostgresUrl) -> Result<(Config, String)> {
    let location = url.redacted();
    let mut config: Config = url
        .0
        .parse()
        .map_err(|e: postgres::Error| Error::Database {
            location: location.clone(),
            message: format!("is not a valid PostgreSQL URL: {e}"),
        })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    Ok((config, location))
}

/// Connects to the server a URL names.
pub(crate) fn connect_url(url: &PostgresUrl) -> Result<Client> {
    let (config, location) = parse_config(url)?;
    connect(&config, &location)
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
    });
    tokio_postgres_rustls::MakeRustlsConnect::new(config.clone())
}

fn db_error(location: &str, config: &Config, e: postgres::Error) -> Error {
    let message = if e.as_db_error().is_some() {
        let db = e.as_db_error().expect("checked");
        format!("{}: {}", db.code().code(), db.message())
    } else if e.is_closed()
        || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
    {
        format!(
            "cannot reach the PostgreSQL server at {}: {}; check that it is running and reachable",
            describe_endpoint(config),
            std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
        )
    } else {
        e.to_string()
    };
    Error::Database {
        location: location.to_string(),
        message,
    }
}

fn scope_of(text: &str) -> std::result::Result<Scope, Error> {
    Scope::parse(text).ok_or_else(|| Error::Database {
        location: String::new(),
        message: format!("invalid scope '{text}' in the secrets table"),
    })
}

/// Checks, in a write transaction, that the key check is still `expected`,
/// and keeps the environment row locked against a concurrent rotation.
fn expect_key_check(
    tx: &mut postgres::Transaction<'_>,
    env_uuid: &str,
    expected: &[u8],
    lock: &str,
) -> std::result::Result<bool, postgres::Error> {
    let row = tx.query_opt(
        &format!("SELECT key_check FROM environments WHERE uuid = $1 FOR {lock}"),
        &[&env_uuid],
    )?;
    Ok(row.map(|r| r.get::<_, Vec<u8>>(0)).as_deref() == Some(expected))
}

impl SecretStore for PostgresStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn key_check(&self, env_uuid: &str) -> Result<Option<Vec<u8>>> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT key_check FROM environments WHERE uuid = $1",
                &[&env_uuid],
            )?
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
        self.with_client(|c| c.execute(sql, &[&env_uuid, &key_check]).map(drop))
    }

    fn get(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        let scope = scope.to_string();
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT value FROM secrets WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                &[&env_uuid, &scope, &name],
            )?
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
        let current = self.with_client(|c| {
            let mut tx = c.transaction()?;
            if !expect_key_check(&mut tx, env_uuid, key_check, "SHARE")? {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO secrets (env_uuid, scope, name, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (env_uuid, scope, name) DO UPDATE SET value = excluded.value, updated_at = {NOW}"
                ),
                &[&env_uuid, &scope, &name, &sealed],
            )?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
            tx.commit()?;
            Ok(true)
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
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "DELETE FROM secrets WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                &[&env_uuid, &scope, &name],
            )?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn list(&self, env_uuid: &str, filter: &ScopeFilter) -> Result<Vec<SecretInfo>> {
        let scope = match filter {
            ScopeFilter::One(s) => Some(s.to_string()),
            ScopeFilter::All => None,
        };
        let rows = self.with_client(|c| {
            c.query(
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
        self.with_client(|c| {
            Ok(c.query_one(
                "SELECT count(*) FROM secrets WHERE env_uuid = $1",
                &[&env_uuid],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    fn rows(&self, env_uuid: &str) -> Result<Vec<SealedRow>> {
        let rows = self.with_client(|c| {
            c.query(
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

    fn environments(&self) -> Result<Vec<String>> {
        let rows = self.with_client(|c| {
            c.query(
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
        let outcome = self.with_client(|c| {
            let mut tx = c.transaction()?;
            if !expect_key_check(&mut tx, env_uuid, old_check, "UPDATE")? {
                return Ok(None);
            }
            let rows = tx.query(
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
                        tx.execute(
                            "UPDATE secrets SET value = $4 WHERE env_uuid = $1 AND scope = $2 AND name = $3",
                            &[&env_uuid, &row.scope.to_string(), &row.name, &sealed],
                        )?;
                    }
                    Err(e) => {
                        failure = Some(e);
                        return Ok(Some(0)); // dropped without commit: rolled back
                    }
                }
            }
            tx.execute("UPDATE environments SET key_check = $2 WHERE uuid = $1", &[&env_uuid, &new_check])?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &env_uuid])?;
            tx.commit()?;
            Ok(Some(rows.len()))
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        outcome.ok_or_else(|| Error::KeyRotated {
            env_uuid: env_uuid.to_string(),
        })
    }

    fn integrity_problem(&self) -> Result<Option<String>> {
        self.with_client(|c| c.query_one("SELECT 1", &[]).map(|_| None))
    }

    /// Counts notifications received on a listening connection (LISTEN/
    /// NOTIFY); a dropped connection is made again, and counts as a change
    /// since notifications may have been missed meanwhile.
    fn change_counter(&self) -> Result<u64> {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if listener.client.as_ref().is_none_or(Client::is_closed) {
            listener.client = None;
            let mut client = connect(&self.config, &self.location)?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(|e| self.err(e))?;
            listener.client = Some(client);
            listener.counter += 1;
        }
        let client = listener.client.as_mut().expect("connected above");
        let mut received = 0;
        let mut broken = false;
        {
            let mut notifications = client.notifications();
            // A short wait drives the connection's I/O, which a bare
            // non-blocking poll does not.
            let mut iter = notifications.timeout_iter(Duration::from_millis(1));
            loop {
                match iter.next() {
                    Ok(Some(_)) => received += 1,
                    Ok(None) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
        }
        if broken {
            listener.client = None;
            received += 1;
        }
        listener.counter += received;
        Ok(listener.counter)
    }
}
