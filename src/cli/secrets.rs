//! `set`, `get`, `list`, `delete` and `env`: the secret store from the shell.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;

use mage_secrets::secret::{self, MAX_VALUE_LEN};
use mage_secrets::store::ScopeFilter;
use mage_secrets::{Environment, Error, ExitCode, Result, Settings};
use zeroize::Zeroizing;

use super::args::ListFormat;
use super::output::{stdout, write_stdout, Reporter};
use super::request::{Context, ImportRequest, ListRequest, NameChange, NamedSecret};

/// Opens the environment and shows its warnings.
pub fn open(settings: &Settings, reporter: &Reporter) -> Result<Environment> {
    opened(Environment::open(settings)?, settings, reporter)
}

/// Opens the environment of a data dir that has one (every command but
/// `set` and `import-mage`), and shows its warnings.
pub fn open_existing(settings: &Settings, reporter: &Reporter) -> Result<Environment> {
    opened(Environment::open_existing(settings)?, settings, reporter)
}

/// Shows what opening an environment found: warnings, then details for -v/-vv.
fn opened(env: Environment, settings: &Settings, reporter: &Reporter) -> Result<Environment> {
    for w in env.warnings() {
        reporter.warning(w);
    }
    reporter.detail(&format!("environment: {}", env.uuid()));
    match &settings.key {
        Some(given) => reporter.trace(&format!("key from {}", given.origin)),
        None => reporter.trace(&format!("key file: {}", settings.key_path().display())),
    }
    Ok(env)
}

pub fn set(
    ctx: &Context,
    secret: &NamedSecret,
    from_file: Option<&Path>,
    allow_empty: bool,
) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let NamedSecret { name, scope } = secret;
    // The request is valid: read the value before touching the data dir or
    // the database.
    if from_file.is_none()
        && settings
            .key
            .as_ref()
            .is_some_and(|k| k.origin.reads_stdin())
    {
        return Err(Error::Usage(
            "the key took standard input (--key-file), so the value cannot come from it too; pass the value with --from-file".into(),
        ));
    }
    let value = read_value(name, from_file, allow_empty)?;
    let env = open(settings, reporter)?;
    env.set(name, scope, &value)?;
    reporter.info(&format!(
        "set '{name}' ({scope}) in environment {}",
        env.uuid()
    ));
    Ok(ExitCode::Success)
}

pub fn get(ctx: &Context, secret: &NamedSecret) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let NamedSecret { name, scope } = secret;
    let env = open_existing(settings, reporter)?;
    let chain = scope.chain();
    match env.lookup(&chain, name)? {
        Some(resolved) => {
            reporter.detail(&format!("found in scope {}", resolved.scope));
            write_stdout(&[resolved.value.as_str().as_bytes(), b"\n"])?;
            Ok(ExitCode::Success)
        }
        None => Err(env.not_set(name, &chain)),
    }
}

pub fn list(ctx: &Context, list: &ListRequest) -> Result<ExitCode> {
    let env = open_existing(&ctx.settings, &ctx.reporter)?;
    let secrets = env.list(&list.filter)?;
    let name = env.name()?;
    let text = match list.format {
        ListFormat::Json => {
            let doc = serde_json::json!({
                "environment": env.uuid(),
                "environment_name": name,
                "secrets": secrets
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("serializable")
            )
        }
        ListFormat::Text => {
            if secrets.is_empty() {
                let what = match &list.filter {
                    ScopeFilter::All => "any scope".to_string(),
                    ScopeFilter::One(s) => format!("scope {s}"),
                };
                ctx.reporter.info(&format!(
                    "no secrets in {what} of environment {}",
                    described(env.uuid(), name.as_deref())
                ));
                String::new()
            } else {
                ctx.reporter.info(&format!(
                    "environment {}: {} secret(s)",
                    described(env.uuid(), name.as_deref()),
                    secrets.len()
                ));
                table(&secrets)
            }
        }
    };
    stdout(&text)?;
    Ok(ExitCode::Success)
}

/// `prod (3f60…-uuid)`, or the uuid alone.
fn described(uuid: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} ({uuid})"),
        None => uuid.to_string(),
    }
}

