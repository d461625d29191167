//! An environment: one data dir's uuid and key, joined to the database that
//! holds its sealed secrets. `Environment::open` runs the key life cycle of
//! the contract (first use creates uuid and key; a lost key is refused, never
//! replaced), and every read goes through a per-run cache so each secret is
//! unsealed at most once.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use zeroize::Zeroizing;

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};
use crate::secret::{self, Scope};
use crate::settings::{DatabaseLocation, Settings};
use crate::store::{self, ScopeFilter, SecretInfo, SecretStore};

/// A decrypted secret value, wiped from memory when dropped. Its `Debug`
/// output never shows the value.
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(Zeroizing::new(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

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
    pub database: String,
    pub key_file: String,
    pub secrets: u64,
}

/// Per name, what each scope looked up so far holds (`None`: not set).
type Cache = HashMap<String, Vec<(Scope, Option<Arc<SecretValue>>)>>;

/// Every sealed row of the environment, read in one query before a render.
type Preloaded = HashMap<(Scope, String), Vec<u8>>;

/// An open environment. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<Inner>,
}

struct Inner {
    key_check: Vec<u8>,
    settings: Settings,
    database: DatabaseLocation,
    uuid: String,
    key: Key,
    store: Mutex<Box<dyn SecretStore>>,
    cache: RwLock<Cache>,
    preloaded: Mutex<Option<Preloaded>>,
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
    /// Opens the environment of `settings.data_dir`, creating its uuid and
    /// key on first use.
    pub fn open(settings: &Settings) -> Result<Environment> {
        let database = settings.database_location()?;
        let mut warnings = Vec::new();
        // A server database is reached before anything is created, so that
        // a server that is down leaves no trace.
        let store = match &database {
            DatabaseLocation::Postgres(_) => {
                let store = store::open(&database)?;
                prepare_data_dir(settings)?;
                store
            }
            DatabaseLocation::Sqlite(_) => {
                prepare_data_dir(settings)?;
                store::open(&database)?
            }
        };
        recover_rotation(settings, store.as_ref(), &mut warnings)?;
        let (uuid, key, key_check) = match load_key(settings, store.as_ref(), &mut warnings) {
            // A rotation may be committing right now: wait for it, then
            // read the key again.
            Err(Error::WrongKey { .. }) => {
                if settings.key_new_path().exists() {
                    let _lock = RotationLock::acquire(settings)?;
                    recover_rotation_locked(settings, store.as_ref(), &mut warnings)?;
                }
                load_key(settings, store.as_ref(), &mut warnings)?
            }
            other => other?,
        };
        Ok(Environment {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                database,
                uuid,
                key,
                key_check,
                store: Mutex::new(store),
                cache: RwLock::new(HashMap::new()),
                preloaded: Mutex::new(None),
                warnings,
            }),
        })
    }

    /// Opens the environment of a data dir that already has one; never
    /// creates a key or uuid (for commands that only read).
    pub fn open_existing(settings: &Settings) -> Result<Environment> {
        if !settings.uuid_path().is_file() {
            return Err(Error::Usage(format!(
                "data dir {} has no mage-secrets environment (no {}); pass the right --data-dir, or create it with `mage-secrets set`",
                settings.data_dir.display(),
                settings.uuid_path().display()
            )));
        }
        Environment::open(settings)
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
            if let Some(scopes) = cache.get(name) {
                if let Some((_, hit)) = scopes.iter().find(|(s, _)| s == scope) {
                    return Ok(hit.clone());
                }
            }
        }
        let preloaded = self
            .inner
            .preloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|rows| rows.get(&(scope.clone(), name.to_string())).cloned());
        let sealed = match preloaded {
            Some(row) => row,
            None => self.store().get(&self.inner.uuid, scope, name)?,
        };
        let value = match sealed {
            None => None,
            Some(sealed) => Some(Arc::new(self.unseal(scope, name, &sealed)?)),
        };
        self.cache()
            .entry(name.to_string())
            .or_default()
            .push((scope.clone(), value.clone()));
        Ok(value)
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
        let mut map = HashMap::with_capacity(rows.len());
        for row in rows {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            row.sealed.hash(&mut h);
            let key = (row.scope, row.name);
            fingerprints.insert(key.clone(), h.finish());
            map.insert(key, row.sealed);
        }
        *self
            .inner
            .preloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(map);
        Ok(fingerprints)
    }

    fn forget(&self, scope: &Scope, name: &str) {
        if let Some(scopes) = self.cache().get_mut(name) {
            scopes.retain(|(s, _)| s != scope);
        }
        *self
            .inner
            .preloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn unseal(&self, scope: &Scope, name: &str, sealed: &[u8]) -> Result<SecretValue> {
        let tampered = || Error::Tampered {
            name: name.to_string(),
            scope: scope.to_string(),
            env_uuid: self.inner.uuid.clone(),
        };
        let plain = self
            .inner
            .key
            .open(&self.inner.uuid, &scope.to_string(), name, sealed)
            .ok_or_else(tampered)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| tampered())?;
        Ok(SecretValue(Zeroizing::new(text)))
    }

    /// Sets (or overwrites) a secret.
    pub fn set(&self, name: &str, scope: &Scope, value: &str) -> Result<()> {
        secret::validate_name(name)?;
        secret::validate_value(value.as_bytes())?;
        let sealed =
            self.inner
                .key
                .seal(&self.inner.uuid, &scope.to_string(), name, value.as_bytes());
        self.store().put(
            &self.inner.uuid,
            scope,
            name,
            &sealed,
            &self.inner.key_check,
        )?;
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

    /// Where everything is, and how many secrets there are.
    pub fn info(&self) -> Result<EnvironmentInfo> {
        Ok(EnvironmentInfo {
            data_dir: self.inner.settings.data_dir.display().to_string(),
            uuid: self.inner.uuid.clone(),
            database: self.inner.database.describe(),
            key_file: self.inner.settings.key_path().display().to_string(),
            secrets: self.store().count(&self.inner.uuid)?,
        })
    }

    /// Whether another process rotated this environment's key since it was
    /// opened (this `Environment` can then no longer read or write).
    pub fn key_rotated(&self) -> Result<bool> {
        Ok(self.store().key_check(&self.inner.uuid)?.as_deref()
            != Some(self.inner.key_check.as_slice()))
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
        let uuid = &self.inner.uuid;
        let _lock = RotationLock::acquire(settings)?;
        let new_key = Key::generate();
        let new_path = settings.key_new_path();
        fsutil::write_atomic(
            &new_path,
            new_key.to_file_text().as_bytes(),
            0o600,
            Existing::Replace,
        )?;
        fault_point("rotate-after-key-new");
        let old_key = &self.inner.key;
        let count = self.store().rotate(
            uuid,
            &self.inner.key_check,
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
            Err(e) => {
                // Nothing was committed: the old key stays.
                let _ = fs::remove_file(&new_path);
                return Err(e);
            }
        };
        fault_point("rotate-after-commit");
        fs::rename(&new_path, settings.key_path())
            .map_err(|e| Error::io("rename", &new_path, e))?;
        fault_point("rotate-after-rename");
        fsutil::sync_dir(&settings.own_dir())?;
        self.clear_cache();
        Ok(count)
    }

    /// Forgets every cached value (after another process changed the store).
    pub fn clear_cache(&self) {
        self.cache().clear();
        *self
            .inner
            .preloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A counter that moves when another process changes the database.
    pub fn store_change_counter(&self) -> Result<u64> {
        self.store().change_counter()
    }
}

/// Reads (or, on first use, creates) the uuid and key, and checks the key
/// against the environment's key check.
fn load_key(
    settings: &Settings,
    store: &dyn SecretStore,
    warnings: &mut Vec<String>,
) -> Result<(String, Key, Vec<u8>)> {
    let key_text = read_optional(&settings.key_path(), "read key file")?;
    let key = match &key_text {
        Some(text) => Some(Key::from_file_text(text).map_err(|e| Error::KeyFile {
            path: settings.key_path(),
            problem: format!("{e}; restore this data dir's key file"),
        })?),
        None => None,
    };
    let uuid = read_or_create_uuid(settings, key.as_ref(), store, warnings)?;
    let key = match key {
        Some(key) => {
            if let Ok(meta) = fs::metadata(settings.key_path()) {
                if fsutil::is_shared(meta.mode()) {
                    warnings.push(format!(
                        "key file {} is readable by group or others (mode {:o}); run: chmod 600 {}",
                        settings.key_path().display(),
                        meta.mode() & 0o777,
                        settings.key_path().display()
                    ));
                }
            }
            key
        }
        None => create_key(settings, &uuid, store)?,
    };
    // The check this key opens (registered on first use): every write
    // verifies it is still current.
    let key_check = match store.key_check(&uuid)? {
        Some(check) => check,
        None => {
            store.register_environment(&uuid, &key.key_check(&uuid), false)?;
            store.key_check(&uuid)?.unwrap_or_default()
        }
    };
    if !key.opens_key_check(&uuid, &key_check) {
        return Err(Error::WrongKey {
            key_path: settings.key_path(),
            env_uuid: uuid,
        });
    }
    Ok((uuid, key, key_check))
}

/// Stops the process at a named step when `MAGE_SECRETS_FAULT` names it:
/// how the tests show that a crash between any two steps of a key rotation
/// loses nothing.
fn fault_point(step: &str) {
    if std::env::var("MAGE_SECRETS_FAULT").is_ok_and(|v| v == step) {
        std::process::exit(86);
    }
}

/// Finishes or undoes a key rotation that a crash interrupted: a leftover
/// `key.new` is the key when it opens the environment's key check (the
/// transaction committed), and is discarded otherwise.
fn recover_rotation(
    settings: &Settings,
    store: &dyn SecretStore,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if !settings.key_new_path().exists() {
        return Ok(());
    }
    // A rotation in progress holds the lock: wait for it rather than judge
    // its key.new half-way.
    let _lock = RotationLock::acquire(settings)?;
    recover_rotation_locked(settings, store, warnings)
}

fn recover_rotation_locked(
    settings: &Settings,
    store: &dyn SecretStore,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let new_path = settings.key_new_path();
    let Some(text) = read_optional(&new_path, "read key file")? else {
        return Ok(());
    };
    let uuid = match read_optional(&settings.uuid_path(), "read uuid file")? {
        Some(u) => parse_uuid(&settings.uuid_path(), &u)?,
        None => return Ok(()),
    };
    let committed = match (Key::from_file_text(&text), store.key_check(&uuid)?) {
        (Ok(key), Some(check)) => key.opens_key_check(&uuid, &check),
        _ => false,
    };
    if committed {
        fs::rename(&new_path, settings.key_path())
            .map_err(|e| Error::io("rename", &new_path, e))?;
        fsutil::sync_dir(&settings.own_dir())?;
        warnings.push(format!(
            "finished an interrupted key rotation: {} is now the key",
            new_path.display()
        ));
    } else {
        fs::remove_file(&new_path).map_err(|e| Error::io("remove", &new_path, e))?;
        warnings.push(format!(
            "removed {} left by an interrupted key rotation; the key was not changed",
            new_path.display()
        ));
    }
    Ok(())
}

/// An exclusive lock on `<data dir>/mage-secrets/lock`, held by a key
/// rotation from start to end and by anyone judging a leftover `key.new`.
/// The operating system releases it when the holder dies.
struct RotationLock {
    _file: fs::File,
}

impl RotationLock {
    fn acquire(settings: &Settings) -> Result<RotationLock> {
        let path = settings.own_dir().join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(RotationLock { _file: file })
    }
}

/// Creates the data dir and our folder inside it (0700) if absent.
fn prepare_data_dir(settings: &Settings) -> Result<()> {
    let data_dir = &settings.data_dir;
    match fs::metadata(data_dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::Usage(format!(
                "data dir {} is not a folder; pass a folder with --data-dir",
                data_dir.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => fsutil::create_dir_all(data_dir, 0o700)?,
        Err(e) => return Err(Error::io("read data dir", data_dir, e)),
    }
    let own = settings.own_dir();
    if !own.is_dir() {
        fsutil::create_dir_all(&own, 0o700)?;
    }
    Ok(())
}

fn read_optional(path: &Path, action: &'static str) -> Result<Option<Zeroizing<String>>> {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(e) => {
                let mut bytes = e.into_bytes();
                zeroize::Zeroize::zeroize(&mut bytes);
                Ok(Some(Zeroizing::new(String::from("\u{fffd}"))))
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(action, path, e)),
    }
}

fn parse_uuid(path: &Path, text: &str) -> Result<String> {
    uuid::Uuid::parse_str(text.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::UuidFile {
            path: path.to_path_buf(),
            problem: "does not hold a uuid; restore this data dir's uuid file".into(),
        })
}

/// Reads the environment uuid, creating it on first use. A key without a
/// uuid is repaired from the database when exactly one environment's
/// key check opens with that key.
fn read_or_create_uuid(
    settings: &Settings,
    key: Option<&Key>,
    store: &dyn SecretStore,
    warnings: &mut Vec<String>,
) -> Result<String> {
    let path = settings.uuid_path();
    if let Some(text) = read_optional(&path, "read uuid file")? {
        return parse_uuid(&path, &text);
    }
    let uuid = match key {
        None => uuid::Uuid::new_v4().hyphenated().to_string(),
        Some(key) => {
            let mut owners = Vec::new();
            for env in store.environments()? {
                if let Some(check) = store.key_check(&env)? {
                    if key.opens_key_check(&env, &check) {
                        owners.push(env);
                    }
                }
            }
            match owners.as_slice() {
                [one] => {
                    warnings.push(format!(
                        "uuid file {} was missing; restored it from the database (the key opens environment {one})",
                        path.display()
                    ));
                    one.clone()
                }
                _ => {
                    return Err(Error::UuidFile {
                        path,
                        problem: format!(
                            "is missing while key file {} exists, and the key opens no environment in the database; restore the uuid file, or remove the key to start a new environment",
                            settings.key_path().display()
                        ),
                    })
                }
            }
        }
    };
    let text = format!("{uuid}\n");
    match fsutil::write_atomic(&path, text.as_bytes(), 0o644, Existing::Keep) {
        Ok(()) => Ok(uuid),
        // Another process created it first: use theirs.
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
            let text = read_optional(&path, "read uuid file")?.unwrap_or_default();
            parse_uuid(&path, &text)
        }
        Err(e) => Err(e),
    }
}

