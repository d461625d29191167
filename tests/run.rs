//! `run -- CMD`: secrets in a command's environment, its stdio, signals and
//! exit status, never a value on a command line.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use crate::support::Workspace;

fn seeded() -> Workspace {
    let ws = Workspace::new();
    ws.set("dd", None, "pg_password", "g'lobal \"pw\" $x");
    ws.set("dd", None, "api_key", "global-key");
    ws.run_with_stdin(
        &["--data-dir", "dd", "set", "api_key", "--pipeline", "etl"],
        b"etl-key\n",
    )
    .ok();
    ws
}

const SHOW: &str =
    r#"printf '%s|%s|%s\n' "${pg_password-unset}" "${api_key-unset}" "${APP_api_key-unset}""#;

#[test]
fn command_sees_global_secrets_under_their_names() {
    let ws = seeded();
    let out = ws
        .run(&["--data-dir", "dd", "run", "--", "sh", "-c", SHOW])
        .ok();
    assert_eq!(out.stdout, "g'lobal \"pw\" $x|global-key|unset\n");
}

#[test]
fn pipeline_scope_wins_over_global() {
    let ws = seeded();
    let out = ws
        .run(&[
            "--data-dir",
            "dd",
            "run",
            "--pipeline",
            "etl",
            "--",
            "sh",
            "-c",
            SHOW,
        ])
        .ok();
    assert_eq!(out.stdout, "g'lobal \"pw\" $x|etl-key|unset\n");
}

#[test]
fn only_and_prefix_select_and_rename() {
    let ws = seeded();
    let out = ws
        .run(&[
            "--data-dir",
            "dd",
            "run",
            "--only",
            "api_key",
            "--prefix",
            "APP_",
            "--",
            "sh",
            "-c",
            SHOW,
        ])
        .ok();
    assert_eq!(out.stdout, "unset|unset|global-key\n");
}

#[test]
fn secret_replaces_a_variable_of_the_same_name() {
    let ws = seeded();
    let out = ws
        .cmd(&["--data-dir", "dd", "run", "--", "sh", "-c", SHOW])
        .env("api_key", "from-parent")
        .env("UNRELATED", "kept")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "g'lobal \"pw\" $x|global-key|unset\n"
    );
}

#[test]
fn only_with_a_missing_name_runs_nothing() {
    let ws = seeded();
    let out = ws
        .run(&[
            "--data-dir",
            "dd",
            "run",
            "--only",
            "api_key,nope",
            "--",
            "touch",
            "ran",
        ])
        .code(1);
    assert!(out.stderr.contains("'nope' is not set"), "{}", out.stderr);
    assert!(!ws.path("ran").exists());
    let out = ws
        .run(&[
            "--data-dir",
            "dd",
            "run",
            "--only",
            "nope,nada",
            "--",
            "touch",
            "ran",
        ])
        .code(1);
    assert!(
        out.stderr.contains("'nada' is not set") && out.stderr.contains("'nope' is not set"),
        "{}",
        out.stderr
    );
    assert!(!ws.path("ran").exists());
}

#[test]
fn exit_status_is_the_commands() {
    let ws = seeded();
    ws.run(&["--data-dir", "dd", "run", "--", "sh", "-c", "exit 7"])
        .code(7);
    ws.run(&["--data-dir", "dd", "run", "--", "true"]).ok();
}

#[test]
fn death_by_signal_shows_as_128_plus_n() {
    let ws = seeded();
    let bin = crate::support::bin();
    let script = format!(
        "'{}' --data-dir dd run -- sh -c 'kill -TERM $$'; echo \"status $?\"",
        bin.display()
    );
    let out = std::process::Command::new("sh")
        .current_dir(ws.dir.path())
        .env("HOME", ws.path("home"))
        .env_remove("MAGE_DATA_DIR")
        .env_remove("MAGE_SECRETS_DATABASE")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "status 143\n");
}

#[test]
fn stdin_reaches_the_command() {
    let ws = seeded();
    let out = ws
        .run_with_stdin(
            &["--data-dir", "dd", "run", "--", "cat"],
            b"line 1\nline 2\n",
        )
        .ok();
    assert_eq!(out.stdout, "line 1\nline 2\n");
}

/// Starts `run` on a shell that reports the signals it gets, waits until it
/// is ready, and returns the child and its stdout.
fn start_trapping(ws: &Workspace) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let script = r#"for s in TERM INT HUP; do trap "echo got $s; exit 3" $s; done
echo ready
while :; do sleep 0.05; done"#;
    let mut command = ws.cmd(&["--data-dir", "dd", "run", "--", "sh", "-c", script]);
    // A test runner started in the background may ignore SIGINT, and an
    // ignored signal stays ignored across exec (as it should for `run`):
    // give the command the default dispositions a terminal would.
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, stdout)
}

#[test]
fn signals_to_run_reach_the_command() {
    let ws = seeded();
    for signal in ["TERM", "INT", "HUP"] {
        let (mut child, mut stdout) = start_trapping(&ws);
        let killed = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, format!("got {signal}\n"));
        assert_eq!(child.wait().unwrap().code(), Some(3), "after SIG{signal}");
    }
}

#[test]
fn values_are_in_the_environment_never_on_a_command_line() {
    let ws = seeded();
    let (mut child, _stdout) = start_trapping(&ws);
    let pid = child.id();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains(&environ, "api_key=global-key"),
        "the value reached the command"
    );
    for value in ["global-key", "g'lobal"] {
        assert!(!contains(&cmdline, value), "{value} on the command line");
    }
    // Nor in any other process's command line (no helper was started).
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(line) = std::fs::read(entry.path().join("cmdline")) {
            assert!(!contains(&line, "global-key"), "{:?}", entry.path());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_command_that_does_not_exist_is_127() {
    let ws = seeded();
    let out = ws
        .run(&["--data-dir", "dd", "run", "--", "no-such-command-here"])
        .code(127);
    assert!(
        out.stderr.contains("cannot run no-such-command-here"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let ws = seeded();
    let out = ws.run(&[
        "--data-dir",
        "dd",
        "run",
        "--prefix",
        "1X",
        "--",
        "touch",
        "ran",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid --prefix"), "{}", out.stderr);
    let out = ws.run(&[
        "--data-dir",
        "dd",
        "run",
        "--only",
        "a-b",
        "--",
        "touch",
        "ran",
    ]);
    assert_eq!(out.code, 2);
    let out = ws.run(&["--data-dir", "dd", "run", "touch", "ran"]);
    assert_eq!(out.code, 2, "the command must follow --");
    let out = ws.run(&["--data-dir", "dd", "run"]);
    assert_eq!(out.code, 2);
    assert!(!ws.path("ran").exists());
}

#[test]
fn run_never_creates_an_environment() {
    let ws = Workspace::new();
    let out = ws.run(&["--data-dir", "fresh", "run", "--", "touch", "ran"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("has no mage-secrets environment"),
        "{}",
        out.stderr
    );
    assert!(!ws.path("ran").exists());
    assert!(!ws.path("fresh/mage-secrets/key").exists());
}
