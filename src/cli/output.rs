//! How the binary talks to people: what was asked for on stdout (one
//! writer), every message through the `Reporter` on stderr, with color when
//! stderr is a terminal (or `--color always`), never when `NO_COLOR` is set
//! or `--color never`.

use std::io::{IsTerminal, Write};

use mage_secrets::diagnostic::{Diagnostic, Severity};
use mage_secrets::{Error, Result};

use super::args::ColorChoice;

#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    color: bool,
    pub quiet: bool,
    pub verbose: u8,
}

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const BOLD: &str = "\x1b[1m";
const BLUE: &str = "\x1b[1;34m";
const RESET: &str = "\x1b[0m";

impl Reporter {
    pub fn new(choice: ColorChoice, quiet: bool, verbose: u8) -> Reporter {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Reporter {
            color,
            quiet,
            verbose,
        }
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn label(&self, severity: Severity) -> String {
        match severity {
            Severity::Error => self.paint(RED, "error"),
            Severity::Warning => self.paint(YELLOW, "warning"),
        }
    }

    pub fn error(&self, message: &str) {
        eprintln!("{}: {message}", self.label(Severity::Error));
    }

    /// An error with its causes, each on a line of its own. Causes up to
    /// the deepest one the message already quotes are not repeated.
    pub fn error_chain(&self, err: &(dyn std::error::Error + 'static)) {
        let message = err.to_string();
        self.error(&message);
        let mut causes = Vec::new();
        let mut cause = err.source();
        while let Some(c) = cause {
            causes.push(c.to_string());
            cause = c.source();
        }
        let quoted = causes
            .iter()
            .rposition(|c| message.contains(c.as_str()))
            .map_or(0, |i| i + 1);
        for text in &causes[quoted..] {
            eprintln!("  {} {text}", self.paint(BOLD, "caused by:"));
        }
    }

    /// A line that is part of a failure's report, shown even with `-q`.
    pub fn plain(&self, message: &str) {
        eprintln!("{message}");
    }

    pub fn warning(&self, message: &str) {
        if !self.quiet {
            eprintln!("{}: {message}", self.label(Severity::Warning));
        }
    }

    /// An informational line (summaries); silenced by `-q`.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// A detail shown with `-v`.
    pub fn detail(&self, message: &str) {
        if self.verbose > 0 {
            eprintln!("{}", self.paint(BLUE, message));
        }
    }

    /// A finer detail, shown with `-vv`.
    pub fn trace(&self, message: &str) {
        if self.verbose > 1 {
            eprintln!("{}", self.paint(BLUE, message));
        }
    }

    /// Diagnostics, one missing-secret error per secret: its first place in
    /// full, then how many other places use it and the first few of them
    /// (every one with -v).
    pub fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        const SHOWN: usize = 3;
        for group in mage_secrets::diagnostic::group_by_secret(diagnostics) {
            let (first, more) = group.split_first().expect("groups are not empty");
            if more.is_empty() {
                self.diagnostic(first);
                continue;
            }
            if self.quiet && !first.is_error() {
                continue;
            }
            let mut head = (*first).clone();
            head.message = format!("{} (used in {} places)", head.message, group.len());
            let help = head.help.take();
            self.diagnostic(&head);
            let places: Vec<String> = more.iter().filter_map(|d| d.location()).collect();
            let mut err = std::io::stderr().lock();
            let label = self.paint(BOLD, "= also at:");
            if self.verbose > 0 || places.len() <= SHOWN {
                let _ = writeln!(err, "  {label}");
                for p in &places {
                    let _ = writeln!(err, "      {p}");
                }
            } else {
                let _ = writeln!(
                    err,
                    "  {label} {} and {} more (-v lists every place)",
                    places[..SHOWN].join(", "),
                    places.len() - SHOWN
                );
            }
            if let Some(help) = help {
                let _ = writeln!(err, "  {} {help}", self.paint(BOLD, "= help:"));
            }
        }
    }

    /// A diagnostic with its location, message and caret snippet.
    pub fn diagnostic(&self, d: &Diagnostic) {
        if self.quiet && !d.is_error() {
            return;
        }
        let mut err = std::io::stderr().lock();
        let location = d
            .location()
            .map(|l| format!("{}: ", self.paint(BOLD, &l)))
            .unwrap_or_default();
        let _ = writeln!(err, "{location}{}: {}", self.label(d.severity), d.message);
        if let Some(snippet) = d.snippet() {
            let _ = writeln!(err, "{}", self.paint(BLUE, &snippet));
        }
        if let Some(help) = &d.help {
            let _ = writeln!(err, "  {} {help}", self.paint(BOLD, "= help:"));
        }
    }
}

/// How long work runs before its progress is shown: quick runs never
/// flash a bar.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// A progress bar on stderr for work over many files: shown only on a
/// terminal (never in a pipe, a file or CI), never with `-q`, and only once
/// the work has run for a moment; gone when the work is done.
pub struct Progress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    shown: std::sync::atomic::AtomicBool,
    wanted: bool,
}

impl Progress {
    /// Counts one finished file.
    pub fn tick(&self) {
        self.bar.inc(1);
        if self.wanted
            && !self.shown.load(std::sync::atomic::Ordering::Relaxed)
            && self.started.elapsed() >= PROGRESS_AFTER
            && !self.shown.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Reporter {
    /// A progress bar for `total` files of `what` (e.g. "rendering").
    pub fn progress(&self, total: usize, what: &'static str) -> Progress {
        let wanted = !self.quiet
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none_or(|v| v.is_empty());
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} files")
        {
            bar.set_style(style);
        }
        bar.set_message(what);
        Progress {
            bar,
            started: std::time::Instant::now(),
            shown: std::sync::atomic::AtomicBool::new(false),
            wanted,
        }
    }
}

/// Text on stdout.
pub fn stdout(text: &str) -> Result<()> {
    write_stdout(&[text.as_bytes()])
}

/// The one writer to stdout: writes the parts in order (without joining
/// them, so a value is never copied) and flushes.
pub fn write_stdout(parts: &[&[u8]]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    parts
        .iter()
        .try_for_each(|p| out.write_all(p))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write to", "standard output", e))
}