/// Makes a key for an environment that has none, unless that would orphan
/// secrets already stored for it.
fn create_key(settings: &Settings, uuid: &str, store: &dyn SecretStore) -> Result<Key> {
    let key_path = settings.key_path();
    let count = store.count(uuid)?;
    if count > 0 {
        // Another process may have made the key (and stored secrets with it)
        // since this one looked: then it is there now.
        if let Some(text) = read_optional(&key_path, "read key file")? {
            return Key::from_file_text(&text).map_err(|e| Error::KeyFile {
                path: key_path.clone(),
                problem: e.to_string(),
            });
        }
        return Err(Error::KeyLost {
            data_dir: settings.data_dir.clone(),
            key_path,
            env_uuid: uuid.to_string(),
            count,
        });
    }
    let key = Key::generate();
    match fsutil::write_atomic(
        &key_path,
        key.to_file_text().as_bytes(),
        0o600,
        Existing::Keep,
    ) {
        Ok(()) => {
            // Register; a process that read this key file already may have
            // registered it first, and its check stays. A check left by an
            // earlier, lost key (no secret depends on it: the count was 0)
            // is replaced.
            store.register_environment(uuid, &key.key_check(uuid), false)?;
            let current = store.key_check(uuid)?;
            if !current.is_some_and(|c| key.opens_key_check(uuid, &c)) {
                store.register_environment(uuid, &key.key_check(uuid), true)?;
            }
            Ok(key)
        }
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
            // Another process made the key first; open with theirs.
            let text = read_optional(&key_path, "read key file")?.unwrap_or_default();
            let key = Key::from_file_text(&text).map_err(|e| Error::KeyFile {
                path: key_path.clone(),
                problem: e.to_string(),
            })?;
            store.register_environment(uuid, &key.key_check(uuid), false)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

impl crate::template::SecretSource for Environment {
    fn lookup(&self, chain: &[Scope], name: &str) -> Result<Option<Arc<SecretValue>>> {
        Ok(Environment::lookup(self, chain, name)?.map(|r| r.value))
    }

    fn environment(&self) -> &str {
        self.uuid()
    }
}
