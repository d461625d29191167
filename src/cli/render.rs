//! `render`: one file to stdout, or a project to an output folder.

use std::io::Write;
use std::path::Path;

use mage_secrets::diagnostic::Diagnostic;
use mage_secrets::{project, render, Error, Result};

use super::output::Reporter;
use super::request::{Context, RenderRequest};
use super::secrets::open;

pub fn render(ctx: &Context, request: &RenderRequest) -> Result<i32> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let RenderRequest {
        path,
        out,
        selection,
        options,
        mode,
    } = request;
    let (out, mode) = (out.as_deref(), *mode);
    let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    if meta.is_file() {
        return render_file(ctx, request);
    }
    let Some(out) = out else {
        return Err(Error::Usage(format!(
            "{} is a project folder: give an output folder with --out DIR (or name one file to print it)",
            path.display()
        )));
    };
    render::check_out_dir(path, out)?;
    let env = open(settings, reporter)?;
    let report = env.render_project_report(path, selection, options, Some(out))?;
    if report.has_errors() {
        return Err(Error::Render(report.diagnostics));
    }
    show(reporter, &report.diagnostics);
    let summary = render::write_outputs(out, &report.files, mode)?;
    reporter.info(&format!(
        "rendered {} file(s) to {}: {} written, {} unchanged",
        report.files.len(),
        out.display(),
        summary.written,
        summary.unchanged
    ));
    Ok(0)
}

fn show(reporter: &Reporter, diagnostics: &[Diagnostic]) {
    reporter.diagnostics(diagnostics);
}

fn render_file(ctx: &Context, request: &RenderRequest) -> Result<i32> {
    let reporter = &ctx.reporter;
    let RenderRequest {
        path,
        out,
        options,
        mode,
        ..
    } = request;
    let (path, out, mode) = (path.as_path(), out.as_deref(), *mode);
    let env = open(&ctx.settings, reporter)?;
    let source = project::read_text(Path::new(""), path).map_err(|d| Error::Render(vec![*d]))?;
    let chain = project::ProjectFiles::single(path).chain(path);
    let file = env
        .engine()
        .render(path, &source, &chain, options, project::is_yaml(path));
    let (output, warnings) = file.into_output()?;
    show(reporter, &warnings);
    match out {
        Some(dir) => {
            let name = path.file_name().map(Path::new).unwrap_or(path);
            let written = render::write_output(dir, name, output.as_bytes(), mode)?;
            reporter.info(&format!(
                "rendered {} to {}: {}",
                path.display(),
                dir.join(name).display(),
                if written { "written" } else { "unchanged" }
            ));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(output.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::io("write to", "standard output", e))?;
        }
    }
    Ok(0)
}
