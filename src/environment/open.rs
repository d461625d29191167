//! Opening an environment: from a data dir (creating its uuid and key on
//! first use, when the command may) or from a given key (creating nothing),
//! and the checks that keep one environment from quietly standing in for
//! another.

use std::sync::{Arc, Mutex, RwLock};

use super::{Environment, Inner, KeyState};
use crate::crypto::Key;
use crate::data_dir;
use crate::database_record;
use crate::error::{Error, Result};
use crate::settings::{DatabaseLocation, GivenKey, Settings, ENVIRONMENT_VAR};
use crate::store::{self, SecretStore};

/// `MAGE_SECRETS_ENVIRONMENT` set while no key is given: a key variable
/// that did not reach this process (a CI secret under another name, say)
/// must not quietly turn into the data dir's environment. Judged before
/// anything is created: a full uuid (or a data dir without an environment)
/// here; a name or uuid prefix by [`NamedEnvironment::check`] once the
/// database is open.
struct NamedEnvironment {
    named: String,
    own: String,
}

impl NamedEnvironment {
    fn from_env(settings: &Settings) -> Result<Option<NamedEnvironment>> {
        let Some(named) = std::env::var(ENVIRONMENT_VAR)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let Some(own) = data_dir::existing_uuid(settings)? else {
            return Err(Error::Setup(format!(
                "{ENVIRONMENT_VAR}='{named}' names an environment, but no key is given (MAGE_SECRETS_KEY or --key-file) and data dir {} has no environment; nothing was created. Give the environment's key, or unset {ENVIRONMENT_VAR}",
                settings.data_dir.display()
            )));
        };
        let guard = NamedEnvironment { named, own };
        if let Ok(uuid) = uuid::Uuid::parse_str(&guard.named) {
            guard.refuse_unless(&uuid.hyphenated().to_string(), settings)?;
            return Ok(None);
        }
        Ok(Some(guard))
    }

    /// A name or uuid prefix, resolved in the database.
    fn check(&self, settings: &Settings, store: &dyn SecretStore, database: &str) -> Result<()> {
        let entries = store::environment_entries(store)?;
        match crate::environment_name::resolve(&self.named, &entries, database) {
            Ok(entry) => self.refuse_unless(&entry.uuid, settings),
            Err(e) => Err(Error::Setup(format!(
                "{ENVIRONMENT_VAR}='{}': {e}; no key is given (MAGE_SECRETS_KEY or --key-file), and data dir {}'s key opens environment {}. Give the named environment's key, or unset {ENVIRONMENT_VAR}",
                self.named,
                settings.data_dir.display(),
                self.own
            ))),
        }
    }

    fn refuse_unless(&self, named_uuid: &str, settings: &Settings) -> Result<()> {
        if named_uuid == self.own {
            return Ok(());
        }
        Err(Error::Setup(format!(
            "{ENVIRONMENT_VAR}='{}' names environment {named_uuid}, but no key is given (MAGE_SECRETS_KEY or --key-file) and data dir {}'s key opens environment {}; nothing was done. Give that environment's key, or unset {ENVIRONMENT_VAR}",
            self.named,
            settings.data_dir.display(),
            self.own
        )))
    }
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
                cache: RwLock::new(Default::default()),
                id: super::local::next_id(),
                generation: Default::default(),
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
        let named = NamedEnvironment::from_env(settings)?;
        // Another database than the environment's is refused before
        // anything is opened (or created).
        // The record is read once for every check below.
        let recorded = database_record::read(settings)?;
        database_record::check(settings, recorded.as_ref(), &database)?;
        let mut warnings = Vec::new();
        // A server database is reached before anything is created, so that
        // a server that is down leaves no trace.
        let store = match &database {
            DatabaseLocation::Postgres(_) => {
                let store = store::open(&database)?;
                data_dir::prepare(settings)?;
                store
            }
            DatabaseLocation::Sqlite(path) => {
                // Only a command that may create the environment may create
                // its database: a missing or emptied file is not silently
                // replaced by a new, empty one.
                let missing = !path.metadata().is_ok_and(|m| m.is_file() && m.len() > 0);
                let known = recorded.as_ref().is_some_and(|r| r.id.is_some());
                if missing && (!creating || known) {
                    return Err(Error::NotFound(format!(
                        "database {} of the environment in data dir {} is missing or empty; nothing was created. Restore it from a backup, or pass the right --database",
                        path.display(),
                        settings.data_dir.display()
                    )));
                }
                data_dir::prepare(settings)?;
                store::open(&database)?
            }
        };
        if let Some(named) = &named {
            named.check(settings, store.as_ref(), &database.describe())?;
        }
        let (uuid, key, key_check) = data_dir::open_key(settings, store.as_ref(), &mut warnings)?;
        database_record::check_id(settings, recorded.as_ref(), store.as_ref())?;
        // Record where the environment lives (a data dir made before records
        // existed is recorded on its next use; a read-only one stays as it is).
        match database_record::record(settings, recorded, &database, store.as_ref()) {
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
            let problem = match path.metadata() {
                Err(_) => Some("does not exist"),
                Ok(m) if !m.is_file() => Some("is not a file"),
                Ok(m) if m.len() == 0 => Some("is empty"),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                return Err(Error::NotFound(format!(
                    "database {} {problem}; with a key from {origin} nothing is created: pass the database that holds environment {named}",
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
}
