//! `doctor`: checks an environment end to end without changing anything:
//! permissions, the uuid and key files, a leftover `key.new`, the database's
//! integrity, the key check, and that every row opens. Each problem comes
//! with its fix. Names and counts only, never a value.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::crypto::Key;
use crate::error::Error;
use crate::settings::{DatabaseLocation, GivenKey, Settings, ENVIRONMENT_VAR};
use crate::store;

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub ok: bool,
    pub check: &'static str,
    pub detail: String,
    /// What to do, for a problem.
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        check,
        detail: detail.into(),
        fix: None,
    }
}

fn problem(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        check,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.mode() & 0o777)
}

/// Runs every check; later checks are skipped when what they need is broken.
pub fn doctor(settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let found = match &settings.key {
        Some(given) => Some(given_key(given, &mut out)),
        None => data_dir(settings, &mut out),
    };
    if let Some((uuid, key)) = found {
        database(settings, uuid, key, &mut out);
    }
    out
}

/// A key given without a data dir: its text and the environment it names.
fn given_key(given: &GivenKey, out: &mut Vec<Finding>) -> (Option<String>, Option<Key>) {
    let uuid = match given.environment.as_deref().map(uuid::Uuid::parse_str) {
        Some(Ok(u)) => {
            let u = u.hyphenated().to_string();
            out.push(ok("environment", format!("{u} (from {ENVIRONMENT_VAR})")));
            Some(u)
        }
        _ => {
            out.push(problem(
                "environment",
                format!("{ENVIRONMENT_VAR} is not set to an environment uuid"),
                format!("set {ENVIRONMENT_VAR} to the uuid `mage-secrets env` shows"),
            ));
            None
        }
    };
    let key = match Key::from_file_text(&given.text) {
        Ok(key) => {
            out.push(ok("key", format!("from {}", given.origin)));
            Some(key)
        }
        Err(e) => {
            out.push(problem(
                "key",
                format!("the key from {} is not a key: {e}", given.origin),
                "give the text `mage-secrets env --export-key` prints",
            ));
            None
        }
    };
    (uuid, key)
}

/// The data dir's folders and files; `None` when there is no environment
/// to check further.
fn data_dir(settings: &Settings, out: &mut Vec<Finding>) -> Option<(Option<String>, Option<Key>)> {
    let data_dir = &settings.data_dir;
    match mode_of(data_dir) {
        None => {
            out.push(problem(
                "data dir",
                format!("{} does not exist", data_dir.display()),
                "pass the right --data-dir (or MAGE_DATA_DIR); `mage-secrets set` creates a new environment",
            ));
            return None;
        }
        Some(m) if m & 0o022 != 0 => out.push(problem(
            "data dir",
            format!(
                "{} is writable by group or others ({m:o})",
                data_dir.display()
            ),
            format!("chmod go-w {}", data_dir.display()),
        )),
        Some(m) => out.push(ok("data dir", format!("{} ({m:o})", data_dir.display()))),
    }
    let own = settings.own_dir();
    match mode_of(&own) {
        None => {
            out.push(problem(
                "environment folder",
                format!("{} does not exist", own.display()),
                "this data dir has no mage-secrets environment; `mage-secrets set` creates one",
            ));
            return None;
        }
        Some(m) if m & 0o077 != 0 => out.push(problem(
            "environment folder",
            format!("{} is open to group or others ({m:o})", own.display()),
            format!("chmod 700 {}", own.display()),
        )),
        Some(m) => out.push(ok(
            "environment folder",
            format!("{} ({m:o})", own.display()),
        )),
    }

    let uuid = match crate::data_dir::read_optional(&settings.uuid_path(), "read uuid file")
        .ok()
        .flatten()
        .and_then(|t| uuid::Uuid::parse_str(t.trim()).ok())
    {
        Some(u) => {
            let u = u.hyphenated().to_string();
            out.push(ok(
                "uuid file",
                format!("{} ({u})", settings.uuid_path().display()),
            ));
            Some(u)
        }
        None => {
            out.push(problem(
                "uuid file",
                format!("{} is missing or does not hold a uuid", settings.uuid_path().display()),
                "restore it from a backup of this data dir (any command restores it when exactly one environment in the database opens with this key)",
            ));
            None
        }
    };

    let key_path = settings.key_path();
    let key = match crate::data_dir::read_optional(&key_path, "read key file").and_then(|t| {
        t.ok_or_else(|| Error::NotFound(format!("{} is missing", key_path.display())))
    }) {
        Err(e) => {
            out.push(problem(
                "key file",
                e.to_string(),
                "restore it from a backup of this data dir; without it the environment's secrets cannot be read",
            ));
            None
        }
        Ok(text) => match Key::from_file_text(&text) {
            Err(e) => {
                out.push(problem(
                    "key file",
                    format!("{}: {e}", key_path.display()),
                    "restore it from a backup of this data dir",
                ));
                None
            }
            Ok(key) => {
                match mode_of(&key_path) {
                    Some(m) if m & 0o077 != 0 => out.push(problem(
                        "key file",
                        format!(
                            "{} is readable by group or others ({m:o})",
                            key_path.display()
                        ),
                        format!("chmod 600 {}", key_path.display()),
                    )),
                    Some(m) => out.push(ok("key file", format!("{} ({m:o})", key_path.display()))),
                    None => {}
                }
                Some(key)
            }
        },
    };
    let stale = crate::data_dir::stale_temporaries(settings);
    if !stale.is_empty() {
        out.push(problem(
            "temporary files",
            format!(
                "{} temporary file(s) left by a killed process in {} (a killed rotation leaves keys that were never committed)",
                stale.len(),
                settings.own_dir().display()
            ),
            "`mage-secrets rotate-key` removes them (or delete them)",
        ));
    }
    if settings.key_new_path().exists() {
        out.push(problem(
            "interrupted rotation",
            format!(
                "{} is left from an interrupted key rotation",
                settings.key_new_path().display()
            ),
            "run any command (e.g. `mage-secrets env`): it finishes or undoes the rotation",
        ));
    }
    Some((uuid, key))
}

