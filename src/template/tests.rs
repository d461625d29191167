//! Tests of the engine as a whole: each strategy, escaping, diagnostics.

use super::*;
use crate::secret::SecretValue;
use std::collections::HashMap;
use std::path::Path;

/// Secrets from a map: (scope, name) → value.
pub struct MapSource(pub HashMap<(Scope, String), Arc<SecretValue>>);

impl MapSource {
    pub fn of(pairs: &[(&str, &str)]) -> MapSource {
        MapSource(
            pairs
                .iter()
                .map(|(k, v)| {
                    let (scope, name) = match k.split_once('/') {
                        Some((p, n)) => (Scope::Pipeline(p.to_string()), n.to_string()),
                        None => (Scope::Global, k.to_string()),
                    };
                    ((scope, name), Arc::new(SecretValue::new(v.to_string())))
                })
                .collect(),
        )
    }
}

impl SecretSource for MapSource {
    fn lookup(&self, chain: &[Scope], name: &str) -> crate::Result<Option<Arc<SecretValue>>> {
        Ok(chain
            .iter()
            .find_map(|s| self.0.get(&(s.clone(), name.to_string())).cloned()))
    }
    fn environment(&self) -> &str {
        "test-env"
    }
}

struct MapVars(HashMap<String, String>);
impl EnvVars for MapVars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// What Mage's Jinja pass makes of an output's protections (the real pass
/// is run by the differential test against Python's Jinja2).
pub fn mage_view(out: &str) -> String {
    out.replace("{{ '{{' }}", "{{")
        .replace("{{ '{%' }}", "{%")
        .replace("{{ '{#' }}", "{#")
        .replace("{{ '{' }}", "{")
}

pub fn engine(secrets: &[(&str, &str)]) -> Engine {
    let vars = MapVars(
        [("HOME".to_string(), "/home/u".to_string())]
            .into_iter()
            .collect(),
    );
    Engine::new(Arc::new(MapSource::of(secrets)), Arc::new(vars))
}

fn render_with(secrets: &[(&str, &str)], src: &str, options: &RenderOptions) -> FileRender {
    engine(secrets).render(Path::new("f.yaml"), src, &[Scope::Global], options, true)
}

fn render(secrets: &[(&str, &str)], src: &str) -> Result<String, Vec<String>> {
    let r = render_with(secrets, src, &RenderOptions::default());
    r.output
        .ok_or_else(|| r.diagnostics.iter().map(|d| d.to_string()).collect())
}

#[test]
fn whole_templates_render_like_jinja2() {
    let src = "a: \"{{ mage_secret_var('pw') }}\"\n{# note #}\n{% if true %}b: {{ env_var('HOME') }}{% endif %}\nc: {{ env_var('NOPE', 'dflt') }}\n";
    assert_eq!(
        render(&[("pw", "p")], src).unwrap(),
        "a: \"p\"\n\nb: /home/u\nc: dflt"
    );
    assert_eq!(
        render(&[], "x: {{ json_value('{\"a\": [1, 2]}', 'a') }}").unwrap(),
        "x: [1, 2]"
    );
    assert_eq!(
        render(&[], "x: {{ none }} {{ true }}").unwrap(),
        "x: None True"
    );
}

#[test]
fn values_are_escaped_by_quoting_context() {
    let v = "a\"b'c\\d\ne";
    let src = "dq: \"{{ mage_secret_var('v') }}\"\nurl: \"pre-{{ mage_secret_var('v') }}-post\"\n";
    let out = render(&[("v", v)], src).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(doc["dq"].as_str().unwrap(), v);
    assert_eq!(doc["url"].as_str().unwrap(), format!("pre-{v}-post"));
    let sq = render(&[("v", "it's")], "sq: '{{ mage_secret_var(\"v\") }}'").unwrap();
    assert_eq!(sq, "sq: 'it''s'");
    let err = render(&[("v", "l1\nl2")], "sq: '{{ mage_secret_var(\"v\") }}'").unwrap_err();
    assert!(
        err[0].contains("f.yaml:1:9: error: cannot place this value in single quotes (secrets: v)"),
        "{err:?}"
    );
    let raw = render_with(
        &[("v", "a\"b")],
        "dq: \"{{ mage_secret_var('v') }}\"",
        &RenderOptions {
            raw: true,
            ..Default::default()
        },
    );
    assert!(
        raw.output.is_none(),
        "raw insertion breaks the YAML, which is reported"
    );
}

#[test]
fn values_are_never_evaluated() {
    let out = render(
        &[("v", "{{ mage_secret_var('other') }}"), ("other", "NO")],
        "k: \"{{ mage_secret_var('v') }}\"",
    )
    .unwrap();
    assert_eq!(out, "k: \"{{ '{{' }} mage_secret_var('other') }}\"");
    assert_eq!(mage_view(&out), "k: \"{{ mage_secret_var('other') }}\"");
}

