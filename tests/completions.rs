//! Shell completion, run in the real shells: the registration script that
//! `completions SHELL` prints, sourced by bash, zsh and fish, calling the
//! binary back. Secret names come from the current environment; values never.

use std::process::Command;

use crate::support::{bin, Workspace};

/// A workspace whose environment has two secrets, and a PATH that finds the
/// binary by name (as the registration scripts call it).
fn seeded() -> Workspace {
    let ws = Workspace::new();
    ws.set("dd", None, "pg_password", "value-never-completed");
    ws.set("dd", None, "pg_user", "app");
    ws.run_with_stdin(
        &["--data-dir", "dd", "set", "etl_token", "--pipeline", "etl"],
        b"x\n",
    )
    .ok();
    ws
}

fn shell(ws: &Workspace, program: &str, script: &str) -> Option<String> {
    let available = Command::new(program)
        .args(["-c", "exit 0"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("MAGE_SECRETS_REQUIRE_SHELLS").is_none(),
            "{program} is required (MAGE_SECRETS_REQUIRE_SHELLS is set) but not installed"
        );
        eprintln!("skipped: {program} is not installed");
        return None;
    }
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(program)
        .current_dir(ws.dir.path())
        .env("PATH", path)
        .env("HOME", ws.path("home"))
        .env("MAGE_DATA_DIR", ws.path("dd"))
        .env_remove("MAGE_SECRETS_DATABASE")
        .env_remove("COMPLETE")
        .args(["-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("value-never-completed"));
    Some(stdout)
}

/// Completions bash offers for a command line (the cursor at its end).
fn bash(ws: &Workspace, line: &str) -> Option<Vec<String>> {
    let script = format!(
        r#"source <(mage-secrets completions bash) || exit 9
COMP_LINE='{line}'
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
_clap_complete_mage_secrets mage-secrets "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    shell(ws, "bash", &script).map(lines)
}

/// Completions zsh's completion function offers: `_describe` is replaced by
/// a stand-in that prints the candidates it would show.
fn zsh(ws: &Workspace, line: &str) -> Option<Vec<String>> {
    let script = format!(
        r#"compdef() {{ : }}
_describe() {{ local name=$3; print -rl -- ${{(P)name}} }}
eval "$(mage-secrets completions zsh)" || exit 9
line='{line}'
words=(${{(z)line}})
[[ "$line" == *' ' ]] && words+=('')
CURRENT=${{#words}}
_clap_dynamic_completer_mage_secrets"#
    );
    shell(ws, "zsh", &script).map(|out| {
        lines(out)
            .into_iter()
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    })
}

/// Completions fish offers, from `complete --do-complete`.
fn fish(ws: &Workspace, line: &str) -> Option<Vec<String>> {
    let script = format!(
        "mage-secrets completions fish | source; or exit 9\ncomplete --do-complete '{line}'"
    );
    shell(ws, "fish", &script).map(|out| {
        lines(out)
            .into_iter()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    })
}

fn lines(text: String) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

type Shell = fn(&Workspace, &str) -> Option<Vec<String>>;
const SHELLS: [(&str, Shell); 3] = [("bash", bash), ("zsh", zsh), ("fish", fish)];

#[test]
fn secret_names_complete_for_get_delete_and_set() {
    let ws = seeded();
    for (name, complete) in SHELLS {
        for line in [
            "mage-secrets get pg",
            "mage-secrets delete pg_",
            "mage-secrets set p",
        ] {
            let Some(got) = complete(&ws, line) else {
                continue;
            };
            assert_eq!(got, ["pg_password", "pg_user"], "{name}: {line}");
        }
    }
}

#[test]
fn pipeline_names_complete_with_pipeline() {
    let ws = seeded();
    for (name, complete) in SHELLS {
        let Some(got) = complete(&ws, "mage-secrets get --pipeline etl e") else {
            continue;
        };
        assert_eq!(got, ["etl_token"], "{name}");
        let Some(got) = complete(&ws, "mage-secrets get e") else {
            continue;
        };
        assert!(
            got.is_empty(),
            "{name}: pipeline names without --pipeline: {got:?}"
        );
    }
}

#[test]
fn options_and_subcommands_complete() {
    let ws = seeded();
    for (name, complete) in SHELLS {
        let Some(got) = complete(&ws, "mage-secrets check --f") else {
            continue;
        };
        assert_eq!(got, ["--format"], "{name}");
        let Some(got) = complete(&ws, "mage-secrets rota") else {
            continue;
        };
        assert_eq!(got, ["rotate-key"], "{name}");
        let Some(got) = complete(&ws, "mage-secrets check --format ") else {
            continue;
        };
        assert_eq!(got, ["github", "json", "text"], "{name}");
    }
}

#[test]
fn completing_never_creates_an_environment() {
    let ws = Workspace::new();
    let Some(got) = bash(&ws, "mage-secrets get pg") else {
        return;
    };
    assert!(got.is_empty(), "{got:?}");
    assert!(!ws.path("dd").exists(), "a data dir was created");
    assert!(!ws.path("home").exists(), "a data dir was created");
}