/// The database's integrity, the key check, and every row.
fn database(settings: &Settings, uuid: Option<String>, key: Option<Key>, out: &mut Vec<Finding>) {
    let location = match settings.database_location() {
        Ok(l) => l,
        Err(e) => {
            out.push(problem(
                "database",
                e.to_string(),
                "pass a SQLite path with --database",
            ));
            return;
        }
    };
    // A given key names its environment; its data dir records nothing.
    let record = if settings.key.is_some() {
        Ok(None)
    } else {
        crate::database_record::read(settings)
    };
    let recorded_id = record
        .as_ref()
        .ok()
        .and_then(|r| r.as_ref())
        .and_then(|r| r.id.clone());
    match record {
        Ok(_) if settings.key.is_some() => {}
        Ok(Some(recorded)) => {
            let place = crate::database_record::resolve_recorded(settings, &recorded.place);
            match crate::database_record::check(settings, Some(&recorded), &location) {
                Ok(()) => out.push(ok("database record", format!("the environment lives in {place}"))),
                Err(_) => {
                    out.push(problem(
                        "database record",
                        format!(
                            "the environment lives in {place}, but this run uses {}",
                            crate::database_record::describe(&location)
                        ),
                        format!("pass --database {place} (or set MAGE_SECRETS_DATABASE); if the database moved, write its new place into {}", crate::database_record::record_path(settings).display()),
                    ));
                    return;
                }
            }
        }
        Ok(None) => out.push(problem(
            "database record",
            format!(
                "{} does not say which database the environment lives in",
                crate::database_record::record_path(settings).display()
            ),
            "run any command with the environment's database (e.g. `mage-secrets env`): it records it",
        )),
        Err(e) => out.push(problem("database record", e.to_string(), "make it readable")),
    }
    if let DatabaseLocation::Sqlite(path) = &location {
        match mode_of(path) {
            Some(m) if m & 0o077 != 0 => out.push(problem(
                "database file",
                format!("{} is open to group or others ({m:o})", path.display()),
                format!("chmod 600 {}", path.display()),
            )),
            Some(m) => out.push(ok("database file", format!("{} ({m:o})", path.display()))),
            None => {}
        }
    }
    let store = match store::open_existing(&location) {
        Ok(s) => s,
        Err(e) => {
            let advice = database_advice(&e);
            out.push(problem("database", e.to_string(), advice));
            return;
        }
    };
    if let Some(recorded) = recorded_id {
        match store.database_id() {
            Ok(Some(id)) if id == recorded => out.push(ok(
                "database id",
                format!(
                    "{} is the environment's own database (id {id})",
                    location.describe()
                ),
            )),
            Ok(None) => out.push(ok(
                "database id",
                format!(
                    "{} has no id yet (an older schema; the next write adds it)",
                    location.describe()
                ),
            )),
            Ok(Some(_)) | Err(_) => {
                let e = crate::database_record::check_id(
                    settings,
                    crate::database_record::read(settings)
                        .ok()
                        .flatten()
                        .as_ref(),
                    store.as_ref(),
                )
                .err()
                .map_or_else(
                    || "the database's id cannot be read".to_string(),
                    |e| e.to_string(),
                );
                out.push(problem(
                    "database id",
                    e,
                    "use the environment's own database",
                ));
                return;
            }
        }
    }
    match store.integrity_problem() {
        Ok(None) => out.push(ok(
            "database integrity",
            format!("{}: ok", location.describe()),
        )),
        Ok(Some(p)) => out.push(problem(
            "database integrity",
            format!("{}: {p}", location.describe()),
            "restore the database from a backup",
        )),
        Err(e) => out.push(problem(
            "database integrity",
            e.to_string(),
            "restore the database from a backup",
        )),
    }
    let (Some(uuid), Some(key)) = (uuid, key) else {
        return;
    };
    match store.key_check(&uuid) {
        Ok(None) => out.push(problem(
            "key check",
            format!(
                "environment {uuid} is not registered in {}",
                location.describe()
            ),
            "pass the database this environment uses with --database",
        )),
        Ok(Some(check)) if !key.opens_key_check(&uuid, &check) => {
            out.push(problem(
                "key check",
                format!("the key does not open environment {uuid}'s key check (another environment's key, or replaced)"),
                "restore this data dir's own key file",
            ));
            return;
        }
        Ok(Some(_)) => {
            let name = store
                .environment_names()
                .ok()
                .and_then(|names| names.into_iter().find(|(u, _)| *u == uuid))
                .map(|(_, name)| format!(" (named '{name}')"))
                .unwrap_or_default();
            out.push(ok(
                "key check",
                format!("the key opens environment {uuid}{name}"),
            ))
        }
        Err(e) => {
            out.push(problem("key check", e.to_string(), "check the database"));
            return;
        }
    }
    match store.rows(&uuid) {
        Err(e) => out.push(problem("secrets", e.to_string(), "check the database")),
        Ok(rows) => {
            let failing = rows
                .iter()
                .filter(|r| {
                    key.open(&uuid, &r.scope.to_string(), &r.name, &r.sealed)
                        .is_none()
                })
                .count();
            if failing == 0 {
                out.push(ok("secrets", format!("all {} secret(s) open", rows.len())));
            } else {
                out.push(problem(
                    "secrets",
                    format!("{failing} of {} secret(s) do not open: their rows were modified or copied", rows.len()),
                    "set each again with `mage-secrets set NAME` (`mage-secrets list --all-scopes` shows names; `get` names the failing ones)",
                ));
            }
        }
    }
}

/// What to do about a database that cannot be opened, by why.
fn database_advice(e: &Error) -> &'static str {
    let text = e.to_string();
    if text.contains("cannot reach") || text.contains("did not answer") {
        "the server is down or unreachable: start it, or check the host, port and network (the URL itself may be right)"
    } else if text.contains("TLS") {
        "check the URL's sslmode and sslrootcert, and the server's certificate"
    } else if text.contains("28P01") || text.contains("28000") {
        "check the user and password (in the URL, PGPASSWORD or a passfile)"
    } else if text.contains("3D000") {
        "the database does not exist on that server: create it, or fix the URL's database name"
    } else if text.contains("read-only") || text.contains("Read-only") || text.contains("readonly")
    {
        "the database or its folder is read-only: commands that only read still work; write from a place where it is writable"
    } else {
        "pass the right database with --database"
    }
}