#[test]
fn runtime_expressions_are_kept_byte_for_byte() {
    let src = "pw: \"{{ mage_secret_var('pw') }}\"\nstart: {{ n_days_ago(1) }}\ntable: \"{{ variables('t') }}\"\n{# kept #}\n";
    let r = render_with(&[("pw", "x\"y")], src, &RenderOptions::default());
    assert_eq!(r.mode, RenderMode::Partial);
    assert_eq!(
        r.output.unwrap(),
        "pw: \"x\\\"y\"\nstart: {{ n_days_ago(1) }}\ntable: \"{{ variables('t') }}\"\n{# kept #}\n"
    );
    let tags = "{% if variables('x') %}\npw: {{ mage_secret_var('pw') }}\n{% endif %}\n";
    assert_eq!(
        render(&[("pw", "p")], tags).unwrap(),
        "{% if variables('x') %}\npw: p\n{% endif %}\n"
    );
    let protected = render(
        &[("pw", "{{ boom }}")],
        "a: \"{{ mage_secret_var('pw') }}\"\nb: {{ variables('x') }}\n",
    )
    .unwrap();
    assert_eq!(
        protected,
        "a: \"{{ '{{' }} boom }}\"\nb: {{ variables('x') }}\n"
    );
    // Unquoted, Mage would read it as a mapping used as a key, which
    // PyYAML cannot load.
    assert!(render(
        &[("pw", "{{ boom }}")],
        "a: {{ mage_secret_var('pw') }}\nb: {{ variables('x') }}\n",
    )
    .is_err());
}

#[test]
fn whitespace_control_of_substituted_expressions_is_applied() {
    let src = "k: [x,  {{- mage_secret_var('pw') -}}  , y]\nt: {{ variables('t') }}\n";
    assert_eq!(
        render(&[("pw", "p")], src).unwrap(),
        "k: [x,p, y]\nt: {{ variables('t') }}\n"
    );
    let upper = "a: x \n {{- mage_secret_var('pw') | upper }}\nb: {{ variables('t') }}\n";
    assert_eq!(
        render(&[("pw", "p")], upper).unwrap(),
        "a: xP\nb: {{ variables('t') }}\n"
    );
}

#[test]
fn every_missing_value_is_reported_with_its_place() {
    let src = "a: {{ mage_secret_var('one') }}\nb: {{ mage_secret_var('two') }}\nc: {{ env_var('UNSET') }}\nd: {{ mage_secret_var('one') }}\n";
    let err = render(&[], src).unwrap_err();
    assert_eq!(
        err,
        vec![
            "f.yaml:1:7: error: secret 'one' is not set in environment test-env",
            "f.yaml:4:7: error: secret 'one' is not set in environment test-env",
            "f.yaml:2:7: error: secret 'two' is not set in environment test-env",
            "f.yaml:3:7: error: environment variable 'UNSET' is not set and env_var has no default",
        ]
    );
    let lenient = render_with(
        &[],
        src,
        &RenderOptions {
            lenient: true,
            ..Default::default()
        },
    );
    assert_eq!(
        lenient.output.unwrap(),
        "a: None\nb: None\nc: None\nd: None"
    );
    assert!(lenient.diagnostics.iter().all(|d| !d.is_error()));
    assert_eq!(lenient.diagnostics.len(), 4);
}

#[test]
fn pipeline_scope_comes_first() {
    let e = engine(&[("k", "global"), ("etl/k", "pipeline")]);
    let chain = Scope::Pipeline("etl".into()).chain();
    let r = e.render(
        Path::new("p.yaml"),
        "k: {{ mage_secret_var('k') }}",
        &chain,
        &RenderOptions::default(),
        true,
    );
    assert_eq!(r.output.unwrap(), "k: pipeline");
    let r = e.render(
        Path::new("p.yaml"),
        "k: {{ mage_secret_var('k') }}",
        &[Scope::Global],
        &RenderOptions::default(),
        true,
    );
    assert_eq!(r.output.unwrap(), "k: global");
}

#[test]
fn syntax_and_yaml_errors_are_placed_without_values() {
    let err = render(&[], "a: 1\nb: {{ mage_secret_var('x' }}\n").unwrap_err();
    assert!(err[0].starts_with("f.yaml:2:"), "{err:?}");
    assert!(err[0].contains("syntax error"), "{err:?}");
    let secret = "SENTINEL: value";
    let err = render(
        &[("pw", secret)],
        "a: b\nkey: {{ mage_secret_var('pw') }}: c\n",
    )
    .unwrap_err();
    assert!(err[0].contains("rendered YAML does not parse"), "{err:?}");
    assert!(
        err[0].contains("values whose text spans the failing place: pw"),
        "{err:?}"
    );
    assert!(err[0].starts_with("f.yaml:2:"), "{err:?}");
    assert!(!err.join("\n").contains("SENTINEL"));
}

#[test]
fn includes_and_imports_are_refused() {
    let err = render(&[], "{% include '/etc/passwd' %}").unwrap_err();
    assert!(err[0].contains("are refused"), "{err:?}");
}

#[cfg(test)]
mod properties {
    use super::*;
    use super::{engine, mage_view};
    use proptest::prelude::*;
    use std::path::Path;

