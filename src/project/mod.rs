//! Which files of a project are read. The Mage project root is found first
//! (the nearest folder at or above the given path holding `io_config.yaml` or
//! a `metadata.yaml` with `project_type`), so pipeline scopes and paths are
//! the same whichever part of the project is named. Below the given path:
//! every `*.yaml`/`*.yml` (or what `--include` selects), less hidden and
//! build folders, output folders (marked by [`OUTPUT_MARKER`]) and
//! `--exclude`. Each selected file is rendered when Mage renders it and
//! copied as is otherwise (see [`crate::mage_selection`]). Symbolic links are
//! followed, as Mage follows them, except folder links that leave the project
//! or loop; what the walk skips is recorded so it can be reported once.
//! Problems met on the way (an unreadable folder) are recorded, not fatal, so
//! one run reports them all.

use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::diagnostic::{Diagnostic, Kind};
use crate::error::{Error, Result};
use crate::mage_selection::{self, NotRendered, Role};
use crate::secret::Scope;

mod walk;

pub use walk::{classify, dbt_place, is_project_root, walk, walk_located, Location};

/// Folder names never entered (besides hidden ones).
const SKIPPED_DIRS: &[&str] = &[
    "__pycache__",
    "node_modules",
    "target",
    "venv",
    "dbt_packages",
    "logs",
];

/// The file written into every output root. A folder holding it is never
/// read as templates, wherever it lies.
pub const OUTPUT_MARKER: &str = ".mage-secrets-output";

/// Why the walk left something out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A folder whose name is skipped (`logs`, `target`, `venv`, …).
    FolderName,
    /// A link to a folder outside the project.
    LinkOutside,
    /// A link to a folder that holds the link (a loop).
    LinkLoop,
    /// A link whose target does not exist.
    LinkDangling,
}

impl SkipReason {
    fn describe(self) -> &'static str {
        match self {
            SkipReason::FolderName => "skipped folder name",
            SkipReason::LinkOutside => "link to a folder outside the project",
            SkipReason::LinkLoop => "link that loops back to a folder holding it",
            SkipReason::LinkDangling => "dangling link",
        }
    }
}

/// The selected files of a project.
#[derive(Debug, Default)]
pub struct ProjectFiles {
    /// The project root, absolute.
    pub root: PathBuf,
    /// The path that was walked, relative to the root (empty: the whole project).
    pub start: PathBuf,
    /// Whether the root is a Mage project (else every YAML file is config).
    pub mage_project: bool,
    /// Files to render, relative to the root, sorted.
    pub files: Vec<PathBuf>,
    /// Files copied as they are (Mage does not render them), sorted.
    pub copies: Vec<(PathBuf, NotRendered)>,
    pub diagnostics: Vec<Diagnostic>,
    /// What the walk left out, and why.
    pub skipped: Vec<(PathBuf, SkipReason)>,
    /// Paths are shown relative to this folder (the current one).
    pub display_base: Option<PathBuf>,
    /// Absolute paths of every file the walk selected (through links).
    pub read: Vec<PathBuf>,
    /// The project's dbt folders, as far as the walk asked.
    pub(crate) dbt: walk::DbtFolders,
}

impl ProjectFiles {
    /// Adds a selected file, to render or to copy as Mage's rules say; a
    /// warning about its content is kept with the walk's diagnostics.
    pub fn add(&mut self, rel: &Path, selection: &Selection) {
        let (role, warning) =
            walk::classify_in(&self.root, rel, self.mage_project, selection, &mut self.dbt);
        match role {
            Role::Render => self.files.push(rel.to_path_buf()),
            Role::Copy(why) => self.copies.push((rel.to_path_buf(), why)),
        }
        self.diagnostics.extend(warning);
    }

    /// The one warning about the copied files that name `mage_secret_var`
    /// (their calls would reach dbt or Mage unresolved), read from disk.
    pub fn unrendered_secret_warning(&self) -> Option<Diagnostic> {
        let mentions: Vec<(&Path, NotRendered)> = self
            .copies
            .iter()
            .filter(|(rel, _)| fs::read(self.root.join(rel)).is_ok_and(|b| mentions_secret(&b)))
            .map(|(rel, why)| (rel.as_path(), *why))
            .collect();
        unrendered_warning(self, &mentions)
    }

    /// The scope chain of one of the files.
    pub fn chain(&self, rel: &Path) -> Vec<Scope> {
        scope_chain(rel)
    }

    /// A root-relative path as shown to the user: relative to the current
    /// folder when below it, else absolute.
    pub fn display_path(&self, rel: &Path) -> PathBuf {
        let abs = self.root.join(rel);
        match &self.display_base {
            Some(base) => relative_to(&abs, base),
            None => abs,
        }
    }

    /// Rewrites the file of each diagnostic (root-relative) as shown to the user.
    pub fn localize(&self, diagnostics: &mut [Diagnostic]) {
        for d in diagnostics {
            if let Some(file) = &d.file {
                d.file = Some(self.display_path(file));
            }
        }
    }

