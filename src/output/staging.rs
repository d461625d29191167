//! Writing an output set as it is rendered: each output that differs from
//! what is on disk goes into a staging folder inside the output root as soon
//! as it is rendered (so a render holds no more than a few outputs in
//! memory), and only when every file rendered are they renamed into place.
//! Dropped without [`Staging::commit`] (a failed render, an error), the
//! staging folder goes, and the output root too when this run made it:
//! nothing is left behind.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{folder_mode, mark, prune_list, remove_stale_temp_files, Change, WriteSummary};
use crate::error::{Error, Result};
use crate::fsutil;

/// An output set being written; see the module documentation.
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    mode: u32,
    /// The output root and the folders above it this run made, deepest
    /// first.
    made: Vec<PathBuf>,
    /// (output, staged file) for every new or changed output.
    staged: Vec<(PathBuf, PathBuf)>,
    /// Outputs whose bytes are already there.
    unchanged: Vec<PathBuf>,
    done: bool,
}

impl Staging {
    /// Makes the output root (when missing) and this run's staging folder.
    pub fn new(out: &Path, mode: u32) -> Result<Staging> {
        let made: Vec<PathBuf> = out
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
            .map(Path::to_path_buf)
            .collect();
        fsutil::create_dir_all(out, folder_mode(mode))?;
        let dir = out.join(format!("{}stage", fsutil::temp_prefix()));
        // A folder of this pid is a leftover of a process long gone.
        let _ = fs::remove_dir_all(&dir);
        let staging = Staging {
            out: out.to_path_buf(),
            dir,
            mode,
            made,
            staged: Vec::new(),
            unchanged: Vec::new(),
            done: false,
        };
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.dir)
            .map_err(|e| Error::io("create a staging folder in", out, e))?;
        Ok(staging)
    }

    /// Takes one output: staged when its bytes differ from the file at its
    /// place, noted as unchanged otherwise.
    pub fn add(&mut self, rel: &Path, bytes: &[u8]) -> Result<Change> {
        let target = self.out.join(rel);
        let change = match fs::symlink_metadata(&target) {
            Err(_) => Change::New,
            Ok(meta) if meta.is_dir() => {
                return Err(Error::Setup(format!(
                    "output {} is a folder; remove it or choose another --out",
                    target.display()
                )))
            }
            Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {
                match fs::read(&target).map(Zeroizing::new) {
                    Ok(existing) if existing.as_slice() == bytes => Change::Unchanged,
                    _ => Change::Changed,
                }
            }
            Ok(_) => Change::Changed,
        };
        if change == Change::Unchanged {
            self.unchanged.push(rel.to_path_buf());
            return Ok(change);
        }
        let staged = self.dir.join(self.staged.len().to_string());
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

    /// Every output taken so far, in the order taken.
    pub fn outputs(&self) -> impl Iterator<Item = &Path> {
        self.staged
            .iter()
            .map(|(rel, _)| rel.as_path())
            .chain(self.unchanged.iter().map(PathBuf::as_path))
    }

    /// Puts every staged output in place: the root is marked, folders are
    /// made, each staged file is renamed over its target; unchanged outputs
    /// get the mode; with `prune_below`, files there that no output
    /// accounts for are removed last.
    pub fn commit(mut self, prune_below: Option<&Path>) -> Result<WriteSummary> {
        let prune = match prune_below {
            Some(below) => {
                let keep: Vec<&Path> = self.outputs().collect();
                prune_list(&self.out, &keep, below)?
            }
            None => Vec::new(),
        };
        mark(&self.out, self.mode)?;
        remove_stale_temp_files(&self.out)?;
        // Every target folder is made, and must be writable, before any
        // output is replaced: a folder that cannot take its files fails the
        // set while every old output is still in place.
        let mut folders: Vec<&Path> = self
            .staged
            .iter()
            .map(|(rel, _)| rel.parent().unwrap_or(Path::new("")))
            .collect();
        folders.sort();
        folders.dedup();
        for rel in folders {
            let folder = self.out.join(rel);
            if !folder.is_dir() {
                fsutil::create_dir_all(&folder, folder_mode(self.mode))?;
            }
            fsutil::check_writable(&folder)?;
        }
        let mut summary = WriteSummary::default();
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
        for rel in &self.unchanged {
            let target = self.out.join(rel);
            if let Ok(meta) = fs::metadata(&target) {
                if meta.permissions().mode() & 0o777 != self.mode {
                    fs::set_permissions(&target, fs::Permissions::from_mode(self.mode))
                        .map_err(|e| Error::io("set permissions of", &target, e))?;
                }
            }
            summary.unchanged += 1;
        }
        summary.pruned = super::remove_pruned(&self.out, &prune)?;
        self.done = true;
        let _ = fs::remove_dir_all(&self.dir);
        Ok(summary)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
        // Only folders nothing else appeared in meanwhile.
        for dir in &self.made {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}
