//! The walk: the Mage project root of a path, and the files below it, with
//! the link rules (followed inside the project; folder links out of it and
//! loops are not) and a record of what was skipped.

use std::fs;
use std::path::{Path, PathBuf};

use super::{absolute, is_skipped_folder, ProjectFiles, Selection, SkipReason, OUTPUT_MARKER};
use crate::diagnostic::{Diagnostic, Kind};
use crate::error::{Error, Result};
use crate::mage_selection::{Role, DBT_PROJECT_FILE};

/// Whether `dir` is a Mage project root: it holds `io_config.yaml`, or a
/// `metadata.yaml` with a top-level `project_type`.
pub fn is_project_root(dir: &Path) -> bool {
    if dir.join("io_config.yaml").is_file() {
        return true;
    }
    fs::read(dir.join("metadata.yaml")).is_ok_and(|bytes| {
        bytes
            .split(|b| *b == b'\n')
            .any(|line| line.starts_with(b"project_type:"))
    })
}

/// Where a path given on the command line lies in its project.
#[derive(Clone, Debug)]
pub struct Location {
    /// The project root, absolute.
    pub root: PathBuf,
    /// The path, relative to the root (empty: the root itself).
    pub rel: PathBuf,
    pub mage_project: bool,
    pub is_file: bool,
}

impl Location {
    /// Finds the project root of `path` (a folder or a file).
    pub fn of(path: &Path) -> Result<Location> {
        let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        let abs = absolute(path);
        let is_file = meta.is_file();
        let dir = if is_file {
            abs.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            abs.clone()
        };
        let found = dir.ancestors().find(|d| is_project_root(d));
        // Not in a Mage project: a path inside `pipelines/<p>/` still takes
        // its scope from there.
        let pipelines_parent = || {
            dir.ancestors()
                .find(|d| d.file_name().is_some_and(|n| n == "pipelines"))
                .and_then(Path::parent)
        };
        let (root, mage_project) = match found {
            Some(root) => (root.to_path_buf(), true),
            None => match pipelines_parent() {
                Some(parent) if dir != parent => (parent.to_path_buf(), false),
                _ => (dir.clone(), false),
            },
        };
        let rel = abs
            .strip_prefix(&root)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        Ok(Location {
            root,
            rel,
            mage_project,
            is_file,
        })
    }

    /// Whether the located file (or a file at `rel`) lies in a dbt project
    /// below the root.
    pub fn in_dbt(&self, rel: &Path) -> bool {
        in_dbt(&self.root, rel)
    }
}

/// Whether the file at `rel` (relative to `root`) lies in a dbt project
/// below `root`.
pub fn in_dbt(root: &Path, rel: &Path) -> bool {
    rel.ancestors()
        .skip(1)
        .any(|d| root.join(d).join(DBT_PROJECT_FILE).is_file())
}

/// Walks the project of `path` from `path` down (a whole project when
/// `path` is its root), skipping `out` (the output folder) wherever it lies.
pub fn walk_located(
    location: &Location,
    selection: &Selection,
    out: Option<&Path>,
) -> Result<ProjectFiles> {
    let mut project = ProjectFiles {
        root: location.root.clone(),
        start: location.rel.clone(),
        mage_project: location.mage_project,
        display_base: std::env::current_dir().ok().map(|d| absolute(&d)),
        ..ProjectFiles::default()
    };
    let start_abs = location.root.join(&location.rel);
    if location.is_file {
        let in_dbt = location.in_dbt(&location.rel);
        match selection.role(&location.rel, location.mage_project, in_dbt) {
            Role::Render => project.files.push(location.rel.clone()),
            Role::Copy(why) => project.copies.push((location.rel.clone(), why)),
        }
        project.read.push(start_abs);
        return Ok(project);
    }
    if start_abs.join(OUTPUT_MARKER).exists() {
        return Err(Error::Usage(format!(
            "{} is an output folder of mage-secrets (it holds {OUTPUT_MARKER}), not templates; name the project instead",
            project.display_path(&location.rel).display()
        )));
    }
    // The output folder is not skipped by path: once rendered into, it holds
    // the marker; before, a folder holding templates is refused as --out.
    let _ = out;
    let mut walker = Walker {
        selection,
        project: &mut project,
        ancestors: Vec::new(),
    };
    let in_dbt = location.in_dbt(&location.rel.join("x"));
    walker.visit(&start_abs, &location.rel, in_dbt);
    Ok(project)
}

