//! For tests only, never built into the library: a throwaway PostgreSQL
//! database per test. Included by the store's unit tests and by the
//! integration tests (`tests/support.rs`), so there is one copy.

/// For tests: a fresh, empty PostgreSQL database on the server named by
/// `MAGE_SECRETS_TEST_POSTGRES_URL`, or `None` (with a note) when it is not
/// set. When `MAGE_SECRETS_REQUIRE_POSTGRES` is set (CI), a missing server is
/// a failure rather than a skip.
pub fn test_postgres_database(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("MAGE_SECRETS_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("MAGE_SECRETS_REQUIRE_POSTGRES").is_none(),
            "MAGE_SECRETS_REQUIRE_POSTGRES is set but MAGE_SECRETS_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipped {test}: MAGE_SECRETS_TEST_POSTGRES_URL is not set (see README: PostgreSQL tests)");
        return None;
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "ms_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        test.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>()
            .to_lowercase()
    );
    let mut admin =
        ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect to the test server");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
        .expect("create a test database");
    let cut = base.rfind('/').expect("a database in the URL");
    let query = base[cut..]
        .find('?')
        .map(|q| base[cut + q..].to_string())
        .unwrap_or_default();
    Some(format!("{}/{name}{query}", &base[..cut]))
}
