//! `render`: one file to stdout or to a file, or a project to an output
//! folder (with `--dry-run`, `--diff` and `--prune`).

use std::path::{Path, PathBuf};

use mage_secrets::diagnostic::Diagnostic;
use mage_secrets::mage_selection::Role;
use mage_secrets::output::{self, Change, OutputFile};
use mage_secrets::project::{self, Location};
use mage_secrets::{render, review, Error, ExitCode, Result};

use super::output::{stdout, Reporter};
use super::request::{Context, RenderRequest};
use super::secrets::open_existing;

pub fn render(ctx: &Context, request: &RenderRequest) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let RenderRequest {
        path,
        out,
        selection,
        options,
        ..
    } = request;
    let (path, out, flags) = (path.as_path(), out.as_deref(), request);
    let location = Location::of(path)?;
    if location.is_file {
        if flags.prune {
            return Err(Error::Usage(
                "--prune works on a project render into a folder, not on one file".into(),
            ));
        }
        return render_file(ctx, request, &location);
    }
    let Some(out) = out else {
        return Err(Error::Usage(format!(
            "{} is a project folder: give an output folder with --out DIR (or name one file to print it)",
            path.display()
        )));
    };
    let project = project::walk_located(&location, selection, Some(out))?;
    output::check_out_dir(&project, out)?;
    let store = output::store_paths(settings);
    output::check_spares_store(out, &store)?;
    if project.files.is_empty() {
        return Err(project.nothing_selected(path, selection));
    }
    let env = open_existing(settings, reporter)?;
    if !flags.dry_run && !flags.diff {
        return render_into(ctx, request, &env, &project, out, &store);
    }
    let report = {
        let progress = reporter.progress(project.files.len(), "rendering");
        env.render_walked(&project, options, &|| progress.tick())?
    };
    if report.has_errors() {
        return Err(Error::Render(report.diagnostics));
    }
    show(reporter, &report.diagnostics);
    if let Some(skipped) = project.skip_summary() {
        reporter.detail(&skipped);
    }
    let mut files: Vec<OutputFile<'_>> = report
        .files
        .iter()
        .map(|f| OutputFile {
            rel: &f.path,
            bytes: f.contents.as_bytes(),
        })
        .chain(report.copies.iter().map(|(rel, bytes)| OutputFile {
            rel,
            bytes: bytes.as_slice(),
        }))
        .collect();
    files.sort_by(|a, b| a.rel.cmp(b.rel));
    let plan = output::plan(out, &files, flags.prune.then_some(project.start.as_path()))?;
    if flags.diff {
        let masked = if plan.changes.iter().any(|(_, c)| *c != Change::Unchanged) {
            render::render_files(
                &review::masked_engine(&env),
                &project,
                options,
                &mage_secrets::parallel::no_tick,
            )
        } else {
            Default::default()
        };
        let mut text = String::new();
        for (f, (_, change)) in files.iter().zip(&plan.changes) {
            if *change == Change::Unchanged {
                continue;
            }
            let new = String::from_utf8_lossy(f.bytes);
            let masked_text = masked
                .files
                .iter()
                .find(|m| m.path == f.rel)
                .map(|m| m.contents.to_string())
                .unwrap_or_else(|| new.to_string());
            let old = match change {
                Change::Changed => std::fs::read(out.join(f.rel)).ok(),
                _ => None,
            };
            let label = out.join(f.rel).display().to_string();
            text.push_str(&review::unified_diff(
                &label,
                old.as_deref(),
                &new,
                &masked_text,
            ));
        }
        for rel in &plan.prune {
            text.push_str(&format!(
                "--- {}\n+++ /dev/null\n(removed by --prune)\n",
                out.join(rel).display()
            ));
        }
        stdout(&text)?;
    }
    if flags.dry_run {
        let mut text = String::new();
        for (rel, change) in &plan.changes {
            let word = match change {
                Change::New => "new",
                Change::Changed => "changed",
                Change::Unchanged => "unchanged",
            };
            if !flags.diff {
                text.push_str(&format!("{word:<10} {}\n", out.join(rel).display()));
            }
        }
        if !flags.diff {
            for rel in &plan.prune {
                text.push_str(&format!("{:<10} {}\n", "pruned", out.join(rel).display()));
            }
            stdout(&text)?;
        }
        reporter.info(&format!(
            "dry run: {} new, {} changed, {} unchanged, {} to prune in {}; nothing was written",
            plan.count(Change::New),
            plan.count(Change::Changed),
            plan.count(Change::Unchanged),
            plan.prune.len(),
            out.display()
        ));
        return Ok(ExitCode::Success);
    }
    // (--diff: the outputs are in memory already; they go through the same
    // staging as a plain render.)
    let staging = output::Staging::new(out, flags.mode)?;
    for f in &files {
        staging.add(f.rel, f.bytes)?;
    }
    let summary = staging.commit(
        &project::absolute(&project.root),
        &store,
        flags.prune.then_some(project.start.as_path()),
    )?;
    say_written(
        reporter,
        (report.files.len(), report.copies.len()),
        out,
        &summary,
        flags.prune,
    );
    Ok(ExitCode::Success)
}

