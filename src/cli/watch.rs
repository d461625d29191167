//! `watch`: the watcher's events as timestamped lines on stderr.

use std::time::{SystemTime, UNIX_EPOCH};

use mage_secrets::watch::{self, Watch, WatchEvent, WatchObserver};
use mage_secrets::{Error, ExitCode, Result};

use super::output::Reporter;
use super::request::{Context, WatchRequest};
use super::secrets::open_existing;

pub fn watch(ctx: &Context, request: WatchRequest) -> Result<ExitCode> {
    let reporter = &ctx.reporter;
    let WatchRequest { root, out, options } = request;
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a project folder",
            root.display()
        )));
    }
    // The same project, files and layout as `render FOLDER --out`.
    let location = mage_secrets::project::Location::of(&root)?;
    let project = mage_secrets::project::walk_located(&location, &options.selection, Some(&out))?;
    mage_secrets::output::check_out_dir(&project, &out)?;
    mage_secrets::output::check_spares_store(
        &out,
        &mage_secrets::output::store_paths(&ctx.settings),
    )?;
    if project.files.is_empty() {
        return Err(project.nothing_selected(&root, &options.selection));
    }
    let env = open_existing(&ctx.settings, reporter)?;
    let stop = watch::stop_on_signals()?;
    let mut printer = Printer {
        reporter: *reporter,
        out: out.clone(),
        started: false,
        store_batch: false,
    };
    let mut w = Watch::new(env, &root, &out, options, &mut printer)?;
    w.run(&stop)?;
    reporter.info(&format!("{} stopped", stamp()));
    Ok(ExitCode::Success)
}

/// `[HH:MM:SS.mmm]` in UTC.
fn stamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "[{:02}:{:02}:{:02}.{:03}]",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

/// Prints the watcher's events: counts for the first render and for a
/// secret-store change (a line per file with -v), a line per file for an
/// edit.
struct Printer {
    reporter: Reporter,
    out: std::path::PathBuf,
    /// The first render is done.
    started: bool,
    /// The batch in progress re-renders after a secret-store change.
    store_batch: bool,
}

impl Printer {
    fn per_file(&self) -> bool {
        self.reporter.verbose > 0 || (self.started && !self.store_batch)
    }
}

impl WatchObserver for Printer {
    fn event(&mut self, event: WatchEvent<'_>) {
        let r = &self.reporter;
        match event {
            WatchEvent::Ready {
                files,
                written,
                failed,
                kept,
            } => {
                self.started = true;
                let mut counts =
                    format!("{written} written, {} up to date", files - failed - written);
                if failed > 0 {
                    counts.push_str(&format!(", {failed} failing"));
                    if kept > 0 {
                        counts.push_str(&format!(
                            " ({kept} keep their last good output, {} have none yet)",
                            failed - kept
                        ));
                    } else {
                        counts.push_str(" (no output written for them)");
                    }
                }
                r.info(&format!(
                    "{} watching: {files} file(s): {counts}; Ctrl-C to stop",
                    stamp()
                ))
            }
            WatchEvent::BatchDone { written } => {
                if self.store_batch && !self.per_file() {
                    r.info(&format!("{} {written} output(s) written", stamp()));
                }
                self.store_batch = false;
            }
            WatchEvent::Written(p) => {
                if self.per_file() {
                    r.info(&format!("{} wrote {}", stamp(), p.display()))
                }
            }
            WatchEvent::Removed(p) => r.info(&format!("{} removed {}", stamp(), p.display())),
            WatchEvent::Failed(p, diagnostics) => {
                let kept = if self.out.join(p).is_file() {
                    "its last good output is kept"
                } else {
                    "no output is written for it until it renders"
                };
                r.plain(&format!("{} {} failed; {kept}:", stamp(), p.display()));
                r.diagnostics(diagnostics);
            }
            WatchEvent::Recovered(p) => {
                r.plain(&format!("{} recovered: {} renders again", stamp(), p.display()))
            }
            WatchEvent::Warnings(diagnostics) => r.diagnostics(diagnostics),
            WatchEvent::StoreChanged { names, files } => {
                self.store_batch = true;
                r.info(&format!(
                    "{} secret store changed ({}): re-rendering {files} file(s)",
                    stamp(),
                    names.join(", ")
                ))
            }
            WatchEvent::ExecFailed(message) => {
                r.error(&format!("{} {message}; still watching", stamp()))
            }
            WatchEvent::Problem(message) => r.warning(&format!("{} {message}", stamp())),
            WatchEvent::StoreUnreachable(message) => r.warning(&format!(
                "{} cannot read the secret store: {message}; outputs keep their content, still watching and trying again",
                stamp()
            )),
            WatchEvent::StoreReachable { retried } => r.info(&format!(
                "{} reconnected: the secret store answers again; re-rendering {retried} failed file(s)",
                stamp()
            )),
            WatchEvent::StoreReplaced => r.warning(&format!(
                "{} the secret store's database file was replaced (a restored backup?); opened it again and re-rendered every file",
                stamp()
            )),
            WatchEvent::ProjectGone(root) => r.warning(&format!(
                "{} project folder {} is gone; every output is kept, and watching resumes when it is back",
                stamp(),
                root.display()
            )),
            WatchEvent::ProjectBack(root) => r.info(&format!(
                "{} project folder {} is back: rendering it again",
                stamp(),
                root.display()
            )),
        }
    }
}
