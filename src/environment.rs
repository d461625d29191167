//! An environment: one data dir's uuid and key, joined to the database that
//! holds its sealed secrets. This is the façade the commands use; the key
//! life cycle lives in `data_dir`. Every read goes through a per-run cache
//! so each secret is unsealed at most once.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::crypto::Key;
use crate::data_dir;
use crate::database_record;
use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};
use crate::secret::{self, Scope, SecretValue};
use crate::settings::{DatabaseLocation, GivenKey, Settings, ENVIRONMENT_VAR};
use crate::store::{self, ScopeFilter, SecretInfo, SecretStore};

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
type Cache = HashMap<String, HashMap<Scope, Option<Arc<SecretValue>>>>;

/// Every sealed row of the environment, read in one query before a render:
/// per name, then per scope, so that a lookup allocates nothing.
type Preloaded = HashMap<String, HashMap<Scope, Vec<u8>>>;

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
    preloaded: RwLock<Option<Preloaded>>,
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

/// `MAGE_SECRETS_ENVIRONMENT` naming one environment by uuid while the
/// data dir's key opens another: a key variable that did not reach this
/// process (a CI secret under another name, say) must not quietly turn into
/// the data dir's environment.
fn refuse_other_named_environment(settings: &Settings, uuid: &str) -> Result<()> {
    let Some(named) = std::env::var(ENVIRONMENT_VAR).ok() else {
        return Ok(());
    };
    let Ok(named) = uuid::Uuid::parse_str(named.trim()) else {
        return Ok(());
    };
    let named = named.hyphenated().to_string();
    if named == uuid {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "{ENVIRONMENT_VAR} names environment {named}, but no key is given (MAGE_SECRETS_KEY or --key-file) and data dir {}'s key opens environment {uuid}; give that environment's key, or unset {ENVIRONMENT_VAR}",
        settings.data_dir.display()
    )))
}

