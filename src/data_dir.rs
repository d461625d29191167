//! The data dir's side of an environment: its uuid and key files and their
//! life cycle. First use creates them; a lost key is refused, never
//! replaced; a key rotation a crash interrupted is finished or undone on the
//! next open, under the rotation lock.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};
use crate::settings::Settings;
use crate::store::SecretStore;

/// The uuid, key and key check of the data dir's environment, after
/// finishing any interrupted rotation; creates uuid and key on first use.
pub(crate) fn open_key(
    settings: &Settings,
    store: &dyn SecretStore,
    warnings: &mut Vec<String>,
) -> Result<(String, Key, Vec<u8>)> {
    recover_rotation(settings, store, warnings)?;
    match load_key(settings, store, warnings) {
        // A rotation may be committing right now: wait for it, then
        // read the key again.
        Err(Error::WrongKey { .. }) => {
            if settings.key_new_path().exists() {
                let _lock = RotationLock::acquire(settings)?;
                recover_rotation_locked(settings, store, warnings)?;
            }
            load_key(settings, store, warnings)
        }
        other => other,
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

/// Stops at a named step when `MAGE_SECRETS_FAULT` names it, leaving
/// everything as a crash there would (callers return at once, undoing
/// nothing): how the tests show that a crash between any two steps of a key
/// rotation loses nothing.
pub(crate) fn fault_point(step: &str) -> Result<()> {
    if crate::store::fault_active(step) {
        return Err(Error::Fault(step.to_string()));
    }
    Ok(())
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
pub(crate) struct RotationLock {
    _file: fs::File,
}

impl RotationLock {
    pub(crate) fn acquire(settings: &Settings) -> Result<RotationLock> {
        let path = settings.own_dir().join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                if fsutil::is_read_only_error(&e) {
                    Error::Setup(format!(
                        "data dir {} is read-only here, and a key rotation writes in it (its lock and key files); run it where the data dir is writable",
                        settings.data_dir.display()
                    ))
                } else {
                    Error::io("open lock file", &path, e)
                }
            })?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(RotationLock { _file: file })
    }
}

/// Creates the data dir and our folder inside it (0700) if absent.
pub(crate) fn prepare(settings: &Settings) -> Result<()> {
    let data_dir = &settings.data_dir;
    match fs::metadata(data_dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::Setup(format!(
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

/// The largest key or uuid file read: each holds one short line.
const MAX_SMALL_FILE: u64 = 4096;

/// Reads a key or uuid file, `None` when it is absent. Anything but a
/// regular file of at most 4 KiB is an error at once: a FIFO would block,
/// a link to `/dev/zero` would never end. Bytes that are not UTF-8 read
/// as text that parses as nothing (and are wiped).
pub(crate) fn read_optional(
    path: &Path,
    action: &'static str,
) -> Result<Option<Zeroizing<String>>> {
    use std::io::Read;
    // Non-blocking, so that opening a FIFO returns at once.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(action, path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(action, path, e))?;
    if !meta.is_file() {
        return Err(Error::Setup(format!(
            "{} is not a regular file (it is {}); it must be a regular file holding one line: restore it from a backup of this data dir",
            path.display(),
            fsutil::describe_file_type(&meta)
        )));
    }
    if meta.len() > MAX_SMALL_FILE {
        return Err(Error::Setup(format!(
            "{} is larger than {MAX_SMALL_FILE} bytes; it must hold one line: restore it from a backup of this data dir",
            path.display()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(action, path, e))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Some(Zeroizing::new(text.to_string()))),
        Err(_) => Ok(Some(Zeroizing::new(String::from("\u{fffd}")))),
    }
}

/// Temporary files a killed process left in the environment folder (a
/// rotation killed before it renamed its new key holds a key that was never
/// committed).
pub(crate) fn stale_temporaries(settings: &Settings) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(settings.own_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(fsutil::TEMP_PREFIX))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn parse_uuid(path: &Path, text: &str) -> Result<String> {
    uuid::Uuid::parse_str(text.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::UuidFile {
            path: path.to_path_buf(),
            problem: "does not hold a uuid; restore this data dir's uuid file".into(),
        })
}

/// The data dir's environment uuid, `None` when it has none yet. Reads
/// only; creates nothing.
pub(crate) fn existing_uuid(settings: &Settings) -> Result<Option<String>> {
    let path = settings.uuid_path();
    read_optional(&path, "read uuid file")?
        .map(|text| parse_uuid(&path, &text))
        .transpose()
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
