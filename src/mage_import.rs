//! `import-mage`: brings secrets over from a Mage installation. Mage keeps
//! them in its database's `secret` table, each value a Fernet token made
//! with the key in `<data dir>/secrets/key`; the row's `key_uuid` names the
//! environment (`<data dir>/secrets/uuid`). Pipeline-scoped secrets use the
//! key under `secrets/projects/<project>/pipelines/<pipeline>/`. Rows
//! without `key_uuid` are Mage's legacy global rows, looked up with the
//! global key as Mage does. Rows of other environments, or that do not open,
//! are counted and named, never imported.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;
use zeroize::Zeroizing;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::secret::{self, Scope};

/// Where Mage's secrets are.
#[derive(Clone, Debug)]
pub struct MageSource {
    /// Mage's data dir (the one that holds `secrets/`).
    pub data_dir: PathBuf,
    /// Mage's database: a SQLite path or `sqlite:///` URL; `None` to look for
    /// `MAGE_DATABASE_CONNECTION_URL`, then `<data dir>/<project>/mage-ai.db`.
    pub database: Option<String>,
}

/// What happened to one Mage row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RowOutcome {
    Imported {
        name: String,
        scope: String,
        legacy: bool,
    },
    /// Already set here (imported only with `--overwrite`).
    Exists { name: String, scope: String },
    /// Another environment's row.
    OtherEnvironment { name: String, key_uuid: String },
    /// The row's key is ours but the token does not open.
    DoesNotOpen { name: String, scope: String },
    /// A name our rule rejects, or a value that is not text or too large.
    Invalid { name: String, reason: String },
}

/// The result of an import (or of a dry run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub mage_environment: String,
    pub database: String,
    pub rows: Vec<RowOutcome>,
}

impl ImportReport {
    pub fn imported(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r, RowOutcome::Imported { .. }))
            .count()
    }
}

/// A Mage Fernet key and the environment uuid beside it.
struct MageKey {
    key_uuid: String,
    fernet: fernet::Fernet,
}

fn read_mage_key(dir: &Path) -> Result<Option<MageKey>> {
    let key_path = dir.join("key");
    let uuid_path = dir.join("uuid");
    let Ok(key) = fs::read_to_string(&key_path).map(Zeroizing::new) else {
        return Ok(None);
    };
    let key_uuid = fs::read_to_string(&uuid_path)
        .map_err(|e| Error::io("read Mage's uuid file", &uuid_path, e))?
        .trim()
        .to_string();
    let fernet = fernet::Fernet::new(key.trim()).ok_or_else(|| Error::KeyFile {
        path: key_path.clone(),
        problem: "is not a Mage (Fernet) key".into(),
    })?;
    Ok(Some(MageKey { key_uuid, fernet }))
}

/// One row of Mage's `secret` table: name, Fernet token, key uuid.
type MageRow = (String, Option<String>, Option<String>);

/// Mage's database.
enum MageDatabase {
    Sqlite(PathBuf),
    Postgres(crate::settings::PostgresUrl),
}

impl MageDatabase {
    fn describe(&self) -> String {
        match self {
            MageDatabase::Sqlite(p) => p.display().to_string(),
            MageDatabase::Postgres(u) => u.redacted(),
        }
    }

    /// Every row of Mage's `secret` table: name, token, key uuid.
    fn rows(&self) -> Result<Vec<MageRow>> {
        let location = self.describe();
        let not_mage = |e: String| Error::Database {
            location: location.clone(),
            message: format!("{e} (is this Mage's database?)"),
            source: None,
        };
        match self {
            MageDatabase::Sqlite(path) => {
                let conn =
                    rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                        .map_err(|e| Error::Database {
                        location: location.clone(),
                        message: e.to_string(),
                        source: None,
                    })?;
                let mut st = conn
                    .prepare("SELECT name, value, key_uuid FROM secret ORDER BY id")
                    .map_err(|e| not_mage(e.to_string()))?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| not_mage(e.to_string()));
                rows
            }
            MageDatabase::Postgres(url) => {
                let rows = crate::store::query_postgres(
                    url,
                    "SELECT name, value, key_uuid FROM secret ORDER BY id",
                )?
                .map_err(not_mage)?;
                Ok(rows
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect())
            }
        }
    }
}

