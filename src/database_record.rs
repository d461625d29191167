//! Which database an environment lives in. A data dir records, in
//! `<data dir>/mage-secrets/database`, where the database that holds its
//! environment is (an absolute SQLite path, or a PostgreSQL URL without its
//! password). Using the environment with another database — a forgotten
//! `--database`, a relative path run from elsewhere — is refused before
//! anything is opened or created, so an environment is never split across
//! two databases and no empty database appears by accident.
//!
//! The record also holds the database's own id (made when its schema was
//! created): once the database is open, a different id means the place is
//! right but the database is not the environment's — recreated, replaced
//! by another environment's copy, or another server's database of the same
//! name — and that is refused too.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};
use crate::settings::{DatabaseLocation, Settings, DEFAULT_DATABASE_FILE};
use crate::store::SecretStore;

const HEADER: &str = "# The database of this mage-secrets environment (never a password).\n# mage-secrets refuses to use the environment with another database; if the\n# database moved, write its new place on the next line (the id stays); a\n# relative path is relative to this folder.\n";

/// The line prefix of the database's id.
const ID_PREFIX: &str = "id: ";

/// What a data dir records of its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is, without a password.
    pub place: String,
    /// Its own id, when it had one at the time of recording.
    pub id: Option<String>,
}

/// Where the record lives.
pub fn record_path(settings: &Settings) -> PathBuf {
    settings.own_dir().join("database")
}

/// A database's place as recorded: an absolute SQLite path, or the URL
/// without its password.
pub fn describe(location: &DatabaseLocation) -> String {
    match location {
        DatabaseLocation::Sqlite(path) => crate::project::absolute(path).display().to_string(),
        DatabaseLocation::Postgres(url) => url.redacted(),
    }
}

/// The place written into a record: a SQLite file inside the data dir's
/// own folder relative to it, so a data dir that moves (a volume mounted
/// elsewhere, a copied folder) keeps its database; anything else as
/// [`describe`] says.
fn place_to_record(settings: &Settings, location: &DatabaseLocation) -> String {
    let own = crate::project::absolute(&settings.own_dir());
    if let DatabaseLocation::Sqlite(path) = location {
        if let Ok(inside) = crate::project::absolute(path).strip_prefix(&own) {
            if inside.components().count() == 1 {
                return inside.display().to_string();
            }
        }
    }
    describe(location)
}

/// A recorded place as [`describe`] gives it: a relative SQLite path is
/// relative to the data dir's own folder.
pub fn resolve_recorded(settings: &Settings, recorded: &str) -> String {
    if postgres_database(recorded).is_some() || Path::new(recorded).is_absolute() {
        return recorded.to_string();
    }
    crate::project::absolute(&settings.own_dir().join(recorded))
        .display()
        .to_string()
}

/// The data dir's record, if it has one.
pub fn read(settings: &Settings) -> Result<Option<Record>> {
    let path = record_path(settings);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

fn parse(text: &str) -> Option<Record> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let mut place = None;
    let mut id = None;
    for line in lines.by_ref() {
        match line.strip_prefix(ID_PREFIX) {
            Some(found) => id = Some(found.trim().to_string()),
            None if place.is_none() => place = Some(line.to_string()),
            None => {}
        }
    }
    place.map(|place| Record { place, id })
}

fn format(record: &Record) -> String {
    match &record.id {
        Some(id) => format!("{HEADER}{}\n{ID_PREFIX}{id}\n", record.place),
        None => format!("{HEADER}{}\n", record.place),
    }
}

/// Refuses `location` when the data dir's record (from [`read`]) names
/// another database.
pub fn check(
    settings: &Settings,
    record: Option<&Record>,
    location: &DatabaseLocation,
) -> Result<()> {
    let Some(Record {
        place: recorded,
        id,
    }) = record
    else {
        return Ok(());
    };
    let recorded = &resolve_recorded(settings, recorded);
    let current = describe(location);
    if same_database(recorded, &current) {
        return Ok(());
    }
    // A data dir recorded with an absolute path to its own database, then
    // moved with it: the recorded place was some data dir's default
    // database, whose whole folder is gone, and this run uses the data
    // dir's own default database (its id is checked once it is open). A
    // database elsewhere that is missing (a volume not mounted) is not this.
    let own_default = DatabaseLocation::Sqlite(settings.own_dir().join(DEFAULT_DATABASE_FILE));
    let recorded_path = Path::new(recorded);
    let was_a_default = recorded_path.file_name() == Some(DEFAULT_DATABASE_FILE.as_ref())
        && recorded_path.parent().is_some_and(|own| {
            own.file_name() == Some(crate::settings::OWN_FOLDER.as_ref()) && !own.exists()
        });
    if id.is_some()
        && current == describe(&own_default)
        && postgres_database(recorded).is_none()
        && was_a_default
    {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the environment of data dir {} lives in database {recorded}, but this run uses {current}; pass --database {} (or set MAGE_SECRETS_DATABASE to it). If that database moved, write its new place into {}",
        settings.data_dir.display(),
        shell_word(recorded),
        record_path(settings).display()
    )))
}

