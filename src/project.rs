//! Which files of a project are rendered: every `*.yaml`/`*.yml` below the
//! root (or what `--include` selects), less hidden and build folders, the
//! output folder and `--exclude`. Links are not followed. Problems met on
//! the way (a link loop, an unreadable folder) are recorded, not fatal, so
//! one run reports them all.

use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::diagnostic::{Diagnostic, Kind};
use crate::error::{Error, Result};
use crate::secret::Scope;

/// Folder names never entered (besides hidden ones).
const SKIPPED_DIRS: &[&str] = &[
    "__pycache__",
    "node_modules",
    "target",
    "venv",
    "dbt_packages",
    "logs",
];

/// The selected files of a project.
#[derive(Debug, Default)]
pub struct ProjectFiles {
    pub root: PathBuf,
    /// Paths relative to the root, sorted.
    pub files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
    /// One file named on the command line rather than a walked project:
    /// its scope comes from its absolute path.
    pub single_file: bool,
}

impl ProjectFiles {
    /// One file, as named by the user.
    pub fn single(path: &Path) -> ProjectFiles {
        ProjectFiles {
            root: PathBuf::new(),
            files: vec![path.to_path_buf()],
            diagnostics: Vec::new(),
            single_file: true,
        }
    }

    /// The scope chain of one of the files.
    pub fn chain(&self, rel: &Path) -> Vec<Scope> {
        if self.single_file {
            scope_chain(&absolute(&self.root.join(rel)))
        } else {
            scope_chain(rel)
        }
    }
}

/// The rules that decide which files are selected.
#[derive(Clone, Debug)]
pub struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn glob_set(globs: &[String], flag: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g)
            .map_err(|e| Error::Usage(format!("invalid {flag} glob '{g}': {}", e.kind())))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::Usage(format!("invalid {flag} globs: {e}")))
}

/// Every YAML file (no `--include`, no `--exclude`).
impl Default for Selection {
    fn default() -> Selection {
        Selection {
            include: None,
            exclude: GlobSet::empty(),
        }
    }
}

impl Selection {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection {
            include: if include.is_empty() {
                None
            } else {
                Some(glob_set(include, "--include")?)
            },
            exclude: glob_set(exclude, "--exclude")?,
        })
    }

    /// Whether a project-relative file path is selected.
    pub fn selects(&self, rel: &Path) -> bool {
        let chosen = match &self.include {
            Some(set) => set.is_match(rel),
            None => is_yaml(rel),
        };
        chosen && !self.exclude.is_match(rel)
    }
}

/// Whether a path names a YAML file.
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Whether a folder (or file) name is skipped by the walk.
pub fn is_skipped_name(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

/// Whether a project-relative path lies in a skipped folder or is hidden.
pub fn is_skipped_path(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(n) => n.to_str().is_none_or(is_skipped_name),
        _ => false,
    })
}

/// The scope chain of a file: its pipeline (for `…/pipelines/<p>/…`), then global.
pub fn scope_chain(path: &Path) -> Vec<Scope> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect();
    let pipeline = (0..parts.len().saturating_sub(2))
        .rev()
        .find(|&i| parts[i] == "pipelines")
        .map(|i| parts[i + 1]);
    match pipeline.and_then(|p| Scope::from_pipeline(Some(p)).ok()) {
        Some(scope) => scope.chain(),
        None => vec![Scope::Global],
    }
}

/// `path` made absolute and free of `.`/`..` (through the file system where it exists).
pub fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    // Not there yet: resolve the nearest existing ancestor.
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while let Some(parent) = existing.parent() {
        rest.push(existing.file_name().map(PathBuf::from).unwrap_or_default());
        existing = parent;
        if let Ok(p) = fs::canonicalize(existing) {
            let mut out = p;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
    }
    abs
}