/// Mage's database: `--mage-database`, else `MAGE_DATABASE_CONNECTION_URL`
/// (SQLAlchemy URLs: `sqlite:///…`, `postgresql+psycopg2://…`), else the
/// `mage-ai.db` in the data dir's project folder.
fn find_database(source: &MageSource) -> Result<MageDatabase> {
    let given = source.database.clone().or_else(|| {
        std::env::var("MAGE_DATABASE_CONNECTION_URL")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if let Some(url) = given {
        if let Some((scheme, rest)) = url.split_once("://") {
            let dialect = scheme.split('+').next().unwrap_or(scheme);
            match dialect {
                "postgres" | "postgresql" => {
                    return Ok(MageDatabase::Postgres(crate::settings::PostgresUrl(
                        format!("postgresql://{rest}"),
                    )));
                }
                // SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db
                "sqlite" => {
                    return Ok(MageDatabase::Sqlite(PathBuf::from(
                        rest.strip_prefix('/').unwrap_or(rest),
                    )))
                }
                _ => {
                    return Err(Error::Setup(format!(
                        "unsupported Mage database '{}': give a SQLite path or a PostgreSQL URL",
                        crate::settings::PostgresUrl(url.clone()).redacted()
                    )))
                }
            }
        }
        return Ok(MageDatabase::Sqlite(PathBuf::from(url)));
    }
    let mut found: Vec<PathBuf> = fs::read_dir(&source.data_dir)
        .map_err(|e| Error::io("read Mage's data dir", &source.data_dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("mage-ai.db"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(MageDatabase::Sqlite(found.remove(0))),
        0 => Err(Error::NotFound(format!(
            "no Mage database (mage-ai.db) in the project folders of {}; pass it with --mage-database",
            source.data_dir.display()
        ))),
        _ => Err(Error::NotFound(format!(
            "several Mage databases in {} ({}); pass one with --mage-database",
            source.data_dir.display(),
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Reads Mage's secrets and seals them into `env` (unless `dry_run`).
pub fn import(
    env: &Environment,
    source: &MageSource,
    dry_run: bool,
    overwrite: bool,
) -> Result<ImportReport> {
    let secrets_dir = source.data_dir.join("secrets");
    let global = read_mage_key(&secrets_dir)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no Mage key in {} (secrets/key); pass Mage's data dir with --mage-data-dir",
            source.data_dir.display()
        ))
    })?;
    // key_uuid → (key, scope) for every pipeline key.
    let mut pipeline_keys: HashMap<String, (MageKey, Scope)> = HashMap::new();
    let projects = secrets_dir.join("projects");
    for project in fs::read_dir(&projects).into_iter().flatten().flatten() {
        for pipeline in fs::read_dir(project.path().join("pipelines"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = pipeline.file_name().to_string_lossy().into_owned();
            if let (Some(key), Ok(scope)) = (
                read_mage_key(&pipeline.path())?,
                Scope::from_pipeline(Some(&name)),
            ) {
                pipeline_keys.insert(key.key_uuid.clone(), (key, scope));
            }
        }
    }
    let database = find_database(source)?;
    let rows = database.rows()?;

    let mut report = ImportReport {
        mage_environment: global.key_uuid.clone(),
        database: database.describe(),
        rows: Vec::new(),
    };
    // What is already set here, by existence: nothing is decrypted for it.
    let mut present: std::collections::HashSet<(Scope, String)> = env
        .list(&crate::store::ScopeFilter::All)?
        .into_iter()
        .map(|info| (info.scope, info.name))
        .collect();
    for (name, token, key_uuid) in rows {
        let key_uuid = key_uuid
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        let (key, scope, legacy) = match &key_uuid {
            None => (&global, Scope::Global, true),
            Some(k) if *k == global.key_uuid => (&global, Scope::Global, false),
            Some(k) => match pipeline_keys.get(k) {
                Some((key, scope)) => (key, scope.clone(), false),
                None => {
                    report.rows.push(RowOutcome::OtherEnvironment {
                        name,
                        key_uuid: k.clone(),
                    });
                    continue;
                }
            },
        };
        let scope_text = scope.to_string();
        let plain = token
            .as_deref()
            .and_then(|t| key.fernet.decrypt(t).ok())
            .map(Zeroizing::new);
        let Some(plain) = plain else {
            if legacy {
                // Mage's lookup tries legacy rows with the global key; a row
                // that does not open belongs to some other installation.
                report.rows.push(RowOutcome::OtherEnvironment {
                    name,
                    key_uuid: "(none: legacy row)".into(),
                });
            } else {
                report.rows.push(RowOutcome::DoesNotOpen {
                    name,
                    scope: scope_text,
                });
            }
            continue;
        };
        if let Err(e) = secret::validate_name(&name) {
            report.rows.push(RowOutcome::Invalid {
                name,
                reason: e.to_string(),
            });
            continue;
        }
        let value = match std::str::from_utf8(&plain) {
            Ok(v) if secret::validate_value(v.as_bytes()).is_ok() => Zeroizing::new(v.to_string()),
            _ => {
                report.rows.push(RowOutcome::Invalid {
                    name,
                    reason: "the value is not UTF-8 text of at most 1 MiB".into(),
                });
                continue;
            }
        };
        let exists = present.contains(&(scope.clone(), name.clone()));
        if exists && !overwrite {
            report.rows.push(RowOutcome::Exists {
                name,
                scope: scope_text,
            });
            continue;
        }
        if !dry_run {
            env.set(&name, &scope, &value)?;
        }
        present.insert((scope.clone(), name.clone()));
        report.rows.push(RowOutcome::Imported {
            name,
            scope: scope_text,
            legacy,
        });
    }
    Ok(report)
}