/// A project render into `out`, each output staged as soon as it is
/// rendered and put in place only when every file succeeded.
fn render_into(
    ctx: &Context,
    request: &RenderRequest,
    env: &mage_secrets::Environment,
    project: &project::ProjectFiles,
    out: &Path,
    store: &[PathBuf],
) -> Result<ExitCode> {
    let reporter = &ctx.reporter;
    if request.prune {
        output::check_prunable(out)?;
    }
    env.preload()?;
    let engine = env.engine();
    let staging = output::Staging::new(out, request.mode)?;
    let streamed = {
        let progress = reporter.progress(project.files.len(), "rendering");
        render::render_files_into(
            &engine,
            project,
            &request.options,
            &|| progress.tick(),
            |rel, bytes| staging.add(rel, bytes).map(|_| ()),
        )?
    };
    if streamed.has_errors() {
        // The staging folder (and an output root this run made) go.
        return Err(Error::Render(streamed.diagnostics));
    }
    show(reporter, &streamed.diagnostics);
    if let Some(skipped) = project.skip_summary() {
        reporter.detail(&skipped);
    }
    let summary = staging.commit(
        &project::absolute(&project.root),
        store,
        request.prune.then_some(project.start.as_path()),
    )?;
    say_written(
        reporter,
        (streamed.rendered, streamed.copied),
        out,
        &summary,
        request.prune,
    );
    Ok(ExitCode::Success)
}

/// The closing line of a project render: (rendered, copied) files.
fn say_written(
    reporter: &Reporter,
    (rendered, copied): (usize, usize),
    out: &Path,
    summary: &output::WriteSummary,
    prune: bool,
) {
    let copied = if copied == 0 {
        String::new()
    } else {
        format!(" and copied {copied}")
    };
    let pruned = if prune {
        format!(", {} pruned", summary.pruned)
    } else {
        String::new()
    };
    reporter.info(&format!(
        "rendered {rendered} file(s){copied} to {}: {} written, {} unchanged{pruned}",
        out.display(),
        summary.written,
        summary.unchanged
    ));
}

fn show(reporter: &Reporter, diagnostics: &[Diagnostic]) {
    reporter.diagnostics(diagnostics);
}

fn render_file(ctx: &Context, request: &RenderRequest, location: &Location) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let RenderRequest {
        path,
        out,
        selection,
        options,
        ..
    } = request;
    let (path, out, flags) = (path.as_path(), out.as_deref(), request);
    let rel = &location.rel;
    if selection.is_explicit() && !selection.selects(rel) {
        return Err(Error::Usage(format!(
            "{} does not match --include; name a file the selection covers",
            path.display()
        )));
    }
    let (role, warning) = project::classify(&location.root, rel, location.mage_project, selection);
    if let Role::Copy(why) = role {
        if let Some(mut w) = warning {
            w.file = Some(path.to_path_buf());
            show(reporter, &[w]);
        }
        return Err(Error::Usage(format!(
            "Mage does not render {}: {}. To render it with Mage's functions anyway, pass --include '{}'",
            path.display(),
            why.reason(),
            rel.display()
        )));
    }
    let target = match out {
        Some(out) => {
            let target = output::file_target(location, path, out)?;
            output::check_spares_store(&target.0, &output::store_paths(settings))?;
            Some(target)
        }
        None => None,
    };
    let env = open_existing(settings, reporter)?;
    let source = project::read_text(&location.root, rel).map_err(|d| Error::Render(vec![*d]))?;
    let chain = project::scope_chain(rel);
    let (options, yaml) = (
        &*project::file_options(rel, options),
        project::is_yaml_document(rel),
    );
    let file = env.engine().render(path, &source, &chain, options, yaml);
    let (output, warnings) = file.into_output()?;
    show(reporter, &warnings);
    let Some((target, folder)) = target else {
        stdout(&output)?;
        return Ok(ExitCode::Success);
    };
    let exists = target.exists();
    let unchanged = exists
        && std::fs::read(&target)
            .map(zeroize::Zeroizing::new)
            .is_ok_and(|old| old.as_slice() == output.as_bytes());
    if flags.diff && !unchanged {
        let masked = review::masked_engine(&env).render(path, &source, &chain, options, yaml);
        let masked = masked.output.unwrap_or_default();
        let old = if exists {
            std::fs::read(&target).ok()
        } else {
            None
        };
        stdout(&review::unified_diff(
            &target.display().to_string(),
            old.as_deref(),
            &output,
            &masked,
        ))?;
    }
    if flags.dry_run {
        let word = match (exists, unchanged) {
            (false, _) => "new",
            (true, false) => "changed",
            (true, true) => "unchanged",
        };
        if !flags.diff {
            stdout(&format!("{word:<10} {}\n", target.display()))?;
        }
        reporter.info("dry run: nothing was written");
        return Ok(ExitCode::Success);
    }
    let written = if folder {
        let dir: PathBuf = target.parent().map(Path::to_path_buf).unwrap_or_default();
        mage_secrets::fsutil::create_dir_all(&dir, output::folder_mode(flags.mode))?;
        output::mark(&dir, flags.mode)?;
        let name = target.file_name().map(Path::new).unwrap_or(Path::new(""));
        render::write_output(&dir, name, output.as_bytes(), flags.mode)?
    } else {
        let dir = target.parent().unwrap_or(Path::new(""));
        let name = target.file_name().map(Path::new).unwrap_or(Path::new(""));
        render::write_output(dir, name, output.as_bytes(), flags.mode)?
    };
    reporter.info(&format!(
        "rendered {} to {}: {}",
        path.display(),
        target.display(),
        if written { "written" } else { "unchanged" }
    ));
    Ok(ExitCode::Success)
}
