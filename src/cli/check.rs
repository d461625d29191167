//! `check`: text, JSON or GitHub Actions reports of what would not resolve.

use std::sync::Arc;

use mage_secrets::check::{self, CheckOptions, CheckReport, Presence, PresenceTable};
use mage_secrets::diagnostic::Diagnostic;
use mage_secrets::environment_name::{self, EnvironmentEntry};
use mage_secrets::mage_selection;
use mage_secrets::project::{self, Location};
use mage_secrets::template::ProcessEnv;
use mage_secrets::{store, Environment, Error, ExitCode, Result};

use super::args::CheckFormat;
use super::output::{stdout, Reporter};
use super::request::{CheckRequest, Context, Target};

pub fn check(ctx: &Context, request: &CheckRequest) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let CheckRequest {
        path,
        target,
        strict_env,
        format,
        selection,
        allow_unknown,
        allow_unverifiable,
    } = request;
    let (strict_env, format) = (*strict_env, *format);
    let location = Location::of(path)?;
    let mut project = project::walk_located(&location, selection, None)?;
    // Mage's SQL and Python blocks name secrets too (dbt's own SQL is dbt's).
    if !location.is_file && !selection.is_explicit() {
        let blocks = project::walk_located(&location, &selection.blocks()?, None)?;
        project.files.extend(
            blocks
                .files
                .into_iter()
                .filter(|rel| !mage_selection::is_dbt_code(rel, location.dbt_place(rel))),
        );
        project.files.sort();
        project.files.dedup();
    }
    if location.is_file {
        if let Some((_, why)) = project.copies.first() {
            let mut warnings = project.diagnostics.clone();
            project.localize(&mut warnings);
            reporter.diagnostics(&warnings);
            return Err(Error::Usage(format!(
                "Mage does not render {}: {}; check covers what Mage renders. To check it with Mage's functions anyway, pass --include '{}'",
                path.display(),
                why.reason(),
                location.rel.display()
            )));
        }
        if selection.is_explicit() && !selection.selects(&location.rel) {
            return Err(Error::Usage(format!(
                "{} does not match --include; name a file the selection covers",
                path.display()
            )));
        }
    }
    if project.files.is_empty() {
        return Err(project.nothing_selected(path, selection));
    }
    let options = CheckOptions {
        strict_env,
        allow_unknown: allow_unknown.clone(),
        allow_unverifiable: *allow_unverifiable,
    };
    let report = match target {
        Target::All => {
            let store = store::open_existing(&settings.database_location()?)?;
            let table = check::presence_table(
                &project,
                store.as_ref(),
                Arc::new(ProcessEnv::default()),
                &options,
            )?;
            let entries = store::environment_entries(store.as_ref())?;
            return print_table(reporter, &table, &entries, format);
        }
        Target::Other(query) => {
            let location = settings.database_location()?;
            let store = store::open_existing(&location)?;
            let entries = store::environment_entries(store.as_ref())?;
            let entry = environment_name::resolve(query, &entries, &location.describe())?;
            reporter.detail(&format!("checking environment {}", entry.long()));
            let presence = Presence::load(store.as_ref(), &entry.uuid)?;
            let progress = reporter.progress(project.files.len(), "checking");
            check::check(
                &project,
                &presence,
                None,
                Arc::new(ProcessEnv::default()),
                &options,
                &|| progress.tick(),
            )
        }
        Target::Own => {
            let env = Environment::open_existing(settings)?;
            for w in env.warnings() {
                reporter.warning(w);
            }
            let presence = env.presence()?;
            env.preload()?;
            let engine = env.engine();
            let progress = reporter.progress(project.files.len(), "checking");
            check::check(
                &project,
                &presence,
                Some(&engine),
                Arc::new(ProcessEnv::default()),
                &options,
                &|| progress.tick(),
            )
        }
    };
    print_report(reporter, &report, project.files.len(), format)?;
    Ok(if report.errors() > 0 {
        ExitCode::NotHeld
    } else {
        ExitCode::Success
    })
}

fn print_report(
    reporter: &Reporter,
    report: &CheckReport,
    files: usize,
    format: CheckFormat,
) -> Result<()> {
    match format {
        CheckFormat::Json => {
            let mut doc = serde_json::to_value(report).expect("serializable");
            doc["errors"] = report.errors().into();
            doc["warnings"] = report.warnings().into();
            stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("serializable")
            ))
        }
        CheckFormat::Github => {
            let text: String = report.problems.iter().map(github_line).collect();
            stdout(&text)
        }
        CheckFormat::Text => {
            reporter.diagnostics(&report.problems);
            let yaml = if report.yaml_checked {
                ""
            } else {
                "; rendered YAML not parsed (existence only, no key)"
            };
            let summary = format!(
                "checked {files} file(s), {} reference(s) in environment {}: {} error(s), {} warning(s){yaml}",
                report.references(),
                report.environment,
                report.errors(),
                report.warnings()
            );
            if report.errors() > 0 {
                reporter.plain(&summary);
            } else {
                reporter.info(&summary);
            }
            Ok(())
        }
    }
}

