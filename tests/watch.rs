//! `watch`: outputs follow template edits, creations, renames, deletions
//! and secret-store changes made by other processes; failures keep the last
//! good output; `--exec` runs once per batch that changed something.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::Workspace;

/// A `watch` process whose stderr is collected in the background.
pub(crate) struct Watcher {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Watcher {
    pub(crate) fn start(ws: &Workspace, extra: &[&str]) -> Watcher {
        Watcher::start_with_env(ws, extra, &[])
    }

    fn start_with_env(ws: &Workspace, extra: &[&str], env: &[(&str, &str)]) -> Watcher {
        Watcher::start_at(ws, "p", extra, env)
    }

    pub(crate) fn start_at(
        ws: &Workspace,
        folder: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Watcher {
        let mut child = ws
            .cmd(
                &[
                    &["--data-dir", "d", "watch", folder, "--out", "build"][..],
                    extra,
                ]
                .concat(),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watch");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let w = Watcher { child, log };
        w.wait_log("watching:");
        w
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    #[track_caller]
    fn wait_log(&self, needle: &str) {
        let log = self.log.clone();
        let needle = needle.to_string();
        wait_for(
            &format!("log line {needle:?}"),
            || log.lock().unwrap().contains(&needle),
            || self.log(),
        );
    }

    pub(crate) fn stop(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        // The shell's own kill: no procps needed.
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {pid}"))
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (status.code().unwrap_or(-1), self.log())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}; log:\n{}", context());
}

pub(crate) fn read(ws: &Workspace, rel: &str) -> Option<String> {
    fs::read_to_string(ws.path(rel)).ok()
}

fn mtime(ws: &Workspace, rel: &str) -> SystemTime {
    fs::metadata(ws.path(rel)).unwrap().modified().unwrap()
}

fn project(ws: &Workspace) {
    ws.set("d", None, "pw", "one");
    ws.set("d", None, "other", "x");
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    ws.write("p/b.yaml", "b: \"{{ mage_secret_var('other') }}\"\n");
    ws.write("p/c.yaml", "c: plain\n");
    ws.write(
        "p/pipelines/etl/d.yaml",
        "d: \"{{ mage_secret_var('pw') }}\"\n",
    );
}

#[track_caller]
fn wait_content(ws: &Workspace, w: &Watcher, rel: &str, want: Option<&str>) {
    wait_for(
        &format!("{rel} == {want:?}"),
        || read(ws, rel).as_deref() == want,
        || w.log(),
    );
}

#[test]
fn an_edit_rewrites_only_its_output() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    assert_eq!(read(&ws, "build/a.yaml").as_deref(), Some("a: \"one\""));
    let before_b = mtime(&ws, "build/b.yaml");
    let before_d = mtime(&ws, "build/pipelines/etl/d.yaml");
    std::thread::sleep(Duration::from_millis(30));
    ws.write(
        "p/a.yaml",
        "a: \"{{ mage_secret_var('pw') }}\"\nedited: true\n",
    );
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"one\"\nedited: true"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(before_b, mtime(&ws, "build/b.yaml"));
    assert_eq!(before_d, mtime(&ws, "build/pipelines/etl/d.yaml"));
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
    // The first render is counted, the edit is named.
    assert!(
        log.contains("watching: 4 file(s): 4 written, 0 up to date;"),
        "{log}"
    );
    assert_eq!(log.matches("wrote build/a.yaml").count(), 1, "{log}");
}

#[test]
fn created_renamed_and_deleted_templates_are_followed() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    ws.write("p/new.yaml", "n: \"{{ mage_secret_var('other') }}\"\n");
    wait_content(&ws, &w, "build/new.yaml", Some("n: \"x\""));
    fs::rename(ws.path("p/new.yaml"), ws.path("p/moved.yaml")).unwrap();
    wait_content(&ws, &w, "build/moved.yaml", Some("n: \"x\""));
    wait_content(&ws, &w, "build/new.yaml", None);
    fs::create_dir_all(ws.path("p/pipelines/fresh")).unwrap();
    ws.write("p/pipelines/fresh/f.yaml", "f: 1\n");
    wait_content(&ws, &w, "build/pipelines/fresh/f.yaml", Some("f: 1\n"));
    fs::rename(ws.path("p/pipelines/fresh"), ws.path("p/pipelines/renamed")).unwrap();
    wait_content(&ws, &w, "build/pipelines/renamed/f.yaml", Some("f: 1\n"));
    wait_content(&ws, &w, "build/pipelines/fresh/f.yaml", None);
    fs::remove_file(ws.path("p/moved.yaml")).unwrap();
    wait_content(&ws, &w, "build/moved.yaml", None);
    // Files that are not selected, hidden or editor temp files do nothing.
    ws.write("p/.a.yaml.swp", "x");
    ws.write("p/notes.txt", "x");
    ws.write("p/a.yaml~", "x");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ws.path("build/.a.yaml.swp").exists() && !ws.path("build/notes.txt").exists());
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn store_changes_from_another_process_rerender_exactly_the_referencing_files() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    let before_b = mtime(&ws, "build/b.yaml");
    let before_c = mtime(&ws, "build/c.yaml");
    ws.set("d", None, "pw", "two");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"two\""));
    wait_content(&ws, &w, "build/pipelines/etl/d.yaml", Some("d: \"two\""));
    w.wait_log("secret store changed (pw): re-rendering 2 file(s)");
    assert_eq!(before_b, mtime(&ws, "build/b.yaml"));
    assert_eq!(before_c, mtime(&ws, "build/c.yaml"));

    // A pipeline-scoped secret shadows the global one for d.yaml only.
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "pw", "--pipeline", "etl"],
        b"three",
    )
    .ok();
    wait_content(&ws, &w, "build/pipelines/etl/d.yaml", Some("d: \"three\""));
    assert_eq!(read(&ws, "build/a.yaml").as_deref(), Some("a: \"two\""));

    ws.run(&["--data-dir", "d", "delete", "pw"]).ok();
    w.wait_log("a.yaml failed; its last good output is kept");
    w.wait_log("a.yaml:1:8: error: secret 'pw' is not set in environment");
    assert_eq!(read(&ws, "build/a.yaml").as_deref(), Some("a: \"two\""));
    assert_eq!(
        read(&ws, "build/pipelines/etl/d.yaml").as_deref(),
        Some("d: \"three\"")
    );
    ws.set("d", None, "pw", "back");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"back\""));
    w.wait_log("recovered: a.yaml renders again");
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_broken_template_keeps_its_last_good_output_until_fixed() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw' }}\"\n");
    w.wait_log("a.yaml:1:");
    w.wait_log("template syntax error");
    assert_eq!(read(&ws, "build/a.yaml").as_deref(), Some("a: \"one\""));
    // The same failure is reported once.
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw' }}\"\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.log().matches("a.yaml failed").count(), 1, "{}", w.log());
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\nfixed: 1\n");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"one\"\nfixed: 1"));
    w.wait_log("recovered: a.yaml renders again");
    let (code, _) = w.stop();
    assert_eq!(code, 0);
}