fn table(secrets: &[mage_secrets::store::SecretInfo]) -> String {
    let name_w = secrets
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let scope_w = secrets
        .iter()
        .map(|s| s.scope.to_string().len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!("{:name_w$}  {:scope_w$}  UPDATED\n", "NAME", "SCOPE");
    for s in secrets {
        out.push_str(&format!(
            "{:name_w$}  {:scope_w$}  {}\n",
            s.name,
            s.scope.to_string(),
            s.updated_at
        ));
    }
    out
}

pub fn delete(ctx: &Context, secret: &NamedSecret) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let NamedSecret { name, scope } = secret;
    let env = open_existing(settings, reporter)?;
    env.delete(name, scope)?;
    reporter.info(&format!(
        "deleted '{name}' ({scope}) from environment {}",
        env.uuid()
    ));
    Ok(ExitCode::Success)
}

pub fn env(
    ctx: &Context,
    export_key: bool,
    force: bool,
    change: Option<&NameChange>,
) -> Result<ExitCode> {
    let env = open_existing(&ctx.settings, &ctx.reporter)?;
    if export_key {
        return export(ctx, &env, force);
    }
    match change {
        Some(NameChange::Set(name)) => {
            env.set_name(Some(name))?;
            ctx.reporter
                .info(&format!("environment {} is named '{name}'", env.uuid()));
        }
        Some(NameChange::Clear) => {
            env.set_name(None)?;
            ctx.reporter
                .info(&format!("environment {} has no name now", env.uuid()));
        }
        None => {}
    }
    let info = env.info()?;
    let key_line = if ctx.settings.key.is_some() {
        format!("key:       {}", info.key_file)
    } else {
        format!("key file:  {}", info.key_file)
    };
    stdout(&format!(
        "data dir:  {}\nuuid:      {}\nname:      {}\ndatabase:  {}\n{key_line}\nsecrets:   {}\n",
        info.data_dir,
        info.uuid,
        info.name
            .as_deref()
            .unwrap_or("(none; `env --name NAME` gives one)"),
        info.database,
        info.secrets
    ))?;
    Ok(ExitCode::Success)
}

/// `env --export-key`: the key, only to a pipe or a file unless forced.
fn export(ctx: &Context, env: &Environment, force: bool) -> Result<ExitCode> {
    if std::io::stdout().is_terminal() && !force {
        return Err(Error::Usage(format!(
            "refusing to print the key of environment {} to a terminal (screens are recorded and scrolled back); pipe it into your CI's secret store, e.g. `mage-secrets env --export-key | gh secret set MAGE_SECRETS_KEY`, or pass --force",
            env.uuid()
        )));
    }
    ctx.reporter.warning(&format!(
        "printing the key of environment {}: whoever holds it can decrypt every secret of it; load it into a secret store, together with MAGE_SECRETS_ENVIRONMENT={}",
        env.uuid(),
        env.uuid()
    ));
    let text = env.key_text();
    write_stdout(&[text.as_bytes()])?;
    Ok(ExitCode::Success)
}

pub fn rotate_key(ctx: &Context, dry_run: bool) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let env = Environment::open_existing(settings)?;
    for w in env.warnings() {
        reporter.warning(w);
    }
    if dry_run {
        stdout(&format!(
            "would re-seal {} secret(s) of environment {} under a new key\n",
            env.count()?,
            env.uuid()
        ))?;
        return Ok(ExitCode::Success);
    }
    let count = env.rotate_key()?;
    stdout(&format!(
        "re-sealed {count} secret(s) of environment {} under a new key in {}; back up the new key file\n",
        env.uuid(),
        settings.key_path().display()
    ))?;
    Ok(ExitCode::Success)
}

pub fn doctor(ctx: &Context) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let findings = mage_secrets::doctor::doctor(settings);
    let mut text = String::new();
    for f in &findings {
        if f.ok {
            text.push_str(&format!("ok       {}: {}\n", f.check, f.detail));
        } else {
            text.push_str(&format!(
                "PROBLEM  {}: {}\n         fix: {}\n",
                f.check,
                f.detail,
                f.fix.as_deref().unwrap_or("")
            ));
        }
    }
    stdout(&text)?;
    let problems = findings.iter().filter(|f| !f.ok).count();
    if problems > 0 {
        reporter.error(&format!("{problems} problem(s) found"));
        Ok(ExitCode::NotHeld)
    } else {
        Ok(ExitCode::Success)
    }
}