/// A GitHub Actions workflow command for one problem.
pub fn github_line(d: &Diagnostic) -> String {
    let level = if d.is_error() { "error" } else { "warning" };
    let mut props = Vec::new();
    if let Some(file) = &d.file {
        props.push(format!(
            "file={}",
            escape_property(&file.display().to_string())
        ));
    }
    if let Some(line) = d.line {
        props.push(format!("line={line}"));
    }
    if let Some(col) = d.col {
        props.push(format!("col={col}"));
    }
    let kind = serde_json::to_value(d.kind).expect("serializable");
    props.push(format!(
        "title={}",
        escape_property(&format!(
            "mage-secrets {}",
            kind.as_str().unwrap_or("problem")
        ))
    ));
    format!(
        "::{level} {}::{}\n",
        props.join(","),
        escape_data(&d.message)
    )
}

/// A workflow command's text: `%`, CR and LF as GitHub reads them; any
/// other control character written as `%XX`, so that no byte of a file
/// name can act on a terminal or a log viewer.
fn escape_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn print_table(
    reporter: &Reporter,
    table: &PresenceTable,
    entries: &[EnvironmentEntry],
    format: CheckFormat,
) -> Result<ExitCode> {
    let label = |uuid: &str| {
        entries
            .iter()
            .find(|e| e.uuid == uuid)
            .and_then(|e| e.name.clone())
            .unwrap_or_else(|| uuid.chars().take(8).collect())
    };
    let complete = table.complete();
    let ok = complete && !table.problems.iter().any(Diagnostic::is_error);
    match format {
        CheckFormat::Json => {
            let mut doc = serde_json::to_value(table).expect("serializable");
            doc["complete"] = complete.into();
            doc["environment_names"] = entries
                .iter()
                .filter_map(|e| Some((e.uuid.clone(), e.name.clone()?.into())))
                .collect::<serde_json::Map<_, _>>()
                .into();
            stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("serializable")
            ))?;
        }
        CheckFormat::Github => {
            let mut text: String = table.problems.iter().map(github_line).collect();
            for row in &table.secrets {
                for (env, present) in &row.present {
                    if !present {
                        let d = Diagnostic::error(
                            mage_secrets::diagnostic::Kind::MissingSecret,
                            format!("secret '{}' is not set in environment {env}", row.name),
                        );
                        let mut d = d.in_file(&row.file);
                        d.line = Some(row.line);
                        d.col = Some(row.col);
                        text.push_str(&github_line(&d));
                    }
                }
            }
            stdout(&text)?;
        }
        CheckFormat::Text => {
            for d in &table.problems {
                reporter.diagnostic(d);
            }
            let short: Vec<String> = table.environments.iter().map(|e| label(e)).collect();
            let name_w = table
                .secrets
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(0)
                .max(6);
            let scope_w = table
                .secrets
                .iter()
                .map(|r| r.scopes.join(", ").len())
                .max()
                .unwrap_or(0)
                .max(6);
            let mut out = format!("{:name_w$}  {:scope_w$}", "SECRET", "SCOPES");
            for s in &short {
                out.push_str(&format!("  {s:8}"));
            }
            let widths: Vec<usize> = short.iter().map(|s| s.len().max(8)).collect();
            out.push('\n');
            for row in &table.secrets {
                out.push_str(&format!(
                    "{:name_w$}  {:scope_w$}",
                    row.name,
                    row.scopes.join(", ")
                ));
                for (env, width) in table.environments.iter().zip(&widths) {
                    let cell = if row.present.get(env).copied().unwrap_or(false) {
                        "yes"
                    } else {
                        "MISSING"
                    };
                    out.push_str(&format!("  {cell:width$}"));
                }
                out.push('\n');
            }
            stdout(&out)?;
            for (s, full) in short.iter().zip(&table.environments) {
                reporter.info(&format!("{s} = {full}"));
            }
            let missing: usize = table
                .secrets
                .iter()
                .map(|r| r.present.values().filter(|p| !**p).count())
                .sum();
            let errors = table.problems.iter().filter(|d| d.is_error()).count();
            let summary = format!(
                "{} referenced secret(s) in {} environment(s): {}{}",
                table.secrets.len(),
                table.environments.len(),
                if complete {
                    "all complete".to_string()
                } else {
                    format!("{missing} missing")
                },
                if errors > 0 {
                    format!("; {errors} other error(s) above")
                } else {
                    String::new()
                }
            );
            if ok {
                reporter.info(&summary);
            } else {
                reporter.plain(&summary);
            }
        }
    }
    Ok(if ok {
        ExitCode::Success
    } else {
        ExitCode::NotHeld
    })
}