#[test]
fn exec_runs_once_per_changed_batch_and_not_for_a_no_op_save() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(
        &ws,
        &[
            "--debounce",
            "300",
            "--no-initial-exec",
            "--exec",
            "printf '%s\\n---\\n' \"$MAGE_SECRETS_CHANGED\" >> exec.log",
        ],
    );
    // Two files saved within one debounce window: one batch, one run.
    ws.write("p/a.yaml", "a: 1\n");
    ws.write("p/b.yaml", "b: 2\n");
    wait_for(
        "exec",
        || read(&ws, "exec.log").is_some_and(|l| l.contains("---")),
        || w.log(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = read(&ws, "exec.log").unwrap();
    assert_eq!(log.matches("---").count(), 1, "{log}");
    assert!(log.contains("build/a.yaml\nbuild/b.yaml\n"), "{log}");
    // A save that changes no output runs nothing.
    ws.write("p/a.yaml", "a: 1\n");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(read(&ws, "exec.log").unwrap().matches("---").count(), 1);
    let (code, _) = w.stop();
    assert_eq!(code, 0);
}

#[test]
fn exec_commands_do_not_inherit_a_given_key_unless_asked() {
    let ws = Workspace::new();
    project(&ws);
    let key = read(&ws, "d/mage-secrets/key").unwrap();
    let uuid = read(&ws, "d/mage-secrets/uuid").unwrap();
    let env = [
        ("MAGE_SECRETS_KEY", key.as_str()),
        ("MAGE_SECRETS_ENVIRONMENT", uuid.trim()),
    ];
    for (keep, want) in [(None, "absent\n"), (Some("--keep-key-env"), "present\n")] {
        let _ = fs::remove_file(ws.path("exec.log"));
        let mut args = vec![
            "--database",
            "d/mage-secrets/secrets.db",
            "--exec",
            "if [ -n \"${MAGE_SECRETS_KEY+set}\" ]; then echo present; else echo absent; fi > exec.log",
        ];
        args.extend(keep);
        let w = Watcher::start_with_env(&ws, &args, &env);
        ws.write("p/c.yaml", format!("c: {want}"));
        wait_for("exec", || read(&ws, "exec.log").is_some(), || w.log());
        wait_content(&ws, &w, "exec.log", Some(want));
        let (code, _) = w.stop();
        assert_eq!(code, 0);
    }
}

#[test]
fn a_failing_exec_is_reported_and_watching_continues() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &["--exec", "exit 3"]);
    ws.write("p/c.yaml", "c: 2\n");
    w.wait_log("--exec command failed (exit status: 3); still watching");
    ws.write("p/c.yaml", "c: 3\n");
    wait_content(&ws, &w, "build/c.yaml", Some("c: 3\n"));
    let (code, _) = w.stop();
    assert_eq!(code, 0);
}

