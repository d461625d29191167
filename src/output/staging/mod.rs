//! Writing an output set as it is rendered: each output that differs from
//! what is on disk goes into a staging folder inside the output root as soon
//! as it is rendered (so a render holds no more than a few outputs in
//! memory), and only when every file rendered are they renamed into place.
//!
//! - The staging folder is locked (`flock`) while its render runs, so a
//!   render elsewhere (another container sharing the folder, where pids
//!   mean nothing) removes only staging folders nobody holds.
//! - The moves into place hold a lock on the output root's marker: two
//!   renders into one folder put their sets in place one after the other,
//!   and a render whose unchanged outputs were changed meanwhile (by the
//!   other) fails instead of completing a mixed set.
//! - Before any output is replaced, every target folder is made, must take
//!   files, must not lead back into the project (a link), and an output
//!   whose folder is on another file system is first copied beside it.
//! - Dropped without [`Staging::commit`] (a failed render, an error), the
//!   staging folder and every temporary go, and the folders this run made
//!   when they are empty: nothing is left behind.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use super::{
    change_of, folder_mode, keep_mode, mark, prune_list, remove_stale_temp_files, Change,
    WriteSummary,
};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::project::{self, OUTPUT_MARKER};

/// The longest staging path a tree is staged at (PATH_MAX is 4,096 with
/// its NUL; a relative path's length is what the system checks).
const TREE_PATH_MAX: usize = 3_800;

/// The staging folder's subfolder for outputs staged at their own paths,
/// and the one for outputs staged under short names (apart: an output's
/// first folder may have any name a short one has).
const TREE: &str = "tree";
const SHORT: &str = "short";

/// An output set being written; see the module documentation.
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    /// The staging folder, open and locked while this value lives.
    lock: Option<fs::File>,
    /// The time of the marker this run made (none when it was there).
    marker_stamp: Option<std::time::SystemTime>,
    mode: u32,
    /// Folders this run made (the output root and those above it, then
    /// target folders), deepest last.
    made: Vec<PathBuf>,
    /// What the outputs taken so far left; the workers of a render add
    /// outputs at once, each writing its own file outside this lock.
    taken: Mutex<Taken>,
    /// Copies made beside targets on another file system.
    beside: Vec<PathBuf>,
    /// The output root was made by this run: no output is there yet. Its
    /// outputs are staged in their own tree, whose top entries are moved
    /// into place whole (a folder's rename moves what it holds).
    fresh: bool,
    /// Whether the first folder made in the staging tree came out with the
    /// folder mode exactly ([`MODES_UNKNOWN`] until one is made): then so
    /// does every later one (the umask, and the default ACL every folder
    /// of the tree inherits, are the same for all), which needs no `chmod`.
    folder_modes: AtomicU8,
    done: bool,
}

const MODES_UNKNOWN: u8 = 0;
const MODES_EXACT: u8 = 1;
const MODES_NARROWED: u8 = 2;

/// The bookkeeping of [`Staging::add`].
#[derive(Default)]
struct Taken {
    /// (output, staged file) for every new or changed output.
    staged: Vec<(PathBuf, PathBuf)>,
    /// Outputs whose bytes were already there, with their length and hash.
    unchanged: Vec<(PathBuf, u64, u64)>,
    /// Outputs staged in their own tree (a fresh root), to be moved in
    /// whole; off for a path the tree would make too long (then each
    /// output from there on is staged under a short name, and all are
    /// moved one by one).
    tree: bool,
    /// Folders made in the staging tree.
    stage_folders: std::collections::HashSet<PathBuf>,
    /// Short staged names given so far.
    short_names: usize,
}