/// Walks `root`, skipping `out` (the output folder) wherever it lies.
pub fn walk(root: &Path, selection: &Selection, out: Option<&Path>) -> Result<ProjectFiles> {
    let meta = fs::metadata(root).map_err(|e| Error::io("read project folder", root, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("{} is not a folder", root.display())));
    }
    // The output folder, as a path relative to the root (when inside it).
    let root_abs = absolute(root);
    let out_rel = out
        .map(absolute)
        .and_then(|o| o.strip_prefix(&root_abs).ok().map(Path::to_path_buf));
    let mut project = ProjectFiles {
        root: root.to_path_buf(),
        ..ProjectFiles::default()
    };
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                project.diagnostics.push(
                    Diagnostic::error(
                        Kind::File,
                        format!("cannot read: {}", io_message(e.io_error())),
                    )
                    .in_file(&rel),
                );
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_path_buf();
        let file_type = entry.file_type();
        if file_type.is_dir() {
            let is_out = out_rel.as_deref() == Some(rel.as_path());
            if is_skipped_name(&name) || is_out {
                walker.skip_current_dir();
            }
            continue;
        }
        if name.starts_with('.') || !selection.selects(&rel) {
            continue;
        }
        if file_type.is_symlink() {
            let d = match fs::metadata(entry.path()) {
                Err(e) if e.raw_os_error() == Some(40) => Diagnostic::error(
                    Kind::File,
                    "is a symbolic link that loops (ELOOP); remove it or point it at a file",
                ),
                Err(_) => Diagnostic::warning(
                    Kind::File,
                    "is a dangling symbolic link; skipped (links are not followed)",
                ),
                Ok(_) => Diagnostic::warning(
                    Kind::File,
                    "is a symbolic link; skipped (links are not followed)",
                ),
            };
            project.diagnostics.push(d.in_file(&rel));
            continue;
        }
        if file_type.is_file() {
            project.files.push(rel);
        }
    }
    Ok(project)
}

fn io_message(e: Option<&std::io::Error>) -> String {
    match e {
        Some(e) => e.to_string(),
        None => "file system loop".to_string(),
    }
}

/// Reads a project file as text: not binary, valid UTF-8.
pub fn read_text(root: &Path, rel: &Path) -> std::result::Result<String, Box<Diagnostic>> {
    let problem = |message: String| Box::new(Diagnostic::error(Kind::File, message).in_file(rel));
    let bytes = fs::read(root.join(rel)).map_err(|e| problem(format!("cannot read: {e}")))?;
    if let Some(pos) = bytes.iter().position(|b| *b == 0) {
        return Err(problem(format!(
            "is a binary file (NUL byte at offset {pos}); exclude it with --exclude"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.into_bytes()[..offset]).into_owned();
        let (line, col) = crate::diagnostic::line_col(&text, offset);
        let d = problem("is not valid UTF-8 text; save it as UTF-8".into());
        Box::new(d.at(&text, line, col))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_chain_from_pipeline_folders() {
        let etl = vec![Scope::Pipeline("etl".into()), Scope::Global];
        assert_eq!(scope_chain(Path::new("pipelines/etl/metadata.yaml")), etl);
        assert_eq!(scope_chain(Path::new("pipelines/etl/blocks/x/y.yaml")), etl);
        assert_eq!(
            scope_chain(Path::new("/repo/proj/pipelines/etl/a.yaml")),
            etl
        );
        assert_eq!(
            scope_chain(Path::new("pipelines/readme.yaml")),
            vec![Scope::Global]
        );
        assert_eq!(
            scope_chain(Path::new("io_config.yaml")),
            vec![Scope::Global]
        );
    }

    #[test]
    fn selection_defaults_to_yaml_and_honours_globs() {
        let s = Selection::new(&[], &[]).unwrap();
        assert!(s.selects(Path::new("a/b.yaml")));
        assert!(s.selects(Path::new("b.yml")));
        assert!(!s.selects(Path::new("b.py")));
        let s = Selection::new(&["*.sql".into()], &["skip/**".into()]).unwrap();
        assert!(s.selects(Path::new("x/q.sql")));
        assert!(!s.selects(Path::new("x/q.yaml")));
        assert!(!s.selects(Path::new("skip/q.sql")));
        assert!(Selection::new(&["a[".into()], &[]).is_err());
    }

    #[test]
    fn skipped_folders_and_hidden_paths() {
        assert!(is_skipped_path(Path::new(".git/config.yaml")));
        assert!(is_skipped_path(Path::new("a/node_modules/x.yaml")));
        assert!(!is_skipped_path(Path::new("pipelines/etl/metadata.yaml")));
    }
}