/// Whether two recorded places name one database. A PostgreSQL URL may
/// rightly change its role, port (a pooler or proxy) or options while naming
/// the same database, so PostgreSQL places are compared by database name.
pub fn same_database(recorded: &str, current: &str) -> bool {
    match (postgres_database(recorded), postgres_database(current)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => recorded == current,
        _ => false,
    }
}

/// The database name of a PostgreSQL URL.
fn postgres_database(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    Some(path.split(['?', '#']).next().unwrap_or(""))
}

fn shell_word(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Refuses an opened database whose id is not the recorded one.
pub fn check_id(
    settings: &Settings,
    record: Option<&Record>,
    store: &dyn SecretStore,
) -> Result<()> {
    let Some(Record {
        id: Some(recorded), ..
    }) = record
    else {
        return Ok(());
    };
    match store.database_id()? {
        Some(id) if id != *recorded => Err(Error::Setup(format!(
            "database {} is not the one the environment of data dir {} lives in: its id is {id}, and the data dir records {recorded} (the database was recreated, replaced by a copy of another database, or this is another server's database of the same name); use the environment's own database (restore it from a backup), or, if this one is meant to replace it, delete the line `{ID_PREFIX}{recorded}` from {}",
            store.location(),
            settings.data_dir.display(),
            record_path(settings).display()
        ))),
        _ => Ok(()),
    }
}

/// Records `location` (and the database's id) as the environment's
/// database, unless a record is there; a record made before databases had
/// ids gets the id.
pub fn record(
    settings: &Settings,
    existing: Option<Record>,
    location: &DatabaseLocation,
    store: &dyn SecretStore,
) -> Result<()> {
    let path = record_path(settings);
    if existing.as_ref().is_some_and(|r| r.id.is_some()) {
        return Ok(());
    }
    let id = store.database_id()?;
    let (record, existing_file) = match existing {
        None => (
            Record {
                place: place_to_record(settings, location),
                id,
            },
            Existing::Keep,
        ),
        Some(old) if id.is_some() => (
            Record {
                place: old.place,
                id,
            },
            Existing::Replace,
        ),
        Some(_) => return Ok(()),
    };
    match fsutil::write_atomic(&path, format(&record).as_bytes(), 0o600, existing_file) {
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Whether `path` holds a record (for `doctor`).
pub fn exists(settings: &Settings) -> bool {
    Path::new(&record_path(settings)).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_with_or_without_an_id() {
        let with = Record {
            place: "/x/secrets.db".into(),
            id: Some("ab".into()),
        };
        assert_eq!(parse(&format(&with)), Some(with.clone()));
        let without = Record {
            place: "postgres://u@h/db".into(),
            id: None,
        };
        assert_eq!(parse(&format(&without)), Some(without));
        // A record written before ids: the place alone.
        assert_eq!(
            parse("# header\n/x/secrets.db\n").map(|r| r.place),
            Some("/x/secrets.db".into())
        );
        assert_eq!(parse("# only a comment\n"), None);
    }

    #[test]
    fn another_database_is_refused_naming_the_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_data_dir(dir.path());
        fs::create_dir_all(settings.own_dir()).unwrap();
        let own = DatabaseLocation::Sqlite(settings.own_dir().join("secrets.db"));
        check(&settings, read(&settings).unwrap().as_ref(), &own).unwrap();
        let store = crate::store::open(&own).unwrap();
        record(&settings, read(&settings).unwrap(), &own, store.as_ref()).unwrap();
        let id = read(&settings).unwrap().unwrap().id.unwrap();
        assert_eq!(Some(id), store.database_id().unwrap());
        check_id(&settings, read(&settings).unwrap().as_ref(), store.as_ref()).unwrap();
        check(&settings, read(&settings).unwrap().as_ref(), &own).unwrap();
        let other = DatabaseLocation::Sqlite(dir.path().join("other db.db"));
        let err = check(&settings, read(&settings).unwrap().as_ref(), &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lives in database"), "{err}");
        assert!(err.contains("--database /"), "{err}");
        assert!(err.contains("other db.db"), "{err}");
        let pg = DatabaseLocation::parse("postgres://u:hunter2@h/db").unwrap();
        let err = check(&settings, read(&settings).unwrap().as_ref(), &pg)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(same_database(
            "postgres://a:***@h:1/db?x=1",
            "postgres://b@proxy:2/db"
        ));
        assert!(!same_database("postgres://h/db", "postgres://h/other"));
        assert!(!same_database("postgres://h/db", "/x/db"));
        // The first record stays.
        let other_store = crate::store::open(&other).unwrap();
        record(
            &settings,
            read(&settings).unwrap(),
            &other,
            other_store.as_ref(),
        )
        .unwrap();
        let err = check_id(
            &settings,
            read(&settings).unwrap().as_ref(),
            other_store.as_ref(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not the one"), "{err}");
        check(&settings, read(&settings).unwrap().as_ref(), &own).unwrap();
    }
}