    /// Every file the walk found, rendered or copied, sorted.
    pub fn outputs(&self) -> Vec<&Path> {
        let mut all: Vec<&Path> = self
            .files
            .iter()
            .map(PathBuf::as_path)
            .chain(self.copies.iter().map(|(p, _)| p.as_path()))
            .collect();
        all.sort();
        all
    }

    /// One line saying what the walk skipped and why, when it skipped
    /// anything worth knowing.
    pub fn skip_summary(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for reason in [
            SkipReason::FolderName,
            SkipReason::LinkOutside,
            SkipReason::LinkLoop,
            SkipReason::LinkDangling,
        ] {
            let paths: Vec<String> = self
                .skipped
                .iter()
                .filter(|(_, r)| *r == reason)
                .map(|(p, _)| self.display_path(p).display().to_string())
                .collect();
            if paths.is_empty() {
                continue;
            }
            let shown = paths.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = if paths.len() > 5 {
                format!(" and {} more", paths.len() - 5)
            } else {
                String::new()
            };
            parts.push(format!("{} ({shown}{more})", reason.describe()));
        }
        Some(format!(
            "skipped {} path(s): {}; files there are not read",
            self.skipped.len(),
            parts.join("; ")
        ))
    }

    /// The message when nothing that Mage renders is selected.
    pub fn nothing_selected(&self, path: &Path, selection: &Selection) -> Error {
        let copies = if self.copies.is_empty() {
            String::new()
        } else {
            format!(
                "; {} YAML file(s) were found that Mage does not render (dbt's own files, files Mage reads without Jinja)",
                self.copies.len()
            )
        };
        Error::NothingSelected(format!(
            "nothing to render in {}: no file matches the selection ({}){copies}. Check the path, or select files with --include GLOB",
            path.display(),
            selection.describe()
        ))
    }
}

/// `path` relative to `base` (both absolute), with `..` where it lies
/// outside; `.` for `base` itself.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let path_parts: Vec<Component> = path.components().collect();
    let base_parts: Vec<Component> = base.components().collect();
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..base_parts.len() {
        out.push("..");
    }
    for part in &path_parts[common..] {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The rules that decide which files are selected.
#[derive(Clone, Debug)]
pub struct Selection {
    include: Option<GlobSet>,
    include_globs: Vec<String>,
    exclude: GlobSet,
    exclude_globs: Vec<String>,
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
            include_globs: Vec::new(),
            exclude: GlobSet::empty(),
            exclude_globs: Vec::new(),
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
            include_globs: include.to_vec(),
            exclude: glob_set(exclude, "--exclude")?,
            exclude_globs: exclude.to_vec(),
        })
    }

    /// Whether `--include` chose the files (then each is rendered).
    /// The same exclusions, selecting Mage's SQL and Python blocks instead:
    /// `check` reads the secrets they name.
    pub fn blocks(&self) -> Result<Selection> {
        Selection::new(
            &["**/*.sql".to_string(), "**/*.py".to_string()],
            &self.exclude_globs,
        )
    }

    pub fn is_explicit(&self) -> bool {
        self.include.is_some()
    }

    /// Whether a project-relative file path is selected.
    pub fn selects(&self, rel: &Path) -> bool {
        let chosen = match &self.include {
            Some(set) => set.is_match(rel),
            None => is_yaml(rel),
        };
        chosen && !self.exclude.is_match(rel)
    }

    /// Whether a hidden folder is entered: only when an `--include` glob
    /// names a path inside it.
    fn enters_hidden(&self, rel_dir: &Path) -> bool {
        let prefix = format!("{}/", rel_dir.display());
        self.include_globs.iter().any(|g| g.starts_with(&prefix))
    }

    /// The selection in words, for messages.
    pub fn describe(&self) -> String {
        let mut text = if self.include_globs.is_empty() {
            "*.yaml and *.yml".to_string()
        } else {
            format!("--include {}", self.include_globs.join(", "))
        };
        if !self.exclude_globs.is_empty() {
            text.push_str(&format!(", --exclude {}", self.exclude_globs.join(", ")));
        }
        text.push_str(
            "; hidden files and folders, output folders and __pycache__, node_modules, target, venv, dbt_packages, logs are skipped",
        );
        text
    }
}

/// Whether a path names a YAML file.
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Whether a selected file's text is a YAML document: every YAML file but
/// a dbt command block (`dbts/…`), whose text Mage splits into shell words
/// (`models/block/dbt/block_yaml.py`, `shlex.split`), never parses as YAML.
pub fn is_yaml_document(rel: &Path) -> bool {
    is_yaml(rel) && !mage_selection::is_dbt_command_block(rel)
}

/// The options for rendering one file: a dbt command block gets Mage's
/// exact bytes (`raw`), as Mage pastes them into the command line.
pub fn file_options<'o>(
    rel: &Path,
    options: &'o crate::template::RenderOptions,
) -> std::borrow::Cow<'o, crate::template::RenderOptions> {
    if mage_selection::is_dbt_command_block(rel) && !options.raw {
        let mut raw = options.clone();
        raw.raw = true;
        std::borrow::Cow::Owned(raw)
    } else {
        std::borrow::Cow::Borrowed(options)
    }
}

