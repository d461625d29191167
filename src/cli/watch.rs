//! `watch`: the watcher's events as timestamped lines on stderr.

use std::time::{SystemTime, UNIX_EPOCH};

use mage_secrets::watch::{self, Watch, WatchEvent, WatchObserver};
use mage_secrets::{Error, Result};

use super::output::Reporter;
use super::request::{Context, WatchRequest};
use super::secrets::open;

pub fn watch(ctx: &Context, request: WatchRequest) -> Result<i32> {
    let reporter = &ctx.reporter;
    let WatchRequest { root, out, options } = request;
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a project folder",
            root.display()
        )));
    }
    let env = open(&ctx.settings, reporter)?;
    let stop = watch::stop_on_signals()?;
    let mut printer = Printer {
        reporter: *reporter,
    };
    let mut w = Watch::new(env, &root, &out, options, &mut printer)?;
    w.run(&stop)?;
    reporter.info(&format!("{} stopped", stamp()));
    Ok(0)
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

struct Printer {
    reporter: Reporter,
}

impl WatchObserver for Printer {
    fn event(&mut self, event: WatchEvent<'_>) {
        let r = &self.reporter;
        match event {
            WatchEvent::Ready { files, failed } => r.info(&format!(
                "{} watching: {files} file(s) rendered{}; Ctrl-C to stop",
                stamp(),
                if failed > 0 {
                    format!(", {failed} failing (last good output kept)")
                } else {
                    String::new()
                }
            )),
            WatchEvent::Written(p) => r.info(&format!("{} wrote {}", stamp(), p.display())),
            WatchEvent::Removed(p) => r.info(&format!("{} removed {}", stamp(), p.display())),
            WatchEvent::Failed(p, diagnostics) => {
                eprintln!(
                    "{} {} failed; its last good output is kept:",
                    stamp(),
                    p.display()
                );
                for d in diagnostics {
                    r.diagnostic(d);
                }
            }
            WatchEvent::Recovered(p) => {
                eprintln!("{} recovered: {} renders again", stamp(), p.display())
            }
            WatchEvent::Warnings(diagnostics) => {
                for d in diagnostics {
                    r.diagnostic(d);
                }
            }
            WatchEvent::StoreChanged { names, files } => r.info(&format!(
                "{} secret store changed ({}): re-rendering {files} file(s)",
                stamp(),
                names.join(", ")
            )),
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
        }
    }
}
