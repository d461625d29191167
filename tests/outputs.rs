//! Output folders that can never hurt the sources: refused `--out`s, the
//! output marker, the project root found from any path, nothing selected,
//! all-or-nothing writes across I/O, concurrent renders, `render FILE --out
//! FILE`, `--prune`, `--dry-run` and `--diff`.

use std::fs;
use std::path::Path;

use crate::support::{snapshot, tree_contains, Run, Workspace};

/// A Mage project with a pipeline, its secrets in data dir `d`.
fn mage_project(ws: &Workspace) {
    ws.write(
        "proj/io_config.yaml",
        "default:\n  POSTGRES_PASSWORD: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.write(
        "proj/metadata.yaml",
        "project_type: standalone\nname: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.write(
        "proj/pipelines/etl/metadata.yaml",
        "name: etl\nexecutor_type: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.set("d", None, "pw", "global-value");
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "pw", "--pipeline", "etl"],
        b"etl-value",
    )
    .ok();
}

fn data_dir(ws: &Workspace) -> String {
    ws.path("d").display().to_string()
}

fn run_in(ws: &Workspace, dir: &str, args: &[&str]) -> Run {
    let d = data_dir(ws);
    ws.run_in(
        &ws.path(dir),
        &[&["--data-dir", d.as_str()][..], args].concat(),
    )
}

#[test]
fn an_out_that_would_overwrite_sources_is_refused_and_nothing_changes() {
    let ws = Workspace::new();
    mage_project(&ws);
    let before = snapshot(&ws.path("proj"));
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "proj",
            &["render", "io_config.yaml", "--out", "."],
            "is the file being rendered",
        ),
        (
            "proj",
            &["render", "io_config.yaml", "--out", "io_config.yaml"],
            "is the file being rendered",
        ),
        (
            "proj",
            &["render", "pipelines/etl", "--out", "."],
            "is the project root",
        ),
        (
            "proj",
            &["render", ".", "--out", "pipelines/etl"],
            "holds pipelines/etl/metadata.yaml, a file this render reads",
        ),
        (
            "proj",
            &["render", ".", "--out", ".."],
            "is an ancestor of it",
        ),
        (
            "proj",
            &["render", "io_config.yaml", "--out", "metadata.yaml"],
            "lies in the project",
        ),
    ];
    for (dir, args, message) in cases {
        let out = run_in(&ws, dir, args).code(2);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert_eq!(
            snapshot(&ws.path("proj")),
            before,
            "{args:?} changed the project"
        );
    }
    assert!(tree_contains(&ws.path("proj"), b"global-value").is_none());
}

#[test]
fn earlier_outputs_are_never_read_as_templates() {
    let ws = Workspace::new();
    mage_project(&ws);
    ws.set("prod", None, "pw", "prod-value");
    run_in(&ws, "proj", &["render", ".", "--out", "build/"]).ok();
    assert!(ws.path("proj/build/.mage-secrets-output").is_file());
    assert!(ws
        .read("proj/build/io_config.yaml")
        .contains("global-value"));
    let prod = ws.path("prod").display().to_string();
    ws.run_in(
        &ws.path("proj"),
        &["--data-dir", &prod, "render", ".", "--out", "../prod-out"],
    )
    .ok();
    assert!(!ws.path("prod-out/build").exists(), "build/ was read");
    assert!(tree_contains(&ws.path("prod-out"), b"global-value").is_none());
    assert!(ws.read("prod-out/io_config.yaml").contains("prod-value"));
    // A marked folder is never rendered, even when named.
    let named = run_in(&ws, "proj", &["render", "build", "--out", "../x"]).code(2);
    assert!(
        named.stderr.contains("is an output folder"),
        "{}",
        named.stderr
    );
}

#[test]
fn a_subfolder_resolves_exactly_as_the_whole_project() {
    let ws = Workspace::new();
    mage_project(&ws);
    ws.run(&["--data-dir", "d", "render", "proj", "--out", "whole"])
        .ok();
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "proj/pipelines/etl",
        "--out",
        "part",
    ])
    .ok();
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "proj/pipelines",
        "--out",
        "part2",
    ])
    .ok();
    let whole = ws.read("whole/pipelines/etl/metadata.yaml");
    assert!(whole.contains("etl-value"), "{whole}");
    assert_eq!(ws.read("part/pipelines/etl/metadata.yaml"), whole);
    assert_eq!(ws.read("part2/pipelines/etl/metadata.yaml"), whole);
    assert!(!ws.path("part/io_config.yaml").exists());
    // One file resolves the same way.
    let one = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "proj/pipelines/etl/metadata.yaml",
        ])
        .ok();
    assert_eq!(one.stdout, whole);
    // check of the subfolder sees the pipeline's value only.
    ws.write(
        "proj/pipelines/etl/metadata.yaml",
        "executor_type: \"{{ mage_secret_var('etl_only') }}\"\n",
    );
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "etl_only", "--pipeline", "etl"],
        b"x",
    )
    .ok();
    ws.run(&["--data-dir", "d", "check", "proj/pipelines/etl"])
        .ok();
    ws.run(&["--data-dir", "d", "check", "proj/pipelines"]).ok();
}

