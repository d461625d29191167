//! The differential test against the real thing: templates with adversarial
//! values are rendered here and loaded as Mage loads them, by Python's
//! Jinja2 and PyYAML (`tests/differential/mage_load.py` generates the cases
//! and judges every place).
//!
//! Python comes from `MAGE_SECRETS_PYTHON` (an interpreter with `jinja2` and
//! `pyyaml`; `.ci/run` makes one), else `python3` when it has both. Without
//! one the test says it was skipped, unless `MAGE_SECRETS_REQUIRE_PYTHON=1`,
//! which makes a missing Python a failure. `MAGE_SECRETS_DIFFERENTIAL_CASES`
//! (default 3,000) and `MAGE_SECRETS_DIFFERENTIAL_SEED` set the run; the
//! long run is `benches/differential.sh`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use mage_secrets::template::{Engine, EnvVars, RenderOptions, SecretSource};
use mage_secrets::{Scope, SecretValue};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/differential/mage_load.py"
);

struct Secrets(HashMap<String, Arc<SecretValue>>);

impl SecretSource for Secrets {
    fn lookup(&self, _: &[Scope], name: &str) -> mage_secrets::Result<Option<Arc<SecretValue>>> {
        Ok(self.0.get(name).cloned())
    }
    fn environment(&self) -> &str {
        "differential"
    }
}

struct Vars(HashMap<String, String>);

impl EnvVars for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// An interpreter that can import jinja2 and yaml.
fn python() -> Option<String> {
    let candidates = match std::env::var("MAGE_SECRETS_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".to_string()],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import jinja2, yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn map(value: &serde_json::Value) -> HashMap<String, String> {
    value
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_string()))
        .collect()
}

/// Renders one case as `render` does a YAML file.
fn render(case: &serde_json::Value) -> serde_json::Value {
    let template = case["template"].as_str().expect("a template");
    let secrets = map(&case["secrets"])
        .into_iter()
        .map(|(k, v)| (k, Arc::new(SecretValue::new(v))))
        .collect();
    let engine = Engine::new(
        Arc::new(Secrets(secrets)),
        Arc::new(Vars(map(&case["env"]))),
    );
    let file = engine.render(
        Path::new("case.yaml"),
        template,
        &[Scope::Global],
        &RenderOptions::default(),
        true,
    );
    let failed = file.diagnostics.iter().any(|d| d.is_error());
    serde_json::json!({
        "case": case,
        "output": if failed { None } else { file.output },
        "diagnostics": file.diagnostics,
    })
}

#[test]
fn rendered_values_load_in_mage_as_intended_or_the_render_fails_naming_the_secret() {
    let Some(python) = python() else {
        assert!(
            std::env::var("MAGE_SECRETS_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "MAGE_SECRETS_REQUIRE_PYTHON=1 but no Python with jinja2 and pyyaml (set MAGE_SECRETS_PYTHON)"
        );
        eprintln!("skipped: no Python with jinja2 and pyyaml (set MAGE_SECRETS_PYTHON to run the differential test)");
        return;
    };
    let total = env_number("MAGE_SECRETS_DIFFERENTIAL_CASES", 3_000);
    let seed = env_number("MAGE_SECRETS_DIFFERENTIAL_SEED", 1);
    const BATCH: u64 = 20_000;
    let (mut checked, mut refused, mut over) = (0u64, 0u64, 0u64);
    let mut failures: Vec<String> = Vec::new();
    let mut done = 0;
    while done < total {
        let count = BATCH.min(total - done);
        let generated = Command::new(&python)
            .args([SCRIPT, "generate", "--count"])
            .arg(count.to_string())
            .arg("--seed")
            .arg((seed * 1_000_003 + done).to_string())
            .output()
            .expect("run the generator");
        assert!(
            generated.status.success(),
            "{}",
            String::from_utf8_lossy(&generated.stderr)
        );
        let mut checker = Command::new(&python)
            .args([SCRIPT, "check"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the checker");
        let cases: Vec<serde_json::Value> = generated
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("a case"))
            .collect();
        let mut stdin = checker.stdin.take().expect("stdin");
        let by_id: HashMap<u64, &serde_json::Value> = cases
            .iter()
            .map(|c| (c["id"].as_u64().unwrap(), c))
            .collect();
        let writer = std::thread::scope(|s| {
            let handle = s.spawn(|| {
                for case in &cases {
                    let line = serde_json::to_string(&render(case)).expect("json");
                    stdin.write_all(line.as_bytes()).expect("write");
                    stdin.write_all(b"\n").expect("write");
                }
                drop(stdin);
            });
            let stdout = checker.stdout.take().expect("stdout");
            for line in BufReader::new(stdout).lines() {
                let verdict: serde_json::Value =
                    serde_json::from_str(&line.expect("a verdict")).expect("json");
                checked += 1;
                if verdict["refused"].as_bool() == Some(true) {
                    refused += 1;
                }
                if verdict["over"].as_bool() == Some(true) {
                    over += 1;
                }
                if verdict["ok"].as_bool() != Some(true) {
                    let case = by_id[&verdict["id"].as_u64().unwrap()];
                    let rendered = render(case);
                    failures.push(format!(
                        "{}\n  template: {:?}\n  secrets: {}\n  output: {}\n  diagnostics: {}",
                        verdict["why"].as_str().unwrap_or("?"),
                        case["template"].as_str().unwrap_or(""),
                        shorten(&case["secrets"].to_string()),
                        shorten(&rendered["output"].to_string()),
                        shorten(&rendered["diagnostics"].to_string()),
                    ));
                }
            }
            handle.join()
        });
        writer.expect("the writer thread");
        assert!(
            checker.wait().expect("checker").success(),
            "the checker failed"
        );
        done += count;
    }
    if let Ok(path) = std::env::var("MAGE_SECRETS_DIFFERENTIAL_REPORT") {
        std::fs::write(path, failures.join("\n")).expect("write the report");
    }
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for f in &failures {
        let why: String = f.lines().next().unwrap_or("").chars().take(50).collect();
        *kinds.entry(why).or_default() += 1;
    }
    for (why, n) in &kinds {
        eprintln!("{n:>7}  {why}");
    }
    eprintln!(
        "differential: {checked} cases, {refused} refused with an error naming the secret ({over} of them where Mage's own load is right), {} failures",
        failures.len()
    );
    assert_eq!(checked, total, "every case judged");
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ from Mage's load (first 15):\n{}",
        failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn shorten(s: &str) -> String {
    if s.len() < 300 {
        s.to_string()
    } else {
        let end = (0..=300)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &s[..end])
    }
}