impl Taken {
    /// Every output taken.
    fn outputs(&self) -> impl Iterator<Item = &Path> {
        self.staged
            .iter()
            .map(|(rel, _)| rel.as_path())
            .chain(self.unchanged.iter().map(|(rel, ..)| rel.as_path()))
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Takes an exclusive `flock` on `file`; `wait` blocks until it is free.
/// Whether it was taken.
fn flock(file: &fs::File, wait: bool) -> bool {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a descriptor this File owns.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

/// Gives folders this run made the folder mode of `mode` exactly (the
/// umask, or a default ACL of the folder above, may have narrowed it).
fn set_folder_modes(folders: &[PathBuf], mode: u32) -> Result<()> {
    folders.iter().try_for_each(|f| set_folder_mode(f, mode))
}

/// [`set_folder_modes`] for one folder.
fn set_folder_mode(folder: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(folder, fs::Permissions::from_mode(folder_mode(mode)))
        .map_err(|e| Error::io("set permissions of", folder, e))
}

/// Makes `folder`, a folder of the staging folder in `out`, 0700 whatever
/// the umask: one that takes the owner's write bit (0277) would leave a
/// folder nothing can be staged in.
fn make_private_folder(folder: &Path, out: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(folder)
        .map_err(|e| Error::io("create a staging folder in", out, e))?;
    set_folder_mode(folder, 0o600)
}

fn open_marker(out: &Path) -> Result<fs::File> {
    let path = out.join(OUTPUT_MARKER);
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .or_else(|_| fs::File::open(&path))
        .map_err(|e| Error::io("open", &path, e))
}

/// Whether a staging folder is held by a running render (its lock).
pub(super) fn staging_in_use(dir: &Path) -> bool {
    match fs::File::open(dir) {
        Ok(f) => !flock(&f, false),
        Err(_) => false,
    }
}

/// The folders of `rel` not yet in `made`, outermost first.
fn missing_folders(made: &std::collections::HashSet<PathBuf>, rel: &Path) -> Vec<PathBuf> {
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let mut missing: Vec<PathBuf> = parent
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !made.contains(*a))
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

impl Staging {
    /// Makes the output root (when missing) and this run's staging folder.
    pub fn new(out: &Path, mode: u32) -> Result<Staging> {
        // Judged by the path resolved: in `new/../out`, `new/..` and
        // `new/../out` are not made by this run when `out` is there.
        let missing = |a: &Path| fs::symlink_metadata(project::absolute(a)).is_err();
        let mut made: Vec<PathBuf> = out
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
            .filter(|a| missing(a))
            .map(Path::to_path_buf)
            .collect();
        made.reverse();
        let fresh = missing(out);
        let mut staging = Staging {
            out: out.to_path_buf(),
            dir: PathBuf::new(),
            lock: None,
            marker_stamp: None,
            mode,
            made,
            taken: Mutex::new(Taken {
                tree: fresh,
                ..Taken::default()
            }),
            beside: Vec::new(),
            fresh,
            folder_modes: AtomicU8::new(MODES_UNKNOWN),
            done: false,
        };
        // From here on, a failure drops `staging`, which removes what it made.
        fsutil::create_dir_all(out, folder_mode(mode))?;
        set_folder_modes(&staging.made, mode)?;
        // The staging folder is made and locked under the marker's lock,
        // which a render holds while it removes stale staging folders: it
        // never sees one that is made but not yet locked.
        // The stamp of a marker this call made, read before waiting for
        // its lock: read after, it may be another render's commit stamp,
        // and a failure here would then remove the marker of that set.
        if super::mark_made(out, mode)? {
            staging.marker_stamp = fs::metadata(out.join(OUTPUT_MARKER))
                .and_then(|m| m.modified())
                .ok();
        }
        let marker = open_marker(out)?;
        flock(&marker, true);
        // A random name after the pid: a render in another pid namespace
        // may have the same pid.
        staging.dir = tempfile::Builder::new()
            .prefix(&format!("{}stage-", fsutil::temp_prefix()))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(out)
            .map_err(|e| Error::io("create a staging folder in", out, e))?
            .keep();
        // 0700 whatever the umask (see `make_private_folder`).
        set_folder_mode(&staging.dir, 0o600)?;
        let lock = fs::File::open(&staging.dir)
            .map_err(|e| Error::io("open the staging folder in", out, e))?;
        if fresh {
            make_private_folder(&staging.dir.join(TREE), out)?;
        }
        flock(&lock, true);
        staging.lock = Some(lock);
        drop(marker);
        Ok(staging)
    }

    /// Takes one output: staged when its bytes differ from the file at its
    /// place, noted as unchanged otherwise. Safe to call from many threads
    /// at once (for different outputs).
    pub fn add(&self, rel: &Path, bytes: &[u8]) -> Result<Change> {
        let target = self.out.join(rel);
        // In an output root this run made, nothing is there to compare with.
        let change = if self.fresh {
            Change::New
        } else {
            change_of(&target, bytes)?
        };
        if change == Change::Unchanged {
            self.taken().unchanged.push((
                rel.to_path_buf(),
                bytes.len() as u64,
                fingerprint(bytes),
            ));
            return Ok(change);
        }
        let staged = {
            let mut taken = self.taken();
            // (The staging folder's name makes a tree path longer than its
            // target's: past a safe length, short names from here on.)
            let in_tree = self.dir.join(TREE).join(rel);
            taken.tree &= in_tree.as_os_str().len() < TREE_PATH_MAX;
            if taken.tree {
                let missing = missing_folders(&taken.stage_folders, rel);
                if !missing.is_empty() {
                    if self.folder_modes.load(Ordering::Acquire) == MODES_EXACT {
                        // A folder has its mode as soon as it is made: made
                        // outside the lock, while the other workers go on.
                        drop(taken);
                        self.make_stage_folders(&missing)?;
                        self.taken().stage_folders.extend(missing);
                    } else {
                        // Until then (and for good when a folder needs a
                        // `chmod`), under the lock: no worker writes into a
                        // folder before its mode is set (a umask that takes
                        // the owner's write bit would refuse it).
                        self.make_stage_folders(&missing)?;
                        taken.stage_folders.extend(missing);
                    }
                }
                in_tree
            } else {
                let short = self.dir.join(SHORT);
                if taken.short_names == 0 {
                    make_private_folder(&short, &self.out)?;
                }
                taken.short_names += 1;
                short.join(taken.short_names.to_string())
            }
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(&staged)
            .map_err(|e| Error::io("write a temporary file for", &target, e))?;
        if fsutil::is_shared(self.mode) {
            // The umask may have narrowed the mode given at creation.
            file.set_permissions(fs::Permissions::from_mode(self.mode))
                .map_err(|e| Error::io("set permissions of a temporary file for", &target, e))?;
        }
        file.write_all(bytes)
            .map_err(|e| Error::io("write a temporary file for", &target, e))?;
        self.taken().staged.push((rel.to_path_buf(), staged));
        Ok(change)
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, Taken> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts every staged output in place (see the module documentation);
    /// `project` is the real path of the project read; with `prune_below`,
    /// files there that no output accounts for are removed last.
    pub fn commit(
        mut self,
        project: &Path,
        store: &[PathBuf],
        prune_below: Option<&Path>,
    ) -> Result<WriteSummary> {
        // (Marked again: a failed render that made the marker removes it.)
        mark(&self.out, self.mode)?;
        let marker = open_marker(&self.out)?;
        flock(&marker, true);
        // The commit's stamp: a failed render that made the marker keeps it
        // once a set was put here.
        let _ = marker.set_modified(std::time::SystemTime::now());
        remove_stale_temp_files(&self.out)?;
        let mut taken =
            std::mem::take(self.taken.get_mut().unwrap_or_else(PoisonError::into_inner));
        for (rel, len, hash) in &taken.unchanged {
            let still = fs::read(self.out.join(rel))
                .map(Zeroizing::new)
                .is_ok_and(|now| now.len() as u64 == *len && fingerprint(&now) == *hash);
            if !still {
                return Err(Error::Setup(format!(
                    "output {} changed while this render ran (another render into {}?); nothing was replaced: render again",
                    self.out.join(rel).display(),
                    self.out.display()
                )));
            }
        }
        let prune = match prune_below {
            Some(below) => {
                let keep: Vec<&Path> = taken.outputs().collect();
                prune_list(&self.out, &keep, below)?
            }
            None => Vec::new(),
        };
        let mut summary = WriteSummary::default();
        if taken.tree && prune.is_empty() && self.move_tree(&taken.staged, project, store)? {
            summary.written = taken.staged.len();
            self.done = true;
            let _ = fs::remove_dir_all(&self.dir);
            return Ok(summary);
        }
        self.prepare_folders(&mut taken.staged, project, store)?;
        let total = taken.staged.len();
        for (k, (rel, staged)) in taken.staged.iter().enumerate() {
            let target = self.out.join(rel);
            fs::rename(staged, &target).map_err(|e| Error::OutputsMixed {
                path: target.clone(),
                replaced: k,
                total,
                source: e,
            })?;
            summary.written += 1;
        }
        for (rel, ..) in &taken.unchanged {
            keep_mode(&self.out.join(rel), self.mode)?;
            summary.unchanged += 1;
        }
        summary.pruned = super::remove_pruned(&self.out, &prune)?;
        self.done = true;
        let _ = fs::remove_dir_all(&self.dir);
        Ok(summary)
    }

    /// The output root as the system resolved it, now that it is made:
    /// never the project or a folder holding it (the targets below it are
    /// exempt from the check that they do not lead into the project).
    fn checked_root(&self, project: &Path) -> Result<PathBuf> {
        let out_real = project::absolute(&self.out);
        if project.starts_with(&out_real) {
            return Err(Error::Setup(format!(
                "output folder {} is the project or holds it ({}): a render never writes over its sources; choose a folder of its own, e.g. --out build/",
                self.out.display(),
                out_real.display()
            )));
        }
        Ok(out_real)
    }

    /// Makes `folders` (relative, each after the folder holding it) in the
    /// staging tree, each with the folder mode. A folder another worker made
    /// meanwhile (outside the lock, once folders are known to come out
    /// with their mode) is there already: nothing else writes in this
    /// run's private staging folder.
    fn make_stage_folders(&self, folders: &[PathBuf]) -> Result<()> {
        for folder in folders {
            let path = self.dir.join(TREE).join(folder);
            match fs::DirBuilder::new()
                .mode(folder_mode(self.mode))
                .create(&path)
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        "create a staging folder for",
                        self.out.join(folder),
                        e,
                    ))
                }
            }
            let exact = match self.folder_modes.load(Ordering::Acquire) {
                MODES_EXACT => true,
                MODES_NARROWED => false,
                _ => {
                    let exact = fs::symlink_metadata(&path)
                        .is_ok_and(|m| m.permissions().mode() & 0o7777 == folder_mode(self.mode));
                    let state = if exact { MODES_EXACT } else { MODES_NARROWED };
                    self.folder_modes.store(state, Ordering::Release);
                    exact
                }
            };
            if !exact {
                set_folder_mode(&path, self.mode)?;
            }
        }
        Ok(())
    }

    /// A fresh root's outputs put in place by moving the staging tree's
    /// top entries, when none of them is in the root yet (another render
    /// may have put its set there meanwhile: then `false`, and the outputs
    /// are moved one by one). The root, as the system resolved it, is
    /// checked first: no folder below it can be a link, this run made them
    /// all in its private staging folder.
    fn move_tree(
        &self,
        staged: &[(PathBuf, PathBuf)],
        project: &Path,
        store: &[PathBuf],
    ) -> Result<bool> {
        let out_real = self.checked_root(project)?;
        super::check_real_spares_store(&self.out, &out_real, store)?;
        let mut tops: Vec<&std::ffi::OsStr> = staged
            .iter()
            .filter_map(|(rel, _)| rel.iter().next())
            .collect();
        tops.sort();
        tops.dedup();
        if tops
            .iter()
            .any(|top| fs::symlink_metadata(self.out.join(top)).is_ok())
        {
            return Ok(false);
        }
        let total = staged.len();
        let mut per_top: std::collections::HashMap<&std::ffi::OsStr, usize> =
            std::collections::HashMap::new();
        for (rel, _) in staged {
            if let Some(top) = rel.iter().next() {
                *per_top.entry(top).or_default() += 1;
            }
        }
        let mut moved = 0;
        for top in tops {
            let target = self.out.join(top);
            fs::rename(self.dir.join(TREE).join(top), &target).map_err(|e| {
                Error::OutputsMixed {
                    path: target.clone(),
                    replaced: moved,
                    total,
                    source: e,
                }
            })?;
            moved += per_top.get(top).copied().unwrap_or(0);
        }
        Ok(true)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
        for temp in &self.beside {
            let _ = fs::remove_file(temp);
        }
        // The folders this run made, deepest first, when nothing else
        // appeared in them meanwhile; the output root's marker too, when
        // this run made it and the root holds nothing else (another render
        // may have put its set there).
        let made = std::mem::take(&mut self.made);
        let mut marker_checked = false;
        for dir in made.iter().rev() {
            if !marker_checked && !dir.starts_with(&self.out) {
                self.remove_lone_marker();
                marker_checked = true;
            }
            if dir == &self.out {
                self.remove_lone_marker();
                marker_checked = true;
            }
            let _ = fs::remove_dir(dir);
        }
        if !marker_checked {
            self.remove_lone_marker();
        }
    }
}

impl Staging {
    /// Removes the marker this run made, unless another render committed a
    /// set meanwhile (a commit stamps the marker's time).
    fn remove_lone_marker(&self) {
        let Some(stamp) = self.marker_stamp else {
            return;
        };
        if let Ok(marker) = open_marker(&self.out) {
            flock(&marker, true);
            if marker.metadata().and_then(|m| m.modified()).ok() == Some(stamp) {
                let _ = fs::remove_file(self.out.join(OUTPUT_MARKER));
            }
        }
    }
}

mod folders;

#[cfg(test)]
mod tests;
