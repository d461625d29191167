//! `import-mage` against a fixture made by the real mage-ai 0.9.80
//! (fixtures/mage_import/make_fixture.py): two environments in one Mage
//! database, pipeline-scoped and legacy rows.

use std::fs;
use std::path::Path;

use crate::support::{snapshot, Workspace};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mage_import");

fn copy_fixture(ws: &Workspace) {
    for entry in walkdir::WalkDir::new(FIXTURE) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(FIXTURE).unwrap();
        let dest = ws.path("mage").join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn import(ws: &Workspace, env: &str, extra: &[&str]) -> crate::support::Run {
    let data = format!("mage/{env}_data");
    ws.run(
        &[
            &[
                "--data-dir",
                "ours",
                "import-mage",
                "--mage-data-dir",
                &data,
                "--mage-database",
                "mage/mage-ai.db",
            ][..],
            extra,
        ]
        .concat(),
    )
}

fn value(ws: &Workspace, name: &str, pipeline: Option<&str>) -> Option<String> {
    let env =
        mage_secrets::Environment::open(&mage_secrets::Settings::for_data_dir(ws.path("ours")))
            .unwrap();
    let scope = mage_secrets::Scope::from_pipeline(pipeline).unwrap();
    env.lookup(&[scope], name)
        .unwrap()
        .map(|r| r.value.as_str().to_string())
}

#[test]
fn importing_dev_brings_exactly_devs_secrets() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    let out = import(&ws, "dev", &[]).ok();
    assert!(
        out.stderr.contains(
            "imported 9 secret(s) from Mage environment 7c74269f57134cabb3b64a1dd1da0a1e"
        ),
        "{}",
        out.stderr
    );
    for other in ["secret1", "pg_user", "prod_only"] {
        assert!(
            out.stdout.contains(&format!("skipped       {other}: belongs to another Mage environment (key uuid 94880d0ebede499fa9ae10645e3f2342)")),
            "{}",
            out.stdout
        );
    }
    assert!(out
        .stdout
        .contains("imported      legacy_token (global, legacy row without key_uuid)"));
    for (name, pipeline, expected) in [
        ("secret1", None, "sooper dooper secret string"),
        ("secret3", None, "dev only secret"),
        ("pg_user", None, "orders_app"),
        ("unicode_value", None, "pässwörd-日本-🔑"),
        ("quotes", None, "say \"hi\", it's fine \\ ok"),
        ("pem_key", None, "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+LQmlQ\n-----END PRIVATE KEY-----\n"),
        ("empty_value", None, ""),
        ("legacy_token", None, "legacy value"),
        ("etl_token", Some("etl"), "etl pipeline token"),
    ] {
        assert_eq!(value(&ws, name, pipeline).as_deref(), Some(expected), "{name}");
    }
    assert_eq!(value(&ws, "prod_only", None), None);
    assert_eq!(
        value(&ws, "etl_token", None),
        None,
        "pipeline scope stays a pipeline scope"
    );
    let list = ws
        .run(&[
            "--data-dir",
            "ours",
            "list",
            "--all-scopes",
            "--format",
            "json",
        ])
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 9);
    assert!(!out.all().contains("sooper dooper"), "no value is shown");
}

#[test]
fn rendering_after_import_matches_mages_own_render() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    import(&ws, "dev", &[]).ok();
    let out = ws
        .run(&[
            "--data-dir",
            "ours",
            "render",
            "mage/project/io_config.yaml",
        ])
        .ok();
    assert_eq!(out.stdout, ws.read("mage/expected_dev_io_config.yaml"));
}

