//! The target folders of a staged set, made and checked before any output
//! is replaced.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{folder_mode, remove_stale_temp_files, set_folder_mode, Staging};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::project;

impl Staging {
    /// Makes every target folder and checks it before any output is
    /// replaced: it must take files and not lead into the project; an
    /// output whose folder is on another file system is copied beside its
    /// target first (a rename cannot cross file systems).
    pub(super) fn prepare_folders(
        &mut self,
        staged: &mut [(PathBuf, PathBuf)],
        project: &Path,
        store: &[PathBuf],
    ) -> Result<()> {
        let out_real = self.checked_root(project)?;
        let stage_dev = fs::metadata(&self.dir).map(|m| m.dev()).ok();
        let mut folders: Vec<PathBuf> = staged
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
            crate::output::check_real_spares_store(&folder, &real, store)?;
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
        for (rel, staged) in staged.iter_mut() {
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
                set_folder_mode(&path, self.mode)?;
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
