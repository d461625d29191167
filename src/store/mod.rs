//! Where sealed secrets are kept. The [`SecretStore`] trait is everything the
//! rest of the crate asks of a database; it sees only sealed bytes, never a
//! key or a plaintext. SQLite is the default backend; a server backend
//! implements the same trait without touching callers.

mod pg_options;
mod pg_session;
mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::environment_name::EnvironmentEntry;
use crate::error::{Error, Result};
use crate::secret::Scope;
use crate::settings::{DatabaseLocation, PostgresUrl};

/// A stored row, still sealed.
#[derive(Clone)]
pub struct SealedRow {
    pub scope: Scope,
    pub name: String,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRow")
            .field("scope", &self.scope)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What `list` shows of a secret: never its value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    #[serde(serialize_with = "serialize_scope")]
    pub scope: Scope,
    pub created_at: String,
    pub updated_at: String,
}

fn serialize_scope<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(scope)
}

/// Which scopes a listing covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeFilter {
    One(Scope),
    All,
}

/// The storage operations of the crate. Implementations keep each call
/// atomic and safe under concurrent processes.
pub trait SecretStore: Send {
    /// A human-readable location for messages (a path, or a URL without password).
    fn location(&self) -> &str;

    /// The database's own id, made once when its schema is created (or
    /// brought to version 3): a data dir records it, so that a database
    /// that was replaced or is another server's is never taken for its
    /// own. `None` for a database whose schema is behind.
    fn database_id(&self) -> Result<Option<String>>;

    /// The environment's `key_check`, if it is registered.
    fn key_check(&self, env_uuid: &str) -> Result<Option<Vec<u8>>>;

    /// Registers an environment, or replaces its key check when `replace`.
    /// Without `replace` an existing registration is kept.
    fn register_environment(&self, env_uuid: &str, key_check: &[u8], replace: bool) -> Result<()>;

    /// The sealed value of one secret.
    fn get(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>>;

    /// Inserts or overwrites one secret, in a transaction that first checks
    /// that the environment's key check is still `key_check` (the one the
    /// caller's key opened): a value sealed with a key that was rotated away
    /// meanwhile would be unreadable, so it is refused with `KeyRotated`.
    fn put(
        &self,
        env_uuid: &str,
        scope: &Scope,
        name: &str,
        sealed: &[u8],
        key_check: &[u8],
    ) -> Result<()>;

    /// Deletes one secret; whether it existed.
    fn delete(&self, env_uuid: &str, scope: &Scope, name: &str) -> Result<bool>;

    /// Names, scopes and times, sorted by scope then name.
    fn list(&self, env_uuid: &str, filter: &ScopeFilter) -> Result<Vec<SecretInfo>>;

    /// Number of secrets of an environment, all scopes.
    fn count(&self, env_uuid: &str) -> Result<u64>;

    /// Every sealed row of an environment (for rotation and checks).
    fn rows(&self, env_uuid: &str) -> Result<Vec<SealedRow>>;

    /// Uuids of the registered environments, sorted.
    fn environments(&self) -> Result<Vec<String>>;

    /// The names given to environments (`env --name`): (uuid, name).
    fn environment_names(&self) -> Result<Vec<(String, String)>>;

    /// Names a registered environment (`None` removes its name). Returns
    /// the uuid of the environment that already holds `name`, if another
    /// does; nothing is changed then.
    fn set_environment_name(&self, env_uuid: &str, name: Option<&str>) -> Result<Option<String>>;

    /// Re-seals every row of an environment and replaces its key check, in
    /// one transaction that first checks the key check is still `old_check`.
    /// `reseal` maps each row to its new sealed value. Returns the row count.
    fn rotate(
        &self,
        env_uuid: &str,
        old_check: &[u8],
        new_check: &[u8],
        reseal: &mut dyn FnMut(&SealedRow) -> Result<Vec<u8>>,
    ) -> Result<usize>;

    /// The database's own consistency check: `None` when it is sound.
    fn integrity_problem(&self) -> Result<Option<String>>;

    /// A value that changes whenever another connection commits a change.
    fn change_counter(&self) -> Result<u64>;

    /// Whether the database this store opened was replaced since (another
    /// file at its path): a long-running reader must open it again.
    fn replaced(&self) -> bool {
        false
    }
}

/// Every environment of a database with its name, sorted by uuid.
pub fn environment_entries(store: &dyn SecretStore) -> Result<Vec<EnvironmentEntry>> {
    let names: std::collections::HashMap<String, String> =
        store.environment_names()?.into_iter().collect();
    Ok(store
        .environments()?
        .into_iter()
        .map(|uuid| EnvironmentEntry {
            name: names.get(&uuid).cloned(),
            uuid,
        })
        .collect())
}

/// Runs one query on the PostgreSQL server a URL names (TLS and timeouts
/// as for the store): `Err` when the server cannot be used, `Ok(Err(message))`
/// when the query failed.
pub fn query_postgres(
    url: &PostgresUrl,
    sql: &str,
) -> Result<std::result::Result<Vec<tokio_postgres::Row>, String>> {
    postgres::query_url(url, sql)
}

/// Whether `MAGE_SECRETS_FAULT` (a comma-separated list) names `step`: how
/// the tests put a fault at a precise point (a crash, a lost reply).
pub(crate) fn fault_active(step: &str) -> bool {
    std::env::var("MAGE_SECRETS_FAULT").is_ok_and(|v| v.split(',').any(|s| s == step))
}

/// Opens an existing store without creating anything (for commands that
/// only read, such as `check --environment`).
pub fn open_existing(location: &DatabaseLocation) -> Result<Box<dyn SecretStore>> {
    if let DatabaseLocation::Sqlite(path) = location {
        if !path.is_file() {
            return Err(Error::Database {
                location: path.display().to_string(),
                message: "does not exist; pass the shared database with --database".into(),
                source: None,
            });
        }
    }
    open(location)
}

/// Opens the store a [`DatabaseLocation`] names, creating it if needed.
pub fn open(location: &DatabaseLocation) -> Result<Box<dyn SecretStore>> {
    match location {
        DatabaseLocation::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        DatabaseLocation::Postgres(url) => Ok(Box::new(PostgresStore::open(url)?)),
    }
}

#[cfg(test)]
#[path = "test_server.rs"]
mod test_server;

#[cfg(test)]
mod conformance {
    //! One suite for every backend: what callers rely on.
    use super::*;

