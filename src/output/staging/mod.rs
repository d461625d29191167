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
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    /// (output, staged file) for every new or changed output.
    staged: Vec<(PathBuf, PathBuf)>,
    /// Outputs whose bytes were already there, with their length and hash.
    unchanged: Vec<(PathBuf, u64, u64)>,
    /// Copies made beside targets on another file system.
    beside: Vec<PathBuf>,
    /// The output root was made by this run: no output is there yet. Its
    /// outputs are staged in their own tree, whose top entries are moved
    /// into place whole (a folder's rename moves what it holds).
    fresh: bool,
    /// Outputs staged in their own tree (a fresh root), to be moved in
    /// whole; off for a path the tree would make too long (then each
    /// output is staged under a short name and moved one by one).
    tree: bool,
    /// Folders made in the staging tree.
    stage_folders: std::collections::HashSet<PathBuf>,
    done: bool,
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
/// umask may have narrowed it).
fn set_folder_modes(folders: &[PathBuf], mode: u32) -> Result<()> {
    for folder in folders {
        fs::set_permissions(folder, fs::Permissions::from_mode(folder_mode(mode)))
            .map_err(|e| Error::io("set permissions of", folder, e))?;
    }
    Ok(())
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
            staged: Vec::new(),
            unchanged: Vec::new(),
            beside: Vec::new(),
            fresh,
            tree: fresh,
            stage_folders: std::collections::HashSet::new(),
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
        let lock = fs::File::open(&staging.dir)
            .map_err(|e| Error::io("open the staging folder in", out, e))?;
        flock(&lock, true);
        staging.lock = Some(lock);
        drop(marker);
        Ok(staging)
    }

    /// Takes one output: staged when its bytes differ from the file at its
    /// place, noted as unchanged otherwise.
    pub fn add(&mut self, rel: &Path, bytes: &[u8]) -> Result<Change> {
        let target = self.out.join(rel);
        // In an output root this run made, nothing is there to compare with.
        let change = if self.fresh {
            Change::New
        } else {
            change_of(&target, bytes)?
        };
        if change == Change::Unchanged {
            self.unchanged
                .push((rel.to_path_buf(), bytes.len() as u64, fingerprint(bytes)));
            return Ok(change);
        }
        // (The staging folder's name makes a tree path longer than its
        // target's: past a safe length, short names from here on.)
        let in_tree = self.dir.join(rel);
        self.tree &= in_tree.as_os_str().len() < TREE_PATH_MAX;
        let staged = if self.tree {
            self.stage_folder_of(rel)?;
            in_tree
        } else {
            self.dir.join(self.staged.len().to_string())
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
        self.staged.push((rel.to_path_buf(), staged));
        Ok(change)
    }

    /// Every output taken so far.
    pub fn outputs(&self) -> impl Iterator<Item = &Path> {
        self.staged
            .iter()
            .map(|(rel, _)| rel.as_path())
            .chain(self.unchanged.iter().map(|(rel, ..)| rel.as_path()))
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
        for (rel, len, hash) in &self.unchanged {
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
                let keep: Vec<&Path> = self.outputs().collect();
                prune_list(&self.out, &keep, below)?
            }
            None => Vec::new(),
        };
        let mut summary = WriteSummary::default();
        if self.tree && prune.is_empty() && self.move_tree(project, store)? {
            summary.written = self.staged.len();
            self.done = true;
            let _ = fs::remove_dir_all(&self.dir);
            return Ok(summary);
        }
        self.prepare_folders(project, store)?;
        let total = self.staged.len();
        for (k, (rel, staged)) in self.staged.iter().enumerate() {
            let target = self.out.join(rel);
            fs::rename(staged, &target).map_err(|e| Error::OutputsMixed {
                path: target.clone(),
                replaced: k,
                total,
                source: e,
            })?;
            summary.written += 1;
        }
        for (rel, ..) in &self.unchanged {
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

    /// Makes the folders of `rel` in the staging tree.
    fn stage_folder_of(&mut self, rel: &Path) -> Result<()> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        if self.stage_folders.contains(parent) {
            return Ok(());
        }
        let mut missing: Vec<&Path> = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !self.stage_folders.contains(*a))
            .collect();
        missing.reverse();
        for folder in missing {
            let path = self.dir.join(folder);
            fs::DirBuilder::new()
                .mode(folder_mode(self.mode))
                .create(&path)
                .map_err(|e| Error::io("create a staging folder for", self.out.join(folder), e))?;
            set_folder_modes(std::slice::from_ref(&path), self.mode)?;
            self.stage_folders.insert(folder.to_path_buf());
        }
        Ok(())
    }

    /// A fresh root's outputs put in place by moving the staging tree's
    /// top entries, when none of them is in the root yet (another render
    /// may have put its set there meanwhile: then `false`, and the outputs
    /// are moved one by one). The root, as the system resolved it, is
    /// checked first: no folder below it can be a link, this run made them
    /// all in its private staging folder.
    fn move_tree(&mut self, project: &Path, store: &[PathBuf]) -> Result<bool> {
        let out_real = self.checked_root(project)?;
        super::check_real_spares_store(&self.out, &out_real, store)?;
        let mut tops: Vec<&std::ffi::OsStr> = self
            .staged
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
        let total = self.staged.len();
        let mut per_top: std::collections::HashMap<&std::ffi::OsStr, usize> =
            std::collections::HashMap::new();
        for (rel, _) in &self.staged {
            if let Some(top) = rel.iter().next() {
                *per_top.entry(top).or_default() += 1;
            }
        }
        let mut moved = 0;
        for top in tops {
            let target = self.out.join(top);
            fs::rename(self.dir.join(top), &target).map_err(|e| Error::OutputsMixed {
                path: target.clone(),
                replaced: moved,
                total,
                source: e,
            })?;
            moved += per_top.get(top).copied().unwrap_or(0);
        }
        Ok(true)
    }

    /// Makes every target folder and checks it before any output is
    /// replaced: it must take files and not lead into the project; an
    /// output whose folder is on another file system is copied beside its
    /// target first (a rename cannot cross file systems).
    fn prepare_folders(&mut self, project: &Path, store: &[PathBuf]) -> Result<()> {
        let out_real = self.checked_root(project)?;
        let stage_dev = fs::metadata(&self.dir).map(|m| m.dev()).ok();
        let mut folders: Vec<PathBuf> = self
            .staged
            .iter()
            .map(|(rel, _)| rel.parent().unwrap_or(Path::new("")).to_path_buf())
            .collect();
        folders.sort();
        folders.dedup();
        let mut known = std::collections::HashMap::from([(
            PathBuf::new(),
            Folder {
                real: out_real.clone(),
                dev: stage_dev,
                made: false,
            },
        )]);
        let mut other_device: Vec<PathBuf> = Vec::new();
        for rel in folders {
            let folder = self.out.join(&rel);
            let Folder { real, dev, made } = self.folder(&rel, &mut known)?;
            if real.starts_with(project) && !real.starts_with(&out_real) {
                return Err(Error::Setup(format!(
                    "output folder {} leads into the project ({}): a render never writes over its sources; remove the link",
                    folder.display(),
                    real.display()
                )));
            }
            // A link must not lead into the secret store either.
            super::check_real_spares_store(&folder, &real, store)?;
            if !made {
                fsutil::check_writable(&folder)?;
            }
            if dev != stage_dev {
                // Temporaries a killed run left there (the walk of the
                // output root does not follow the link).
                remove_stale_temp_files(&folder)?;
                other_device.push(rel);
            }
        }
        for (rel, staged) in &mut self.staged {
            if !other_device
                .iter()
                .any(|f| rel.parent() == Some(f.as_path()))
            {
                continue;
            }
            let target = self.out.join(&*rel);
            let bytes = Zeroizing::new(
                fs::read(&*staged)
                    .map_err(|e| Error::io("read the staged output for", &target, e))?,
            );
            let beside = fsutil::temp_file_with(&target, &bytes, self.mode)?
                .into_temp_path()
                .keep()
                .map_err(|e| Error::io("keep a temporary file for", &target, e.error))?;
            self.beside.push(beside.clone());
            *staged = beside;
        }
        Ok(())
    }

    /// The real path and device of the target folder `rel` (made when
    /// missing, with the folders above it), from its parent's where no link
    /// can lead elsewhere: a folder this run makes, or one that is no link,
    /// is its parent's real path and its name. A link is resolved by the
    /// system.
    fn folder(
        &mut self,
        rel: &Path,
        known: &mut std::collections::HashMap<PathBuf, Folder>,
    ) -> Result<Folder> {
        self.folder_retried(rel, known, false)
    }

    fn folder_retried(
        &mut self,
        rel: &Path,
        known: &mut std::collections::HashMap<PathBuf, Folder>,
        retried: bool,
    ) -> Result<Folder> {
        if let Some(folder) = known.get(rel) {
            return Ok(folder.clone());
        }
        let parent = self.folder(rel.parent().unwrap_or(Path::new("")), known)?;
        let path = self.out.join(rel);
        let name = rel.file_name().unwrap_or_default();
        let folder = match fs::symlink_metadata(&path) {
            // A folder, perhaps a mount point (its own device).
            Ok(meta) if meta.is_dir() => Folder {
                real: parent.real.join(name),
                dev: Some(meta.dev()),
                made: false,
            },
            Ok(meta) if meta.file_type().is_symlink() && path.is_dir() => Folder {
                real: project::absolute(&path),
                dev: fs::metadata(&path).map(|m| m.dev()).ok(),
                made: false,
            },
            Ok(_) => {
                // Not a folder: the error says so.
                fsutil::create_dir_all(&path, folder_mode(self.mode))?;
                return Err(Error::Setup(format!(
                    "output folder {} is not a folder",
                    path.display()
                )));
            }
            Err(_) => {
                // One level (the parent is there): what appears meanwhile
                // (a link) is judged as found, not taken as made here.
                match fs::DirBuilder::new()
                    .mode(folder_mode(self.mode))
                    .create(&path)
                {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !retried => {
                        return self.folder_retried(rel, known, true);
                    }
                    Err(e) => return Err(Error::io("create folder", &path, e)),
                    Ok(()) => {}
                }
                set_folder_modes(std::slice::from_ref(&path), self.mode)?;
                self.made.push(path);
                Folder {
                    real: parent.real.join(name),
                    dev: parent.dev,
                    made: true,
                }
            }
        };
        known.insert(rel.to_path_buf(), folder.clone());
        Ok(folder)
    }
}

/// What [`Staging::prepare_folders`] knows of a target folder.
#[derive(Clone)]
struct Folder {
    real: PathBuf,
    dev: Option<u64>,
    /// Made by this run.
    made: bool,
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

#[cfg(test)]
mod tests;