pub fn import_mage(ctx: &Context, import: &ImportRequest) -> Result<ExitCode> {
    let (settings, reporter) = (&ctx.settings, &ctx.reporter);
    let ImportRequest {
        source,
        dry_run,
        overwrite,
    } = import;
    let (dry_run, overwrite) = (*dry_run, *overwrite);
    use mage_secrets::mage_import::RowOutcome;
    // A dry run changes nothing, so it does not create an environment either.
    let env = if import.dry_run {
        open_existing(settings, reporter)?
    } else {
        open(settings, reporter)?
    };
    let report = mage_secrets::mage_import::import(&env, source, dry_run, overwrite)?;
    let verb = if dry_run { "would import" } else { "imported" };
    let mut text = String::new();
    for row in &report.rows {
        text.push_str(&match row {
            RowOutcome::Imported {
                name,
                scope,
                legacy,
            } => format!(
                "{verb:<13} {name} ({scope}{})\n",
                if *legacy {
                    ", legacy row without key_uuid"
                } else {
                    ""
                }
            ),
            RowOutcome::Exists { name, scope } => {
                format!(
                    "{:<13} {name} ({scope}): already set here; --overwrite replaces it\n",
                    "skipped"
                )
            }
            RowOutcome::OtherEnvironment { name, key_uuid } => {
                format!(
                    "{:<13} {name}: belongs to another Mage environment (key uuid {key_uuid})\n",
                    "skipped"
                )
            }
            RowOutcome::DoesNotOpen { name, scope } => {
                format!(
                    "{:<13} {name} ({scope}): does not open with Mage's key\n",
                    "skipped"
                )
            }
            RowOutcome::Invalid { name, reason } => format!("{:<13} {name}: {reason}\n", "skipped"),
        });
    }
    stdout(&text)?;
    reporter.info(&format!(
        "{verb} {} secret(s) from Mage environment {} ({}) into environment {}; {} skipped",
        report.imported(),
        report.mage_environment,
        report.database,
        env.uuid(),
        report.rows.len() - report.imported()
    ));
    Ok(ExitCode::Success)
}

/// The value to store: a file's exact bytes, a pipe's bytes less one
/// trailing newline, or a no-echo prompt on a terminal (asked twice).
fn read_value(
    name: &str,
    from_file: Option<&Path>,
    allow_empty: bool,
) -> Result<Zeroizing<String>> {
    let bytes = match from_file {
        Some(path) => {
            let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
            read_limited(file).map_err(|e| match e {
                ReadError::Io(e) => Error::io("read", path, e),
                ReadError::TooLarge => Error::ValueTooLarge {
                    size: std::fs::metadata(path).map_or(MAX_VALUE_LEN + 1, |m| m.len() as usize),
                },
            })?
        }
        None if std::io::stdin().is_terminal() => prompt_twice(name)?,
        None => {
            let mut bytes = read_limited(std::io::stdin().lock()).map_err(|e| match e {
                ReadError::Io(e) => Error::io("read", "standard input", e),
                ReadError::TooLarge => Error::ValueTooLarge {
                    size: MAX_VALUE_LEN + 1,
                },
            })?;
            let keep = if bytes.ends_with(b"\r\n") {
                bytes.len() - 2
            } else if bytes.ends_with(b"\n") {
                bytes.len() - 1
            } else {
                bytes.len()
            };
            bytes.truncate(keep);
            if bytes.is_empty() && !allow_empty {
                // A closed stdin, `</dev/null` or an empty variable in a
                // pipe is far more often a mistake than a wish.
                return Err(Error::Usage(format!(
                    "the value for '{name}' from standard input is empty (a closed stdin, </dev/null or an empty pipe); nothing was stored. Pipe the value in, or pass --allow-empty to store an empty value"
                )));
            }
            bytes
        }
    };
    secret::validate_value(&bytes)?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| Error::ValueNotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(Zeroizing::new(text))
}

enum ReadError {
    Io(std::io::Error),
    TooLarge,
}

/// Reads at most the value limit plus a trailing CRLF; more is an error.
fn read_limited(reader: impl Read) -> std::result::Result<Zeroizing<Vec<u8>>, ReadError> {
    let limit = MAX_VALUE_LEN + 2;
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

fn prompt_twice(name: &str) -> Result<Zeroizing<Vec<u8>>> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| Error::io("read from", "the terminal", e))
    };
    let first = ask(&format!("Value for {name}: "))?;
    let second = ask("Again, to confirm: ")?;
    if *first != *second {
        return Err(Error::Usage(
            "the two values do not match; nothing was stored".into(),
        ));
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}
