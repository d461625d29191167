//! Rendering a project: read every selected file, render it in memory, and
//! only when every file succeeded write the outputs, each atomically (a
//! temporary file beside its target, then a rename), leaving files whose
//! bytes are unchanged alone. A failure lists every problem and writes
//! nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::diagnostic::{Diagnostic, Kind};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::output;
use crate::parallel::{in_parallel, in_parallel_ticking, no_tick, Tick};
use crate::project::{self, read_text, ProjectFiles, Selection};
use crate::secret::{Scope, SecretValue};
use crate::template::{Engine, ProcessEnv, RenderMode, RenderOptions, SecretSource};

/// One rendered file, in memory. Its contents hold secret values: they are
/// wiped when dropped and never shown by `Debug`.
pub struct RenderedFile {
    /// Path relative to the project root.
    pub path: PathBuf,
    pub contents: Zeroizing<String>,
    pub mode: RenderMode,
    /// Secret names whose values the contents hold.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("secrets", &self.secrets)
            .field("len", &self.contents.len())
            .finish_non_exhaustive()
    }
}

/// Every file of a project rendered, or the problems that stopped them.
#[derive(Debug, Default)]
pub struct ProjectRender {
    pub files: Vec<RenderedFile>,
    /// Files Mage does not render, with their bytes, written as they are.
    pub copies: Vec<(PathBuf, Vec<u8>)>,
    /// Errors and warnings of every file, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ProjectRender {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads and renders the `i`th file of `project`.
fn render_one(
    engine: &Engine,
    project: &ProjectFiles,
    options: &RenderOptions,
    i: usize,
) -> std::result::Result<crate::template::FileRender, Box<Diagnostic>> {
    let rel = &project.files[i];
    let source = Zeroizing::new(read_text(&project.root, rel)?);
    let chain = project.chain(rel);
    Ok(engine.render(
        rel,
        &source,
        &chain,
        &project::file_options(rel, options),
        project::is_yaml_document(rel),
    ))
}

/// Renders every file of `project` with `engine`, on every core, and reads
/// the files it copies. Paths in the diagnostics are as shown to the user.
pub fn render_files(
    engine: &Engine,
    project: &ProjectFiles,
    options: &RenderOptions,
    tick: Tick<'_>,
) -> ProjectRender {
    let outcomes = in_parallel_ticking(project.files.len(), tick, |i| {
        render_one(engine, project, options, i)
    });
    let mut result = ProjectRender {
        files: Vec::with_capacity(project.files.len()),
        copies: Vec::with_capacity(project.copies.len()),
        diagnostics: project.diagnostics.clone(),
    };
    for (rel, outcome) in project.files.iter().zip(outcomes) {
        let file: crate::template::FileRender = match outcome {
            Err::<_, Box<Diagnostic>>(d) => {
                result.diagnostics.push(*d);
                continue;
            }
            Ok(file) => file,
        };
        result.diagnostics.extend(file.diagnostics);
        if let Some(output) = file.output {
            result.files.push(RenderedFile {
                path: rel.clone(),
                contents: Zeroizing::new(output),
                mode: file.mode,
                secrets: file.secrets,
            });
        }
    }
    let failed = AtomicBool::new(false);
    result.copies = read_copies(project, &mut result.diagnostics, &failed, |rel, bytes| {
        (rel.to_path_buf(), bytes)
    });
    project.localize(&mut result.diagnostics);
    result
}

/// Reads every file `project` copies, on every core, handing each one's
/// bytes to `each` from the worker that read it; a file that cannot be
/// read is an error in `diagnostics`, and sets `failed` at once. `each`'s
/// results in file order (none for a file not read). Ends with the warning
/// for copies that mention a secret.
fn read_copies<T: Send>(
    project: &ProjectFiles,
    diagnostics: &mut Vec<Diagnostic>,
    failed: &AtomicBool,
    each: impl Fn(&Path, Vec<u8>) -> T + Sync,
) -> Vec<T> {
    let read = in_parallel(project.copies.len(), |i| {
        let (rel, why) = &project.copies[i];
        let rel = rel.as_path();
        match fs::read(project.root.join(rel)) {
            Ok(bytes) => {
                let mentions = project::mentions_secret(&bytes);
                Ok((each(rel, bytes), mentions.then_some((rel, *why))))
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                Err(Box::new(
                    Diagnostic::error(Kind::File, format!("cannot read: {e}")).in_file(rel),
                ))
            }
        }
    });
    let mut results = Vec::with_capacity(read.len());
    let mut mentions: Vec<(&Path, crate::mage_selection::NotRendered)> = Vec::new();
    for outcome in read {
        match outcome {
            Ok((result, mention)) => {
                results.push(result);
                mentions.extend(mention);
            }
            Err(d) => diagnostics.push(*d),
        }
    }
    diagnostics.extend(project::unrendered_warning(project, &mentions));
    results
}

/// What [`render_files_into`] did: the diagnostics of every file (in file
/// order), and how many files it rendered and copied.
#[derive(Debug, Default)]
pub struct StreamedRender {
    pub diagnostics: Vec<Diagnostic>,
    pub rendered: usize,
    pub copied: usize,
}

impl StreamedRender {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// [`render_files`], handing each output (rendered, then copied) to `sink`
/// as soon as it is ready instead of holding them all. Rendered outputs go
/// to `sink` from the worker that rendered them (so each worker holds one
/// output at a time, and frees what it made); after the first failure (a
/// file's error, or the sink's) no more outputs are handed on; every
/// file's diagnostics are still gathered.
pub fn render_files_into(
    engine: &Engine,
    project: &ProjectFiles,
    options: &RenderOptions,
    tick: Tick<'_>,
    sink: impl Fn(&Path, &[u8]) -> Result<()> + Sync,
) -> Result<StreamedRender> {
    let failed = AtomicBool::new(false);
    let sink_error = Mutex::new(None);
    // An output goes to `sink` only while nothing has failed.
    let hand_on = |rel: &Path, bytes: &[u8]| {
        if failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = sink(rel, bytes) {
            failed.store(true, Ordering::Relaxed);
            sink_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }
    };
    let by_file = in_parallel_ticking(project.files.len(), tick, |i| {
        let file = match render_one(engine, project, options, i) {
            Err(d) => {
                failed.store(true, Ordering::Relaxed);
                return (vec![*d], false);
            }
            Ok(file) => file,
        };
        let output = file.output.map(Zeroizing::new);
        if file.diagnostics.iter().any(Diagnostic::is_error) {
            failed.store(true, Ordering::Relaxed);
        }
        let rendered = output.is_some();
        if let Some(output) = output {
            hand_on(&project.files[i], output.as_bytes());
        }
        (file.diagnostics, rendered)
    });
    let sink_failure = || {
        sink_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    };
    if let Some(e) = sink_failure() {
        return Err(e);
    }
    let mut result = StreamedRender {
        diagnostics: project.diagnostics.clone(),
        rendered: by_file.iter().filter(|(_, rendered)| *rendered).count(),
        copied: 0,
    };
    result
        .diagnostics
        .extend(by_file.into_iter().flat_map(|(diagnostics, _)| diagnostics));
    if result.diagnostics.iter().any(Diagnostic::is_error) {
        failed.store(true, Ordering::Relaxed);
    }
    result.copied = read_copies(project, &mut result.diagnostics, &failed, |rel, bytes| {
        hand_on(rel, &bytes);
    })
    .len();
    if let Some(e) = sink_failure() {
        return Err(e);
    }
    project.localize(&mut result.diagnostics);
    Ok(result)
}

/// Writes one output atomically, unless its bytes are already there (its
/// mode is then set). Returns whether it was written.
pub fn write_output(out_dir: &Path, rel: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    let target = out_dir.join(rel);
    if output::change_of(&target, contents)? == output::Change::Unchanged {
        output::keep_mode(&target, mode)?;
        return Ok(false);
    }
    if let Some(parent) = target.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            fsutil::create_dir_all(parent, output::folder_mode(mode))?;
        }
    }
    fsutil::replace_atomic_unsynced(&target, contents, mode)?;
    Ok(true)
}