#[test]
fn diagnostics_and_annotations_are_relative_to_the_current_folder() {
    let ws = Workspace::new();
    ws.write(
        "repo/proj/io_config.yaml",
        "a: \"{{ mage_secret_var('missing') }}\"\n",
    );
    ws.set("d", None, "x", "1");
    fs::create_dir_all(ws.path("repo/proj/pipelines")).unwrap();
    let out = run_in(&ws, "repo", &["check", "proj", "--format", "github"]).code(1);
    assert!(
        out.stdout
            .starts_with("::error file=proj/io_config.yaml,line=1,col=8,"),
        "{}",
        out.stdout
    );
    let text = run_in(&ws, "repo/proj/pipelines", &["check", ".."]);
    let text = text.code(1);
    assert!(
        text.stderr.contains("../io_config.yaml:1:8: error"),
        "{}",
        text.stderr
    );
}

#[test]
fn nothing_selected_is_an_error_naming_the_path_and_the_selection() {
    let ws = Workspace::new();
    ws.set("d", None, "x", "1");
    fs::create_dir_all(ws.path("empty")).unwrap();
    let out = ws
        .run(&["--data-dir", "d", "render", "empty", "--out", "x"])
        .code(1);
    assert!(
        out.stderr.contains("nothing to render in empty"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("*.yaml and *.yml"), "{}", out.stderr);
    assert!(!ws.path("x").exists(), "no output folder for nothing");
    ws.run(&["--data-dir", "d", "check", "empty"]).code(1);
    // A mistyped glob selects nothing: an error, not a pass.
    ws.write("p/.env.tmpl", "A={{ mage_secret_var('x') }}\n");
    ws.write("p/a.yaml", "a: 1\n");
    let typo = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "o",
            "--include",
            "*.tmp",
        ])
        .code(1);
    assert!(typo.stderr.contains("--include *.tmp"), "{}", typo.stderr);
    // Hidden files are selected by an explicit --include.
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--include",
        ".env.tmpl",
    ])
    .ok();
    assert_eq!(ws.read("o/.env.tmpl"), "A=1");
}

