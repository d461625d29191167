//! An environment: one data dir's uuid and key, joined to the database that
//! holds its sealed secrets. This is the façade the commands use; the key
//! life cycle lives in `data_dir`; opening (`open`) and key rotation
//! (`rotate`) are rooms of their own. Every read goes through a per-run cache
//! so each secret is unsealed at most once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::crypto::Key;
use crate::data_dir;
use crate::error::{Error, Result};
use crate::secret::{self, Scope, SecretValue};
use crate::settings::{DatabaseLocation, Settings};
use crate::store::{ScopeFilter, SecretInfo, SecretStore};

mod local;
mod open;
mod rotate;

/// A value found through a scope chain, with the scope it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub scope: Scope,
    pub value: Arc<SecretValue>,
}

/// What `mage-secrets env` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnvironmentInfo {
    pub data_dir: String,
    pub uuid: String,
    /// The name given with `env --name`, if any.
    pub name: Option<String>,
    pub database: String,
    pub key_file: String,
    pub secrets: u64,
}

/// Per name, then per scope, what the store holds (`None`: not set). Both
/// levels are hashed, so a lookup costs the same however many scopes
/// (pipelines) were looked up before.
type Cache = FastMap<String, FastMap<Scope, Option<Arc<SecretValue>>>>;

/// Every sealed row of the environment, read in one query before a render:
/// per name, then per scope, so that a lookup allocates nothing.
type Preloaded = FastMap<String, FastMap<Scope, Vec<u8>>>;

/// A map hashed fast (names come from the user's own templates: no
/// hash flooding to defend against).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set hashed fast, as [`FastMap`].
pub(crate) type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// The key this environment reads and writes with, and the key check it
/// opens (every write verifies that it is still current).
struct KeyState {
    key: Key,
    key_check: Vec<u8>,
}

/// How often a read that meets rows sealed under another key reloads the
/// key before it calls the row tampered.
const KEY_RELOADS: usize = 3;