/// Templates read secrets through the environment's cache.
impl SecretSource for Environment {
    fn lookup(&self, chain: &[Scope], name: &str) -> Result<Option<Arc<SecretValue>>> {
        self.lookup_value(chain, name)
    }

    fn environment(&self) -> &str {
        self.uuid()
    }
}

impl Environment {
    /// The template engine for this environment (one per run).
    pub fn engine(&self) -> Engine {
        Engine::new(Arc::new(self.clone()), Arc::new(ProcessEnv::default()))
    }

    /// Renders a template text (Mage's semantics, strict unless
    /// `options.lenient`) with global secrets.
    pub fn render_str(&self, template: &str, options: &RenderOptions) -> Result<String> {
        self.render_str_in_pipeline(template, None, options)
    }

    /// [`render_str`](Self::render_str) as a file of `pipeline` sees it:
    /// that pipeline's secrets first, then global.
    pub fn render_str_in_pipeline(
        &self,
        template: &str,
        pipeline: Option<&str>,
        options: &RenderOptions,
    ) -> Result<String> {
        let chain = Scope::from_pipeline(pipeline)?.chain();
        let (output, _warnings) = self
            .engine()
            .render(Path::new("<string>"), template, &chain, options, false)
            .into_output()?;
        Ok(output.to_string())
    }

