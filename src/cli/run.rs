//! `run -- CMD ARGS…`: CMD with the visible secrets in its environment.
//!
//! On Unix the command replaces this process (`execvp`), so it keeps our
//! pid: every signal sent to `mage-secrets run` (SIGTERM from a container
//! runtime, SIGINT from a terminal, SIGHUP, SIGSTOP…) reaches it unchanged,
//! stdin/stdout/stderr and the terminal are its own, and its exit status —
//! including death by a signal, which a shell shows as 128+N — is ours with
//! nothing in between. A supervising parent could only imitate all of that.
//! Values travel in the environment block, never in argv, so process lists
//! do not show them.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use mage_secrets::secret::Scope;
use mage_secrets::store::ScopeFilter;
use mage_secrets::{Environment, ExitCode, Result, SecretValue};

use super::request::{Context, RunRequest};

/// Execs the command; returns only when it could not be started.
pub fn run(ctx: &Context, request: &RunRequest) -> Result<ExitCode> {
    let reporter = &ctx.reporter;
    let (program, args) = (&request.program, &request.args);
    let env = Environment::open_existing(&ctx.settings)?;
    for w in env.warnings() {
        reporter.warning(w);
    }
    let chain = request.scope.chain();
    let (secrets, missing) = visible_secrets(&env, &chain, &request.only)?;
    if !missing.is_empty() {
        for name in &missing {
            reporter.error(&env.not_set(name, &chain).to_string());
        }
        reporter.info("nothing was run");
        return Ok(ExitCode::NotHeld);
    }
    reporter.detail(&format!(
        "run: {} secret(s) in the environment of {}: {}",
        secrets.len(),
        program.to_string_lossy(),
        secrets
            .iter()
            .map(|(name, _)| format!("{}{name}", request.prefix))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut command = Command::new(program);
    command.args(args);
    child_environment(&mut command, &request.prefix, &secrets);
    // Close the database before the process image is replaced.
    drop(env);
    let err = command.exec();
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => ExitCode::CommandNotFound,
        _ => ExitCode::CannotStart,
    };
    reporter.error(&format!(
        "cannot run {}: {err}{}",
        program.to_string_lossy(),
        if code == ExitCode::CommandNotFound {
            " (is it on PATH?)"
        } else {
            ""
        }
    ));
    Ok(code)
}

/// The one place that decides the child's environment: ours, plus each
/// visible secret under its (prefixed) name, a secret winning over a
/// variable of the same name.
fn child_environment(command: &mut Command, prefix: &str, secrets: &[(String, Arc<SecretValue>)]) {
    for (name, value) in secrets {
        command.env(format!("{prefix}{name}"), value.as_str());
    }
}

/// The secrets visible from `scope` (pipeline scope over global), sorted by
/// name; with `only`, exactly those names. Also the names of `only` that
/// are not set.
#[allow(clippy::type_complexity)]
fn visible_secrets(
    env: &Environment,
    chain: &[Scope],
    only: &[String],
) -> Result<(Vec<(String, Arc<SecretValue>)>, Vec<String>)> {
    let mut names: Vec<String> = if only.is_empty() {
        let mut names = Vec::new();
        for s in chain {
            names.extend(
                env.list(&ScopeFilter::One(s.clone()))?
                    .into_iter()
                    .map(|info| info.name),
            );
        }
        names
    } else {
        only.to_vec()
    };
    names.sort();
    names.dedup();
    env.preload()?;
    let mut secrets = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    for name in names {
        match env.lookup(chain, &name)? {
            Some(resolved) => secrets.push((name, resolved.value)),
            None => missing.push(name),
        }
    }
    Ok((secrets, missing))
}
