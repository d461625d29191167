//! `check`'s verdict against the strict render's, on generated projects:
//! random mixes of literal, computed and indirect references, loops,
//! macros, conditions, filters, pipeline scopes and missing secrets. With
//! the key, `check --strict-env` fails exactly when the strict render fails;
//! without it (by existence, values stood in for), no project that fails
//! to render passes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use mage_secrets::check::{self, CheckOptions, Presence};
use mage_secrets::project::{self, Selection};
use mage_secrets::secret::{Scope, SecretValue};
use mage_secrets::template::{Engine, EnvVars, RenderOptions, SecretSource};
use rand::{Rng, SeedableRng};

/// The environment: global a, b; pipeline p1: c. Missing: d, e.
struct Store(HashMap<(Scope, String), Arc<SecretValue>>);

impl SecretSource for Store {
    fn lookup(
        &self,
        chain: &[Scope],
        name: &str,
    ) -> mage_secrets::Result<Option<Arc<SecretValue>>> {
        Ok(chain
            .iter()
            .find_map(|s| self.0.get(&(s.clone(), name.to_string())).cloned()))
    }
    fn environment(&self) -> &str {
        "env-under-test"
    }
}

struct Vars;
impl EnvVars for Vars {
    fn get(&self, name: &str) -> Option<String> {
        (name == "FLAG" || name == "E_SET").then(|| "1".to_string())
    }
}

const NAMES: &[&str] = &["a", "b", "c", "d", "e"];

fn piece(rng: &mut impl Rng, key: usize) -> String {
    let name = NAMES[rng.gen_range(0..NAMES.len())];
    let other = NAMES[rng.gen_range(0..NAMES.len())];
    let (head, tail) = name.split_at(0);
    match rng.gen_range(0..12) {
        0 => format!("k{key}: \"{{{{ mage_secret_var('{name}') }}}}\"\n"),
        1 => format!("{{% set x{key} = '{head}' ~ '{tail}' %}}k{key}: \"{{{{ mage_secret_var(x{key}) }}}}\"\n"),
        2 => format!("{{% for n in ['{name}', '{other}'] %}}k{key}_{{{{ loop.index }}}}: \"{{{{ mage_secret_var(n) }}}}\"\n{{% endfor %}}"),
        3 => format!("{{% macro s{key}(n) %}}{{{{ mage_secret_var(n) }}}}{{% endmacro %}}k{key}: \"{{{{ s{key}('{name}') }}}}\"\n"),
        4 => format!("{{% set f{key} = mage_secret_var %}}k{key}: \"{{{{ f{key}('{name}') }}}}\"\n"),
        5 => format!("{{% if false %}}k{key}: \"{{{{ mage_secret_var('{name}') }}}}\"\n{{% endif %}}"),
        6 => format!("{{% if env_var('FLAG', '') == '1' %}}k{key}: \"{{{{ mage_secret_var('{name}') }}}}\"\n{{% endif %}}"),
        7 => format!("{{% if env_var('NOFLAG', '') == '1' %}}k{key}: \"{{{{ mage_secret_var('{name}') }}}}\"\n{{% endif %}}"),
        8 => format!("k{key}: \"{{{{ mage_secret_var('{name}') | upper }}}}\"\n"),
        9 => format!("k{key}: \"{{{{ mage_secret_var('pre_' ~ env_var('E_SET', 'x')) | default('z') }}}}\"\n"),
        10 => format!("k{key}: \"{{{{ env_var('E_SET') }}}}-{{{{ env_var('E_UNSET', 'd') }}}}\"\n"),
        _ => format!("# k{key}: {{{{ mage_secret_var('{name}') }}}}\nk{key}: plain\n"),
    }
}

#[test]
fn check_agrees_with_the_strict_render_on_generated_projects() {
    let mut secrets = HashMap::new();
    let mut names = Vec::new();
    for (scope, name) in [
        (Scope::Global, "a"),
        (Scope::Global, "b"),
        (Scope::Pipeline("p1".into()), "c"),
        (Scope::Global, "pre_1"),
    ] {
        secrets.insert(
            (scope.clone(), name.to_string()),
            Arc::new(SecretValue::new(format!("value{name}"))),
        );
        names.push((scope, name.to_string()));
    }
    let store: Arc<dyn SecretSource> = Arc::new(Store(secrets));
    let vars: Arc<dyn EnvVars> = Arc::new(Vars);
    let engine = Engine::new(store, vars.clone());
    let presence = Presence::of("env-under-test", names);
    let options = CheckOptions {
        strict_env: true,
        ..CheckOptions::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let (mut projects, mut failing, mut keyless_caught) = (0, 0, 0);
    for _ in 0..1000 {
        let dir = tempfile::tempdir().unwrap();
        let files = rng.gen_range(1..=3);
        for f in 0..files {
            let rel = if rng.gen_bool(0.4) {
                format!("pipelines/p1/f{f}.yaml")
            } else {
                format!("f{f}.yaml")
            };
            let text: String = (0..rng.gen_range(1..=4))
                .map(|k| piece(&mut rng, f * 10 + k))
                .collect();
            let path = dir.path().join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let selection = Selection::new(&[], &[]).unwrap();
        let project = project::walk(dir.path(), &selection, None).unwrap();
        let render_fails = project.files.iter().any(|rel| {
            let source = std::fs::read_to_string(project.root.join(rel)).unwrap();
            let rendered = engine.render(
                rel,
                &source,
                &project.chain(rel),
                &RenderOptions::default(),
                true,
            );
            rendered.diagnostics.iter().any(|d| d.is_error())
        });
        let with_key = check::check(
            &project,
            &presence,
            Some(&engine),
            vars.clone(),
            &options,
            &mage_secrets::parallel::no_tick,
        );
        let keyless = check::check(
            &project,
            &presence,
            None,
            vars.clone(),
            &options,
            &mage_secrets::parallel::no_tick,
        );
        let listing = || {
            project
                .files
                .iter()
                .map(|rel| {
                    format!(
                        "--- {}\n{}",
                        rel.display(),
                        std::fs::read_to_string(project.root.join(rel)).unwrap()
                    )
                })
                .collect::<String>()
        };
        assert_eq!(
            with_key.errors() > 0,
            render_fails,
            "check (with the key) and the strict render disagree on:\n{}\n{:#?}",
            listing(),
            with_key.problems
        );
        if render_fails {
            failing += 1;
            assert!(
                keyless.errors() > 0,
                "check without the key passes a project that fails to render:\n{}",
                listing()
            );
            keyless_caught += 1;
        }
        projects += 1;
        let _ = Path::new("");
    }
    assert_eq!(projects, 1000);
    eprintln!(
        "{projects} generated projects: {failing} fail to render, all flagged by check with and without the key ({keyless_caught})"
    );
    assert!(failing > 100 && failing < 900, "a useful mix: {failing}");
}