    /// Renders a whole project in memory; every problem of every file, and
    /// the walk's, in the result.
    pub fn render_project_report(
        &self,
        root: &Path,
        selection: &Selection,
        options: &RenderOptions,
        out: Option<&Path>,
    ) -> Result<ProjectRender> {
        let project = project::walk_located(&project::Location::of(root)?, selection, out)?;
        self.render_walked(&project, options, &no_tick)
    }

    /// Renders the files of a walked project in memory, ticking as each
    /// file is done.
    pub fn render_walked(
        &self,
        project: &ProjectFiles,
        options: &RenderOptions,
        tick: Tick<'_>,
    ) -> Result<ProjectRender> {
        self.preload()?;
        Ok(render_files(&self.engine(), project, options, tick))
    }

    /// Renders a whole project in memory; `Error::Render` with every
    /// problem when any file fails.
    pub fn render_project(
        &self,
        root: &Path,
        options: &RenderOptions,
    ) -> Result<Vec<RenderedFile>> {
        let report = self.render_project_report(root, &Selection::default(), options, None)?;
        if report.has_errors() {
            return Err(Error::Render(report.diagnostics));
        }
        Ok(report.files)
    }

    /// The text Mage's YAML loader reads from an io_config: `path` is a
    /// project folder (its `io_config.yaml`, else `io_config.yml`) or the
    /// file itself, as Mage's `ConfigFileLoader(filepath)` takes it. The
    /// render is the one Mage's Jinja pass makes (no protection for a
    /// second pass: nothing renders this text again). Returns the file's
    /// path and its rendered text.
    pub fn render_io_config(&self, path: &Path) -> Result<(PathBuf, Zeroizing<String>)> {
        let file = if path.is_dir() {
            ["io_config.yaml", "io_config.yml"]
                .iter()
                .map(|name| path.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Error::NotFound(format!("no io_config.yaml in {}", path.display()))
                })?
        } else {
            path.to_path_buf()
        };
        let name = file
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| Error::NotFound(format!("{} is not a file", file.display())))?;
        let root = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let source = Zeroizing::new(read_text(root, &name).map_err(|d| Error::Render(vec![*d]))?);
        let (output, _warnings) = self
            .engine()
            .render(
                &file,
                &source,
                &project::scope_chain(&name),
                &RenderOptions {
                    direct: true,
                    ..RenderOptions::default()
                },
                true,
            )
            .into_output()?;
        Ok((file, output))
    }

    /// The rendered `profile` of an io_config ([`render_io_config`]'s
    /// `path`), parsed by serde_yaml: YAML 1.2's core schema, so `yes`,
    /// `0755` or a date stay strings where Mage's PyYAML (YAML 1.1) makes a
    /// bool, an int or a date. The Python package loads with PyYAML itself.
    ///
    /// [`render_io_config`]: Self::render_io_config
    pub fn load_io_config(&self, path: &Path, profile: &str) -> Result<serde_yaml::Value> {
        let (file, output) = self.render_io_config(path)?;
        // serde_yaml's message may quote the rendered text: not shown.
        let doc: serde_yaml::Value = serde_yaml::from_str(&output).map_err(|_| {
            Error::Render(vec![Diagnostic::error(
                Kind::Yaml,
                "rendered YAML does not parse with serde_yaml (YAML 1.2)",
            )
            .in_file(&file)])
        })?;
        match doc.get(profile) {
            Some(v) => Ok(v.clone()),
            None => {
                // Profiles as the file spells them at the start of a line: a
                // key a template made may hold a value, and is not shown.
                let source = fs::read_to_string(&file).unwrap_or_default();
                let spelled = |k: &str| {
                    source
                        .lines()
                        .any(|l| l.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
                };
                let names: Vec<String> = doc
                    .as_mapping()
                    .map(|m| {
                        m.iter()
                            .filter(|(_, v)| v.is_mapping())
                            .filter_map(|(k, _)| {
                                k.as_str().filter(|k| spelled(k)).map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Err(Error::NotFound(format!(
                    "profile '{profile}' is not in {}; profiles: {}",
                    file.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unchanged_outputs_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_output(dir.path(), Path::new("a/b.yaml"), b"x", 0o600).unwrap());
        let before = fs::metadata(dir.path().join("a/b.yaml"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!write_output(dir.path(), Path::new("a/b.yaml"), b"x", 0o600).unwrap());
        let after = fs::metadata(dir.path().join("a/b.yaml"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        assert!(write_output(dir.path(), Path::new("a/b.yaml"), b"y", 0o600).unwrap());
        assert_eq!(
            fs::metadata(dir.path().join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