    fn suite(store: &dyn SecretStore) {
        let p = Scope::Pipeline("etl".into());
        assert!(store.environments().unwrap().is_empty());
        store.register_environment("e1", b"check-1", false).unwrap();
        // Made with the schema (PostgreSQL makes it on the first write).
        let id = store.database_id().unwrap();
        assert!(id.as_ref().is_some_and(|id| id.len() == 32), "{id:?}");
        assert_eq!(store.database_id().unwrap(), id);
        store.register_environment("e1", b"ignored", false).unwrap();
        assert_eq!(store.key_check("e1").unwrap().unwrap(), b"check-1");
        store.register_environment("e2", b"check-2", false).unwrap();
        assert_eq!(store.key_check("nope").unwrap(), None);

        let before = store.change_counter().unwrap();
        store
            .put("e1", &Scope::Global, "a", b"1", b"check-1")
            .unwrap();
        store
            .put("e1", &Scope::Global, "a", b"2", b"check-1")
            .unwrap();
        store.put("e1", &p, "b", b"\x00\xff", b"check-1").unwrap();
        store
            .put("e2", &Scope::Global, "a", b"4", b"check-2")
            .unwrap();
        assert!(matches!(
            store.put("e1", &Scope::Global, "x", b"5", b"stale"),
            Err(Error::KeyRotated { .. })
        ));
        assert_eq!(store.get("e1", &Scope::Global, "a").unwrap().unwrap(), b"2");
        assert_eq!(store.get("e1", &p, "b").unwrap().unwrap(), b"\x00\xff");
        assert_eq!(store.get("e2", &Scope::Global, "a").unwrap().unwrap(), b"4");
        assert_eq!(store.get("e1", &Scope::Global, "b").unwrap(), None);
        assert_eq!(store.get("e1", &Scope::Global, "x").unwrap(), None);
        assert_eq!(store.count("e1").unwrap(), 2);

        let listed: Vec<(String, String)> = store
            .list("e1", &ScopeFilter::All)
            .unwrap()
            .into_iter()
            .map(|i| (i.scope.to_string(), i.name))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("global".into(), "a".into()),
                ("pipeline:etl".into(), "b".into())
            ]
        );
        let one = store.list("e1", &ScopeFilter::One(p.clone())).unwrap();
        assert_eq!(one.len(), 1);
        assert!(
            one[0].updated_at.ends_with('Z') && one[0].updated_at.len() == 20,
            "{}",
            one[0].updated_at
        );
        assert_eq!(store.rows("e1").unwrap().len(), 2);
        assert_eq!(store.environments().unwrap(), vec!["e1", "e2"]);
        assert!(store.environment_names().unwrap().is_empty());
        assert_eq!(
            store.set_environment_name("e1", Some("prod")).unwrap(),
            None
        );
        assert_eq!(
            store.set_environment_name("e2", Some("prod")).unwrap(),
            Some("e1".to_string()),
            "a name belongs to one environment"
        );
        assert_eq!(
            store.set_environment_name("e1", Some("prod")).unwrap(),
            None
        );
        assert_eq!(store.set_environment_name("e2", Some("dev")).unwrap(), None);
        assert_eq!(
            store.environment_names().unwrap(),
            vec![("e1".into(), "prod".into()), ("e2".into(), "dev".into())]
        );
        assert_eq!(store.set_environment_name("e2", None).unwrap(), None);
        assert_eq!(
            environment_entries(store).unwrap(),
            vec![
                EnvironmentEntry {
                    uuid: "e1".into(),
                    name: Some("prod".into())
                },
                EnvironmentEntry {
                    uuid: "e2".into(),
                    name: None
                },
            ]
        );
        assert!(matches!(
            store.set_environment_name("nope", Some("x")),
            Err(Error::NotFound(_))
        ));