/// Whether a folder (or file) name is skipped by the walk.
pub fn is_skipped_name(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

/// Whether a project-relative folder is skipped for its name: hidden, or a
/// build folder name — except a pipeline's own folder (`pipelines/logs` is
/// a pipeline called `logs`, which Mage reads).
fn is_skipped_folder(rel: &Path) -> bool {
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    if name.starts_with('.') {
        return true;
    }
    let pipeline_folder = rel.parent().is_some_and(|p| p == Path::new("pipelines"));
    SKIPPED_DIRS.contains(&name) && !pipeline_folder
}

/// Whether a project-relative path lies in a skipped folder or is hidden.
pub fn is_skipped_path(rel: &Path) -> bool {
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => {
                prefix.push(n);
                if n.to_str().is_none() {
                    return true;
                }
                if n.to_str().is_some_and(|n| n.starts_with('.')) || is_skipped_folder(&prefix) {
                    return true;
                }
            }
            _ => continue,
        }
    }
    false
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

/// `path` made absolute and free of `.`/`..`, as the system will resolve
/// it once its missing folders are made: one component at a time, each
/// prefix that exists resolved by the system (links followed), a missing
/// name applied as text (a folder made there is no link), `..` taken from
/// what was resolved so far. (`new/../link/..` is the parent of the link's
/// target, not the folder holding `link`.)
pub fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in abs.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            std::path::Component::Normal(name) => {
                out.push(name);
                if let Ok(real) = fs::canonicalize(&out) {
                    out = real;
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether a file's text names `mage_secret_var`.
pub fn mentions_secret(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"mage_secret_var").is_some()
}

/// The one warning about files that name `mage_secret_var` although Mage
/// does not render them (their calls would reach dbt or Mage unresolved),
/// each file with its reason. A pipeline's `metadata.yaml` has a warning of
/// its own, at the place.
pub fn unrendered_warning(
    project: &ProjectFiles,
    files: &[(&Path, NotRendered)],
) -> Option<Diagnostic> {
    let reasons: Vec<(&Path, NotRendered)> = files
        .iter()
        .filter(|(_, why)| *why != NotRendered::PipelineFields)
        .copied()
        .collect();
    if reasons.is_empty() {
        return None;
    }
    let mut groups: Vec<(NotRendered, Vec<String>)> = Vec::new();
    for (rel, why) in reasons.iter().take(8) {
        let shown = project.display_path(rel).display().to_string();
        match groups.iter_mut().find(|(w, _)| w == why) {
            Some((_, paths)) => paths.push(shown),
            None => groups.push((*why, vec![shown])),
        }
    }
    let listed: Vec<String> = groups
        .iter()
        .map(|(why, paths)| format!("{} ({})", paths.join(", "), why.reason()))
        .collect();
    let more = if reasons.len() > 8 {
        format!("; and {} more", reasons.len() - 8)
    } else {
        String::new()
    };
    Some(
        Diagnostic::warning(
            Kind::NotRendered,
            format!(
                "mage_secret_var appears in {} file(s) that Mage does not render, so it would reach dbt or Mage unresolved: {}{more}; they are copied as they are",
                reasons.len(),
                listed.join("; "),
            ),
        )
        .with_help("move the secret into a file Mage renders (dbt: the profiles.yml beside dbt_project.yml), or render the file anyway with --include GLOB".to_string()),
    )
}

/// Reads a project file as text: not binary, valid UTF-8.
pub fn read_text(root: &Path, rel: &Path) -> std::result::Result<String, Box<Diagnostic>> {
    let problem = |message: String| Box::new(Diagnostic::error(Kind::File, message).in_file(rel));
    // (`fs::read` sizes its buffer from the file: one allocation, no copy
    // of the text left behind by a reallocation.)
    let bytes = fs::read(root.join(rel)).map_err(|e| problem(format!("cannot read: {e}")))?;
    if let Some(pos) = memchr::memchr(0, &bytes) {
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
    fn paths_are_shown_relative_to_the_current_folder() {
        let rel = |p: &str, b: &str| relative_to(Path::new(p), Path::new(b));
        assert_eq!(rel("/r/p/a.yaml", "/r"), PathBuf::from("p/a.yaml"));
        assert_eq!(rel("/r/p/a.yaml", "/r/p/x"), PathBuf::from("../a.yaml"));
        assert_eq!(rel("/r", "/r"), PathBuf::from("."));
        assert_eq!(rel("/a/b", "/c/d"), PathBuf::from("../../a/b"));
    }

    #[test]
    fn skipped_folders_and_hidden_paths() {
        assert!(is_skipped_path(Path::new(".git/config.yaml")));
        assert!(is_skipped_path(Path::new("a/node_modules/x.yaml")));
        assert!(!is_skipped_path(Path::new("pipelines/etl/metadata.yaml")));
        // A pipeline may be called like a build folder.
        assert!(!is_skipped_path(Path::new("pipelines/logs/metadata.yaml")));
        assert!(is_skipped_path(Path::new("pipelines/logs/logs/x.yaml")));
    }
}
