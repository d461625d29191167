//! The walk: the Mage project root of a path, and the files below it, with
//! the link rules (followed inside the project; folder links out of it and
//! loops are not) and a record of what was skipped.

use std::fs;
use std::path::{Path, PathBuf};

use super::{absolute, is_skipped_folder, ProjectFiles, Selection, SkipReason, OUTPUT_MARKER};
use crate::diagnostic::{Diagnostic, Kind};
use crate::error::{Error, Result};
use crate::mage_selection::{self, is_dbt_project, DbtPlace, NotRendered, Role};

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
        let is_file = meta.is_file();
        // A file is placed by the path Mage reads, a link's own path: its
        // folder is resolved, not the file.
        let abs = match (is_file, path.file_name()) {
            (true, Some(name)) => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                absolute(parent.unwrap_or(Path::new("."))).join(name)
            }
            _ => absolute(path),
        };
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

    /// Where a file at `rel` lies with respect to dbt projects.
    pub fn dbt_place(&self, rel: &Path) -> DbtPlace {
        dbt_place(&self.root, rel, self.mage_project)
    }
}

/// Where the file at `rel` (relative to `root`) lies with respect to dbt
/// projects: the nearest folder from its own up to `root` holding a dbt
/// project file, and outside a Mage project any folder above `root` too
/// (a Mage project's files are never owned by a dbt project around it).
pub fn dbt_place(root: &Path, rel: &Path, mage_project: bool) -> DbtPlace {
    DbtFolders::default().place(root, rel, mage_project)
}

/// Which folders of one project hold a dbt project file, each asked of the
/// file system once (a walk asks for every file's folder and all the
/// folders above it: two `stat`s each, eight per file in a pipeline's
/// `blocks/`).
#[derive(Debug, Default)]
pub struct DbtFolders {
    /// Folders relative to the root.
    known: std::collections::HashMap<PathBuf, bool>,
    /// Whether a folder above the root is one.
    above_root: Option<bool>,
}

impl DbtFolders {
    /// [`dbt_place`], remembering what it found.
    pub fn place(&mut self, root: &Path, rel: &Path, mage_project: bool) -> DbtPlace {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let found = parent.ancestors().find(|d| match self.known.get(*d) {
            Some(known) => *known,
            None => {
                let is = is_dbt_project(&root.join(d));
                self.known.insert(d.to_path_buf(), is);
                is
            }
        });
        if let Some(d) = found {
            return DbtPlace {
                inside: true,
                project_folder: d == parent,
                at_root: d.as_os_str().is_empty(),
            };
        }
        let inside = !mage_project
            && *self
                .above_root
                .get_or_insert_with(|| root.ancestors().skip(1).any(is_dbt_project));
        DbtPlace {
            inside,
            ..DbtPlace::default()
        }
    }
}

/// How a selected file at `rel` is treated: rendered when `--include`
/// chose it, else by Mage's rules ([`mage_selection`]). A pipeline's
/// `metadata.yaml` is judged by its content too; the warning says where
/// its Jinja lies outside the fields Mage renders, if it does.
pub fn classify(
    root: &Path,
    rel: &Path,
    mage_project: bool,
    selection: &Selection,
) -> (Role, Option<Diagnostic>) {
    classify_in(
        root,
        rel,
        mage_project,
        selection,
        &mut DbtFolders::default(),
    )
}

/// [`classify`] with what is known of the project's dbt folders.
pub(super) fn classify_in(
    root: &Path,
    rel: &Path,
    mage_project: bool,
    selection: &Selection,
    dbt: &mut DbtFolders,
) -> (Role, Option<Diagnostic>) {
    if selection.is_explicit() {
        return (Role::Render, None);
    }
    let role = mage_selection::default_role(rel, mage_project, dbt.place(root, rel, mage_project));
    if role == Role::Render && mage_project && mage_selection::is_pipeline_metadata(rel) {
        let warning = fs::read_to_string(root.join(rel))
            .ok()
            .and_then(|text| mage_selection::pipeline_fields_warning(&text));
        if let Some(w) = warning {
            return (
                Role::Copy(NotRendered::PipelineFields),
                Some(w.in_file(rel)),
            );
        }
    }
    (role, None)
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
        project.add(&location.rel, selection);
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
    walker.visit(&start_abs, &location.rel, absolute(&start_abs));
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

    /// Walks the folder at `dir` (as reached), `rel` from the root, `real`
    /// its real path (a folder reached by a name that is not a link is its
    /// parent's real path and that name: no system call needed).
    fn visit(&mut self, dir: &Path, rel: &Path, real: PathBuf) {
        // Each entry with its name, taken once (a name is a new string each
        // time it is asked for); names in a folder are unique.
        let mut entries: Vec<(std::ffi::OsString, fs::DirEntry)> = match fs::read_dir(dir) {
            Ok(list) => list
                .filter_map(std::result::Result::ok)
                .map(|e| (e.file_name(), e))
                .collect(),
            Err(e) => {
                self.problem(rel, format!("cannot read folder: {e}"));
                return;
            }
        };
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if !rel.as_os_str().is_empty() && entries.iter().any(|(name, _)| name == OUTPUT_MARKER) {
            return;
        }
        self.ancestors.push(real.clone());
        for (name, entry) in entries {
            let child_rel = rel.join(&name);
            let path = || dir.join(&name);
            let Ok(mut file_type) = entry.file_type() else {
                continue;
            };
            let mut link_target = None;
            if file_type.is_symlink() {
                let path = path();
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
                let child_real = link_target.unwrap_or_else(|| real.join(&name));
                self.visit(&path(), &child_rel, child_real);
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
            self.project.add(&child_rel, self.selection);
            self.project
                .read
                .push(link_target.unwrap_or_else(|| real.join(&name)));
        }
        self.ancestors.pop();
    }
}