#[test]
fn importing_prod_skips_devs_rows_and_the_legacy_row() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    let out = import(&ws, "prod", &[]).ok();
    assert!(
        out.stderr.contains("imported 3 secret(s)"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("skipped       legacy_token: belongs to another Mage environment (key uuid (none: legacy row))"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("skipped       etl_token: belongs to another Mage environment"),
        "{}",
        out.stdout
    );
    assert_eq!(
        value(&ws, "secret1", None).as_deref(),
        Some("real production secret")
    );
    assert_eq!(value(&ws, "secret3", None), None);
}

#[test]
fn dry_run_existing_names_and_overwrite() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    ws.set("ours", None, "secret1", "mine");
    let before = snapshot(&ws.path("ours"));
    let dry = import(&ws, "dev", &["--dry-run"]).ok();
    assert!(
        dry.stdout.contains("would import  secret3 (global)"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("skipped       secret1 (global): already set here; --overwrite replaces it"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        before,
        snapshot(&ws.path("ours")),
        "a dry run writes nothing"
    );
    import(&ws, "dev", &[]).ok();
    assert_eq!(value(&ws, "secret1", None).as_deref(), Some("mine"));
    import(&ws, "dev", &["--overwrite"]).ok();
    assert_eq!(
        value(&ws, "secret1", None).as_deref(),
        Some("sooper dooper secret string")
    );
}

#[test]
fn the_database_is_found_in_the_project_folder_of_the_data_dir() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    fs::create_dir_all(ws.path("mage/dev_data/my_project")).unwrap();
    fs::rename(
        ws.path("mage/mage-ai.db"),
        ws.path("mage/dev_data/my_project/mage-ai.db"),
    )
    .unwrap();
    let out = ws
        .run(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "mage/dev_data",
        ])
        .ok();
    assert!(
        out.stderr.contains("imported 9 secret(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_or_wrong_mage_files_are_clear_errors() {
    let ws = Workspace::new();
    copy_fixture(&ws);
    let no_key = ws
        .run(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "mage/project",
        ])
        .code(2);
    assert!(
        no_key.stderr.contains("no Mage key in mage/project"),
        "{}",
        no_key.stderr
    );
    fs::create_dir_all(ws.path("empty/secrets")).unwrap();
    fs::copy(
        ws.path("mage/dev_data/secrets/key"),
        ws.path("empty/secrets/key"),
    )
    .unwrap();
    fs::copy(
        ws.path("mage/dev_data/secrets/uuid"),
        ws.path("empty/secrets/uuid"),
    )
    .unwrap();
    let no_db = ws
        .run(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "empty",
        ])
        .code(2);
    assert!(
        no_db.stderr.contains("no Mage database (mage-ai.db)"),
        "{}",
        no_db.stderr
    );
    ws.set("other", None, "x", "1");
    let not_mage = ws
        .run(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "empty",
            "--mage-database",
            "other/mage-secrets/secrets.db",
        ])
        .code(2);
    assert!(
        not_mage.stderr.contains("is this Mage's database?"),
        "{}",
        not_mage.stderr
    );
    let pg = ws
        .run(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "empty",
            "--mage-database",
            "postgresql://u:p@h/db",
        ])
        .code(2);
    assert!(!pg.stderr.contains("u:p@"), "{}", pg.stderr);
    assert!(Path::new(&ws.path("mage/mage-ai.db")).exists());
}

#[test]
fn a_mage_database_on_postgresql_imports_the_same() {
    let Some(url) = crate::support::test_postgres_database("mage_import") else {
        return;
    };
    let ws = Workspace::new();
    copy_fixture(&ws);
    // Mage's `secret` table, with the fixture's rows, on the server.
    let sqlite = rusqlite::Connection::open(ws.path("mage/mage-ai.db")).unwrap();
    let mut st = sqlite
        .prepare("SELECT id, name, value, repo_name, key_uuid FROM secret ORDER BY id")
        .unwrap();
    type Row = (i64, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    pg.batch_execute(
        "CREATE TABLE secret (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, value TEXT,
         repo_name VARCHAR(255), key_uuid VARCHAR(255), created_at TIMESTAMP, updated_at TIMESTAMP,
         CONSTRAINT name_key_uuid_uc UNIQUE (name, key_uuid))",
    )
    .unwrap();
    for (id, name, value, repo, key_uuid) in rows {
        pg.execute(
            "INSERT INTO secret (id, name, value, repo_name, key_uuid) VALUES ($1, $2, $3, $4, $5)",
            &[&(id as i32), &name, &value, &repo, &key_uuid],
        )
        .unwrap();
    }
    // As Mage names it in MAGE_DATABASE_CONNECTION_URL (SQLAlchemy style).
    let sqlalchemy = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    let out = ws
        .cmd(&[
            "--data-dir",
            "ours",
            "import-mage",
            "--mage-data-dir",
            "mage/dev_data",
        ])
        .env("MAGE_DATABASE_CONNECTION_URL", &sqlalchemy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("imported 9 secret(s)"), "{stderr}");
    assert!(!stderr.contains("test-password-not-secret"), "{stderr}");
    assert_eq!(value(&ws, "pem_key", None).unwrap().lines().count(), 4);
    assert_eq!(
        value(&ws, "etl_token", Some("etl")).as_deref(),
        Some("etl pipeline token")
    );
}
