//! `watch`: render a project once, then keep its outputs following the
//! templates and the secret store. File events are filtered (`filter`: its
//! own writes go to the output folder, whose events are ignored), batched
//! with a trailing-edge debounce (`debounce`), and only the files in a batch
//! are rendered again; a change in the store made by another process
//! re-renders exactly the files that reference a changed name.
//!
//! Errors come in two kinds: a watch that cannot start (no watcher, the
//! first walk fails) is an error; anything after that (a file that fails,
//! an output that cannot be written, a store that cannot be read) is
//! reported to the observer and the watch goes on. A file that fails keeps
//! its last good output.

mod debounce;
mod events;
mod filter;
mod store;

pub use debounce::Debounce;
pub use events::{WatchEvent, WatchObserver, WatchOptions};
pub use filter::EventFilter;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use store::{snapshot, Outage, StoreSnapshot};

use crate::diagnostic::{Diagnostic, Kind};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::mage_selection::Role;
use crate::output;
use crate::project::{self, read_text, Location, ProjectFiles, Selection};
use crate::render;
use crate::template::analysis::Function;
use crate::template::Engine;

/// What the watcher knows of one source file.
#[derive(Debug, Default)]
struct FileState {
    referenced: HashSet<String>,
    computed_names: bool,
    /// The failure last reported, so it is reported once.
    failure: Option<String>,
}

/// A running watch over one project.
pub struct Watch<'o> {
    env: Environment,
    engine: Engine,
    /// The project root: outputs are laid out from it, as `render` lays
    /// them out.
    root: PathBuf,
    /// The folder watched, relative to the root (empty: the whole project).
    start: PathBuf,
    out: PathBuf,
    filter: EventFilter,
    selection: Selection,
    /// Whether the root is a Mage project (which files Mage renders).
    mage_project: bool,
    options: WatchOptions,
    files: HashMap<PathBuf, FileState>,
    store: StoreSnapshot,
    store_counter: u64,
    observer: &'o mut dyn WatchObserver,
    changed_outputs: Vec<PathBuf>,
    outage: Option<Outage>,
    /// The project folder itself is gone: outputs are kept and the watch
    /// waits for it to come back.
    gone: bool,
}

