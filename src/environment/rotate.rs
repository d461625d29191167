//! Key rotation: every secret re-sealed under a new key in one transaction,
//! with `key.new` on disk first so that a crash, or a commit whose reply
//! was lost, leaves every secret readable.

use std::fs;

use super::Environment;
use crate::crypto::Key;
use crate::data_dir;
use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};

impl Environment {
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
}