/// Walks `root` as a whole project rooted there, skipping `out`.
pub fn walk(root: &Path, selection: &Selection, out: Option<&Path>) -> Result<ProjectFiles> {
    let meta = fs::metadata(root).map_err(|e| Error::io("read project folder", root, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("{} is not a folder", root.display())));
    }
    let abs = absolute(root);
    let location = Location {
        mage_project: is_project_root(&abs),
        root: abs,
        rel: PathBuf::new(),
        is_file: false,
    };
    walk_located(&location, selection, out)
}

struct Walker<'a> {
    selection: &'a Selection,
    project: &'a mut ProjectFiles,
    /// Real paths of the folders being walked, outermost first (loops).
    ancestors: Vec<PathBuf>,
}

impl Walker<'_> {
    fn problem(&mut self, rel: &Path, message: String) {
        self.project
            .diagnostics
            .push(Diagnostic::error(Kind::File, message).in_file(rel));
    }

    /// Walks the folder at `dir` (as reached), `rel` from the root.
    fn visit(&mut self, dir: &Path, rel: &Path, in_dbt: bool) {
        let real = absolute(dir);
        let mut entries: Vec<fs::DirEntry> = match fs::read_dir(dir) {
            Ok(list) => list.filter_map(std::result::Result::ok).collect(),
            Err(e) => {
                self.problem(rel, format!("cannot read folder: {e}"));
                return;
            }
        };
        entries.sort_by_key(fs::DirEntry::file_name);
        if !rel.as_os_str().is_empty() && entries.iter().any(|e| e.file_name() == OUTPUT_MARKER) {
            return;
        }
        let in_dbt = in_dbt
            || entries
                .iter()
                .any(|e| e.file_name() == DBT_PROJECT_FILE && e.path().is_file());
        self.ancestors.push(real.clone());
        for entry in entries {
            let name = entry.file_name();
            let child_rel = rel.join(&name);
            let path = entry.path();
            let Ok(mut file_type) = entry.file_type() else {
                continue;
            };
            let mut link_target = None;
            if file_type.is_symlink() {
                match fs::metadata(&path) {
                    Ok(meta) => {
                        file_type = meta.file_type();
                        link_target = Some(absolute(&path));
                    }
                    Err(e) if e.raw_os_error() == Some(40) => {
                        if self.selection.selects(&child_rel) {
                            self.problem(
                                &child_rel,
                                "is a symbolic link that loops (ELOOP); remove it or point it at a file".into(),
                            );
                        }
                        continue;
                    }
                    Err(_) => {
                        if self.selection.selects(&child_rel) {
                            self.project
                                .skipped
                                .push((child_rel, SkipReason::LinkDangling));
                        }
                        continue;
                    }
                }
            }
            let hidden = name.to_str().is_none_or(|n| n.starts_with('.'));
            if file_type.is_dir() {
                if hidden && !self.selection.enters_hidden(&child_rel) {
                    continue;
                }
                if !hidden && is_skipped_folder(&child_rel) {
                    self.project
                        .skipped
                        .push((child_rel, SkipReason::FolderName));
                    continue;
                }
                if let Some(target) = &link_target {
                    if !target.starts_with(&self.project.root) {
                        self.project
                            .skipped
                            .push((child_rel, SkipReason::LinkOutside));
                        continue;
                    }
                    if self.ancestors.iter().any(|a| a == target) {
                        self.project.skipped.push((child_rel, SkipReason::LinkLoop));
                        continue;
                    }
                }
                self.visit(&path, &child_rel, in_dbt);
                continue;
            }
            if !file_type.is_file() {
                continue;
            }
            if hidden && !self.selection.is_explicit() {
                continue;
            }
            if !self.selection.selects(&child_rel) {
                continue;
            }
            match self
                .selection
                .role(&child_rel, self.project.mage_project, in_dbt)
            {
                Role::Render => self.project.files.push(child_rel),
                Role::Copy(why) => self.project.copies.push((child_rel, why)),
            }
            self.project
                .read
                .push(link_target.unwrap_or_else(|| real.join(&name)));
        }
        self.ancestors.pop();
    }
}