#[test]
fn sigterm_stops_cleanly_without_temporary_files() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    for i in 0..20 {
        ws.write("p/a.yaml", format!("a: {i}\n"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped"), "{log}");
    let leftovers: Vec<_> = walkdir::WalkDir::new(ws.path("build"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".mage-secrets-tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(Path::new(&ws.path("build/a.yaml")).exists());
}

#[test]
fn exec_runs_after_the_first_render_too() {
    let ws = Workspace::new();
    project(&ws);
    let exec = "printf '%s\\n---\\n' \"$MAGE_SECRETS_CHANGED\" >> exec.log";
    let w = Watcher::start(&ws, &["--exec", exec]);
    wait_for(
        "initial exec",
        || read(&ws, "exec.log").is_some_and(|l| l.contains("---")),
        || w.log(),
    );
    let log = read(&ws, "exec.log").unwrap();
    assert!(
        log.starts_with(
            "build/a.yaml\nbuild/b.yaml\nbuild/c.yaml\nbuild/pipelines/etl/d.yaml\n---"
        ),
        "{log}"
    );
    let (code, _) = w.stop();
    assert_eq!(code, 0);
    // Outputs up to date: the next start runs it with nothing changed.
    let w = Watcher::start(&ws, &["--exec", exec]);
    wait_for(
        "second initial exec",
        || read(&ws, "exec.log").is_some_and(|l| l.matches("---").count() == 2),
        || w.log(),
    );
    assert!(w.log().contains("0 written, 4 up to date"), "{}", w.log());
    w.stop();
}

#[test]
fn missing_secrets_at_start_say_what_was_written() {
    let ws = Workspace::new();
    project(&ws);
    ws.write("p/e.yaml", "e: \"{{ mage_secret_var('not_yet') }}\"\n");
    let w = Watcher::start(&ws, &[]);
    let log = w.log();
    assert!(
        log.contains("e.yaml failed; no output is written for it until it renders"),
        "{log}"
    );
    assert!(!log.contains("last good output"), "{log}");
    assert!(
        log.contains(
            "watching: 5 file(s): 4 written, 0 up to date, 1 failing (no output written for them)"
        ),
        "{log}"
    );
    assert!(
        !log.contains("wrote "),
        "per-file lines only with -v: {log}"
    );
    w.stop();
    // The next start keeps the outputs that exist, and says so.
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('not_yet') }}\"\n");
    let w = Watcher::start(&ws, &["-v"]);
    let log = w.log();
    assert!(
        log.contains("a.yaml failed; its last good output is kept"),
        "{log}"
    );
    assert!(
        log.contains("2 failing (1 keep their last good output, 1 have none yet)"),
        "{log}"
    );
    w.stop();
}

#[test]
fn a_secret_change_prints_counts_and_files_with_v() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    ws.set("d", None, "pw", "two");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"two\""));
    w.wait_log("2 output(s) written");
    assert!(!w.log().contains("wrote "), "{}", w.log());
    w.stop();
    let w = Watcher::start(&ws, &["-v"]);
    assert!(w.log().contains("watching: 4 file(s)"), "{}", w.log());
    ws.set("d", None, "pw", "three");
    w.wait_log("wrote build/a.yaml");
    w.wait_log("wrote build/pipelines/etl/d.yaml");
    w.stop();
}