impl<'o> Watch<'o> {
    pub fn new(
        env: Environment,
        root: &Path,
        out: &Path,
        options: WatchOptions,
        observer: &'o mut dyn WatchObserver,
    ) -> Result<Watch<'o>> {
        let selection = options.selection.clone();
        let location = Location::of(root)?;
        if location.is_file {
            return Err(Error::Usage(format!(
                "{} is a file; watch a project folder",
                root.display()
            )));
        }
        let first = project::walk_located(&location, &selection, Some(out))?;
        output::check_out_dir(&first, out)?;
        let mage_project = first.mage_project;
        let filter = EventFilter::new(&location.root, out).watching(root);
        let engine = env.engine();
        let store = snapshot(&env)?;
        let store_counter = env.store_change_counter()?;
        Ok(Watch {
            engine,
            root: location.root,
            start: location.rel,
            out: out.to_path_buf(),
            filter,
            selection,
            mage_project,
            options,
            files: HashMap::new(),
            store,
            store_counter,
            observer,
            changed_outputs: Vec::new(),
            outage: None,
            gone: false,
            env,
        })
    }

    /// The folder watched, absolute.
    fn watched(&self) -> PathBuf {
        self.root.join(&self.start)
    }

    /// Walks the watched folder, as `render` walks it.
    fn walk(&self, rel: &Path) -> Result<ProjectFiles> {
        let location = Location {
            root: self.root.clone(),
            rel: rel.to_path_buf(),
            mage_project: self.mage_project,
            is_file: false,
        };
        project::walk_located(&location, &self.selection, Some(&self.out))
    }

    /// Renders every file once.
    fn render_all(&mut self) -> Result<()> {
        crate::fsutil::create_dir_all(&self.out, output::folder_mode(self.options.mode))?;
        output::mark(&self.out, self.options.mode)?;
        output::remove_stale_temp_files(&self.out)?;
        // The rows were read (and preloaded) by `new`'s snapshot.
        let project = self.walk(&self.start.clone())?;
        // Warnings about a file's content come with the file, below.
        for d in project.diagnostics.iter().filter(|d| d.is_error()) {
            self.observer.event(WatchEvent::Failed(
                d.file.as_deref().unwrap_or(Path::new("")),
                std::slice::from_ref(d),
            ));
        }
        if let Some(w) = project.unrendered_secret_warning() {
            self.observer.event(WatchEvent::Warnings(&[w]));
        }
        let (mut failed, mut kept) = (0, 0);
        for rel in project.outputs().into_iter().map(Path::to_path_buf) {
            if !self.render_one(&project, &rel) {
                failed += 1;
                if self.out.join(&rel).is_file() {
                    kept += 1;
                }
            }
        }
        let files = self.files.len();
        self.observer.event(WatchEvent::Ready {
            files,
            written: self.changed_outputs.len(),
            failed,
            kept,
        });
        if self.options.initial_exec && files - failed + kept > 0 {
            self.run_exec();
        }
        self.changed_outputs.clear();
        Ok(())
    }

    /// Copies a file Mage does not render to its output, byte for byte.
    fn copy_one(&mut self, rel: &Path) -> bool {
        let state = self.files.entry(rel.to_path_buf()).or_default();
        let written = match std::fs::read(self.root.join(rel)) {
            Ok(bytes) => render::write_output(&self.out, rel, &bytes, self.options.mode)
                .map_err(|e| Diagnostic::error(Kind::Output, e.to_string())),
            Err(e) => Err(Diagnostic::error(Kind::File, format!("cannot read: {e}"))),
        };
        match written {
            Ok(written) => {
                if state.failure.take().is_some() {
                    self.observer.event(WatchEvent::Recovered(rel));
                }
                if written {
                    let target = self.out.join(rel);
                    self.observer.event(WatchEvent::Written(&target));
                    self.changed_outputs.push(target);
                }
                true
            }
            Err(d) => {
                report_failure(self.observer, state, rel, &[d.in_file(rel)]);
                false
            }
        }
    }

    /// Renders one file and writes its output; whether it succeeded. A
    /// failure is reported, never returned: it cannot end the watch.
    fn render_one(&mut self, project: &ProjectFiles, rel: &Path) -> bool {
        let (role, warning) =
            project::classify(&self.root, rel, self.mage_project, &self.selection);
        if let Role::Copy(_) = role {
            if let Some(w) = warning {
                self.observer.event(WatchEvent::Warnings(&[w]));
            }
            return self.copy_one(rel);
        }
        let outcome = read_text(&self.root, rel).map(zeroize::Zeroizing::new);
        let state = self.files.entry(rel.to_path_buf()).or_default();
        let source = match outcome {
            Ok(s) => s,
            Err(d) => {
                report_failure(self.observer, state, rel, &[*d]);
                return false;
            }
        };
        let chain = project.chain(rel);
        let file = self.engine.render(
            rel,
            &source,
            &chain,
            &project::file_options(rel, &self.options.render),
            project::is_yaml_document(rel),
        );
        state.referenced.clear();
        state.computed_names = false;
        for r in file
            .references
            .iter()
            .filter(|r| r.function == Function::SecretVar)
        {
            match &r.name {
                Some(name) => {
                    state.referenced.insert(name.clone());
                }
                None => state.computed_names = true,
            }
        }
        let (output, warnings) = match file.into_output() {
            Ok(rendered) => rendered,
            Err(Error::Render(diagnostics)) => {
                report_failure(self.observer, state, rel, &diagnostics);
                return false;
            }
            Err(e) => {
                let d = Diagnostic::error(Kind::Render, e.to_string()).in_file(rel);
                report_failure(self.observer, state, rel, &[d]);
                return false;
            }
        };
        if !warnings.is_empty() {
            self.observer.event(WatchEvent::Warnings(&warnings));
        }
        let written =
            match render::write_output(&self.out, rel, output.as_bytes(), self.options.mode) {
                Ok(written) => written,
                Err(e) => {
                    let d = Diagnostic::error(Kind::Output, e.to_string()).in_file(rel);
                    report_failure(self.observer, state, rel, &[d]);
                    return false;
                }
            };
        if state.failure.take().is_some() {
            self.observer.event(WatchEvent::Recovered(rel));
        }
        if written {
            let target = self.out.join(rel);
            self.observer.event(WatchEvent::Written(&target));
            self.changed_outputs.push(target);
        }
        true
    }

    /// Handles one batch of changed paths (project-relative). Problems are
    /// reported; none ends the watch.
    fn process_paths(&mut self, paths: BTreeSet<PathBuf>) {
        // The whole project went away (a checkout, an `rm -rf` and clone):
        // its files' deletions are not edits, and its outputs stay.
        let watched = self.watched();
        if !watched.is_dir() {
            if !self.gone {
                self.gone = true;
                self.observer.event(WatchEvent::ProjectGone(&watched));
            }
            return;
        }
        let mut candidates: BTreeSet<PathBuf> = BTreeSet::new();
        for rel in paths {
            let abs = self.root.join(&rel);
            if is_dbt_marker(&rel) {
                // A dbt project appeared or went: every file of its folder
                // may change owner (Mage's or dbt's), as a render decides.
                let folder = rel.parent().unwrap_or(Path::new("")).to_path_buf();
                candidates.extend(
                    self.files
                        .keys()
                        .filter(|k| k.starts_with(&folder))
                        .cloned(),
                );
                match self.walk(&folder) {
                    Ok(sub) => candidates.extend(sub.outputs().into_iter().map(Path::to_path_buf)),
                    Err(e) => self.observer.event(WatchEvent::Problem(e.to_string())),
                }
            }
            // Files we know under a path that moved or vanished.
            candidates.extend(
                self.files
                    .keys()
                    .filter(|k| k.starts_with(&rel) && **k != rel)
                    .cloned(),
            );
            if abs.is_dir() && !abs.is_symlink() {
                // A folder appeared (or moved in): everything below it that
                // a render writes, rendered or copied.
                match self.walk(&rel) {
                    Ok(sub) => candidates.extend(sub.outputs().into_iter().map(Path::to_path_buf)),
                    Err(e) => self.observer.event(WatchEvent::Problem(e.to_string())),
                }
            } else {
                candidates.insert(rel);
            }
        }
        let project = ProjectFiles {
            root: self.root.clone(),
            ..ProjectFiles::default()
        };
        for rel in candidates {
            let abs = self.root.join(&rel);
            let meta = std::fs::symlink_metadata(&abs);
            let selected = self.selection.selects(&rel);
            match meta {
                Ok(m) if m.is_file() && selected => {
                    self.render_one(&project, &rel);
                }
                _ => {
                    if self.files.remove(&rel).is_some() {
                        self.remove_output(&rel);
                    }
                }
            }
        }
    }

    fn remove_output(&mut self, rel: &Path) {
        let target = self.out.join(rel);
        match std::fs::remove_file(&target) {
            Ok(()) => {
                self.observer.event(WatchEvent::Removed(&target));
                // Folders the removal left empty go too (never the output
                // root, which holds the marker).
                for folder in rel.ancestors().skip(1) {
                    if folder.as_os_str().is_empty()
                        || std::fs::remove_dir(self.out.join(folder)).is_err()
                    {
                        break;
                    }
                }
                self.changed_outputs.push(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.observer.event(WatchEvent::Problem(format!(
                "cannot remove {}: {e}",
                target.display()
            ))),
        }
    }

    /// After the project came back: every file it has now is rendered,
    /// and the outputs of files it no longer has are removed.
    pub(super) fn render_again_all(&mut self) {
        let project = match self.walk(&self.start.clone()) {
            Ok(p) => p,
            Err(e) => {
                self.observer.event(WatchEvent::Problem(e.to_string()));
                return;
            }
        };
        let now: std::collections::HashSet<PathBuf> = project
            .outputs()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|k| !now.contains(*k))
            .cloned()
            .collect();
        for rel in gone {
            self.files.remove(&rel);
            self.remove_output(&rel);
        }
        let mut all: Vec<PathBuf> = now.into_iter().collect();
        all.sort();
        for rel in all {
            self.render_one(&project, &rel);
        }
    }

    fn render_again(&mut self, files: Vec<PathBuf>) {
        let project = ProjectFiles {
            root: self.root.clone(),
            ..ProjectFiles::default()
        };
        for rel in files {
            if self.root.join(&rel).is_file() {
                self.render_one(&project, &rel);
            }
        }
    }

    /// Reports the batch and runs `--exec` when it changed an output.
    fn finish_batch(&mut self) {
        self.observer.event(WatchEvent::BatchDone {
            written: self.changed_outputs.len(),
        });
        if self.changed_outputs.is_empty() {
            return;
        }
        self.run_exec();
        self.changed_outputs.clear();
    }

    /// Runs `--exec`, the outputs written since the last run in
    /// `MAGE_SECRETS_CHANGED`.
    fn run_exec(&mut self) {
        let changed = &self.changed_outputs;
        let Some(cmd) = &self.options.exec else {
            return;
        };
        let list = changed
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        match std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("MAGE_SECRETS_CHANGED", list)
            .status()
        {
            Ok(status) if status.success() => {}
            Ok(status) => self.observer.event(WatchEvent::ExecFailed(format!(
                "--exec command failed ({status})"
            ))),
            Err(e) => self.observer.event(WatchEvent::ExecFailed(format!(
                "--exec command could not start: {e}"
            ))),
        }
    }

    /// Renders every file, then watches until `stop` is set; the batch in
    /// progress is finished first. The watch starts before the first render,
    /// so no edit made meanwhile is missed.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |res| {
            let _ = tx.send(res);
        })
        .map_err(|e| Error::Setup(format!("cannot watch {}: {e}", self.root.display())))?;
        watcher
            .watch(self.filter.root(), RecursiveMode::Recursive)
            .map_err(|e| Error::Setup(format!("cannot watch {}: {e}", self.root.display())))?;
        self.render_all()?;
        let idle = self.options.debounce.max(Duration::from_millis(10));
        let mut debounce = Debounce::new(self.options.debounce);
        let mut batch: BTreeSet<PathBuf> = BTreeSet::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let quiet = match rx.recv_timeout(debounce.wait(Instant::now(), idle)) {
                Ok(event) => {
                    if self.collect(event, &mut batch) {
                        debounce.event(Instant::now());
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => !debounce.pending(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Events of the folder itself (moved or deleted) are not
            // always the project's: its presence is looked at directly.
            let watched = self.watched();
            if !self.gone && !watched.is_dir() {
                self.gone = true;
                batch.clear();
                self.observer.event(WatchEvent::ProjectGone(&watched));
            }
            if self.gone && watched.is_dir() {
                // Watch the new folder (the old watch went with the old one).
                let _ = watcher.unwatch(self.filter.root());
                if watcher
                    .watch(self.filter.root(), RecursiveMode::Recursive)
                    .is_ok()
                {
                    self.gone = false;
                    batch.clear();
                    self.observer.event(WatchEvent::ProjectBack(&watched));
                    self.render_again_all();
                }
            }
            let due = debounce.take_due(Instant::now());
            if due {
                self.process_paths(std::mem::take(&mut batch));
            }
            if due || quiet {
                self.after_batch();
            }
        }
        if !batch.is_empty() {
            self.process_paths(batch);
            self.after_batch();
        }
        Ok(())
    }

    /// What follows a batch or a quiet period: the store's changes, then
    /// `--exec`.
    /// Adds an event's relevant paths to the batch; whether any was relevant.
    fn collect(
        &mut self,
        event: notify::Result<notify::Event>,
        batch: &mut BTreeSet<PathBuf>,
    ) -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                self.observer
                    .event(WatchEvent::Problem(format!("watch error: {e}")));
                return false;
            }
        };
        let paths = self.filter.relevant_paths(&event);
        let any = !paths.is_empty();
        batch.extend(paths);
        any
    }
}

fn report_failure(
    observer: &mut dyn WatchObserver,
    state: &mut FileState,
    rel: &Path,
    diagnostics: &[Diagnostic],
) {
    let fingerprint = diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if state.failure.as_deref() != Some(fingerprint.as_str()) {
        observer.event(WatchEvent::Failed(rel, diagnostics));
        state.failure = Some(fingerprint);
    }
}

/// Sets the returned flag on Ctrl-C or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Setup(format!("cannot install the signal handler: {e}")))?;
    Ok(stop)
}

#[cfg(test)]
mod tests;

/// `dbt_project.yml` / `.yaml`: the file that makes its folder dbt's.
fn is_dbt_marker(rel: &Path) -> bool {
    rel.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| crate::mage_selection::DBT_PROJECT_FILES.contains(&n))
}