/// Runs a command as a user without root's power over permissions, with a
/// value on stdin.
fn unprivileged_with_stdin(ws: &Workspace, args: &[&str], stdin: &[u8]) {
    use std::io::Write;
    let mut child = ws
        .unprivileged(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    assert!(child.wait().unwrap().success(), "{args:?}");
}

#[test]
fn an_io_failure_before_the_renames_leaves_every_old_output_as_it_was() {
    let ws = Workspace::new();
    ws.write("p/b.yaml", "b: \"{{ mage_secret_var('pw') }}\"\n");
    ws.write("p/z/c.yaml", "c: \"{{ mage_secret_var('pw') }}\"\n");
    for dir in ["p", "p/z"] {
        fs::set_permissions(
            ws.path(dir),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
    }
    unprivileged_with_stdin(&ws, &["--data-dir", "d", "set", "pw"], b"one");
    ws.run_unprivileged(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    let before = snapshot(&ws.path("o"));
    assert!(ws.read("o/z/c.yaml").contains("one"));
    unprivileged_with_stdin(&ws, &["--data-dir", "d", "set", "pw"], b"two");
    fs::set_permissions(
        ws.path("o/z"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let out = ws
        .run_unprivileged(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(2);
    assert!(out.stderr.contains("o/z"), "{}", out.stderr);
    fs::set_permissions(
        ws.path("o/z"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(
        snapshot(&ws.path("o")),
        before,
        "old outputs byte-identical, no temporaries"
    );
    ws.run_unprivileged(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert!(ws.read("o/b.yaml").contains("two"));
}

#[test]
fn concurrent_renders_into_one_folder_all_succeed() {
    let ws = Workspace::new();
    for i in 0..20 {
        ws.write(
            &format!("p/f{i}.yaml"),
            format!("v{i}: \"{{{{ mage_secret_var('pw') }}}}\"\n"),
        );
    }
    ws.set("d", None, "pw", "x");
    for round in 0..10 {
        // A changed value each round makes every render write.
        ws.set("d", None, "pw", &format!("value-{round}"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                ws.cmd(&["--data-dir", "d", "render", "p", "--out", "o"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(ws.read("o/f7.yaml").contains(&format!("value-{round}")));
    }
    let temps: Vec<_> = snapshot(&ws.path("o"))
        .into_iter()
        .filter(|(p, _, _)| p.to_string_lossy().contains(".mage-secrets-tmp-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn render_file_out_writes_a_file_or_into_a_folder() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    ws.run(&["--data-dir", "d", "render", "p/a.yaml", "--out", "o2.yaml"])
        .ok();
    assert_eq!(ws.read("o2.yaml"), "a: \"v\"");
    ws.run(&["--data-dir", "d", "render", "p/a.yaml", "--out", "new/"])
        .ok();
    assert_eq!(ws.read("new/a.yaml"), "a: \"v\"");
    assert!(ws.path("new/.mage-secrets-output").is_file());
    fs::create_dir_all(ws.path("existing")).unwrap();
    ws.run(&["--data-dir", "d", "render", "p/a.yaml", "--out", "existing"])
        .ok();
    assert_eq!(ws.read("existing/a.yaml"), "a: \"v\"");
    let same = ws
        .run(&["--data-dir", "d", "render", "p/a.yaml", "--out", "p/a.yaml"])
        .code(2);
    assert!(
        same.stderr.contains("is the file being rendered"),
        "{}",
        same.stderr
    );
    assert!(ws.read("p/a.yaml").contains("mage_secret_var"));
}

#[test]
fn prune_removes_outputs_whose_source_is_gone_only_in_a_marked_folder() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    ws.write("p/a.yaml", "a: 1\n");
    ws.write("p/sub/b.yaml", "b: 1\n");
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    fs::remove_file(ws.path("p/sub/b.yaml")).unwrap();
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert!(ws.path("o/sub/b.yaml").exists(), "kept without --prune");
    let dry = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "o",
            "--prune",
            "--dry-run",
        ])
        .ok();
    assert!(dry.stdout.contains("pruned"), "{}", dry.stdout);
    assert!(ws.path("o/sub/b.yaml").exists(), "dry run removes nothing");
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o", "--prune"])
        .ok();
    assert!(out.stderr.contains("1 pruned"), "{}", out.stderr);
    assert!(!ws.path("o/sub").exists());
    assert!(ws.path("o/a.yaml").exists());
    // An unmarked folder is never pruned.
    ws.write("other/keep.txt", "mine");
    let refused = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "other",
            "--prune",
        ])
        .code(2);
    assert!(refused.stderr.contains("--prune"), "{}", refused.stderr);
    assert_eq!(ws.read("other/keep.txt"), "mine");
}

#[test]
fn dry_run_lists_changes_and_diff_masks_every_value() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "first-SECRET");
    ws.write(
        "p/a.yaml",
        "host: db\npw: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.write("p/b.yaml", "b: 1\n");
    let dry = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o", "--dry-run"])
        .ok();
    assert!(dry.stdout.contains("new        o/a.yaml"), "{}", dry.stdout);
    assert!(!ws.path("o").exists(), "a dry run writes nothing");
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    ws.set("d", None, "pw", "second-SECRET");
    let before = snapshot(&ws.path("o"));
    let diff = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "o",
            "--dry-run",
            "--diff",
        ])
        .ok();
    assert!(!diff.all().contains("SECRET"), "{}", diff.all());
    assert!(
        diff.stdout.contains("+pw: \"‹secret pw›\""),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains(" host: db"), "{}", diff.stdout);
    assert!(
        !diff.stdout.contains("b.yaml"),
        "unchanged files have no diff"
    );
    assert_eq!(snapshot(&ws.path("o")), before);
    let listing = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o", "--dry-run"])
        .ok();
    assert!(
        listing.stdout.contains("changed    o/a.yaml"),
        "{}",
        listing.stdout
    );
    assert!(
        listing.stdout.contains("unchanged  o/b.yaml"),
        "{}",
        listing.stdout
    );
    let file_diff = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p/a.yaml",
            "--out",
            "o/",
            "--diff",
        ])
        .ok();
    assert!(!file_diff.all().contains("SECRET"), "{}", file_diff.all());
    assert!(ws.read("o/a.yaml").contains("second-SECRET"));
    let _ = Path::new("");
}

#[test]
fn a_render_of_many_files_needs_few_open_descriptors() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    for i in 0..300 {
        ws.write(
            &format!("p/data_loaders/l{i}.yaml"),
            "source: postgres\nconfig:\n  password: \"{{ mage_secret_var('pw') }}\"\n",
        );
    }
    ws.write("p/io_config.yaml", "default: {}\n");
    // 64 descriptors for 301 outputs: each temporary is closed once written.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" --data-dir d render p --out o")
        .arg(crate::support::bin())
        .current_dir(ws.path(""))
        .env("HOME", ws.path("home"))
        .env_remove("MAGE_DATA_DIR")
        .env_remove("MAGE_SECRETS_DATABASE")
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        ws.read("o/data_loaders/l299.yaml"),
        "source: postgres\nconfig:\n  password: \"v\""
    );
}

#[test]
fn a_failed_render_leaves_no_output_folder_and_no_staging() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    ws.write(
        "p/io_config.yaml",
        "default:\n  A: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.write(
        "p/data_loaders/x.yaml",
        "b: \"{{ mage_secret_var('missing') }}\"\n",
    );
    ws.run(&["--data-dir", "d", "render", "p", "--out", "new/o"])
        .code(1);
    assert!(!ws.path("new").exists(), "no output folder is left");
    // Into an existing folder: exactly what was there.
    ws.write("o/keep.txt", "previous");
    let before = snapshot(&ws.path("o"));
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    assert_eq!(snapshot(&ws.path("o")), before);
}

#[test]
fn an_output_in_the_secret_store_is_refused() {
    let ws = Workspace::new();
    ws.set("s/d", None, "pw", "v");
    ws.write(
        "p/io_config.yaml",
        "default:\n  A: \"{{ mage_secret_var('pw') }}\"\n",
    );
    let before = snapshot(&ws.path("s"));
    for out in ["s/d", "s/d/mage-secrets", "s"] {
        let run = ws
            .run(&["--data-dir", "s/d", "render", "p", "--out", out, "--prune"])
            .code(2);
        assert!(run.stderr.contains("secret store"), "{out}: {}", run.stderr);
    }
    let run = ws
        .run(&[
            "--data-dir",
            "s/d",
            "render",
            "p/io_config.yaml",
            "--out",
            "s/d/mage-secrets/key",
        ])
        .code(2);
    assert!(run.stderr.contains("secret store"), "{}", run.stderr);
    assert_eq!(snapshot(&ws.path("s")), before, "the store is untouched");
    ws.run(&["--data-dir", "s/d", "get", "pw"]).ok();
}

#[test]
fn output_folders_reached_through_links_are_written_safely() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "one");
    let t = "pw: \"{{ mage_secret_var('pw') }}\"\n";
    ws.write("p/io_config.yaml", t);
    ws.write("p/data_loaders/a.yaml", t);
    ws.write("p/data_loaders/zz/b.yaml", t);
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    // A target folder on another file system (a link to tmpfs): every
    // output is replaced, none is left old.
    if let Ok(other) = tempfile::tempdir_in("/dev/shm") {
        fs::remove_dir_all(ws.path("o/data_loaders/zz")).unwrap();
        std::os::unix::fs::symlink(other.path(), ws.path("o/data_loaders/zz")).unwrap();
        ws.set("d", None, "pw", "two");
        ws.run(&["--data-dir", "d", "render", "p", "--out", "o", "--prune"])
            .ok();
        assert_eq!(ws.read("o/data_loaders/a.yaml"), "pw: \"two\"");
        assert_eq!(ws.read("o/data_loaders/zz/b.yaml"), "pw: \"two\"");
        // --prune kept the link it wrote through.
        assert!(ws.path("o/data_loaders/zz").is_symlink());
    }
    // A target folder that leads back into the project: refused, the
    // template untouched.
    fs::remove_file(ws.path("o/data_loaders/zz")).ok();
    fs::remove_dir_all(ws.path("o/data_loaders")).unwrap();
    std::os::unix::fs::symlink(ws.path("p/data_loaders"), ws.path("o/data_loaders")).unwrap();
    ws.set("d", None, "pw", "three");
    let run = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(2);
    assert!(
        run.stderr.contains("leads into the project"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.read("p/data_loaders/a.yaml"), t);
    assert_eq!(ws.read("p/data_loaders/zz/b.yaml"), t);
}

#[test]
fn two_renders_of_different_projects_into_one_folder_never_mix() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    for (p, w) in [("a", "A"), ("b", "B")] {
        ws.write(&format!("{p}/io_config.yaml"), "default: {}\n");
        for i in 0..150 {
            ws.write(
                &format!("{p}/data_loaders/f{i}.yaml"),
                format!("w: {w}\npw: \"{{{{ mage_secret_var('pw') }}}}\"\n"),
            );
        }
    }
    for round in 0..6 {
        let children: Vec<_> = ["a", "b"]
            .iter()
            .map(|p| {
                ws.cmd(&["--data-dir", "d", "render", p, "--out", "o"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let ok = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .filter(|o| o.status.success())
            .count();
        assert!(ok >= 1, "round {round}: one render completes");
        let a = (0..150)
            .filter(|i| {
                ws.read(&format!("o/data_loaders/f{i}.yaml"))
                    .contains("w: A")
            })
            .count();
        assert!(
            a == 0 || a == 150,
            "round {round}: a mixed set ({a} of 150 from a)"
        );
    }
}