#[test]
fn a_deleted_project_keeps_its_outputs_and_is_followed_when_it_comes_back() {
    let ws = Workspace::new();
    project(&ws);
    let w = Watcher::start(&ws, &[]);
    // A source deleted on its own: its output goes, and the folder it left
    // empty too.
    fs::remove_file(ws.path("p/pipelines/etl/d.yaml")).unwrap();
    wait_content(&ws, &w, "build/pipelines/etl/d.yaml", None);
    wait_for(
        "the emptied output folder is removed",
        || !ws.path("build/pipelines/etl").exists(),
        || w.log(),
    );
    assert!(ws.path("build/a.yaml").is_file());
    // The whole project goes: every output stays.
    fs::rename(ws.path("p"), ws.path("p.away")).unwrap();
    w.wait_log("project folder");
    w.wait_log("is gone; every output is kept");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(&ws, "build/a.yaml").as_deref(), Some("a: \"one\""));
    assert!(ws.path("build/b.yaml").is_file() && ws.path("build/c.yaml").is_file());
    // It comes back, changed: rendered again, the file it lost is removed.
    fs::remove_file(ws.path("p.away/b.yaml")).unwrap();
    ws.write(
        "p.away/a.yaml",
        "a: \"{{ mage_secret_var('pw') }}\"\nback: 1\n",
    );
    fs::rename(ws.path("p.away"), ws.path("p")).unwrap();
    w.wait_log("is back: rendering it again");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"one\"\nback: 1"));
    wait_content(&ws, &w, "build/b.yaml", None);
    // And it is watched again.
    ws.write("p/c.yaml", "c: edited\n");
    wait_content(&ws, &w, "build/c.yaml", Some("c: edited\n"));
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_store_file_replaced_under_a_running_watch_is_opened_again() {
    let ws = Workspace::new();
    project(&ws);
    let db = ws.path("d/mage-secrets/secrets.db");
    // A backup taken while pw is "one".
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("VACUUM INTO ?1", [ws.path("backup.db").to_str().unwrap()])
        .unwrap();
    let w = Watcher::start(&ws, &[]);
    ws.set("d", None, "pw", "two");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"two\""));
    // Restored with mv (its WAL emptied first, as a careful restore does).
    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    fs::rename(ws.path("backup.db"), &db).unwrap();
    assert_eq!(
        ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout,
        "one\n"
    );
    w.wait_log("database file was replaced");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"one\""));
    wait_content(&ws, &w, "build/pipelines/etl/d.yaml", Some("d: \"one\""));
    // And it follows the restored file from then on.
    ws.set("d", None, "pw", "three");
    wait_content(&ws, &w, "build/a.yaml", Some("a: \"three\""));
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
}
