//! `watch`: render a project once, then keep its outputs following the
//! templates and the secret store. File events are batched with a
//! trailing-edge debounce and only the files in a batch are rendered again;
//! a change in the store made by another process re-renders exactly the
//! files that reference a changed name. A file that fails keeps its last
//! good output. Its own writes go to the output folder, whose events are
//! ignored.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::diagnostic::Diagnostic;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::project::{self, read_text, ProjectFiles, Selection};
use crate::render;
use crate::secret::Scope;
use crate::template::analysis::Function;
use crate::template::{Engine, RenderOptions};

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub render: RenderOptions,
    /// Output file permissions.
    pub mode: u32,
    /// Quiet period that ends a batch of file events.
    pub debounce: Duration,
    /// Shell command run after each batch that changed an output.
    pub exec: Option<String>,
}

/// What the watcher tells its observer.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// The first render is done.
    Ready { files: usize, failed: usize },
    /// An output was (re)written.
    Written(&'a Path),
    /// A source vanished and its output was removed.
    Removed(&'a Path),
    /// A file failed (printed once per distinct failure); its last good output is kept.
    Failed(&'a Path, &'a [Diagnostic]),
    /// A file that failed renders again.
    Recovered(&'a Path),
    /// Warnings of a file that rendered.
    Warnings(&'a [Diagnostic]),
    /// The secret store changed; these names differ.
    StoreChanged { names: &'a [String], files: usize },
    /// `--exec` ran and failed (or could not start).
    ExecFailed(String),
    /// A problem of the watcher itself that did not stop it.
    Problem(String),
}

/// Receives what the watcher does.
pub trait WatchObserver {
    fn event(&mut self, event: WatchEvent<'_>);
}

/// What the watcher knows of one source file.
#[derive(Debug, Default)]
struct FileState {
    referenced: HashSet<String>,
    computed_names: bool,
    /// The failure last reported, so it is reported once.
    failure: Option<String>,
}

/// Fingerprints of an environment's sealed rows: any write changes one
/// (every write has a fresh nonce).
type StoreSnapshot = HashMap<(Scope, String), u64>;

/// The store's fingerprints; the same read preloads the rows for rendering.
fn snapshot(env: &Environment) -> Result<StoreSnapshot> {
    env.preload_fingerprints()
}

fn changed_names(before: &StoreSnapshot, after: &StoreSnapshot) -> Vec<String> {
    let mut names = BTreeSet::new();
    for (key, hash) in after {
        if before.get(key) != Some(hash) {
            names.insert(key.1.clone());
        }
    }
    for key in before.keys() {
        if !after.contains_key(key) {
            names.insert(key.1.clone());
        }
    }
    names.into_iter().collect()
}

/// A running watch over one project.
pub struct Watch<'o> {
    env: Environment,
    engine: Engine,
    root: PathBuf,
    root_abs: PathBuf,
    out: PathBuf,
    out_abs: PathBuf,
    selection: Selection,
    options: WatchOptions,
    files: HashMap<PathBuf, FileState>,
    store: StoreSnapshot,
    store_counter: u64,
    observer: &'o mut dyn WatchObserver,
    changed_outputs: Vec<PathBuf>,
}

impl<'o> Watch<'o> {
    pub fn new(
        env: Environment,
        root: &Path,
        out: &Path,
        options: WatchOptions,
        observer: &'o mut dyn WatchObserver,
    ) -> Result<Watch<'o>> {
        render::check_out_dir(root, out)?;
        let selection = Selection::new(&options.render.include, &options.render.exclude)?;
        let engine = env.engine();
        let store = snapshot(&env)?;
        let store_counter = env.store_change_counter()?;
        Ok(Watch {
            engine,
            root: root.to_path_buf(),
            root_abs: project::absolute(root),
            out: out.to_path_buf(),
            out_abs: project::absolute(out),
            selection,
            options,
            files: HashMap::new(),
            store,
            store_counter,
            observer,
            changed_outputs: Vec::new(),
            env,
        })
    }

    /// Renders every file once.
    fn render_all(&mut self) -> Result<()> {
        if self.out.is_dir() {
            render::remove_stale_temp_files(&self.out)?;
        }
        // The rows were read (and preloaded) by `new`'s snapshot.
        let project = project::walk(&self.root, &self.selection, Some(&self.out))?;
        for d in &project.diagnostics {
            self.observer.event(WatchEvent::Failed(
                d.file.as_deref().unwrap_or(Path::new("")),
                std::slice::from_ref(d),
            ));
        }
        let mut failed = 0;
        for rel in project.files.clone() {
            if !self.render_one(&project, &rel)? {
                failed += 1;
            }
        }
        self.changed_outputs.clear();
        self.observer.event(WatchEvent::Ready {
            files: self.files.len(),
            failed,
        });
        Ok(())
    }

    /// Renders one file and writes its output; whether it succeeded.
    fn render_one(&mut self, project: &ProjectFiles, rel: &Path) -> Result<bool> {
        let outcome = read_text(&self.root, rel).map(zeroize::Zeroizing::new);
        let state = self.files.entry(rel.to_path_buf()).or_default();
        let source = match outcome {
            Ok(s) => s,
            Err(d) => {
                report_failure(self.observer, state, rel, &[*d]);
                return Ok(false);
            }
        };
        let chain = project.chain(rel);
        let file = self.engine.render(
            rel,
            &source,
            &chain,
            &self.options.render,
            project::is_yaml(rel),
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
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if !warnings.is_empty() {
            self.observer.event(WatchEvent::Warnings(&warnings));
        }
        let written = render::write_output(&self.out, rel, output.as_bytes(), self.options.mode)?;
        if state.failure.take().is_some() {
            self.observer.event(WatchEvent::Recovered(rel));
        }
        if written {
            let target = self.out.join(rel);
            self.observer.event(WatchEvent::Written(&target));
            self.changed_outputs.push(target);
        }
        Ok(true)
    }

    /// The project-relative path of an event path, if it is one we watch.
    fn relevant(&self, path: &Path) -> Option<PathBuf> {
        if path.starts_with(&self.out_abs) {
            return None;
        }
        let rel = path.strip_prefix(&self.root_abs).ok()?;
        if rel.as_os_str().is_empty() || project::is_skipped_path(rel) {
            return None;
        }
        Some(rel.to_path_buf())
    }

    /// Handles one batch of changed paths (project-relative).
    fn process_paths(&mut self, paths: BTreeSet<PathBuf>) -> Result<()> {
        let mut candidates: BTreeSet<PathBuf> = BTreeSet::new();
        for rel in paths {
            let abs = self.root.join(&rel);
            // Files we know under a path that moved or vanished.
            candidates.extend(
                self.files
                    .keys()
                    .filter(|k| k.starts_with(&rel) && **k != rel)
                    .cloned(),
            );
            if abs.is_dir() && !abs.is_symlink() {
                // A folder appeared (or moved in): everything selected below it.
                let sub = project::walk(&abs, &self.selection, Some(&self.out))?;
                candidates.extend(sub.files.into_iter().map(|f| rel.join(f)));
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
                    self.render_one(&project, &rel)?;
                }
                _ => {
                    if self.files.remove(&rel).is_some() {
                        self.remove_output(&rel);
                    }
                }
            }
        }
        Ok(())
    }

    fn remove_output(&mut self, rel: &Path) {
        let target = self.out.join(rel);
        match std::fs::remove_file(&target) {
            Ok(()) => {
                self.observer.event(WatchEvent::Removed(&target));
                self.changed_outputs.push(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.observer.event(WatchEvent::Problem(format!(
                "cannot remove {}: {e}",
                target.display()
            ))),
        }
    }

    /// Re-renders the files affected by changes in the store, if any.
    fn process_store(&mut self) -> Result<()> {
        let counter = self.env.store_change_counter()?;
        if counter == self.store_counter {
            return Ok(());
        }
        self.store_counter = counter;
        // Forget decrypted values, then read the rows once: their
        // fingerprints tell what changed, and they are preloaded for the
        // renders below.
        self.env.clear_cache();
        let after = snapshot(&self.env)?;
        let names = changed_names(&self.store, &after);
        self.store = after;
        if names.is_empty() {
            return Ok(());
        }
        if self.env.key_rotated()? {
            // Another process rotated the key: open the environment again.
            self.env = Environment::open(self.env.settings())?;
            self.engine = self.env.engine();
            self.store = snapshot(&self.env)?;
        }
        let affected: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, st)| st.computed_names || names.iter().any(|n| st.referenced.contains(n)))
            .map(|(p, _)| p.clone())
            .collect();
        self.observer.event(WatchEvent::StoreChanged {
            names: &names,
            files: affected.len(),
        });
        let project = ProjectFiles {
            root: self.root.clone(),
            ..ProjectFiles::default()
        };
        for rel in affected {
            if self.root.join(&rel).is_file() {
                self.render_one(&project, &rel)?;
            }
        }
        Ok(())
    }

    /// Runs `--exec` when the batch changed an output.
    fn finish_batch(&mut self) {
        if self.changed_outputs.is_empty() {
            return;
        }
        let changed = std::mem::take(&mut self.changed_outputs);
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
        .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", self.root.display())))?;
        watcher
            .watch(&self.root_abs, RecursiveMode::Recursive)
            .map_err(|e| Error::Usage(format!("cannot watch {}: {e}", self.root.display())))?;
        self.render_all()?;
        let tick = self.options.debounce.max(Duration::from_millis(10));
        while !stop.load(Ordering::SeqCst) {
            let mut batch: BTreeSet<PathBuf> = BTreeSet::new();
            match rx.recv_timeout(tick) {
                Ok(first) => {
                    self.collect(first, &mut batch);
                    // Trailing edge: the batch ends after a quiet period.
                    let mut deadline = Instant::now() + self.options.debounce;
                    loop {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        match rx.recv_timeout(deadline - now) {
                            Ok(ev) => {
                                if self.collect(ev, &mut batch) {
                                    deadline = Instant::now() + self.options.debounce;
                                }
                            }
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return Ok(()),
                        }
                    }
                    if !batch.is_empty() {
                        self.process_paths(batch)?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if let Err(e) = self.process_store() {
                self.observer.event(WatchEvent::Problem(e.to_string()));
            }
            self.finish_batch();
        }
        Ok(())
    }

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
        match event.kind {
            EventKind::Access(_) | EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => {
                return false
            }
            _ => {}
        }
        let mut any = false;
        for path in &event.paths {
            if let Some(rel) = self.relevant(path) {
                batch.insert(rel);
                any = true;
            }
        }
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
        .map_err(|e| Error::Usage(format!("cannot install the signal handler: {e}")))?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_names_cover_added_modified_and_removed() {
        let g = |n: &str| (Scope::Global, n.to_string());
        let before: StoreSnapshot = [(g("a"), 1), (g("b"), 2), (g("c"), 3)]
            .into_iter()
            .collect();
        let after: StoreSnapshot = [(g("a"), 1), (g("b"), 9), (g("d"), 4)]
            .into_iter()
            .collect();
        assert_eq!(changed_names(&before, &after), vec!["b", "c", "d"]);
        assert!(changed_names(&before, &before).is_empty());
    }
}