impl Environment {
    /// One opened environment, with an empty value cache: the single place
    /// both ways of opening (data dir, given key) end.
    fn assemble(
        settings: &Settings,
        database: DatabaseLocation,
        uuid: String,
        key: KeyState,
        store: Box<dyn SecretStore>,
        warnings: Vec<String>,
    ) -> Environment {
        Environment {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                database,
                uuid,
                key: RwLock::new(Arc::new(key)),
                store: Mutex::new(store),
                cache: RwLock::new(HashMap::new()),
                preloaded: RwLock::new(None),
                warnings,
            }),
        }
    }
    /// Opens the environment of `settings.data_dir`, creating its uuid and
    /// key on first use; or, with a given key (`settings.key`), the
    /// environment it names, creating nothing.
    pub fn open(settings: &Settings) -> Result<Environment> {
        Environment::open_with(settings, true)
    }

    /// [`open`](Self::open); `creating` says the command may create the
    /// environment (then the database it lives in must be recorded).
    fn open_with(settings: &Settings, creating: bool) -> Result<Environment> {
        if let Some(given) = &settings.key {
            return Environment::open_given(settings, given);
        }
        let database = settings.database_location()?;
        // Another database than the environment's is refused before
        // anything is opened (or created).
        database_record::check(settings, &database)?;
        let mut warnings = Vec::new();
        // A server database is reached before anything is created, so that
        // a server that is down leaves no trace.
        let store = match &database {
            DatabaseLocation::Postgres(_) => {
                let store = store::open(&database)?;
                data_dir::prepare(settings)?;
                store
            }
            DatabaseLocation::Sqlite(_) => {
                data_dir::prepare(settings)?;
                store::open(&database)?
            }
        };
        let (uuid, key, key_check) = data_dir::open_key(settings, store.as_ref(), &mut warnings)?;
        refuse_other_named_environment(settings, &uuid)?;
        // Record where the environment lives (a data dir made before records
        // existed is recorded on its next use; a read-only one stays as it is).
        match database_record::record(settings, &database) {
            Err(e) if creating => return Err(e),
            _ => {}
        }
        Ok(Environment::assemble(
            settings,
            database,
            uuid,
            KeyState { key, key_check },
            store,
            warnings,
        ))
    }

    /// The environment a given key is for: named by uuid, registered in
    /// the database, and opened by the key (its key check), before anything
    /// is read. Touches no data dir and creates nothing, not even the
    /// database.
    fn open_given(settings: &Settings, given: &GivenKey) -> Result<Environment> {
        let origin = &given.origin;
        let Some(named) = &given.environment else {
            return Err(Error::Usage(format!(
                "a key from {origin} needs {ENVIRONMENT_VAR}: the uuid of the environment it opens (`mage-secrets env` shows it)"
            )));
        };
        let Some(described) = settings.database.as_deref() else {
            return Err(Error::Usage(format!(
                "a key from {origin} needs the database: pass --database or set MAGE_SECRETS_DATABASE"
            )));
        };
        let database = DatabaseLocation::parse(described)?;
        if let DatabaseLocation::Sqlite(path) = &database {
            if !path.is_file() {
                return Err(Error::NotFound(format!(
                    "database {} does not exist; with a key from {origin} nothing is created: pass the database that holds environment {named}",
                    path.display()
                )));
            }
        }
        let key = Key::from_file_text(&given.text).map_err(|e| {
            Error::Setup(format!(
                "the key from {origin} is not a mage-secrets key: {e}; give the text `mage-secrets env --export-key` prints"
            ))
        })?;
        let store = store::open(&database)?;
        // A uuid, a unique uuid prefix or a name, as `--environment` takes.
        let entries = store::environment_entries(store.as_ref())?;
        let uuid = match crate::environment_name::resolve(named, &entries, &database.describe()) {
            Ok(entry) => entry.uuid.clone(),
            // A full uuid that is not there: said below, with what to do.
            Err(_) if uuid::Uuid::parse_str(named).is_ok() => uuid::Uuid::parse_str(named)
                .map(|u| u.hyphenated().to_string())
                .unwrap_or_default(),
            Err(Error::Usage(m)) => {
                return Err(Error::Usage(format!("{ENVIRONMENT_VAR}='{named}': {m}")))
            }
            Err(Error::NotFound(m)) => {
                return Err(Error::NotFound(format!("{ENVIRONMENT_VAR}='{named}': {m}")))
            }
            Err(e) => return Err(e),
        };
        let Some(key_check) = store.key_check(&uuid)? else {
            return Err(Error::NotFound(format!(
                "environment {uuid} is not in database {}; a key from {origin} never creates an environment: create it with `mage-secrets set` on a data dir, then export its key with `mage-secrets env --export-key`",
                database.describe()
            )));
        };
        if !key.opens_key_check(&uuid, &key_check) {
            return Err(Error::GivenKeyWrong {
                origin: origin.to_string(),
                env_uuid: uuid,
            });
        }
        Ok(Environment::assemble(
            settings,
            database,
            uuid,
            KeyState { key, key_check },
            store,
            Vec::new(),
        ))
    }

    /// The key's text, as in a key file (for `env --export-key`).
    pub fn key_text(&self) -> zeroize::Zeroizing<String> {
        self.key_state().key.to_file_text()
    }

    /// Opens the environment of a data dir that already has one; never
    /// creates a key or uuid (for commands that only read).
    pub fn open_existing(settings: &Settings) -> Result<Environment> {
        if settings.key.is_none() && !settings.uuid_path().is_file() {
            return Err(Error::NotFound(format!(
                "data dir {} has no mage-secrets environment (no {}); pass the right --data-dir, or create it with `mage-secrets set`",
                settings.data_dir.display(),
                settings.uuid_path().display()
            )));
        }
        Environment::open_with(settings, false)
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
        self.cache()
            .entry(name.to_string())
            .or_default()
            .insert(scope.clone(), value.clone());
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
        let mut map: Preloaded = HashMap::new();
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
            .unwrap_or_else(|p| p.into_inner()) = Some(map);
        Ok(fingerprints)
    }

    fn forget(&self, scope: &Scope, name: &str) {
        if let Some(scopes) = self.cache().get_mut(name) {
            scopes.remove(scope);
        }
        *self
            .inner
            .preloaded
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
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

    /// Re-seals every secret of the environment (all scopes) under a new
    /// key, crash-safely: the new key is written to `key.new`, the rows and
    /// the key check are replaced in one transaction, then `key.new` is
    /// renamed over `key`. A crash at any point leaves every secret readable
    /// with the key file on disk (the next open finishes or undoes the
    /// rotation). Returns the number of secrets re-sealed. This
    /// `Environment` holds the old key afterwards: open the data dir again.
    pub fn rotate_key(&self) -> Result<usize> {
        let settings = &self.inner.settings;
        if let Some(given) = &settings.key {
            return Err(Error::Usage(format!(
                "rotate-key writes the new key into a data dir's key file, and the key from {} has none; rotate where the data dir is, then update the stored key",
                given.origin
            )));
        }
        let uuid = &self.inner.uuid;
        let _lock = data_dir::RotationLock::acquire(settings)?;
        // Temporaries of a rotation that was killed hold keys that were
        // never committed; under the lock no one else is writing one.
        for stale in data_dir::stale_temporaries(settings) {
            fs::remove_file(&stale).map_err(|e| Error::io("remove", &stale, e))?;
        }
        let new_key = Key::generate();
        let new_path = settings.key_new_path();
        fsutil::write_atomic(
            &new_path,
            new_key.to_file_text().as_bytes(),
            0o600,
            Existing::Replace,
        )?;
        data_dir::fault_point("rotate-after-key-new")?;
        let held = self.key_state();
        let old_key = &held.key;
        let count = self.store().rotate(
            uuid,
            &held.key_check,
            &new_key.key_check(uuid),
            &mut |row| {
                let scope = row.scope.to_string();
                let plain = old_key
                    .open(uuid, &scope, &row.name, &row.sealed)
                    .ok_or_else(|| Error::Tampered {
                        name: row.name.clone(),
                        scope: scope.clone(),
                        env_uuid: uuid.clone(),
                    })?;
                Ok(new_key.seal(uuid, &scope, &row.name, &plain))
            },
        );
        let count = match count {
            Ok(n) => n,
            Err(e @ Error::CommitUnknown { .. }) => {
                self.settle_unknown_commit(&new_key, &new_path, e)?
            }
            Err(e) => {
                // The database refused or rolled back: the old key stays.
                let _ = fs::remove_file(&new_path);
                return Err(e);
            }
        };
        data_dir::fault_point("rotate-after-commit")?;
        fs::rename(&new_path, settings.key_path())
            .map_err(|e| Error::io("rename", &new_path, e))?;
        data_dir::fault_point("rotate-after-rename")?;
        fsutil::sync_dir(&settings.own_dir())?;
        self.clear_cache();
        Ok(count)
    }

    /// After a COMMIT whose reply was lost, asks the database which key
    /// check it holds: the new one means the rotation committed (go on), the
    /// old one that it did not (`key.new` is removed). When the database
    /// cannot say, `key.new` stays for the next open to judge by the key
    /// check, as after a crash: every secret stays readable either way.
    fn settle_unknown_commit(
        &self,
        new_key: &Key,
        new_path: &std::path::Path,
        lost: Error,
    ) -> Result<usize> {
        let uuid = &self.inner.uuid;
        let held = if crate::store::fault_active("rotate-store-unreachable-after-commit") {
            None
        } else {
            self.store().key_check(uuid).ok().flatten()
        };
        match held {
            Some(check) if new_key.opens_key_check(uuid, &check) => {
                Ok(self.store().count(uuid).unwrap_or(0) as usize)
            }
            Some(check) if self.key_state().key.opens_key_check(uuid, &check) => {
                let _ = fs::remove_file(new_path);
                Err(lost)
            }
            _ => {
                let Error::CommitUnknown { location, cause } = lost else {
                    return Err(lost);
                };
                Err(Error::RotationUnknown {
                    location,
                    cause,
                    key_new: new_path.to_path_buf(),
                })
            }
        }
    }

    /// Forgets every cached value (after another process changed the store).
    pub fn clear_cache(&self) {
        self.cache().clear();
        *self
            .inner
            .preloaded
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A counter that moves when another process changes the database.
    pub fn store_change_counter(&self) -> Result<u64> {
        self.store().change_counter()
    }
}
