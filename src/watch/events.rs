//! What a watch is asked to do, and what it tells its observer.

use std::path::Path;
use std::time::Duration;

use crate::diagnostic::Diagnostic;
use crate::project::Selection;
use crate::template::RenderOptions;

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub render: RenderOptions,
    /// Which files of the project are rendered.
    pub selection: Selection,
    /// Output file permissions.
    pub mode: u32,
    /// Quiet period that ends a batch of file events.
    pub debounce: Duration,
    /// Shell command run after each batch that changed an output.
    pub exec: Option<String>,
    /// Whether `exec` also runs after the first render (when it wrote or
    /// kept at least one output), as consul-template and watchexec do.
    pub initial_exec: bool,
}

/// What the watcher tells its observer.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// The first render is done: of `files`, `written` outputs were
    /// written (the others that rendered were up to date), `failed` failed,
    /// and `kept` of those still have an output from an earlier run.
    Ready {
        files: usize,
        written: usize,
        failed: usize,
        kept: usize,
    },
    /// A batch after the first render is done; it wrote `written` outputs.
    BatchDone { written: usize },
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
    /// The secret store could not be read; said once per outage. Outputs
    /// keep their content and the store is tried again with backoff.
    StoreUnreachable(String),
    /// The store answers again after an outage; failed files are retried.
    StoreReachable { retried: usize },
    /// The database file was replaced (a backup restored, the data dir
    /// recreated): it was opened again and every file rendered again.
    StoreReplaced,
    /// The project folder was deleted or moved away: every output is kept,
    /// and the watch waits for the folder to come back.
    ProjectGone(&'a Path),
    /// The project folder is back: everything is rendered again.
    ProjectBack(&'a Path),
}

/// Receives what the watcher does.
pub trait WatchObserver {
    fn event(&mut self, event: WatchEvent<'_>);
}
