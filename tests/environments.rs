//! Named environments: `env --name`, shown by env, list, check and doctor;
//! `--environment` takes a name, a uuid or a unique uuid prefix.

use crate::support::Workspace;

const DB: &str = "shared.db";

/// dev and prod share one database; returns their uuids.
fn two_environments(ws: &Workspace) -> (String, String) {
    ws.set("dev", Some(DB), "secret1", "d1");
    ws.set("dev", Some(DB), "secret3", "d3");
    ws.set("prod", Some(DB), "secret1", "p1");
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('secret1') }}\"\nb: \"{{ mage_secret_var('secret3') }}\"\n",
    );
    (
        ws.read("dev/mage-secrets/uuid").trim().to_string(),
        ws.read("prod/mage-secrets/uuid").trim().to_string(),
    )
}

fn in_env(ws: &Workspace, env: &str, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["--data-dir", env, "--database", DB];
    all.extend(args);
    ws.run(&all)
}

#[test]
fn env_name_is_stored_and_shown_by_env_list_and_doctor() {
    let ws = Workspace::new();
    let (_, prod) = two_environments(&ws);
    let before = in_env(&ws, "prod", &["env"]).ok();
    assert!(
        before.stdout.contains("name:      (none"),
        "{}",
        before.stdout
    );
    let named = in_env(&ws, "prod", &["env", "--name", "prod"]).ok();
    assert!(
        named.stdout.contains("name:      prod\n"),
        "{}",
        named.stdout
    );
    assert!(named
        .stderr
        .contains(&format!("environment {prod} is named 'prod'")));
    let shown = in_env(&ws, "prod", &["env"]).ok();
    assert!(
        shown.stdout.contains("name:      prod\n"),
        "{}",
        shown.stdout
    );

    let list = in_env(&ws, "prod", &["list"]).ok();
    assert!(
        list.stderr
            .contains(&format!("environment prod ({prod}): 1 secret(s)")),
        "{}",
        list.stderr
    );
    let json = in_env(&ws, "prod", &["list", "--format", "json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["environment_name"], "prod");

    let doctor = in_env(&ws, "prod", &["doctor"]).ok();
    assert!(
        doctor.stdout.contains("(named 'prod')"),
        "{}",
        doctor.stdout
    );

    in_env(&ws, "prod", &["env", "--clear-name"]).ok();
    let cleared = in_env(&ws, "prod", &["env"]).ok();
    assert!(
        cleared.stdout.contains("name:      (none"),
        "{}",
        cleared.stdout
    );
}

#[test]
fn a_name_belongs_to_one_environment_of_a_database() {
    let ws = Workspace::new();
    let (_, prod) = two_environments(&ws);
    in_env(&ws, "prod", &["env", "--name", "prod"]).ok();
    let taken = in_env(&ws, "dev", &["env", "--name", "prod"]).code(2);
    assert!(
        taken
            .stderr
            .contains(&format!("already used by environment {prod}")),
        "{}",
        taken.stderr
    );
    let dev = in_env(&ws, "dev", &["env"]).ok();
    assert!(dev.stdout.contains("name:      (none"), "{}", dev.stdout);
}

#[test]
fn bad_names_are_refused() {
    let ws = Workspace::new();
    two_environments(&ws);
    for bad in ["", "1st", "has space", "beef", "a/b"] {
        let out = in_env(&ws, "dev", &["env", "--name", bad]).code(2);
        assert!(
            out.stderr.contains("invalid environment name"),
            "{bad}: {}",
            out.stderr
        );
    }
}

#[test]
fn environment_takes_a_name_a_uuid_or_a_unique_prefix() {
    let ws = Workspace::new();
    let (dev, prod) = two_environments(&ws);
    in_env(&ws, "prod", &["env", "--name", "prod"]).ok();
    let by_name = in_env(&ws, "dev", &["check", "p", "--environment", "prod"]).code(1);
    assert!(
        by_name.stderr.contains("secret 'secret3' is not set"),
        "{}",
        by_name.stderr
    );
    // The shortest prefix that tells the two apart, and longer ones.
    let common = dev
        .chars()
        .zip(prod.chars())
        .take_while(|(a, b)| a == b)
        .count();
    for len in [common + 1, 8, 36] {
        let prefix = &dev[..len.min(36)];
        let out = in_env(&ws, "prod", &["check", "p", "--environment", prefix]).ok();
        assert!(
            out.stderr.contains(&format!("in environment {dev}")),
            "{prefix}: {}",
            out.stderr
        );
    }
    let upper = dev.to_uppercase();
    in_env(&ws, "prod", &["check", "p", "--environment", &upper]).ok();
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let ws = Workspace::new();
    // Environments until two share a first hex digit.
    let mut uuids: Vec<String> = Vec::new();
    let (dev, prod) = two_environments(&ws);
    uuids.push(dev);
    uuids.push(prod);
    let mut i = 0;
    let shared = loop {
        let firsts: Vec<char> = uuids.iter().map(|u| u.chars().next().unwrap()).collect();
        if let Some(c) = firsts
            .iter()
            .find(|c| firsts.iter().filter(|d| d == c).count() > 1)
        {
            break *c;
        }
        let dir = format!("e{i}");
        ws.set(&dir, Some(DB), "x", "1");
        uuids.push(
            ws.read(&format!("{dir}/mage-secrets/uuid"))
                .trim()
                .to_string(),
        );
        i += 1;
    };
    let out = in_env(
        &ws,
        "dev",
        &["check", "p", "--environment", &shared.to_string()],
    )
    .code(2);
    assert!(out.stderr.contains("matches"), "{}", out.stderr);
    for uuid in uuids.iter().filter(|u| u.starts_with(shared)) {
        assert!(out.stderr.contains(uuid.as_str()), "{uuid}: {}", out.stderr);
    }
}

#[test]
fn all_environments_table_shows_names() {
    let ws = Workspace::new();
    let (dev, _) = two_environments(&ws);
    in_env(&ws, "prod", &["env", "--name", "production"]).ok();
    let out = in_env(&ws, "dev", &["check", "p", "--all-environments"]).code(1);
    let header = out.stdout.lines().next().unwrap();
    assert!(header.contains("production"), "{}", out.stdout);
    assert!(header.contains(&dev[..8]), "{}", out.stdout);
    let json = in_env(
        &ws,
        "dev",
        &["check", "p", "--all-environments", "--format", "json"],
    )
    .code(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["environment_names"].as_object().unwrap().len(), 1);
}

#[test]
fn an_older_database_gains_names_on_open() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    let db = ws.path("d/mage-secrets/secrets.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP INDEX environments_name; ALTER TABLE environments DROP COLUMN name; DROP TABLE mage_secrets_database; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    // A data dir of that time recorded no database id.
    let record: String = ws
        .read("d/mage-secrets/database")
        .lines()
        .filter(|l| !l.starts_with("id: "))
        .map(|l| format!("{l}\n"))
        .collect();
    ws.write("d/mage-secrets/database", &record);
    ws.run(&["--data-dir", "d", "env", "--name", "dev"]).ok();
    assert_eq!(ws.run(&["--data-dir", "d", "get", "a"]).ok().stdout, "1\n");
    // The database got an id, and the data dir recorded it.
    assert!(ws.read("d/mage-secrets/database").contains("id: "));
}
