//! File-system primitives with the guarantees the contract asks for: folders
//! created 0700, files created with an explicit mode, and writes that are
//! atomic (a temporary file beside the target, synced, then renamed over it),
//! so a crash leaves either the old or the new file, never half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Prefix of every temporary file this crate creates; a leftover one (after a
/// kill -9) is recognisable and is cleaned up by the next write to its folder.
pub const TEMP_PREFIX: &str = ".mage-secrets-tmp-";

/// Creates `path` and any missing parents with `mode`; existing folders are
/// left as they are. A folder made gets back the owner's bits of `mode`
/// that the umask took: under umask 0277 a folder made 0500 could hold
/// nothing.
pub fn create_dir_all(path: &Path, mode: u32) -> Result<()> {
    // Without `.` components (`out/.`), which the builder would try to
    // make and fail on.
    let path: std::path::PathBuf = path.components().collect();
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
        .collect();
    if missing.is_empty() {
        // What was there already must be a folder.
        return fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&path)
            .map_err(|e| Error::io("create folder", path, e));
    }
    for folder in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(folder) {
            Ok(()) => give_owner_bits(folder, mode)?,
            // Made meanwhile by another process.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && folder.is_dir() => {}
            Err(e) => return Err(Error::io("create folder", folder, e)),
        }
    }
    Ok(())
}

/// Gives the folder just made at `path` the owner's bits of `mode` the
/// umask took, if any (its other bits stay as the system made them).
fn give_owner_bits(path: &Path, mode: u32) -> Result<()> {
    let made = fs::symlink_metadata(path)
        .map_err(|e| Error::io("read", path, e))?
        .permissions()
        .mode()
        & 0o7777;
    let owner = mode & 0o700;
    if made & owner == owner {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(made | owner))
        .map_err(|e| Error::io("set permissions of", path, e))
}

/// How [`write_atomic`] treats an existing target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    /// Fail with `AlreadyExists` (the caller lost a race and should re-read).
    Keep,
}

/// Writes `bytes` to `path` atomically with permissions `mode`, synced to
/// disk before the rename (for files that cannot be made again: keys).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, existing: Existing) -> Result<()> {
    write_atomic_with(path, bytes, mode, existing, true)
}

/// Replaces `path` atomically with `bytes`, without waiting for the disk:
/// for outputs that can be rendered again. A crash of the process still
/// leaves the old or the new file; the rename is what makes it atomic.
pub fn replace_atomic_unsynced(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, bytes, mode, Existing::Replace, false)
}

fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
    sync: bool,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir, mode)?;
    tmp.write_all(bytes)
        .and_then(|()| {
            if sync {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io("write", path, e))?;
    match existing {
        Existing::Replace => tmp
            .persist(path)
            .map(drop)
            .map_err(|e| Error::io("replace", path, e.error))?,
        Existing::Keep => tmp
            .persist_noclobber(path)
            .map(drop)
            .map_err(|e| Error::io("create", path, e.error))?,
    }
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The prefix of this process's temporary files: [`TEMP_PREFIX`], then the
/// pid, so that a cleanup can tell a running writer's file from a dead one's.
pub fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// A new temporary file in `dir` with exactly `mode`; removed when dropped.
fn temp_file_in(dir: &Path, mode: u32) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    // The umask may have narrowed the mode given at creation; set it exactly
    // (a umask cannot narrow an owner-only mode such as 0600).
    if mode & 0o077 != 0 {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set permissions of a temporary file in", dir, e))?;
    }
    Ok(tmp)
}

/// A temporary file beside `target` holding `bytes` (unsynced), to be
/// renamed over it; removed when dropped.
pub fn temp_file_with(target: &Path, bytes: &[u8], mode: u32) -> Result<tempfile::NamedTempFile> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir, mode)?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("write a temporary file for", target, e))?;
    Ok(tmp)
}

/// Refuses a folder this process cannot create files in (permissions, a
/// read-only mount), with the reason the system gives.
pub fn check_writable(dir: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: a NUL-terminated path; faccessat only reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    Err(Error::io(
        "write into",
        dir,
        std::io::Error::last_os_error(),
    ))
}

/// Syncs a folder, so that renames in it survive a crash of the machine.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("sync folder", dir, e))
}

/// Whether `mode` lets group or others read or write.
pub fn is_shared(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// What kind of file `meta` describes, for messages.
pub fn describe_file_type(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// An error that means "you may read this, not write it": permissions,
/// or a read-only mount.
pub fn is_read_only_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600, Existing::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        write_atomic(&path, b"two", 0o644, Existing::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let err = write_atomic(&path, b"three", 0o600, Existing::Keep).unwrap_err();
        assert!(
            matches!(err, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
        );
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn folders_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        create_dir_all(&path, 0o700).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        assert!(is_shared(0o640));
        assert!(!is_shared(0o600));
    }
}
