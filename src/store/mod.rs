//! Where sealed secrets are kept. The [`SecretStore`] trait is everything the
//! rest of the crate asks of a database; it sees only sealed bytes, never a
//! key or a plaintext. SQLite is the default backend; a server backend
//! implements the same trait without touching callers.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::error::{Error, Result};
use crate::secret::Scope;
use crate::settings::DatabaseLocation;

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
}

/// Opens an existing store without creating anything (for commands that
/// only read, such as `check --environment`).
pub fn open_existing(location: &DatabaseLocation) -> Result<Box<dyn SecretStore>> {
    if let DatabaseLocation::Sqlite(path) = location {
        if !path.is_file() {
            return Err(Error::Database {
                location: path.display().to_string(),
                message: "does not exist; pass the shared database with --database".into(),
            });
        }
    }
    open(location)
}

/// Opens the store a [`DatabaseLocation`] names, creating it if needed.
pub fn open(location: &DatabaseLocation) -> Result<Box<dyn SecretStore>> {
    match location {
        DatabaseLocation::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        DatabaseLocation::Postgres(url) => Err(Error::Database {
            location: url.redacted(),
            message: "PostgreSQL databases are not supported by this build; use a SQLite path"
                .into(),
        }),
    }
}