/// An open environment. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    database: DatabaseLocation,
    uuid: String,
    /// Replaced when a read finds that another process rotated the key.
    key: RwLock<Arc<KeyState>>,
    store: Mutex<Box<dyn SecretStore>>,
    cache: RwLock<Cache>,
    /// Distinguishes this environment from every other of the process, and
    /// its values from those before a change (see `local`).
    id: u64,
    generation: std::sync::atomic::AtomicU64,
    preloaded: RwLock<Option<Arc<Preloaded>>>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("data_dir", &self.inner.settings.data_dir)
            .field("uuid", &self.inner.uuid)
            .field("database", &self.inner.database)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// The key's text, as in a key file (for `env --export-key`).
    pub fn key_text(&self) -> zeroize::Zeroizing<String> {
        self.key_state().key.to_file_text()
    }

    /// The environment uuid.
    pub fn uuid(&self) -> &str {
        &self.inner.uuid
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Things the user should know that did not stop the run (a key file
    /// readable by others, a repaired uuid file).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Box<dyn SecretStore>> {
        self.inner.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Mage's `get_secret_value(name)`: the global secret, if set.
    pub fn get_secret_value(&self, name: &str) -> Result<Option<String>> {
        secret::validate_name(name)?;
        Ok(self
            .lookup(&[Scope::Global], name)?
            .map(|r| r.value.as_str().to_string()))
    }

    /// Looks `name` up through `chain`, most specific scope first. Each
    /// (scope, name) is read and unsealed at most once per `Environment`.
    pub fn lookup(&self, chain: &[Scope], name: &str) -> Result<Option<Resolved>> {
        for scope in chain {
            if let Some(value) = self.lookup_one(scope, name)? {
                return Ok(Some(Resolved {
                    scope: scope.clone(),
                    value,
                }));
            }
        }
        Ok(None)
    }

    fn lookup_one(&self, scope: &Scope, name: &str) -> Result<Option<Arc<SecretValue>>> {
        let generation = self.generation();
        {
            let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(name).and_then(|scopes| scopes.get(scope)) {
                return Ok(hit.clone());
            }
        }
        let sealed = {
            let preloaded = self
                .inner
                .preloaded
                .read()
                .unwrap_or_else(|p| p.into_inner());
            match preloaded.as_ref() {
                // Every row is here: a name that is not needs no caching.
                Some(rows) => match rows.get(name).and_then(|scopes| scopes.get(scope)) {
                    Some(sealed) => Some(sealed.clone()),
                    None => return Ok(None),
                },
                None => None,
            }
        };
        let mut sealed = match sealed {
            Some(row) => Some(row),
            None => self.store().get(&self.inner.uuid, scope, name)?,
        };
        let mut reloads = 0;
        let value = loop {
            let Some(row) = &sealed else { break None };
            let held = self.key_state();
            if let Some(value) = self.unseal(&held, scope, name, row)? {
                break Some(Arc::new(value));
            }
            // A rotation may have committed since this environment read its
            // key: reload the key (waiting for the rotation to finish) and
            // read the row again. Only a row that fails under the current
            // key is tampered.
            if reloads == KEY_RELOADS || !self.reload_key_if_rotated(&held)? {
                return Err(Error::Tampered {
                    name: name.to_string(),
                    scope: scope.to_string(),
                    env_uuid: self.inner.uuid.clone(),
                });
            }
            reloads += 1;
            sealed = self.store().get(&self.inner.uuid, scope, name)?;
        };
        // Kept only if nothing was forgotten meanwhile: the value may be of
        // a row read before.
        let mut cache = self.cache();
        if self.generation() == generation {
            cache
                .entry(name.to_string())
                .or_default()
                .insert(scope.clone(), value.clone());
        }
        Ok(value)
    }

    fn key_state(&self) -> Arc<KeyState> {
        self.inner
            .key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When the database's key check is no longer the one in `held` (the
    /// key this environment held), reads the key again (finishing or waiting for the rotation
    /// that changed it) and forgets the rows read before; whether it did.
    fn reload_key_if_rotated(&self, held: &Arc<KeyState>) -> Result<bool> {
        if self.inner.settings.key.is_some() {
            // A key given from outside the data dir cannot be read again.
            return Ok(false);
        }
        let store = self.store();
        if !Arc::ptr_eq(held, &self.key_state()) {
            // Another thread reloaded it meanwhile.
            return Ok(true);
        }
        if store.key_check(&self.inner.uuid)?.as_deref() == Some(held.key_check.as_slice()) {
            return Ok(false);
        }
        let mut warnings = Vec::new();
        let (uuid, key, key_check) =
            data_dir::open_key(&self.inner.settings, store.as_ref(), &mut warnings)?;
        drop(store);
        if uuid != self.inner.uuid {
            return Ok(false);
        }
        *self.inner.key.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(KeyState { key, key_check });
        *self
            .inner
            .preloaded
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        Ok(true)
    }

    /// Reads every sealed row of the environment in one query, so that a
    /// render reads the database once however many files and scopes it has.
    /// Rows are unsealed only when used.
    pub fn preload(&self) -> Result<()> {
        self.preload_fingerprints().map(drop)
    }

    /// [`preload`](Self::preload), returning a fingerprint of each sealed
    /// row (every write changes it: each has a fresh nonce), from the same
    /// read.
    pub(crate) fn preload_fingerprints(&self) -> Result<HashMap<(Scope, String), u64>> {
        use std::hash::{Hash, Hasher};
        let rows = self.store().rows(&self.inner.uuid)?;
        let mut fingerprints = HashMap::with_capacity(rows.len());
        let mut map: Preloaded = FastMap::default();
        for row in rows {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            row.sealed.hash(&mut h);
            fingerprints.insert((row.scope.clone(), row.name.clone()), h.finish());
            map.entry(row.name)
                .or_default()
                .insert(row.scope, row.sealed);
        }
        *self
            .inner
            .preloaded
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(map));
        self.next_generation();
        Ok(fingerprints)
    }

    /// Drops what is known of one row.
    fn forget(&self, scope: &Scope, name: &str) {
        self.forget_in_cache(|cache| {
            if let Some(scopes) = cache.get_mut(name) {
                scopes.remove(scope);
            }
        });
    }

    /// Drops the rows read at once, then changes the cache and moves the
    /// generation under its lock: a lookup under way keeps nothing it read
    /// before (see [`Environment::lookup_one`]), and every thread's copy
    /// is dropped.
    fn forget_in_cache(&self, change: impl FnOnce(&mut Cache)) {
        *self
            .inner
            .preloaded
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let mut cache = self.cache();
        change(&mut cache);
        self.next_generation();
    }

    /// The value of a sealed row, `None` when the key held does not open it.
    fn unseal(
        &self,
        held: &KeyState,
        scope: &Scope,
        name: &str,
        sealed: &[u8],
    ) -> Result<Option<SecretValue>> {
        let Some(plain) = held
            .key
            .open(&self.inner.uuid, &scope.to_string(), name, sealed)
        else {
            return Ok(None);
        };
        let text = String::from_utf8(plain.to_vec()).map_err(|_| Error::Tampered {
            name: name.to_string(),
            scope: scope.to_string(),
            env_uuid: self.inner.uuid.clone(),
        })?;
        Ok(Some(SecretValue::new(text)))
    }

    /// Sets (or overwrites) a secret.
    pub fn set(&self, name: &str, scope: &Scope, value: &str) -> Result<()> {
        secret::validate_name(name)?;
        secret::validate_value(value.as_bytes())?;
        let held = self.key_state();
        let sealed = held
            .key
            .seal(&self.inner.uuid, &scope.to_string(), name, value.as_bytes());
        self.store()
            .put(&self.inner.uuid, scope, name, &sealed, &held.key_check)?;
        self.forget(scope, name);
        Ok(())
    }

    /// Deletes a secret; `SecretNotSet` when there was none.
    pub fn delete(&self, name: &str, scope: &Scope) -> Result<()> {
        secret::validate_name(name)?;
        let existed = self.store().delete(&self.inner.uuid, scope, name)?;
        self.forget(scope, name);
        if existed {
            Ok(())
        } else {
            Err(self.not_set(name, std::slice::from_ref(scope)))
        }
    }

    /// The error for a name missing from `chain`.
    pub fn not_set(&self, name: &str, chain: &[Scope]) -> Error {
        Error::SecretNotSet {
            name: name.to_string(),
            env_uuid: self.inner.uuid.clone(),
            scopes: secret::describe_chain(chain),
        }
    }

    /// Names, scopes and times; never values.
    pub fn list(&self, filter: &ScopeFilter) -> Result<Vec<SecretInfo>> {
        self.store().list(&self.inner.uuid, filter)
    }

    /// The environment's name (`env --name`), if it has one.
    pub fn name(&self) -> Result<Option<String>> {
        Ok(self
            .store()
            .environment_names()?
            .into_iter()
            .find(|(uuid, _)| *uuid == self.inner.uuid)
            .map(|(_, name)| name))
    }

    /// Names the environment (`None` removes the name). A name is unique
    /// in its database: one another environment holds is refused.
    pub fn set_name(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            crate::environment_name::validate_name(name)?;
        }
        match self.store().set_environment_name(&self.inner.uuid, name)? {
            None => Ok(()),
            Some(holder) => Err(Error::Usage(format!(
                "environment name '{}' is already used by environment {holder} in database {}; choose another name, or remove it there with `mage-secrets --data-dir <its data dir> env --clear-name`",
                name.unwrap_or_default(),
                self.inner.database.describe()
            ))),
        }
    }

    /// Where everything is, and how many secrets there are.
    pub fn info(&self) -> Result<EnvironmentInfo> {
        if let Some(given) = &self.inner.settings.key {
            return Ok(EnvironmentInfo {
                data_dir: "none (a given key)".into(),
                uuid: self.inner.uuid.clone(),
                name: self.name()?,
                database: self.inner.database.describe(),
                key_file: format!("key from {}", given.origin),
                secrets: self.store().count(&self.inner.uuid)?,
            });
        }
        Ok(EnvironmentInfo {
            data_dir: self.inner.settings.data_dir.display().to_string(),
            uuid: self.inner.uuid.clone(),
            name: self.name()?,
            database: self.inner.database.describe(),
            key_file: self.inner.settings.key_path().display().to_string(),
            secrets: self.store().count(&self.inner.uuid)?,
        })
    }

    /// Whether another process rotated this environment's key since it was
    /// opened (this `Environment` can then no longer read or write).
    pub fn key_rotated(&self) -> Result<bool> {
        Ok(self.store().key_check(&self.inner.uuid)?.as_deref()
            != Some(self.key_state().key_check.as_slice()))
    }

    /// Number of secrets of the environment, all scopes.
    pub fn count(&self) -> Result<u64> {
        self.store().count(&self.inner.uuid)
    }

    /// Forgets every cached value (after another process changed the store).
    pub fn clear_cache(&self) {
        self.forget_in_cache(|cache| cache.clear());
    }

    /// A counter that moves when another process changes the database.
    pub fn store_change_counter(&self) -> Result<u64> {
        self.store().change_counter()
    }

    /// Whether the database file was replaced since it was opened (a
    /// backup restored, the data dir recreated): open the environment again.
    pub fn store_replaced(&self) -> bool {
        self.store().replaced()
    }
}