        assert!(store.delete("e1", &p, "b").unwrap());
        assert!(!store.delete("e1", &p, "b").unwrap());

        let failed = store.rotate("e1", b"check-1", b"check-1b", &mut |_| {
            Err(Error::Usage("boom".into()))
        });
        assert!(failed.is_err());
        assert_eq!(
            store.key_check("e1").unwrap().unwrap(),
            b"check-1",
            "a failed rotation changes nothing"
        );
        let n = store
            .rotate("e1", b"check-1", b"check-1b", &mut |row| {
                Ok([b"r".as_slice(), &row.sealed].concat())
            })
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            store.get("e1", &Scope::Global, "a").unwrap().unwrap(),
            b"r2"
        );
        assert_eq!(store.key_check("e1").unwrap().unwrap(), b"check-1b");
        assert!(matches!(
            store.rotate("e1", b"check-1", b"x", &mut |r| Ok(r.sealed.clone())),
            Err(Error::KeyRotated { .. })
        ));
        assert_eq!(
            store.get("e2", &Scope::Global, "a").unwrap().unwrap(),
            b"4",
            "other environments untouched"
        );
        assert_eq!(store.integrity_problem().unwrap(), None);
        let _ = before;
    }

    /// Another connection's write moves the change counter.
    fn sees_other_writers(a: &dyn SecretStore, b: &dyn SecretStore) {
        b.register_environment("w", b"c", false).unwrap();
        let before = a.change_counter().unwrap();
        b.put("w", &Scope::Global, "x", b"1", b"c").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while a.change_counter().unwrap() == before {
            assert!(std::time::Instant::now() < deadline, "no change seen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn sqlite_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        suite(&SqliteStore::open(&path).unwrap());
        let other = dir.path().join("w.db");
        sees_other_writers(
            &SqliteStore::open(&other).unwrap(),
            &SqliteStore::open(&other).unwrap(),
        );
    }

    #[test]
    fn postgres_conforms() {
        let Some(url) = test_server::test_postgres_database("conformance").map(PostgresUrl) else {
            return;
        };
        suite(&PostgresStore::open(&url).unwrap());
        let Some(url) = test_server::test_postgres_database("watchers").map(PostgresUrl) else {
            return;
        };
        sees_other_writers(
            &PostgresStore::open(&url).unwrap(),
            &PostgresStore::open(&url).unwrap(),
        );
    }
}