    fn adversarial() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "\"", "\\", "'", "\n", "\t", "#", ": ", " ", "{{", "}}", "{%", "é", "日本", "a", "Z9",
            "\r", "- ", "%", "''", "\\n", "&x", "*y", "!t", "[", "]", ",", "null", "~",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
    }

    fn field(output: &str, key: &str) -> String {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&mage_view(output)).expect("rendered YAML parses");
        doc[key].as_str().expect("a string").to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn quoted_values_read_back_exactly(value in adversarial()) {
            let e = engine(&[("v", &value)]);
            let render = |src: &str| e.render(Path::new("p.yaml"), src, &[Scope::Global], &RenderOptions::default(), true);

            let dq = render("key: \"{{ mage_secret_var('v') }}\"\n");
            prop_assert_eq!(field(dq.output.as_deref().unwrap(), "key"), value.clone());

            let url = render("url: \"pre-{{ mage_secret_var('v') }}-post\"\n");
            prop_assert_eq!(field(url.output.as_deref().unwrap(), "url"), format!("pre-{value}-post"));

            let sq = render("key: '{{ mage_secret_var('v') }}'\n");
            if value.contains(['\n', '\r']) {
                prop_assert!(sq.output.is_none());
                prop_assert_eq!(sq.diagnostics[0].kind, Kind::Quoting);
                prop_assert!(sq.diagnostics[0].message.contains("use double quotes"));
            } else {
                prop_assert_eq!(field(sq.output.as_deref().unwrap(), "key"), value.clone());
            }
        }
    }
}

mod partial_decision {
    use super::*;
    use proptest::prelude::*;

    /// The decision taken without compiling the whole template is the
    /// whole compile's: it compiles, and a variable it uses is not ours.
    fn agrees(source: &str) {
        let e = engine(&[("pw", "v")]);
        let Ok(analysis) = Analysis::of(source) else {
            return;
        };
        if !e.certainly_partial(source, &analysis) {
            return;
        }
        let rewritten = pysyntax::rewrite(source);
        let text = rewritten.as_ref().map_or(source, |r| r.text.as_str());
        let whole = e.env.template_from_str(text).unwrap_or_else(|err| {
            panic!("{source:?}: decided partial, the whole compile fails: {err}")
        });
        assert!(
            whole
                .undeclared_variables(false)
                .iter()
                .any(|n| !KNOWN_NAMES.contains(&n.as_str())),
            "{source:?}: decided partial, but every variable is ours"
        );
    }

    #[test]
    fn runtime_names_decide_without_the_whole_compile() {
        let e = engine(&[]);
        let partial = |s: &str| e.certainly_partial(s, &Analysis::of(s).unwrap());
        assert!(partial(
            "a: \"{{ n_days_ago(1) }}\"\nb: '{{ mage_secret_var(\"pw\") }}'\n"
        ));
        assert!(partial("a: {{ variables('x') | default('y') }}\n"));
        // Names that are no variables: attributes, filters, tests, keywords.
        assert!(!partial("a: {{ mage_secret_var('pw').upper() }}\n"));
        assert!(!partial(
            "a: {{ env_var('X') | upper if true else none }}\n"
        ));
        assert!(!partial("a: {{ env_var('X') is defined }}\n"));
        // Tags may declare names; a syntax error is the whole compile's.
        assert!(!partial("{% set x = 1 %}a: {{ x }}\n"));
        assert!(!partial("a: {{ variables('x') }}\nb: {{ 1 + }}\n"));
        for s in [
            "a: \"{{ n_days_ago(1) }}\"\n",
            "a: {{ x.y(z=1) }} {{ mage_secret_var('pw') }}\n",
            "{# c #}a: {{- block_uuid -}}\n",
            "{% raw %}{{ x }}{% endraw %} {{ y }}\n",
            "a: {{ (1, x) }} {{ '%s' % y }}\n",
        ] {
            agrees(s);
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a: ",
            "\n",
            "\"",
            "'",
            " ",
            "{{ ",
            " }}",
            "{{- ",
            " -}}",
            "{% if x %}",
            "{% endif %}",
            "{# c #}",
            "{% raw %}",
            "{% endraw %}",
            "mage_secret_var('pw')",
            "env_var('X', 'd')",
            "n_days_ago(1)",
            "variables('t')",
            "x",
            "x.y",
            ".upper()",
            "| default('d')",
            "|upper",
            " is defined",
            " is not none",
            " if x else y",
            "f(k=1)",
            "(1, 2)",
            "[1, x]",
            "{'a': b}",
            " + ",
            " ~ ",
            "'%s' % x",
            "true",
            "none",
            "None",
            "loop",
            "self",
            "(",
            ")",
            "[",
            "]",
            "=",
            "==",
            "and",
            " not ",
            " in ",
            "1",
            "'s'",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn a_partial_decision_matches_the_whole_compile(
            pieces in prop::collection::vec(piece(), 0..16)
        ) {
            agrees(&pieces.concat());
        }
    }
}
